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
from ``--seeds``). Every experiment is validated before anything runs. Each finished
(experiment, seed) job is written at once, atomically, to ``<out>.partial/``; a rerun with the
same arguments reuses those (and the runs already in ``<out>``, when their config is the same)
and computes only what is missing. The results file holds, per experiment and seed, the
per-iteration series (block means over ``record_every`` iterations, rounded to 5 significant
digits), per-epoch validation metrics, a per-seed summary and the final metrics; no weights.
"""
import json
import math
import os
import pathlib
import re
import sys
import threading
import time

from .experiments import make_config, run_toy
from .parallel import default_processes, run_parallel
from .provenance import provenance, read_json, write_json

FORMAT = "anode_utils.toy-results/1"
SERIES = ("loss", "nfe_forward", "nfe_backward", "accuracy")


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="JSON file: base, experiments, record_every")
    parser.add_argument("--out", required=True, help="results JSON file to write")
    parser.add_argument("--seeds", default="0-19", help="seeds, e.g. '0-19' or '0,3,5-7' (default 0-19)")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")


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
        raise ValueError(f"--seeds must look like '0-19' or '0,2,5-7' (non-negative integers); "
                         f"got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds must name at least one non-negative seed; got {text!r}")
    return sorted(seeds)


def load_spec(spec):
    """Validate a config (dict, or path to JSON) and return (experiments, record_every).

    experiments: list of (name, full config without seed). Raises ValueError naming the
    experiment and the offending field.
    """
    if not isinstance(spec, dict):
        path = pathlib.Path(spec)
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from None
        if not isinstance(spec, dict):
            raise ValueError(f"config file {path} must hold a JSON object")
    unknown = sorted(set(spec) - {"description", "base", "experiments", "record_every"})
    if unknown:
        raise ValueError(f"unknown top-level key(s) {', '.join(map(repr, unknown))} in the config; "
                         f"allowed: 'description', 'base', 'experiments', 'record_every'")
    base = spec.get("base", {})
    if not isinstance(base, dict):
        raise ValueError("'base' must be an object of make_config fields")
    every = spec.get("record_every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"'record_every' must be a positive integer; got {every!r}")
    exps = spec.get("experiments")
    if not isinstance(exps, list) or not exps:
        raise ValueError("'experiments' must be a non-empty list of {\"name\": ..., \"config\": {...}}")
    out, names = [], set()
    for i, exp in enumerate(exps):
        where = f"experiments[{i}]"
        if not isinstance(exp, dict) or set(exp) - {"name", "config"} or "name" not in exp:
            raise ValueError(f"{where} must be an object with keys 'name' and 'config' only; got {exp!r}")
        name = exp["name"]
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(f"{where}: 'name' must be a unique non-empty string; got {name!r}")
        names.add(name)
        cfg = dict(base, **exp.get("config", {}))
        if "seed" in cfg:
            raise ValueError(f"experiment {name!r}: do not set 'seed' in the config; use --seeds")
        try:
            cfg = make_config(**cfg)
        except (ValueError, TypeError) as err:
            raise ValueError(f"experiment {name!r}: {err}") from None
        cfg.pop("seed")
        out.append((name, cfg))
    return out, every


# ----------------------------------------------------------------------------- one job

def _sig(x, digits=5):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    return float(f"{x:.{digits}g}")


def _blocks(values, every):
    """Means over consecutive blocks of ``every`` values (a last partial block is dropped)."""
    if every == 1:
        return [_sig(v) for v in values]
    out = []
    for i in range(len(values) // every):
        chunk = [v for v in values[i * every:(i + 1) * every] if v is not None and math.isfinite(v)]
        out.append(_sig(sum(chunk) / len(chunk)) if chunk else None)
    return out


def _epoch_mean(values, epoch_end, which):
    if not epoch_end:
        return None
    lo = 0 if which == 0 else (epoch_end[-2] if len(epoch_end) > 1 else 0)
    hi = epoch_end[0] if which == 0 else epoch_end[-1]
    chunk = values[lo:hi]
    return _sig(sum(chunk) / len(chunk)) if chunk else None


def compact(result, every=1):
    """A :func:`run_toy` result as a small JSON-ready record (no weights, rounded floats)."""
    h = result["history"]
    record = {
        "seed": result["config"]["seed"],
        "final": {k: _sig(v) for k, v in result["final"].items()},
        "summary": {
            "iterations": len(h["loss"]),
            "loss_first_epoch": _epoch_mean(h["loss"], h["epoch_end"], 0),
            "loss_last_epoch": _epoch_mean(h["loss"], h["epoch_end"], -1),
            "nfe_forward_first_epoch": _epoch_mean(h["nfe_forward"], h["epoch_end"], 0),
            "nfe_forward_last_epoch": _epoch_mean(h["nfe_forward"], h["epoch_end"], -1),
            "nfe_backward_last_epoch": _epoch_mean(h["nfe_backward"], h["epoch_end"], -1),
            "nfe_forward_max": max(h["nfe_forward"]) if h["nfe_forward"] else None,
        },
        "history": {k: _blocks(h[k], every) for k in SERIES},
    }
    record["history"].update(epoch_end=h["epoch_end"], val_loss=[_sig(v) for v in h["val_loss"]],
                             val_accuracy=[_sig(v) for v in h["val_accuracy"]], error=h["error"])
    return record


def compute(cfg):
    """Train one (config, seed): the unit of work. Module level so workers can run it."""
    return run_toy(cfg)


def _job(job):
    name, cfg, every, part = job
    record = dict(compact(compute(cfg), every), experiment=name, record_every=every,
                  config={k: v for k, v in cfg.items() if k != "seed"})
    write_json(part, record)  # persisted as soon as it finishes, whatever happens to the others
    return record


# ----------------------------------------------------------------------------- the command

def write_results(path, results):
    """Like :func:`write_json` (atomic), but each flat list on one line: a few times smaller."""
    text = json.dumps(results, indent=1)
    text = re.sub(r"\[([^\[\]{}\"]*)\]", lambda m: "[" + ",".join(v.strip() for v in m.group(1).split(",")) + "]"
                  if m.group(1).strip() else "[]", text)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def _same_config(stored, cfg):
    """Equal once both are filled in with today's defaults (a field added to DEFAULTS since a
    run was stored does not invalidate it; a changed value does)."""
    from .experiments import DEFAULTS
    return dict(DEFAULTS, **stored, seed=None) == dict(DEFAULTS, **cfg, seed=None)


def _part_path(partial_dir, name, seed):
    return partial_dir / f"{name}__seed{seed}.json"


def _watch(partial_dir, total, done, stop):
    from tqdm import tqdm
    bar = tqdm(total=total, initial=done, desc="toy runs", unit="run", file=sys.stderr)
    while not stop.wait(1.0):
        n = len(list(partial_dir.glob("*.json")))
        bar.update(max(0, n - bar.n))
    bar.update(max(0, len(list(partial_dir.glob("*.json"))) - bar.n))
    bar.close()


def run_config(spec, out, seeds, processes=None, progress=False, argv=None):
    """Run every (experiment, seed) of ``spec`` not already done; write ``out``. Returns the results dict."""
    experiments, every = load_spec(spec)
    seeds = [int(s) for s in seeds]
    out = pathlib.Path(out)
    partial_dir = out.with_name(out.name + ".partial")
    partial_dir.mkdir(parents=True, exist_ok=True)

    # what is already done: finished runs in the partial directory, then in an existing results file
    done = {}
    previous = read_json(out) if out.exists() else None
    if previous is not None and previous.get("format") == FORMAT:
        for name, exp in previous["experiments"].items():
            for rec in exp["runs"]:
                done[(name, rec["seed"])] = dict(rec, experiment=name, config=exp["config"],
                                                 record_every=previous.get("record_every", 1))
    for part in partial_dir.glob("*.json"):
        rec = read_json(part)
        done[(rec["experiment"], rec["seed"])] = rec

    jobs, reused = [], 0
    for name, cfg in experiments:
        for seed in seeds:
            rec = done.get((name, seed))
            if rec is not None and _same_config(rec["config"], cfg) and rec.get("record_every") == every:
                part = _part_path(partial_dir, name, seed)
                if not part.exists():
                    write_json(part, rec)
                reused += 1
            else:
                jobs.append((name, dict(cfg, seed=seed), every, str(_part_path(partial_dir, name, seed))))
    if progress:
        print(f"{len(jobs)} run(s) to compute, {reused} reused from an earlier run", file=sys.stderr)

    stop = threading.Event()
    watcher = None
    if progress and jobs:
        watcher = threading.Thread(target=_watch, args=(partial_dir, len(jobs) + reused, reused, stop),
                                   daemon=True)
        watcher.start()
    start = time.time()
    try:
        run_parallel(_job, jobs, processes=processes)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    wall = time.time() - start

    results = {
        "format": FORMAT,
        "provenance": provenance(argv),
        "description": spec.get("description", "") if isinstance(spec, dict) else
        read_json(spec).get("description", ""),
        "config_file": None if isinstance(spec, dict) else str(spec),
        "seeds": seeds,
        "record_every": every,
        "series_note": ("per-iteration series (loss, nfe_forward, nfe_backward, accuracy) are "
                        + ("stored for every iteration" if every == 1 else
                           f"means over consecutive blocks of {every} iterations (entry i covers "
                           f"iterations {every}*i+1 .. {every}*(i+1), 0-based i; a last partial block is dropped)")
                        + "; val_loss/val_accuracy are per epoch; floats rounded to 5 significant digits"),
        "compute": {"jobs_computed": len(jobs), "jobs_reused": reused,
                    "processes": min(processes or default_processes(), max(1, len(jobs))),
                    "wall_s_this_invocation": round(wall, 1)},
        "experiments": {},
    }
    for name, cfg in experiments:
        runs = []
        for seed in seeds:
            rec = read_json(_part_path(partial_dir, name, seed))
            runs.append({k: v for k, v in rec.items() if k not in ("experiment", "config", "record_every")})
        results["experiments"][name] = {"config": cfg, "runs": runs}
    write_results(out, results)
    for part in partial_dir.glob("*.json"):
        part.unlink()
    partial_dir.rmdir()
    return results


def run(args):
    try:
        seeds = parse_seeds(args.seeds)
        if args.processes is not None and args.processes < 1:
            raise ValueError(f"--processes must be >= 1; got {args.processes}")
        load_spec(args.config)  # fail before any work, with the field named
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    results = run_config(args.config, args.out, seeds, args.processes, args.progress,
                         argv=["python -m anode_utils", "toy", *sys_argv_tail(args)])
    if args.progress:
        c = results["compute"]
        print(f"wrote {args.out}: {c['jobs_computed']} computed, {c['jobs_reused']} reused, "
              f"{c['wall_s_this_invocation']} s", file=sys.stderr)
    return 0


def sys_argv_tail(args):
    """The command's arguments as they would be typed (for provenance)."""
    tail = ["--config", str(args.config), "--out", str(args.out), "--seeds", str(args.seeds)]
    if args.processes is not None:
        tail += ["--processes", str(args.processes)]
    return tail


