"""The paper's toy claims (Sections 4.1, 4.2, 5.1), each decided by the book's one rule
(:mod:`anode_utils.verdicts`) on the stored paper-scale results files.

The claims page and the introduction both call :func:`toy_claims`, so they cannot disagree.
Every test is fixed here, before any file is read: thresholds on a mean final MSE for
targets -1/+1 (a model *fits* below 0.05, *cannot approximate* above 0.3; predicting 0
everywhere gives 1), NFE growth as the per-seed ratio of last-epoch to first-epoch mean
forward NFE (*hardly increases*: below 1.2; *nearly doubles*: at least 1.5), *faster* as the
iterations to reach a training MSE of 0.05.
"""

import dataclasses

from . import verdicts as V

#: Results files the toy claims read (shipped with the package).
FILES = ("annulus_d1", "annulus_d2", "sines_d2", "generalization")
#: Bounds that give the paper's words a test, fixed before the runs: a model *fits* below a
#: mean final MSE of FIT, *cannot approximate* above CANNOT_FIT; an NFE ratio (last / first
#: epoch) *hardly increases* below HARDLY_INCREASES and *nearly doubles* at NEARLY_DOUBLES.
FIT, CANNOT_FIT, HARDLY_INCREASES, NEARLY_DOUBLES = 0.05, 0.3, 1.2, 1.5
#: Training MSE a run must reach for "faster" (iterations to reach it; runs that never do
#: count as their full length).
LOSS_THRESHOLD = 0.05
#: The ANODE experiments of the files: p = 1 (Fig. 8's 3-d features) and p = 5 (the authors'
#: loss-curve setting).
ANODES = (("anode", 1), ("anode_p5", 5))


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row of the claims table: the paper's claim, the test, its verdict, where the book
    shows the evidence (chapter file stem, section label, title)."""

    section: str
    claim: str
    test: str
    verdict: V.Verdict
    where: tuple


def _runs(res, name):
    if name not in res["experiments"]:
        raise KeyError(
            f"no experiment {name!r} in the results file; it holds "
            f"{sorted(res['experiments'])}"
        )
    return res["experiments"][name]["runs"]


def finals(res, name, key="train_loss"):
    """Per-seed final metric ``key`` of experiment ``name``."""
    return [r["final"][key] for r in _runs(res, name)]


def nfe_ratios(res, name):
    """Per-seed forward NFE growth: last-epoch mean / first-epoch mean."""
    return [
        r["summary"]["nfe_forward_last_epoch"]
        / r["summary"]["nfe_forward_first_epoch"]
        for r in _runs(res, name)
    ]


def iterations_to(res, name, threshold=LOSS_THRESHOLD):
    """Per-seed iterations until the recorded training loss (block means of ``record_every``
    iterations) first falls below ``threshold``; a run that never does counts as its length."""
    every = res.get("record_every", 1)
    out = []
    for r in _runs(res, name):
        loss = r["history"]["loss"]
        hit = next(
            (i for i, v in enumerate(loss) if v is not None and v < threshold),
            None,
        )
        out.append(
            every * (hit + 1)
            if hit is not None
            else r["summary"]["iterations"]
        )
    return out


def gaps(res, a, b, key="train_loss"):
    """Per-seed ``a - b`` of a final metric. Seed s of both experiments trained on the same
    data set (the data are drawn from the seed), so the pairing is by data, not arbitrary."""
    ra, rb = _runs(res, a), _runs(res, b)
    sa, sb = [r["seed"] for r in ra], [r["seed"] for r in rb]
    if sa != sb:
        raise ValueError(
            f"experiments {a!r} and {b!r} hold different seeds; gaps need the same"
        )
    return [x["final"][key] - y["final"][key] for x, y in zip(ra, rb)]


def _where(chapter, label, title):
    return (chapter, label, title)


def toy_claims(files=None):
    """The toy claims as a list of :class:`Claim`, decided on ``files`` (a dict name ->
    loaded results; default: the files shipped with the package)."""
    if files is None:
        import anode_utils  # the public reader, wherever the package keeps it

        files = {name: anode_utils.load_results(name) for name in FILES}
    missing = [n for n in FILES if n not in files]
    if missing:
        raise ValueError(f"files lacks {missing}; pass all of {list(FILES)}")
    d1, d2, sines, gen = (files[n] for n in FILES)
    ch4 = _where(
        "04_annulus_experiments",
        "sec-resnet-vs-node",
        "ch. 4, ResNets vs NODEs",
    )
    ch4n = _where(
        "04_annulus_experiments", "sec-node-nfe", "ch. 4, the NODE's NFE"
    )
    ch5 = _where(
        "05_augmented_node", "sec-anode-losses", "ch. 5, NODE vs ANODE losses"
    )
    ch5n = _where(
        "05_augmented_node", "sec-anode-nfe", "ch. 5, NFE during training"
    )
    ch6 = _where(
        "06_generalization",
        "sec-generalization-curves",
        "ch. 6, validation losses",
    )
    fit, cannot = "final MSE below 0.05", "final MSE above 0.3"
    rows = [
        Claim(
            "4.1",
            "In d = 1 the ResNet easily fits g(x).",
            f"ResNet mean {fit}",
            V.bound(
                "ResNet fits g(x) in d = 1",
                finals(d1, "resnet"),
                FIT,
                "lower",
                label="ResNet final MSE",
            ),
            ch4,
        ),
        Claim(
            "4.1",
            "In d = 1 the NODE cannot approximate g(x).",
            f"NODE mean {cannot}",
            V.bound(
                "NODE cannot approximate g(x) in d = 1",
                finals(d1, "node"),
                CANNOT_FIT,
                "higher",
                label="NODE final MSE",
            ),
            ch4,
        ),
        Claim(
            "4.1",
            "In d = 2 the NODE eventually learns to approximate g(x) ...",
            "NODE mean training accuracy above 0.95",
            V.bound(
                "NODE approximates g(x) in d = 2",
                finals(d2, "node", "train_accuracy"),
                0.95,
                "higher",
                label="NODE accuracy",
            ),
            ch4,
        ),
        Claim(
            "4.1",
            "... but struggles compared to ResNets (d = 2).",
            "ResNet final MSE lower than the NODE's",
            V.compare(
                "ResNet's final loss below the NODE's in d = 2",
                finals(d2, "resnet"),
                finals(d2, "node"),
                "lower",
                label=("ResNet", "NODE"),
            ),
            ch4,
        ),
        Claim(
            "4.1",
            "The difference between ResNets and NODEs is less pronounced for the "
            "separable function.",
            "NODE - ResNet final MSE smaller on the shifted sines than on g(x), d = 2",
            V.compare(
                "NODE-ResNet gap smaller on the separable function",
                gaps(sines, "node", "resnet"),
                gaps(d2, "node", "resnet"),
                "lower",
                label=("sines gap", "g(x) gap"),
            ),
            ch4,
        ),
        Claim(
            "4.2",
            "As the NODE learns g(x) (d = 2), its NFE increases.",
            "NODE NFE ratio (last / first epoch) above 1",
            V.bound(
                "NODE's NFE grows on g(x), d = 2",
                nfe_ratios(d2, "node"),
                1.0,
                "higher",
                label="NFE ratio",
            ),
            ch4n,
        ),
        Claim(
            "4.2",
            "... because the flow must break the annulus apart (the paper's "
            "explanation).",
            "NODE NFE ratio on g(x) above its ratio on the separable sines",
            V.compare(
                "NFE grows more on g(x) than on the separable task",
                nfe_ratios(d2, "node"),
                nfe_ratios(sines, "node"),
                "higher",
                label=("g(x)", "sines"),
            ),
            ch4n,
        ),
    ]
    for name, p in ANODES:
        tag = f" (p = {p})"
        rows += [
            Claim(
                "5.1",
                "ANODEs fit g(x) where NODEs cannot (d = 1)." + tag,
                f"ANODE mean {fit}",
                V.bound(
                    "ANODE fits g(x) in d = 1" + tag,
                    finals(d1, name),
                    FIT,
                    "lower",
                    label="ANODE final MSE",
                ),
                ch5,
            ),
            Claim(
                "5.1",
                "ANODEs reach lower losses than NODEs (d = 2)." + tag,
                "ANODE final MSE lower than the NODE's",
                V.compare(
                    "ANODE's final loss below the NODE's in d = 2" + tag,
                    finals(d2, name),
                    finals(d2, "node"),
                    "lower",
                    label=("ANODE", "NODE"),
                ),
                ch5,
            ),
            Claim(
                "5.1",
                "ANODEs learn g(x) faster than NODEs (d = 2)." + tag,
                f"fewer iterations to a training MSE of {LOSS_THRESHOLD}",
                V.compare(
                    "ANODE reaches MSE 0.05 in fewer iterations" + tag,
                    iterations_to(d2, name),
                    iterations_to(d2, "node"),
                    "lower",
                    label=("ANODE", "NODE"),
                ),
                ch5,
            ),
            Claim(
                "5.1",
                "The ANODE's NFE hardly increases during training (d = 1)."
                + tag,
                "ANODE NFE ratio below 1.2",
                V.bound(
                    "ANODE's NFE hardly increases, d = 1" + tag,
                    nfe_ratios(d1, name),
                    HARDLY_INCREASES,
                    "lower",
                    label="NFE ratio",
                ),
                ch5n,
            ),
            Claim(
                "5.1",
                "(Extension) In d = 2 too, the ANODE's NFE grows less than the "
                "NODE's." + tag,
                "ANODE NFE ratio lower than the NODE's",
                V.compare(
                    "ANODE's NFE grows less in d = 2" + tag,
                    nfe_ratios(d2, name),
                    nfe_ratios(d2, "node"),
                    "lower",
                    label=("ANODE", "NODE"),
                ),
                ch5n,
            ),
            Claim(
                "5.1",
                "ANODEs generalise better: a smaller generalisation gap on the held-out "
                "slice [0, pi/5]." + tag,
                "validation - training MSE lower than the NODE's",
                V.compare(
                    "ANODE's generalisation gap below the NODE's" + tag,
                    generalization_gaps(gen, name),
                    generalization_gaps(gen, "node"),
                    "lower",
                    label=("ANODE", "NODE"),
                ),
                ch6,
            ),
            Claim(
                "5.1",
                "ANODEs reach near-zero validation loss." + tag,
                "ANODE mean validation MSE below 0.05",
                V.bound(
                    "ANODE's validation loss near zero" + tag,
                    finals(gen, name, "val_loss"),
                    0.05,
                    "lower",
                    label="validation MSE",
                ),
                ch6,
            ),
        ]
    rows.insert(
        7,
        Claim(
            "5.1",
            "The NFE nearly doubles for NODEs (d = 1, Fig. 8).",
            "NODE NFE ratio at least 1.5",
            V.bound(
                "NODE's NFE nearly doubles, d = 1",
                nfe_ratios(d1, "node"),
                NEARLY_DOUBLES,
                "higher",
                label="NFE ratio",
            ),
            ch5n,
        ),
    )
    return rows


#: The image claims of Section 5.2 as chapter 7 tests them: the paper's statements the
#: pre-registered read-outs stand for.
IMAGE_TESTS = (
    "iterations to a training-loss level",
    "forward NFE at that loss level",
    "last-epoch forward NFE",
    "test accuracy",
)


def image_claims(verdicts=None):
    """The Section 5.2 claims as :class:`Claim` rows, decided as chapter 7 decides them
    (:func:`anode_utils.image_results.design_verdicts`, the 14x14 MNIST design: (a) one
    architecture with p = 0 and p = 5, (b) a parameter-matched pair)."""
    if verdicts is None:
        from .image_results import design_verdicts

        verdicts = design_verdicts()
    where = _where("07_images", "ch-images", "ch. 7, image ANODEs")
    rows = []
    for i, v in enumerate(verdicts):
        if not isinstance(v, V.Verdict):
            raise ValueError(
                f"image_claims takes Verdict objects; got {type(v).__name__}"
            )
        rows.append(
            Claim(
                "5.2",
                f"MNIST 14x14 {v.claim}.",
                IMAGE_TESTS[i % len(IMAGE_TESTS)],
                v,
                where,
            )
        )
    return rows


def generalization_gaps(res, name):
    """Per-seed validation minus training MSE of experiment ``name``."""
    return [
        v - t
        for v, t in zip(
            finals(res, name, "val_loss"), finals(res, name, "train_loss")
        )
    ]


def describe(files):
    """One short line per results file (experiments, seeds, epochs, date and hardware), for
    the claims page: lines of at most 78 characters."""
    import textwrap

    out = []
    for name, res in files.items():
        exps = res["experiments"]
        cfg = next(iter(exps.values()))["config"]
        prov = res.get("provenance", {})
        machine = prov.get("hardware", "?")
        text = (
            f"{name}: {', '.join(exps)}; {len(res['seeds'])} seeds, {cfg['epochs']} "
            f"epochs; made {str(prov.get('date', '?'))[:10]} on {machine}"
        )
        out += textwrap.wrap(text, 78, subsequent_indent="    ")
    return out


_OUTCOME_STYLE = {
    V.REPRODUCED: "#2e7d32",
    V.NOT_REPRODUCED: "#c62828",
    V.INCONCLUSIVE: "#b26a00",
}


def html_table(claims, compact=False):
    """An HTML table of claims (str): section, claim, test, verdict and the part of the rule
    that decided it, the figures, and a link to the evidence. ``compact``: claim and verdict
    only (the introduction). Links are relative to a page in ``book/``."""
    import html

    esc = html.escape
    head = (
        ["Claim", "Verdict"]
        if compact
        else [
            "Sec.",
            "Claim (paraphrased)",
            "Test",
            "Verdict",
            "Measured",
            "Evidence",
        ]
    )
    body = []
    for c in claims:
        if not isinstance(c, Claim):
            raise ValueError(
                f"html_table takes Claim objects; got {type(c).__name__}"
            )
        v = c.verdict
        verdict = (
            f'<b style="color:{_OUTCOME_STYLE[v.outcome]}">{esc(v.outcome)}</b>'
            + ("" if compact else f"<br><small>{esc(v.reason)}</small>")
        )
        page, label, title = c.where
        link = f'<a href="{esc(page)}.html#{esc(label)}">{esc(title)}</a>'
        cells = (
            [esc(c.claim) + f" <small>({link})</small>", verdict]
            if compact
            else [
                esc(c.section),
                esc(c.claim),
                esc(c.test),
                verdict,
                f"<small>{esc(v.measured)}</small>",
                link,
            ]
        )
        body.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead>"
        "<tbody>" + "".join(body) + "</tbody></table>"
    )


def summary(claims):
    """``{outcome: count}`` over claims (see :func:`anode_utils.verdicts.count`)."""
    return V.count([c.verdict for c in claims])


__all__ = [
    "ANODES",
    "CANNOT_FIT",
    "Claim",
    "FIT",
    "HARDLY_INCREASES",
    "NEARLY_DOUBLES",
    "FILES",
    "IMAGE_TESTS",
    "LOSS_THRESHOLD",
    "describe",
    "finals",
    "gaps",
    "generalization_gaps",
    "html_table",
    "image_claims",
    "iterations_to",
    "nfe_ratios",
    "summary",
    "toy_claims",
]
