"""``latentgeo demo``: geodesics between digits of the shipped RHVAE (demo.png, demo_decoded.png),
then class Fréchet means and the geometry-aware sampler (demo_statistics.png). The pictures are
drawn by :mod:`latentgeo.cli.demo_figures` when matplotlib is installed."""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..datasets import load_digits_rhvae
from ..solvers.api import geodesics
from ..statistics.mean import frechet_mean
from ..statistics.volume_sampling import sample_riemannian
from .demo_figures import decoded_figure, geodesics_figure, statistics_figure
from .files import CommandError, print_table, writable_directory

__all__ = ["run_demo", "demo_pairs", "most_bent", "class_means", "statistics_demo"]

_N_CLUSTERS = 30  # 435 medoid pairs: a few seconds of geodesics
_DEMO_MEAN_TOL = 1e-6  # a picture needs no more
_DEMO_SAMPLES = 600


def run_demo(args) -> int:
    """The ``demo`` subcommand: 0 when every geodesic and class mean converged, else 1."""
    out_path = os.path.join(args.out, "demo.png")
    writable_directory(args.out, "--out", create=True)
    if os.path.isdir(out_path):
        raise CommandError(f"--out: {out_path} is a directory")
    start = time.perf_counter()
    data = load_digits_rhvae()
    metric, latent, labels = data.metric, data.latent, data.labels
    candidates, starts, ends = demo_pairs(latent, labels)
    print(
        f"digits RHVAE: d = {metric.dim}, K = {metric.n_centroids} centroids, "
        f"T = {metric.temperature:.4g}, lambda = {metric.regularization:.4g}, normalization = {metric.normalization}"
    )
    print(
        f"geodesics between {len(candidates)} pairs of digits (the centres of all pairs of classes, all pairs of "
        f"cluster medoids); the {args.pairs} most bent, one per pair of classes:"
    )
    everything = geodesics(metric, starts, ends, progress=False, n_threads=args.n_threads)
    ratio = everything.length / everything.straight_length
    chosen = most_bent(ratio, candidates, everything.converged, args.pairs)
    batch = [everything[i] for i in chosen]
    pairs = [candidates[i] for i in chosen]
    rows = [
        (
            f"{a}->{b}",
            f"{r.straight_length:.4f}",
            f"{r.length:.4f}",
            f"{r.length / r.straight_length:.3f}",
            "yes" if r.converged else "NO: " + r.status,
        )
        for (a, b), r in zip(pairs, batch)
    ]
    print_table(rows, ("digits", "straight length", "geodesic length", "ratio", "converged"))
    failed = int(np.sum(~everything.converged))
    print(f"all {len(candidates)} pairs: ratio {ratio.min():.3f} .. {ratio.max():.3f}, {failed} not converged")
    decoded_path = os.path.join(args.out, "demo_decoded.png")
    try:
        geodesics_figure(metric, latent, labels, batch=batch, pairs=pairs, path=out_path)
        decoded_figure(metric, data.decoder, latent, labels, result=batch[0], name=pairs[0], path=decoded_path)
        print(f"wrote {out_path} and {decoded_path} ({time.perf_counter() - start:.1f} s)")
    except ImportError:  # matplotlib is an optional extra
        print('no picture: matplotlib is not installed (pip install "latentgeo[plot]")')
    mean_failures = statistics_demo(metric, latent, labels, args.out, n_threads=args.n_threads)
    return 0 if failed == 0 and mean_failures == 0 else 1


# --------------------------------------------------------------------------------------------
# Which pairs of digits to join
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Statistics: class Fréchet means and the geometry-aware sampler
# --------------------------------------------------------------------------------------------
def class_means(metric, latent: np.ndarray, labels: np.ndarray, n_threads=None) -> List[Tuple[int, np.ndarray, object]]:
    """(class, Euclidean mean, FrechetMeanResult) per class."""
    out = []
    for c in np.unique(labels):
        members = latent[labels == c]
        out.append(
            (int(c), members.mean(axis=0), frechet_mean(metric, members, tol=_DEMO_MEAN_TOL, n_threads=n_threads))
        )
    return out


def statistics_demo(
    metric,
    latent: np.ndarray,
    labels: np.ndarray,
    out_dir: str,
    *,
    n_threads: Optional[int] = None,
    print_table: Callable = print_table,
) -> int:
    """Prints the class means table (with ``print_table``) and writes demo_statistics.png (when
    matplotlib is installed).

    Returns the number of Fréchet means that did not converge.
    """
    means = class_means(metric, latent, labels, n_threads)
    log_mag = lambda z: 0.5 * metric.log_det(np.atleast_2d(z))  # noqa: E731  low on the data
    rows = []
    for c, euclid, res in means:
        members = latent[labels == c]
        rows.append(
            (
                c,
                len(members),
                f"{float(np.median(log_mag(members))):.3f}",
                f"{float(log_mag(euclid)[0]):.3f}",
                f"{float(log_mag(res.mean)[0]):.3f}",
                f"{np.linalg.norm(res.mean - euclid):.4f}",
                "yes" if res.converged else "NO: " + res.status,
            )
        )
    print(
        "class means: log sqrt(det G) at the class's digits (median), at the Euclidean and the Fréchet mean; "
        "their distance"
    )
    print_table(rows, ("class", "digits", "median", "Euclidean mean", "Frechet mean", "distance", "converged"))
    samples = sample_riemannian(metric, _DEMO_SAMPLES, density="inverse_volume", seed=0, n_threads=n_threads)
    print(
        f"geometry-aware sampler: {len(samples.samples)} samples, acceptance {samples.acceptance_rate:.2f}, "
        f"effective sample size {samples.ess.min():.0f}"
    )
    path = os.path.join(out_dir, "demo_statistics.png")
    try:
        statistics_figure(metric, latent, labels, means=means, samples=samples.samples, path=path)
        print(f"wrote {path}")
    except ImportError:
        pass  # matplotlib is an optional extra (the demo says so once)
    return sum(not res.converged for _, _, res in means)
