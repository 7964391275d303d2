"""Figures of the theory chapters (1-d map, homeomorphisms, gap analysis). Each function
draws on an Axes (or a row of Axes) and returns it."""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle

from .plots import BLUE, RED, _ax, label_colors


def plot_g1d_crossing(ax=None):
    """Diagram: any continuous paths taking -1 to 1 and 1 to -1 over t in [0, 1] must meet."""
    ax = _ax(ax)
    t = np.linspace(0, 1, 100)
    up = -1 + 2 * t + 0.4 * np.sin(np.pi * t)
    down = 1 - 2 * t + 0.4 * np.sin(np.pi * t) * (1 - 2 * t)
    ax.plot(t, up, color=RED, lw=2, label="-1 → 1")
    ax.plot(t, down, color=BLUE, lw=2, label="1 → -1")
    k = np.argmin(np.abs(up - down))
    ax.scatter(
        [t[k]],
        [up[k]],
        s=80,
        facecolor="none",
        edgecolor="k",
        zorder=3,
        label="they must meet",
    )
    ax.set_xlabel("t")
    ax.set_ylabel("h(t)")
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_g_regions(r1=0.5, r2=1.0, r3=1.5, ax=None):
    """The map g(x) for d = 2: ball ||x|| <= r1 -> -1 (blue), annulus r2 <= ||x|| <= r3 -> +1 (red)."""
    ax = _ax(ax)
    ax.add_patch(Circle((0, 0), r3, color=RED, alpha=0.35, lw=0))
    ax.add_patch(Circle((0, 0), r2, color="white", lw=0))
    ax.add_patch(Circle((0, 0), r1, color=BLUE, alpha=0.5, lw=0))
    for r in (r1, r2, r3):
        ax.add_patch(Circle((0, 0), r, fill=False, color="0.3", lw=0.8))
    ax.text(0, 0, "g = -1", ha="center", va="center", fontsize=9)
    ax.text(0, -(r2 + r3) / 2, "g = +1", ha="center", va="center", fontsize=9)
    ax.annotate(
        "", xy=(r1, 0), xytext=(0, 0), arrowprops=dict(arrowstyle="->", lw=0.8)
    )
    ax.text(r1 / 2, 0.05, "$r_1$", ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-r3 * 1.1, r3 * 1.1)
    ax.set_ylim(-r3 * 1.1, r3 * 1.1)
    ax.set_aspect("equal")
    return ax


def _circles(ax, radii, color="0.3"):
    for r in radii:
        ax.add_patch(
            Circle((0, 0), r, fill=False, color=color, lw=0.8, ls="--")
        )


def plot_gap_analysis(result, r1=0.5, r2=1.0, r3=1.5, ax=None, title=None):
    """Grid points of :func:`anode_utils.theory.gap_analysis` coloured by the side of the
    readout they end on (blue g < 0, red g > 0), with the wrong ones of the ball and the
    annulus circled in black."""
    ax = _ax(ax)
    x = np.asarray(result["x"])
    neg = np.asarray(result["g"] < 0)
    ax.scatter(x[:, 0], x[:, 1], c=np.where(neg, BLUE, RED), s=3, lw=0)
    wrong = np.asarray(
        (result["inner"] & ~(result["g"] < 0))
        | (result["annulus"] & (result["g"] < 0))
    )
    ax.scatter(
        x[wrong, 0], x[wrong, 1], s=14, facecolor="none", edgecolor="k", lw=0.6
    )
    _circles(ax, (r1, r2, r3))
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_snapshots(traj, times, y=None, axes=None, dims=(0, 1), lim=None, s=4):
    """One scatter per time: traj (len(times), n, D) states, projected on ``dims``.

    axes : a sequence of len(times) Axes (a new row is created when None).
    """
    traj = np.asarray(torch.as_tensor(traj).detach())
    times = np.asarray(torch.as_tensor(times))
    if axes is None:
        _, axes = plt.subplots(1, len(times), figsize=(2.4 * len(times), 2.6))
    axes = np.atleast_1d(axes)
    if len(axes) != len(times):
        raise ValueError(
            f"need one Axes per time: got {len(axes)} Axes for {len(times)} times"
        )
    colors = label_colors(y) if y is not None else "k"
    lim = (
        lim
        if lim is not None
        else float(np.abs(traj[..., list(dims)]).max()) * 1.05
    )
    for ax, t, h in zip(axes, times, traj):
        ax.scatter(h[:, dims[0]], h[:, dims[1]], c=colors, s=s, lw=0)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"t = {t:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


__all__ = [
    "plot_g1d_crossing",
    "plot_g_regions",
    "plot_gap_analysis",
    "plot_snapshots",
]
