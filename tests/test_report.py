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


def test_claim_prints_verdict_and_masked_figures(capsys):
    assert (
        report.claim("loss < 0.1", True, measured="0.0123") is None
    )  # no extra cell output
    report.claim("NFE grows", 0)
    out = capsys.readouterr().out
    assert out == "loss < 0.1: True   [measured: 0.0123]\nNFE grows: False\n"


def test_measured_figures_are_masked_but_verdicts_are_not(capsys):
    report.claim("loss < 0.1", True, measured="0.0123 [range 0.01, 0.02]")
    report.measured("seed 0:", "final MSE 0.013")
    a = capsys.readouterr().out
    report.claim("loss < 0.1", True, measured="0.0456 [range 0.04, 0.05]")
    report.measured("seed 0:", "final MSE 0.021")
    b = capsys.readouterr().out
    assert a != b and sanitize(a) == sanitize(b)
    report.claim("loss < 0.1", False, measured="0.0123 [range 0.01, 0.02]")
    report.measured("seed 0:", "final MSE 0.013")
    c = capsys.readouterr().out
    assert sanitize(c) != sanitize(a), (
        "a flipped verdict must still be seen by nbval"
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


def test_measured_figure_must_be_one_line():
    with pytest.raises(ValueError, match="one line"):
        report.claim("x", True, measured="a\nb")
    with pytest.raises(ValueError, match="cells"):
        report.markdown_table(["a", "b"], [[1]])


def test_long_claims_put_the_figures_on_their_own_line(capsys):
    report.claim("a" * 70, True, measured="x" * 30)
    first, second = capsys.readouterr().out.splitlines()
    assert (
        first == "a" * 70 + ": True"
        and second == "    [measured: " + "x" * 30 + "]"
    )
    assert sanitize(second) == "    [measured]"
