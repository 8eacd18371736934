"""Statistics on the manifold against closed forms, brute force and stated-confidence tests."""

from __future__ import annotations

import itertools

import latentgeo as lg
import numpy as np
import pytest
from conftest import PoincareHalfPlane, reference_rhvae
from latentgeo import statistics as st
from latentgeo.errors import MetricDomainError

scipy_stats = pytest.importorskip("scipy.stats")


# --------------------------------------------------------------------------------------------
# Closed-form geometries
# --------------------------------------------------------------------------------------------
class StereographicSphere(lg.Metric):
    """The unit sphere in stereographic coordinates: G = 4 / (1 + |z|²)² I."""

    def __init__(self, dim=2):
        self.dim = dim

    def _metric(self, z, n_threads):
        f = 4.0 / (1.0 + np.sum(z**2, axis=1)) ** 2
        return f[:, None, None] * np.eye(self.dim)[None]

    def _derivative(self, z, n_threads):
        r2 = np.sum(z**2, axis=1)
        df = -16.0 * z / (1.0 + r2)[:, None] ** 3  # ∂f/∂z_k
        return np.eye(self.dim)[None, :, :, None] * df[:, None, None, :]


class PolarFlat(lg.Metric):
    """The Euclidean plane in polar coordinates (r, θ): G = diag(1, r²)."""

    dim = 2

    def _metric(self, z, n_threads):
        g = np.zeros((len(z), 2, 2))
        g[:, 0, 0] = 1.0
        g[:, 1, 1] = z[:, 0] ** 2
        return g

    def _derivative(self, z, n_threads):
        out = np.zeros((len(z), 2, 2, 2))
        out[:, 1, 1, 0] = 2.0 * z[:, 0]
        return out


class WalledPlane(lg.Metric):
    """G = I on x < 0.5; MetricDomainError elsewhere."""

    dim = 2

    def _metric(self, z, n_threads):
        if np.any(z[:, 0] >= 0.5):
            raise MetricDomainError("metric: x >= 0.5")
        return np.broadcast_to(np.eye(2), (len(z), 2, 2)).copy()

    def _derivative(self, z, n_threads):
        return np.zeros((len(z), 2, 2, 2))


def poincare_distance(a, b):
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.arccosh(1.0 + np.sum((a - b) ** 2, axis=-1) / (2.0 * a[..., 1] * b[..., 1]))


def poincare_matrix(points):
    return poincare_distance(points[:, None, :], points[None, :, :])


def christoffel_numpy(metric, z):
    """Γᵏᵢⱼ = ½ Gᵏˡ (∂ᵢGₗⱼ + ∂ⱼGₗᵢ − ∂ₗGᵢⱼ), brute force from G and ∂G, shape (N, d, d, d)."""
    g, dg = metric.metric(z), metric.derivative(z)  # dg[n, a, b, k] = ∂_k G_ab
    lowered = dg.transpose(0, 1, 3, 2) + dg - dg.transpose(0, 3, 1, 2)  # [n, l, i, j]
    return 0.5 * np.einsum("nkl,nlij->nkij", np.linalg.inv(g), lowered)


# --------------------------------------------------------------------------------------------
# k-medoids
# --------------------------------------------------------------------------------------------
def exhaustive_kmedoids(dist, k, rtol=1e-12):
    """The optimal cost and every medoid set that attains it (a 2-point cluster has two)."""
    costs = {c: dist[:, list(c)].min(axis=1).sum() for c in itertools.combinations(range(len(dist)), k)}
    best = min(costs.values())
    return [set(c) for c, v in costs.items() if v <= best * (1 + rtol)], best


@pytest.mark.parametrize("seed", range(6))
def test_kmedoids_equals_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-2, 2, 12), rng.uniform(0.2, 3, 12)])
    dist = poincare_matrix(points)
    np.fill_diagonal(dist, 0.0)
    best, best_cost = exhaustive_kmedoids(dist, 3)
    for init_seed in range(3):
        res = st.kmedoids(None, points, 3, distances=dist, seed=init_seed)
        assert res.converged
        # the same distances summed in another order: at most M - 1 roundings apart
        assert res.inertia == pytest.approx(best_cost, rel=len(points) * np.finfo(float).eps)
        assert set(res.medoids.tolist()) in best
        np.testing.assert_array_equal(res.centers, points[res.medoids])
        np.testing.assert_array_equal(res.labels, np.argmin(dist[:, res.medoids], axis=1))


