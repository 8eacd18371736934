"""Pictures of 2-d latent spaces (matplotlib, optional: ``pip install latentgeo[plot]``).

Every function draws on ``ax`` (a new figure when None) and returns the Axes (its Figure is
``ax.figure``); none calls ``show()``.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from ._validation import as_float_array, check_int, check_positive

__all__ = [
    "plot_magnification",
    "plot_curves",
    "plot_latent",
    "magnification_grid",
    "points_at_equal_arc_length",
    "plot_decoded_curves",
    "curvature_grid",
    "plot_curvature",
    "plot_exp_fan",
]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("latentgeo.plot needs matplotlib: pip install latentgeo[plot]") from exc
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots()
    return ax


def _check_bounds(bounds) -> Tuple[float, float, float, float]:
    b = as_float_array(bounds, "bounds", ndim=1)
    if b.shape != (4,):
        raise ValueError(f"bounds: expected (xmin, xmax, ymin, ymax), got {b.shape[0]} values")
    if not (b[0] < b[1] and b[2] < b[3]):
        raise ValueError(f"bounds: need xmin < xmax and ymin < ymax, got {tuple(b)}")
    return tuple(float(x) for x in b)


_MAX_RESOLUTION = 8192  # per axis: 67 million grid points, more only exhausts memory


def _check_resolution(resolution) -> Tuple[int, int]:
    res = (resolution, resolution) if np.ndim(resolution) == 0 else tuple(resolution)
    ok = len(res) == 2 and all(
        isinstance(r, (int, np.integer)) and not isinstance(r, bool) and 2 <= r <= _MAX_RESOLUTION for r in res
    )
    if not ok:
        raise ValueError(
            f"resolution: expected an integer >= 2 (at most {_MAX_RESOLUTION}) or a pair (nx, ny) of "
            f"them, got {resolution!r}"
        )
    return int(res[0]), int(res[1])


def _grid(metric, bounds, resolution, what: str):
    """(xs, ys, grid points (ny * nx, 2)) of a rectangle, for a 2-d metric."""
    if getattr(metric, "dim", None) != 2:
        raise ValueError(f"metric: {what} plots need a 2-d latent space, got dim={getattr(metric, 'dim', None)}")
    xmin, xmax, ymin, ymax = _check_bounds(bounds)
    nx, ny = _check_resolution(resolution)
    xs, ys = np.linspace(xmin, xmax, nx), np.linspace(ymin, ymax, ny)
    return xs, ys, np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)


def magnification_grid(metric, bounds, resolution: Union[int, Tuple[int, int]] = 200, n_threads: Optional[int] = None):
    """log √det G on a regular grid, in one batched call of ``metric.log_det``.

    Returns
    -------
    xs : ndarray (nx,), ys : ndarray (ny,), values : ndarray (ny, nx)
        ``values[i, j]`` = ½ log det G at (xs[j], ys[i]).
    """
    xs, ys, grid = _grid(metric, bounds, resolution, "magnification")
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
    ax = _axes(ax)
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
    ax = _axes(ax)
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
    ax = _axes(ax)
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, **scatter_kwargs)
        return ax
    lab = np.asarray(labels)
    if lab.shape != (len(pts),):
        raise ValueError(f"labels: expected shape ({len(pts)},) like points, got {lab.shape}")
    classes = np.unique(lab)
    colormap = _pyplot().get_cmap(cmap)
    for i, c in enumerate(classes):
        mask = lab == c
        color = colormap(i % colormap.N if colormap.N < 256 else i / max(len(classes) - 1, 1))
        ax.scatter(pts[mask, 0], pts[mask, 1], s=s, color=color, label=str(c), **scatter_kwargs)
    if legend:
        ax.legend(title="label", fontsize="small", markerscale=2.0, loc="best")
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
    targets = np.linspace(0.0, arc[-1], n_points)
    return np.stack([np.interp(targets, arc, pts[:, k]) for k in range(pts.shape[1])], axis=1)


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
    plt = _pyplot()
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
    from .connection.maps import gaussian_curvature

    xs, ys, grid = _grid(metric, bounds, resolution, "curvature")
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
    ax = _axes(ax)
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
    from .connection.maps import exp_map

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
    ax = _axes(ax)
    colors = _pyplot().get_cmap("twilight")(angles / (2.0 * np.pi))
    for i in range(n):
        style = {"linewidth": 1.5, "color": colors[i], **plot_kwargs}
        if not fan.converged[i]:
            style["linestyle"] = "--"
        ax.plot(fan.curves[i, :, 0], fan.curves[i, :, 1], **style)
    ax.plot([start[0]], [start[1]], "o", color="black", markersize=4)
    return ax
