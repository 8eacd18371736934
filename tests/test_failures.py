"""A failure belongs to its pair: singular, indefinite, non-finite and raising metrics.

Every pair of a batch gets its own status; the good pairs keep their results (compared with
solving them alone), the failed ones have converged=False, a status, a message naming the pair
and NaN lengths when no curve could be measured.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import latentgeo as lg
import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo.errors import MetricDomainError
from latentgeo.metrics import Metric

FAR = [40.0, 40.0]  # G^{-1} = 0 exactly there without regularization: a singular metric


def _max_eigenvalue_along(metric, curve) -> float:
    return float(np.linalg.eigvalsh(metric.metric(curve(np.linspace(0.0, 1.0, 4001)))).max())


# ----------------------------------------------------------------------------------------------
# Singular metric at trial points and on the curve (RHVAE without regularization)
# ----------------------------------------------------------------------------------------------
def test_rhvae_without_regularization_converges_like_a_tiny_one():
    exact, tiny = reference_rhvae(regularization=0.0), reference_rhvae(regularization=1e-12)
    res = lg.geodesic(exact, [0.0, 0.0], [3.0, 3.0])  # raised "G^{-1} is singular" before
    ref = lg.geodesic(tiny, [0.0, 0.0], [3.0, 3.0])
    assert res.converged and res.status == "converged" and res.message == ""
    assert ref.converged
    # G_λ = (A + λI)^{-1}: |dL/dλ| = |∫ vᵀG²v / (2√(vᵀGv)) dt| <= max|G| L / 2, so the two lengths
    # differ by at most (λ/2) max|G| L, plus the relative tolerance (1e-8) of each solve.
    g_max = max(_max_eigenvalue_along(exact, res.curve), _max_eigenvalue_along(exact, ref.curve))
    assert abs(res.length - ref.length) <= (0.5 * 1e-12 * g_max + 1e-7) * ref.length


def test_a_singular_pair_keeps_its_failure_and_the_others_their_results():
    metric = reference_rhvae(regularization=0.0)
    starts = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.2]])
    ends = np.array([[1.0, 0.5], FAR, [1.0, 1.5]])
    with pytest.warns(RuntimeWarning, match=r"1 of 3 pairs failed.*pair 1: singular_metric"):
        batch = lg.geodesics(metric, starts, ends, progress=False)
    assert batch.status == ["converged", "singular_metric", "converged"]
    assert batch.failed == [1]
    assert list(batch.converged) == [True, False, True]
    assert np.isnan(batch.length[1]) and np.isnan(batch.energy[1]) and batch.straight_length[1] == np.inf
    assert batch.messages[1].startswith("pair 1: singular_metric: metric: G^{-1} is singular")
    assert "z = (" in batch.messages[1] and batch.messages[0] == batch.messages[2] == ""
    assert batch[1].message == batch.messages[1] and not batch[1].converged
    assert len(batch[1].nodes) >= 5  # the curve it started from, still a curve
    alone = lg.geodesics(metric, starts[[0, 2]], ends[[0, 2]], progress=False)
    np.testing.assert_allclose(batch.length[[0, 2]], alone.length, rtol=1e-12)


def test_a_single_failed_pair_raises_naming_it_and_the_point():
    with pytest.raises(MetricDomainError, match=r"^geodesic: pair 0: singular_metric: .*singular.*z = \("):
        lg.geodesic(reference_rhvae(regularization=0.0), [0.0, 0.0], FAR)


@pytest.mark.parametrize("executor", [False, True])
def test_distance_matrix_marks_and_lists_the_failed_entries(executor):
    metric = reference_rhvae(regularization=0.0)
    good = np.array([[0.0, 0.0], [1.0, 0.5], [0.3, 1.2]])
    points = np.vstack([good[:2], [FAR], good[2:]])  # the singular point is number 2
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.warns(RuntimeWarning, match=r"3 of 6 pairs failed") as w:
        res = lg.geodesic_distances(metric, points, executor=pool if executor else None, chunk_size=2, progress=False)
    assert w[0].filename == __file__
    lost = [(0, 2), (1, 2), (2, 3)]
    assert sorted(res.messages) == lost and res.failed == lost
    for i, j in lost:
        assert np.isnan(res.distances[i, j]) and np.isnan(res.distances[j, i])
        assert not res.converged[i, j] and res.status[i, j] == res.status[j, i] == "singular_metric"
        assert res.messages[(i, j)].startswith(f"pair ({i}, {j}): singular_metric: metric: G^{{-1}} is singular")
    keep = [0, 1, 3]
    reference = lg.geodesic_distances(metric, good, progress=False)
    np.testing.assert_allclose(res.distances[np.ix_(keep, keep)], reference.distances, rtol=1e-12)
    assert res.converged[np.ix_(keep, keep)].all()


def test_graph_initialisation_avoids_singular_edges():
    pytest.importorskip("scipy")
    metric = reference_rhvae(regularization=0.0)
    anchors = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2], FAR, [1.0, 0.0]])  # edges to FAR are singular
    with pytest.warns(RuntimeWarning, match=r"1 of 2 pairs failed") as record:
        batch = lg.geodesics(
            metric,
            [[0.0, 0.0], [0.0, 0.0]],
            [[1.0, 1.0], FAR],
            init="graph",
            anchors=anchors,
            k_neighbors=2,
            progress=False,
        )
    assert record[0].filename == __file__  # the warning points at the user's call
    assert batch.status == ["converged", "singular_metric"]
    line = lg.geodesic(metric, [0.0, 0.0], [1.0, 1.0])
    assert batch.length[0] == pytest.approx(line.length, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Python metrics: NaN regions, exceptions, Ctrl-C inside the callback
# ----------------------------------------------------------------------------------------------
def _flat_except(region, value):
    """G = I, but `value` (NaN, -I, ...) where region(z)."""

    def g(z):
        out = np.broadcast_to(np.eye(2), (len(z), 2, 2)).copy()
        out[region(z)] = value
        return out

    return g


PAIRS = (np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [3.0, 0.0], [0.0, 1.5]]))


def test_dense_metric_nan_in_a_region_fails_only_the_pair_that_reaches_it():
    metric = lg.DenseMetric(_flat_except(lambda z: z[:, 0] > 2.0, np.nan), dim=2)
    with pytest.warns(RuntimeWarning, match="pair 1: non_finite: G_fn: returned NaN or Inf at point"):
        batch = lg.geodesics(metric, *PAIRS, progress=False)
    assert batch.status == ["converged", "non_finite", "converged"] and batch.failed == [1]
    assert np.isnan(batch.length[1]) and not batch.converged[1]
    np.testing.assert_allclose(batch.length[[0, 2]], np.linalg.norm(PAIRS[1] - PAIRS[0], axis=1)[[0, 2]], rtol=1e-9)
    with pytest.raises(MetricDomainError, match=r"^geodesic: pair 0: non_finite: G_fn: returned NaN") as info:
        lg.geodesic(metric, [0.0, 0.0], [3.0, 0.0])
    assert info.value.non_finite


class _RaisingBeyond(Metric):
    """The flat metric whose quadratic_form raises `error` beyond x = 2 (a bug in a region)."""

    dim = 2

    def __init__(self, error):
        self.error = error

    def _metric(self, z, n_threads):
        return np.broadcast_to(np.eye(2), (len(z), 2, 2)).copy()

    def _derivative(self, z, n_threads):
        return np.zeros((len(z), 2, 2, 2))

    def _quadratic_form(self, z, v, grad, n_threads):
        if np.any(z[:, 0] > 2.0):
            raise self.error
        return super()._quadratic_form(z, v, grad, n_threads)


def test_an_exception_of_a_python_metric_fails_only_its_pair():
    error = TypeError("unsupported operand")
    with pytest.warns(RuntimeWarning, match=r"pair 1: metric_error: TypeError: unsupported operand"):
        batch = lg.geodesics(_RaisingBeyond(error), *PAIRS, progress=False)
    assert batch.status == ["converged", "metric_error", "converged"]
    assert batch.errors[1] is error and batch.messages[1] == "pair 1: metric_error: TypeError: unsupported operand"
    assert np.isnan(batch.length[1]) and np.isfinite(batch.length[[0, 2]]).all()
    with pytest.raises(TypeError, match=r"^geodesic: pair 0: metric_error: TypeError: unsupported") as info:
        lg.geodesic(_RaisingBeyond(error), [0.0, 0.0], [3.0, 0.0])
    assert info.value.__cause__ is error


def test_keyboard_interrupt_in_a_python_metric_stops_the_whole_batch():
    with pytest.raises(KeyboardInterrupt):
        lg.geodesics(_RaisingBeyond(KeyboardInterrupt()), *PAIRS, progress=False)


def test_a_metric_domain_error_of_a_python_metric_backtracks():
    """A protocol metric raising MetricDomainError in a disc is an infinite energy there, not a failure."""

    class Hole(_RaisingBeyond):
        hits = 0

        def _quadratic_form(self, z, v, grad, n_threads):
            if np.any(np.hypot(z[:, 0] - 1.0, z[:, 1]) < 0.2):
                self.hits += 1
                raise MetricDomainError("hole")
            return Metric._quadratic_form(self, z, v, grad, n_threads)

    # The initial curve bends around the hole, which lies on the straight line: straightening
    # the curve, the optimiser's trial points fall into it and it must step around.
    t = np.linspace(0.0, 1.0, 9)[:, None]
    init = np.hstack([2.0 * t, 1.0 * np.sin(np.pi * t)])
    metric = Hole(None)
    res = lg.geodesic(metric, [0.0, 0.0], [2.0, 0.0], init=init, max_nodes=65)
    assert metric.hits > 0
    assert res.status not in ("singular_metric", "metric_error") and res.message == ""
    assert np.all(np.hypot(res.nodes[:, 0] - 1.0, res.nodes[:, 1]) >= 0.2)
    # Longer than the straight line through the hole, shorter than the initial half sine (2.96).
    assert 2.0 < res.length < 2.2


# ----------------------------------------------------------------------------------------------
# Non-SPD and complex metric values
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-np.eye(2), np.diag([1.0, -1.0]), np.zeros((2, 2))])
def test_a_metric_that_is_not_positive_definite_raises_naming_the_point(bad):
    metric = lg.DenseMetric(_flat_except(lambda z: z[:, 1] > 0.5, bad), dim=2)
    z = np.array([[0.0, 0.0], [0.1, 0.7]])
    with pytest.raises(ValueError, match=r"^G_fn: not positive definite at point 1, z = \(0.1, 0.7\)"):
        metric.metric(z)
    points = np.linspace([0.0, 0.0], [0.0, 1.0], 11)
    velocities = np.tile([0.0, 1.0], (11, 1))
    for integral in (lg.curve_length, lg.curve_energy):
        with pytest.raises(ValueError, match=r"^G_fn: not positive definite at point 6, z = \(0, 0.6\)"):
            integral(metric, points, velocities)
    with pytest.raises(ValueError, match=r"^geodesic: pair 0: singular_metric: G_fn: not positive definite"):
        lg.geodesic(metric, [0.0, 0.0], [0.0, 1.0])
    assert lg.geodesic(metric, [0.0, 0.0], [1.0, 0.2]).converged  # the region G = I still works


def test_an_indefinite_protocol_metric_is_caught_by_the_solver():
    class Indefinite(_RaisingBeyond):
        def _metric(self, z, n_threads):
            return np.broadcast_to(np.diag([1.0, -1.0]), (len(z), 2, 2)).copy()

    with pytest.raises(ValueError, match=r"pair 0: singular_metric: .*v\^T G v < 0 at z = \("):
        lg.geodesic(Indefinite(None), [0.0, 0.0], [0.0, 1.0])


def test_complex_metric_values_are_rejected_without_a_warning():
    dense = lg.DenseMetric(lambda z: (1.0 + 1e-3j) * np.broadcast_to(np.eye(2), (len(z), 2, 2)), dim=2)
    pullback = lg.PullbackMetric.from_callable(lambda z: z.astype(complex), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would fail here
        with pytest.raises(ValueError, match=r"^G_fn: returned complex values"):
            dense.metric(np.zeros((3, 2)))
        with pytest.raises(ValueError, match=r"^decoder: returned complex values"):
            pullback.metric(np.zeros((3, 2)))


# ----------------------------------------------------------------------------------------------
# Overflow: pullback decoders and tiny temperatures
# ----------------------------------------------------------------------------------------------
def test_an_overflowing_pullback_raises_naming_the_point():
    metric = lg.PullbackMetric([np.eye(2)], [np.zeros(2)], ["exp"])  # G = diag(e^{2x}, e^{2y})
    z = np.array([[0.0, 1.0], [900.0, 0.0]])
    for call in (
        metric.metric,
        metric.derivative,
        metric.jacobian,
        metric.decode,
        lambda z: metric.quadratic_form(z, np.ones_like(z)),
        lambda z: metric.quadratic_form(z, np.ones_like(z), grad=True),
    ):
        with pytest.raises(MetricDomainError, match=r"NaN or Inf at point 1, z = \(900, 0\)") as info:
            call(z)
        assert info.value.non_finite
    np.testing.assert_allclose(metric.metric(z[:1])[0], np.diag([1.0, np.e**2]), rtol=1e-14)
    # In a batch the pair that reaches the overflow fails alone (e^{2x} overflows beyond x ~ 355).
    with pytest.warns(RuntimeWarning, match=r"pair 1: non_finite: decoded energy gradient: NaN or Inf"):
        batch = lg.geodesics(metric, [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [400.0, 0.0]], progress=False)
    assert batch.status == ["converged", "non_finite"] and np.isnan(batch.length[1])


def test_a_temperature_whose_inverse_square_overflows_is_rejected():
    with pytest.raises(ValueError, match=r"^temperature: must be >= 7.46e-155 \(1/T² overflows\), got 1e-300"):
        reference_rhvae(temperature=1e-300)
    # Just above the limit the centroid's own term is kept: G(c_0) = (s M_0 + λI)^{-1}.
    metric = reference_rhvae(temperature=1e-150)
    m0 = np.array([[1.0, 0.5], [0.5, 4.25]])  # L_0 L_0ᵀ of the reference factors
    expected = np.linalg.inv(0.5 * m0 + 0.01 * np.eye(2))  # normalization "mean": s = 1/2
    np.testing.assert_allclose(metric.metric([0.0, 0.0]), expected, rtol=1e-12)
    assert np.isfinite(metric.derivative([0.0, 0.0])).all()
