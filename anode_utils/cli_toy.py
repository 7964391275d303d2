"""``python -m anode_utils toy``: toy experiments at paper scale, many seeds, resumable.

The config file is JSON::

    {
      "description": "what this run is for (optional)",
      "base": {"task": "spheres", "dim": 2, "epochs": 20},       # optional, shared fields
      "record_every": 10,                                         # optional, default 1
      "experiments": [
        {"name": "node",  "config": {"model": "node"}},
        {"name": "anode", "config": {"model": "anode", "augment_dim": 1}}
      ]
    }

Each experiment's config is ``make_config(**base, **config)`` (without ``seed``: seeds come
from ``--seeds``); names are safe file names (letters, digits, ``-``, ``_``, ``.``, not
starting with ``.``). Every experiment, its data (e.g. a ``val_slice`` that selects no points)
and the existing ``<out>`` are checked before anything runs. Each finished (experiment, seed)
job is written at once, atomically, to ``<out>.partial/``; a rerun reuses those (a damaged
one is recomputed, with a warning) and the runs already in ``<out>``, and computes only what
is missing. An ``<out>`` that holds other seeds is merged: its runs are kept and the new ones
added; if it holds an experiment of the same name with another config (or another
``record_every``) the command refuses and says what to do. The results file holds, per
experiment and seed, the per-iteration series (block means over ``record_every`` iterations,
rounded to 5 significant digits), per-epoch validation metrics, a per-seed summary and the
final metrics; no weights.
"""

import dataclasses
import json
import math
import pathlib
import re
import sys
import threading
import time
import warnings

from ._checks import check_nonneg_int
from .experiments import check_trainable, make_config, make_data, run_toy
from .parallel import default_processes, run_parallel
from .provenance import provenance
from .results_io import read_json, round_sig, write_json, write_results
from .toy_results import (  # noqa: F401
    FORMAT,
    check_results,
    check_run,
    load_results,
    result_finals,
    result_histories,
    result_nfe_ratios,
    result_summaries,
)
from .training import SERIES

#: Experiment names become file names in ``<out>.partial/``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def add_arguments(parser):
    parser.add_argument(
        "--config",
        required=True,
        help="JSON file: base, experiments, record_every",
    )
    parser.add_argument(
        "--out", required=True, help="results JSON file to write"
    )
    parser.add_argument(
        "--seeds",
        default="0-19",
        help="seeds, e.g. '0-19' or '0,3,5-7' (default 0-19)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default: one per core)",
    )
    parser.add_argument(
        "--progress", action="store_true", help="progress bar on stderr"
    )


# ----------------------------------------------------------------------------- parsing


def parse_seeds(text):
    """'0-3,7' -> [0, 1, 2, 3, 7] (sorted, unique)."""
    seeds = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.update(range(lo, hi + 1))
            elif part:
                seeds.add(int(part))
    except ValueError:
        raise ValueError(
            f"--seeds must look like '0-19' or '0,2,5-7' (non-negative integers); "
            f"got {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise ValueError(
            f"--seeds must name at least one non-negative seed; got {text!r}"
        )
    return sorted(seeds)


