"""The pictures of ``latentgeo demo`` (matplotlib, optional): demo.png, demo_decoded.png and
demo_statistics.png. Each function raises ImportError when matplotlib is missing."""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["padded_bounds", "geodesics_figure", "decoded_figure", "statistics_figure"]


def _agg_pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def padded_bounds(latent: np.ndarray, pad: float) -> Tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of the codes' box widened by the fraction ``pad`` on each side."""
    lo, hi = latent.min(axis=0), latent.max(axis=0)
    margin = pad * (hi - lo)
    return (lo[0] - margin[0], hi[0] + margin[0], lo[1] - margin[1], hi[1] + margin[1])


def geodesics_figure(metric, latent, labels, *, batch, pairs, path: str) -> None:
    """demo.png: the chosen geodesics (white) and straight lines over log √det G and the codes."""
    import matplotlib.patheffects as effects

    from ..plot import plot_curves, plot_latent, plot_magnification

    plt = _agg_pyplot()
    fig, ax = plt.subplots(figsize=(8, 7), dpi=110)
    plot_magnification(metric, padded_bounds(latent, 0.15), ax=ax)
    plot_latent(latent, labels, ax=ax, s=4)
    outline = [effects.Stroke(linewidth=4.5, foreground="black"), effects.Normal()]
    plot_curves(
        [batch[i].curve(np.linspace(0, 1, 200)) for i in range(len(batch))],
        ax=ax,
        straight=True,
        colors=["white"] * len(batch),
        linewidth=2.2,
        path_effects=outline,
        straight_kwargs={"linewidth": 1.4, "alpha": 1.0},
    )
    for i, (a, b) in enumerate(pairs):
        for label, point in ((a, batch[i].nodes[0]), (b, batch[i].nodes[-1])):
            ax.annotate(
                str(label),
                point,
                color="white",
                fontsize=11,
                fontweight="bold",
                ha="center",
                va="center",
                path_effects=[effects.withStroke(linewidth=3, foreground="black")],
            )
    ax.set_title("geodesics (white) vs straight lines (dashed) between digit classes")
    fig.savefig(path)
    plt.close(fig)


def decoded_figure(metric, decoder, latent, labels, *, result, name, path: str, n_images: int = 10) -> None:
    """demo_decoded.png. Left: the pair's geodesic and straight line over log √det G; right:
    decoded digits along both, equally spaced in arc length."""
    from ..plot import plot_curves, plot_decoded_curves, plot_latent, plot_magnification, points_at_equal_arc_length

    plt = _agg_pyplot()
    start, end = result.nodes[0], result.nodes[-1]
    line = lambda t: start + np.asarray(t)[:, None] * (end - start)  # noqa: E731
    curves = [result.curve, line]
    fig = plt.figure(figsize=(14, 3.9), dpi=110)
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 2.3])
    ax = left.subplots()
    plot_magnification(metric, padded_bounds(latent, 0.1), resolution=150, ax=ax, colorbar=False)
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
    fig.savefig(path)
    plt.close(fig)


def statistics_figure(metric, latent, labels, *, means, samples, path: str) -> None:
    """demo_statistics.png. Left: class Fréchet means against Euclidean means; right: samples of
    the geometry-aware sampler."""
    import matplotlib.patheffects as effects

    from ..plot import plot_latent, plot_magnification

    plt = _agg_pyplot()
    bounds = padded_bounds(latent, 0.15)
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
