"""RHVAE, dense and constant metrics against the issue's reference values, brute-force
numpy and finite differences."""

from __future__ import annotations

import copy
import pickle

import latentgeo as lg
import numpy as np
import pytest
from conftest import (
    EPS,
    SAFETY,
    PoincareHalfPlane,
    assert_matrices_close,
    assert_within,
    numpy_rhvae_inverse,
    random_rhvae,
    reference_rhvae,
    rhvae_rounding,
    spd_cond,
)

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
    # Same weights and products in both; s = 1/2 is exact: only adding and removing λ rounds.
    summed_part = summed.inverse(z) - 0.01 * np.eye(2)
    np.testing.assert_allclose(
        summed_part,
        2 * (mean.inverse(z) - 0.01 * np.eye(2)),
        rtol=0,
        atol=SAFETY * EPS * (np.abs(summed_part).max() + 0.01),
    )


@pytest.mark.parametrize("normalization", ["sum", "mean"])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_against_numpy_bruteforce(rng, normalization, dim):
    metric, centroids, L = random_rhvae(rng, n_centroids=9, dim=dim, normalization=normalization)
    z = rng.normal(size=(150, dim))
    scale = 1.0 if normalization == "sum" else 1.0 / 9
    ginv = numpy_rhvae_inverse(z, centroids, L, 0.9, 0.05, scale)
    # G⁻¹ is the same sum of K terms as numpy's, in another order and with another exp: entry by
    # entry within the rounding of Σ_k w_k |M_k| + λ. G, log det G and √det G go through a
    # Cholesky solve, which amplifies that by κ(G) (normwise; d κ for log det).
    rounding, cond = rhvae_rounding(metric, z)
    magnitude = numpy_rhvae_inverse(z, centroids, np.abs(L), 0.9, 0.05, scale)  # |L||L|ᵀ ≥ |M| entrywise
    assert_within(metric.inverse(z), ginv, SAFETY * rounding[:, None, None] * magnitude)
    assert_matrices_close(metric(z), np.linalg.inv(ginv), SAFETY * rounding * cond)
    log_det_tol = SAFETY * dim * rounding * cond
    assert_within(metric.log_det(z), -np.linalg.slogdet(ginv)[1], log_det_tol)
    reference = np.sqrt(np.linalg.det(np.linalg.inv(ginv)))
    assert_within(metric.magnification(z), reference, log_det_tol * reference)


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
    # Sums of K = 5000 terms in another order (and another exp) than numpy's: entry by entry within
    # ~K eps of the largest entry; q and the gradients pass through a solve (condition ≤ ~1e3 here).
    sum_tol = 5000 * np.finfo(float).eps
    np.testing.assert_allclose(metric.inverse(z), ginv, rtol=0, atol=sum_tol * scale)
    np.testing.assert_allclose(metric.inverse_derivative(z), dginv, rtol=0, atol=sum_tol * np.abs(dginv).max())
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    np.testing.assert_allclose(q, np.einsum("na,na->n", u, v), rtol=1e3 * sum_tol)
    np.testing.assert_allclose(dqdv, 2.0 * u, rtol=1e3 * sum_tol, atol=1e3 * sum_tol * np.abs(u).max())
    expected = -np.einsum("na,nabj,nb->nj", u, dginv, u)
    np.testing.assert_allclose(dqdz, expected, rtol=1e3 * sum_tol, atol=1e3 * sum_tol * np.abs(expected).max())


