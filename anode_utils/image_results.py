"""Results files of ``python -m anode_utils images``: one versioned format, written while
training (atomically, under a lock, so several processes can fill one file with their seeds),
and read back by name or path.

A file holds the runs (one per seed) of ONE experiment: one model on one data set with one
set of numerics. Layout (JSON)::

    format          "anode_utils.image-results/1"
    experiment      the options every run shares: dataset, model, filters, augment_dim,
                    time_dependent, img_size, subset, test_subset, batch_size, lr,
                    weight_decay, method, tol, step_size, adjoint, max_num_steps, tf32
    num_parameters  of the model
    provenance      of the latest write (command, versions incl. torchdiffeq/CUDA/cuDNN,
                    hardware, GPU, TF32/matmul precision settings, date)
    runs            sorted by seed; each:
        seed, status ("running", "complete", "stopped", "failed"),
        stopped_by (null, "max_iters", "max_seconds" or "error"),
        iterations, epochs_completed, num_parameters, train_seconds,
        history: loss, nfe_forward, nfe_backward, accuracy (training batch) per iteration;
                 epoch_end (iteration count at each epoch's end); error (null or message)
        test_accuracy_per_epoch, test_loss_per_epoch: after each completed epoch
        test_accuracy, test_loss: when training stopped (null while running)
        config: the full command-line configuration of the invocation that wrote the run
        world_size, device, provenance: of that invocation
        cuda_max_memory_gib: peak GPU memory allocated by this process (null on the CPU)

Floats are rounded to 5 significant digits. A file may hold runs of different lengths (a
wall-clock budget stops some early): ``status``/``stopped_by`` say which.
"""

import contextlib
import hashlib
import pathlib
import tempfile

from .provenance import provenance
from .results_io import read_json, round_sig, write_results
from .training import SERIES  # noqa: F401  (image_results.SERIES: the series a run stores)

FORMAT = "anode_utils.image-results/1"
#: Options that change the model or the numerics: a checkpoint resumes only with the same.
CHECKPOINT_KEYS = (
    "dataset",
    "model",
    "filters",
    "augment_dim",
    "time_dependent",
    "img_size",
    "subset",
    "batch_size",
    "lr",
    "weight_decay",
    "method",
    "tol",
    "step_size",
    "adjoint",
    "max_num_steps",
    "tf32",
)
#: Options every run of one results file shares (the test set too: accuracies must compare).
EXPERIMENT_KEYS = CHECKPOINT_KEYS + ("test_subset",)


def option(key):
    """'augment_dim' -> '--augment-dim'."""
    return "--" + key.replace("_", "-")


def experiment_of(config):
    """The :data:`EXPERIMENT_KEYS` part of a configuration dict."""
    return {k: config.get(k) for k in EXPERIMENT_KEYS}


def differences(old, new, keys):
    """[(key, old value, new value)] for the keys where two configurations differ."""
    return [
        (k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)
    ]


def describe(diffs):
    return "; ".join(
        f"{option(k)} {a!r} there, {b!r} now" for k, a, b in diffs
    )


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock for ``path`` held by this process (POSIX; a no-op elsewhere). The
    lock file lives in the temp folder, so results folders stay clean."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    key = hashlib.md5(str(pathlib.Path(path).resolve()).encode()).hexdigest()[
        :16
    ]
    with open(
        pathlib.Path(tempfile.gettempdir()) / f"anode_utils-{key}.lock", "w"
    ) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_existing(path, experiment):
    """The results file at ``path`` if it can take runs of ``experiment``; None if there is no
    file. Raises ValueError naming the file when it is not an image results file or holds
    another experiment (then nothing in it is ever overwritten)."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    try:
        res = read_json(path)
    except (ValueError, OSError) as err:
        raise ValueError(
            f"--out {path} exists but is not readable JSON ({err}); move it away or "
            f"pass another --out"
        ) from None
    if not isinstance(res, dict) or res.get("format") != FORMAT:
        found = res.get("format") if isinstance(res, dict) else None
        raise ValueError(
            f"--out {path} exists and is not an image results file (format {found!r}, "
            f"expected {FORMAT!r}); it is left alone: pass another --out"
        )
    diffs = differences(res["experiment"], experiment, EXPERIMENT_KEYS)
    if diffs:
        raise ValueError(
            f"--out {path} holds runs (seeds {seeds_in(res)}) of another experiment "
            f"({describe(diffs)}); they are left alone: pass another --out, or the "
            f"same options to add seeds to it"
        )
    return res


def seeds_in(results):
    return [r["seed"] for r in results.get("runs", [])]


def write_run(path, experiment, run, num_parameters, argv=None):
    """Insert or replace (same seed) one run in the results file at ``path``, atomically and
    under a lock: runs of other seeds already there are kept. Returns the file's content."""
    path = pathlib.Path(path)
    with _locked(path):
        res = read_existing(path, experiment) or {
            "format": FORMAT,
            "experiment": experiment,
            "runs": [],
        }
        runs = [r for r in res["runs"] if r["seed"] != run["seed"]] + [
            round_sig(run)
        ]
        res = {
            "format": FORMAT,
            "experiment": experiment,
            "num_parameters": num_parameters,
            "provenance": round_sig(run.get("provenance") or provenance(argv)),
            "runs": sorted(runs, key=lambda r: r["seed"]),
        }
        write_results(path, res)
    return res


