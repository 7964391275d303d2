"""One toy experiment = one plain config dict; several seeds run in parallel processes.

A config names the task, the model and the training; :func:`run_toy` turns it into data,
a seeded model and a :class:`~anode_utils.training.History`. Plain dicts travel to worker
processes and into results files unchanged.
"""

import math

import torch

from ._checks import (
    check_bool,
    check_choice,
    check_interval,
    check_nonneg,
    check_nonneg_int,
    check_optional_positive,
    check_pos_int,
    check_positive,
    check_solver,
)
from .data import (
    angular_split,
    concentric_spheres,
    map_1d,
    separable_spheres,
    shifted_sines,
)
from .models import ODENet, ResNet
from .regularizers import RegularizedODENet
from .solvers import BACKEND_NAMES
from .training import History, evaluate, train
from .variants import LearnedAugmentODENet, SecondOrderODENet

TASKS = ("g1d", "identity", "spheres", "separable", "sines")
MODELS = ("node", "anode", "resnet", "learned_anode", "second_order")

#: The standard annulus configuration (the authors' toy set-up, one seed; 12 epochs for the
#: chapters' live runs, 30 in the stored paper-scale runs).
DEFAULTS = dict(
    task="spheres",
    dim=2,
    num_inner=500,
    num_outer=1500,
    r1=0.5,
    r2=1.0,
    r3=1.5,
    num_points=100,  # g1d / identity only
    num_per_curve=1500,
    shift=1.4,
    noise=0.1,  # sines only (the authors' shifted sines)
    val_slice=None,  # [start, stop] angles held out as validation set
    model="node",
    augment_dim=0,
    hidden_dim=32,
    time_dependent=True,
    readout=True,
    num_layers=5,
    out_relu=True,  # resnet only (the authors' residual blocks)
    method="dopri5",
    rtol=1e-3,
    atol=1e-3,
    adjoint=False,
    T=1.0,
    max_num_steps=1000,
    step_size=None,  # fixed-grid methods (euler, rk4, midpoint) only
    backend="torchdiffeq",  # or "lean": same dopri5 steps, less overhead (ode.py)
    epochs=12,
    batch_size=64,
    lr=1e-3,
    weight_decay=0.0,
    loss="mse",
    kinetic=0.0,
    jacobian=0.0,
    end_time_jitter=0.0,  # cheap-flow regularisers (regularizers.py)
    data_seed=None,  # None: the data are drawn from ``seed`` as well
    seed=0,
)


#: Losses a toy task can use: its targets are -1/+1 values of shape (n, 1).
TOY_LOSSES = ("mse", "huber")


def _choice(choices):
    return lambda name, value: check_choice(name, value, choices)


#: One check per config field: ``check(name, value)`` raises a ValueError naming the field.
#: Types are strict (true/false are booleans, counts are integers, no quoted numbers); ints
#: are accepted where floats are expected.
FIELD_CHECKS = dict(
    task=_choice(TASKS),
    dim=check_pos_int,
    num_inner=check_pos_int,
    num_outer=check_pos_int,
    r1=check_positive,
    r2=check_positive,
    r3=check_positive,
    num_points=check_pos_int,
    num_per_curve=check_pos_int,
    shift=check_positive,
    noise=check_nonneg,
    val_slice=lambda name, v: None if v is None else check_interval(name, v),
    model=_choice(MODELS),
    augment_dim=check_nonneg_int,
    hidden_dim=check_pos_int,
    time_dependent=check_bool,
    readout=check_bool,
    num_layers=check_pos_int,
    out_relu=check_bool,
    method=lambda name, v: check_solver(v),
    rtol=check_positive,
    atol=check_positive,
    adjoint=check_bool,
    T=check_positive,
    max_num_steps=check_pos_int,
    step_size=check_optional_positive,
    epochs=check_nonneg_int,
    batch_size=check_pos_int,
    lr=check_positive,
    weight_decay=check_nonneg,
    loss=_choice(TOY_LOSSES),
    kinetic=check_nonneg,
    jacobian=check_nonneg,
    end_time_jitter=check_nonneg,
    data_seed=lambda name, v: None if v is None else check_nonneg_int(name, v),
    seed=check_nonneg_int,
    backend=_choice(BACKEND_NAMES),
)


