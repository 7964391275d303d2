"""Figures of the toy chapters (4-6): data scatters with axis labels, loss and NFE bands
read from the stored results files, and per-seed dot plots of the values a verdict uses.

Every function draws on a given matplotlib axis and returns it; none sets the figure size
(the chapters draw at the size the book shows, about 8.5 inches wide at 80 dpi).
"""

import numpy as np
import torch

from .plots import label_colors, plot_history_band
from .toy_results import result_histories

#: Label and colour of each experiment of the stored toy results files.
MODELS = {
    "node": ("NODE", "C0"),
    "anode": ("ANODE, p = 1", "C1"),
    "anode_p5": ("ANODE, p = 5", "C3"),
    "resnet": ("ResNet", "C2"),
}


def model_label(name):
    """Display name of an experiment (``'anode_p5'`` -> ``'ANODE, p = 5'``)."""
    return MODELS[name][0] if name in MODELS else name


def scatter_data(ax, x, y, title=None, jitter=0.3, seed=0, s=4):
    """Scatter a toy data set coloured by label, with axis labels on the panel.

    x : (n, 1) or (n, 2) inputs; in d = 1 the points are spread vertically by a uniform
    jitter of total height ``jitter`` (drawn from ``seed``) so that they can be seen.
    """
    x = np.asarray(torch.as_tensor(x).detach(), dtype=float)
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        raise ValueError(f"x must have shape (n, 1) or (n, 2); got {x.shape}")
    c = label_colors(y)
    if x.shape[1] == 1:
        spread = np.random.default_rng(seed).uniform(
            -jitter / 2, jitter / 2, len(x)
        )
        ax.scatter(x[:, 0], spread, c=c, s=s)
        ax.set_xlabel("$x$")
        ax.set_ylabel("jitter (for visibility)")
        ax.set_yticks([])
    else:
        ax.scatter(x[:, 0], x[:, 1], c=c, s=s)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax


def result_bands(
    ax, results, names, key="loss", log=None, title=None, ylabel=None
):
    """Mean band over seeds of one series of several experiments of a results file.

    key : ``'loss'``, ``'nfe_forward'``, ... (per-iteration series, stored as block means);
    log defaults to True for the loss. Labels carry the model and its number of seeds.
    """
    log = (key == "loss") if log is None else log
    for name in names:
        hs = result_histories(results, name)
        label, color = MODELS.get(name, (name, None))
        plot_history_band(
            hs,
            key,
            label=f"{label} ({len(hs)} seeds)",
            color=color,
            ax=ax,
            every=results["record_every"],
            log=log,
        )
    if title:
        ax.set_title(title)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def seed_dots(ax, groups, log=False, ylabel=None, seed=0):
    """Per-seed values as dots, one column per group, with the group mean as a bar.

    groups : sequence of (label, values, colour). Returns ax.
    """
    rng = np.random.default_rng(seed)
    labels = []
    for i, (label, values, color) in enumerate(groups):
        v = np.asarray(values, dtype=float)
        ax.scatter(
            i + rng.uniform(-0.15, 0.15, len(v)),
            v,
            s=12,
            color=color,
            alpha=0.8,
        )
        ax.plot([i - 0.3, i + 0.3], [v.mean()] * 2, color="k", lw=1.5)
        labels.append(label)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    if log:
        ax.set_yscale("log")
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


__all__ = [
    "MODELS",
    "model_label",
    "result_bands",
    "scatter_data",
    "seed_dots",
]
