"""The book's one verdict rule for an empirical claim, fixed before any result is read.

Every claim the book tests over seeds (the paper's and its own) is decided here, the same
way in every chapter and on the claims page. A claim compares a metric between two models
(:func:`compare`: "A's final loss is lower than B's") or against a bound (:func:`bound`:
"the NFE ratio is above 1"). With ``a`` and ``b`` the per-seed values:

1. **inconclusive** when the set-up cannot decide, whatever the numbers: fewer than
   :data:`MIN_SEEDS` seeds in an arm, or a reason named in advance (``cannot_decide``:
   e.g. both flows stay at the solver's floor of 20 NFE, or the models do not beat a
   readout-only baseline);
2. **reproduced** when the difference of means lies in the claimed direction by more than
   :data:`Z` standard errors **and** at least :data:`MIN_SHARE` of the seed comparisons agree
   (all pairs ``(a_i, b_j)`` for two models, since seed numbers of two models are not
   paired; each seed against the bound for a bound);
3. **not reproduced** otherwise: the set-up could decide, and the data do not show the claim.

Standard errors use sample standard deviations (ddof = 1); for two models the standard
error of the difference of independent means, ``sqrt(s_a^2/n_a + s_b^2/n_b)``. Ties in the
pair count count one half.
"""

import dataclasses
import math

from .stats import standard_error

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
#: Fewest seeds per arm for a decision.
MIN_SEEDS = 3
#: Standard errors the difference must exceed.
Z = 2.0
#: Share of seed comparisons that must agree with the claim.
MIN_SHARE = 0.75
DIRECTIONS = ("lower", "higher")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One decided claim. ``outcome`` is one of :data:`OUTCOMES`; ``reason`` says which part
    of the rule decided it; ``measured`` holds the exact figures (shown, masked for nbval)."""

    claim: str
    outcome: str
    reason: str
    measured: str

    @property
    def reproduced(self):
        return self.outcome == REPRODUCED


def _values(name, values):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(
            f"{name} must be a sequence of per-seed numbers; got {values!r}"
        )
    out = []
    for v in values:
        v = float(v) if v is not None else math.nan
        out.append(v)
    finite = [v for v in out if math.isfinite(v)]
    if len(finite) < len(out):
        raise ValueError(
            f"{name} holds {len(out) - len(finite)} non-finite value(s); a seed "
            f"that failed must be reported, not averaged: drop it and say so"
        )
    return finite


def _check_text(name, value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")
    return value


def _fmt(x):
    return f"{x:.3g}"


def _mean(v):
    return sum(v) / len(v)


def _undecidable(claim, cannot_decide, counts, measured):
    if cannot_decide is not None:
        return Verdict(
            claim,
            INCONCLUSIVE,
            _check_text("cannot_decide", cannot_decide),
            measured,
        )
    if min(counts) < MIN_SEEDS:
        return Verdict(
            claim, INCONCLUSIVE, f"fewer than {MIN_SEEDS} seeds", measured
        )
    return None


def _decide(claim, diff, se, share, measured, what):
    # the reason names the part of the rule that decided, not the figures (those are measured)
    if diff > Z * se and share >= MIN_SHARE:
        return Verdict(
            claim,
            REPRODUCED,
            f"{what} beyond {Z:g} SE and at least "
            f"{MIN_SHARE:.0%} of seed comparisons agree",
            measured,
        )
    if diff <= Z * se:
        reason = (
            f"{what} within {Z:g} SE"
            if diff > -Z * se
            else f"{what} beyond {Z:g} SE the other way"
        )
    else:
        reason = f"fewer than {MIN_SHARE:.0%} of seed comparisons agree"
    return Verdict(claim, NOT_REPRODUCED, reason, measured)


def compare(
    claim, a, b, direction="lower", cannot_decide=None, label=("A", "B")
):
    """Decide "metric of A is ``direction`` than B's" over seeds (see the module docstring).

    a, b : per-seed values of the two models (any lengths; not paired by seed number)
    direction : ``"lower"`` or ``"higher"`` (what the claim says of A)
    cannot_decide : None, or the reason, named before the run, why the set-up cannot decide
    label : names of A and B in the measured figures
    """
    claim = _check_text("claim", claim)
    if direction not in DIRECTIONS:
        raise ValueError(
            f"direction must be 'lower' or 'higher'; got {direction!r}"
        )
    a, b = _values("a", a), _values("b", b)
    if not a or not b:
        raise ValueError("a and b need at least one value each")
    sign = 1.0 if direction == "lower" else -1.0
    diff = sign * (_mean(b) - _mean(a))
    se = standard_error(a, b) if min(len(a), len(b)) >= 2 else math.inf
    wins = sum(
        1.0 if sign * (bj - ai) > 0 else 0.5 if bj == ai else 0.0
        for ai in a
        for bj in b
    )
    share = wins / (len(a) * len(b))
    measured = (
        f"{label[0]} {_fmt(_mean(a))}, {label[1]} {_fmt(_mean(b))} (means of "
        f"{len(a)} and {len(b)} seeds); difference {_fmt(_mean(a) - _mean(b))}, "
        f"SE {_fmt(se)}; {share:.0%} of seed pairs agree"
    )
    return _undecidable(
        claim, cannot_decide, (len(a), len(b)), measured
    ) or _decide(claim, diff, se, share, measured, "difference")


def bound(
    claim, values, limit, direction="lower", cannot_decide=None, label="mean"
):
    """Decide "the metric is ``direction`` than ``limit``" over seeds: the mean beyond the
    bound by more than Z standard errors of the mean, and at least MIN_SHARE of the seeds
    beyond it (see the module docstring)."""
    claim = _check_text("claim", claim)
    if direction not in DIRECTIONS:
        raise ValueError(
            f"direction must be 'lower' or 'higher'; got {direction!r}"
        )
    if (
        isinstance(limit, bool)
        or not isinstance(limit, (int, float))
        or not math.isfinite(limit)
    ):
        raise ValueError(f"limit must be a finite number; got {limit!r}")
    v = _values("values", values)
    if not v:
        raise ValueError("values needs at least one value")
    sign = 1.0 if direction == "lower" else -1.0
    diff = sign * (limit - _mean(v))
    se = standard_error(v) if len(v) >= 2 else math.inf
    share = sum(1.0 if sign * (limit - x) > 0 else 0.0 for x in v) / len(v)
    measured = (
        f"{label} {_fmt(_mean(v))} over {len(v)} seeds (range {_fmt(min(v))} to "
        f"{_fmt(max(v))}), SE {_fmt(se)}; bound {_fmt(limit)}; {share:.0%} of seeds "
        f"{'below' if sign > 0 else 'above'} it"
    )
    return _undecidable(claim, cannot_decide, (len(v),), measured) or _decide(
        claim, diff, se, share, measured, "distance to the bound"
    )


def count(verdicts):
    """``{outcome: number}`` over a list of verdicts (every outcome present, zeros included)."""
    out = {o: 0 for o in OUTCOMES}
    for v in verdicts:
        if not isinstance(v, Verdict):
            raise ValueError(
                f"count takes Verdict objects; got {type(v).__name__}"
            )
        out[v.outcome] += 1
    return out


__all__ = [
    "DIRECTIONS",
    "INCONCLUSIVE",
    "MIN_SEEDS",
    "MIN_SHARE",
    "NOT_REPRODUCED",
    "OUTCOMES",
    "REPRODUCED",
    "Verdict",
    "Z",
    "bound",
    "compare",
    "count",
]
