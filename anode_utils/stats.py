"""Comparing results over seeds: the rule the claims page and the chapters apply."""

import numbers

import numpy as np


def standard_error(*samples):
    """Standard error of a mean (one sample) or of a difference of independent means (two):
    sqrt(sum s_i^2 / n_i) with sample standard deviations s_i (ddof = 1). samples: 1-d arrays."""
    if not samples:
        raise ValueError(
            "standard_error needs one or two samples (1-d arrays of per-seed values)"
        )
    arrays = [np.asarray(s, dtype=float).reshape(-1) for s in samples]
    if any(len(a) < 2 for a in arrays):
        raise ValueError(
            f"each of the samples needs at least two values (seeds) for a standard "
            f"error; got sizes {[len(a) for a in arrays]}"
        )
    return float(np.sqrt(sum(a.var(ddof=1) / len(a) for a in arrays)))


def clearly_below(a, b, k=2.0):
    """True when mean(a) < mean(b) by more than ``k`` standard errors of the difference: the
    comparison rule of the claims page (a difference smaller than that is within seed noise)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if (
        isinstance(k, bool)
        or not isinstance(k, numbers.Real)
        or not k >= 0
        or not np.isfinite(k)
    ):
        raise ValueError(
            f"k (standard errors) must be a finite number >= 0; got {k!r}"
        )
    return bool(b.mean() - a.mean() > k * standard_error(a, b))


__all__ = ["clearly_below", "standard_error"]
