"""The Levi-Civita connection against closed forms: Christoffel symbols, exp and log maps, parallel
transport and curvature on the Poincaré half-plane, the unit sphere in stereographic coordinates and
the flat plane in polar coordinates; the RHVAE against central differences and the discrete solver."""

from __future__ import annotations

import _thread
import threading
import time

import latentgeo as lg
import numpy as np
import pytest
from conftest import random_rhvae
from manifolds import (
    PoincareHalfPlane,
    PolarPlane,
    StereographicSphere,
    WalledPlane,
    poincare_distance,
    poincare_exp,
    poincare_log,
    polar_to_cartesian,
    polar_velocity_to_cartesian,
    sphere_distance,
    sphere_exp,
)

# --------------------------------------------------------------------------------------------
# Helpers. The closed-form geometries are in tests/manifolds.py (Python metrics: the batched
# callback path).
# --------------------------------------------------------------------------------------------


def g_inner(metric, z, a, b):
    return np.einsum("...a,...ab,...b->...", a, metric.metric(z), b)


class AsPythonMetric(lg.Metric):
    """A native metric seen as a plain Python metric: the callback path on the same G."""

    def __init__(self, inner):
        self.inner, self.dim = inner, inner.dim

    def _metric(self, z, n_threads):
        return self.inner.metric(z)

    def _derivative(self, z, n_threads):
        return self.inner.derivative(z)


@pytest.fixture(scope="module")
def rhvae3():
    metric, _, _ = random_rhvae(np.random.default_rng(7), n_centroids=9, dim=3)
    return metric


# --------------------------------------------------------------------------------------------
# Christoffel symbols and curvature
# --------------------------------------------------------------------------------------------


def test_christoffel_of_the_half_plane_is_the_closed_form():
    z = np.array([[0.3, 0.5], [-2.0, 3.0]])
    gamma = lg.christoffel(PoincareHalfPlane(), z)
    y = z[:, 1]
    expected = np.zeros((2, 2, 2, 2))
    expected[:, 0, 0, 1] = expected[:, 0, 1, 0] = -1.0 / y  # Γˣₓᵧ
    expected[:, 1, 0, 0] = 1.0 / y  # Γʸₓₓ
    expected[:, 1, 1, 1] = -1.0 / y  # Γʸᵧᵧ
    np.testing.assert_allclose(gamma, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("native", [True, False])
def test_rhvae_christoffel_matches_central_differences_of_g(rhvae3, native):
    metric = rhvae3 if native else AsPythonMetric(rhvae3)
    z = np.random.default_rng(1).normal(size=(6, 3))
    h = 1e-5
    dg = np.stack([(rhvae3.metric(z + h * e) - rhvae3.metric(z - h * e)) / (2 * h) for e in np.eye(3)], axis=-1)
    lowered = dg.transpose(0, 1, 3, 2) + dg - np.einsum("nijl->nlij", dg)  # ∂ᵢGₗⱼ + ∂ⱼGₗᵢ − ∂ₗGᵢⱼ
    reference = 0.5 * np.einsum("nkl,nlij->nkij", np.linalg.inv(rhvae3.metric(z)), lowered)
    gamma = lg.christoffel(metric, z)
    scale = np.abs(reference).max()
    # central differences of G with h = 1e-5: truncation ~h² |∂³G| and rounding ~eps |G| / h
    np.testing.assert_allclose(gamma, reference, atol=1e-7 * scale)
    np.testing.assert_allclose(gamma, gamma.transpose(0, 1, 3, 2), atol=1e-14 * scale)


@pytest.mark.parametrize("metric, expected", [(PoincareHalfPlane(), -1.0), (StereographicSphere(), 1.0)])
def test_gaussian_curvature_of_the_closed_forms(metric, expected):
    z = np.array([[0.2, 0.7], [-1.5, 2.5], [3.0, 0.4]])
    np.testing.assert_allclose(lg.gaussian_curvature(metric, z), expected, atol=1e-7)
    np.testing.assert_allclose(lg.scalar_curvature(metric, z), 2.0 * expected, atol=2e-7)
    # in two dimensions Ric = K G
    g = metric.metric(z)
    np.testing.assert_allclose(lg.ricci(metric, z), expected * g, rtol=1e-7, atol=1e-7 * np.abs(g).max())


def test_polar_coordinates_are_flat():
    z = np.array([[0.5, 0.3], [2.0, -1.0], [7.0, 2.5]])
    np.testing.assert_allclose(lg.scalar_curvature(PolarPlane(), z), 0.0, atol=1e-7)
    assert np.all(lg.ricci(PolarPlane(), z) == pytest.approx(0.0, abs=1e-7))


def test_rhvae_curvature_analytic_matches_the_finite_difference_path(rhvae3):
    z = np.random.default_rng(2).normal(size=(5, 3))
    analytic = lg.scalar_curvature(rhvae3, z)
    fd = lg.scalar_curvature(AsPythonMetric(rhvae3), z)
    assert np.all(np.abs(analytic) > 1e-3)  # a curved metric, not a comparison of zeros
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)
    np.testing.assert_allclose(
        lg.ricci(rhvae3, z),
        lg.ricci(AsPythonMetric(rhvae3), z),
        rtol=1e-6,
        atol=1e-8 * np.abs(lg.ricci(rhvae3, z)).max(),
    )


