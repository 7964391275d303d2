"""Training loop that records loss, forward/backward NFE and accuracy at every iteration."""

import dataclasses
import math
import warnings

import torch
from torch import nn

from . import distributed
from ._checks import (
    check_batch,
    check_choice,
    check_data,
    check_nonneg,
    check_nonneg_int,
    check_pos_int,
    check_positive,
    float_dtype,
)
from .data import batches
from .nfe import counting_fields, read_and_reset_nfe, reset_nfe
from .ode import SolverError, backward_guard

LOSSES = {
    "mse": nn.MSELoss,
    "huber": nn.SmoothL1Loss,
    "cross_entropy": nn.CrossEntropyLoss,
}
#: The per-iteration series of a :class:`History` (and of the results files).
SERIES = ("loss", "nfe_forward", "nfe_backward", "accuracy")


@dataclasses.dataclass
class History:
    """Per-iteration records of one training run (plain lists: JSON-ready, picklable).

    loss, nfe_forward, nfe_backward, accuracy : one entry per iteration
    epoch_end : iteration index at which each epoch ended
    val_loss, val_accuracy : one entry per epoch (when validation data was given)
    error : None, or the message of a solver failure or non-finite loss that stopped the run early
    """

    loss: list = dataclasses.field(default_factory=list)
    nfe_forward: list = dataclasses.field(default_factory=list)
    nfe_backward: list = dataclasses.field(default_factory=list)
    accuracy: list = dataclasses.field(default_factory=list)
    epoch_end: list = dataclasses.field(default_factory=list)
    val_loss: list = dataclasses.field(default_factory=list)
    val_accuracy: list = dataclasses.field(default_factory=list)
    error: str = None

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(
            **{
                k: d[k]
                for k in (f.name for f in dataclasses.fields(cls))
                if k in d
            }
        )

    def __len__(self):
        return len(self.loss)

    def epoch_means(self, key="loss"):
        """Per-epoch means of a per-iteration series (``loss``, ``nfe_forward``, ...)."""
        values = getattr(self, key)
        ends = [0] + list(self.epoch_end)
        return [
            sum(values[a:b]) / (b - a) for a, b in zip(ends, ends[1:]) if b > a
        ]

    def nfe_ratio(self):
        """Mean forward NFE over the last epoch divided by the mean over the first: how much
        more expensive the flow became during training (1 = no growth)."""
        means = self.epoch_means("nfe_forward")
        if len(means) < 2:
            raise ValueError(
                "nfe_ratio needs a history of at least two epochs"
            )
        return means[-1] / means[0]


