"""Python metrics in a batch of geodesics: one call of the metric serves all pairs' evaluations.

The pairs are solved concurrently, and each round of their evaluations is one call of the metric
with the points of every pair. The metrics here compute each row on its own, so a pair's result
must be bitwise what it is when the pairs are solved one after the other (pairs_per_call=1).
"""

import latentgeo as lg
import numpy as np
import pytest
from latentgeo.errors import MetricDomainError
from manifolds import PoincareHalfPlane, poincare_distance


class Counting(PoincareHalfPlane):
    """The half-plane, counting the solver's calls and their points. Row by row in plain
    arithmetic (correctly rounded whatever the SIMD path, no reductions over a call), so a row's
    value does not depend on the other rows of its call."""

    def __init__(self):
        self.sizes = []

    def _quadratic_form(self, z, v, grad, n_threads):
        self.sizes.append(len(z))
        inv = 1.0 / (z[:, 1] * z[:, 1])
        q = (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) * inv
        if not grad:
            return q
        dqdz = np.zeros_like(z)
        dqdz[:, 1] = -2.0 * q / z[:, 1]
        return q, dqdz, 2.0 * v * inv[:, None]

    def _metric(self, z, n_threads):
        self.sizes.append(len(z))
        return super()._metric(z, n_threads)


def _pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    starts = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(0.5, 2.0, n)])
    ends = np.column_stack([rng.uniform(-2, 2, n), rng.uniform(0.5, 2.0, n)])
    return starts, ends


def test_pairs_share_the_calls_and_keep_their_results_bitwise():
    starts, ends = _pairs(16)
    serial, batched = Counting(), Counting()
    one = lg.geodesics(serial, starts, ends, tol=1e-6, pairs_per_call=1, progress=False)
    together = lg.geodesics(batched, starts, ends, tol=1e-6, progress=False)
    assert np.all(one.converged) and np.all(together.converged)
    np.testing.assert_array_equal(together.length, one.length)
    for a, b in zip(together.nodes, one.nodes):
        np.testing.assert_array_equal(a, b)
    assert sum(batched.sizes) == sum(serial.sizes)  # the same evaluations ...
    assert len(batched.sizes) < len(serial.sizes) / 4  # ... in far fewer calls
    assert max(batched.sizes) > max(serial.sizes)


def test_the_number_of_pairs_per_call_does_not_change_the_results():
    starts, ends = _pairs(7, seed=3)
    reference = lg.geodesics(
        Counting(), starts, ends, tol=1e-6, quadrature="midpoint", pairs_per_call=1, progress=False
    )
    for per_call in (2, 3, 64):
        other = lg.geodesics(
            Counting(), starts, ends, tol=1e-6, quadrature="midpoint", pairs_per_call=per_call, progress=False
        )
        np.testing.assert_array_equal(other.length, reference.length)
        np.testing.assert_array_equal(other.n_iter, reference.n_iter)
        for a, b in zip(other.nodes, reference.nodes):
            np.testing.assert_array_equal(a, b)


def test_the_calls_are_the_same_in_every_run():
    """Rounds wait for every pair and serve them in pair order: the metric sees the same calls."""
    starts, ends = _pairs(12, seed=4)
    runs = []
    for _ in range(3):
        metric = Counting()
        lg.geodesics(metric, starts, ends, tol=1e-6, progress=False)
        runs.append(metric.sizes)
    assert runs[0] == runs[1] == runs[2]


def test_the_lengths_are_the_closed_form_half_plane_distances():
    starts, ends = _pairs(8, seed=1)
    batch = lg.geodesics(Counting(), starts, ends, tol=1e-9, progress=False)
    np.testing.assert_allclose(batch.length, poincare_distance(starts, ends), rtol=1e-7)


class FailsBeyond(Counting):
    """Raises `error` for any call that includes a point with x > 3 (a bug in a region)."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def _quadratic_form(self, z, v, grad, n_threads):
        if np.any(z[:, 0] > 3.0):
            raise self.error
        return super()._quadratic_form(z, v, grad, n_threads)


@pytest.mark.parametrize("error", [TypeError("broken"), MetricDomainError("outside")])
def test_a_failing_pair_does_not_fail_the_pairs_it_shares_calls_with(error):
    starts, ends = _pairs(6, seed=2)
    starts[2], ends[2] = [0.0, 1.0], [4.0, 1.0]  # only this pair reaches x > 3
    with pytest.warns(RuntimeWarning, match="pair 2"):
        batch = lg.geodesics(FailsBeyond(error), starts, ends, tol=1e-6, progress=False)
    alone = lg.geodesics(Counting(), np.delete(starts, 2, 0), np.delete(ends, 2, 0), tol=1e-6, progress=False)
    assert not batch.converged[2] and batch.status[2] in ("metric_error", "singular_metric")
    with pytest.warns(RuntimeWarning, match="pair 2"):
        serial = lg.geodesics(FailsBeyond(error), starts, ends, tol=1e-6, pairs_per_call=1, progress=False)
    assert serial.status == batch.status and serial.messages == batch.messages
    others = [i for i in range(6) if i != 2]
    assert all(batch.converged[others])
    np.testing.assert_array_equal(batch.length[others], alone.length)


def test_the_option_is_checked():
    starts, ends = _pairs(2)
    with pytest.raises(ValueError, match="pairs_per_call"):
        lg.geodesics(Counting(), starts, ends, pairs_per_call=0, progress=False)
