"""k-medoids on geodesic distances (and the Riemannian k-means built on Fréchet means).

k-medoids minimises the sum of distances from each point to its nearest medoid, a point of the
set. The medoids start from k-medoids++ (D² sampling from the seed) and improve by PAM's swap
phase: every (medoid, non-medoid) exchange is scored at once from the nearest and
second-nearest distances (the FastPAM1 decomposition), the best improving one is applied, until
none improves. Swaps find a local optimum, so ``n_init`` restarts keep the best. (The cheaper
alternating "Voronoi iteration" is not used: it stops in worse local optima far more often.)
Everything is numpy on the (M, M) matrix; the geodesic distances themselves come from
:func:`latentgeo.geodesic_distances` (C++, pairs in parallel), so the labels do not depend on
the thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .._validation import as_float_array, check_choice, check_int, check_metric, check_threads
from .common import check_seed

__all__ = ["ClusteringResult", "kmeans", "kmedoids"]

_IMPROVEMENT_RTOL = 1e-12  # a swap must lower the total by more than this (relative): no cycling on ties
# Geodesic accuracy for clustering: distances to ~4e-6 relative at half the cost of the solver's 1e-8.
_CLUSTERING_TOL = 1e-6


@dataclass
class ClusteringResult:
    """Clusters of M points.

    Attributes
    ----------
    centers : ndarray, shape (k, d)
        The cluster centres (medoids, or Fréchet means for k-means).
    labels : ndarray of int, shape (M,)
        Index of each point's nearest centre.
    inertia : float
        k-medoids: Σ d(zᵢ, centre); k-means: Σ d(zᵢ, centre)².
    distances : ndarray, shape (M, M) or (M, k)
        k-medoids: the geodesic distance matrix of the points (reusable: pass it as
        ``distances=``); k-means: the distances of the points to the final centres.
    medoids : ndarray of int, shape (k,), or None
        Indices of the medoids in ``points`` (k-medoids only).
    n_iter : int
        Swaps of the best restart (k-medoids) or assignment rounds (k-means).
    converged : bool
        No improving swap or reassignment is left (False: ``max_iter`` was reached, or a
        centre's Fréchet mean did not converge).
    status : str
        ``"converged"``, ``"max_iter"``, or (k-means) ``"mean_failed"``.
    failed_pairs : list of (i, j)
        Pairs whose geodesic did not converge (their distance is an upper bound) or failed
        (infinite distance); empty with a precomputed matrix.
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    distances: np.ndarray = field(repr=False)
    medoids: Optional[np.ndarray]
    n_iter: int
    converged: bool
    status: str
    failed_pairs: List[Tuple[int, int]] = field(default_factory=list, repr=False)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------
def check_n_clusters(n_clusters, n_points: int) -> int:
    k = check_int(n_clusters, "n_clusters", 1)
    if k > n_points:
        raise ValueError(f"n_clusters: must be <= the number of points ({n_points}), got {k}")
    return k


def _check_distance_matrix(distances, m: int) -> np.ndarray:
    try:
        dist = np.asarray(distances, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"distances: cannot be converted to a float64 array ({exc})") from None
    if dist.shape != (m, m):
        raise ValueError(f"distances: expected shape ({m}, {m}) (one row per point), got {dist.shape}")
    if np.isnan(dist).any() or np.isneginf(dist).any():
        raise ValueError("distances: contains NaN or -Inf (a failed pair may be +Inf)")
    if (dist < 0).any():
        raise ValueError("distances: must be non-negative")
    finite = np.isfinite(dist)
    scale = max(1.0, np.max(dist, initial=0.0, where=finite))
    if (finite != finite.T).any() or np.max(np.abs(dist - dist.T), initial=0.0, where=finite) > 1e-9 * scale:
        raise ValueError("distances: must be symmetric")
    return np.ascontiguousarray(dist)


def geodesic_distance_matrix(metric, points: np.ndarray, n_threads, progress: bool, options: dict):
    """The symmetric geodesic distance matrix, +Inf for failed pairs, and the non-converged pairs."""
    from ..solvers.distances import geodesic_distances

    result = geodesic_distances(metric, points, progress=progress, n_threads=n_threads, **options)
    dist = np.where(np.isnan(result.distances), np.inf, result.distances)
    np.fill_diagonal(dist, 0.0)
    rows, cols = np.nonzero(np.triu(~result.converged, 1))
    return dist, [(int(i), int(j)) for i, j in zip(rows, cols)]


# --------------------------------------------------------------------------------------------
# The algorithm on a distance matrix
# --------------------------------------------------------------------------------------------
def kmedoids_plus_plus(dist: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-medoids++: the first medoid uniformly, each next with probability ∝ D² to the nearest."""
    m = len(dist)
    medoids = [int(rng.integers(m))]
    nearest = dist[medoids[0]].copy()
    for _ in range(1, k):
        weights = np.where(np.isfinite(nearest), nearest, 0.0) ** 2
        weights[medoids] = 0.0
        total = weights.sum()
        if total > 0:
            nxt = int(rng.choice(m, p=weights / total))
        else:  # all remaining points coincide with medoids (or are unreachable): take any other
            nxt = int(rng.choice(np.setdiff1d(np.arange(m), medoids)))
        medoids.append(nxt)
        nearest = np.minimum(nearest, dist[nxt])
    return np.array(medoids, dtype=np.int64)


def _nearest_two(dist: np.ndarray, medoids: np.ndarray):
    """Per point: index (into medoids) of the nearest medoid, its distance, the second-nearest distance."""
    to_medoids = dist[:, medoids]
    if len(medoids) == 1:
        return np.zeros(len(dist), dtype=np.int64), to_medoids[:, 0], np.full(len(dist), np.inf)
    order = np.argsort(to_medoids, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(dist))
    return order[:, 0], to_medoids[rows, order[:, 0]], to_medoids[rows, order[:, 1]]


def _total(d1: np.ndarray) -> float:
    return float(np.sum(d1))


def _swap_gains(dist: np.ndarray, medoids: np.ndarray):
    """Change of the total for every swap (medoid c -> point x), shape (k, M) (FastPAM1).

    For a point o with nearest medoid n(o) at d1 and second nearest at d2, swapping medoid c for x
    costs min(d(o, x), d2) − d1 if n(o) = c, else min(d(o, x), d1) − d1.
    """
    nearest, d1, d2 = _nearest_two(dist, medoids)
    # A failed pair (+Inf) counts as a distance larger than any path through the set, so that
    # sums stay finite (inf - inf would be NaN) and every point prefers a reachable medoid.
    big = 2.0 * len(dist) * np.max(dist, initial=0.0, where=np.isfinite(dist)) + 1.0
    dx, d1f, d2f = (np.where(np.isinf(a), big, a) for a in (dist, d1, d2))
    keep = np.minimum(dx, d1f[None, :])  # [x, o]
    common = (keep - d1f[None, :]).sum(axis=1)  # (M,) the change if o's medoid stays
    own = np.minimum(dx, d2f[None, :]) - keep  # [x, o] extra change for o in the removed cluster
    onehot = np.zeros((len(dist), len(medoids)))
    onehot[np.arange(len(dist)), nearest] = 1.0
    gains = common[None, :] + (own @ onehot).T
    gains[:, medoids] = np.inf  # a medoid is no candidate
    return gains, d1


def _swap(dist: np.ndarray, medoids: np.ndarray, max_iter: int) -> Tuple[np.ndarray, int, bool]:
    """PAM swap phase: apply the best improving swap until none improves (or max_iter swaps)."""
    for it in range(max_iter):
        gains, d1 = _swap_gains(dist, medoids)
        c, x = np.unravel_index(np.argmin(gains), gains.shape)
        if not gains[c, x] < -_IMPROVEMENT_RTOL * max(_total(np.where(np.isinf(d1), 0.0, d1)), np.finfo(float).tiny):
            return medoids, it, True
        medoids = medoids.copy()
        medoids[c] = x
    return medoids, max_iter, False


def kmedoids_on_matrix(dist: np.ndarray, k: int, init: np.ndarray, max_iter: int):
    """(medoids, labels, inertia, n_iter, converged) from initial medoids on a distance matrix."""
    medoids, n_swap, converged = _swap(dist, init, max_iter)
    labels, d1, _ = _nearest_two(dist, medoids)
    return medoids, labels, _total(d1), n_swap, converged


def _initial_medoids(init, dist: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(init, str):
        check_choice(init, "init", {"k-medoids++", "random"})
        if init == "random":
            return np.sort(rng.choice(len(dist), size=k, replace=False)).astype(np.int64)
        return kmedoids_plus_plus(dist, k, rng)
    idx = np.asarray(init)
    if idx.shape != (k,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"init: expected 'k-medoids++', 'random' or {k} point indices, got {init!r}")
    if idx.min() < 0 or idx.max() >= len(dist) or len(np.unique(idx)) != k:
        raise ValueError(f"init: indices must be distinct and in [0, {len(dist)})")
    return idx.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def kmedoids(
    metric,
    points,
    n_clusters: int,
    *,
    distances=None,
    init="k-medoids++",
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
    progress: bool = True,
    n_threads: Optional[int] = None,
    **geodesic_options,
) -> ClusteringResult:
    """k-medoids clustering with geodesic distances.

    Parameters
    ----------
    metric : metric protocol object
        Used for the distance matrix (ignored when ``distances`` is given; may then be None).
    points : array_like, shape (M, d)
    n_clusters : int
        k, 1 <= k <= M.
    distances : array_like, shape (M, M), optional
        A precomputed symmetric distance matrix (e.g. ``result.distances`` of an earlier call);
        +Inf marks pairs without a distance. Without it, :func:`latentgeo.geodesic_distances`
        computes the M (M − 1)/2 geodesics.
    init : {"k-medoids++", "random"} or array of k indices
        Initial medoids (drawn from ``seed``).
    seed : int
        Seed of the initialisation; the result is a deterministic function of it.
    n_init : int
        Restarts from different drawn initialisations (PAM finds a local optimum of single
        swaps); the best is kept. Ignored when ``init`` gives the indices.
    max_iter : int
        Limit of the swaps per restart.
    progress : bool
        Progress bar of the distance computation.
    n_threads : int, optional
        Threads of the geodesic solver (None: all cores); the result does not depend on it.
    **geodesic_options
        Passed to :func:`latentgeo.geodesic_distances` (``tol``, default 1e-6 here: clusters need
        no more and it halves the cost; ``n_nodes``…; its ``init`` is named ``geodesic_init``).

    Returns
    -------
    ClusteringResult
        ``medoids`` are indices into ``points``, ``inertia`` = Σ distance to the medoid.
    """
    pts = as_float_array(points, "points", ndim=2)
    k = check_n_clusters(n_clusters, len(pts))
    seed = check_seed(seed)
    n_init = check_int(n_init, "n_init", 1)
    max_iter = check_int(max_iter, "max_iter", 1)
    check_threads(n_threads)
    failed: List[Tuple[int, int]] = []
    if distances is None:
        if check_metric(metric) != pts.shape[1]:
            raise ValueError(f"points: expected dimension d = {metric.dim}, got shape {pts.shape}")
        if "geodesic_init" in geodesic_options:
            geodesic_options["init"] = geodesic_options.pop("geodesic_init")
        geodesic_options.setdefault("tol", _CLUSTERING_TOL)
        dist, failed = geodesic_distance_matrix(metric, pts, n_threads, progress, geodesic_options)
    else:
        if geodesic_options:
            raise ValueError(f"geodesic_options: {sorted(geodesic_options)} are not used with precomputed distances")
        dist = _check_distance_matrix(distances, len(pts))
    best = None
    rngs = np.random.default_rng(seed).spawn(n_init if isinstance(init, str) else 1)
    for rng in rngs:
        run = kmedoids_on_matrix(dist, k, _initial_medoids(init, dist, k, rng), max_iter)
        if best is None or run[2] < best[2]:
            best = run
    medoids, labels, inertia, n_iter, converged = best
    return ClusteringResult(
        centers=pts[medoids].copy(),
        labels=labels,
        inertia=inertia,
        distances=dist,
        medoids=medoids,
        n_iter=n_iter,
        converged=converged,
        status="converged" if converged else "max_iter",
        failed_pairs=failed,
    )


# --------------------------------------------------------------------------------------------
# Riemannian k-means
# --------------------------------------------------------------------------------------------
def _distances_to(metric, points: np.ndarray, centers: np.ndarray, n_threads, progress: bool, options: dict):
    """Geodesic distances (M, k) from the points to the centres (+Inf for failed pairs), and the
    pairs that did not converge as (point, centre)."""
    from ..solvers.distances import geodesic_distances

    result = geodesic_distances(metric, points, centers, progress=progress, n_threads=n_threads, **options)
    dist = np.where(np.isnan(result.distances), np.inf, result.distances)
    rows, cols = np.nonzero(~result.converged)
    return dist, [(int(i), int(j)) for i, j in zip(rows, cols)]


def _kmeans_plus_plus(metric, points, k, rng, n_threads, options) -> np.ndarray:
    """k-means++ seeding with geodesic distances, one column of distances per chosen centre."""
    chosen = [int(rng.integers(len(points)))]
    nearest = np.full(len(points), np.inf)
    for _ in range(1, k):
        dist, _ = _distances_to(metric, points, points[chosen[-1:]], n_threads, False, options)
        nearest = np.minimum(nearest, dist[:, 0])
        weights = np.where(np.isfinite(nearest), nearest, 0.0) ** 2
        weights[chosen] = 0.0
        total = weights.sum()
        pool = np.setdiff1d(np.arange(len(points)), chosen)
        chosen.append(int(rng.choice(len(points), p=weights / total)) if total > 0 else int(rng.choice(pool)))
    return points[chosen].copy()


def _initial_centers(init, metric, points, k, seed, n_threads, options) -> np.ndarray:
    if isinstance(init, str):
        check_choice(init, "init", {"k-means++"})
        return _kmeans_plus_plus(metric, points, k, np.random.default_rng(seed), n_threads, options)
    centers = as_float_array(init, "init", ndim=2)
    if centers.shape != (k, points.shape[1]):
        raise ValueError(
            f"init: expected 'k-means++' or {k} centres of shape ({k}, {points.shape[1]}), got shape {centers.shape}"
        )
    return centers.copy()


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
    from .mean import frechet_mean

    dim = check_metric(metric)
    pts = as_float_array(points, "points", ndim=2)
    if pts.shape[1] != dim:
        raise ValueError(f"points: expected dimension d = {dim}, got shape {pts.shape}")
    k = check_n_clusters(n_clusters, len(pts))
    seed = check_seed(seed)
    max_iter = check_int(max_iter, "max_iter", 1)
    check_threads(n_threads)
    if not isinstance(mean_options, (dict, type(None))):
        raise ValueError("mean_options: expected a dict of frechet_mean options")
    mean_options = dict(mean_options or {})
    geodesic_options.setdefault("tol", _CLUSTERING_TOL)
    centers = _initial_centers(init, metric, pts, k, seed, n_threads, geodesic_options)
    labels = np.full(len(pts), -1)
    status, converged, n_iter = "max_iter", False, 0
    for n_iter in range(1, max_iter + 1):
        dist, failed = _distances_to(metric, pts, centers, n_threads, progress, geodesic_options)
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
            dist, failed = _distances_to(metric, pts, centers, n_threads, progress, geodesic_options)
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
