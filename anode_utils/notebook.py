"""One call at the top of every chapter: same numbers on any machine, no noise in outputs."""

import sys
import warnings

import matplotlib
import torch

IN_COLAB = "google.colab" in sys.modules

#: Third-party warnings a chapter silences, by (message start, category, module): each names
#: its source, so every other warning, the package's own included, still reaches the reader.
QUIET_WARNINGS = (
    # tqdm's notebook bar without ipywidgets falls back to text and says so at every bar
    # (attributed to the caller of the bar, so matched by its words anywhere)
    ("IProgress not found", Warning, ""),
    # torchdiffeq's notes about its own inputs (coerced devices, unused options)
    ("", UserWarning, "torchdiffeq"),
)


def setup(seed=0, threads=1, dpi=80, device="cpu"):
    """Seed torch, use ``threads`` CPU threads, quiet the third-party warnings named in
    :data:`QUIET_WARNINGS` (only those), size figures for the web (PNG at
    twice the resolution, "retina"), and return the torch device the chapter computes on.

    One thread is both the fastest setting for these small models and the one that makes
    stored outputs independent of the machine's core count.

    device : ``"cpu"`` (default: the stored outputs were computed there, so a GPU machine
        reproduces them too), ``"cuda"`` to opt in to a GPU (a Colab GPU runtime, say; the
        numbers then differ in their last digits), or ``"auto"`` for CUDA when available.
    """
    from ._checks import check_nonneg_int, check_pos_int, check_positive

    check_nonneg_int("seed", seed)
    check_pos_int("threads", threads)
    check_positive("dpi", dpi)
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'auto'; got {device!r}"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was asked for but torch sees no GPU; in Colab choose "
            "Runtime > Change runtime type > GPU, or use device='cpu'"
        )
    for message, category, module in QUIET_WARNINGS:
        warnings.filterwarnings(
            "ignore", message=message, category=category, module=module
        )
    # a training run that stops (train records it in history.error) is shown every time, not
    # only the first time a message comes up
    warnings.filterwarnings(
        "always", message="training stopped", category=RuntimeWarning
    )
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    matplotlib.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.figsize": (5, 3.5),
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    try:  # PNGs at twice the resolution, displayed at the same size: sharp on high-density screens
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except (
        Exception
    ):  # outside IPython there is no inline backend to configure
        pass
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
