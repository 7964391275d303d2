"""The book's invariants: every chapter is listed, executed, and installs from one URL in Colab."""
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toc_files():
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"file:\s*(\S+)", text) + re.findall(r"root:\s*(\S+)", text)


def book_notebooks():
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def repo_url():
    import yaml
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_book_has_chapters():
    assert book_notebooks(), "book/ has no notebooks"


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_notebook_is_in_toc(nb):
    rel = nb.relative_to(ROOT).with_suffix("").as_posix()
    assert rel in toc_files(), (f"{rel} is not listed in _toc.yml, so the book does not render it "
                                f"(nbval still runs it): add it under a part of _toc.yml")


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_every_code_cell_has_stored_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    unrun = [i for i, c in enumerate(cells)
             if c["cell_type"] == "code" and "".join(c["source"]).strip() and c.get("execution_count") is None]
    assert not unrun, (f"{nb.name}: code cells {unrun} have no stored outputs, so nbval would compare nothing; "
                       f"execute the notebook (see README) and commit it")
    counts = [c["execution_count"] for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{nb.name}: execution counts {counts} are not 1..{len(counts)}: the stored outputs do not come from one "
        f"fresh top-to-bottom run; re-run it with `jupyter execute --inplace` (see README)")


# a cell whose code prints, shows a figure or reports a claim must have stored what it showed
_PRODUCES_OUTPUT = re.compile(r"\bprint\(|plt\.show\(\)|\bdisplay\(|report\.(claim|measured|table)\(")


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_cells_that_show_something_have_stored_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    empty = [i for i, c in enumerate(cells)
             if c["cell_type"] == "code" and _PRODUCES_OUTPUT.search("".join(c["source"]))
             and "google.colab" not in "".join(c["source"]) and not c.get("outputs")]
    assert not empty, (f"{nb.name}: cells {empty} print, plot or report but stored no output (outputs stripped?): "
                       f"nbval would compare nothing there; re-execute the notebook and commit it")


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_chapter_states_claims(nb):
    """Every chapter stores at least one compared claim line ('...: True' / '...: False')."""
    text = ""
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] == "code" and "nbval-ignore-output" not in c.get("metadata", {}).get("tags", []):
            text += "".join("".join(o.get("text", "")) for o in c.get("outputs", []))
    assert re.search(r": (True|False)\b", text), f"{nb.name}: no stored claim line for nbval to compare"


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_colab_cell_installs_from_configured_repository(nb):
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    first = "".join(cells[0]["source"])
    assert '"google.colab" in sys.modules' in first, f"{nb.name}: the first code cell must be the Colab install cell"
    assert f"git+{repo_url()}" in first, f"{nb.name}: the Colab cell must install from {repo_url()} (_config.yml)"
    assert cells[0]["outputs"] == [], f"{nb.name}: outside Colab the install cell must print nothing"


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_no_unstable_or_uncompared_outputs(nb):
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        tags = set(c.get("metadata", {}).get("tags", []))
        ignored = ("NBVAL_IGNORE_OUTPUT" in src or "NBVAL_SKIP" in src
                   or bool(tags & {"nbval-ignore-output", "nbval-skip"}))
        for o in c.get("outputs", []):
            if o.get("name") == "stderr" and not ignored:
                pytest.fail(f"{nb.name}: a compared cell writes to stderr (warnings or progress bars): "
                            f"{''.join(o['text'])[:200]!r}")
            if "image/svg+xml" in o.get("data", {}):
                pytest.fail(f"{nb.name}: SVG figures are compared textually by nbval; use PNG")
            if o.get("output_type") == "error":
                pytest.fail(f"{nb.name}: a cell stored an error")


@pytest.mark.parametrize("nb", book_notebooks(), ids=lambda p: p.name)
def test_text_outputs_fit_the_rendered_column(nb):
    """Printed lines wider than the book's output column are cut off on the page: use
    report.table for tables and keep printed lines short."""
    from anode_utils.report import WIDTH
    wide = []
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                wide += [(i, line) for line in "".join(o["text"]).splitlines() if len(line) > WIDTH]
    assert not wide, f"{nb.name}: {len(wide)} printed lines wider than {WIDTH} characters, e.g. cell {wide[0][0]}: " \
                     f"{wide[0][1][:120]!r}"