class FeatureSnapshots:
    """A ``callback`` for :func:`train` that keeps the features phi_T of fixed probe points
    at chosen iterations (0 = before training, taken at construction).

    ``snapshots.features[k]`` is (n_probe, d + p) after k iterations. The solves it makes
    are not counted in the training NFE.
    """

    def __init__(self, model, probe, at):
        check_data(probe, "probe", float_dtype(model))
        if isinstance(getattr(model, "data_dim", None), int):
            check_batch(probe, model.data_dim, "probe")
        if isinstance(at, (str, bytes)) or not hasattr(at, "__iter__"):
            raise TypeError(
                f"at must be a list of iterations (0, 1, 2, ...); got {at!r}"
            )
        self.probe = probe
        self.at = set(
            check_nonneg_int(f"at[{i}]", k) for i, k in enumerate(at)
        )
        self.features = {}
        if 0 in self.at:
            self._take(model, 0)
        reset_nfe(model)

    def _take(self, model, k):
        with torch.no_grad():
            self.features[k] = model.features(self.probe)

    def __call__(self, model, history):
        if len(history) in self.at:
            self._take(model, len(history))


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN/inf; :func:`train` records it in ``history.error``."""


def _check_xy(model, x, y, loss, names=("x", "y")):
    """Data checks before any solve: same length, non-empty, finite, the parameters' dtype;
    class indices (int64) or probabilities for cross_entropy."""
    dtype = float_dtype(model)
    check_data(x, names[0], dtype)
    if not isinstance(y, torch.Tensor):
        raise ValueError(
            f"{names[1]} must be a torch.Tensor; got {type(y).__name__}"
        )
    if len(x) != len(y):
        raise ValueError(
            f"{names[0]} and {names[1]} must hold the same number of points; "
            f"got {len(x)} and {len(y)}"
        )
    if loss == "cross_entropy" and not y.is_floating_point():
        if y.dtype != torch.long:
            raise ValueError(
                f"{names[1]} holds class indices of dtype {y.dtype}; cross_entropy needs "
                f"torch.long ({names[1]}.long())"
            )
        check_data(y, names[1])
    else:
        check_data(y, names[1], dtype)


def _check_pred(pred, y, loss, name="y"):
    """Regression losses must not broadcast: (n, 2) outputs against (n, 1) targets would
    silently train on a meaningless loss."""
    if loss != "cross_entropy" and pred.shape != y.shape:
        raise ValueError(
            f"the model's output has shape {tuple(pred.shape)} but {name} has shape "
            f"{tuple(y.shape)}; give targets of the output's shape (or change the "
            f"model's output_dim/readout)"
        )


def _accuracy(pred, y, loss):
    if loss == "cross_entropy":
        return (pred.argmax(dim=1) == y).float().mean().item()
    # regression onto labels -1/+1: a point is right when the output has the label's sign
    if pred.shape[-1] == 1 and torch.all(y.abs() == 1):
        return (torch.sign(pred) == y).float().mean().item()
    return math.nan


@torch.no_grad()
def evaluate(model, x, y, loss="mse", batch_size=1024):
    """Mean loss and accuracy of ``model`` on (x, y), without gradients or NFE bookkeeping.

    x, y as in :func:`train`: non-empty, finite, of the parameters' dtype (ValueError otherwise).
    """
    check_choice("loss", loss, tuple(LOSSES))
    _check_xy(model, x, y, loss)
    loss_fn = LOSSES[loss](reduction="sum")
    total, correct, n = 0.0, 0.0, 0
    was_training = model.training
    model.eval()
    for xb, yb in batches(x, y, batch_size, shuffle=False):
        pred = model(xb)
        _check_pred(pred, yb, loss)
        total += loss_fn(pred, yb).item()
        correct += _accuracy(pred, yb, loss) * len(xb)
        n += len(xb)
    model.train(was_training)
    reset_nfe(model)
    per_item = n * (pred.shape[1] if loss != "cross_entropy" else 1)
    return total / per_item, correct / n


def _mean_over_processes(values, device):
    """Average a few logged numbers over the processes of a torch.distributed group."""
    import torch.distributed as dist

    t = torch.tensor(
        [float(v) for v in values], dtype=torch.float64, device=device
    )
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return t.tolist()


def _stop_if_not_finite(objective, iteration):
    """Raise NonFiniteLossError when the loss is NaN/inf (sharded runs agree on failures in
    :func:`anode_utils.distributed.train_step` instead)."""
    if not bool(torch.isfinite(objective.detach())):
        raise NonFiniteLossError(
            f"the loss became non-finite ({objective.item()}) at iteration {iteration}; the step "
            f"was not taken. Lower the learning rate, add weight decay, or check the data"
        )


def _stop_if_params_not_finite(model, iterations):
    if not all(
        bool(torch.isfinite(p).all())
        for p in model.parameters()
        if p.is_floating_point()
    ):
        raise NonFiniteLossError(
            f"the parameters became non-finite (NaN/inf) after iteration {iterations}. Lower the "
            f"learning rate, add weight decay, or check the data"
        )


@dataclasses.dataclass
class Resume:
    """How :func:`train` continues a run trained in pieces (the image command trains one epoch
    per call and restarts from checkpoints).

    history : the run's :class:`History` so far; training skips the first ``len(history)``
        iterations of the seeded batch order (they are done) and appends to it, so a resumed
        run continues exactly where the interrupted one stopped.
    max_iterations : stop once the history holds this many iterations (the whole run's
        budget, over all its pieces); None for no limit.
    """

    history: History = dataclasses.field(default_factory=History)
    max_iterations: int = None


class ProgressBar:
    """A ``callback`` for :func:`train` that shows a tqdm progress bar with the last loss and
    NFE: ``with ProgressBar(total) as bar: train(..., callback=bar)``."""

    def __init__(self, total=None, desc="train"):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, leave=False)

    def __call__(self, model, history):
        self.bar.update()
        self.bar.set_postfix(
            loss=f"{history.loss[-1]:.3f}", nfe=history.nfe_forward[-1]
        )

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def train(
    model,
    x,
    y,
    *,
    epochs=10,
    batch_size=64,
    lr=1e-3,
    weight_decay=0.0,
    loss="mse",
    seed=0,
    val=None,
    callback=None,
    optimizer=None,
    resume=None,
    shard=None,
):
    """Train ``model`` on (x, y) with ``torch.optim.Adam`` and return a :class:`History`.

    x : (n, d) inputs; y : (n, k) targets (``loss='mse'`` or ``'huber'``) or (n,) class
    indices (``loss='cross_entropy'``). The batch order comes from ``seed`` alone, so a
    seeded model + the same arguments give the same history. ``val=(x_val, y_val)`` is
    evaluated after each epoch. A solver failure or a non-finite (NaN/inf) loss stops the
    run and is recorded in ``history.error`` (and warned about) rather than raised, so other
    seeds carry on; the step with a non-finite loss is not taken. Bad data (empty, non-finite,
    a dtype other than the parameters', targets of another shape than the outputs) raises a
    ValueError naming the argument before anything is solved.

    The rarely used keywords:
    ``callback(model, history)`` (or a list of them) is called after every iteration (e.g.
    :class:`FeatureSnapshots`, :class:`ProgressBar`); solves it makes are not counted in the
    NFE of the next iteration.
    ``optimizer`` : use this optimizer (e.g. restored from a checkpoint) instead of a new Adam.
    ``resume=Resume(history, max_iterations)`` : continue an interrupted run (see
    :class:`Resume`); the returned History is ``resume.history``.
    ``shard=(rank, world_size)`` : each process of an initialised torch.distributed group
    trains on its contiguous slice of every global batch; ``model`` is the bare model (or a
    DistributedDataParallel one, run under ``no_sync``): parameters are broadcast from process
    0 at the start and the slice-weighted gradients averaged over processes every iteration,
    after all processes agree that none failed. With a fixed-step solver the result equals a
    single-process run on the global batch; with an adaptive one (dopri5) each process chooses
    its own steps for its slice, so it does not (see :mod:`anode_utils.distributed`). A solver
    failure or non-finite loss on any process stops every process with the same error (in
    ``history.error``); a last global batch with fewer items than processes is dropped.
    Logged loss/accuracy are the global batch's, NFE the mean over processes.
    """
    resume = _check_options(
        epochs, batch_size, lr, weight_decay, loss, seed, resume
    )
    callbacks = _check_callbacks(callback)
    _check_optimizer(optimizer)
    parallel = distributed.is_parallel(shard)
    data_error = _check_data(model, x, y, val, loss, raise_now=not parallel)
    history, start_iteration = resume.history, len(resume.history)
    max_iterations = resume.max_iterations
    loss_fn = LOSSES[loss]()
    if optimizer is None:
        # foreach=True on the CPU too: the stored runs were trained with this arithmetic
        optimizer = torch.optim.Adam(
            model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True
        )
    gen = torch.Generator().manual_seed(int(seed))
    model.train()
    reset_nfe(model)
    fields = counting_fields(model)
    device = next(model.parameters()).device if parallel else None
    if parallel:
        distributed.broadcast_parameters(model)
    it = 0
    try:
        if (
            parallel
        ):  # bad data on one process must stop all of them, not hang the rest
            distributed.agree_on_failure(data_error, device, 0)
        for _ in range(epochs):
            for xb, yb, weight in _batches(x, y, batch_size, gen, shard):
                if (
                    max_iterations is not None
                    and len(history) >= max_iterations
                ):
                    break
                it += 1
                if it <= start_iteration:
                    continue  # done before the interruption this run resumes
                if (
                    parallel
                ):  # processes agree on failures before exchanging gradients
                    pred, batch_loss, nfe_f, nfe_b = distributed.train_step(
                        model, optimizer, loss_fn, xb, yb, weight, it
                    )
                else:
                    pred, batch_loss, nfe_f, nfe_b = _train_step(
                        model,
                        optimizer,
                        loss_fn,
                        loss,
                        xb,
                        yb,
                        fields,
                        len(history) + 1,
                    )
                record = [
                    batch_loss.item(),
                    nfe_f,
                    nfe_b,
                    _accuracy(pred.detach(), yb, loss),
                ]
                if (
                    parallel
                ):  # slice-weighted: the global batch's loss and accuracy
                    record = _mean_over_processes(
                        [record[0] * weight, nfe_f, nfe_b, record[3] * weight],
                        batch_loss.device,
                    )
                for key, value in zip(SERIES, record):
                    getattr(history, key).append(value)
                if callbacks:
                    for cb in callbacks:
                        cb(model, history)
                    read_and_reset_nfe(
                        model, fields
                    )  # their solves are not training's
            else:
                _end_epoch(model, history, it, val, loss, parallel, device)
                continue
            _stop_if_params_not_finite(model, len(history))
            break  # max_iterations reached
    except (SolverError, NonFiniteLossError) as err:
        history.error = str(err)
        warnings.warn(
            f"training stopped after {len(history.loss)} iterations: {err}",
            RuntimeWarning,
        )
    return history


def _check_options(epochs, batch_size, lr, weight_decay, loss, seed, resume):
    """Check train's numeric options; returns the :class:`Resume` to use (a fresh one if None)."""
    check_nonneg_int("epochs", epochs)
    check_pos_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_nonneg("weight_decay", weight_decay)
    check_choice("loss", loss, tuple(LOSSES))
    check_nonneg_int("seed", seed)
    if resume is None:
        return Resume()
    if not isinstance(resume, Resume):
        raise TypeError(
            f"resume must be a Resume(history, max_iterations) or None; "
            f"got {type(resume).__name__}"
        )
    if not isinstance(resume.history, History):
        raise TypeError(
            f"resume.history must be a History; got {type(resume.history).__name__}"
        )
    if resume.max_iterations is not None:
        check_nonneg_int("resume.max_iterations", resume.max_iterations)
    return resume


def _check_callbacks(callback):
    """``callback``: None, a callable or a list/tuple of callables; returns a list."""
    callbacks = (
        []
        if callback is None
        else (
            list(callback)
            if isinstance(callback, (list, tuple))
            else [callback]
        )
    )
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            name = (
                "callback"
                if not isinstance(callback, (list, tuple))
                else f"callback[{i}]"
            )
            raise TypeError(
                f"{name} must be callable as f(model, history); got {type(cb).__name__}"
            )
    return callbacks


def _check_optimizer(optimizer):
    if optimizer is not None and not isinstance(
        optimizer, torch.optim.Optimizer
    ):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer or None; "
            f"got {type(optimizer).__name__}"
        )