def check_config(cfg):
    """Type- and range-check every field of a full config, then the rules that tie fields
    together. Raises a ValueError that names the field and says what to do; returns None.

    Runs before any data is made or any model is built, so a bad experiment in a list of
    experiments fails before the others have run.
    """
    for name, check in FIELD_CHECKS.items():
        check(name, cfg[name])
    if not cfg["r1"] < cfg["r2"] < cfg["r3"]:
        raise ValueError(
            f"radii must satisfy r1 < r2 < r3 (ball, then a gap, then the shell); "
            f"got r1={cfg['r1']}, r2={cfg['r2']}, r3={cfg['r3']}"
        )
    if cfg["val_slice"] is not None:
        if cfg["task"] not in ("spheres", "separable") or cfg["dim"] < 2:
            raise ValueError(
                "val_slice holds out an angular slice, so it needs task 'spheres' or "
                "'separable' with dim >= 2; set it to null (None) for this task"
            )
        start, stop = cfg["val_slice"]
        if stop < -math.pi or start > math.pi:
            raise ValueError(
                f"val_slice [{start}, {stop}] selects no points: angles "
                f"atan2(x_2, x_1) lie in [-pi, pi]; choose a slice inside that range"
            )
    if cfg["end_time_jitter"] >= cfg["T"]:
        raise ValueError(
            f"end_time_jitter must be smaller than T = {cfg['T']} (end times are drawn "
            f"from [T - jitter, T + jitter]); got {cfg['end_time_jitter']}"
        )


def make_config(**overrides):
    """DEFAULTS updated by ``overrides``, every field checked (:func:`check_config`).

    An unknown key, a value of the wrong type (``"false"``, ``"4"``, ``1.5`` epochs) or out
    of range raises a ValueError naming the field.
    """
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown config field(s) {', '.join(map(repr, unknown))}; "
            f"known fields: {', '.join(sorted(DEFAULTS))}"
        )
    cfg = dict(DEFAULTS, **overrides)
    if cfg["task"] in ("g1d", "identity"):
        cfg["dim"] = 1
    check_config(cfg)
    if cfg["model"] == "node" and cfg["augment_dim"] != 0:
        raise ValueError(
            "model='node' has augment_dim=0; use model='anode' for augment_dim > 0"
        )
    if cfg["model"] in ("anode", "learned_anode") and cfg["augment_dim"] == 0:
        raise ValueError(
            f"model={cfg['model']!r} needs an integer augment_dim > 0; "
            f"got {cfg['augment_dim']!r}"
        )
    if cfg["model"] == "second_order" and cfg["augment_dim"] not in (
        0,
        cfg["dim"],
    ):
        raise ValueError(
            "model='second_order' augments with a velocity of the data's dimension; "
            "leave augment_dim at 0"
        )
    if (cfg["kinetic"] or cfg["jacobian"] or cfg["end_time_jitter"]) and cfg[
        "model"
    ] not in ("node", "anode"):
        raise ValueError(
            "kinetic, jacobian and end_time_jitter apply to model='node' or 'anode' only"
        )
    return cfg


def check_trainable(cfg):
    """Check that :func:`run_toy` can train ``cfg`` on its task's targets, which have one
    coordinate: with ``readout=False`` the model outputs its dim + augment_dim features."""
    out_dim = 1 if cfg["readout"] else cfg["dim"] + cfg["augment_dim"]
    if out_dim != 1:
        raise ValueError(
            f"readout=False makes the model output its {out_dim} features "
            f"(dim + augment_dim), but the task's targets have 1 coordinate: set "
            f"readout=True, or build targets of that shape and call anode_utils.train"
        )


