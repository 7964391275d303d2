"""Toy data sets of the paper, generated deterministically from a seed.

Every function returns ``(x, y)`` float32 tensors: x of shape (n, d), y of shape (n, 1).
"""

import math

import torch

from ._checks import (
    check_choice,
    check_finite,
    check_nonneg_int,
    check_pos_int,
    check_positive,
)


def _generator(seed):
    return torch.Generator().manual_seed(check_nonneg_int("seed", seed))


def map_1d(kind="flip", num_points=100, noise=0.0, seed=0):
    """Points at -1 and +1 (half each) with targets g1d(x) = -x (``'flip'``) or x (``'identity'``).

    Returns x (num_points, 1), y (num_points, 1). Optional Gaussian ``noise`` on the inputs.
    """
    check_choice("kind", kind, ("flip", "identity"))
    n = check_pos_int("num_points", num_points)
    gen = _generator(seed)
    x = torch.where(torch.arange(n) % 2 == 0, -1.0, 1.0).reshape(n, 1)
    y = -x if kind == "flip" else x.clone()
    if noise:
        x = x + check_positive("noise", noise) * torch.randn(
            n, 1, generator=gen
        )
    return x.float(), y.float()


def _points_in_shell(n, dim, r_min, r_max, gen):
    """Uniform in the shell r_min <= ||x|| <= r_max (uniform in volume: r^d uniform)."""
    direction = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    u = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    r = (r_min**dim + u * (r_max**dim - r_min**dim)) ** (1.0 / dim)
    return direction * r


def _check_radii(r1, r2, r3):
    for name, r in (("r1", r1), ("r2", r2), ("r3", r3)):
        check_positive(name, r)
    if not r1 < r2 < r3:
        raise ValueError(
            f"radii must satisfy 0 < r1 < r2 < r3; got r1={r1}, r2={r2}, r3={r3}"
        )


def concentric_spheres(
    dim=2, num_inner=1000, num_outer=2000, r1=0.5, r2=1.0, r3=1.5, seed=0
):
    """The paper's g(x): label -1 inside the ball ||x|| <= r1, +1 on the shell r2 <= ||x|| <= r3.

    Returns x (num_inner + num_outer, dim), y (num_inner + num_outer, 1), inner points first.
    """
    dim = check_pos_int("dim", dim)
    n_in, n_out = (
        check_pos_int("num_inner", num_inner),
        check_pos_int("num_outer", num_outer),
    )
    _check_radii(r1, r2, r3)
    gen = _generator(seed)
    inner = _points_in_shell(n_in, dim, 0.0, r1, gen)
    outer = _points_in_shell(n_out, dim, r2, r3, gen)
    x = torch.cat([inner, outer]).float()
    y = torch.cat([-torch.ones(n_in, 1), torch.ones(n_out, 1)])
    return x, y


def separable_spheres(
    dim=2,
    num_inner=1000,
    num_outer=2000,
    r1=0.5,
    r2=1.0,
    r3=1.5,
    opening=math.pi / 2,
    seed=0,
):
    """The same ball and shell, but the shell has an opening: a cone of half-angle
    ``opening / 2`` around the direction -e_1 is left empty.

    The ball can then leave through the opening, so a flow makes the classes linearly
    separable without tearing anything (in d = 1 the shell is only the side x >= r2).
    Shapes as in :func:`concentric_spheres`.
    """
    dim = check_pos_int("dim", dim)
    n_in, n_out = (
        check_pos_int("num_inner", num_inner),
        check_pos_int("num_outer", num_outer),
    )
    _check_radii(r1, r2, r3)
    opening = check_positive("opening", opening)
    if opening >= 2 * math.pi:
        raise ValueError(
            f"opening must be an angle in (0, 2*pi); got {opening}"
        )
    gen = _generator(seed)
    inner = _points_in_shell(n_in, dim, 0.0, r1, gen)
    cos_max = math.cos(opening / 2)
    kept, total = [], 0
    while (
        total < n_out
    ):  # rejection sampling keeps the shell uniform outside the cone
        cand = _points_in_shell(2 * n_out, dim, r2, r3, gen)
        cos_to_minus_e1 = -cand[:, 0] / cand.norm(dim=1)
        cand = (
            cand[cos_to_minus_e1 < cos_max]
            if dim > 1
            else cand[cand[:, 0] > 0]
        )
        kept.append(cand)
        total += len(cand)
    outer = torch.cat(kept)[:n_out]
    x = torch.cat([inner, outer]).float()
    y = torch.cat([-torch.ones(n_in, 1), torch.ones(n_out, 1)])
    return x, y