def _read_spec(spec):
    """A config as a dict: ``spec`` itself, or the JSON object in the file it names."""
    if isinstance(spec, dict):
        return spec
    path = pathlib.Path(spec)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"config file {path} is not valid JSON: {err}"
        ) from None
    if not isinstance(spec, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    return spec


def load_spec(spec):
    """Validate a config (dict, or path to JSON) and return (experiments, record_every).

    experiments: list of (name, full config without seed). Raises ValueError naming the
    experiment and the offending field.
    """
    spec = _read_spec(spec)
    unknown = sorted(
        set(spec) - {"description", "base", "experiments", "record_every"}
    )
    if unknown:
        raise ValueError(
            f"unknown top-level key(s) {', '.join(map(repr, unknown))} in the config; "
            f"allowed: 'description', 'base', 'experiments', 'record_every'"
        )
    if not isinstance(spec.get("description", ""), str):
        raise ValueError("'description' must be a string")
    base = spec.get("base", {})
    if not isinstance(base, dict):
        raise ValueError("'base' must be an object of make_config fields")
    every = spec.get("record_every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(
            f"'record_every' must be a positive integer; got {every!r}"
        )
    exps = spec.get("experiments")
    if not isinstance(exps, list) or not exps:
        raise ValueError(
            '\'experiments\' must be a non-empty list of {"name": ..., "config": {...}}'
        )
    out, names = [], set()
    for i, exp in enumerate(exps):
        where = f"experiments[{i}]"
        if (
            not isinstance(exp, dict)
            or set(exp) - {"name", "config"}
            or "name" not in exp
        ):
            raise ValueError(
                f"{where} must be an object with keys 'name' and 'config' only; got {exp!r}"
            )
        name = exp["name"]
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{where}: 'name' must be a safe file name (letters, digits, '-', '_' "
                f"and '.', not starting with '.', at most 100 characters): it names "
                f"the files of its runs; got {name!r}"
            )
        if name.lower() in names:
            raise ValueError(
                f"{where}: 'name' must be unique (names that differ only in letter "
                f"case count as the same file name); got {name!r} twice"
            )
        names.add(name.lower())
        if not isinstance(exp.get("config", {}), dict):
            raise ValueError(
                f"experiment {name!r}: 'config' must be an object of make_config fields"
            )
        cfg = dict(base, **exp.get("config", {}))
        if "seed" in cfg:
            raise ValueError(
                f"experiment {name!r}: do not set 'seed' in the config; use --seeds"
            )
        try:
            cfg = make_config(**cfg)
            check_trainable(cfg)
        except (ValueError, TypeError) as err:
            raise ValueError(f"experiment {name!r}: {err}") from None
        cfg.pop("seed")
        out.append((name, cfg))
    return out, every


# ----------------------------------------------------------------------------- one job


def _blocks(values, every):
    """Means over consecutive blocks of ``every`` values (a last partial block is dropped)."""
    if every == 1:
        return [round_sig(v) for v in values]
    out = []
    for i in range(len(values) // every):
        chunk = [
            v
            for v in values[i * every : (i + 1) * every]
            if v is not None and math.isfinite(v)
        ]
        out.append(round_sig(sum(chunk) / len(chunk)) if chunk else None)
    return out


def _epoch_mean(values, epoch_end, which):
    if not epoch_end:
        return None
    lo = 0 if which == 0 else (epoch_end[-2] if len(epoch_end) > 1 else 0)
    hi = epoch_end[0] if which == 0 else epoch_end[-1]
    chunk = values[lo:hi]
    return round_sig(sum(chunk) / len(chunk)) if chunk else None


def compact(result, every=1):
    """A :func:`run_toy` result as a small JSON-ready record (no weights, rounded floats)."""
    h = result["history"]
    record = {
        "seed": result["config"]["seed"],
        "final": {k: round_sig(v) for k, v in result["final"].items()},
        "summary": {
            "iterations": len(h["loss"]),
            "loss_first_epoch": _epoch_mean(h["loss"], h["epoch_end"], 0),
            "loss_last_epoch": _epoch_mean(h["loss"], h["epoch_end"], -1),
            "nfe_forward_first_epoch": _epoch_mean(
                h["nfe_forward"], h["epoch_end"], 0
            ),
            "nfe_forward_last_epoch": _epoch_mean(
                h["nfe_forward"], h["epoch_end"], -1
            ),
            "nfe_backward_last_epoch": _epoch_mean(
                h["nfe_backward"], h["epoch_end"], -1
            ),
            "nfe_forward_max": max(h["nfe_forward"])
            if h["nfe_forward"]
            else None,
        },
        "history": {k: _blocks(h[k], every) for k in SERIES},
    }
    record["history"].update(
        epoch_end=h["epoch_end"],
        val_loss=[round_sig(v) for v in h["val_loss"]],
        val_accuracy=[round_sig(v) for v in h["val_accuracy"]],
        error=h["error"],
    )
    return record


def compute(cfg):
    """Train one (config, seed): the unit of work. Module level so workers can run it."""
    return run_toy(cfg)


def _job(job):
    name, cfg, every, part = job
    record = dict(
        compact(compute(cfg), every),
        experiment=name,
        record_every=every,
        config={k: v for k, v in cfg.items() if k != "seed"},
    )
    write_json(
        part, record
    )  # persisted as soon as it finishes, whatever happens to the others
    return record


# ----------------------------------------------------------------------------- the command


def _same_config(stored, cfg):
    """Equal once both are filled in with today's defaults (a field added to DEFAULTS since a
    run was stored does not invalidate it; a changed value does)."""
    from .experiments import DEFAULTS

    return dict(DEFAULTS, **stored, seed=None) == dict(
        DEFAULTS, **cfg, seed=None
    )


def _config_diff(stored, cfg):
    """'lr: 0.001 stored, 0.002 now; ...' for the fields where two configs differ."""
    from .experiments import DEFAULTS

    a, b = (
        dict(DEFAULTS, **stored, seed=None),
        dict(DEFAULTS, **cfg, seed=None),
    )
    return "; ".join(
        f"{k}: {a.get(k)!r} stored, {b.get(k)!r} now"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    )


def _part_path(partial_dir, name, seed):
    return partial_dir / f"{name}__seed{seed}.json"


def _check_part(rec):
    """A partial record (one finished job) as :func:`_job` writes it."""
    if (
        not isinstance(rec, dict)
        or not isinstance(rec.get("experiment"), str)
        or not isinstance(rec.get("config"), dict)
        or not isinstance(rec.get("record_every"), int)
    ):
        raise ValueError(
            "not a partial run record (experiment, config, record_every, seed, ...)"
        )
    check_run(rec, "partial record")
    return rec


@dataclasses.dataclass
class Plan:
    """What :func:`execute` will do; made by :func:`prepare`, which checks everything first."""

    spec: dict
    config_file: str
    experiments: list  # [(name, config without seed)]
    every: int
    seeds: list
    out: pathlib.Path
    partial_dir: pathlib.Path
    previous: dict  # the results already in out, or None
    done: dict  # (name, seed) -> finished run record, reused
    jobs: list  # (name, config with seed, every, partial path)
    discard: list  # damaged or stale partial files, removed before running


def prepare(spec, out, seeds):
    """Check the config, each experiment's data, ``out`` and ``<out>.partial/``; decide which
    (experiment, seed) runs to compute and which to reuse. Nothing is written. Raises a
    ValueError that names the experiment, field or file and says what to do."""
    config_file = None if isinstance(spec, dict) else str(spec)
    spec = _read_spec(spec)
    experiments, every = load_spec(spec)
    seeds = sorted({check_nonneg_int("seed", s) for s in seeds})
    if not seeds:
        raise ValueError("seeds must name at least one non-negative seed")
    for (
        name,
        cfg,
    ) in (
        experiments
    ):  # data-dependent checks (a val_slice that selects no points)
        try:
            make_data(cfg)
        except ValueError as err:
            raise ValueError(f"experiment {name!r}: {err}") from None
    out = pathlib.Path(out)
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a directory; pass a file path, e.g. {out / 'results.json'}"
        )
    partial_dir = out.with_name(out.name + ".partial")
    if partial_dir.exists() and not partial_dir.is_dir():
        raise ValueError(
            f"{partial_dir} is a file, but this command keeps finished runs in a "
            f"directory of that name: move it away, or pass another --out"
        )

    previous, done = None, {}
    if out.exists():
        advice = (
            "delete it (its runs are then recomputed), or pass another --out"
        )
        previous = check_results(read_json(out, advice), out, advice)
        stored_every = previous.get("record_every", 1)
        if stored_every != every:
            raise ValueError(
                f"--out {out} holds series recorded with record_every={stored_every}, "
                f"this config asks for {every}; one file holds one record_every: use "
                f"{stored_every}, or pass another --out"
            )
        for name, cfg in experiments:
            stored = previous["experiments"].get(name)
            if stored is not None and not _same_config(stored["config"], cfg):
                raise ValueError(
                    f"experiment {name!r} in {out} was run with another config "
                    f"({_config_diff(stored['config'], cfg)}); its stored seeds would be mixed with "
                    f"new ones: pass another --out, rename the experiment, or delete {out} to start over"
                )
        for name, exp in previous["experiments"].items():
            for run in exp["runs"]:
                done[(name, run["seed"])] = dict(
                    run,
                    experiment=name,
                    config=exp["config"],
                    record_every=stored_every,
                )

    wanted, discard = dict(experiments), []
    for part in (
        sorted(partial_dir.glob("*.json")) if partial_dir.is_dir() else []
    ):
        try:
            rec = _check_part(read_json(part, "it will be recomputed"))
        except ValueError as err:
            warnings.warn(
                f"damaged partial result {part} ({err}): recomputing it",
                RuntimeWarning,
            )
            discard.append(part)
            continue
        name = rec["experiment"]
        if (
            name in wanted
            and _same_config(rec["config"], wanted[name])
            and rec["record_every"] == every
        ):
            done[(name, rec["seed"])] = rec
        else:
            warnings.warn(
                f"partial result {part} was made with another config or record_every: "
                f"discarding it",
                RuntimeWarning,
            )
            discard.append(part)

    jobs = [
        (
            name,
            dict(cfg, seed=seed),
            every,
            str(_part_path(partial_dir, name, seed)),
        )
        for name, cfg in experiments
        for seed in seeds
        if (name, seed) not in done
    ]
    return Plan(
        spec,
        config_file,
        experiments,
        every,
        seeds,
        out,
        partial_dir,
        previous,
        done,
        jobs,
        discard,
    )


def _watch(paths, total, done, stop):
    from tqdm import tqdm

    bar = tqdm(
        total=total, initial=done, desc="toy runs", unit="run", file=sys.stderr
    )
    while not stop.wait(1.0):
        bar.update(max(0, done + sum(p.exists() for p in paths) - bar.n))
    bar.update(max(0, done + sum(p.exists() for p in paths) - bar.n))
    bar.close()


def _clean_partial_dir(partial_dir):
    """Remove finished-run and temporary files, then the directory; files this command did not
    write are left there with a warning instead of failing the run."""
    if not partial_dir.is_dir():
        return
    for pattern in ("*.json", "*.tmp"):
        for f in partial_dir.glob(pattern):
            f.unlink(missing_ok=True)
    try:
        partial_dir.rmdir()
    except OSError:
        left = sorted(f.name for f in partial_dir.iterdir())
        warnings.warn(
            f"left {partial_dir} in place: it holds files this command did not write "
            f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})",
            RuntimeWarning,
        )