def load_image_results(name):
    """An image results file: a path, or the name of a file shipped in
    ``anode_utils/results/images/`` (``'mnist_node'`` or ``'images/mnist_node'``; see
    :func:`anode_utils.resources.results_path`). Raises ValueError for another format."""
    from .resources import available_results, results_path

    p = pathlib.Path(name)
    if p.suffix == ".json":
        if not p.is_file():
            raise FileNotFoundError(f"no image results file at {p}")
        path = p
    else:
        name = (
            p.as_posix()
            if p.parts and p.parts[0] == "images"
            else f"images/{p.as_posix()}"
        )
        try:
            path = results_path(name)
        except FileNotFoundError:
            shipped = ", ".join(available_results("images")) or "none yet"
            raise FileNotFoundError(
                f"no results file {name!r} in the package (shipped image results: "
                f"{shipped}); pass the path of a .json file instead"
            ) from None
    res = read_json(path)
    if not isinstance(res, dict) or res.get("format") != FORMAT:
        found = res.get("format") if isinstance(res, dict) else None
        raise ValueError(
            f"{path} is not an image results file (format {found!r}, expected {FORMAT!r})"
        )
    return res


def _check_results(results):
    if not isinstance(results, dict) or not isinstance(
        results.get("runs"), list
    ):
        raise ValueError(
            f"results must be an image results file's contents "
            f"(au.load_image_results(...)), a dict with 'runs'; got "
            f"{type(results).__name__}"
        )


def image_histories(results, complete_only=False):
    """One :class:`~anode_utils.training.History` per run (per-epoch test metrics as val_*)."""
    from .training import History

    _check_results(results)
    out = []
    for r in results["runs"]:
        if complete_only and r["status"] != "complete":
            continue
        h = dict(
            r["history"],
            val_loss=r.get("test_loss_per_epoch", []),
            val_accuracy=r.get("test_accuracy_per_epoch", []),
        )
        out.append(History.from_dict(h))
    return out


def summary(results):
    """Per run: seed, status, iterations, epochs, final test accuracy, mean forward NFE over
    the last completed epoch (or over all iterations when no epoch completed)."""
    rows = []
    for r, h in zip(results["runs"], image_histories(results)):
        means = h.epoch_means("nfe_forward")
        nfe = (
            means[-1]
            if means
            else (sum(h.nfe_forward) / len(h) if len(h) else None)
        )
        rows.append(
            {
                "seed": r["seed"],
                "status": r["status"],
                "iterations": r["iterations"],
                "epochs_completed": r["epochs_completed"],
                "test_accuracy": r["test_accuracy"],
                "nfe_forward_last_epoch": nfe,
            }
        )
    return rows