# ----------------------------------------------------------------------------- reading results

def load_results(path):
    """A results file written by ``python -m anode_utils toy``: a path, or the name of a file
    shipped with the package (``'annulus_d1'``, ``'annulus_d2'``, ``'generalization'``; see
    :func:`anode_utils.resources.results_path`)."""
    from .resources import results_path
    path = results_path(path)
    res = read_json(path)
    if res.get("format") != FORMAT:
        raise ValueError(f"{path} is not a toy results file (format {res.get('format')!r})")
    return res


def result_histories(results, name):
    """History objects (series as stored: block means of ``results['record_every']`` iterations)."""
    from .training import History
    if name not in results["experiments"]:
        raise KeyError(f"no experiment {name!r}; the file holds {sorted(results['experiments'])}")
    return [History.from_dict(r["history"]) for r in results["experiments"][name]["runs"]]


def result_finals(results, name, key="train_loss"):
    """The final metric ``key`` of every seed of one experiment."""
    return [r["final"].get(key) for r in results["experiments"][name]["runs"]]


def result_summaries(results, name, key):
    """A per-seed summary value (e.g. ``'nfe_forward_last_epoch'``) of every seed."""
    return [r["summary"].get(key) for r in results["experiments"][name]["runs"]]


def result_nfe_ratios(results, name):
    """Per-seed forward NFE growth of one experiment: last-epoch mean / first-epoch mean
    (the results-file counterpart of :meth:`History.nfe_ratio`)."""
    last = result_summaries(results, name, "nfe_forward_last_epoch")
    first = result_summaries(results, name, "nfe_forward_first_epoch")
    return [a / b for a, b in zip(last, first)]