def test_constant_metric_has_no_connection():
    metric = lg.ConstantMetric(np.array([[2.0, 0.5], [0.5, 1.0]]))
    z = np.array([[0.1, 0.2], [3.0, -4.0]])
    assert np.all(lg.christoffel(metric, z) == 0.0)
    assert np.all(lg.scalar_curvature(metric, z) == 0.0)


def test_pullback_surface_curvature_is_gauss_theorema_egregium():
    # A decoder R² -> R³ is a surface; K = (LN − M²)/(EG − F²) from the second fundamental form.
    rng = np.random.default_rng(3)
    w1, b1, w2, b2 = rng.normal(size=(6, 2)), rng.normal(size=6), rng.normal(size=(3, 6)), rng.normal(size=3)
    metric = lg.PullbackMetric([w1, w2], [b1, b2], ["tanh", "identity"])
    z = rng.normal(size=(4, 2)) * 0.5
    jac = metric.jacobian(z)  # (N, 3, 2)
    h = 1e-4
    hess = np.stack([(metric.jacobian(z + h * e) - metric.jacobian(z - h * e)) / (2 * h) for e in np.eye(2)], -1)
    normal = np.cross(jac[:, :, 0], jac[:, :, 1])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    second = np.einsum("nd,ndij->nij", normal, hess)
    expected = np.linalg.det(second) / np.linalg.det(metric.metric(z))
    assert np.all(np.abs(expected) > 1e-3)
    # the reference's central differences (h = 1e-4) are accurate to ~1e-8 relative
    np.testing.assert_allclose(lg.gaussian_curvature(metric, z), expected, rtol=1e-6)
    # the native pullback model and the callback path on the same G shoot the same geodesics
    v = 0.3 * rng.normal(size=(4, 2))
    native, python = lg.exp_map(metric, z, v, t=[0.5]), lg.exp_map(AsPythonMetric(metric), z, v, t=[0.5])
    assert native.converged.all() and python.converged.all()
    np.testing.assert_allclose(native.curves, python.curves, atol=1e-8 * np.abs(v).max())


def test_dense_metric_without_derivative_through_two_finite_differences():
    # G only: ∂G by central differences (step 1e-6), then ∂Γ by FD of Γ
    metric = lg.DenseMetric(StereographicSphere().metric, dim=2)
    z = np.array([[0.2, -0.3], [1.1, 0.4]])
    # Γ carries the error ~1e-10 of the numerical ∂G; the second differences amplify it ~1e3 times
    np.testing.assert_allclose(lg.gaussian_curvature(metric, z), 1.0, atol=1e-5)
    res = lg.exp_map(metric, z, [[0.5, 0.2], [-0.3, 0.4]])
    np.testing.assert_allclose(res.points[0], sphere_exp(z[0], np.array([0.5, 0.2])), atol=1e-8)


def test_scaling_the_metric_scales_curvature_only(rhvae3):
    z = np.random.default_rng(4).normal(size=(4, 3))
    c = 3.7
    scaled = lg.ScaledMetric(rhvae3, c)
    np.testing.assert_allclose(lg.scalar_curvature(scaled, z), lg.scalar_curvature(rhvae3, z) / c, rtol=1e-12)
    np.testing.assert_allclose(lg.ricci(scaled, z), lg.ricci(rhvae3, z), rtol=1e-12)
    np.testing.assert_allclose(lg.christoffel(scaled, z), lg.christoffel(rhvae3, z), rtol=1e-12)
    sphere = lg.ScaledMetric(StereographicSphere(), 4.0)  # radius 2: K = 1/4 (the callback path)
    np.testing.assert_allclose(lg.gaussian_curvature(sphere, z[:, :2]), 0.25, atol=1e-7)