def test_m_and_l_give_the_same_metric(rng):
    metric, centroids, L = random_rhvae(rng)
    from_m = lg.RHVAEMetric(centroids, M=L @ L.transpose(0, 2, 1), temperature=0.9, regularization=0.05)
    z = rng.normal(size=(20, 3))
    # M = L Lᵀ by BLAS here, by einsum in the constructor: G⁻¹ rounds differently, G by κ(G) more.
    rounding, cond = rhvae_rounding(metric, z)
    assert_matrices_close(from_m(z), metric(z), SAFETY * rounding * cond)


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
    np.testing.assert_allclose(
        metric.inverse_derivative(z), central_difference(metric.inverse, z), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_quadratic_form_and_gradients(rng, dim):
    metric, _, _ = random_rhvae(rng, dim=dim, n_centroids=11)
    z, v = rng.normal(size=(40, dim)), rng.normal(size=(40, dim))
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    # q = |L⁻¹v|² in the core, vᵀGv here: both through a solve with G⁻¹ (κ(G) eps relative), and
    # the einsum's d² terms may cancel (eps |v|ᵀ|G||v|). The grad path solves in other code.
    g = metric(z)
    solve_tol = SAFETY * dim * EPS * spd_cond(g) * q
    cancel_tol = SAFETY * dim**2 * EPS * np.einsum("na,nab,nb->n", np.abs(v), np.abs(g), np.abs(v))
    assert_within(q, np.einsum("na,nab,nb->n", v, g, v), solve_tol + cancel_tol)
    assert_within(metric.quadratic_form(z, v), q, solve_tol)
    fd_z = central_difference(lambda x: metric.quadratic_form(x, v), z)
    fd_v = central_difference(lambda x: metric.quadratic_form(z, x), v)
    np.testing.assert_allclose(dqdz, fd_z, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dqdv, fd_v, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n_centroids", [300, 3000])
def test_thread_count_does_not_change_results(rng, n_centroids):
    # The contract: bit for bit (every point is computed the same way whatever the thread count).
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
    parts = np.concatenate([metric(z[i : i + 7]) for i in range(0, len(z), 7)])
    # Blocks of 7 points take other GEMM kernels than blocks of 64: G⁻¹ rounds differently.
    rounding, cond = rhvae_rounding(metric, z)
    assert_matrices_close(parts, whole, SAFETY * rounding * cond)


def test_accepts_float32_int_fortran_and_strided(rng):
    metric = reference_rhvae()
    z = rng.normal(size=(10, 2))
    expected = metric(z)
    # converted to the same C-contiguous float64 values: the same computation, bit for bit
    np.testing.assert_array_equal(metric(np.asfortranarray(z)), expected)
    np.testing.assert_array_equal(metric(np.repeat(z, 2, axis=0)[::2]), expected)
    np.testing.assert_allclose(metric(z.astype(np.float32)), metric(z.astype(np.float32).astype(float)), rtol=0)
    np.testing.assert_allclose(metric(np.array([[1, 2]])), metric(np.array([[1.0, 2.0]])), rtol=0)
    lg.RHVAEMetric(
        np.asfortranarray(np.zeros((2, 2))),
        L=np.array([np.eye(2), np.eye(2)]).astype(np.float32),
        temperature=1,
        regularization=0,
    )


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
    np.testing.assert_array_equal(scaled(z), 1e-4 * metric(z))  # the same product, bit for bit
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
    metric = lg.RHVAEMetric(
        np.zeros((2000, 2)), L=np.tile(np.eye(2), (2000, 1, 1)), temperature=0.1, regularization=0.0
    )
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


# ---------------------------------------------------------------------------- read-only parameters
def _sphere_decoder(z):
    r2 = np.sum(z**2, axis=1, keepdims=True)
    return np.concatenate([2 * z, r2 - 1], axis=1) / (1 + r2)


def _poincare_g(z):
    return np.eye(2)[None] / z[:, 1, None, None] ** 2


def _metric_cases():
    """(metric, {parameter: a value of the right kind}) for every metric class of latentgeo."""
    rng = np.random.default_rng(5)
    rhvae, _, _ = random_rhvae(rng, dim=2)
    weights, biases = [rng.normal(size=(4, 2)), rng.normal(size=(3, 4))], [rng.normal(size=4), rng.normal(size=3)]
    return {
        "rhvae": (
            rhvae,
            dict(
                centroids=np.zeros((7, 2)),
                M=np.tile(np.eye(2), (7, 1, 1)),
                temperature=0.3,
                regularization=1.0,
                normalization="mean",
                dim=3,
            ),
        ),
        "dense": (lg.DenseMetric(_poincare_g, dim=2), dict(G_fn=np.sin, dG_fn=None, dim=3, fd_step=1e-3)),
        "constant": (lg.ConstantMetric(np.diag([2.0, 1.0])), dict(A=np.eye(2), dim=3)),
        "scaled": (rhvae.scaled(2.0), dict(factor=3.0, base=lg.ConstantMetric(np.eye(2)), dim=3)),
        "pullback": (lg.PullbackMetric(weights, biases, ["tanh", "identity"]), dict(dim=3)),
        "callable": (
            lg.PullbackMetric.from_callable(_sphere_decoder, 2),
            dict(decoder=np.cos, log_sigma=np.sin, fd_step=1e-3, dim=3),
        ),
    }


@pytest.mark.parametrize("name", sorted(_metric_cases()))
def test_parameters_are_read_only(name):
    # The metric evaluated must always be the one repr'd, pickled and saved (issue 9, section 3).
    metric, changes = _metric_cases()[name]
    z = np.array([[0.3, 0.4], [-0.5, 1.2]])
    before, shown = metric(z), repr(metric)
    for attribute, value in changes.items():
        with pytest.raises(AttributeError, match=f"^{attribute}: the parameters of .* are read-only"):
            setattr(metric, attribute, value)
    arrays = {k: v for k, v in vars(metric).items() if isinstance(v, np.ndarray)}
    for attribute, array in arrays.items():
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0.0
    np.testing.assert_array_equal(metric(z), before)
    clone = pickle.loads(pickle.dumps(metric))
    assert repr(clone) == shown
    np.testing.assert_array_equal(clone(z), before)
    assert all(not getattr(clone, k).flags.writeable for k in arrays)  # read-only again after unpickling


def test_pullback_weights_are_private_copies(rng):
    weights, biases = [rng.normal(size=(4, 2))], [rng.normal(size=4)]
    metric = lg.PullbackMetric(weights, biases, ["tanh"])
    z = rng.normal(size=(3, 2))
    before = metric(z)
    weights[0][...] = 0.0  # the caller's arrays change afterwards
    np.testing.assert_array_equal(metric(z), before)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(metric))(z), before)


def test_rhvae_keeps_its_own_copy_and_saves_what_it_evaluates(rng, tmp_path):
    centroids, L = rng.normal(size=(5, 2)), np.tile(np.eye(2), (5, 1, 1))
    metric = lg.RHVAEMetric(centroids, L=L, temperature=0.7, regularization=0.1)
    z = rng.normal(size=(4, 2))
    before = metric(z)
    centroids[...] = 0.0  # the caller's array changes afterwards
    with pytest.raises(AttributeError, match="^temperature"):
        metric.temperature = 0.3
    np.testing.assert_array_equal(metric(z), before)
    metric.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(lg.RHVAEMetric.load(tmp_path / "m.npz")(z), before)
    assert "temperature=0.7" in repr(metric)
    clone = copy.deepcopy(metric)
    np.testing.assert_array_equal(clone(z), before)
    assert not clone.centroids.flags.writeable
