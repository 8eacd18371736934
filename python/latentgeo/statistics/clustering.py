"""What the clusterings share: their result, their checks and their geodesic distances.

The algorithms are :func:`~latentgeo.statistics.kmedoids.kmedoids` (PAM swaps on the distance
matrix) and :func:`~latentgeo.statistics.kmeans.kmeans` (Riemannian k-means on Fréchet means),
both seeded by :func:`~latentgeo.statistics.seeding.d2_seeding`. The geodesic distances come
from :func:`latentgeo.geodesic_distances` (C++, pairs in parallel), so the labels do not depend
on the thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .._validation import as_float_array, check_int, check_threads
from ..solvers.distances import geodesic_distances
from .common import check_seed

__all__ = ["ClusteringResult", "CLUSTERING_TOL", "check_clustering_input", "geodesic_distance_table"]

# Geodesic accuracy for clustering: distances to ~4e-6 relative at half the cost of the solver's 1e-8.
CLUSTERING_TOL = 1e-6


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


def check_clustering_input(points, n_clusters, seed, max_iter, n_threads) -> Tuple[np.ndarray, int, int, int]:
    """The checked (points (M, d), k with 1 <= k <= M, seed, max_iter) of a clustering call."""
    pts = as_float_array(points, "points", ndim=2)
    k = check_int(n_clusters, "n_clusters", 1)
    if k > len(pts):
        raise ValueError(f"n_clusters: must be <= the number of points ({len(pts)}), got {k}")
    seed = check_seed(seed)
    max_iter = check_int(max_iter, "max_iter", 1)
    check_threads(n_threads)
    return pts, k, seed, max_iter


def geodesic_distance_table(
    metric, points: np.ndarray, centers: Optional[np.ndarray], *, n_threads, progress: bool, options: dict
):
    """Geodesic distances and the pairs (i, j) that did not converge.

    Without ``centers``: the symmetric (M, M) matrix of the points (zero diagonal, each pair
    named once, i < j); with them: the (M, k) distances from the points to the centres, pairs as
    (point, centre). Failed pairs get +Inf.
    """
    result = geodesic_distances(metric, points, centers, progress=progress, n_threads=n_threads, **options)
    dist = np.where(np.isnan(result.distances), np.inf, result.distances)
    not_converged = ~result.converged
    if centers is None:
        np.fill_diagonal(dist, 0.0)
        not_converged = np.triu(not_converged, 1)
    rows, cols = np.nonzero(not_converged)
    return dist, [(int(i), int(j)) for i, j in zip(rows, cols)]