# --------------------------------------------------------------------------------------------
# The exponential map
# --------------------------------------------------------------------------------------------

HALF_PLANE_STARTS = np.array([[0.0, 1.0], [0.3, 2.0], [-1.0, 0.5], [2.0, 1.5], [0.5, 0.8]])
HALF_PLANE_VELOCITIES = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, -0.3], [-2.0, 1.0], [0.0, -0.7]])


def test_exp_on_the_half_plane_is_the_closed_form():
    times = np.linspace(0.0, 2.0, 9)
    res = lg.exp_map(PoincareHalfPlane(), HALF_PLANE_STARTS, HALF_PLANE_VELOCITIES, t=times)
    assert res.converged.all() and res.status == ["converged"] * 5
    for i, (z, v) in enumerate(zip(HALF_PLANE_STARTS, HALF_PLANE_VELOCITIES)):
        scale = max(np.abs(z).max(), np.abs(v).max() * 2.0)
        assert np.abs(res.points[i] - poincare_exp(z, v)).max() <= 1e-8 * scale
        expected = np.array([poincare_exp(z, v, t) for t in times])
        assert np.abs(res.curves[i] - expected).max() <= 1e-8 * scale
        h = 1e-6  # the velocity by central differences of the closed form
        vel = np.array([(poincare_exp(z, v, t + h) - poincare_exp(z, v, t - h)) / (2 * h) for t in times])
        assert np.abs(res.velocities[i] - vel).max() <= 1e-7 * scale
    assert res.velocities.shape == (5, 9, 2) and np.array_equal(res.t, times)
    assert np.all(res.speed_drift < 1e-8)


def test_exp_on_the_sphere_follows_great_circles():
    z = np.array([[0.0, 0.0], [0.5, -0.2], [1.2, 0.7]])
    v = np.array([[1.0, 0.5], [-0.6, 0.9], [0.3, -0.2]])
    res = lg.exp_map(StereographicSphere(), z, v, t=[0.25, 0.5, 1.0])
    for i in range(3):
        for j, t in enumerate(res.t):
            expected = sphere_exp(z[i], v[i], t)
            assert np.abs(res.curves[i, j] - expected).max() <= 1e-8 * max(1.0, np.abs(expected).max())
    np.testing.assert_array_equal(res.points, res.curves[:, -1])


def test_exp_in_polar_coordinates_is_a_straight_line():
    z = np.array([[1.0, 0.2], [2.0, -1.0]])
    v = np.array([[0.3, 0.5], [-0.5, 0.2]])
    res = lg.exp_map(PolarPlane(), z, v)
    expected = polar_to_cartesian(z) + polar_velocity_to_cartesian(z, v)
    np.testing.assert_allclose(polar_to_cartesian(res.points), expected, atol=1e-9 * 3)


def test_exp_of_a_constant_metric_and_of_zero_velocities():
    metric = lg.ConstantMetric(np.array([[2.0, 0.5], [0.5, 1.0]]))
    z = np.array([[0.1, 0.2], [3.0, -4.0]])
    v = np.array([[1.0, -2.0], [0.0, 0.0]])
    res = lg.exp_map(metric, z, v)
    np.testing.assert_allclose(res.points, z + v, atol=1e-14 * 5)
    zero = lg.exp_map(lg.datasets.load_digits_rhvae().metric, z, np.zeros_like(z), t=[0.0, 0.5])
    np.testing.assert_array_equal(zero.points, z)
    np.testing.assert_array_equal(zero.curves, np.stack([z, z], axis=1))
    assert zero.converged.all() and np.all(zero.speed_drift == 0.0)


def test_rhvae_exp_native_hamiltonian_matches_the_callback_path(rhvae3):
    rng = np.random.default_rng(5)
    z, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    native = lg.exp_map(rhvae3, z, v, t=[0.5])
    python = lg.exp_map(AsPythonMetric(rhvae3), z, v, t=[0.5])
    assert native.converged.all() and python.converged.all()
    scale = max(np.abs(z).max(), np.abs(v).max())
    # two integrations (Hamiltonian, Lagrangian) at rtol 1e-10: global errors ~1e-9 of the scale
    np.testing.assert_allclose(native.points, python.points, atol=1e-8 * scale)
    np.testing.assert_allclose(native.velocities, python.velocities, atol=1e-8 * scale)
    assert np.all(native.speed_drift < 1e-8)
    # the velocity at t = 0.5 is the derivative of the curve
    h = 1e-4
    ahead, behind = (lg.exp_map(rhvae3, z, v, t=[0.5 + s]).curves[:, 0] for s in (h, -h))
    np.testing.assert_allclose(native.velocities[:, 0], (ahead - behind) / (2 * h), atol=1e-6 * scale)


