"""The statistics part of ``latentgeo demo``: class Fréchet means against Euclidean means, and
samples of the geometry-aware sampler, on the shipped digits model (demo_statistics.png)."""

from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np

from ..statistics.mean import frechet_mean
from ..statistics.volume_sampling import sample_riemannian

__all__ = ["class_means", "statistics_demo"]

_DEMO_MEAN_TOL = 1e-6  # a picture needs no more
_DEMO_SAMPLES = 600


def class_means(metric, latent: np.ndarray, labels: np.ndarray, n_threads=None) -> List[Tuple[int, np.ndarray, object]]:
    """(class, Euclidean mean, FrechetMeanResult) per class."""
    out = []
    for c in np.unique(labels):
        members = latent[labels == c]
        out.append(
            (int(c), members.mean(axis=0), frechet_mean(metric, members, tol=_DEMO_MEAN_TOL, n_threads=n_threads))
        )
    return out


def statistics_demo(metric, latent: np.ndarray, labels: np.ndarray, out_dir: str, n_threads=None, print_table=None):
    """Prints the class means table and writes demo_statistics.png (when matplotlib is installed).

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
        _figure(metric, latent, labels, means, samples.samples, path)
        print(f"wrote {path}")
    except ImportError:
        pass  # matplotlib is an optional extra (the demo says so once)
    return sum(not res.converged for _, _, res in means)


def _figure(metric, latent, labels, means, samples, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    from ..plot import plot_latent, plot_magnification

    lo, hi = latent.min(axis=0), latent.max(axis=0)
    pad = 0.15 * (hi - lo)
    bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 7), dpi=100)
    outline = [effects.withStroke(linewidth=3, foreground="black")]
    plot_magnification(metric, bounds, ax=left, colorbar=False)
    plot_latent(latent, labels, ax=left, s=3, alpha=0.5)
    for c, euclid, res in means:
        left.scatter(*euclid, marker="o", s=70, facecolors="none", edgecolors="white", linewidths=2)
        left.scatter(*res.mean, marker="*", s=220, color="white", edgecolors="black", linewidths=1)
        left.annotate(
            str(c),
            res.mean,
            xytext=(6, 6),
            textcoords="offset points",
            color="white",
            fontsize=11,
            fontweight="bold",
            path_effects=outline,
        )
    left.set_title("class Fréchet means (stars) vs Euclidean means (circles)")
    plot_magnification(metric, bounds, ax=right)
    right.scatter(samples[:, 0], samples[:, 1], s=4, color="white", alpha=0.8)
    right.set_xlim(bounds[0], bounds[1])
    right.set_ylim(bounds[2], bounds[3])
    right.set_title(r"geometry-aware sampler: HMC samples of $\propto\sqrt{\det G^{-1}}$")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
