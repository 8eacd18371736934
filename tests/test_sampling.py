"""Sampling on the manifold: the log-det gradient, HMC (sample_riemannian) against closed-form
densities with χ² tests of stated significance, and Brownian motion against heat-kernel moments,
brute-force Christoffel symbols and the domain."""

from __future__ import annotations

import latentgeo as lg
import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo import statistics as st
from manifolds import PoincareHalfPlane, PolarPlane, StereographicSphere, WalledPlane, polar_to_cartesian

scipy_stats = pytest.importorskip("scipy.stats")


def christoffel_numpy(metric, z):
    """Γᵏᵢⱼ = ½ Gᵏˡ (∂ᵢGₗⱼ + ∂ⱼGₗᵢ − ∂ₗGᵢⱼ), brute force from G and ∂G, shape (N, d, d, d)."""
    g, dg = metric.metric(z), metric.derivative(z)  # dg[n, a, b, k] = ∂_k G_ab
    lowered = dg.transpose(0, 1, 3, 2) + dg - dg.transpose(0, 3, 1, 2)  # [n, l, i, j]
    return 0.5 * np.einsum("nkl,nlij->nkij", np.linalg.inv(g), lowered)


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
    res = st.brownian_motion(PolarPlane(), [r0, 0.5], t, 300, n, seed=5)
    xy = polar_to_cartesian(res.paths[:, -1]) - polar_to_cartesian(np.array([r0, 0.5]))
    np.testing.assert_array_less(np.abs(xy.mean(axis=0)), 5 * np.sqrt(t / n) + 3e-3)
    np.testing.assert_array_less(np.abs(np.cov(xy.T) - t * np.eye(2)), 5 * np.sqrt(2 / n) * t + 3e-3)


def test_brownian_drift_is_minus_half_the_contracted_christoffel(rng):
    # The drift of the callback path against brute-force Christoffel symbols of G and ∂G.
    from latentgeo.statistics.brownian import _diffusion_callback

    for metric in (PolarPlane(), reference_rhvae(), StereographicSphere()):
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
    res = st.brownian_motion(WalledPlane(wall=0.5, raises=True), starts, 4.0, 200, 2, seed=0)
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