def execute(plan, processes=None, progress=False, argv=None):
    """Run the jobs of a :func:`prepare` plan, merge them with the reused runs and the other
    experiments and seeds already in ``out``, write ``out``. Returns the results dict."""
    for part in plan.discard:
        part.unlink(missing_ok=True)
    jobs, reused = (
        plan.jobs,
        len(plan.experiments) * len(plan.seeds) - len(plan.jobs),
    )
    plan.partial_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        print(
            f"{len(jobs)} run(s) to compute, {reused} reused from an earlier run",
            file=sys.stderr,
        )

    stop = threading.Event()
    watcher = None
    if progress and jobs:
        paths = [pathlib.Path(job[3]) for job in jobs]
        watcher = threading.Thread(
            target=_watch,
            args=(paths, len(jobs) + reused, reused, stop),
            daemon=True,
        )
        watcher.start()
    start = time.time()
    try:
        records = run_parallel(_job, jobs, processes=processes)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    wall = time.time() - start

    done = dict(plan.done)
    done.update(((r["experiment"], r["seed"]), r) for r in records)
    experiments = {}
    for name, cfg in plan.experiments:
        runs = sorted(
            (rec for (n, _), rec in done.items() if n == name),
            key=lambda r: r["seed"],
        )
        experiments[name] = {
            "config": cfg,
            "runs": [
                {
                    k: v
                    for k, v in rec.items()
                    if k not in ("experiment", "config", "record_every")
                }
                for rec in runs
            ],
        }
    kept = []
    if (
        plan.previous is not None
    ):  # experiments of an earlier config stay in the file
        for name, exp in plan.previous["experiments"].items():
            if name not in experiments:
                experiments[name] = exp
                kept.append(name)
    if kept:
        warnings.warn(
            f"{plan.out} keeps experiment(s) {', '.join(map(repr, kept))} from an earlier "
            f"run: they are not in this config",
            RuntimeWarning,
        )
    seeds = sorted(
        {run["seed"] for exp in experiments.values() for run in exp["runs"]}
    )

    results = {
        "format": FORMAT,
        "provenance": provenance(argv),
        "description": plan.spec.get("description", ""),
        "config_file": plan.config_file,
        "seeds": seeds,
        "record_every": plan.every,
        "series_note": (
            "per-iteration series (loss, nfe_forward, nfe_backward, accuracy) are "
            + (
                "stored for every iteration"
                if plan.every == 1
                else f"means over consecutive blocks of {plan.every} iterations (entry i covers "
                f"iterations {plan.every}*i+1 .. {plan.every}*(i+1), 0-based i; a last partial block is dropped)"
            )
            + "; val_loss/val_accuracy are per epoch; floats rounded to 5 significant digits"
        ),
        "compute": {
            "jobs_computed": len(jobs),
            "jobs_reused": reused,
            "processes": min(
                processes or default_processes(), max(1, len(jobs))
            ),
            "wall_s_this_invocation": round(wall, 1),
        },
        "experiments": experiments,
    }
    if (
        plan.previous is not None
    ):  # runs kept from earlier invocations: say where they came from
        earlier = list(plan.previous.get("previous_provenance", [])) + [
            plan.previous.get("provenance")
        ]
        results["previous_provenance"] = [
            p for i, p in enumerate(earlier) if p and p not in earlier[:i]
        ]
    write_results(plan.out, results)
    _clean_partial_dir(plan.partial_dir)
    return results


