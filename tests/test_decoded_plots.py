"""Points equally spaced in arc length, and decoded images along curves (matplotlib Agg)."""

from __future__ import annotations

import latentgeo as lg
import numpy as np
import pytest
from conftest import PoincareHalfPlane
from latentgeo.plot import plot_decoded_curves, points_at_equal_arc_length


def test_equal_arc_length_on_the_half_plane():
    # On x = 0 the half-plane's arc length from y = 1 is log y: equal spacing means y_k = e^(k/(n-1)).
    metric = PoincareHalfPlane()
    curve = lambda t: np.stack([np.zeros_like(t), np.exp(t**2)], axis=1)  # noqa: E731 - non-uniform speed
    points = points_at_equal_arc_length(metric, curve, 6)
    expected = np.stack([np.zeros(6), np.exp(np.linspace(0, 1, 6))], axis=1)
    # midpoint rule on 1024 segments: relative error ~ (1/1024)² of the arc length
    np.testing.assert_allclose(points, expected, rtol=1e-6, atol=1e-12)
    nodes = curve(np.linspace(0, 1, 4001))  # the same curve as a polyline of nodes
    np.testing.assert_allclose(points_at_equal_arc_length(metric, nodes, 6), expected, rtol=1e-6)


def test_equal_arc_length_bad_input_and_constant_curve():
    metric = lg.ConstantMetric(np.eye(2))
    with pytest.raises(ValueError, match=r"^n_points: expected an integer >= 2"):
        points_at_equal_arc_length(metric, np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match=r"^curve: contains NaN"):
        points_at_equal_arc_length(metric, np.full((3, 2), np.nan), 3)
    np.testing.assert_array_equal(points_at_equal_arc_length(metric, np.ones((3, 2)), 4), np.ones((4, 2)))


def test_plot_decoded_curves_draws_the_decoded_images():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = lg.ConstantMetric(np.eye(2))
    decode = lambda z: np.repeat(z[:, :1], 6, axis=1) * np.arange(6)  # noqa: E731 - (n, 6) "images"
    line = np.array([[0.0, 0.0], [1.0, 0.0]])
    bent = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fig, axes = plot_decoded_curves(decode, metric, [line, bent], 5, image_shape=(2, 3), row_labels=["a", "b"])
    assert axes.shape == (2, 5) and axes[0, 0].get_title(loc="left") == "a"
    # second row: the points at arc length 0, 0.5, 1, 1.5, 2 of the bent polyline
    xs = np.array([0.0, 0.0, 0.0, 0.5, 1.0])
    for col, x in enumerate(xs):
        np.testing.assert_allclose(
            np.asarray(axes[1, col].images[0].get_array()), (x * np.arange(6)).reshape(2, 3), atol=1e-12
        )
    with pytest.raises(ValueError, match=r"^row_labels: expected 2 labels"):
        plot_decoded_curves(decode, metric, [line, bent], 5, image_shape=(2, 3), row_labels=["a"])
    plt.close("all")
