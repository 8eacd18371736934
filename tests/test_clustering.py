"""Clustering on the manifold: k-medoids against exhaustive search and closed-form distances,
k-means against Euclidean Lloyd iterations of whitened points (constant metric)."""

from __future__ import annotations

import itertools

import latentgeo as lg
import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo import statistics as st
from manifolds import poincare_distance


def poincare_matrix(points):
    return poincare_distance(points[:, None, :], points[None, :, :])


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
