"""Printing a chapter's results so that nbval compares its claims, not its exact figures.

Stored outputs are re-derived in CI on other processors, BLAS builds and thread counts. An
adaptive solver amplifies the last bit of a floating-point difference into a different step
count, so an exact NFE mean or a 3-decimal loss can change while every claim still holds. The
chapters therefore print two kinds of output:

- **claims** (:func:`claim`): ``statement: True``. The statement carries its margin
  (``final MSE > 0.3 for every seed``) and nbval compares it;
- **measured figures** (:func:`measured`, :func:`table`): shown to the reader, masked by the
  rules in ``nbval_sanitize.cfg`` before nbval compares, so they may differ by a few units in
  the last digit from machine to machine.

The sanitizer rules are :data:`SANITIZE_RULES`; ``tests/test_report.py`` checks that the
file holds them and that they mask figures but not claims.
"""
import html

#: Characters of a printed line that fit the book's output column (longer lines are cut off).
WIDTH = 90
#: Text that starts a measured figure in a printed line; the figure runs to the line's end.
MEASURED = "[measured: "
#: Invisible first line of a Markdown table of measured figures.
TABLE_MARK = "<!-- measured figures: not compared by nbval -->"
#: (regex, replacement) pairs that ``nbval_sanitize.cfg`` must hold, in this order.
SANITIZE_RULES = (
    (r"(?m)\[measured: .*\]$", "[measured]"),
    (r"(?s)<!-- measured figures: not compared by nbval -->.*", "<!-- measured figures -->"),
)


def _text(figure):
    text = str(figure)
    if "\n" in text:
        raise ValueError("a measured figure must fit on one line; call measured() once per line")
    return text


def claim(statement, holds, measured=None):
    """Print ``statement: True`` (or False), and the figures behind it when given.

    statement : the claim with its margin, e.g. ``"NODE final MSE > 0.3 for every seed"``
    holds : the claim's truth value (anything ``bool`` accepts, a 0-d tensor included)
    measured : optional one-line text of exact figures, printed after the verdict as
        ``[measured: ...]`` and masked for nbval.
    Returns None, so that a claim on a cell's last line adds no ``True`` output of its own.
    """
    verdict = bool(holds)
    line = f"{statement}: {verdict}"
    if measured is not None:
        tail = f"{MEASURED}{_text(measured)}]"
        # the rendered output column holds about WIDTH characters: a long tail goes on its own line
        line += f"   {tail}" if len(line) + 3 + len(tail) <= WIDTH else f"\n    {tail}"
    print(line)


def measured(label, figures):
    """Print ``label [measured: figures]``: a line of exact figures that nbval does not compare."""
    tail = f"{MEASURED}{_text(figures)}]"
    print(f"{label} {tail}" if len(label) + 1 + len(tail) <= WIDTH else f"{label}\n    {tail}")


def markdown_table(header, rows, floatfmt=".3f"):
    """A Markdown table (str) whose first line marks it as measured figures.

    header : column names; rows : sequences of cells (floats are formatted with ``floatfmt``,
    anything else with ``str``).
    """
    def cell(v):
        s = format(v, floatfmt) if isinstance(v, float) else str(v)
        return html.escape(s).replace("|", "\\|")
    lines = [TABLE_MARK, "", "| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if i else ":---" for i in range(len(header))) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"every row needs {len(header)} cells (one per header); got {len(row)}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def table(header, rows, floatfmt=".3f"):
    """Display a table of measured figures as Markdown (rendered as a table in the book).

    Its first line is an invisible HTML comment that the sanitizer masks the whole table
    from, so nbval compares only that the table is there. Returns None (see :func:`claim`).
    """
    from IPython.display import Markdown, display
    display(Markdown(markdown_table(header, rows, floatfmt)))


__all__ = ["MEASURED", "SANITIZE_RULES", "TABLE_MARK", "claim", "markdown_table", "measured", "table"]