def _check_cfg(cfg, needed=()):
    """``cfg`` is a config dict holding the fields ``needed`` (make_config builds full ones)."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f"cfg must be a config dict (from make_config); got {type(cfg).__name__}"
        )
    missing = [k for k in needed if k not in cfg]
    if missing:
        raise ValueError(
            f"cfg lacks the field(s) {', '.join(map(repr, missing))}: build it with "
            f"make_config(**overrides), which fills in the defaults"
        )


#: The fields make_data reads, by task.
DATA_FIELDS = {
    "g1d": ("num_points",),
    "identity": ("num_points",),
    "sines": ("dim", "num_per_curve", "shift", "noise"),
    "spheres": ("dim", "num_inner", "num_outer", "r1", "r2", "r3"),
    "separable": ("dim", "num_inner", "num_outer", "r1", "r2", "r3"),
}


def data_seed(cfg):
    """The seed the data set is drawn from: ``data_seed``, or the run's ``seed`` when it is
    None (each seed then sees its own sample of the task, as well as its own initialisation)."""
    return (
        cfg.get("seed", 0)
        if cfg.get("data_seed") is None
        else cfg["data_seed"]
    )


def make_data(cfg):
    """(x, y) for the whole task, and the validation slice when ``val_slice`` is set.

    Returns ``(x_train, y_train), val`` with val None or (x_val, y_val). A ``val_slice``
    that selects no points, or every point, raises a ValueError naming it. The data are
    drawn from :func:`data_seed`.
    """
    _check_cfg(cfg, ("task",))
    check_choice("cfg['task']", cfg["task"], tuple(DATA_FIELDS))
    _check_cfg(cfg, DATA_FIELDS[cfg["task"]] + ("val_slice",))
    seed = data_seed(cfg)
    if cfg["task"] in ("g1d", "identity"):
        x, y = map_1d(
            "flip" if cfg["task"] == "g1d" else "identity",
            cfg["num_points"],
            seed=seed,
        )
    elif cfg["task"] == "sines":
        x, y = shifted_sines(
            cfg["dim"],
            cfg["num_per_curve"],
            cfg["shift"],
            cfg["noise"],
            seed=seed,
        )
    else:
        make = (
            concentric_spheres
            if cfg["task"] == "spheres"
            else separable_spheres
        )
        x, y = make(
            cfg["dim"],
            cfg["num_inner"],
            cfg["num_outer"],
            cfg["r1"],
            cfg["r2"],
            cfg["r3"],
            seed=seed,
        )
    if cfg["val_slice"] is None:
        return (x, y), None
    (x_train, y_train), (x_val, y_val) = angular_split(x, y, *cfg["val_slice"])
    for part, name in (
        (x_val, "selects no points"),
        (x_train, "leaves no training points"),
    ):
        if len(part) == 0:
            raise ValueError(
                f"val_slice {list(cfg['val_slice'])} {name} of the {len(x)} data "
                f"points (angles atan2(x_2, x_1) in [-pi, pi]); choose another slice"
            )
    return (x_train, y_train), (x_val, y_val)


def make_model(cfg):
    """The model a config describes, initialised as after ``torch.manual_seed(cfg['seed'])``
    but without touching torch's global generator (its state is the same before and after).

    A regularised model draws its random end times and probes from its own generator, which
    continues from where the initialisation left the seeded stream (as the global generator
    did when models were built under ``torch.manual_seed``: the same numbers)."""
    _check_cfg(cfg, ("seed",))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        return _build_model(cfg)


def _build_model(cfg):
    out_dim = 1 if cfg["readout"] else cfg["dim"] + cfg["augment_dim"]
    solver = dict(
        T=cfg["T"],
        method=cfg["method"],
        rtol=cfg["rtol"],
        atol=cfg["atol"],
        adjoint=cfg["adjoint"],
        max_num_steps=cfg["max_num_steps"],
        step_size=cfg["step_size"],
        backend=cfg.get("backend", "torchdiffeq"),
    )
    if cfg["model"] == "resnet":
        return ResNet(
            cfg["dim"],
            out_dim,
            cfg["hidden_dim"],
            cfg["num_layers"],
            cfg["augment_dim"],
            readout=cfg["readout"],
            out_relu=cfg["out_relu"],
        )
    if cfg["model"] == "learned_anode":
        return LearnedAugmentODENet(
            cfg["dim"],
            out_dim,
            cfg["hidden_dim"],
            cfg["augment_dim"],
            cfg["time_dependent"],
            **solver,
        )
    if cfg["model"] == "second_order":
        return SecondOrderODENet(
            cfg["dim"],
            out_dim,
            cfg["hidden_dim"],
            cfg["time_dependent"],
            **solver,
        )
    if cfg["kinetic"] or cfg["jacobian"] or cfg["end_time_jitter"]:
        base = ODENet(
            cfg["dim"],
            out_dim,
            cfg["hidden_dim"],
            cfg["augment_dim"],
            cfg["time_dependent"],
            readout=cfg["readout"],
            **solver,
        )
        generator = torch.Generator()
        generator.set_state(torch.get_rng_state())
        return RegularizedODENet(
            base,
            cfg["kinetic"],
            cfg["jacobian"],
            cfg["end_time_jitter"],
            generator=generator,
        )
    return ODENet(
        cfg["dim"],
        out_dim,
        cfg["hidden_dim"],
        cfg["augment_dim"],
        cfg["time_dependent"],
        readout=cfg["readout"],
        **solver,
    )


def run_toy(cfg):
    """Train one seeded model on one task. Returns a dict of plain data:

    ``config``, ``history`` (History.to_dict()), ``state_dict`` (the trained weights) and
    ``final`` (loss and accuracy on the training set, and on the held-out slice if any).
    """
    cfg = make_config(**cfg)
    check_trainable(cfg)
    (x, y), val = make_data(cfg)
    model = make_model(cfg)
    hist = train(
        model,
        x,
        y,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        loss=cfg["loss"],
        seed=cfg["seed"],
        val=val,
    )
    final = {}
    if hist.error is None:
        final["train_loss"], final["train_accuracy"] = evaluate(
            model, x, y, cfg["loss"]
        )
        if val is not None:
            final["val_loss"], final["val_accuracy"] = evaluate(
                model, *val, loss=cfg["loss"]
            )
    return {
        "config": cfg,
        "history": hist.to_dict(),
        "final": final,
        "state_dict": {
            k: v.detach().clone() for k, v in model.state_dict().items()
        },
    }


def load_model(result):
    """Rebuild the trained model of a :func:`run_toy` result."""
    model = make_model(result["config"])
    model.load_state_dict(result["state_dict"])
    return model


def histories(results):
    """The History objects of a list of results."""
    return [History.from_dict(r["history"]) for r in results]


def seed_configs(cfg, seeds):
    """One config per seed: model init and batch order change, and, unless the config fixes
    ``data_seed``, the data set is drawn afresh from each seed too."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f"cfg must be a dict (e.g. from make_config); got {type(cfg).__name__}"
        )
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(
            f"seeds must be a list of non-negative integers; got {seeds!r}"
        )
    seeds = [check_nonneg_int(f"seeds[{i}]", s) for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError(
            "seeds is empty: pass at least one seed, e.g. [0, 1, 2]"
        )
    return [dict(cfg, seed=s) for s in seeds]


def final_mean(results, key="train_loss"):
    if not results:
        raise ValueError(
            "results is empty: pass the run_toy results of at least one seed"
        )
    vals = [r["final"].get(key, math.nan) for r in results]
    return sum(vals) / len(vals)


def summarize(results):
    """Mean and std over seeds of the final metrics and of the mean forward NFE.

    results : run_toy results of one experiment (several seeds). Returns a dict
    ``{metric: (mean, std)}`` with the keys of ``final`` plus ``nfe_forward``.
    """
    import statistics

    if not results:
        raise ValueError(
            "results is empty: pass the run_toy results of at least one seed"
        )
    values = {}
    for r in results:
        for k, v in r["final"].items():
            values.setdefault(k, []).append(v)
        nfe = r["history"]["nfe_forward"]
        values.setdefault("nfe_forward", []).append(
            sum(nfe) / max(len(nfe), 1)
        )
    return {
        k: (statistics.fmean(v), statistics.pstdev(v))
        for k, v in values.items()
    }