def test_exp_single_point_broadcasts_and_results_do_not_depend_on_threads():
    metric = lg.datasets.load_digits_rhvae().metric
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    v = 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    one = lg.exp_map(metric, [0.1, -0.3], v, n_threads=1)
    two = lg.exp_map(metric, [0.1, -0.3], v, n_threads=2)
    np.testing.assert_array_equal(one.points, two.points)
    np.testing.assert_array_equal(one.n_steps, two.n_steps)
    assert one.points.shape == (40, 2) and one.converged.all()


def test_exp_scaled_metric_is_unchanged(rhvae3):
    rng = np.random.default_rng(6)
    z, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    base, scaled = lg.exp_map(rhvae3, z, v), lg.exp_map(lg.ScaledMetric(rhvae3, 250.0), z, v)
    np.testing.assert_allclose(scaled.points, base.points, rtol=1e-12, atol=1e-12)
    # through the callback the scaled G itself is integrated: Γ is unchanged up to rounding, and so
    # are the error estimates and the steps
    plane = lg.exp_map(PoincareHalfPlane(), HALF_PLANE_STARTS, HALF_PLANE_VELOCITIES)
    scaled = lg.exp_map(lg.ScaledMetric(PoincareHalfPlane(), 1e-3), HALF_PLANE_STARTS, HALF_PLANE_VELOCITIES)
    np.testing.assert_allclose(scaled.points, plane.points, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scaled.speed_drift, plane.speed_drift, atol=1e-12)


def test_exp_domain_exit_is_flagged_per_trajectory():
    z = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    v = np.array([[2.0, 0.0], [0.5, 0.5], [-1.0, 0.0]])
    res = lg.exp_map(WalledPlane(wall=1.0), z, v, t=[0.25, 0.75])
    assert res.status == ["domain_exit", "converged", "converged"]
    assert not res.converged[0] and res.converged[1:].all()
    assert 0.45 < res.t_reached[0] < 0.5  # the wall x = 1 is reached at t = 0.5
    assert res.points[0, 0] < 1.0 and np.all(np.isfinite(res.points))
    np.testing.assert_allclose(res.curves[0, 0], [0.5, 0.0], atol=1e-12)  # before the wall
    assert np.all(np.isnan(res.curves[0, 1]))  # after the stop: NaN, flagged by the status
    np.testing.assert_allclose(res.points[1:], z[1:] + v[1:], atol=1e-12)


def test_python_metrics_are_called_once_per_stage_for_the_whole_batch():
    class Counting(PoincareHalfPlane):
        calls = 0

        def _metric(self, z, n_threads):
            Counting.calls += 1
            return super()._metric(z, n_threads)

    z = np.column_stack([np.linspace(-1, 1, 50), np.full(50, 1.0)])
    res = lg.exp_map(Counting(), z, np.tile([0.5, 0.2], (50, 1)))
    steps = (res.n_steps + res.n_rejected).max()
    assert Counting.calls <= 7 * steps + 10  # one call per stage, not one per trajectory


# --------------------------------------------------------------------------------------------
# The logarithmic map
# --------------------------------------------------------------------------------------------


def test_log_on_the_half_plane_is_the_closed_form_and_round_trips():
    metric = PoincareHalfPlane()
    z0 = np.array([[-1.0, 1.0], [0.2, 0.5], [0.3, 0.4], [1.0, 2.0]])
    z1 = np.array([[1.0, 1.0], [1.5, 2.0], [0.3, 3.0], [-0.5, 0.3]])
    res = lg.log_map(metric, z0, z1)
    assert res.converged.all()
    expected = np.array([poincare_log(a, b) for a, b in zip(z0, z1)])
    np.testing.assert_allclose(res.vectors, expected, rtol=1e-7, atol=1e-7 * np.abs(expected).max())
    np.testing.assert_allclose(res.distances, poincare_distance(z0, z1), rtol=1e-7)
    back = lg.exp_map(metric, z0, res.vectors)
    assert np.abs(back.points - z1).max() <= 1e-9
    assert np.all(res.residual <= 1e-9)