def test_kmedoids_computes_geodesic_distances():
    # Constant metric: the geodesic distance is the Mahalanobis distance (closed form).
    a = np.array([[2.0, 0.6], [0.6, 1.0]])
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(c, 0.3, (4, 2)) for c in ([0, 0], [3, 0], [0, 3])])
    res = st.kmedoids(lg.ConstantMetric(a), points, 3, progress=False)
    diff = points[:, None] - points[None]
    exact = np.sqrt(np.einsum("ija,ab,ijb->ij", diff, a, diff))
    np.testing.assert_allclose(res.distances, exact, rtol=1e-7, atol=1e-12)
    best, best_cost = exhaustive_kmedoids(exact, 3, rtol=1e-7)
    assert set(res.medoids.tolist()) in best
    assert res.inertia == pytest.approx(best_cost, rel=1e-7)
    again = st.kmedoids(None, points, 3, distances=res.distances)
    np.testing.assert_array_equal(again.medoids, res.medoids)


def test_kmedoids_labels_do_not_depend_on_threads():
    rng = np.random.default_rng(8)
    points = rng.uniform(-0.5, 1.5, (24, 2))
    metric = reference_rhvae()
    one = st.kmedoids(metric, points, 4, n_threads=1, progress=False)
    two = st.kmedoids(metric, points, 4, n_threads=2, progress=False)
    np.testing.assert_array_equal(one.distances, two.distances)
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.medoids, two.medoids)
    assert one.inertia == two.inertia


def test_kmedoids_k_equal_to_m_and_one():
    rng = np.random.default_rng(1)
    points = rng.uniform(0.5, 2, (6, 2))
    dist = poincare_matrix(points)
    np.fill_diagonal(dist, 0.0)
    every = st.kmedoids(None, points, 6, distances=dist)
    assert sorted(every.medoids.tolist()) == list(range(6)) and every.inertia == 0.0
    single = st.kmedoids(None, points, 1, distances=dist)
    assert single.medoids[0] == np.argmin(dist.sum(axis=1))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_clusters=0), "n_clusters"),
        (dict(n_clusters=7), "n_clusters"),
        (dict(n_clusters=2.5), "n_clusters"),
        (dict(n_clusters=2, seed=-1), "seed"),
        (dict(n_clusters=2, init="farthest"), "init"),
        (dict(n_clusters=2, init=np.array([0, 0])), "init"),
        (dict(n_clusters=2, distances=np.ones((5, 5))), "distances"),
        (dict(n_clusters=2, distances=np.full((6, 6), np.nan)), "distances"),
        (dict(n_clusters=2, distances=np.triu(np.ones((6, 6)))), "distances"),
        (dict(n_clusters=2, distances=-np.ones((6, 6))), "distances"),
        (dict(n_clusters=2, max_iter=0), "max_iter"),
    ],
)
def test_kmedoids_bad_input(kwargs, name):
    points = np.random.default_rng(0).uniform(0.5, 1, (6, 2))
    with pytest.raises(ValueError, match=name):
        st.kmedoids(lg.ConstantMetric(np.eye(2)), points, **kwargs)


@pytest.mark.parametrize(
    "points, name",
    [(np.zeros((0, 2)), "points"), (np.array([[0.0, np.nan]] * 3), "points"), (np.zeros((3, 3)), "points")],
)
def test_kmedoids_bad_points(points, name):
    with pytest.raises(ValueError, match=name):
        st.kmedoids(lg.ConstantMetric(np.eye(2)), points, 1, progress=False)


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


