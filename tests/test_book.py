"""The book's invariants: every chapter is listed, executed, and installs from one URL in Colab."""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toc_files():
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"file:\s*(\S+)", text) + re.findall(
        r"root:\s*(\S+)", text
    )


def book_notebooks():
    return sorted(
        p
        for p in (ROOT / "book").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def repo_url():
    import yaml

    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"][
        "url"
    ]


def test_book_has_chapters():
    assert book_notebooks(), "book/ has no notebooks"


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_notebook_is_in_toc(nb):
    rel = nb.relative_to(ROOT).with_suffix("").as_posix()
    assert rel in toc_files(), (
        f"{rel} is not listed in _toc.yml, so the book does not render it "
        f"(nbval still runs it): add it under a part of _toc.yml"
    )


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_every_code_cell_has_stored_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    unrun = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        and "".join(c["source"]).strip()
        and c.get("execution_count") is None
    ]
    assert not unrun, (
        f"{nb.name}: code cells {unrun} have no stored outputs, so nbval would compare nothing; "
        f"execute the notebook (see CONTRIBUTING.md, 'Re-execute and store') and commit it"
    )
    counts = [
        c["execution_count"]
        for c in cells
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{nb.name}: execution counts {counts} are not 1..{len(counts)}: the stored outputs do not come from one "
        f"fresh top-to-bottom run; re-run it with `jupyter execute --inplace` (see CONTRIBUTING.md, 'Re-execute and store')"
    )


# a cell whose code prints, shows a figure or reports a claim must have stored what it showed
_PRODUCES_OUTPUT = re.compile(
    r"\bprint\(|plt\.show\(\)|\bdisplay\(|report\.(claim|measured|table)\("
)


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_cells_that_show_something_have_stored_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    empty = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        and _PRODUCES_OUTPUT.search("".join(c["source"]))
        and "google.colab" not in "".join(c["source"])
        and not c.get("outputs")
    ]
    assert not empty, (
        f"{nb.name}: cells {empty} print, plot or report but stored no output (outputs stripped?): "
        f"nbval would compare nothing there; re-execute the notebook and commit it"
    )


_RESULT_LINE = re.compile(
    r"^(Reproduced|Not reproduced|Inconclusive|Check|Check failed): ", re.M
)


