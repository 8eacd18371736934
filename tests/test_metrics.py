"""RHVAE, dense and constant metrics against the issue's reference values, brute-force
numpy and finite differences."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import PoincareHalfPlane, numpy_rhvae_inverse, random_rhvae, reference_rhvae

import latentgeo as lg

Z_REF = np.array([0.3, 0.4])


def test_reference_values_at_z():
    m = reference_rhvae()
    np.testing.assert_allclose(m.inverse(Z_REF), [[0.38143863, 0.10291506], [0.10291506, 1.71282054]], atol=1e-8)
    np.testing.assert_allclose(m(Z_REF), [[2.66485485, -0.16011817], [-0.16011817, 0.59345305]], atol=1e-8)
    assert m.log_det(Z_REF) == pytest.approx(0.44200814, abs=1e-8)
    dG = m.derivative(Z_REF)
    np.testing.assert_allclose(dG[:, :, 0], [[1.49855831, 0.31031556], [0.31031556, 0.21919966]], atol=1e-8)
    np.testing.assert_allclose(dG[:, :, 1], [[2.30905330, 0.26190899], [0.26190899, 0.40347304]], atol=1e-8)
    np.testing.assert_allclose(m([-1.0, 0.0]), [[9.18651633, -1.05405855], [-1.05405855, 2.31474830]], atol=1e-8)


def test_mean_is_sum_over_k():
    summed, mean = reference_rhvae(normalization="sum"), reference_rhvae(normalization="mean")
    z = np.array([[0.3, 0.4], [2.0, -1.0]])
    np.testing.assert_allclose(summed.inverse(z) - 0.01 * np.eye(2), 2 * (mean.inverse(z) - 0.01 * np.eye(2)),
                               rtol=1e-13)


@pytest.mark.parametrize("normalization", ["sum", "mean"])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_against_numpy_bruteforce(rng, normalization, dim):
    metric, centroids, L = random_rhvae(rng, n_centroids=9, dim=dim, normalization=normalization)
    z = rng.normal(size=(150, dim))
    scale = 1.0 if normalization == "sum" else 1.0 / 9
    ginv = numpy_rhvae_inverse(z, centroids, L, 0.9, 0.05, scale)
    np.testing.assert_allclose(metric.inverse(z), ginv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(metric(z), np.linalg.inv(ginv), rtol=1e-10)
    np.testing.assert_allclose(metric.log_det(z), -np.linalg.slogdet(ginv)[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(metric.magnification(z), np.sqrt(np.linalg.det(np.linalg.inv(ginv))), rtol=1e-10)


@pytest.mark.parametrize("dim", [2, 6])
def test_large_k_against_numpy_bruteforce(rng, dim):
    """K = 5000 centroids (many chunks; for d = 6 too many to keep the weights between the passes)
    and 300 points (several blocks): G⁻¹, ∂G⁻¹ and the quadratic form's gradients against the
    formula evaluated point by point in numpy."""
    metric, centroids, L = random_rhvae(rng, n_centroids=5000, dim=dim)
    z, v = 1.5 * rng.normal(size=(300, dim)), rng.normal(size=(300, dim))
    M = np.einsum("kab,kcb->kac", L, L)
    w = np.exp(-np.sum((z[:, None] - centroids[None]) ** 2, axis=2) / 0.9**2)  # (N, K)
    ginv = np.einsum("nk,kab->nab", w, M) + 0.05 * np.eye(dim)
    # dG⁻¹/dz_j = -(2/T²) Σ_k w_k (z_j - c_kj) M_k, laid out [n, a, b, j].
    dginv = -2.0 / 0.9**2 * np.einsum("nk,nkj,kab->nabj", w, z[:, None] - centroids[None], M)
    u = np.linalg.solve(ginv, v[..., None])[..., 0]
    scale = np.abs(ginv).max()
    np.testing.assert_allclose(metric.inverse(z), ginv, rtol=1e-12, atol=1e-13 * scale)
    np.testing.assert_allclose(metric.inverse_derivative(z), dginv, rtol=1e-11, atol=1e-12 * np.abs(dginv).max())
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    np.testing.assert_allclose(q, np.einsum("na,na->n", u, v), rtol=1e-10)
    np.testing.assert_allclose(dqdv, 2.0 * u, rtol=1e-10, atol=1e-12 * np.abs(u).max())
    expected = -np.einsum("na,nabj,nb->nj", u, dginv, u)
    np.testing.assert_allclose(dqdz, expected, rtol=1e-9, atol=1e-11 * np.abs(expected).max())


def test_m_and_l_give_the_same_metric(rng):
    metric, centroids, L = random_rhvae(rng)
    from_m = lg.RHVAEMetric(centroids, M=L @ L.transpose(0, 2, 1), temperature=0.9, regularization=0.05)
    z = rng.normal(size=(20, 3))
    np.testing.assert_allclose(from_m(z), metric(z), rtol=1e-12)


def central_difference(fn, z, h=1e-6):
    """∂fn/∂z_k by central differences, appended as the last axis."""
    cols = []
    for k in range(z.shape[1]):
        step = np.zeros_like(z)
        step[:, k] = h
        cols.append((fn(z + step) - fn(z - step)) / (2 * h))
    return np.stack(cols, axis=-1)


def test_derivatives_against_finite_differences(rng):
    metric, _, _ = random_rhvae(rng, dim=3)
    z = rng.normal(size=(25, 3))
    np.testing.assert_allclose(metric.derivative(z), central_difference(metric.metric, z), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metric.inverse_derivative(z), central_difference(metric.inverse, z), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_quadratic_form_and_gradients(rng, dim):
    metric, _, _ = random_rhvae(rng, dim=dim, n_centroids=11)
    z, v = rng.normal(size=(40, dim)), rng.normal(size=(40, dim))
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    np.testing.assert_allclose(q, np.einsum("na,nab,nb->n", v, metric(z), v), rtol=1e-12)
    np.testing.assert_allclose(metric.quadratic_form(z, v), q, rtol=0, atol=0)
    fd_z = central_difference(lambda x: metric.quadratic_form(x, v), z)
    fd_v = central_difference(lambda x: metric.quadratic_form(z, x), v)
    np.testing.assert_allclose(dqdz, fd_z, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dqdv, fd_v, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n_centroids", [300, 3000])
def test_thread_count_does_not_change_results(rng, n_centroids):
    """Bitwise: every point is computed the same way whatever the thread count."""
    metric, _, _ = random_rhvae(rng, n_centroids=n_centroids, dim=4)
    z, v = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
    for method in ("metric", "inverse", "derivative", "log_det"):
        one = getattr(metric, method)(z, n_threads=1)
        two = getattr(metric, method)(z, n_threads=2)
        np.testing.assert_array_equal(one, two)
    one = metric.quadratic_form(z, v, grad=True, n_threads=1)
    two = metric.quadratic_form(z, v, grad=True, n_threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_many_points_blocked_evaluation_matches_small_batches(rng):
    metric, _, _ = random_rhvae(rng, n_centroids=50, dim=2)
    z = rng.normal(size=(3001, 2))
    whole = metric(z)
    parts = np.concatenate([metric(z[i:i + 7]) for i in range(0, len(z), 7)])
    np.testing.assert_allclose(whole, parts, rtol=1e-12, atol=1e-14 * np.abs(whole).max())


def test_accepts_float32_int_fortran_and_strided(rng):
    metric = reference_rhvae()
    z = rng.normal(size=(10, 2))
    expected = metric(z)
    np.testing.assert_allclose(metric(np.asfortranarray(z)), expected, rtol=1e-15)
    np.testing.assert_allclose(metric(np.repeat(z, 2, axis=0)[::2]), expected, rtol=1e-15)
    np.testing.assert_allclose(metric(z.astype(np.float32)), metric(z.astype(np.float32).astype(float)), rtol=0)
    np.testing.assert_allclose(metric(np.array([[1, 2]])), metric(np.array([[1.0, 2.0]])), rtol=0)
    lg.RHVAEMetric(np.asfortranarray(np.zeros((2, 2))), L=np.array([np.eye(2), np.eye(2)]).astype(np.float32),
                   temperature=1, regularization=0)


def test_pickle_roundtrip(rng):
    metric, _, _ = random_rhvae(rng)
    clone = pickle.loads(pickle.dumps(metric))
    z = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(clone(z), metric(z))


def test_constant_metric():
    m = lg.ConstantMetric(np.diag([4.0, 1.0]))
    z = np.zeros((3, 2))
    v = np.ones((3, 2))
    q, dqdz, dqdv = m.quadratic_form(z, v, grad=True)
    np.testing.assert_allclose(q, 5.0)
    np.testing.assert_allclose(dqdz, 0.0)
    np.testing.assert_allclose(dqdv, [[8.0, 2.0]] * 3)
    assert m.log_det(z[0]) == pytest.approx(np.log(4.0))


def test_dense_metric_numerical_derivative_matches_analytic(rng):
    poincare = PoincareHalfPlane()
    dense = lg.DenseMetric(poincare.metric, dim=2)
    z = np.column_stack([rng.normal(size=10), rng.uniform(0.5, 2.0, size=10)])
    np.testing.assert_allclose(dense.derivative(z), poincare.derivative(z), rtol=1e-6, atol=1e-8)
    v = rng.normal(size=(10, 2))
    for a, b in zip(dense.quadratic_form(z, v, grad=True), poincare.quadratic_form(z, v, grad=True)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_scaled_metric(rng):
    metric, _, _ = random_rhvae(rng)
    z, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    scaled = metric.scaled(1e-4)
    np.testing.assert_allclose(scaled(z), 1e-4 * metric(z), rtol=1e-14)
    np.testing.assert_allclose(scaled.quadratic_form(z, v, grad=True)[1], 1e-4 * metric.quadratic_form(z, v, True)[1])


# ---------------------------------------------------------------------------- bad input
GOOD = dict(centroids=np.zeros((2, 2)), L=np.array([np.eye(2), np.eye(2)]))


@pytest.mark.parametrize(
    "changes, name",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=np.nan), "temperature"),
        (dict(regularization=-0.1), "regularization"),
        (dict(normalization="median"), "normalization"),
        (dict(centroids=np.zeros((2, 2, 1))), "centroids"),
        (dict(centroids=np.array([[0.0, np.nan], [1, 1]])), "centroids"),
        (dict(centroids=np.zeros((0, 2))), "centroids"),
        (dict(L=np.array([np.eye(2), [[1.0, 1.0], [0.0, 1.0]]])), "L"),
        (dict(L=np.array([np.eye(2), -np.eye(2)])), "L"),
        (dict(L=np.ones((3, 2, 2))), "L"),
        (dict(L=np.array([np.eye(2), [[np.inf, 0.0], [0.0, 1.0]]])), "L"),
        (dict(L=None, M=np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])), "M"),
        (dict(L=None, M=np.array([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])), "M"),
        (dict(L=None), "L, M"),
        (dict(M=np.array([np.eye(2), np.eye(2)])), "L, M"),
    ],
)
def test_bad_construction(changes, name):
    options = {**GOOD, "temperature": 1.0, "regularization": 0.01, **changes}
    with pytest.raises(ValueError, match=f"^{name}"):
        lg.RHVAEMetric(**options)


@pytest.mark.parametrize(
    "z, name",
    [
        (np.zeros((3, 3)), "z"),
        (np.zeros((0, 2)), "z"),
        (np.array([[0.0, np.nan]]), "z"),
        (np.array([[0.0, np.inf]]), "z"),
        (np.zeros((2, 2, 2)), "z"),
        ("abc", "z"),
    ],
)
def test_bad_points(z, name):
    metric = reference_rhvae()
    for method in (metric.metric, metric.inverse, metric.derivative, metric.log_det, metric.inverse_derivative):
        with pytest.raises(ValueError, match=f"^{name}"):
            method(z)


def test_bad_quadratic_form_and_threads():
    metric = reference_rhvae()
    with pytest.raises(ValueError, match="^v"):
        metric.quadratic_form(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="^v"):
        metric.quadratic_form(np.zeros((3, 2)), np.full((3, 2), np.nan))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="^n_threads"):
            metric(np.zeros((1, 2)), n_threads=bad)


def test_singular_metric_raises_from_parallel_region():
    # lambda = 0 and points far from every centroid: G^{-1} underflows to 0, not SPD.
    # Enough centroids that the evaluation really runs on two threads.
    metric = lg.RHVAEMetric(np.zeros((2000, 2)), L=np.tile(np.eye(2), (2000, 1, 1)), temperature=0.1,
                            regularization=0.0)
    z = np.zeros((500, 2))
    z[377] = [100.0, 100.0]
    with pytest.raises(ValueError, match="^metric: .*point 377"):
        metric(z, n_threads=2)
    with pytest.raises(ValueError, match="^metric"):
        metric.quadratic_form(z, z, grad=True)


def test_bad_dense_and_constant():
    with pytest.raises(ValueError, match="^A"):
        lg.ConstantMetric(np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="^A"):
        lg.ConstantMetric(np.ones((2, 3)))
    with pytest.raises(ValueError, match="^G_fn"):
        lg.DenseMetric(42, dim=2)
    with pytest.raises(ValueError, match="^dim"):
        lg.DenseMetric(lambda z: z, dim=0)
    broken = lg.DenseMetric(lambda z: np.ones((len(z), 3, 3)), dim=2)
    with pytest.raises(ValueError, match="^G_fn"):
        broken(np.zeros((1, 2)))
    nan = lg.DenseMetric(lambda z: np.full((len(z), 2, 2), np.nan), dim=2)
    with pytest.raises(ValueError, match="^G_fn"):
        nan(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="^factor"):
        lg.ConstantMetric(np.eye(2)).scaled(0.0)


def test_openmp_report():
    assert isinstance(lg.openmp_enabled(), bool)
    assert lg.max_threads() >= 1
