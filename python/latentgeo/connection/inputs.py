"""Checks of the connection functions' arguments shared by several of them."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .._validation import as_points

__all__ = ["point_pairs", "reject_options"]


def point_pairs(a, b, names: Sequence[str], dim: int) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Two point arrays of one shape (N, d) and whether both were single points; a single point
    (d,) broadcasts to the other's N."""
    x, single_x = as_points(a, names[0], dim)
    y, single_y = as_points(b, names[1], dim)
    if single_x and not single_y:
        x = np.repeat(x, len(y), axis=0)
    elif single_y and not single_x:
        y = np.repeat(y, len(x), axis=0)
    if x.shape != y.shape:
        raise ValueError(f"{names[1]}: expected shape {x.shape} like {names[0]}, got {y.shape}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y), single_x and single_y


def reject_options(options: dict) -> None:
    """Raises ValueError naming unknown keyword options (the ``**options`` of a connection function)."""
    if options:
        raise ValueError(f"options: unknown option(s) {sorted(options)}")
