"""Showing a chapter's results so that nbval compares its verdicts, not its exact figures.

Stored outputs are re-derived in CI on other processors, BLAS builds and thread counts. An
adaptive solver amplifies the last bit of a floating-point difference into a different step
count, so an exact NFE mean or a 3-decimal loss can change while every verdict still holds.
The chapters therefore show two kinds of output:

- **verdicts and checks** (:func:`verdict`, decided by :mod:`anode_utils.verdicts`;
  :func:`check` for exact facts): the statement carries its margin and nbval compares it;
- **measured figures** (the ``[measured: ...]`` part of a line, :func:`figures`,
  :func:`table`): shown to the reader, masked by the rules in ``nbval_sanitize.cfg`` before
  nbval compares, so they may differ in the last digits from machine to machine.

The sanitizer rules are :data:`SANITIZE_RULES`; ``tests/test_report.py`` checks that the
file holds them and that they mask figures but not claims.
"""

import html
import textwrap

#: Characters of a text line that fit the book's output column at 1300 px (78; longer lines
#: are cut off). Display objects wrap their plain text to this width; their HTML wraps freely.
WIDTH = 78
#: Text that starts a measured figure in a printed line; the figure runs to the line's end.
MEASURED = "[measured: "
#: Invisible first line of a Markdown table of measured figures.
TABLE_MARK = "<!-- measured figures: not compared by nbval -->"
#: (regex, replacement) pairs that ``nbval_sanitize.cfg`` must hold, in this order.
SANITIZE_RULES = (
    (
        r'(?s)<span class="measured">.*?</span>',
        '<span class="measured">[measured]</span>',
    ),
    (r"(?s)\[measured:\s[^\[\]]*\]", "[measured]"),
    (r"(?m)\[measured: .*\]$", "[measured]"),
    (
        r"(?s)<!-- measured figures: not compared by nbval -->.*",
        "<!-- measured figures -->",
    ),
)


#: Left-border colours of the displayed lines, by kind.
_COLOURS = {
    "reproduced": "#2e7d32",
    "not reproduced": "#c62828",
    "inconclusive": "#b26a00",
    "check": "#455a64",
    "check failed": "#c62828",
    "measured": "#90a4ae",
}


class Line:
    """One result line shown in the book: a verdict, a check or measured figures.

    Its HTML form (what the book shows) wraps to the column on any screen; its plain-text
    form (what nbval compares, what a terminal prints) is wrapped to :data:`WIDTH`. Measured
    figures sit in ``[measured: ...]`` (plain) and ``<span class="measured">`` (HTML), which
    ``nbval_sanitize.cfg`` masks.
    """

    def __init__(self, kind, text, figures=None):
        if kind not in _COLOURS:
            raise ValueError(
                f"kind must be one of {sorted(_COLOURS)}; got {kind!r}"
            )
        self.kind, self.text = kind, str(text)
        self.figures = None if figures is None else _figures(figures)

    def _label(self):
        return "" if self.kind == "measured" else self.kind.capitalize() + ": "

    def __repr__(self):
        body = textwrap.fill(self._label() + self.text, WIDTH)
        if self.figures is not None:
            body += "\n" + textwrap.fill(
                f"{MEASURED}{self.figures}]", WIDTH, subsequent_indent="  "
            )
        return body

    def _repr_html_(self):
        label = self._label()
        out = (
            f'<div style="border-left:4px solid {_COLOURS[self.kind]};padding:1px 8px;'
            f'margin:4px 0">'
        )
        if label:
            out += f"<strong>{html.escape(label.strip())}</strong> "
        out += html.escape(self.text)
        if self.figures is not None:
            out += (
                f' <span class="measured" style="color:#555">'
                f"[measured: {html.escape(self.figures)}]</span>"
            )
        return out + "</div>"


def _figures(figures):
    text = " ".join(str(figures).split())
    if "[" in text or "]" in text:
        raise ValueError(
            "measured figures must not contain '[' or ']' (the sanitizer's "
            "delimiters): use parentheses"
        )
    return text


def show(line):
    """Display a :class:`Line` (a display_data output: HTML in the book, text for nbval)."""
    from IPython.display import display

    display(line)


def verdict(v):
    """Show a :class:`anode_utils.verdicts.Verdict`: its outcome, the claim, the part of the
    rule that decided (compared by nbval) and its figures (masked). Returns None."""
    from .verdicts import Verdict

    if not isinstance(v, Verdict):
        raise ValueError(
            f"verdict() takes an anode_utils.verdicts.Verdict (decided by the book's "
            f"one rule); got {type(v).__name__}"
        )
    show(Line(v.outcome, f"{v.claim} ({v.reason}).", v.measured))


def check(statement, holds, figures=None):
    """Show a check of an exact fact (an identity, an invariant, a bound that must hold for
    every input): ``Check: statement`` or ``Check failed: statement``. Empirical claims over
    seeds go through :func:`verdict` instead. Returns None."""
    statement = str(statement)
    if not statement.strip():
        raise ValueError("statement must be a non-empty string")
    show(
        Line(
            "check" if bool(holds) else "check failed",
            statement + ".",
            figures,
        )
    )


def figures(label, text):
    """Show ``label [measured: text]``: exact figures that nbval does not compare."""
    show(Line("measured", label, text))


def markdown_table(header, rows, floatfmt=".3f"):
    """A Markdown table (str) whose first line marks it as measured figures.

    header : column names; rows : sequences of cells (floats are formatted with ``floatfmt``,
    anything else with ``str``).
    """

    def cell(v):
        s = format(v, floatfmt) if isinstance(v, float) else str(v)
        return html.escape(s).replace("|", "\\|")

    lines = [
        TABLE_MARK,
        "",
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|"
        + "|".join("---:" if i else ":---" for i in range(len(header)))
        + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"every row needs {len(header)} cells (one per header); got {len(row)}"
            )
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def table(header, rows, floatfmt=".3f"):
    """Display a table of measured figures as Markdown (rendered as a table in the book).

    Its first line is an invisible HTML comment that the sanitizer masks the whole table
    from, so nbval compares only that the table is there. Returns None (see :func:`claim`).
    """
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(header, rows, floatfmt)))


__all__ = [
    "Line",
    "MEASURED",
    "SANITIZE_RULES",
    "TABLE_MARK",
    "WIDTH",
    "check",
    "figures",
    "markdown_table",
    "show",
    "table",
    "verdict",
]