def seed_metrics(results):
    """Per complete run, by seed: ``loss`` and ``nfe`` (training loss and forward NFE averaged
    over the last epoch's iterations, single batches being noisy) and ``test_accuracy`` (after
    the last epoch). Runs stopped early or failed are left out."""
    out = {}
    for r, h in zip(results["runs"], image_histories(results)):
        if r["status"] != "complete" or not h.epoch_end:
            continue
        out[r["seed"]] = {
            "loss": h.epoch_means("loss")[-1],
            "nfe": h.epoch_means("nfe_forward")[-1],
            "test_accuracy": r["test_accuracy"],
        }
    return out


#: The paper's Section 5.2 claims (Figs 10-11, Table 1), each a comparison of NODE and ANODE
#: in one metric of :func:`seed_metrics`: (metric, claim, direction the ANODE should move it).
SECTION_52_CLAIMS = (
    ("nfe", "ANODE needs fewer function evaluations than the NODE", "lower"),
    ("loss", "ANODE reaches a lower training loss than the NODE", "lower"),
    (
        "test_accuracy",
        "ANODE reaches a higher test accuracy than the NODE",
        "higher",
    ),
)
_METRIC_WORDS = {
    "nfe": "forward NFE (last-epoch mean)",
    "loss": "training loss (last-epoch mean)",
    "test_accuracy": "test accuracy",
}


def section52_claims(node, anode, k=2.0):
    """The three Section 5.2 claims tested on a NODE and an ANODE results file with the book's
    comparison rule (:func:`anode_utils.stats.clearly_below`: the seed means differ in the
    claimed direction by more than ``k`` standard errors). Returns one dict per claim:
    ``metric``, ``claim``, ``test``, ``node`` and ``anode`` (per-seed values, seeds in order),
    ``ok``, ``count`` (seeds run with both models where the ANODE is on the claimed side) and
    ``seeds``. Needs at least two complete runs of each model."""
    from .stats import clearly_below

    m_node, m_anode = seed_metrics(node), seed_metrics(anode)
    for name, m in (("NODE", m_node), ("ANODE", m_anode)):
        if len(m) < 2:
            raise ValueError(
                f"the {name} results hold {len(m)} complete run(s); comparing means "
                f"over seeds needs at least two"
            )
    both = sorted(set(m_node) & set(m_anode))
    rows = []
    for metric, claim, direction in SECTION_52_CLAIMS:
        a = [m_anode[s][metric] for s in sorted(m_anode)]
        n = [m_node[s][metric] for s in sorted(m_node)]
        ok = (
            clearly_below(a, n, k)
            if direction == "lower"
            else clearly_below(n, a, k)
        )
        side = (
            (lambda s: m_anode[s][metric] < m_node[s][metric])
            if direction == "lower"
            else (lambda s: m_anode[s][metric] > m_node[s][metric])
        )
        rows.append(
            {
                "metric": metric,
                "claim": claim,
                "test": f"{_METRIC_WORDS[metric]}: ANODE {direction} than NODE by more than "
                f"{k:g} standard errors of the difference of seed means",
                "node": n,
                "anode": a,
                "ok": ok,
                "count": sum(map(side, both)),
                "seeds": len(both),
            }
        )
    return rows


# ----------------------------------------------------------------------------- the 14x14 design

#: Chapter 7's design (issue 22), fixed before the runs: 14x14 MNIST, 10,000 training images,
#: the full test set, 10 epochs, batch 128, seeds 0-2. Results files shipped by name.
DESIGN = {
    "a": {
        "title": "(a) 32 filters, p = 5 against p = 0 (the paper's Fig. 10)",
        "NODE": "mnist14_node32",
        "ANODE": "mnist14_anode32_p5",
    },
    "b": {
        "title": "(b) matched pair, 32 filters + p = 2 against a 38-filter NODE",
        "NODE": "mnist14_node38",
        "ANODE": "mnist14_anode32_p2",
    },
}
#: (c) the readout-only baseline: the same linear readout on the raw pixels (T = 0, NFE 0).
DESIGN_BASELINE = "mnist14_readout"
#: Read-outs fixed in advance: the training-loss level (moving average over WINDOW
#: iterations) at which "iterations to reach it" and "NFE at equal loss" are read.
LOSS_LEVEL = 0.5
WINDOW = 20
#: dopri5's floor in these runs: 2 + 6 * 3 evaluations (three steps, none rejected).
NFE_FLOOR = 20
FLOOR_REASON = (
    f"both models' median NFE stays at the solver's floor of {NFE_FLOOR} "
    f"(three dopri5 steps)"
)
BASELINE_REASON = (
    "the two ODE models do not both clearly beat the readout-only baseline in "
    "test accuracy"
)
UNREACHED_REASON = "a seed never reached the loss level"


