"""Bibliography labels in the same author-year form as the citations.

With ``bibtex_reference_style: author_year`` sphinxcontrib-bibtex writes a citation as
"[Dupont et al., 2019]", but labels the bibliography with a pybtex style: "[DDT19]" (alpha) or
"[1]" (plain). This extension registers the pybtex style ``author_year``, pybtex's "plain"
formatting (sorted by author, year and title) with labels built like the citations: "Last",
"Last and Last" or "Last et al.", then ", year" (with a, b, ... appended should two labels
coincide). ``_config.yml`` selects it with ``bibtex_default_style: author_year``.
"""
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _last_name(person):
    return " ".join(part.render_as("text") for part in person.rich_prelast_names + person.rich_last_names)


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_label(self, entry):
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_last_name(p) for p in persons]
        if not names:
            who = entry.key
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        year = entry.fields.get("year", "n.d.")
        return f"{who}, {year}"

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        total, seen = Counter(labels), Counter()
        for label in labels:
            if total[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
