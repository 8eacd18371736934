"""latentgeo.plot with the Agg backend: returned axes, their artists and the plotted values."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import latentgeo as lg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from latentgeo.plot import magnification_grid, plot_curves, plot_latent, plot_magnification  # noqa: E402
from manifolds import to_sphere  # noqa: E402


@pytest.fixture(autouse=True)
def no_show_and_close(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("library code must not call show()")

    monkeypatch.setattr(plt, "show", forbidden)
    yield
    plt.close("all")


class CountingLogDet(lg.ConstantMetric):
    """A constant metric that counts its log_det calls and the points per call."""

    calls: list

    def log_det(self, z, n_threads=None):
        self.calls.append(len(z))
        return super().log_det(z, n_threads=n_threads)


def test_magnification_values_against_closed_form():
    # Sphere: G = 4/(1+r²)² I in 2-d, so log √det G = log 4 - 2 log(1 + r²).
    metric = lg.PullbackMetric.from_callable(to_sphere, 2)
    ax = plot_magnification(metric, (-2, 2, -1, 3), resolution=(31, 21))
    assert isinstance(ax, matplotlib.axes.Axes)
    (image,) = ax.images
    values = image.get_array()
    assert values.shape == (21, 31)
    xs, ys = np.meshgrid(np.linspace(-2, 2, 31), np.linspace(-1, 3, 21))
    np.testing.assert_allclose(values, np.log(4) - 2 * np.log1p(xs**2 + ys**2), atol=1e-7)
    assert tuple(image.get_extent()) == (-2, 2, -1, 3)
    assert len(ax.figure.axes) == 2  # the plot and its colorbar


def test_magnification_is_one_batched_call():
    metric = CountingLogDet(np.array([[2.0, 0.3], [0.3, 1.0]]))
    metric.calls = []
    fig, ax = plt.subplots()
    out = plot_magnification(metric, (0, 1, 0, 1), resolution=17, ax=ax, colorbar=False)
    assert out is ax and metric.calls == [17 * 17] and len(fig.axes) == 1
    np.testing.assert_allclose(ax.images[0].get_array(), 0.5 * np.log(2.0 - 0.09))


def test_magnification_rhvae_matches_log_det():
    model = lg.datasets.load_digits_rhvae()
    xs, ys, values = magnification_grid(model.metric, (-3, 3, -3, 3), resolution=12)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    np.testing.assert_array_equal(values.ravel(), 0.5 * model.metric.log_det(grid))  # the same call, bit for bit


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bounds=(0, 1, 0)), r"^bounds: expected \(xmin, xmax, ymin, ymax\)"),
        (dict(bounds=(1, 0, 0, 1)), r"^bounds: need xmin < xmax"),
        (dict(bounds=(0, 1, 0, np.nan)), r"^bounds: contains NaN"),
        (dict(bounds=(0, 1, 0, 1), resolution=1), r"^resolution: expected an integer >= 2"),
        (dict(bounds=(0, 1, 0, 1), resolution=(5, 2.5)), r"^resolution:"),
    ],
)
def test_magnification_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_magnification(lg.ConstantMetric(np.eye(2)), **kwargs)


def test_magnification_needs_two_dimensions():
    with pytest.raises(ValueError, match=r"^metric: magnification plots need a 2-d latent space"):
        plot_magnification(lg.ConstantMetric(np.eye(3)), (0, 1, 0, 1))


class FakeResult:
    """Duck-typed geodesic result: nodes and a callable curve."""

    def __init__(self, nodes):
        self.nodes = nodes

    def curve(self, t):
        return self.nodes[0] + np.outer(t, self.nodes[-1] - self.nodes[0]) + np.outer(t * (1 - t), [0.0, 1.0])


def test_plot_curves_with_straight_lines():
    t = np.linspace(0, 1, 50)
    arc = np.stack([t, np.sin(np.pi * t)], axis=1)
    result = FakeResult(np.array([[0.0, 0.0], [2.0, 1.0]]))
    ax = plot_curves([arc, result], colors=["red", "blue"], n_samples=30)
    assert len(ax.lines) == 4
    curve_line, straight_line, sampled, straight2 = ax.lines
    np.testing.assert_array_equal(curve_line.get_xydata(), arc)
    np.testing.assert_array_equal(straight_line.get_xydata(), arc[[0, -1]])
    assert straight_line.get_linestyle() == "--" and straight_line.get_color() == "red"
    assert len(sampled.get_xydata()) == 30 and sampled.get_color() == "blue"
    np.testing.assert_allclose(straight2.get_xydata(), [[0, 0], [2, 1]])


def test_plot_curves_batch_without_straight():
    batch = np.random.default_rng(0).normal(size=(3, 10, 2))
    ax = plot_curves(batch, straight=False)
    assert len(ax.lines) == 3
    for line, path in zip(ax.lines, batch):
        np.testing.assert_array_equal(line.get_xydata(), path)


def test_plot_curves_bad_input():
    with pytest.raises(ValueError, match=r"^curves: curve 0 must have shape"):
        plot_curves(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"^curves: contains NaN"):
        plot_curves(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match=r"^colors: expected 2 colours"):
        plot_curves([np.ones((5, 2)), np.zeros((5, 2))], colors=["red"])


def test_plot_latent_by_label():
    rng = np.random.default_rng(1)
    points, labels = rng.normal(size=(60, 2)), np.repeat([3, 1, 7], 20)
    ax = plot_latent(points, labels)
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1", "3", "7"]
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), points[labels == 1])
    colors = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colors) == 3


def test_plot_latent_without_labels_and_bad_input():
    ax = plot_latent(np.zeros((4, 2)))
    assert len(ax.collections) == 1 and ax.get_legend() is None
    with pytest.raises(ValueError, match=r"^labels: expected shape \(4,\)"):
        plot_latent(np.zeros((4, 2)), labels=[1, 2])
    with pytest.raises(ValueError, match=r"^points: expected shape \(M, 2\)"):
        plot_latent(np.zeros((4, 3)))


def test_demo_like_figure_renders(tmp_path):
    model = lg.datasets.load_digits_rhvae()
    ax = plot_magnification(model.metric, (-3, 3, -3, 3), resolution=40)
    plot_latent(model.latent, model.labels, ax=ax)
    plot_curves([model.latent[[0, 1]]], ax=ax)
    ax.figure.savefig(tmp_path / "demo.png", dpi=60)
    assert (tmp_path / "demo.png").stat().st_size > 5000