def _trailing_means(values, window):
    """Means of the full trailing windows: entry i is the mean of iterations i-window+2 .. i+1
    (1-based), for i >= window - 1 (earlier entries would mix in too few iterations)."""
    v = [float(x) for x in values]
    out, total = [], sum(v[: window - 1])
    for i in range(window - 1, len(v)):
        total += v[i]
        out.append(total / window)
        total -= v[i - window + 1]
    return out


def iterations_to_loss(results, level=LOSS_LEVEL, window=WINDOW):
    """Per complete run, by seed: the first iteration at which the training loss, averaged over
    the last ``window`` iterations, is at or below ``level`` (None if it never is)."""
    from ._checks import check_pos_int, check_positive

    check_positive("level", level)
    check_pos_int("window", window)
    _check_results(results)
    out = {}
    for r, h in zip(results["runs"], image_histories(results)):
        if r["status"] != "complete":
            continue
        means = _trailing_means(h.loss, window)
        out[r["seed"]] = next(
            (i + window for i, m in enumerate(means) if m <= level), None
        )
    return out


def nfe_at_loss(results, level=LOSS_LEVEL, window=WINDOW):
    """Per complete run, by seed: the forward NFE (mean over the same ``window`` iterations) at
    the iteration :func:`iterations_to_loss` finds (None if the loss never reaches ``level``):
    the paper's "NFE at equal training loss" (its Fig. 10, right)."""
    at = iterations_to_loss(results, level, window)
    out = {}
    for r, h in zip(results["runs"], image_histories(results)):
        if r["seed"] in at:
            i = at[r["seed"]]
            out[r["seed"]] = (
                None
                if i is None
                else sum(h.nfe_forward[i - window : i]) / window
            )
    return out


def design_readouts(node, anode, level=LOSS_LEVEL, window=WINDOW):
    """The four read-outs of chapter 7's design for a NODE and an ANODE results file: dicts
    ``{"NODE": per-seed list, "ANODE": per-seed list}`` (seeds in order) under ``iterations``
    (to reach ``level``), ``nfe_at_loss``, ``nfe_last_epoch`` and ``test_accuracy``."""
    out = {}
    for key, fn in (
        ("iterations", iterations_to_loss),
        ("nfe_at_loss", nfe_at_loss),
    ):
        out[key] = {
            m: [v for _, v in sorted(fn(res, level, window).items())]
            for m, res in (("NODE", node), ("ANODE", anode))
        }
    for key, metric in (
        ("nfe_last_epoch", "nfe"),
        ("test_accuracy", "test_accuracy"),
    ):
        out[key] = {
            m: [v[metric] for _, v in sorted(seed_metrics(res).items())]
            for m, res in (("NODE", node), ("ANODE", anode))
        }
    return out


def _median(v):
    s = sorted(v)
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) / 2


def baseline_verdicts(node, anode, baseline):
    """Two verdicts: each ODE model's test accuracy is higher than the readout-only baseline's
    (the condition every image verdict of its design needs)."""
    from .verdicts import compare

    base = [
        v["test_accuracy"] for _, v in sorted(seed_metrics(baseline).items())
    ]
    out = []
    for name, res in (("NODE", node), ("ANODE", anode)):
        e = res["experiment"]
        what = f"{name} ({e['filters']} filters, p = {e['augment_dim'] or 0})"
        acc = [
            v["test_accuracy"] for _, v in sorted(seed_metrics(res).items())
        ]
        out.append(
            compare(
                f"the {what} beats the readout-only baseline in test accuracy",
                acc,
                base,
                "higher",
                label=(name, "readout"),
            )
        )
    return out


