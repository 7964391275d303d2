"""Reading the results files of ``python -m anode_utils toy`` (the chapters' stored runs):
the file's structure checked, then per-experiment series, final metrics and summaries."""

from .resources import results_path
from .results_io import read_json
from .training import History

FORMAT = "anode_utils.toy-results/1"


def check_run(run, where):
    """A stored run record must hold an integer seed and the final/summary/history objects."""
    if (
        not isinstance(run, dict)
        or isinstance(run.get("seed"), bool)
        or not isinstance(run.get("seed"), int)
    ):
        raise ValueError(f"{where}: a run without an integer 'seed'")
    for key in ("final", "summary", "history"):
        if not isinstance(run.get(key), dict):
            raise ValueError(
                f"{where}: run of seed {run['seed']} has no {key!r} object"
            )


def check_results(res, path, advice):
    """The structure of a toy results file; a ValueError naming ``path`` if it is damaged."""
    try:
        if not isinstance(res, dict) or res.get("format") != FORMAT:
            fmt = res.get("format") if isinstance(res, dict) else None
            raise ValueError(
                f"{path} is not a toy results file (format {fmt!r})"
            )
        if not isinstance(res.get("experiments"), dict):
            raise ValueError(f"{path} has no 'experiments' object")
        for name, exp in res["experiments"].items():
            if (
                not isinstance(exp, dict)
                or not isinstance(exp.get("config"), dict)
                or not isinstance(exp.get("runs"), list)
            ):
                raise ValueError(
                    f"{path}: experiment {name!r} needs a 'config' object and a 'runs' list"
                )
            for run in exp["runs"]:
                check_run(run, f"{path}: experiment {name!r}")
    except ValueError as err:
        raise ValueError(
            f"{err}; the file is damaged or not a results file: {advice}"
        ) from None
    return res


def load_results(path):
    """A results file written by ``python -m anode_utils toy``: a path, or the name of a file
    shipped with the package (``'annulus_d1'``, ``'annulus_d2'``, ``'generalization'``; see
    :func:`anode_utils.resources.results_path`)."""
    path = results_path(path)
    advice = (
        "rerun the command that wrote it (see the book's appendix 'Command line and results "
        "files', book/reference.md), or pass another path"
    )
    return check_results(read_json(path, advice), path, advice)


def _runs(results, name):
    if not isinstance(results, dict) or not isinstance(
        results.get("experiments"), dict
    ):
        raise ValueError(
            f"results must be a toy results file's contents (au.load_results(...)), "
            f"a dict with 'experiments'; got {type(results).__name__}"
        )
    if name not in results["experiments"]:
        raise KeyError(
            f"no experiment {name!r}; the file holds {sorted(results['experiments'])}"
        )
    return results["experiments"][name]["runs"]


def result_histories(results, name):
    """History objects (series as stored: block means of ``results['record_every']`` iterations)."""
    return [History.from_dict(r["history"]) for r in _runs(results, name)]


def result_finals(results, name, key="train_loss"):
    """The final metric ``key`` of every seed of one experiment."""
    return [r["final"].get(key) for r in _runs(results, name)]


def result_summaries(results, name, key):
    """A per-seed summary value (e.g. ``'nfe_forward_last_epoch'``) of every seed."""
    return [r["summary"].get(key) for r in _runs(results, name)]


def result_nfe_ratios(results, name):
    """Per-seed forward NFE growth of one experiment: last-epoch mean / first-epoch mean
    (the results-file counterpart of :meth:`History.nfe_ratio`)."""
    last = result_summaries(results, name, "nfe_forward_last_epoch")
    first = result_summaries(results, name, "nfe_forward_first_epoch")
    return [a / b for a, b in zip(last, first)]
