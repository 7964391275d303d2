"""The bad-input probe (issue 24): every public function checks its arguments at the boundary.

Each case calls a public function with one bad argument (a wrong type, a negative size, NaN
values, a wrong shape, an unknown name, an empty list) and expects a ValueError, TypeError,
KeyError or FileNotFoundError whose message names the argument, raised before any solve or
download starts (each case must take well under a second).
"""

import math
import time

import pytest
import torch

import anode_utils as au
from anode_utils import (
    conv,
    cost,
    image_results,
    images,
    notebook,
    plots,
    regularizers,
    results_io,
    stats,
    theory,
    variants,
)

m = au.ODENet(2)
x = torch.randn(8, 2)
y = torch.randn(8, 1)
nan = x.clone()
nan[0, 0] = math.nan

CASES = [
    ("ODENet(0)", lambda: au.ODENet(0), "data_dim"),
    ("ODENet(2.5)", lambda: au.ODENet(2.5), "data_dim"),
    ("ODENet('2')", lambda: au.ODENet("2"), "data_dim"),
    ("ODENet hidden 0", lambda: au.ODENet(2, hidden_dim=0), "hidden_dim"),
    ("ODENet output 0", lambda: au.ODENet(2, output_dim=0), "output_dim"),
    ("ODENet aug -1", lambda: au.ODENet(2, augment_dim=-1), "augment_dim"),
    ("ODENet method", lambda: au.ODENet(2, method="foo"), "method"),
    ("ODENet rtol", lambda: au.ODENet(2, rtol=-1), "rtol"),
    ("ODENet T", lambda: au.ODENet(2, T=0), "T"),
    (
        "ODENet activation",
        lambda: au.ODENet(2, activation="foo"),
        "activation",
    ),
    (
        "ODENet layers",
        lambda: au.ODENet(2, num_hidden_layers=-1),
        "num_hidden_layers",
    ),
    ("ODENet unknown solver kw", lambda: au.ODENet(2, foo=1), "foo"),
    ("ODENet backend", lambda: au.ODENet(2, backend="foo"), "backend"),
    ("ResNet(0)", lambda: au.ResNet(0), "data_dim"),
    ("ResNet layers 0", lambda: au.ResNet(2, num_layers=0), "num_layers"),
    ("model(wrong shape)", lambda: m(torch.zeros(3, 5)), "x"),
    ("model(NaN)", lambda: m(nan), "x"),
    ("model(list)", lambda: m([[1.0, 2.0]]), "x"),
    ("concentric dim 0", lambda: au.concentric_spheres(0), "dim"),
    (
        "concentric num_inner -1",
        lambda: au.concentric_spheres(2, -1),
        "num_inner",
    ),
    ("concentric radii", lambda: au.concentric_spheres(2, r1=2.0), "r1"),
    ("concentric seed", lambda: au.concentric_spheres(2, seed=-1), "seed"),
    ("map_1d kind", lambda: au.map_1d("foo"), "kind"),
    ("map_1d num", lambda: au.map_1d("flip", 0), "num_points"),
    ("map_1d noise", lambda: au.map_1d("flip", 10, noise=-1), "noise"),
    ("shifted_sines dim", lambda: au.shifted_sines(dim=0), "dim"),
    (
        "shifted_sines num",
        lambda: au.shifted_sines(num_per_curve=0),
        "num_per_curve",
    ),
    ("shifted_sines noise", lambda: au.shifted_sines(noise=-1), "noise"),
    ("separable opening", lambda: au.separable_spheres(opening=-1), "opening"),
    ("grid_2d num", lambda: au.grid_2d(num=0), "num"),
    ("grid_2d lim", lambda: au.grid_2d(lim=-1), "lim"),
    ("batches bs", lambda: list(au.batches(x, y, 0)), "batch_size"),
    ("batches len", lambda: list(au.batches(x, y[:3], 2)), "y"),
    ("angular_split", lambda: au.angular_split(x, y, 1.0, 0.0), "start"),
    ("augment -1", lambda: au.augment(x, -1), "augment_dim"),
    ("augment str", lambda: au.augment("x", 1), "x"),
    ("evaluate bs", lambda: au.evaluate(m, x, y, batch_size=0), "batch_size"),
    ("evaluate loss", lambda: au.evaluate(m, x, y, loss="foo"), "loss"),
    ("train seed", lambda: au.train(m, x, y, seed=-1), "seed"),
    ("train val", lambda: au.train(m, x, y, val=(x, y[:2])), "val"),
    ("flow NaN", lambda: theory.flow(m, nan), "x"),
    ("flow T", lambda: theory.flow(m, x, T=-1), "T"),
    (
        "flow times",
        lambda: theory.flow(m, x, times=torch.tensor([0.0, 1.0, 0.5])),
        "times",
    ),
    ("flow shape", lambda: theory.flow(m, torch.zeros(3, 5)), "x"),
    ("invert shape", lambda: theory.invert(m, torch.zeros(3, 5)), "z"),
    ("inversion_error NaN", lambda: theory.inversion_error(m, nan), "x"),
    (
        "autograd_jacobian shape",
        lambda: theory.autograd_jacobian(m, torch.zeros(3, 5)),
        "x",
    ),
    ("liouville NaN", lambda: theory.liouville_logdet(m, nan), "x"),
    ("disk_grid num", lambda: theory.disk_grid(num=0), "num"),
    ("disk_grid r3", lambda: theory.disk_grid(r3=-1), "r3"),
    ("gap_analysis num", lambda: theory.gap_analysis(m, num=0), "num"),
    (
        "vector_field_on_grid num",
        lambda: theory.vector_field_on_grid(
            m.odeblock.field if hasattr(m, "odeblock") else m, num=0
        ),
        "num",
    ),
    ("RotationField dim", lambda: theory.RotationField(dim=1), "dim"),
    ("AnnulusLiftField dim", lambda: theory.AnnulusLiftField(0), "dim"),
    (
        "monotone_fit_bound",
        lambda: theory.monotone_fit_bound(torch.zeros(3), torch.zeros(2)),
        "y",
    ),
    (
        "order_changes empty",
        lambda: theory.order_changes(torch.zeros(0)),
        "traj",
    ),
    ("smooth window", lambda: plots.smooth([1.0, 2.0], window=0), "window"),
    (
        "plot_history_band empty",
        lambda: plots.plot_history_band([]),
        "histories",
    ),
    (
        "plot_history_band key",
        lambda: plots.plot_history_band([au.History(loss=[1.0])], key="foo"),
        "key",
    ),
    (
        "plot_history_band stat",
        lambda: plots.plot_history_band([au.History(loss=[1.0])], stat="foo"),
        "stat",
    ),
    (
        "plot_features shape",
        lambda: plots.plot_features(torch.zeros(3), torch.zeros(3)),
        "features",
    ),
    ("standard_error empty", lambda: stats.standard_error([]), "samples"),
    (
        "clearly_below k",
        lambda: stats.clearly_below([1.0, 2.0], [3.0, 4.0], k=-1),
        "k",
    ),
    ("results_path", lambda: au.results_path("nope.json"), "nope"),
    (
        "load_results",
        lambda: au.load_results("/nonexistent.json"),
        "nonexistent",
    ),
    (
        "result_histories name",
        lambda: au.result_histories({"a": []}, "b"),
        "b",
    ),
    ("load_image_results", lambda: au.load_image_results("nope"), "nope"),
    ("load_images name", lambda: images.load_images("cifar"), "name"),
    ("load_images split", lambda: images.load_images("mnist", "foo"), "split"),
    (
        "load_images subset",
        lambda: images.load_images("mnist", subset=0),
        "subset",
    ),
    (
        "load_images img_size",
        lambda: images.load_images("mnist", img_size=0),
        "img_size",
    ),
    ("ConvODENet img_size", lambda: conv.ConvODENet(0, 8), "img_size"),
    (
        "ConvODENet filters",
        lambda: conv.ConvODENet((1, 28, 28), 0),
        "num_filters",
    ),
    ("conv preset", lambda: conv.preset("foo", "node"), "dataset"),
    ("conv preset model", lambda: conv.preset("mnist", "foo"), "model"),
    ("ReadoutNet", lambda: conv.ReadoutNet(0), "img_size"),
    (
        "training_step_cost repeats",
        lambda: cost.training_step_cost(m, x, y, repeats=0),
        "repeats",
    ),
    (
        "evaluate_with_solver bs",
        lambda: cost.evaluate_with_solver(m, x, y, batch_size=0),
        "batch_size",
    ),
    (
        "solver_settings unknown",
        lambda: cost.solver_settings(m, foo=1).__enter__(),
        "foo",
    ),
    (
        "solver_settings model",
        lambda: cost.solver_settings("m").__enter__(),
        "model",
    ),
    ("gradient NaN", lambda: cost.gradient(m, nan, y), "x"),
    (
        "relative_error",
        lambda: cost.relative_error(torch.zeros(2), torch.zeros(3)),
        "b",
    ),
    (
        "SecondOrderODENet iv",
        lambda: variants.SecondOrderODENet(2, initial_velocity="foo"),
        "initial_velocity",
    ),
    (
        "SecondOrderODENet readout",
        lambda: variants.SecondOrderODENet(2, readout="foo"),
        "readout",
    ),
    (
        "LearnedAugment aug",
        lambda: variants.LearnedAugmentODENet(2, augment_dim=0),
        "augment_dim",
    ),
    (
        "matched_hidden_dim",
        lambda: variants.matched_hidden_dim(
            lambda h: au.ODENet(2, hidden_dim=h), 0
        ),
        "target_params",
    ),
    (
        "Regularized kinetic",
        lambda: regularizers.RegularizedODENet(au.ODENet(2), kinetic=-1),
        "kinetic",
    ),
    (
        "Regularized model",
        lambda: regularizers.RegularizedODENet("x"),
        "model",
    ),
    ("seed_configs empty", lambda: au.seed_configs({}, []), "seeds"),
    ("seed_configs neg", lambda: au.seed_configs({}, [-1]), "seed"),
    ("summarize empty", lambda: au.summarize([]), "results"),
    ("make_data", lambda: au.make_data({"task": "foo"}), "task"),
    (
        "run_parallel procs",
        lambda: au.run_parallel(abs, [1], processes=0),
        "processes",
    ),
    ("notebook threads", lambda: notebook.setup(threads=0), "threads"),
    ("notebook device", lambda: notebook.setup(device="foo"), "device"),
    (
        "round_sig digits",
        lambda: results_io.round_sig(1.0, digits=0),
        "digits",
    ),
    ("count_parameters", lambda: au.count_parameters("x"), "model"),
    ("FeatureSnapshots at", lambda: au.FeatureSnapshots(m, x, at=[-1]), "at"),
    (
        "FeatureSnapshots probe",
        lambda: au.FeatureSnapshots(m, torch.zeros(3, 5), at=[0]),
        "probe",
    ),
    ("nfe model", lambda: au.nfe("x"), "model"),
    (
        "iterations_to_loss level",
        lambda: image_results.iterations_to_loss([], level=-1),
        "level",
    ),
]