def readout_verdicts(
    node, anode, baseline_ok=True, level=LOSS_LEVEL, window=WINDOW, prefix=""
):
    """The four pre-registered claims of chapter 7 for one NODE / ANODE pair, decided by the
    book's one rule (:mod:`anode_utils.verdicts`), in this order: the ANODE reaches training
    loss ``level`` in fewer iterations; needs fewer forward NFE at that loss; needs fewer
    forward NFE over the last epoch; reaches a higher test accuracy. Inconclusive, for the
    reasons named in advance, when ``baseline_ok`` is False (all four), when a seed never
    reaches ``level`` (the first two), or when both models' median NFE is at or below
    :data:`NFE_FLOOR` (the two NFE claims)."""
    from .verdicts import INCONCLUSIVE, Verdict, compare

    r = design_readouts(node, anode, level, window)
    gate = None if baseline_ok else BASELINE_REASON

    def unreached(key):
        return any(v is None for m in r[key].values() for v in m)

    def floor(key):
        return all(_median(m) <= NFE_FLOOR for m in r[key].values())

    specs = (
        (
            "iterations",
            f"the ANODE reaches training loss {level:g} in fewer iterations",
            "lower",
            lambda: UNREACHED_REASON if unreached("iterations") else None,
        ),
        (
            "nfe_at_loss",
            f"the ANODE needs fewer forward NFE at training loss {level:g}",
            "lower",
            lambda: (
                UNREACHED_REASON
                if unreached("nfe_at_loss")
                else FLOOR_REASON
                if floor("nfe_at_loss")
                else None
            ),
        ),
        (
            "nfe_last_epoch",
            "the ANODE needs fewer forward NFE over the last epoch",
            "lower",
            lambda: FLOOR_REASON if floor("nfe_last_epoch") else None,
        ),
        (
            "test_accuracy",
            "the ANODE reaches a higher test accuracy",
            "higher",
            lambda: None,
        ),
    )
    out = []
    for key, claim, direction, reason in specs:
        why = gate or reason()
        # seeds that never reached the level have no value (and the claim a reason already)
        a = [v for v in r[key]["ANODE"] if v is not None]
        b = [v for v in r[key]["NODE"] if v is not None]
        if not a or not b:
            out.append(
                Verdict(
                    prefix + claim,
                    INCONCLUSIVE,
                    why,
                    f"seeds at the level: ANODE {len(a)}, NODE {len(b)}",
                )
            )
            continue
        out.append(
            compare(
                prefix + claim,
                a,
                b,
                direction,
                cannot_decide=why,
                label=("ANODE", "NODE"),
            )
        )
    return out


def design_verdicts(include_baseline=False, level=LOSS_LEVEL, window=WINDOW):
    """Chapter 7's image verdicts from the shipped 14x14 results files (:data:`DESIGN`), the
    same for the chapter and the claims page: for design (a), then (b), the four claims of
    :func:`readout_verdicts`, prefixed "(a) " or "(b) ". A design's claims are inconclusive
    unless both its models beat the readout-only baseline (:func:`baseline_verdicts`);
    ``include_baseline`` puts those two verdicts before each design's four. Returns a list
    of :class:`anode_utils.verdicts.Verdict`."""
    baseline = load_image_results(DESIGN_BASELINE)
    out = []
    for key, d in DESIGN.items():
        node, anode = (
            load_image_results(d["NODE"]),
            load_image_results(d["ANODE"]),
        )
        gates = baseline_verdicts(node, anode, baseline)
        if include_baseline:
            out += gates
        out += readout_verdicts(
            node,
            anode,
            all(v.reproduced for v in gates),
            level,
            window,
            prefix=f"({key}) ",
        )
    return out


__all__ = [
    "CHECKPOINT_KEYS",
    "DESIGN",
    "DESIGN_BASELINE",
    "EXPERIMENT_KEYS",
    "FORMAT",
    "LOSS_LEVEL",
    "NFE_FLOOR",
    "SECTION_52_CLAIMS",
    "WINDOW",
    "baseline_verdicts",
    "design_readouts",
    "design_verdicts",
    "experiment_of",
    "image_histories",
    "iterations_to_loss",
    "load_image_results",
    "nfe_at_loss",
    "read_existing",
    "readout_verdicts",
    "section52_claims",
    "seed_metrics",
    "summary",
    "write_run",
]
