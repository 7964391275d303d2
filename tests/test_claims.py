"""The claims module decides every toy claim with the one rule, from results files."""

import json

import pytest

from anode_utils import claims, verdicts
from anode_utils.cli_toy import run_config

TINY = {
    "num_inner": 12,
    "num_outer": 24,
    "num_per_curve": 18,
    "epochs": 2,
    "batch_size": 16,
    "hidden_dim": 8,
    "backend": "lean",
}


def _spec(base, names):
    exps = {
        "node": {"model": "node"},
        "anode": {"model": "anode", "augment_dim": 1},
        "anode_p5": {"model": "anode", "augment_dim": 5},
        "resnet": {"model": "resnet"},
    }
    return {
        "base": dict(TINY, **base),
        "record_every": 2,
        "experiments": [{"name": n, "config": exps[n]} for n in names],
    }


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("claims")
    four = ["node", "anode", "anode_p5", "resnet"]
    specs = {
        "annulus_d1": _spec({"task": "spheres", "dim": 1}, four),
        "annulus_d2": _spec({"task": "spheres", "dim": 2}, four),
        "sines_d2": _spec({"task": "sines", "dim": 2}, four),
        "generalization": _spec(
            {
                "task": "spheres",
                "dim": 2,
                "num_inner": 40,
                "num_outer": 80,
                "val_slice": [0.0, 0.63],
            },
            four[:3],
        ),
    }
    return {
        name: run_config(spec, tmp / f"{name}.json", [0, 1, 2], processes=1)
        for name, spec in specs.items()
    }


def test_every_claim_is_a_verdict_of_the_rule(tiny_files):
    rows = claims.toy_claims(tiny_files)
    assert len(rows) == 8 + 7 * len(claims.ANODES)
    assert all(isinstance(r.verdict, verdicts.Verdict) for r in rows)
    assert all(r.verdict.outcome in verdicts.OUTCOMES for r in rows)
    assert sum(claims.summary(rows).values()) == len(rows)
    assert all(
        r.section in ("4.1", "4.2", "5.1") and r.where[1].startswith("sec-")
        for r in rows
    )


def test_iterations_to_threshold_counts_unfinished_runs_as_their_length(
    tiny_files,
):
    res = json.loads(json.dumps(tiny_files["annulus_d2"]))
    its = claims.iterations_to(res, "node", threshold=-1.0)  # never reached
    assert its == [
        r["summary"]["iterations"] for r in res["experiments"]["node"]["runs"]
    ]
    assert claims.iterations_to(res, "node", threshold=1e9) == [
        2,
        2,
        2,
    ]  # the first block


def test_gaps_pair_seeds_that_share_a_data_set(tiny_files):
    g = claims.gaps(tiny_files["annulus_d2"], "node", "resnet")
    node = claims.finals(tiny_files["annulus_d2"], "node")
    res = claims.finals(tiny_files["annulus_d2"], "resnet")
    assert g == [a - b for a, b in zip(node, res)]


def test_missing_file_or_experiment_is_named(tiny_files):
    with pytest.raises(ValueError, match="sines_d2"):
        claims.toy_claims(
            {k: v for k, v in tiny_files.items() if k != "sines_d2"}
        )
    with pytest.raises(KeyError, match="resnet"):
        claims.finals(tiny_files["generalization"], "resnet")


def test_html_table_has_a_row_per_claim_and_names_the_outcome(tiny_files):
    rows = claims.toy_claims(tiny_files)
    full, compact = (
        claims.html_table(rows),
        claims.html_table(rows, compact=True),
    )
    assert full.count("<tr>") == compact.count("<tr>") == len(rows) + 1
    assert all(r.verdict.outcome in full for r in rows)
    assert "04_annulus_experiments.html#sec-resnet-vs-node" in compact
    with pytest.raises(ValueError, match="Claim"):
        claims.html_table([rows[0].verdict])


def test_image_claims_wrap_the_chapter_verdicts():
    vs = [
        verdicts.compare(f"(a) claim {i}", [1, 1.1, 1.2], [2, 2.1, 2.2])
        for i in range(4)
    ]
    rows = claims.image_claims(vs)
    assert [r.verdict for r in rows] == vs and all(
        r.section == "5.2" for r in rows
    )
    assert [r.test for r in rows] == list(claims.IMAGE_TESTS)
    with pytest.raises(ValueError, match="Verdict"):
        claims.image_claims([True])
