"""The Fréchet mean against closed forms (half-plane midpoint, symmetric points on the sphere,
the weighted Euclidean mean in polar coordinates), weights, scaling, threads and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo import statistics as st
from manifolds import (
    PoincareHalfPlane,
    PolarPlane,
    StereographicSphere,
    WalledPlane,
    poincare_distance,
    polar_to_cartesian,
    to_chart,
    to_sphere,
)


# --------------------------------------------------------------------------------------------
# frechet_mean
# --------------------------------------------------------------------------------------------
def test_frechet_mean_of_two_points_is_the_half_plane_midpoint():
    # On the semicircle of centre c and radius R, the point at angle φ has arc length ln tan(φ/2).
    a, b = np.array([-1.0, 1.0]), np.array([1.5, 0.8])
    res = st.frechet_mean(PoincareHalfPlane(), np.array([a, b]))
    c = (np.sum(b**2) - np.sum(a**2)) / (2 * (b[0] - a[0]))
    radius = np.hypot(a[0] - c, a[1])
    phi = [np.arctan2(p[1], p[0] - c) for p in (a, b)]
    s_mid = 0.5 * sum(np.log(np.tan(f / 2)) for f in phi)
    phi_mid = 2 * np.arctan(np.exp(s_mid))
    expected = np.array([c + radius * np.cos(phi_mid), radius * np.sin(phi_mid)])
    assert res.converged and res.status == "converged" and res.failed == []
    np.testing.assert_allclose(res.mean, expected, rtol=1e-8, atol=1e-8)
    half = poincare_distance(a, b)[0] / 2
    np.testing.assert_allclose(res.distances, [half, half], rtol=1e-8)
    assert res.variance == pytest.approx(half**2, rel=1e-8)


def test_frechet_mean_of_symmetric_points_on_the_sphere_is_the_centre():
    # Four points at geodesic distance 0.6 (and two at 0.3) around a centre c, symmetric under
    # rotations by π about c: the mean is c.
    p = to_sphere(np.array([0.4, -0.3]))
    e1 = np.cross(p, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(p, e1)
    rho = np.array([0.6, 0.6, 0.6, 0.6, 0.3, 0.3])
    alpha = np.array([0.0, np.pi / 2, np.pi, 3 * np.pi / 2, 0.4, 0.4 + np.pi])
    q = np.cos(rho)[:, None] * p + np.sin(rho)[:, None] * (np.cos(alpha)[:, None] * e1 + np.sin(alpha)[:, None] * e2)
    res = st.frechet_mean(StereographicSphere(), to_chart(q))
    assert res.converged
    np.testing.assert_allclose(res.mean, [0.4, -0.3], atol=1e-8)
    np.testing.assert_allclose(res.distances, rho, rtol=1e-8)


def test_frechet_mean_in_polar_coordinates_is_the_euclidean_mean_with_weights():
    rng = np.random.default_rng(5)
    polar = np.column_stack([rng.uniform(1.0, 2.0, 7), rng.uniform(0.2, 1.2, 7)])
    w = rng.uniform(0.1, 2.0, 7)
    cart = polar_to_cartesian(polar)
    target = w @ cart / w.sum()
    res = st.frechet_mean(PolarPlane(), polar, w)
    assert res.converged
    np.testing.assert_allclose(polar_to_cartesian(res.mean), target, atol=1e-8)
    assert res.variance == pytest.approx(w @ np.sum((cart - target) ** 2, axis=1) / w.sum(), rel=1e-8)


def test_frechet_mean_weights_repeat_points_and_scale_invariance():
    metric = reference_rhvae()
    pts = np.array([[-0.5, 0.2], [1.2, 0.9], [0.3, 1.4], [0.8, -0.4]])
    weighted = st.frechet_mean(metric, pts, [2.0, 1.0, 0.0, 1.0])
    repeated = st.frechet_mean(metric, pts[[0, 0, 1, 3]])
    assert weighted.converged and repeated.converged
    np.testing.assert_allclose(weighted.mean, repeated.mean, atol=1e-8)
    assert weighted.variance == pytest.approx(repeated.variance, rel=1e-8)
    scaled = st.frechet_mean(metric.scaled(7.0), pts, [2.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(scaled.mean, weighted.mean, atol=1e-8)
    assert scaled.variance == pytest.approx(7.0 * weighted.variance, rel=1e-8)


def test_frechet_mean_does_not_depend_on_threads():
    metric = reference_rhvae()
    pts = np.random.default_rng(4).uniform(-0.5, 1.5, (40, 2))
    one = st.frechet_mean(metric, pts, n_threads=1)
    two = st.frechet_mean(metric, pts, n_threads=2)
    np.testing.assert_array_equal(one.mean, two.mean)
    assert one.n_iter == two.n_iter and one.converged


def test_frechet_mean_flags_a_point_whose_log_fails():
    pts = np.array([[0.0, 0.0], [0.2, 0.3], [-0.3, 0.1], [0.9, 0.0]])  # the last one is outside x < 0.5
    with pytest.warns(RuntimeWarning):
        res = st.frechet_mean(WalledPlane(wall=0.5, raises=True), pts)
    assert not res.converged and res.status == "log_failed" and res.failed == [3]
    assert np.all(np.isfinite(res.mean))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(points=np.zeros((0, 2))), "points"),
        (dict(points=np.array([[0.0, np.inf]])), "points"),
        (dict(points=np.zeros((3, 3))), "points"),
        (dict(weights=[1.0, 2.0]), "weights"),
        (dict(weights=[1.0, -1.0, 1.0]), "weights"),
        (dict(weights=[0.0, 0.0, 0.0]), "weights"),
        (dict(weights=[1.0, np.nan, 1.0]), "weights"),
        (dict(init=[[0.0, 0.0], [1.0, 1.0]]), "init"),
        (dict(tol=0.0), "tol"),
        (dict(max_iter=-1), "max_iter"),
    ],
)
def test_frechet_mean_bad_input(kwargs, name):
    args = dict(points=np.array([[0.0, 0.0], [1.0, 0.5], [0.2, 0.9]]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        st.frechet_mean(reference_rhvae(), args.pop("points"), **args)
