"""One call at the top of every chapter: same numbers on any machine, no noise in outputs."""
import sys
import warnings

import matplotlib
import torch

IN_COLAB = "google.colab" in sys.modules


def setup(seed=0, threads=1, dpi=80):
    """Seed torch, use ``threads`` CPU threads, quiet warnings and size figures for the web.

    One thread is both the fastest setting for these small models and the one that makes
    stored outputs independent of the machine's core count.
    """
    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": (5, 3.5),
                                "axes.spines.top": False, "axes.spines.right": False})
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
