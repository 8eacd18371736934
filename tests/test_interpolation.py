"""Points equally spaced along geodesics (statistics.interpolate) against closed forms on the
Poincaré half-plane and the solver's own curve."""

from __future__ import annotations

import latentgeo as lg
import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo import statistics as st
from manifolds import PoincareHalfPlane, poincare_distance


# --------------------------------------------------------------------------------------------
# interpolate
# --------------------------------------------------------------------------------------------
def test_interpolate_vertical_half_plane_geodesic_is_geometric():
    # Along x = const, hyperbolic arc length is log y: equal spacing means y_k = y0 (y1/y0)^(k/(n-1)).
    pts = st.interpolate(PoincareHalfPlane(), [0.3, 0.5], [0.3, 4.0], 9, tol=1e-10)
    expected_y = 0.5 * 8.0 ** (np.arange(9) / 8)
    np.testing.assert_allclose(pts[:, 1], expected_y, rtol=1e-9)
    np.testing.assert_allclose(pts[:, 0], 0.3, atol=1e-9)


def test_interpolate_semicircle_equal_hyperbolic_steps():
    a, b = np.array([-1.0, 1.0]), np.array([1.5, 0.8])
    res = st.interpolate(PoincareHalfPlane(), a, b, 11, tol=1e-10, return_result=True)
    pts = res.points[0]
    steps = poincare_distance(pts[:-1], pts[1:])
    total = poincare_distance(a, b)[0]
    np.testing.assert_allclose(steps, total / 10, rtol=1e-9)  # measured ~5e-13 with tol 1e-10
    # the points lie on the semicircle through a and b centred on the x-axis
    centre = (np.sum(b**2) - np.sum(a**2)) / (2 * (b[0] - a[0]))
    radius = np.hypot(a[0] - centre, a[1])
    np.testing.assert_allclose(np.hypot(pts[:, 0] - centre, pts[:, 1]), radius, rtol=1e-6)
    assert res.lengths[0] == pytest.approx(total, rel=1e-7)
    assert res.converged[0] and res.status == ["converged"]


def test_interpolate_spacing_on_its_own_curve_is_exact():
    # The arc length between consecutive points along the solver's curve (Gauss-Legendre with many
    # nodes, independent of the Newton solve) is L / (n - 1) to the accuracy of that quadrature.
    metric = reference_rhvae()
    z0, z1 = np.array([-0.8, 0.2]), np.array([1.6, 1.1])
    geo = lg.geodesic(metric, z0, z1)
    pts = st.interpolate(metric, z0, z1, 6)
    t = np.linspace(0, 1, 20001)
    curve = geo.curve(t)
    # where each interpolated point sits on the densely sampled curve
    idx = [int(np.argmin(np.sum((curve - p) ** 2, axis=1))) for p in pts]
    v = geo.curve(t, derivative=True)
    speed = np.sqrt(metric.quadratic_form(curve, v))
    cumulative = np.concatenate([[0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(t))])
    spacing = np.diff(cumulative[idx])
    # the grid step 5e-5 in t bounds the position error of the nearest-sample lookup
    np.testing.assert_allclose(spacing, cumulative[-1] / 5, rtol=2e-3)


def test_interpolate_batched_matches_single_pairs():
    metric = reference_rhvae()
    rng = np.random.default_rng(2)
    z0, z1 = rng.uniform(-1, 2, (4, 2)), rng.uniform(-1, 2, (4, 2))
    batch = st.interpolate(metric, z0, z1, 5, n_threads=1)
    assert batch.shape == (4, 5, 2)
    for i in range(4):
        np.testing.assert_allclose(
            batch[i], st.interpolate(metric, z0[i], z1[i], 5, n_threads=1), rtol=1e-12, atol=1e-14
        )
    np.testing.assert_array_equal(batch[:, 0], z0)
    np.testing.assert_array_equal(batch[:, -1], z1)


def test_interpolate_identical_endpoints():
    pts = st.interpolate(reference_rhvae(), [0.2, 0.3], [0.2, 0.3], 4)
    np.testing.assert_array_equal(pts, np.tile([0.2, 0.3], (4, 1)))


@pytest.mark.parametrize(
    "args, name",
    [
        (([0.0, 1.0], [1.0, 1.0], 1), "n_points"),
        (([0.0, 1.0], [1.0, 1.0, 2.0], 3), "z1"),
        (([[0.0, 1.0]], [[1.0, 1.0], [2.0, 1.0]], 3), "z1"),
        (([np.nan, 1.0], [1.0, 1.0], 3), "z0"),
    ],
)
def test_interpolate_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        st.interpolate(reference_rhvae(), *args)
