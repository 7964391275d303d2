"""Plot functions draw what they are given (smoke tests on the Agg backend)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import anode_utils as au  # noqa: E402
from anode_utils import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_trajectory_plots_draw_one_line_per_point():
    x, y = au.map_1d("flip", 6)
    model = au.ODENet(1, readout=False, output_dim=1)
    times = torch.linspace(0, 1, 5)
    with torch.no_grad():
        traj = model.trajectory(x, times)
    ax = plots.plot_trajectories_1d(times, traj, y)
    assert len(ax.lines) == 6
    x2, y2 = au.concentric_spheres(2, 5, 10)
    with torch.no_grad():
        traj2 = au.ODENet(2, augment_dim=1).trajectory(x2, times)
    ax = plots.plot_trajectories_2d(traj2, y2, max_lines=8)
    assert len(ax.lines) == 8
    ax = plots.plot_trajectories_3d(traj2, y2, max_lines=8)
    assert len(ax.lines) == 8


def test_vector_field_plot_leaves_nfe_untouched():
    field = au.MLPField(2)
    ax = plots.plot_vector_field(field, num=5)
    assert field.nfe == 0 and len(ax.collections) == 1
    field1 = au.MLPField(1)
    plots.plot_vector_field_1d(field1, np.linspace(0, 1, 4), num=3)
    assert field1.nfe == 0


def test_history_band_is_mean_of_seeds():
    hs = [
        au.History(loss=[1.0, 2.0, 3.0]),
        au.History(loss=[3.0, 4.0, 5.0, 6.0]),
    ]
    ax = plots.plot_history_band(hs, "loss")
    assert np.allclose(ax.lines[0].get_ydata(), [2.0, 3.0, 4.0])


def test_smooth_and_label_colors():
    assert np.allclose(plots.smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert list(plots.label_colors([-1, 1])) == [plots.BLUE, plots.RED]


def test_features_scatter_2d_and_3d():
    f = torch.randn(10, 3)
    y = torch.tensor([-1.0] * 5 + [1.0] * 5)
    assert plots.plot_features(f, y).name == "3d"
    assert len(plots.plot_features(f[:, :2], y).collections) == 1


def test_history_band_log_scale_is_geometric_and_positive():
    hs = [au.History(loss=[1.0, 0.01]), au.History(loss=[100.0, 0.0001])]
    ax = plots.plot_history_band(hs, "loss", log=True)
    assert np.allclose(ax.lines[0].get_ydata(), [10.0, 0.001])
    assert ax.get_yscale() == "log"
    verts = ax.collections[0].get_paths()[0].vertices
    assert (verts[:, 1] > 0).all()
