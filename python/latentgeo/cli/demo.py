"""Pieces of ``latentgeo demo``: which pairs of digits to join, and the decoded-digits figure."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

_N_CLUSTERS = 30  # 435 medoid pairs: a few seconds of geodesics


def _class_centres(latent: np.ndarray, labels: np.ndarray) -> dict:
    """The latent mean of each class, moved to the class's nearest point (a class whose points
    form several clusters has its mean between them, where no digit lies)."""
    centres = {}
    for c in np.unique(labels):
        members = latent[labels == c]
        mean = members.mean(axis=0)
        centres[int(c)] = members[np.argmin(np.sum((members - mean) ** 2, axis=1))]
    return centres


def _cluster_medoids(points: np.ndarray, k: int, iterations: int = 30, min_size: int = 10) -> np.ndarray:
    """Indices of the medoids of k-means clusters (deterministic: farthest-point start) with at
    least `min_size` members (an outlier is not an island of digits)."""
    centres = [points[np.argmin(np.sum((points - points.mean(axis=0)) ** 2, axis=1))]]
    for _ in range(k - 1):
        gap = np.min(np.sum((points[:, None] - np.array(centres)[None]) ** 2, axis=2), axis=1)
        centres.append(points[np.argmax(gap)])
    centres = np.array(centres)
    for _ in range(iterations):
        member = np.argmin(np.sum((points[:, None] - centres[None]) ** 2, axis=2), axis=1)
        centres = np.array([points[member == c].mean(axis=0) if np.any(member == c) else centres[c] for c in range(k)])
    member = np.argmin(np.sum((points[:, None] - centres[None]) ** 2, axis=2), axis=1)
    sizes = np.bincount(member, minlength=k)
    return np.unique([np.argmin(np.sum((points - c) ** 2, axis=1)) for c, n in zip(centres, sizes) if n >= min_size])


def demo_pairs(latent: np.ndarray, labels: np.ndarray, n_clusters: int = _N_CLUSTERS):
    """Candidate pairs of latent points: the centres of all pairs of classes, and all pairs of
    the medoids of k-means clusters of the codes. The clusters split classes that form several
    islands, and their pairs' straight lines cross the low-density gaps between islands.

    Returns
    -------
    names : list of (int, int)
        The classes of the two ends.
    starts, ends : ndarray (P, 2)
    """
    centres = _class_centres(latent, labels)
    names: List[Tuple[int, int]] = [(a, b) for a in centres for b in centres if a < b]
    starts, ends = [centres[a] for a, _ in names], [centres[b] for _, b in names]
    medoids = _cluster_medoids(latent, n_clusters)
    i, j = np.triu_indices(len(medoids), 1)
    names += [(int(labels[medoids[a]]), int(labels[medoids[b]])) for a, b in zip(i, j)]
    return (
        names,
        np.concatenate([np.array(starts), latent[medoids[i]]]),
        np.concatenate([np.array(ends), latent[medoids[j]]]),
    )


def most_bent(ratio: np.ndarray, names, converged: np.ndarray, count: int) -> List[int]:
    """Indices of the `count` converged pairs with the smallest length ratio, one per pair of classes."""
    chosen, seen = [], set()
    for k in np.argsort(ratio):
        key = tuple(sorted(names[k]))
        if converged[k] and key not in seen:
            chosen.append(int(k))
            seen.add(key)
        if len(chosen) == count:
            break
    return chosen


def decoded_figure(metric, decoder, latent, labels, result, name, out_path, n_images: int = 10) -> None:
    """Left: the pair's geodesic and straight line over log √det G; right: decoded digits along
    both, equally spaced in arc length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plot import plot_curves, plot_decoded_curves, plot_latent, plot_magnification, points_at_equal_arc_length

    start, end = result.nodes[0], result.nodes[-1]
    line = lambda t: start + np.asarray(t)[:, None] * (end - start)  # noqa: E731
    curves = [result.curve, line]
    fig = plt.figure(figsize=(14, 3.9), dpi=110)
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 2.3])
    ax = left.subplots()
    lo, hi = latent.min(axis=0), latent.max(axis=0)
    pad = 0.1 * (hi - lo)
    plot_magnification(
        metric, (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]), resolution=150, ax=ax, colorbar=False
    )
    plot_latent(latent, labels, ax=ax, s=2, legend=False)
    plot_curves(
        [result.curve(np.linspace(0, 1, 200)), line(np.linspace(0, 1, 200))],
        ax=ax,
        straight=False,
        colors=["white", "orange"],
        linewidth=2.0,
    )
    for curve, color in zip(curves, ("white", "orange")):
        dots = points_at_equal_arc_length(metric, curve, n_images)
        ax.scatter(dots[:, 0], dots[:, 1], s=18, color=color, edgecolor="black", zorder=3)
    ax.set_title(f"digits {name[0]} → {name[1]}: geodesic (white), straight line (orange)", fontsize=9)
    plot_decoded_curves(
        decoder.decode,
        metric,
        curves,
        n_images,
        fig=right,
        row_labels=[f"geodesic: length {result.length:.3f}", f"straight line: length {result.straight_length:.3f}"],
    )
    right.suptitle("decoded digits, equally spaced in arc length", fontsize=10)
    fig.savefig(out_path)
    plt.close(fig)