def _plain_outputs(cell):
    """The text nbval compares for a cell: streams and the text/plain of rich outputs."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append("".join(o["text"]))
        elif "text/plain" in o.get("data", {}) and not any(
            "widget-view" in k for k in o["data"]
        ):  # a widget's text/plain is a fallback the book never shows
            out.append("".join(o["data"]["text/plain"]))
    return out


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_chapter_states_verdicts_or_checks(nb):
    """Every chapter stores at least one compared verdict or check (a line, or, on the
    claims page and the introduction, a cell of an HTML table of verdicts)."""
    text, html = "", ""
    for c in json.loads(nb.read_text())["cells"]:
        tags = c.get("metadata", {}).get("tags", [])
        if c["cell_type"] == "code" and "nbval-ignore-output" not in tags:
            text += "\n".join(_plain_outputs(c))
            for o in c.get("outputs", []):
                html += "".join(o.get("data", {}).get("text/html", ""))
    in_table = re.search(r">(reproduced|not reproduced|inconclusive)<", html)
    assert _RESULT_LINE.search(text) or in_table, (
        f"{nb.name}: no stored verdict or check for nbval to compare"
    )


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_every_verdict_goes_through_the_rule(nb):
    """Empirical claims are decided by anode_utils.verdicts and shown by report.verdict; the
    old free-form claim/measured printers (a boolean decided anywhere) are not used."""
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        src = "".join(c["source"]) if c["cell_type"] == "code" else ""
        assert not re.search(r"report\.(claim|measured)\(", src), (
            f"{nb.name}, cell {i}: report.claim/measured decide outside the one rule; use "
            f"report.verdict(verdicts.compare/bound(...)) or report.check for exact facts"
        )
        for text in _plain_outputs(c):
            assert not re.search(r": (True|False)$", text, re.M), (
                f"{nb.name}, cell {i}: a stored 'claim: True/False' line: re-execute the chapter"
            )


_HIDDEN = {"hide-input", "remove-input", "remove-cell"}


def _visible_code_lines(nb):
    lines = []
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] == "code" and not _HIDDEN & set(
            c.get("metadata", {}).get("tags", [])
        ):
            lines += "".join(c["source"]).splitlines()
    return lines


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_visible_code_reads_as_code(nb):
    """Visible code fits the code box (79 characters) and is mostly not bookkeeping: at most
    10% of its lines call anode_utils.report."""
    lines = _visible_code_lines(nb)
    long = [line for line in lines if len(line) > 79]
    assert not long, (
        f"{nb.name}: {len(long)} visible code lines over 79 characters: {long[0]!r}"
    )
    report_lines = [line for line in lines if "report." in line]
    assert len(report_lines) <= 0.1 * max(len(lines), 1), (
        f"{nb.name}: {len(report_lines)} of {len(lines)} visible code lines call report; move "
        f"checking into remove-input cells"
    )


def test_no_session_or_machine_talk():
    """The book and README speak of the book and of named hardware, not of sessions or of
    'this machine'."""
    pages = (
        [ROOT / "README.md"]
        + sorted((ROOT / "book").glob("*.md"))
        + book_notebooks()
    )
    pages += sorted(ROOT.glob("intro.*"))
    for page in pages:
        text = page.read_text()
        if page.suffix == ".ipynb":
            text = "\n".join(
                "".join(c["source"]) + "\n".join(_plain_outputs(c))
                for c in json.loads(text)["cells"]
            )
        found = re.search(r"\bsessions?\b|this machine", text, re.I)
        assert not found, f"{page.name}: says {found.group(0)!r}"


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_colab_cell_installs_from_configured_repository(nb):
    cells = [
        c
        for c in json.loads(nb.read_text())["cells"]
        if c["cell_type"] == "code"
    ]
    first = "".join(cells[0]["source"])
    assert '"google.colab" in sys.modules' in first, (
        f"{nb.name}: the first code cell must be the Colab install cell"
    )
    assert f"git+{repo_url()}" in first, (
        f"{nb.name}: the Colab cell must install from {repo_url()} (_config.yml)"
    )
    assert cells[0]["outputs"] == [], (
        f"{nb.name}: outside Colab the install cell must print nothing"
    )


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_no_unstable_or_uncompared_outputs(nb):
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        tags = set(c.get("metadata", {}).get("tags", []))
        ignored = (
            "NBVAL_IGNORE_OUTPUT" in src
            or "NBVAL_SKIP" in src
            or bool(tags & {"nbval-ignore-output", "nbval-skip"})
        )
        for o in c.get("outputs", []):
            if o.get("name") == "stderr" and not ignored:
                pytest.fail(
                    f"{nb.name}: a compared cell writes to stderr (warnings or progress bars): "
                    f"{''.join(o['text'])[:200]!r}"
                )
            if "image/svg+xml" in o.get("data", {}):
                pytest.fail(
                    f"{nb.name}: SVG figures are compared textually by nbval; use PNG"
                )
            if o.get("output_type") == "error":
                pytest.fail(f"{nb.name}: a cell stored an error")


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_text_outputs_fit_the_rendered_column(nb):
    """Text lines wider than the book's output column (78 characters at 1300 px) are cut off
    on the page: use report.table for tables and keep printed lines short."""
    from anode_utils.report import WIDTH

    wide = []
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        for text in _plain_outputs(c):
            wide += [
                (i, line) for line in text.splitlines() if len(line) > WIDTH
            ]
    assert not wide, (
        f"{nb.name}: {len(wide)} text lines wider than {WIDTH} characters, e.g. cell {wide[0][0]}: "
        f"{wide[0][1][:120]!r}"
    )