def shifted_sines(dim=2, num_per_curve=1500, shift=1.4, noise=0.1, seed=0):
    """The authors' separable control task: two noisy sine curves, one shifted up, one down.

    u ~ U[-1, 1], v = sin(pi u) + s + N(0, noise^2) with s = +shift/2 (label +1) or
    -shift/2 (label -1). In d = 1 the input is v alone; in d = 2 it is (u, v); in d > 2 the
    extra coordinates are uniform in [-1, 1]. A flow can separate the two classes without
    tearing anything: the curves never meet (for noise small against the shift).

    Returns x (2 * num_per_curve, dim), y (2 * num_per_curve, 1), the lower curve first.
    """
    dim = check_pos_int("dim", dim)
    n = check_pos_int("num_per_curve", num_per_curve)
    check_positive("shift", shift)
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float))
        or not noise >= 0
    ):
        raise ValueError(f"noise must be a number >= 0; got {noise!r}")
    gen = _generator(seed)
    u = 2 * torch.rand(2 * n, 1, generator=gen, dtype=torch.float64) - 1
    offset = torch.cat(
        [-torch.full((n, 1), shift / 2), torch.full((n, 1), shift / 2)]
    ).double()
    v = (
        torch.sin(math.pi * u)
        + offset
        + noise * torch.randn(2 * n, 1, generator=gen, dtype=torch.float64)
    )
    cols = [v] if dim == 1 else [u, v]
    if dim > 2:
        cols.append(
            2 * torch.rand(2 * n, dim - 2, generator=gen, dtype=torch.float64)
            - 1
        )
    x = torch.cat(cols, dim=1).float()
    y = torch.cat([-torch.ones(n, 1), torch.ones(n, 1)])
    return x, y


def angular_split(x, y, start=0.0, stop=math.pi / 5):
    """Split off the points whose angle atan2(x_2, x_1) lies in [start, stop] (radians).

    Returns ``(x_train, y_train), (x_val, y_val)``: the slice is the validation set, used
    to test how a model fills in a region it never saw. Needs d >= 2.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(
            f"angular_split needs x of shape (n, d) with d >= 2; "
            f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    _check_same_length(x, y)
    start, stop = check_finite("start", start), check_finite("stop", stop)
    if not start < stop:
        raise ValueError(
            f"start must be smaller than stop (radians); got start={start}, stop={stop}"
        )
    angle = torch.atan2(x[:, 1], x[:, 0])
    in_slice = (angle >= start) & (angle <= stop)
    return (x[~in_slice], y[~in_slice]), (x[in_slice], y[in_slice])


def grid_2d(lim=1.5, num=101):
    """A (num * num, 2) grid over [-lim, lim]^2, row-major (reshape to (num, num) for images)."""
    num = check_pos_int("num", num)
    lim = check_positive("lim", lim)
    s = torch.linspace(-lim, lim, num)
    yy, xx = torch.meshgrid(s, s, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _check_same_length(x, y):
    """x and y: tensors with the same number of points (rows); returns that number."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise ValueError(
                f"{name} must be a torch.Tensor with one row per point; got "
                f"{type(t).__name__ if not isinstance(t, torch.Tensor) else 'a scalar'}"
            )
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of points; got {len(x)} and {len(y)}"
        )
    return len(x)


def batches(x, y, batch_size, generator=None, shuffle=True):
    """Yield (x_batch, y_batch) slices covering the data once (the last batch may be smaller).

    Slicing tensors directly avoids a DataLoader's per-sample collation, which costs more
    than a small model's forward pass.
    """
    n = _check_same_length(x, y)
    batch_size = check_pos_int("batch_size", batch_size)
    order = (
        torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    )
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


__all__ = [
    "map_1d",
    "concentric_spheres",
    "separable_spheres",
    "shifted_sines",
    "angular_split",
    "grid_2d",
    "batches",
]
