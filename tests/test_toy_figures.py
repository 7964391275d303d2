"""anode_utils.toy_figures: the chapters' toy figures draw what they say, with axis labels."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from anode_utils import toy_figures  # noqa: E402
from anode_utils.cli_toy import run_config  # noqa: E402


def test_scatter_data_labels_both_axes():
    x = torch.randn(20, 2)
    y = torch.where(x[:, :1] > 0, 1.0, -1.0)
    fig, ax = plt.subplots()
    toy_figures.scatter_data(ax, x, y, title="t")
    assert ax.get_xlabel() == "$x_1$" and ax.get_ylabel() == "$x_2$"
    assert ax.get_title() == "t"
    assert len(ax.collections[0].get_offsets()) == 20
    plt.close(fig)


def test_scatter_data_1d_jitter_is_reproducible_and_labelled():
    x = torch.linspace(-1, 1, 10).reshape(-1, 1)
    y = torch.ones(10, 1)
    offsets = []
    for _ in range(2):
        fig, ax = plt.subplots()
        toy_figures.scatter_data(ax, x, y, jitter=0.2)
        offsets.append(ax.collections[0].get_offsets().copy())
        assert ax.get_xlabel() == "$x$" and ax.get_ylabel()
        plt.close(fig)
    assert (offsets[0] == offsets[1]).all()
    assert abs(offsets[0][:, 1]).max() <= 0.1


def test_scatter_data_rejects_other_shapes():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="shape"):
        toy_figures.scatter_data(ax, torch.zeros(5, 3), torch.ones(5, 1))
    plt.close(fig)


def test_seed_dots_one_column_per_group():
    fig, ax = plt.subplots()
    toy_figures.seed_dots(
        ax, [("a", [1, 2, 3], "C0"), ("b", [4, 5], "C1")], log=True, ylabel="v"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "v"
    # group means drawn as bars
    assert [line.get_ydata()[0] for line in ax.lines] == [2.0, 4.5]
    plt.close(fig)


def test_model_labels():
    assert toy_figures.model_label("anode_p5") == "ANODE, p = 5"
    assert toy_figures.model_label("other") == "other"


def test_result_bands_from_a_results_file(tmp_path):
    spec = {
        "base": {
            "task": "spheres",
            "dim": 1,
            "epochs": 4,
            "num_inner": 20,
            "num_outer": 40,
        },
        "record_every": 2,
        "experiments": [
            {"name": "node", "config": {"model": "node"}},
            {"name": "resnet", "config": {"model": "resnet"}},
        ],
    }
    res = run_config(spec, tmp_path / "r.json", seeds=[0, 1], processes=1)
    fig, ax = plt.subplots()
    toy_figures.result_bands(ax, res, ["node", "resnet"], title="t")
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["NODE (2 seeds)", "ResNet (2 seeds)"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration"
    # entries are block means of 2 iterations, drawn at iterations 2, 4, ...
    assert list(ax.lines[0].get_xdata()[:2]) == [2, 4]
    plt.close(fig)
