"""Geodesic distance matrices: closed form, executors (threads, a failing one, Dask), bad input."""

import pickle
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import latentgeo as lg
import numpy as np
import pytest
from manifolds import PoincareHalfPlane, poincare_distance
from test_geodesic import _rhvae


def _poincare_points(m, seed):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-2, 2, m), rng.uniform(0.2, 2, m)]


def test_symmetric_matrix_matches_closed_form():
    pts = _poincare_points(7, 0)
    res = lg.geodesic_distances(PoincareHalfPlane(), pts, progress=False)
    i, j = np.meshgrid(np.arange(7), np.arange(7), indexing="ij")
    truth = poincare_distance(pts[i.ravel()], pts[j.ravel()]).reshape(7, 7)
    np.testing.assert_allclose(res.distances, truth, rtol=1e-6)
    np.testing.assert_array_equal(res.distances, res.distances.T)
    assert np.all(np.diag(res.distances) == 0.0)
    assert res.converged.all() and res.failed == [] and res.converged.shape == (7, 7)


def test_cross_matrix_with_an_identical_point():
    p1, p2 = _poincare_points(4, 1), _poincare_points(3, 2)
    p2[1] = p1[2]
    res = lg.geodesic_distances(PoincareHalfPlane(), p1, p2, progress=False)
    assert res.distances.shape == (4, 3) and res.converged.shape == (4, 3)
    assert res.distances[2, 1] == 0.0 and res.converged[2, 1]
    i, j = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    np.testing.assert_allclose(res.distances, poincare_distance(p1[i.ravel()], p2[j.ravel()]).reshape(4, 3), rtol=1e-6)


def test_thread_executor_and_chunks_match_local():
    metric = _rhvae()
    pts = np.random.default_rng(3).standard_normal((9, 2))
    local = lg.geodesic_distances(metric, pts, progress=False)
    with ThreadPoolExecutor(max_workers=2) as pool:
        remote = lg.geodesic_distances(metric, pts, executor=pool, chunk_size=5, n_threads=1, progress=False)
    # the contract: each pair's solve does not depend on chunks or threads, bit for bit
    np.testing.assert_array_equal(remote.distances, local.distances)
    np.testing.assert_array_equal(remote.converged, local.converged)
    small = lg.geodesic_distances(metric, pts, chunk_size=3, progress=False)
    np.testing.assert_array_equal(small.distances, local.distances)


def test_unconverged_pairs_are_reported():
    pts = _poincare_points(5, 4)
    res = lg.geodesic_distances(PoincareHalfPlane(), pts, max_iter=1, progress=False)
    assert len(res.failed) > 0
    for i, j in res.failed:
        assert i < j and not res.converged[i, j] and not res.converged[j, i]
        assert res.status[i, j] != "converged"
        # Never a silent straight line: the value is the measured length of the curve reached,
        # an upper bound of the true distance.
        assert res.distances[i, j] >= poincare_distance(pts[[i]], pts[[j]])[0] * (1 - 1e-6)  # quadrature error
    assert sum(not c for c in res.converged[np.triu_indices(5, 1)]) == len(res.failed)


class FailingExecutor(Executor):
    """Runs chunks inline, but the chunks numbered in `failing` fail as a lost worker would."""

    def __init__(self, failing=(2,)):
        self.calls, self.failing = 0, failing

    def submit(self, fn, *args, **kwargs):
        self.calls += 1
        fut = Future()
        if self.calls in self.failing:
            fut.set_exception(MemoryError("worker lost"))
        else:
            fut.set_result(fn(*args, **kwargs))
        return fut


def test_failing_chunk_marks_its_pairs_and_keeps_the_others():
    pts = _poincare_points(5, 5)
    with pytest.warns(RuntimeWarning, match=r"3 of 10 pairs failed.*pair \(0, 4\): worker_error: MemoryError"):
        res = lg.geodesic_distances(PoincareHalfPlane(), pts, executor=FailingExecutor(), chunk_size=3, progress=False)
    # Chunk 2 holds the pairs 3..5 of the upper triangle: (0, 4), (1, 2), (1, 3).
    lost = [(0, 4), (1, 2), (1, 3)]
    assert sorted(res.messages) == lost
    for i, j in lost:
        assert (i, j) in res.failed and res.status[i, j] == res.status[j, i] == "worker_error"
        assert np.isnan(res.distances[i, j]) and np.isnan(res.distances[j, i]) and not res.converged[i, j]
        assert res.messages[(i, j)] == f"pair ({i}, {j}): worker_error: MemoryError: worker lost"
    good = np.ones((5, 5), bool)
    for i, j in lost:
        good[i, j] = good[j, i] = False
    i, j = np.nonzero(good)
    np.testing.assert_allclose(res.distances[i, j], poincare_distance(pts[i], pts[j]), rtol=1e-6, atol=1e-12)
    assert res.converged[i, j].all()


def test_every_chunk_failing_reraises_with_the_first_pair():
    pts = _poincare_points(4, 5)
    with pytest.raises(MemoryError, match=r"all 6 pairs failed; the first, pair \(0, 1\): .*worker lost") as info:
        lg.geodesic_distances(
            PoincareHalfPlane(), pts, executor=FailingExecutor(failing=(1, 2)), chunk_size=3, progress=False
        )
    assert isinstance(info.value.__cause__, MemoryError)


def test_metric_error_on_worker_reraised():
    class Broken(PoincareHalfPlane):
        def _quadratic_form(self, z, v, grad, n_threads):
            raise ArithmeticError("bad metric")

    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(ArithmeticError, match=r"pair \(0, 1\).*bad metric"):
            lg.geodesic_distances(Broken(), _poincare_points(3, 6), executor=pool, progress=False)


def test_result_and_metric_pickle():
    metric = _rhvae()
    pts = np.random.default_rng(7).standard_normal((4, 2))
    res = lg.geodesic_distances(metric, pts, progress=False)
    again = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(again.distances, res.distances)
    metric2 = pickle.loads(pickle.dumps(metric.scaled(2.0)))
    np.testing.assert_allclose(
        lg.geodesic_distances(metric2, pts, progress=False).distances, np.sqrt(2.0) * res.distances, rtol=1e-10
    )


def test_dask_local_cluster_matches_local():
    distributed = pytest.importorskip("distributed")
    metric = _rhvae()
    pts = np.random.default_rng(8).standard_normal((8, 2))
    local = lg.geodesic_distances(metric, pts, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = lg.geodesic_distances(
                metric, pts, executor=client.get_executor(), chunk_size=7, n_threads=1, progress=False
            )
    np.testing.assert_array_equal(remote.distances, local.distances)  # same binary, same machine: bit for bit
    np.testing.assert_array_equal(remote.converged, local.converged)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(points=np.ones((3, 3))), "points"),
        (dict(points=np.array([[0.0, np.nan], [1.0, 1.0]])), "points"),
        (dict(points=np.zeros((0, 2))), "points"),
        (dict(points=np.ones(2)), "points"),
        (dict(points2=np.ones((2, 3))), "points2"),
        (dict(points2=np.array([[np.inf, 1.0]])), "points2"),
        (dict(tol=0.0), "tol"),
        (dict(n_nodes=3), "n_nodes"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(executor="pool"), "executor"),
        (dict(bogus=True), "options"),
    ],
)
def test_bad_input(kwargs, name):
    call = dict(points=_poincare_points(3, 9))
    call.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        lg.geodesic_distances(PoincareHalfPlane(), progress=False, **call)
