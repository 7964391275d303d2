"""Figures used throughout the book. Each function draws on an Axes and returns it."""

import numbers

import matplotlib.pyplot as plt
import numpy as np
import torch

BLUE, RED = "#1f77b4", "#d62728"  # label -1 (inner ball), label +1 (annulus)


def _ax(ax, projection=None):
    if ax is not None:
        return ax
    fig = plt.figure(figsize=(4.5, 4))
    return fig.add_subplot(projection=projection)


def label_colors(y):
    """Blue for label -1 (or class 0), red otherwise; y of shape (n,) or (n, 1)."""
    y = np.asarray(y).reshape(-1)
    return (
        np.where(y < 0, BLUE, RED)
        if (y < 0).any()
        else np.where(y == 0, BLUE, RED)
    )


def plot_trajectories_1d(times, traj, y=None, ax=None, **kw):
    """1-d trajectories over time: times (T,), traj (T, n, 1) or (T, n). t on the x-axis."""
    ax = _ax(ax)
    traj = np.asarray(torch.as_tensor(traj).detach()).reshape(len(times), -1)
    colors = label_colors(y) if y is not None else ["k"] * traj.shape[1]
    for i in range(traj.shape[1]):
        ax.plot(
            np.asarray(times),
            traj[:, i],
            color=colors[i],
            **{"lw": 1.5, "alpha": 0.8, **kw},
        )
    ax.set_xlabel("t")
    ax.set_ylabel("h(t)")
    return ax


def plot_trajectories_2d(traj, y=None, ax=None, max_lines=200, **kw):
    """Trajectories in the plane: traj (T, n, >=2); start points as dots, ends as crosses."""
    ax = _ax(ax)
    traj = np.asarray(torch.as_tensor(traj).detach())
    idx = np.linspace(
        0, traj.shape[1] - 1, min(max_lines, traj.shape[1])
    ).astype(int)
    colors = (
        label_colors(y) if y is not None else np.array(["k"] * traj.shape[1])
    )
    for i in idx:
        ax.plot(
            traj[:, i, 0],
            traj[:, i, 1],
            color=colors[i],
            lw=0.8,
            alpha=0.6,
            **kw,
        )
    ax.scatter(traj[0, idx, 0], traj[0, idx, 1], c=colors[idx], s=8)
    ax.scatter(
        traj[-1, idx, 0], traj[-1, idx, 1], c=colors[idx], s=18, marker="x"
    )
    ax.set_aspect("equal")
    return ax


def plot_trajectories_3d(traj, y=None, ax=None, max_lines=150):
    """Trajectories in 3-d (e.g. d = 2 plus one augmented dimension): traj (T, n, 3)."""
    ax = _ax(ax, projection="3d") if ax is None else ax
    traj = np.asarray(torch.as_tensor(traj).detach())
    idx = np.linspace(
        0, traj.shape[1] - 1, min(max_lines, traj.shape[1])
    ).astype(int)
    colors = (
        label_colors(y) if y is not None else np.array(["k"] * traj.shape[1])
    )
    for i in idx:
        ax.plot(
            traj[:, i, 0],
            traj[:, i, 1],
            traj[:, i, 2],
            color=colors[i],
            lw=0.7,
            alpha=0.6,
        )
    ax.scatter(
        traj[-1, idx, 0],
        traj[-1, idx, 1],
        traj[-1, idx, 2],
        c=colors[idx],
        s=10,
    )
    return ax


@torch.no_grad()
def plot_vector_field(
    field,
    t=0.0,
    xlim=(-2, 2),
    ylim=(-2, 2),
    num=21,
    ax=None,
    dims=(0, 1),
    **kw,
):
    """Quiver plot of f(h, t) on a grid in the plane of ``dims`` (other coordinates 0).

    For 1-d fields use :func:`plot_vector_field_1d`.
    """
    from .theory import (
        vector_field_on_grid,  # leaves the NFE counter alone: a plot is not a solve
    )

    ax = _ax(ax)
    X, Y, U, V = vector_field_on_grid(field, t, xlim, ylim, num, dims)
    ax.quiver(
        X.numpy(),
        Y.numpy(),
        U.numpy(),
        V.numpy(),
        **{"color": "0.4", "alpha": 0.8, **kw},
    )
    ax.set_aspect("equal")
    return ax


