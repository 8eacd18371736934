"""Maps of a 2-d latent space: the magnification factor log √det G and the latent codes."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

import numpy as np

from .._validation import as_float_array
from .common import axes_or_new, pyplot, rectangle_grid

__all__ = ["magnification_grid", "plot_magnification", "plot_latent"]


def magnification_grid(metric, bounds, resolution: Union[int, Tuple[int, int]] = 200, n_threads: Optional[int] = None):
    """log √det G on a regular grid, in one batched call of ``metric.log_det``.

    Returns
    -------
    xs : ndarray (nx,), ys : ndarray (ny,), values : ndarray (ny, nx)
        ``values[i, j]`` = ½ log det G at (xs[j], ys[i]).
    """
    xs, ys, grid = rectangle_grid(metric, bounds, resolution, "magnification")
    values = 0.5 * np.asarray(metric.log_det(grid, n_threads=n_threads), dtype=np.float64)
    return xs, ys, values.reshape(len(ys), len(xs))


def plot_magnification(
    metric,
    bounds,
    resolution: Union[int, Tuple[int, int]] = 200,
    ax=None,
    *,
    cmap: str = "viridis",
    colorbar: bool = True,
    n_threads: Optional[int] = None,
    **imshow_kwargs,
):
    """Heatmap of the log magnification factor log √det G(z) over a rectangle.

    Parameters
    ----------
    metric : metric object with ``dim == 2`` and ``log_det(z)``
        Evaluated once on all grid points (the C++ core for RHVAE and pullback metrics).
    bounds : (xmin, xmax, ymin, ymax)
        The rectangle.
    resolution : int or (nx, ny)
        Grid points per axis (≥ 2).
    ax : matplotlib Axes, optional
    cmap : str
    colorbar : bool
        Add a colorbar labelled "log √det G".
    n_threads : int, optional
        Threads of the C++ core.
    **imshow_kwargs
        Passed to ``ax.imshow``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    xs, ys, values = magnification_grid(metric, bounds, resolution, n_threads)
    ax = axes_or_new(ax)
    # -inf where G is singular (e.g. dead ReLUs of a pullback): leave those pixels blank.
    image = ax.imshow(
        np.ma.masked_invalid(values),
        origin="lower",
        extent=(xs[0], xs[-1], ys[0], ys[-1]),
        cmap=cmap,
        **{"aspect": "auto", "interpolation": "nearest", **imshow_kwargs},
    )
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="log √det G")
    return ax


def plot_latent(
    points,
    labels: Optional[Iterable] = None,
    ax=None,
    *,
    cmap: str = "tab10",
    s: float = 6.0,
    legend: bool = True,
    **scatter_kwargs,
):
    """Scatter latent points, one colour per label.

    Parameters
    ----------
    points : array_like, shape (M, 2)
    labels : array_like, shape (M,), optional
        One scatter (and legend entry) per distinct label.
    ax : matplotlib Axes, optional
    cmap : str
        Colormap of the labels.
    s : float
        Marker size.
    legend : bool
        Add a legend when labels are given.
    **scatter_kwargs
        Passed to ``ax.scatter``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    pts = as_float_array(points, "points", ndim=2)
    if pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (M, 2), got {pts.shape}")
    ax = axes_or_new(ax)
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, **scatter_kwargs)
        return ax
    lab = np.asarray(labels)
    if lab.shape != (len(pts),):
        raise ValueError(f"labels: expected shape ({len(pts)},) like points, got {lab.shape}")
    classes = np.unique(lab)
    colormap = pyplot().get_cmap(cmap)
    for i, c in enumerate(classes):
        mask = lab == c
        color = colormap(i % colormap.N if colormap.N < 256 else i / max(len(classes) - 1, 1))
        ax.scatter(pts[mask, 0], pts[mask, 1], s=s, color=color, label=str(c), **scatter_kwargs)
    if legend:
        ax.legend(title="label", fontsize="small", markerscale=2.0, loc="best")
    return ax