def test_log_on_the_sphere_and_the_polar_plane():
    z0, z1 = np.array([[0.1, 0.2], [-0.8, 0.5]]), np.array([[1.0, -0.4], [0.6, 0.9]])
    res = lg.log_map(StereographicSphere(), z0, z1)
    np.testing.assert_allclose(res.distances, sphere_distance(z0, z1), rtol=1e-7)
    for a, v, b in zip(z0, res.vectors, z1):
        np.testing.assert_allclose(sphere_exp(a, v), b, atol=1e-9)
    p0, p1 = np.array([[1.0, 0.2], [2.0, 1.0]]), np.array([[1.5, 1.0], [1.2, 2.5]])
    polar = lg.log_map(PolarPlane(), p0, p1)
    cart = polar_to_cartesian(p1) - polar_to_cartesian(p0)
    np.testing.assert_allclose(polar_velocity_to_cartesian(p0, polar.vectors), cart, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(polar.distances, np.linalg.norm(cart, axis=1), rtol=1e-7)


def test_rhvae_log_matches_the_discrete_geodesic():
    data = lg.datasets.load_digits_rhvae()
    rng = np.random.default_rng(8)
    idx = rng.integers(0, len(data.latent), (6, 2))
    z0, z1 = data.latent[idx[:, 0]], data.latent[idx[:, 1]]
    res = lg.log_map(data.metric, z0, z1)
    assert res.converged.all(), res.status
    tight = lg.geodesics(data.metric, z0, z1, tol=1e-11, progress=False)
    np.testing.assert_allclose(res.distances, tight.length, rtol=1e-7)
    times = np.linspace(0.0, 1.0, 11)
    shot = lg.exp_map(data.metric, z0, res.vectors, t=times)
    for i in range(len(z0)):
        assert np.abs(shot.curves[i] - tight[i].curve(times)).max() <= 1e-5 * max(1.0, np.abs(z0[i]).max())
    assert np.abs(shot.points - z1).max() <= 1e-9 * np.abs(z1).max()


def test_log_identical_endpoints_and_scaling(rhvae3):
    rng = np.random.default_rng(9)
    z0, z1 = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(3, 3)) * 0.5
    z1[1] = z0[1]
    base = lg.log_map(rhvae3, z0, z1)
    assert base.converged.all() and np.all(base.vectors[1] == 0.0) and base.distances[1] == 0.0
    c = 9.0
    scaled = lg.log_map(lg.ScaledMetric(rhvae3, c), z0, z1)
    np.testing.assert_allclose(scaled.vectors, base.vectors, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(scaled.distances, np.sqrt(c) * base.distances, rtol=1e-8)


def test_log_pairs_that_do_not_converge_keep_the_discrete_estimate():
    metric = PoincareHalfPlane()
    z0 = np.array([[-1.0, 1.0], [0.5, 0.5]])
    z1 = np.array([[1.0, 1.0], [0.5, 0.5]])
    res = lg.log_map(metric, z0, z1, max_iter=1, tol=1e-15)
    assert res.status == ["max_iter", "converged"]
    assert list(res.converged) == [False, True]
    assert res.distances[0] == res.discrete.length[0] and res.residual[0] > 0
    np.testing.assert_allclose(res.vectors[0], res.discrete[0].curve(np.zeros(1), derivative=True)[0])


# --------------------------------------------------------------------------------------------
# Parallel transport
# --------------------------------------------------------------------------------------------


def test_transport_preserves_inner_products_and_the_angle_with_a_great_circle():
    metric = StereographicSphere()
    z, v = np.array([[0.2, -0.1]]), np.array([[0.8, 0.6]])
    w = np.array([[[1.0, 0.0], [0.3, 0.7]]])  # two vectors along one geodesic
    times = np.linspace(0, 1, 6)
    geodesic = lg.exp_map(metric, z, v, t=times)
    res = lg.parallel_transport(metric, geodesic, w, t=times)
    assert res.converged.all() and res.along.shape == (1, 6, 2, 2)
    pts, vel = geodesic.curves[0], geodesic.velocities[0]
    gram = np.einsum("tia,tab,tjb->tij", res.along[0], metric.metric(pts), res.along[0])
    np.testing.assert_allclose(gram, np.broadcast_to(gram[0], gram.shape), atol=1e-9 * np.abs(gram[0]).max())
    cosine = g_inner(metric, pts, res.along[0, :, 0], vel) / np.sqrt(
        g_inner(metric, pts, res.along[0, :, 0], res.along[0, :, 0]) * g_inner(metric, pts, vel, vel)
    )
    np.testing.assert_allclose(cosine, cosine[0], atol=1e-7)
    np.testing.assert_allclose(res.vectors[0], res.along[0, -1], atol=1e-10)


def test_holonomy_of_a_geodesic_triangle_is_its_area():
    # The octant triangle on the unit sphere (area π/2): chart points (1, 0), (0, 1) and (0, 0).
    metric = StereographicSphere()
    corners = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    w0 = np.array([0.3, 0.7])
    w = w0
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        res = lg.transport_along_geodesic(metric, a, b, w)
        assert res.converged.all() and res.vectors.shape == (2,)
        w = res.vectors
    start = corners[0]
    norm0, norm1 = np.sqrt(g_inner(metric, start, w0, w0)), np.sqrt(g_inner(metric, start, w, w))
    assert norm1 == pytest.approx(norm0, rel=1e-9)
    angle = np.arccos(g_inner(metric, start, w0, w) / (norm0 * norm1))
    assert angle == pytest.approx(np.pi / 2, abs=1e-7)


def test_transport_around_a_loop_in_polar_coordinates_returns_the_vector():
    # A Cartesian circle of radius 0.5 around (1.5, 0.3), seen in polar coordinates.
    centre, radius = np.array([1.5, 0.3]), 0.5

    def cart(t):
        return centre + radius * np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], axis=1)

    def curve(t):
        x = cart(t)
        return np.stack([np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])], axis=1)

    def velocity(t):
        x, dx = cart(t), 2 * np.pi * radius * np.stack([-np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)
        r2 = np.sum(x**2, axis=1)
        return np.stack([(x * dx).sum(1) / np.sqrt(r2), (x[:, 0] * dx[:, 1] - x[:, 1] * dx[:, 0]) / r2], axis=1)

    w = np.array([[0.4, -0.2], [1.0, 0.5]])
    res = lg.parallel_transport(PolarPlane(), curve, w, velocity=velocity, t=[0.5])
    assert res.converged.all() and res.vectors.shape == (2, 2)
    np.testing.assert_allclose(res.vectors, w, atol=1e-9)
    # halfway the Cartesian components are those at the start (flat space)
    start, half = curve(np.array([0.0])), curve(np.array([0.5]))
    np.testing.assert_allclose(
        polar_velocity_to_cartesian(half, res.along[0]), polar_velocity_to_cartesian(start, w), atol=1e-8
    )


def test_transport_along_discrete_geodesics_and_their_batch():
    metric = StereographicSphere()
    z0, z1 = np.array([[0.1, 0.2], [-0.5, 0.4]]), np.array([[0.9, -0.3], [0.3, 1.1]])
    batch = lg.geodesics(metric, z0, z1, tol=1e-10, progress=False)
    w = np.array([[1.0, 0.0], [0.2, -0.5]])
    along_batch = lg.parallel_transport(metric, batch, w)
    exact = lg.transport_along_geodesic(metric, z0, z1, w)
    assert along_batch.converged.all() and exact.converged.all()
    # The discrete curve differs from the geodesic by δ ~ √tol (the length is stationary, the
    # curve is not): the transports along the two curves differ by O(δ |Γ| |w|).
    times = np.linspace(0, 1, 65)
    shot = lg.exp_map(metric, z0, lg.log_map(metric, z0, z1).vectors, t=times)
    delta = max(np.abs(batch[i].curve(times) - shot.curves[i]).max() for i in range(2))
    assert delta < 1e-4
    np.testing.assert_allclose(along_batch.vectors, exact.vectors, atol=10 * delta)
    single = lg.parallel_transport(metric, batch[1], w[1])
    np.testing.assert_allclose(single.vectors, along_batch.vectors[1], rtol=1e-12)
    # G-norms are preserved along the curve itself to the integrator's accuracy
    np.testing.assert_allclose(
        g_inner(metric, z1, along_batch.vectors, along_batch.vectors), g_inner(metric, z0, w, w), rtol=1e-9
    )


def test_transport_identity_cases_and_scaling(rhvae3):
    rng = np.random.default_rng(10)
    z0, w = rng.normal(size=(2, 3)) * 0.5, rng.normal(size=(2, 3))
    same = lg.transport_along_geodesic(rhvae3, z0, z0, w)
    np.testing.assert_array_equal(same.vectors, w)
    still = lg.parallel_transport(rhvae3, lg.exp_map(rhvae3, z0, np.zeros_like(z0)), w)
    np.testing.assert_array_equal(still.vectors, w)
    z1 = rng.normal(size=(2, 3)) * 0.5
    base = lg.transport_along_geodesic(rhvae3, z0, z1, w)
    scaled = lg.transport_along_geodesic(lg.ScaledMetric(rhvae3, 0.01), z0, z1, w)
    np.testing.assert_allclose(scaled.vectors, base.vectors, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g_inner(rhvae3, z1, base.vectors, base.vectors), g_inner(rhvae3, z0, w, w), rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Bad input and interruption
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m: lg.exp_map(m, np.zeros((3, 2)), np.zeros((2, 2))), "v"),
        (lambda m: lg.exp_map(m, [[0.0, np.nan]], [[1.0, 0.0]]), "z"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, np.inf]), "v"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, 0.0], t=[0.5, 0.2]), "t"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, 0.0], t=[-0.5, 0.2]), "t"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, 0.0], rtol=0.0), "rtol"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, 0.0], max_steps=0), "max_steps"),
        (lambda m: lg.exp_map(m, [0.0, 1.0], [1.0, 0.0], step=3), "options"),
        (lambda m: lg.exp_map(m, np.zeros((2, 3)), np.zeros((2, 3))), "z"),
        (lambda m: lg.log_map(m, [[0.0, 1.0]], [[1.0, 1.0], [2.0, 1.0], [0.0, 2.0]]), "z1"),
        (lambda m: lg.log_map(m, [0.0, 1.0], [1.0, 1.0], tol=-1.0), "tol"),
        (lambda m: lg.log_map(m, [0.0, 1.0], [1.0, 1.0], geodesic_options={"bogus": 1}), "options"),
        (lambda m: lg.christoffel(m, np.empty((0, 2))), "z"),
        (lambda m: lg.christoffel(m, [[0.0, -1.0], [0.0, 0.0]]), "z"),
        (lambda m: lg.scalar_curvature(m, [0.0, 1.0], fd_step=2.0), "fd_step"),
        (lambda m: lg.parallel_transport(m, lg.exp_map(m, [0.0, 1.0], [1.0, 0.0]), np.ones((2, 2))), "vectors"),
        (lambda m: lg.parallel_transport(m, lambda t: np.zeros((len(t), 2)), [1.0, 0.0]), "velocity"),
        (lambda m: lg.parallel_transport(m, "curve", [1.0, 0.0]), "curve"),
        (lambda m: lg.parallel_transport(m, lg.exp_map(m, [0.0, 1.0], [1.0, 0.0]), [[1.0, 0.0]], t=[1.5]), "t"),
        (lambda m: lg.transport_along_geodesic(m, [0.0, 1.0], [1.0, 1.0], np.ones((3, 3))), "vectors"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call(PoincareHalfPlane())


def test_gaussian_curvature_needs_two_dimensions(rhvae3):
    with pytest.raises(ValueError, match="^metric:"):
        lg.gaussian_curvature(rhvae3, np.zeros(3))


def test_rhvae_point_outside_the_domain_is_named():
    metric = lg.RHVAEMetric(np.zeros((1, 2)), L=np.eye(2)[None], temperature=0.1, regularization=0.0)
    with pytest.raises(ValueError, match=r"^z: .*\[1\]"):
        lg.christoffel(metric, [[0.0, 0.0], [50.0, 0.0]])


def test_ctrl_c_interrupts_a_long_native_batch():
    metric = lg.datasets.load_digits_rhvae().metric
    rng = np.random.default_rng(11)
    z, v = rng.normal(size=(200_000, 2)), rng.normal(size=(200_000, 2))
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        lg.exp_map(metric, z, v, n_threads=1)
    assert time.perf_counter() - start < 1.3


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_curvature_map_shows_the_gaussian_curvature(pyplot):
    from latentgeo.plot import curvature_grid, plot_curvature

    ax = plot_curvature(PoincareHalfPlane(), (-1, 1, 0.5, 2), resolution=(7, 5))
    (image,) = ax.images
    np.testing.assert_allclose(image.get_array(), -1.0, atol=1e-7)
    assert image.get_clim() == pytest.approx((-1.0, 1.0), rel=1e-6)  # symmetric about K = 0
    assert len(ax.figure.axes) == 2
    metric = lg.datasets.load_digits_rhvae().metric
    xs, ys, values = curvature_grid(metric, (-1, 1, -1, 1), resolution=4)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    np.testing.assert_array_equal(values.ravel(), lg.gaussian_curvature(metric, grid))
    with pytest.raises(ValueError, match="^metric:"):
        plot_curvature(lg.ConstantMetric(np.eye(3)), (0, 1, 0, 1))


def test_exp_fan_draws_geodesic_circles(pyplot):
    from latentgeo.plot import plot_exp_fan

    start = np.array([0.2, 1.0])
    ax = plot_exp_fan(PoincareHalfPlane(), start, n_directions=8, length=0.7, n_samples=20)
    curves = [line.get_xydata() for line in ax.lines[:8]]
    assert len(ax.lines) == 9  # eight geodesics and the start marker
    ends = np.array([c[-1] for c in curves])
    np.testing.assert_allclose(poincare_distance(start, ends), 0.7, rtol=1e-8)
    assert all(len(c) == 20 and np.allclose(c[0], start) for c in curves)
    walled = plot_exp_fan(WalledPlane(wall=1.0), [0.5, 0.0], n_directions=4, length=1.0)
    assert [line.get_linestyle() for line in walled.lines[:4]] == ["--", "-", "-", "-"]
    with pytest.raises(ValueError, match="^z:"):
        plot_exp_fan(PoincareHalfPlane(), [0.0, 1.0, 2.0])


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "latentgeo", *args], capture_output=True, text=True, timeout=120)