# --------------------------------------------------------------------------------------------
# log det G and its gradient
# --------------------------------------------------------------------------------------------
def test_log_det_gradient_rhvae_matches_central_differences(rng):
    metric = reference_rhvae()
    z = rng.uniform(-1, 2, (6, 2))
    logdet, grad = st.log_det_and_gradient(metric, z)
    np.testing.assert_allclose(logdet, metric.log_det(z), rtol=1e-12, atol=1e-12)
    h = 1e-5
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd = (metric.log_det(z + e) - metric.log_det(z - e)) / (2 * h)
        # truncation h² |∂³ log det| / 6 ~ 1e-10, rounding ~ 1e-16 |log det| / h ~ 1e-11
        np.testing.assert_allclose(grad[:, k], fd, rtol=1e-6, atol=1e-8)


def test_log_det_gradient_closed_forms():
    z = np.array([[0.3, 0.5], [-1.0, 2.0]])
    logdet, grad = st.log_det_and_gradient(PoincareHalfPlane(), z)  # log det G = −4 log y
    np.testing.assert_allclose(logdet, -4 * np.log(z[:, 1]), rtol=1e-13)
    np.testing.assert_allclose(grad, np.column_stack([np.zeros(2), -4 / z[:, 1]]), rtol=1e-13)
    scaled_logdet, scaled_grad = st.log_det_and_gradient(reference_rhvae().scaled(3.0), z)
    logdet, grad = st.log_det_and_gradient(reference_rhvae(), z)
    np.testing.assert_allclose(scaled_logdet, logdet + 2 * np.log(3.0), rtol=1e-12)
    np.testing.assert_allclose(scaled_grad, grad, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# sample_riemannian
# --------------------------------------------------------------------------------------------
def chi2_pvalue(counts, probabilities):
    expected = probabilities * counts.sum()
    assert expected.min() >= 5  # the χ² approximation holds
    stat = np.sum((counts - expected) ** 2 / expected)
    return scipy_stats.chi2.sf(stat, len(counts) - 1)


POINCARE_BOX = np.array([[-1.0, 0.5], [1.0, 2.0]])


def test_hmc_reproduces_the_poincare_volume_density():
    # √det G = 1/y² on the box: x uniform, P(y < t) = (1/0.5 − 1/t) / (1/0.5 − 1/2). One draw per
    # chain: the samples are independent, so the χ² test is exact (significance 1e-3).
    n = 3000
    res = st.sample_riemannian(PoincareHalfPlane(), n, bounds=POINCARE_BOX, seed=4, n_chains=n, n_warmup=60)
    x, y = res.samples.T
    assert res.samples.shape == (n, 2) and res.chains.shape == (1, n, 2)
    y_edges = np.array([0.5, 0.6, 0.7, 0.8, 0.95, 1.15, 1.45, 2.0])
    cdf = (2.0 - 1.0 / y_edges) / 1.5
    p = np.outer(np.diff(cdf), np.full(3, 1 / 3)).ravel()
    counts, _, _ = np.histogram2d(y, x, bins=[y_edges, np.linspace(-1, 1, 4)])
    assert chi2_pvalue(counts.ravel(), p) > 1e-3
    # the test has power: the same samples are far from the uniform density on the box
    uniform = np.outer(np.diff(y_edges) / 1.5, np.full(3, 1 / 3)).ravel()
    assert chi2_pvalue(counts.ravel(), uniform) < 1e-10
    assert 0.6 < res.acceptance_rate < 0.95 and res.n_divergent == 0
    assert np.all(res.samples >= POINCARE_BOX[0]) and np.all(res.samples <= POINCARE_BOX[1])


def test_hmc_on_an_rhvae_matches_grid_quadrature():
    # inverse_volume ∝ √det G⁻¹; the reference bin probabilities come from a 400 x 400 midpoint
    # rule of the density (log_det only, no gradient), independent of the sampler.
    metric = reference_rhvae()
    box = np.array([[-1.0, -1.0], [2.0, 2.0]])
    n = 3000
    res = st.sample_riemannian(metric, n, density="inverse_volume", bounds=box, seed=2, n_chains=n, n_warmup=80)
    edges = np.linspace(-1, 2, 5)
    fine = np.linspace(-1, 2, 401)
    mid = 0.5 * (fine[1:] + fine[:-1])
    gx, gy = np.meshgrid(mid, mid, indexing="ij")
    dens = np.exp(-0.5 * metric.log_det(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(400, 400)
    p = dens.reshape(4, 100, 4, 100).sum(axis=(1, 3)).ravel()
    counts, _, _ = np.histogram2d(res.samples[:, 0], res.samples[:, 1], bins=[edges, edges])
    assert chi2_pvalue(counts.ravel(), p / p.sum()) > 1e-3


def test_hmc_does_not_depend_on_threads_and_follows_the_seed():
    metric = reference_rhvae()
    box = np.array([[-1.0, -1.0], [2.0, 2.0]])
    kwargs = dict(density="inverse_volume", bounds=box, n_chains=8, n_warmup=20)
    one = st.sample_riemannian(metric, 80, seed=5, n_threads=1, **kwargs)
    two = st.sample_riemannian(metric, 80, seed=5, n_threads=2, **kwargs)
    other = st.sample_riemannian(metric, 80, seed=6, n_threads=1, **kwargs)
    np.testing.assert_array_equal(one.samples, two.samples)
    assert one.acceptance_rate == two.acceptance_rate
    assert not np.array_equal(one.samples, other.samples)
    assert one.chains.shape == (10, 8, 2)


def test_default_bounds_follow_the_centroids():
    metric = reference_rhvae()
    res = st.sample_riemannian(metric, 20, seed=0, n_warmup=10)
    np.testing.assert_allclose(res.bounds, [[-0.1, -0.1], [1.1, 1.1]])
    assert res.density == "volume"


def test_effective_sample_size_of_known_chains():
    rng = np.random.default_rng(7)
    iid = rng.normal(size=(500, 8, 2))
    np.testing.assert_allclose(st.effective_sample_size(iid), 4000, rtol=0.15)
    # AR(1) with coefficient φ: ESS = N M (1 − φ) / (1 + φ)
    phi, n, m = 0.8, 4000, 4
    x = np.zeros((n, m, 1))
    noise = rng.normal(size=(n, m, 1)) * np.sqrt(1 - phi**2)
    x[0] = rng.normal(size=(m, 1))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    expected = n * m * (1 - phi) / (1 + phi)
    assert st.effective_sample_size(x)[0] == pytest.approx(expected, rel=0.25)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n=0), "n"),
        (dict(density="uniform"), "density"),
        (dict(method="nuts"), "method"),
        (dict(bounds=[[0, 0], [1]]), "bounds"),
        (dict(bounds=[[0, 1], [1, 0.5]]), "bounds"),
        (dict(bounds=np.zeros((2, 3))), "bounds"),
        (dict(seed=-1), "seed"),
        (dict(target_accept=1.0), "target_accept"),
        (dict(n_leapfrog=0), "n_leapfrog"),
        (dict(step_size=0.0), "step_size"),
        (dict(n_chains=0), "n_chains"),
    ],
)
def test_sample_riemannian_bad_input(kwargs, name):
    args = dict(n=10, seed=0, bounds=POINCARE_BOX, n_warmup=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        st.sample_riemannian(PoincareHalfPlane(), args.pop("n"), **args)


def test_sample_riemannian_needs_bounds_without_centroids():
    with pytest.raises(ValueError, match="bounds"):
        st.sample_riemannian(PoincareHalfPlane(), 10, seed=0)


# --------------------------------------------------------------------------------------------
# brownian_motion
# --------------------------------------------------------------------------------------------
def test_brownian_motion_on_a_constant_metric():
    # z_t − z0 ~ N(0, t A⁻¹). With 4000 paths, each mean has standard error √(var / 4000) and each
    # covariance entry at most √(2 / 4000) max var: 5 sigma (a false alarm < 1e-5 per entry).
    a = np.array([[2.0, 0.6], [0.6, 0.5]])
    z0, t, n = np.array([1.0, -2.0]), 0.7, 4000
    res = st.brownian_motion(lg.ConstantMetric(a), z0, t, 10, n, seed=1)
    assert res.paths.shape == (n, 11, 2) and res.completed.all()
    end = res.paths[:, -1] - z0
    cov = t * np.linalg.inv(a)
    np.testing.assert_array_less(np.abs(end.mean(axis=0)), 5 * np.sqrt(np.diag(cov) / n))
    np.testing.assert_array_less(np.abs(np.cov(end.T) - cov), 5 * np.sqrt(2 / n) * cov.diagonal().max())
    np.testing.assert_array_equal(res.paths[:, 0], np.tile(z0, (n, 1)))
    np.testing.assert_allclose(res.t, np.linspace(0, t, 11))


def test_brownian_motion_on_the_sphere_matches_the_heat_kernel_moments():
    # From the pole z = 0, cos θ = (1 − r²)/(1 + r²) with E[cos θ] = e^{−t} and
    # E[cos² θ] = (1 + 2 e^{−3t}) / 3 (spherical harmonics of degree 1 and 2 under ½Δ).
    # Tolerance: 5 standard errors (n = 4000) plus the Euler–Maruyama bias O(dt) = 2.5e-3.
    t, n = 0.5, 4000
    res = st.brownian_motion(StereographicSphere(), [0.0, 0.0], t, 200, n, seed=3)
    r2 = np.sum(res.paths[:, -1] ** 2, axis=1)
    cos = (1 - r2) / (1 + r2)
    tol = 5 * cos.std() / np.sqrt(n) + 5e-3
    assert cos.mean() == pytest.approx(np.exp(-t), abs=tol)
    assert np.mean(cos**2) == pytest.approx((1 + 2 * np.exp(-3 * t)) / 3, abs=5 * (cos**2).std() / np.sqrt(n) + 5e-3)


def test_brownian_motion_in_polar_coordinates_is_planar_brownian_motion():
    # The drift (1/(2r), 0) matters here: without it the Cartesian mean would drift inwards.
    t, n, r0 = 0.3, 4000, 2.0
    res = st.brownian_motion(PolarFlat(), [r0, 0.5], t, 300, n, seed=5)
    r, theta = res.paths[:, -1].T
    xy = np.column_stack([r * np.cos(theta), r * np.sin(theta)]) - r0 * np.array([np.cos(0.5), np.sin(0.5)])
    np.testing.assert_array_less(np.abs(xy.mean(axis=0)), 5 * np.sqrt(t / n) + 3e-3)
    np.testing.assert_array_less(np.abs(np.cov(xy.T) - t * np.eye(2)), 5 * np.sqrt(2 / n) * t + 3e-3)


def test_brownian_drift_is_minus_half_the_contracted_christoffel(rng):
    # The drift of the callback path against brute-force Christoffel symbols of G and ∂G.
    from latentgeo.statistics.brownian import _diffusion_callback

    for metric in (PolarFlat(), reference_rhvae(), StereographicSphere()):
        z = rng.uniform(0.3, 1.5, (5, 2))
        ginv, drift, ok = _diffusion_callback(metric)(z)
        gamma = christoffel_numpy(metric, z)
        expected = -0.5 * np.einsum("nij,nkij->nk", np.linalg.inv(metric.metric(z)), gamma)
        assert ok.all()
        np.testing.assert_allclose(drift, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ginv, np.linalg.inv(metric.metric(z)), rtol=1e-10)


def test_native_rhvae_paths_equal_the_callback_paths():
    # Same streams, same Cholesky of G⁻¹: the native drift (from ∂G⁻¹) and the callback's (from ∂G)
    # agree to rounding, so the paths do too (errors grow only through 20 steps of a smooth map).
    metric = reference_rhvae()
    dense = lg.DenseMetric(metric.metric, metric.derivative, dim=2)
    native = st.brownian_motion(metric, [0.2, 0.4], 0.2, 20, 50, seed=9)
    callback = st.brownian_motion(dense, [0.2, 0.4], 0.2, 20, 50, seed=9)
    np.testing.assert_allclose(native.paths, callback.paths, rtol=1e-9, atol=1e-11)
    scaled = st.brownian_motion(metric.scaled(4.0), [0.2, 0.4], 0.2 * 4.0, 20, 50, seed=9)
    # G -> 4G is time -> time / 4: the same paths at 4 times the horizon
    np.testing.assert_allclose(scaled.paths, native.paths, rtol=1e-9, atol=1e-11)


def test_brownian_motion_reproducible_and_thread_independent():
    metric = reference_rhvae()
    one = st.brownian_motion(metric, [0.2, 0.4], 1.0, 30, 600, seed=2, n_threads=1)
    two = st.brownian_motion(metric, [0.2, 0.4], 1.0, 30, 600, seed=2, n_threads=2)
    np.testing.assert_array_equal(one.paths, two.paths)
    other = st.brownian_motion(metric, [0.2, 0.4], 1.0, 30, 600, seed=3, n_threads=1)
    assert not np.array_equal(one.paths, other.paths)
    # a path's stream does not depend on the number of paths
    few = st.brownian_motion(metric, [0.2, 0.4], 1.0, 30, 5, seed=2, n_threads=1)
    np.testing.assert_array_equal(few.paths, one.paths[:5])


def test_brownian_path_leaving_the_domain_stops_with_its_status():
    # The metric is only defined for x < 0.5; from x = 0.4999 the first path crosses (the chance
    # that a Brownian motion stays below 1e-4 above its start up to t = 4 is ~4e-5), the second
    # (x = −50) never does.
    starts = np.array([[0.4999, 1.0], [-50.0, 1.0]])
    res = st.brownian_motion(WalledPlane(), starts, 4.0, 200, 2, seed=0)
    assert res.status == ["left_domain", "completed"]
    assert list(res.completed) == [False, True]
    k = res.n_steps_done[0]
    assert 0 < k < 200 and res.paths[0, k, 0] >= 0.5
    assert np.isfinite(res.paths[0, : k + 1]).all() and np.isnan(res.paths[0, k + 1 :]).all()
    assert np.isfinite(res.paths[1]).all() and res.n_steps_done[1] == 200


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(t_end=0.0), "t_end"),
        (dict(t_end=np.inf), "t_end"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_paths=0), "n_paths"),
        (dict(z0=np.zeros((3, 2))), "z0"),
        (dict(z0=[np.nan, 0.0]), "z0"),
        (dict(seed=-2), "seed"),
    ],
)
def test_brownian_motion_bad_input(kwargs, name):
    args = dict(z0=[0.1, 0.2], t_end=1.0, n_steps=3, n_paths=2, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        st.brownian_motion(reference_rhvae(), **args)


# --------------------------------------------------------------------------------------------
# frechet_mean
# --------------------------------------------------------------------------------------------
def inverse_stereographic(z):
    r2 = np.sum(z**2, axis=-1, keepdims=True)
    return np.concatenate([2 * z, r2 - 1], axis=-1) / (r2 + 1)


def stereographic(p):
    return p[..., :2] / (1 - p[..., 2:3])


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
    p = inverse_stereographic(np.array([0.4, -0.3]))
    e1 = np.cross(p, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(p, e1)
    rho = np.array([0.6, 0.6, 0.6, 0.6, 0.3, 0.3])
    alpha = np.array([0.0, np.pi / 2, np.pi, 3 * np.pi / 2, 0.4, 0.4 + np.pi])
    q = np.cos(rho)[:, None] * p + np.sin(rho)[:, None] * (np.cos(alpha)[:, None] * e1 + np.sin(alpha)[:, None] * e2)
    res = st.frechet_mean(StereographicSphere(), stereographic(q))
    assert res.converged
    np.testing.assert_allclose(res.mean, [0.4, -0.3], atol=1e-8)
    np.testing.assert_allclose(res.distances, rho, rtol=1e-8)


def test_frechet_mean_in_polar_coordinates_is_the_euclidean_mean_with_weights():
    rng = np.random.default_rng(5)
    polar = np.column_stack([rng.uniform(1.0, 2.0, 7), rng.uniform(0.2, 1.2, 7)])
    w = rng.uniform(0.1, 2.0, 7)
    cart = np.column_stack([polar[:, 0] * np.cos(polar[:, 1]), polar[:, 0] * np.sin(polar[:, 1])])
    target = w @ cart / w.sum()
    res = st.frechet_mean(PolarFlat(), polar, w)
    assert res.converged
    got = res.mean[0] * np.array([np.cos(res.mean[1]), np.sin(res.mean[1])])
    np.testing.assert_allclose(got, target, atol=1e-8)
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
        res = st.frechet_mean(WalledPlane(), pts)
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


# --------------------------------------------------------------------------------------------
# kmeans
# --------------------------------------------------------------------------------------------
def lloyd(x, centers, rounds=50):
    """Euclidean k-means from given centres (brute force)."""
    labels = None
    for _ in range(rounds):
        new = np.argmin(np.sum((x[:, None] - centers[None]) ** 2, axis=2), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centers = np.array([x[labels == c].mean(axis=0) for c in range(len(centers))])
    return labels, centers


def test_kmeans_on_a_constant_metric_is_euclidean_kmeans_of_the_whitened_points():
    a = np.array([[2.0, 0.6], [0.6, 1.0]])
    root = np.linalg.cholesky(a).T  # |root x|² = xᵀ A x
    rng = np.random.default_rng(6)
    points = np.concatenate([rng.normal(c, 0.5, (10, 2)) for c in ([0, 0], [2, 1], [0, 2.5])])
    init = points[[0, 10, 20]]
    res = st.kmeans(lg.ConstantMetric(a), points, 3, init=init)
    labels, centers = lloyd(points @ root.T, init @ root.T)
    assert res.converged and res.medoids is None
    np.testing.assert_array_equal(res.labels, labels)
    np.testing.assert_allclose(res.centers @ root.T, centers, atol=1e-8)
    expected_inertia = np.sum((points @ root.T - centers[labels]) ** 2)
    assert res.inertia == pytest.approx(expected_inertia, rel=1e-7)
    seeded = st.kmeans(lg.ConstantMetric(a), points, 3, seed=1)
    assert len(np.unique(seeded.labels)) == 3 and seeded.converged


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_clusters=0), "n_clusters"),
        (dict(n_clusters=31), "n_clusters"),
        (dict(n_clusters=2, init=np.zeros((3, 2))), "init"),
        (dict(n_clusters=2, init="k-medoids"), "init"),
        (dict(n_clusters=2, mean_options=[1]), "mean_options"),
    ],
)
def test_kmeans_bad_input(kwargs, name):
    points = np.random.default_rng(0).uniform(0, 1, (30, 2))
    with pytest.raises(ValueError, match=name):
        st.kmeans(lg.ConstantMetric(np.eye(2)), points, **kwargs)


