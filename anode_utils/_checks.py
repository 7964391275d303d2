"""Argument checks shared by the package: fail early, with a message that says what to do."""
import math
import numbers

import torch

try:  # the solver table moved between torchdiffeq releases
    from torchdiffeq._impl.odeint import SOLVERS as _SOLVERS
except ImportError:  # pragma: no cover
    _SOLVERS = {}

SOLVER_NAMES = tuple(sorted(_SOLVERS)) or (
    "adaptive_heun", "bosh3", "dopri5", "dopri8", "euler", "fehlberg2",
    "implicit_adams", "midpoint", "rk4",
)
#: Methods that choose their own step size (and so accept ``max_num_steps``).
ADAPTIVE_SOLVERS = frozenset({"adaptive_heun", "bosh3", "dopri5", "dopri8", "fehlberg2"})


def check_nonneg_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer (0, 1, 2, ...); got {value!r}")
    return int(value)


def check_pos_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer (1, 2, ...); got {value!r}")
    return int(value)


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value > 0) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def check_solver(method):
    if method not in SOLVER_NAMES:
        raise ValueError(f"method must be one of the torchdiffeq solvers "
                         f"{', '.join(SOLVER_NAMES)}; got {method!r}")
    return method


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_batch(x, dim, name="x"):
    """Check that ``x`` is a float tensor of shape (batch, dim)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, {dim}); got {type(x).__name__}")
    if x.dim() != 2 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (batch, {dim}) to match the model's data_dim={dim}; "
                         f"got {tuple(x.shape)}")
    return x
