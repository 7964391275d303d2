"""Argument checks shared by the package: fail early, with a message that says what to do."""

import math
import numbers

import torch

# the method lists are written once, with the solvers; re-exported here for the checks' users
from .solvers import ADAPTIVE_METHODS as ADAPTIVE_SOLVERS  # noqa: F401
from .solvers import TORCHDIFFEQ_METHODS as SOLVER_NAMES


def _got(value):
    """``got ...`` for a message, with a hint when a config file quoted a number or boolean."""
    if isinstance(value, str):
        return f"got {value!r} (a string: write numbers and true/false without quotes)"
    return f"got {value!r}"


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_nonneg_int(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 0
    ):
        raise ValueError(
            f"{name} must be a non-negative integer (0, 1, 2, ...); {_got(value)}"
        )
    return int(value)


def check_pos_int(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"{name} must be a positive integer (1, 2, ...); {_got(value)}"
        )
    return int(value)


def check_positive(name, value):
    if not _is_real(value) or not (value > 0) or not math.isfinite(value):
        raise ValueError(
            f"{name} must be a positive finite number; {_got(value)}"
        )
    return float(value)


def check_nonneg(name, value):
    """A finite number >= 0 (ints accepted; bools and strings are not)."""
    if not _is_real(value) or not (value >= 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0; {_got(value)}")
    return float(value)


def check_finite(name, value):
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; {_got(value)}")
    return float(value)


def check_bool(name, value):
    """Strictly True or False: ``bool("false")`` is True, so strings are refused."""
    if not isinstance(value, bool):
        raise ValueError(
            f"{name} must be true or false (a boolean); {_got(value)}"
        )
    return value


def check_optional_positive(name, value):
    """None, or a positive finite number."""
    return None if value is None else check_positive(name, value)


def check_interval(name, value):
    """A pair [start, stop] of finite numbers with start < stop; returns (start, stop) floats."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, (list, tuple))
        or len(value) != 2
    ):
        raise ValueError(
            f"{name} must be a pair [start, stop] of numbers; {_got(value)}"
        )
    start, stop = (
        check_finite(f"{name}[{i}]", v) for i, v in enumerate(value)
    )
    if not start < stop:
        raise ValueError(
            f"{name} must have start < stop; got [{value[0]!r}, {value[1]!r}]"
        )
    return start, stop


def check_solver(method, name="method"):
    if not isinstance(method, str) or method not in SOLVER_NAMES:
        raise ValueError(
            f"{name} must be one of the torchdiffeq solvers "
            f"{', '.join(SOLVER_NAMES)}; got {method!r}"
        )
    return method


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )
    return value


def check_batch(x, dim, name="x"):
    """Check that ``x`` is a float tensor of shape (batch, dim)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (batch, {dim}); got {type(x).__name__}"
        )
    if x.dim() != 2 or x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (batch, {dim}) to match the model's data_dim={dim}; "
            f"got {tuple(x.shape)}"
        )
    return x


def float_dtype(module):
    """The dtype of ``module``'s first floating-point parameter (None if it has none)."""
    return next(
        (p.dtype for p in module.parameters() if p.is_floating_point()), None
    )


def check_data(x, name="x", dtype=None, finite=True):
    """Check that ``x`` is a non-empty tensor of finite values (and of ``dtype`` when given).

    Run before a solve: NaN/inf inputs make adaptive solvers give up with a misleading step
    size underflow and fixed-step solvers return NaN silently; an empty batch does the same.
    ``finite=False`` leaves the values unchecked, for callers that check them when a solve
    fails instead.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor; got {type(x).__name__}"
        )
    if x.numel() == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(x.shape)}): pass at least one point"
        )
    if x.is_floating_point() or x.is_complex():
        if dtype is not None and x.dtype != dtype:
            raise ValueError(
                f"{name} has dtype {x.dtype} but the model's parameters are {dtype}: "
                f"convert the data ({name}.to({dtype})) or the model (model.to({dtype}))"
            )
        if finite and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(
                f"{name} holds {bad} non-finite value(s) (NaN/inf): clean or drop "
                f"those points first (torch.isfinite({name}) finds them)"
            )
    return x


def check_img_size(img_size, name="img_size"):
    """(channels, height, width), three positive integers; returns the tuple."""
    if (
        isinstance(img_size, (str, bytes))
        or not isinstance(img_size, (tuple, list))
        or len(img_size) != 3
    ):
        raise ValueError(
            f"{name} must be (channels, height, width), e.g. (1, 28, 28); "
            f"{_got(img_size)}"
        )
    return tuple(
        check_pos_int(f"{name} {n}", v)
        for n, v in zip(("channels", "height", "width"), img_size)
    )
