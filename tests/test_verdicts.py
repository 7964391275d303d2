"""The book's one verdict rule (anode_utils.verdicts) and how verdicts are shown (report)."""

import pytest
from test_report import sanitize

from anode_utils import report
from anode_utils import verdicts as V


def test_clear_difference_is_reproduced():
    v = V.compare("A lower", [1.0, 1.1, 0.9, 1.0], [2.0, 2.1, 1.9, 2.2])
    assert v.outcome == V.REPRODUCED and v.reproduced
    assert "beyond 2 SE" in v.reason


def test_higher_direction_and_reversed_difference():
    assert (
        V.compare("A higher", [3, 3.1, 2.9], [1, 1.1, 0.9], "higher").outcome
        == V.REPRODUCED
    )
    v = V.compare("A lower", [3, 3.1, 2.9], [1, 1.1, 0.9])
    assert v.outcome == V.NOT_REPRODUCED and "other way" in v.reason


def test_difference_within_noise_is_not_reproduced():
    v = V.compare(
        "A lower", [1.0, 2.0, 0.5, 1.8, 1.2], [1.1, 2.1, 0.6, 1.9, 1.3]
    )
    assert v.outcome == V.NOT_REPRODUCED and "within 2 SE" in v.reason


def test_mean_beyond_two_se_but_few_seed_pairs_agree_is_not_reproduced():
    # one huge outlier in B moves the mean; most pairs disagree with the claim
    a = [1.0] * 20
    b = [0.99] * 19 + [1000.0]
    v = V.compare("A lower", a, b)
    # the difference of means is within 2 SE here (the outlier inflates the SE) ...
    assert v.outcome == V.NOT_REPRODUCED
    # ... and with a tight outlier cluster the per-seed count decides
    b = [0.99] * 14 + [5.0] * 6
    v = V.compare("A lower", a, b)
    assert v.outcome == V.NOT_REPRODUCED and "seed comparisons" in v.reason


def test_too_few_seeds_or_a_named_reason_is_inconclusive():
    v = V.compare("A lower", [1.0, 1.1], [5.0, 5.1, 5.2])
    assert v.outcome == V.INCONCLUSIVE and "fewer than 3 seeds" in v.reason
    v = V.compare(
        "A lower",
        [1, 1.1, 1.2],
        [5, 5.1, 5.2],
        cannot_decide="both flows at 20 NFE",
    )
    assert v.outcome == V.INCONCLUSIVE and v.reason == "both flows at 20 NFE"


def test_bound():
    assert V.bound("below 0.05", [0.01, 0.02, 0.015, 0.012], 0.05).reproduced
    v = V.bound("below 0.05", [0.043, 0.03, 0.06, 0.045], 0.05)
    assert v.outcome == V.NOT_REPRODUCED
    assert V.bound("above 1", [1.5, 1.7, 1.6], 1.0, "higher").reproduced
    assert V.bound("above 1", [1.5], 1.0, "higher").outcome == V.INCONCLUSIVE


def test_ties_count_one_half():
    v = V.compare("A lower", [20, 20, 20], [20, 20, 20])
    assert v.outcome == V.NOT_REPRODUCED and "50% of seed pairs" in v.measured


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: V.compare("", [1], [2]), "claim"),
        (lambda: V.compare("c", [1, 2, 3], [1, 2, 3], "down"), "direction"),
        (lambda: V.compare("c", "abc", [1, 2, 3]), "a must be a sequence"),
        (
            lambda: V.compare("c", [1, float("nan"), 2], [1, 2, 3]),
            "non-finite",
        ),
        (lambda: V.compare("c", [], [1, 2, 3]), "at least one"),
        (lambda: V.bound("c", [1, 2, 3], float("inf")), "limit"),
        (
            lambda: V.compare("c", [1, 2, 3], [1, 2, 3], cannot_decide=""),
            "cannot_decide",
        ),
        (lambda: V.count([1]), "Verdict"),
    ],
)
def test_bad_inputs_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_count():
    vs = [
        V.compare("x", [1, 1.1, 1.2], [5, 5.1, 5.2]),
        V.compare("y", [1, 2], [1, 2]),
    ]
    assert V.count(vs) == {
        V.REPRODUCED: 1,
        V.NOT_REPRODUCED: 0,
        V.INCONCLUSIVE: 1,
    }


def test_shown_verdict_wraps_and_masks_figures():
    v = V.compare(
        "ANODE's final training loss is lower than the NODE's in d = 2 "
        "at the authors' settings",
        [0.01, 0.012, 0.011],
        [0.2, 0.25, 0.3],
        label=("ANODE", "NODE"),
    )
    line = report.Line(v.outcome, f"{v.claim} ({v.reason}).", v.measured)
    text = repr(line)
    assert text.startswith("Reproduced: ANODE's final")
    assert max(len(s) for s in text.splitlines()) <= report.WIDTH
    other = V.compare(
        v.claim,
        [0.011, 0.013, 0.012],
        [0.21, 0.26, 0.31],
        label=("ANODE", "NODE"),
    )
    other_line = report.Line(
        other.outcome, f"{other.claim} ({other.reason}).", other.measured
    )
    assert text != repr(other_line)
    assert sanitize(text) == sanitize(repr(other_line))
    assert sanitize(line._repr_html_()) == sanitize(other_line._repr_html_())
    assert "[measured]" in sanitize(text) and "Reproduced" in sanitize(
        line._repr_html_()
    )


def test_verdict_takes_only_verdicts():
    with pytest.raises(ValueError, match="Verdict"):
        report.verdict(True)


def test_figures_must_not_hold_brackets():
    with pytest.raises(ValueError, match="parentheses"):
        report.Line("check", "x", "a [b]")
