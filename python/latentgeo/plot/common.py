"""What every latentgeo plot shares: pyplot (imported on demand), the Axes to draw on, and the
checked rectangle grids of the map plots."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .._validation import as_float_array

__all__ = ["pyplot", "axes_or_new", "check_bounds", "check_resolution", "rectangle_grid", "MAX_RESOLUTION"]

MAX_RESOLUTION = 8192  # per axis: 67 million grid points, more only exhausts memory


def pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("latentgeo.plot needs matplotlib: pip install latentgeo[plot]") from exc
    return plt


def axes_or_new(ax):
    """``ax``, or the Axes of a new figure when it is None."""
    if ax is not None:
        return ax
    _, ax = pyplot().subplots()
    return ax


def check_bounds(bounds) -> Tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) as floats, with xmin < xmax and ymin < ymax."""
    b = as_float_array(bounds, "bounds", ndim=1)
    if b.shape != (4,):
        raise ValueError(f"bounds: expected (xmin, xmax, ymin, ymax), got {b.shape[0]} values")
    if not (b[0] < b[1] and b[2] < b[3]):
        raise ValueError(f"bounds: need xmin < xmax and ymin < ymax, got {tuple(b)}")
    return tuple(float(x) for x in b)


def check_resolution(resolution) -> Tuple[int, int]:
    """(nx, ny) from an integer or a pair of integers in [2, MAX_RESOLUTION]."""
    res = (resolution, resolution) if np.ndim(resolution) == 0 else tuple(resolution)
    ok = len(res) == 2 and all(
        isinstance(r, (int, np.integer)) and not isinstance(r, bool) and 2 <= r <= MAX_RESOLUTION for r in res
    )
    if not ok:
        raise ValueError(
            f"resolution: expected an integer >= 2 (at most {MAX_RESOLUTION}) or a pair (nx, ny) of "
            f"them, got {resolution!r}"
        )
    return int(res[0]), int(res[1])


def rectangle_grid(metric, bounds, resolution, what: str):
    """(xs, ys, grid points (ny * nx, 2)) of a rectangle, for a 2-d metric."""
    if getattr(metric, "dim", None) != 2:
        raise ValueError(f"metric: {what} plots need a 2-d latent space, got dim={getattr(metric, 'dim', None)}")
    xmin, xmax, ymin, ymax = check_bounds(bounds)
    nx, ny = check_resolution(resolution)
    xs, ys = np.linspace(xmin, xmax, nx), np.linspace(ymin, ymax, ny)
    return xs, ys, np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
