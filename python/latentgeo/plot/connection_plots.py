"""Pictures of the Levi-Civita connection of a 2-d latent space: Gaussian curvature maps and
fans of geodesics shot by the exponential map."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from .._validation import as_float_array, check_int, check_positive
from .common import axes_or_new, pyplot, rectangle_grid

__all__ = ["curvature_grid", "plot_curvature", "plot_exp_fan"]


def curvature_grid(metric, bounds, resolution: Union[int, Tuple[int, int]] = 100, n_threads: Optional[int] = None):
    """Gaussian curvature K on a regular grid (:func:`latentgeo.gaussian_curvature`, one batch).

    Returns
    -------
    xs : ndarray (nx,), ys : ndarray (ny,), values : ndarray (ny, nx)
        ``values[i, j]`` = K at (xs[j], ys[i]).

    Raises
    ------
    ValueError
        A grid point lies outside the metric's domain (G singular or not finite there).
    """
    from ..connection import gaussian_curvature

    xs, ys, grid = rectangle_grid(metric, bounds, resolution, "curvature")
    return xs, ys, gaussian_curvature(metric, grid, n_threads=n_threads).reshape(len(ys), len(xs))


def plot_curvature(
    metric,
    bounds,
    resolution: Union[int, Tuple[int, int]] = 100,
    ax=None,
    *,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    n_threads: Optional[int] = None,
    **imshow_kwargs,
):
    """Heatmap of the Gaussian curvature K(z) of a 2-d latent space over a rectangle.

    The colour scale is symmetric about K = 0 (blue: negative, hyperbolic-like; red: positive,
    sphere-like).

    Parameters
    ----------
    metric : metric object with ``dim == 2``
    bounds : (xmin, xmax, ymin, ymax)
    resolution : int or (nx, ny)
        Grid points per axis (≥ 2).
    ax : matplotlib Axes, optional
    cmap : str
    colorbar : bool
        Add a colorbar labelled "Gaussian curvature K".
    n_threads : int, optional
    **imshow_kwargs
        Passed to ``ax.imshow``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    xs, ys, values = curvature_grid(metric, bounds, resolution, n_threads)
    ax = axes_or_new(ax)
    limit = max(float(np.abs(values).max()), np.finfo(float).tiny)
    image = ax.imshow(
        values,
        origin="lower",
        extent=(xs[0], xs[-1], ys[0], ys[-1]),
        cmap=cmap,
        **{"aspect": "auto", "interpolation": "nearest", "vmin": -limit, "vmax": limit, **imshow_kwargs},
    )
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="Gaussian curvature K")
    return ax


def plot_exp_fan(
    metric,
    z,
    n_directions: int = 24,
    length: float = 1.0,
    ax=None,
    *,
    n_samples: int = 100,
    n_threads: Optional[int] = None,
    **plot_kwargs,
):
    """Geodesics shot from one point in ``n_directions`` directions (the exponential map's "fan").

    Direction i is u = (cos θᵢ, sin θᵢ), θᵢ = 2πi/n, scaled to the Riemannian length ``length``
    (v = length · u/‖u‖_G), so the curve ends are the geodesic circle of radius ``length`` where the
    exponential map is injective. Trajectories that left the metric's domain are drawn up to where
    they stopped, dashed.

    Parameters
    ----------
    metric : metric object with ``dim == 2``
    z : array_like, shape (2,)
        The common start point.
    n_directions : int
    length : float
        Riemannian length of every geodesic.
    ax : matplotlib Axes, optional
    n_samples : int
        Points per curve.
    n_threads : int, optional
    **plot_kwargs
        Passed to ``ax.plot`` for the curves.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ..connection import exp_map

    if getattr(metric, "dim", None) != 2:
        raise ValueError(f"metric: fan plots need a 2-d latent space, got dim={getattr(metric, 'dim', None)}")
    start = as_float_array(z, "z", ndim=1)
    if start.shape != (2,):
        raise ValueError(f"z: expected one point of shape (2,), got {start.shape}")
    n = check_int(n_directions, "n_directions", 1)
    radius = check_positive(length, "length")
    samples = check_int(n_samples, "n_samples", 2)
    angles = 2.0 * np.pi * np.arange(n) / n
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    norms = np.sqrt(np.asarray(metric.quadratic_form(np.tile(start, (n, 1)), u), dtype=np.float64))
    fan = exp_map(metric, start, radius * u / norms[:, None], t=np.linspace(0.0, 1.0, samples), n_threads=n_threads)
    ax = axes_or_new(ax)
    colors = pyplot().get_cmap("twilight")(angles / (2.0 * np.pi))
    for i in range(n):
        style = {"linewidth": 1.5, "color": colors[i], **plot_kwargs}
        if not fan.converged[i]:
            style["linestyle"] = "--"
        ax.plot(fan.curves[i, :, 0], fan.curves[i, :, 1], **style)
    ax.plot([start[0]], [start[1]], "o", color="black", markersize=4)
    return ax