@torch.no_grad()
def plot_vector_field_1d(field, times, hlim=(-2, 2), num=15, ax=None):
    """Arrows (1, f(h, t)) over the (t, h) plane for a 1-d field: the slope field."""
    ax = _ax(ax)
    ts, hs = np.asarray(times), np.linspace(*hlim, num)
    T, H = np.meshgrid(ts, hs)
    nfe = field.nfe
    v = np.stack(
        [
            field(
                torch.tensor(float(t)),
                torch.as_tensor(hs, dtype=torch.float32)[:, None],
            ).numpy()[:, 0]
            for t in ts
        ],
        axis=1,
    )
    field.nfe = nfe
    norm = np.sqrt(1 + v**2)
    ax.quiver(
        T,
        H,
        1 / norm,
        v / norm,
        color="0.6",
        angles="xy",
        pivot="mid",
        scale=30,
    )
    ax.set_xlabel("t")
    ax.set_ylabel("h")
    return ax


def plot_features(features, y, ax=None, title=None):
    """Scatter of features (n, 2) or (n, 3) coloured by label."""
    f = np.asarray(torch.as_tensor(features).detach())
    if f.ndim != 2 or not 1 <= f.shape[1] <= 3:
        raise ValueError(
            f"features must have shape (n, 1), (n, 2) or (n, 3); got {f.shape}"
        )
    if len(np.asarray(torch.as_tensor(y)).reshape(-1)) != len(f):
        raise ValueError(
            f"y must hold one label per point of features ({len(f)})"
        )
    if f.shape[1] == 3 and ax is None:
        ax = _ax(None, projection="3d")
    ax = _ax(ax)
    c = label_colors(y)
    if f.shape[1] >= 3 and getattr(ax, "name", "") == "3d":
        ax.scatter(f[:, 0], f[:, 1], f[:, 2], c=c, s=4)
    elif f.shape[1] == 1:
        ax.scatter(f[:, 0], np.zeros(len(f)), c=c, s=6)
    else:
        ax.scatter(f[:, 0], f[:, 1], c=c, s=4)
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax


def smooth(values, window=1):
    """Moving average with a trailing window (window 1 = unchanged)."""
    v = np.asarray(values, dtype=float)
    if (
        isinstance(window, bool)
        or not isinstance(window, numbers.Integral)
        or window < 1
    ):
        raise ValueError(
            f"window must be a positive integer (1 = unchanged); got {window!r}"
        )
    if window <= 1:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    out[window - 1 :] = (c[window:] - c[:-window]) / window
    out[: window - 1] = c[1:window] / np.arange(1, window)
    return out


def plot_history_band(
    histories,
    key="loss",
    label=None,
    color=None,
    ax=None,
    window=1,
    every=1,
    log=False,
    stat="mean",
):
    """Mean +/- std (or median and quartiles) over seeds of ``history.<key>`` against iterations.

    histories : list of History (or dicts); runs cut to the shortest length.
    every : iterations per stored entry (results files store block means of ``every``
    iterations); entry i is drawn at iteration ``i * every``.
    log : log-scale y axis, with the band as geometric mean times/divided by the geometric
    std (an arithmetic band would dip below zero on a log axis).
    stat : ``"mean"`` (mean +/- std, or the geometric band when ``log``) or ``"median"``
    (median line, band from the 25th to the 75th percentile): for bimodal seeds, where a
    mean sits between the modes and a std band covers the whole axis.
    """
    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median'; got {stat!r}")
    histories = list(histories)
    if not histories:
        raise ValueError(
            "histories is empty: pass at least one History (or dict)"
        )
    if not all(
        key in h if isinstance(h, dict) else hasattr(h, key) for h in histories
    ):
        raise ValueError(
            f"key {key!r} is not a series of every history (e.g. 'loss', "
            f"'nfe_forward', 'nfe_backward', 'accuracy')"
        )
    series = [
        np.asarray(
            h[key] if isinstance(h, dict) else getattr(h, key), dtype=float
        )
        for h in histories
    ]
    if min(len(s) for s in series) == 0:
        raise ValueError(f"histories: a run holds no {key!r} values")
    ax = _ax(ax)
    n = min(len(s) for s in series)
    arr = np.stack([smooth(s[:n], window) for s in series])
    it = np.arange(1, n + 1) * every
    if stat == "median":
        mean, lo, hi = (
            np.median(arr, 0),
            np.percentile(arr, 25, 0),
            np.percentile(arr, 75, 0),
        )
        if log:
            ax.set_yscale("log")
    elif log:
        logs = np.log(arr)
        mean, lo, hi = (
            np.exp(logs.mean(0)),
            np.exp(logs.mean(0) - logs.std(0)),
            np.exp(logs.mean(0) + logs.std(0)),
        )
        ax.set_yscale("log")
    else:
        mean, std = arr.mean(0), arr.std(0)
        lo, hi = mean - std, mean + std
    (line,) = ax.plot(it, mean, label=label, color=color)
    ax.fill_between(it, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key.replace("_", " "))
    return ax