def run_config(spec, out, seeds, processes=None, progress=False, argv=None):
    """Run every (experiment, seed) of ``spec`` not already done; write ``out`` (merged with
    the runs it already holds). Returns the results dict. See :func:`prepare` for the checks."""
    return execute(prepare(spec, out, seeds), processes, progress, argv)


def run(args):
    try:
        seeds = parse_seeds(args.seeds)
        if args.processes is not None and args.processes < 1:
            raise ValueError(f"--processes must be >= 1; got {args.processes}")
        plan = prepare(
            args.config, args.out, seeds
        )  # fail before any work, with the field named
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    results = execute(
        plan,
        args.processes,
        args.progress,
        argv=["python -m anode_utils", "toy", *sys_argv_tail(args)],
    )
    if args.progress:
        c = results["compute"]
        print(
            f"wrote {args.out}: {c['jobs_computed']} computed, {c['jobs_reused']} reused, "
            f"{c['wall_s_this_invocation']} s",
            file=sys.stderr,
        )
    return 0


def sys_argv_tail(args):
    """The command's arguments as they would be typed (for provenance)."""
    tail = [
        "--config",
        str(args.config),
        "--out",
        str(args.out),
        "--seeds",
        str(args.seeds),
    ]
    if args.processes is not None:
        tail += ["--processes", str(args.processes)]
    return tail