def test_cli_exp_then_log_round_trip(tmp_path):
    metric = lg.datasets.load_digits_rhvae().metric
    z, v = np.array([[0.1, 0.2], [0.5, -0.3]]), np.array([[0.3, 0.1], [0.0, 0.2]])
    for name, arr in (("z", z), ("v", v), ("t", np.array([0.0, 0.5, 1.0]))):
        np.save(tmp_path / f"{name}.npy", arr)
    proc = run_cli(
        "exp",
        "--z",
        str(tmp_path / "z.npy"),
        "--v",
        str(tmp_path / "v.npy"),
        "--out",
        str(tmp_path / "p.npy"),
        "--t",
        str(tmp_path / "t.npy"),
        "--curves",
        str(tmp_path / "c.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    points = np.load(tmp_path / "p.npy")
    np.testing.assert_array_equal(points, lg.exp_map(metric, z, v).points)
    assert np.load(tmp_path / "c.npy").shape == (2, 3, 2)
    proc = run_cli(
        "log",
        "--z0",
        str(tmp_path / "z.npy"),
        "--z1",
        str(tmp_path / "p.npy"),
        "--out",
        str(tmp_path / "w.npy"),
        "--distances",
        str(tmp_path / "d.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(tmp_path / "w.npy"), v, atol=1e-8)
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), np.sqrt(metric.quadratic_form(z, v)), rtol=1e-8)


@pytest.mark.parametrize("case", ["missing", "shape", "nan", "no_t"])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, case):
    np.save(tmp_path / "z.npy", np.zeros((2, 2)))
    np.save(tmp_path / "bad.npy", {"shape": np.zeros((2, 3)), "nan": np.full((2, 2), np.nan)}.get(case, np.zeros(2)))
    v = {"missing": "nope.npy", "shape": "bad.npy", "nan": "bad.npy", "no_t": "z.npy"}[case]
    extra = ["--curves", str(tmp_path / "c.npy")] if case == "no_t" else []
    proc = run_cli(
        "exp", "--z", str(tmp_path / "z.npy"), "--v", str(tmp_path / v), "--out", str(tmp_path / "p.npy"), *extra
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert (
        lines[0].startswith("latentgeo: error: ")
        and {"missing": "--v", "shape": "v:", "nan": "v:", "no_t": "--curves"}[case] in lines[0]
    )


def test_a_metric_returning_wrong_shapes_raises_instead_of_flagging_points():
    class Broken(PoincareHalfPlane):
        def _metric(self, z, n_threads):
            return np.eye(2)[None]  # one matrix whatever the number of points

    with pytest.raises(TypeError, match="^metric:"):
        lg.exp_map(Broken(), [[0.0, 1.0], [0.5, 1.0]], [[1.0, 0.0], [0.0, 1.0]])


def test_points_where_a_python_metric_raises_are_outside_its_domain():
    def g_fn(z):  # DenseMetric raises ValueError on the NaN it returns for x >= 1
        return WalledPlane(wall=1.0)._metric(z, 1)

    metric = lg.DenseMetric(g_fn, lambda z: np.zeros((len(z), 2, 2, 2)), dim=2)
    res = lg.exp_map(metric, [[0.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]])
    assert res.status == ["domain_exit", "converged"]
    with pytest.raises(ValueError, match=r"^z: .*\[1\].*G_fn: returned NaN or Inf"):
        lg.christoffel(metric, [[0.0, 0.0], [2.0, 0.0]])
