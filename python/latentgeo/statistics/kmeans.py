"""Riemannian k-means: assignment by geodesic distance, centres by Fréchet means.

The centres start from k-means++ (D² sampling with geodesic distances,
:func:`~latentgeo.statistics.seeding.d2_seeding`, one column of distances per chosen centre);
each round assigns the points to their nearest centre and moves every centre to the Fréchet
mean of its cluster (:func:`~latentgeo.statistics.mean.frechet_mean`), until the labels stop
changing.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._validation import as_float_array, check_choice, check_metric
from .clustering import CLUSTERING_TOL, ClusteringResult, check_clustering_input, geodesic_distance_table
from .mean import frechet_mean
from .seeding import d2_seeding

__all__ = ["kmeans"]


def _initial_centers(init, metric, points, k, seed, n_threads, options) -> np.ndarray:
    if isinstance(init, str):
        check_choice(init, "init", {"k-means++"})

        def distances_from(i: int) -> np.ndarray:
            dist, _ = geodesic_distance_table(
                metric, points, points[i : i + 1], n_threads=n_threads, progress=False, options=options
            )
            return dist[:, 0]

        return points[d2_seeding(len(points), k, np.random.default_rng(seed), distances_from)].copy()
    centers = as_float_array(init, "init", ndim=2)
    if centers.shape != (k, points.shape[1]):
        raise ValueError(
            f"init: expected 'k-means++' or {k} centres of shape ({k}, {points.shape[1]}), got shape {centers.shape}"
        )
    return centers.copy()


def _assign(dist: np.ndarray) -> np.ndarray:
    """Nearest centre per point; an empty cluster takes the point farthest from its own centre."""
    labels = np.argmin(dist, axis=1)
    own = dist[np.arange(len(dist)), labels]
    for c in range(dist.shape[1]):
        if np.any(labels == c):
            continue
        movable = np.flatnonzero(np.bincount(labels, minlength=dist.shape[1])[labels] > 1)
        far = movable[np.argmax(own[movable])]
        labels[far], own[far] = c, 0.0
    return labels


def kmeans(
    metric,
    points,
    n_clusters: int,
    *,
    init="k-means++",
    seed: int = 0,
    max_iter: int = 50,
    mean_options: Optional[dict] = None,
    progress: bool = False,
    n_threads: Optional[int] = None,
    **geodesic_options,
) -> ClusteringResult:
    """Riemannian k-means: assignment by geodesic distance, centres by Fréchet means.

    Parameters
    ----------
    metric : metric protocol object
    points : array_like, shape (M, d)
    n_clusters : int
        k, 1 <= k <= M.
    init : "k-means++" or array_like (k, d)
        k-means++ seeding with geodesic distances (from ``seed``), or given centres.
    seed : int
    max_iter : int
        Assignment rounds at most.
    mean_options : dict, optional
        Keyword arguments of :func:`frechet_mean` (``tol``, ``log_tol``, ``max_iter``).
    progress : bool
        Progress bars of the distance computations.
    n_threads : int, optional
        Threads (None: all cores); the result does not depend on it.
    **geodesic_options
        Passed to :func:`latentgeo.geodesic_distances` for the assignments (``tol`` default 1e-6).

    Returns
    -------
    ClusteringResult
        ``centers`` are the clusters' Fréchet means, ``inertia`` = Σ d(zᵢ, centre)², ``distances``
        the (M, k) distances to the final centres, ``medoids`` None. An empty cluster takes the
        point farthest from its centre. A centre whose Fréchet mean did not converge sets
        ``status="mean_failed"`` (and ``converged=False``).
    """
    dim = check_metric(metric)
    pts, k, seed, max_iter = check_clustering_input(points, n_clusters, seed, max_iter, n_threads)
    if pts.shape[1] != dim:
        raise ValueError(f"points: expected dimension d = {dim}, got shape {pts.shape}")
    if not isinstance(mean_options, (dict, type(None))):
        raise ValueError("mean_options: expected a dict of frechet_mean options")
    mean_options = dict(mean_options or {})
    geodesic_options.setdefault("tol", CLUSTERING_TOL)
    centers = _initial_centers(init, metric, pts, k, seed, n_threads, geodesic_options)

    def distances_to_centers():
        return geodesic_distance_table(
            metric, pts, centers, n_threads=n_threads, progress=progress, options=geodesic_options
        )

    labels = np.full(len(pts), -1)
    status, converged, n_iter = "max_iter", False, 0
    for n_iter in range(1, max_iter + 1):
        dist, failed = distances_to_centers()
        new_labels = _assign(dist)
        if np.array_equal(new_labels, labels):
            status, converged = "converged", True
            break
        labels = new_labels
        means_ok = True
        for c in range(k):
            members = np.flatnonzero(labels == c)
            res = frechet_mean(metric, pts[members], init=centers[c], n_threads=n_threads, **mean_options)
            centers[c] = res.mean
            means_ok &= res.converged
        if not means_ok:
            status, converged = "mean_failed", False
            dist, failed = distances_to_centers()
            labels = _assign(dist)
            break
    inertia = float(np.sum(dist[np.arange(len(pts)), labels] ** 2))
    return ClusteringResult(
        centers=centers,
        labels=labels,
        inertia=inertia,
        distances=dist,
        medoids=None,
        n_iter=n_iter,
        converged=converged,
        status=status,
        failed_pairs=failed,
    )
