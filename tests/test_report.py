"""The claim/measured convention: nbval compares verdicts, the sanitizer masks exact figures."""

import configparser
import pathlib
import re

import pytest

from anode_utils import report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sanitizer_rules():
    """(regex, replace) pairs of nbval_sanitize.cfg, in file order (as nbval reads them)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "nbval_sanitize.cfg")
    return [(cfg[s]["regex"], cfg[s]["replace"]) for s in cfg.sections()]


def sanitize(text):
    for regex, replace in sanitizer_rules():
        text = re.sub(regex, replace, text)
    return text


def test_sanitizer_file_holds_the_report_rules():
    rules = sanitizer_rules()
    for rule in report.SANITIZE_RULES:
        assert rule in rules, (
            f"nbval_sanitize.cfg lacks {rule}: measured figures would be compared"
        )


def test_check_lines_show_figures_masked_and_the_outcome_compared():
    a = report.Line("check", "loss below 0.1.", "0.0123 (range 0.01 to 0.02)")
    b = report.Line("check", "loss below 0.1.", "0.0456 (range 0.04 to 0.05)")
    failed = report.Line("check failed", "loss below 0.1.", "0.0123")
    assert (
        repr(a)
        == "Check: loss below 0.1.\n[measured: 0.0123 (range 0.01 to 0.02)]"
    )
    assert repr(a) != repr(b) and sanitize(repr(a)) == sanitize(repr(b))
    assert sanitize(a._repr_html_()) == sanitize(b._repr_html_())
    assert sanitize(repr(failed)) != sanitize(repr(a)), (
        "a flipped check must still be seen by nbval"
    )
    assert repr(report.Line("measured", "seed 0:", "final MSE 0.013")) == (
        "seed 0:\n[measured: final MSE 0.013]"
    )


def test_long_lines_wrap_to_the_column_and_their_figures_stay_masked():
    line = report.Line("check", "a" * 70 + " " + "b" * 30 + ".", "x " * 60)
    text = repr(line)
    assert max(len(row) for row in text.splitlines()) <= report.WIDTH
    assert (
        sanitize(text)
        == "Check: " + "a" * 70 + "\n" + "b" * 30 + ".\n[measured]"
    )


def test_tables_are_masked_whole():
    t1 = report.markdown_table(
        ["model", "MSE"], [["NODE", 0.5], ["ANODE", 0.01]]
    )
    t2 = report.markdown_table(
        ["model", "MSE"], [["NODE", 0.6], ["ANODE", 0.02]]
    )
    assert t1.startswith(report.TABLE_MARK) and "| NODE | 0.500 |" in t1
    assert sanitize(t1) == sanitize(t2)


def test_table_rows_must_match_the_header():
    with pytest.raises(ValueError, match="cells"):
        report.markdown_table(["a", "b"], [[1]])