@pytest.fixture
def no_data_dir(monkeypatch, tmp_path):
    """Offline copies nowhere: a load would have to download (it must not get that far)."""
    monkeypatch.delenv(images.ENV_VAR, raising=False)
    monkeypatch.setattr(images, "DEFAULT_ROOT", tmp_path / "cache")


@pytest.mark.parametrize(
    "call,arg", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_argument_is_named_before_any_work(call, arg, no_data_dir):
    start = time.perf_counter()
    with pytest.raises(
        (ValueError, TypeError, KeyError, FileNotFoundError)
    ) as err:
        call()
    assert arg in str(err.value), (
        f"the message does not name {arg!r}: {err.value}"
    )
    assert time.perf_counter() - start < 1.0


def test_offline_download_failure_names_the_variable_and_folder(
    monkeypatch, tmp_path
):
    """Without ANODE_DATA_DIR a missing data set is downloaded; when that fails (offline) the
    error says where it looked and names ANODE_DATA_DIR, instead of torchvision's traceback."""
    monkeypatch.delenv(images.ENV_VAR, raising=False)
    monkeypatch.setattr(images, "DEFAULT_ROOT", tmp_path)

    def offline(*args, **kwargs):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://x, got:\n"
            "<urlopen error [Errno -2] Name or service not known>\n"
        )

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(images.DatasetNotFoundError) as err:
        images.load_images("mnist", "train", subset=10)
    msg = str(err.value)
    assert (
        "ANODE_DATA_DIR" in msg
        and str(tmp_path) in msg
        and "Name or service not known" in msg
    )