def test_native_brownian_drift_matches_the_toolbox_christoffel_symbols(rng):
    # The callback's drift against −½ Gⁱʲ Γᵏᵢⱼ from latentgeo.christoffel (the RHVAE's analytic
    # Christoffel symbols); the native paths equal the callback paths (test above).
    from latentgeo.statistics.brownian import _diffusion_callback

    metric = reference_rhvae()
    z = rng.uniform(-0.5, 1.5, (6, 2))
    gamma = lg.christoffel(metric, z)
    expected = -0.5 * np.einsum("nij,nkij->nk", metric.inverse(z), gamma)
    _, drift, _ = _diffusion_callback(lg.DenseMetric(metric.metric, metric.derivative, dim=2))(z)
    np.testing.assert_allclose(drift, expected, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def run_cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "latentgeo", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats_cli")
    metric = reference_rhvae()
    metric.save(folder / "model.npz")
    points = np.random.default_rng(3).uniform(-0.5, 1.5, (8, 2))
    np.save(folder / "pts.npy", points)
    return folder, metric, points


def test_cli_distances_and_cluster(cli_files):
    folder, _, points = cli_files
    proc = run_cli(
        "distances",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--out",
        str(folder / "D.npy"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    dist = np.load(folder / "D.npy")
    np.testing.assert_allclose(
        dist,
        lg.geodesic_distances(lg.RHVAEMetric.load(folder / "model.npz"), points, progress=False).distances,
        rtol=1e-12,
    )
    proc = run_cli(
        "cluster",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--k",
        "3",
        "--distances",
        str(folder / "D.npy"),
        "--out",
        str(folder / "labels.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    expected = st.kmedoids(None, points, 3, distances=dist)
    np.testing.assert_array_equal(np.load(folder / "labels.npy"), expected.labels)
    assert f"{expected.inertia:.10g}" in proc.stdout


def test_cli_mean_and_sample(cli_files):
    folder, _, points = cli_files
    proc = run_cli(
        "mean",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--out",
        str(folder / "mean.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    expected = st.frechet_mean(lg.RHVAEMetric.load(folder / "model.npz"), points)
    np.testing.assert_allclose(np.load(folder / "mean.npy"), expected.mean, rtol=1e-12, atol=1e-14)
    assert "converged" in proc.stdout
    proc = run_cli(
        "sample",
        "--model",
        str(folder / "model.npz"),
        "--n",
        "40",
        "--bounds",
        "-1,-1,2,2",
        "--out",
        str(folder / "samples.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    samples = np.load(folder / "samples.npy")
    assert samples.shape == (40, 2) and samples.min() >= -1 and samples.max() <= 2
    assert "acceptance rate" in proc.stdout and "effective sample size" in proc.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("distances", "--points", "/nonexistent.npy"), "--points"),
        (("mean", "--points", "{bad_dim}"), "--points"),
        (("mean", "--points", "{pts}", "--weights", "{pts}"), "--weights"),
        (("cluster", "--points", "{pts}", "--k", "0"), "--k"),
        (("cluster", "--points", "{pts}", "--k", "9"), "--k"),
        (("cluster", "--points", "{pts}", "--k", "2", "--distances", "{pts}"), "--distances"),
        (("sample", "--n", "5", "--bounds", "0,1"), "--bounds"),
        (("sample", "--n", "5", "--density", "uniform"), "--density"),
        (("sample", "--n", "0"), "--n"),
    ],
)
def test_cli_statistics_errors_are_one_line(cli_files, args, fragment):
    folder = cli_files[0]
    np.save(folder / "bad_dim.npy", np.zeros((4, 3)))
    names = {"pts": str(folder / "pts.npy"), "bad_dim": str(folder / "bad_dim.npy")}
    proc = run_cli(*[a.format(**names) for a in args], "--model", str(folder / "model.npz"))
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_statistics_demo_writes_its_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from latentgeo.cli.commands import _print_table
    from latentgeo.cli.statistics_demo import statistics_demo
    from PIL import Image

    rng = np.random.default_rng(0)
    latent = np.concatenate([rng.normal(c, 0.15, (15, 2)) for c in ([0, 0], [1, 1], [1, 0])])
    labels = np.repeat([0, 1, 2], 15)
    assert statistics_demo(reference_rhvae(), latent, labels, str(tmp_path), print_table=_print_table) == 0
    out = capsys.readouterr().out
    assert "Frechet mean" in out and "geometry-aware sampler" in out
    image = np.asarray(Image.open(tmp_path / "demo_statistics.png").convert("RGB"))
    assert image.shape[1] > 800 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(__import__("sys").platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize(
    "call",
    [
        "lg.brownian_motion(metric, [0.0, 0.0], 1.0, 1_000, 20_000, seed=0, n_threads=2)",
        "lg.sample_riemannian(metric, 400_000, seed=0, n_chains=20_000, n_warmup=10_000, n_threads=2)",
    ],
)
def test_ctrl_c_stops_the_samplers(call):
    from test_interrupt import _check_stopped, _interrupt_after_one_second

    out, err, elapsed = _interrupt_after_one_second(
        "metric, _, _ = random_rhvae(np.random.default_rng(0), n_centroids=2000, dim=2)", call
    )
    _check_stopped(out, err, elapsed)
