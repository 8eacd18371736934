"""k-medoids on geodesic distances.

k-medoids minimises the sum of distances from each point to its nearest medoid, a point of the
set. The medoids start from k-medoids++ (D² sampling from the seed,
:func:`~latentgeo.statistics.seeding.d2_seeding`) and improve by PAM's swap phase: every
(medoid, non-medoid) exchange is scored at once from the nearest and second-nearest distances
(the FastPAM1 decomposition), the best improving one is applied, until none improves. Swaps find
a local optimum, so ``n_init`` restarts keep the best. (The cheaper alternating "Voronoi
iteration" is not used: it stops in worse local optima far more often.) Everything is numpy on
the (M, M) matrix; the geodesic distances themselves come from
:func:`latentgeo.geodesic_distances` (C++, pairs in parallel), so the labels do not depend on
the thread count.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .._validation import check_choice, check_int, check_metric
from .clustering import CLUSTERING_TOL, ClusteringResult, check_clustering_input, geodesic_distance_table
from .seeding import d2_seeding

__all__ = ["kmedoids", "kmedoids_on_matrix"]

_IMPROVEMENT_RTOL = 1e-12  # a swap must lower the total by more than this (relative): no cycling on ties
_SYMMETRY_RTOL = 1e-9  # a precomputed matrix may be asymmetric by this much (relative to its largest entry)


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
    if (finite != finite.T).any() or np.max(np.abs(dist - dist.T), initial=0.0, where=finite) > _SYMMETRY_RTOL * scale:
        raise ValueError("distances: must be symmetric")
    return np.ascontiguousarray(dist)


# --------------------------------------------------------------------------------------------
# The algorithm on a distance matrix
# --------------------------------------------------------------------------------------------
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
        return d2_seeding(len(dist), k, rng, lambda i: dist[i])
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
    pts, k, seed, max_iter = check_clustering_input(points, n_clusters, seed, max_iter, n_threads)
    n_init = check_int(n_init, "n_init", 1)
    failed: List[Tuple[int, int]] = []
    if distances is None:
        if check_metric(metric) != pts.shape[1]:
            raise ValueError(f"points: expected dimension d = {metric.dim}, got shape {pts.shape}")
        if "geodesic_init" in geodesic_options:
            geodesic_options["init"] = geodesic_options.pop("geodesic_init")
        geodesic_options.setdefault("tol", CLUSTERING_TOL)
        dist, failed = geodesic_distance_table(
            metric, pts, None, n_threads=n_threads, progress=progress, options=geodesic_options
        )
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
