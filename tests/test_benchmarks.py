"""Smoke tests of the benchmark scripts (benchmarks/): they run, and their checks hold.

No timing is asserted (timings are what the scripts print, not what tests decide)."""

import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import benchmark  # noqa: E402
import profile_step  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()  # the profiles set one thread
    yield
    torch.set_num_threads(threads)


def test_toy_profile_variants_take_the_same_steps():
    summary, mismatches = profile_step.toy_profile(
        "anode", 1, iters=2, fused_adam=True
    )
    assert set(summary) == {
        "torchdiffeq",
        "torchdiffeq+fused Adam",
        "lean",
        "lean+fused Adam",
    }
    assert mismatches == 0
    assert all(
        m["field"] > 0 and m["step"] > 0 and m["nfe"] >= 8
        for m in summary.values()
    )


def test_solver_floor_counts_the_same_evaluations_for_both_backends():
    floor = profile_step.solver_floor(iters=2)
    assert floor["lean"]["nfe"] == floor["torchdiffeq"]["nfe"]
    assert (
        floor["lean"]["steps"] >= 1
        and floor["lean"]["nfe"] == 2 + 6 * floor["lean"]["steps"]
    )
    assert len(profile_step.format_floor(floor)) == 3


@pytest.mark.skipif(
    not (ROOT / ".git").exists(), reason="needs the project's git repository"
)
def test_book_before_is_a_checkout_whose_package_shadows_the_installed_one(
    tmp_path,
):
    old = benchmark._checkout(
        "HEAD", tmp_path
    )  # raises if the installed package would win
    assert (old / "anode_utils" / "dopri5.py").is_file()
    assert benchmark._chapters(old) == benchmark._chapters(ROOT)
