"""Figures of the image chapter from image results files (:mod:`anode_utils.image_results`):
the paper's Fig. 10 (training loss and forward NFE against iterations, NFE against loss) and
Fig. 11 (test accuracy against NFE), NODE against ANODE, mean and spread over seeds.

``runs`` arguments are dicts label -> results (as returned by
:func:`~anode_utils.image_results.load_image_results`), e.g. ``{"NODE": node, "ANODE": anode}``.
Each function draws on Axes and returns them.
"""

import matplotlib.pyplot as plt
import numpy as np

from .image_results import image_histories
from .plots import BLUE, RED, _ax, plot_history_band, smooth

#: Default colours: the first model blue, the second red (NODE, ANODE in the book).
COLORS = (BLUE, RED, "#2ca02c", "#9467bd")


def _colors(runs, colors=None):
    colors = colors or {}
    return {
        label: colors.get(label, COLORS[i % len(COLORS)])
        for i, label in enumerate(runs)
    }


def _histories(results):
    hs = [h for h in image_histories(results) if len(h)]
    if not hs:
        raise ValueError("the results hold no run with recorded iterations")
    return hs


def plot_image_series(
    results, key="loss", label=None, color=None, ax=None, window=10, log=False
):
    """Mean +/- std over seeds of a per-iteration series (``'loss'``, ``'nfe_forward'``,
    ``'nfe_backward'``, ``'accuracy'``) against iterations, smoothed over ``window``
    iterations; seeds are cut to the shortest run."""
    hs = _histories(results)
    window = max(
        1, min(window, min(len(h) for h in hs))
    )  # short runs: no wider than the run
    ax = plot_history_band(
        hs, key, label=label, color=color, ax=ax, window=window, log=log
    )
    ax.set_ylabel(
        {
            "loss": "training loss",
            "nfe_forward": "forward NFE",
            "nfe_backward": "backward NFE",
            "accuracy": "training accuracy",
        }.get(key, key)
    )
    return ax


def plot_nfe_vs_loss(results, label=None, color=None, ax=None, window=10):
    """Forward NFE against training loss: each seed's smoothed path (thin) and the mean over
    seeds (thick), iterations in order (training moves leftwards as the loss falls)."""
    ax = _ax(ax)
    hs = _histories(results)
    n = min(len(h) for h in hs)
    window = max(1, min(window, n))
    loss = np.stack([smooth(h.loss[:n], window) for h in hs])
    nfe = np.stack([smooth(h.nfe_forward[:n], window) for h in hs])
    (line,) = ax.plot(
        loss.mean(0), nfe.mean(0), color=color, label=label, lw=1.8
    )
    if len(hs) > 1:
        for lo, nf in zip(loss, nfe):
            ax.plot(lo, nf, color=line.get_color(), lw=0.6, alpha=0.35)
    ax.set_xlabel("training loss")
    ax.set_ylabel("forward NFE")
    return ax


def plot_fig10(runs, window=10, axes=None, colors=None, log_loss=False):
    """The paper's Fig. 10 for one data set: training loss vs iteration, forward NFE vs
    iteration, forward NFE vs loss; one curve (mean, with a +/- std band over seeds) per model.
    Returns the three Axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colors = _colors(runs, colors)
    for label, res in runs.items():
        plot_image_series(
            res, "loss", label, colors[label], axes[0], window, log=log_loss
        )
        plot_image_series(
            res, "nfe_forward", label, colors[label], axes[1], window
        )
        plot_nfe_vs_loss(res, label, colors[label], axes[2], window)
    for ax in axes:
        ax.legend(fontsize=8)
    return axes


def accuracy_vs_nfe(results):
    """Per seed: (mean forward NFE over each completed epoch, test accuracy after it), as two
    lists of equal length."""
    points = []
    for r, h in zip(results["runs"], image_histories(results)):
        nfe = h.epoch_means("nfe_forward")
        acc = list(r.get("test_accuracy_per_epoch") or [])
        k = min(len(nfe), len(acc))
        points.append((nfe[:k], acc[:k]))
    return points


def plot_accuracy_vs_nfe(results, label=None, color=None, ax=None):
    """Test accuracy after each epoch against the mean forward NFE over that epoch: each seed's
    epochs as small dots, the mean over seeds per epoch as a line with +/- std error bars."""
    ax = _ax(ax)
    points = [(n, a) for n, a in accuracy_vs_nfe(results) if n]
    if not points:
        raise ValueError(
            "the results hold no completed epoch with a test accuracy"
        )
    k = min(len(n) for n, _ in points)
    nfe = np.array([n[:k] for n, _ in points], dtype=float)
    acc = np.array([a[:k] for _, a in points], dtype=float)
    return _epoch_curve(ax, nfe, acc, points, label, color, "test accuracy")


def plot_fig11(runs, ax=None, colors=None):
    """The paper's Fig. 11 for one data set: test accuracy against forward NFE, one curve per
    model (epochs in order), mean and spread over seeds."""
    ax = _ax(ax)
    colors = _colors(runs, colors)
    for label, res in runs.items():
        plot_accuracy_vs_nfe(res, label, colors[label], ax)
    ax.legend(fontsize=8)
    return ax


def plot_training_accuracy_vs_nfe(results, label=None, color=None, ax=None):
    """The paper's Fig. 11 as drawn there: training accuracy against forward NFE over
    training. Per epoch, the training-batch accuracy and the forward NFE recorded at each
    iteration are averaged; the line joins the means over seeds epoch by epoch (with +/- std
    error bars), dots are single seeds' epochs."""
    ax = _ax(ax)
    hs = [h for h in image_histories(results) if h.epoch_end]
    if not hs:
        raise ValueError("the results hold no completed epoch")
    k = min(len(h.epoch_end) for h in hs)
    nfe = np.array([h.epoch_means("nfe_forward")[:k] for h in hs], dtype=float)
    acc = np.array([h.epoch_means("accuracy")[:k] for h in hs], dtype=float)
    dots = list(zip(nfe, acc))
    ylabel = "training accuracy (mean over the epoch)"
    return _epoch_curve(ax, nfe, acc, dots, label, color, ylabel)


def _epoch_curve(ax, nfe, acc, dots, label, color, ylabel):
    """Fig. 11's drawing: the means over seeds epoch by epoch (+/- std bars), joined, and
    each seed's epochs as dots. nfe, acc: (seeds, epochs) arrays; dots: (nfe, acc) pairs."""
    bars = ax.errorbar(
        nfe.mean(0),
        acc.mean(0),
        xerr=nfe.std(0),
        yerr=acc.std(0),
        color=color,
        label=label,
        marker="o",
        ms=4,
        lw=1.5,
        capsize=2,
    )
    c = bars.lines[0].get_color()
    for n, a in dots:
        ax.scatter(n, a, color=c, s=8, alpha=0.4)
    ax.set_xlabel("forward NFE (mean over the epoch)")
    ax.set_ylabel(ylabel)
    return ax


__all__ = [
    "accuracy_vs_nfe",
    "plot_accuracy_vs_nfe",
    "plot_fig10",
    "plot_fig11",
    "plot_image_series",
    "plot_nfe_vs_loss",
    "plot_training_accuracy_vs_nfe",
]
