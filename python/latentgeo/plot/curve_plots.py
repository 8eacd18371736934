"""Curves over a latent space, and decoded images along them at equal arc length."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .._validation import as_float_array
from ..curves import equal_arc_length_positions
from .common import axes_or_new, pyplot

__all__ = ["plot_curves", "points_at_equal_arc_length", "plot_decoded_curves"]


def _curve_points(curve, n_samples: int) -> list:
    """(N, 2) arrays of one curve-like object: an array, an object with a callable ``curve``
    (a geodesic result), with ``nodes``, or a batch of them."""
    if callable(getattr(curve, "curve", None)):
        return [np.asarray(curve.curve(np.linspace(0.0, 1.0, n_samples)), dtype=np.float64)]
    if hasattr(curve, "nodes"):
        nodes = np.asarray(curve.nodes, dtype=np.float64)
        if nodes.ndim == 3 and hasattr(curve, "__getitem__") and hasattr(curve, "__len__"):
            return [p for i in range(len(curve)) for p in _curve_points(curve[i], n_samples)]
        return [nodes]
    arr = as_float_array(curve, "curves")
    if arr.ndim == 3:
        return list(arr)
    return [arr]


def plot_curves(
    curves,
    ax=None,
    straight: bool = True,
    *,
    n_samples: int = 200,
    colors: Optional[Sequence] = None,
    straight_kwargs: Optional[dict] = None,
    **plot_kwargs,
):
    """Overlay curves (e.g. geodesics) and, optionally, the straight lines between their ends.

    Parameters
    ----------
    curves : array_like (N, 2) or (B, N, 2), a list of them, or geodesic results
        Results with a callable ``curve`` are sampled at ``n_samples`` times; objects with
        ``nodes`` (a GeodesicResult or a GeodesicBatch) are drawn through their nodes.
    ax : matplotlib Axes, optional
    straight : bool
        Also draw the straight segment from each curve's first to its last point (dashed, same colour).
    colors : sequence of colours, optional
        One per curve (default: the Axes' colour cycle).
    straight_kwargs : dict, optional
        Passed to ``ax.plot`` for the straight segments.
    **plot_kwargs
        Passed to ``ax.plot`` for the curves.

    Returns
    -------
    matplotlib.axes.Axes
    """
    items = curves if isinstance(curves, (list, tuple)) else [curves]
    paths = [p for item in items for p in _curve_points(item, n_samples)]
    for i, p in enumerate(paths):
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
            raise ValueError(f"curves: curve {i} must have shape (N >= 2, 2), got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError(f"curves: curve {i} contains NaN or Inf")
    if colors is not None and len(colors) != len(paths):
        raise ValueError(f"colors: expected {len(paths)} colours (one per curve), got {len(colors)}")
    ax = axes_or_new(ax)
    for i, p in enumerate(paths):
        style = {"linewidth": 2.0, **plot_kwargs}
        if colors is not None:
            style["color"] = colors[i]
        (line,) = ax.plot(p[:, 0], p[:, 1], **style)
        if straight:
            seg = np.stack([p[0], p[-1]])
            ax.plot(
                seg[:, 0],
                seg[:, 1],
                **{
                    "linestyle": "--",
                    "linewidth": 1.0,
                    "alpha": 0.8,
                    "color": line.get_color(),
                    **(straight_kwargs or {}),
                },
            )
    return ax


def points_at_equal_arc_length(metric, curve, n_points: int, n_grid: int = 1024) -> np.ndarray:
    """Points of a curve equally spaced in Riemannian arc length (the ends included).

    Parameters
    ----------
    metric : metric protocol object
    curve : callable or array_like (N, d)
        ``curve(t)`` for t (M,) in [0, 1] returns points (M, d) (e.g. ``GeodesicResult.curve``),
        or the nodes of a polyline (uniform times).
    n_points : int
        Number of points (≥ 2).
    n_grid : int
        Segments of the polyline on which the arc length is accumulated (midpoint rule).

    Returns
    -------
    ndarray, shape (n_points, d)
    """
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points: expected an integer >= 2, got {n_points!r}")
    t = np.linspace(0.0, 1.0, n_grid + 1)
    if callable(curve):
        pts = as_float_array(curve(t), "curve")
    else:
        nodes = as_float_array(curve, "curve", ndim=2)
        u = np.linspace(0.0, 1.0, len(nodes))
        pts = np.stack([np.interp(t, u, nodes[:, k]) for k in range(nodes.shape[1])], axis=1)
    delta = np.diff(pts, axis=0)
    q = np.asarray(metric.quadratic_form(0.5 * (pts[1:] + pts[:-1]), delta), dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.sqrt(np.maximum(q, 0.0)))])
    if arc[-1] <= 0:  # a constant curve
        return np.repeat(pts[:1], n_points, axis=0)
    j, w = equal_arc_length_positions(arc, n_points)
    return (1 - w[:, None]) * pts[j] + w[:, None] * pts[j + 1]


def plot_decoded_curves(
    decode,
    metric,
    curves,
    n_images: int = 10,
    *,
    image_shape: Tuple[int, int] = (8, 8),
    row_labels: Optional[Sequence[str]] = None,
    fig=None,
    cmap: str = "gray_r",
):
    """Decoded images along curves, one row per curve, equally spaced in arc length.

    Parameters
    ----------
    decode : callable
        ``decode(z)`` with z (n, d) returns (n, prod(image_shape)) pixel values (e.g. a
        decoder's ``decode``).
    metric : metric protocol object
        Measures the arc length (e.g. the metric the geodesics were solved in).
    curves : list of callables or (N, d) arrays
        As in :func:`points_at_equal_arc_length`.
    n_images : int
        Images per row.
    image_shape : (int, int)
    row_labels : list of str, optional
        One title per row.
    fig : matplotlib Figure, optional
        Drawn into (a new figure when None).

    Returns
    -------
    fig : matplotlib Figure
    axes : ndarray of Axes, shape (len(curves), n_images)
    """
    if row_labels is not None and len(row_labels) != len(curves):
        raise ValueError(f"row_labels: expected {len(curves)} labels (one per curve), got {len(row_labels)}")
    plt = pyplot()
    fig = fig if fig is not None else plt.figure(figsize=(1.0 * n_images, 1.25 * len(curves)))
    axes = np.array(fig.subplots(len(curves), n_images, squeeze=False))
    for row, curve in enumerate(curves):
        images = np.asarray(decode(points_at_equal_arc_length(metric, curve, n_images)), dtype=np.float64)
        for col, image in enumerate(images.reshape(n_images, *image_shape)):
            ax = axes[row, col]
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=max(1.0, float(images.max())), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[row, 0].set_title(row_labels[row], loc="left", fontsize=9)
    return fig, axes
