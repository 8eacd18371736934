"""D² seeding (k-means++ / k-medoids++): the one way latentgeo draws initial cluster centres."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["d2_seeding"]


def d2_seeding(
    n_points: int, k: int, rng: np.random.Generator, distances_from: Callable[[int], np.ndarray]
) -> np.ndarray:
    """Indices (k,) of k points: the first uniformly, each next with probability ∝ D² to the nearest chosen.

    ``distances_from(i)`` returns the distances (n_points,) from point i to every point (+Inf for
    a pair without a distance, which gets weight 0); it is called once per chosen point except the
    last, so that callers may compute the distances lazily. When every remaining point coincides
    with a chosen one (or is unreachable), any other point is taken uniformly.
    """
    chosen = [int(rng.integers(n_points))]
    nearest = np.full(n_points, np.inf)
    for _ in range(1, k):
        nearest = np.minimum(nearest, distances_from(chosen[-1]))
        weights = np.where(np.isfinite(nearest), nearest, 0.0) ** 2
        weights[chosen] = 0.0
        total = weights.sum()
        if total > 0:
            chosen.append(int(rng.choice(n_points, p=weights / total)))
        else:
            chosen.append(int(rng.choice(np.setdiff1d(np.arange(n_points), chosen))))
    return np.array(chosen, dtype=np.int64)