def _check_data(model, x, y, val, loss, raise_now=True):
    """The data checks of :func:`train`: raise the ValueError, or (sharded runs, where every
    process must learn of one process's bad data) return its message; None when all is well."""
    try:
        _check_xy(model, x, y, loss)
        if val is not None:
            if not isinstance(val, (tuple, list)) or len(val) != 2:
                raise ValueError("val must be a pair (x_val, y_val)")
            _check_xy(
                model, *val, loss, names=("val[0] (x_val)", "val[1] (y_val)")
            )
    except ValueError as err:
        if raise_now:
            raise
        return str(err)
    return None


def _batches(x, y, batch_size, generator, shard=None):
    """The seeded batch order as (x_batch, y_batch, weight); with ``shard=(rank, world)`` this
    process's slice of each global batch and its weight (a batch with fewer items than
    processes is dropped by all)."""
    for xb, yb in batches(x, y, batch_size, generator):
        if not distributed.is_parallel(shard):
            yield xb, yb, 1.0
            continue
        part = distributed.shard(xb, yb, *shard)
        if part is not None:
            yield part


def _train_step(model, optimizer, loss_fn, loss, xb, yb, fields, iteration):
    """One single-process step: forward, loss (+ a regularised model's penalty), backward, Adam.
    Returns the predictions, the data loss and the forward and backward NFE."""
    optimizer.zero_grad(set_to_none=True)
    pred = model(xb)
    nfe_f = read_and_reset_nfe(model, fields)
    _check_pred(pred, yb, loss)
    batch_loss = loss_fn(pred, yb)
    # regularised models (anode_utils.regularizers) leave a penalty to add; the history keeps
    # the data loss alone so runs with and without compare fairly
    penalty = getattr(model, "penalty", None)
    objective = batch_loss if penalty is None else batch_loss + penalty
    _stop_if_not_finite(objective, iteration)
    with backward_guard():
        objective.backward()
    optimizer.step()
    return pred, batch_loss, nfe_f, read_and_reset_nfe(model, fields)


def _end_epoch(model, history, it, val, loss, parallel, device):
    """After a full epoch: check the parameters, record the epoch's end and validate."""
    # a last step can overflow the parameters with a finite loss: caught once per epoch
    _stop_if_params_not_finite(model, len(history))
    if history.epoch_end and history.epoch_end[-1] >= it:
        return  # this epoch ended before a resume: already recorded
    history.epoch_end.append(len(history))
    if val is None:
        return
    if parallel:  # a failure on one process only must stop them all
        failure = None
        try:
            vl, va = evaluate(model, *val, loss=loss)
        except SolverError as err:
            failure = str(err)
        distributed.agree_on_failure(failure, device, it)
    else:
        vl, va = evaluate(model, *val, loss=loss)
    history.val_loss.append(vl)
    history.val_accuracy.append(va)
