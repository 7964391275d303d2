"""One call at the top of every chapter: same numbers on any machine, no noise in outputs."""
import sys
import warnings

import matplotlib
import torch

IN_COLAB = "google.colab" in sys.modules


def setup(seed=0, threads=1, dpi=80, device="cpu"):
    """Seed torch, use ``threads`` CPU threads, quiet warnings, size figures for the web (PNG at
    twice the resolution, "retina"), and return the torch device the chapter computes on.

    One thread is both the fastest setting for these small models and the one that makes
    stored outputs independent of the machine's core count.

    device : ``"cpu"`` (default: the stored outputs were computed there, so a GPU machine
        reproduces them too), ``"cuda"`` to opt in to a GPU (a Colab GPU runtime, say; the
        numbers then differ in their last digits), or ``"auto"`` for CUDA when available.
    """
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto'; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no GPU; in Colab choose "
                         "Runtime > Change runtime type > GPU, or use device='cpu'")
    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": (5, 3.5),
                                "axes.spines.top": False, "axes.spines.right": False})
    try:  # PNGs at twice the resolution, displayed at the same size: sharp on high-density screens
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")
    except Exception:  # outside IPython there is no inline backend to configure
        pass
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
