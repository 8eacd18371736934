"""Argument checks shared by the public API. Every error names the argument."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

__all__ = [
    "as_float_array",
    "as_points",
    "as_point",
    "check_times",
    "check_threads",
    "check_positive",
    "check_choice",
    "check_metric",
    "check_int",
    "INT_MAX",
    "MAX_SAMPLES",
]

INT_MAX = 2**31 - 1  # integer options reach the C++ core as a C int
MAX_SAMPLES = 2**20 + 1  # nodes or sample times of one curve: more would only exhaust memory


def as_float_array(value, name: str, ndim: Optional[int] = None, allow_empty: bool = False) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array with finite entries."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # e.g. ragged lists
        raise ValueError(f"{name}: cannot be converted to a float64 array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: complex values are not supported")
    arr = np.asarray(arr, dtype=np.float64, order="C")  # (ascontiguousarray would make a scalar 1-d)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name}: empty array (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def as_points(value, name: str, dim: Optional[int] = None, allow_single: bool = True):
    """Return ``(points (N, d), was_single_point)``; a 1-d input of length d is one point.

    With ``allow_single=False`` only an (N, d) array is accepted.
    """
    arr = as_float_array(value, name, ndim=None if allow_single else 2)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape (N, d) or (d,), got {arr.shape}")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"{name}: expected dimension d = {dim}, got shape {arr.shape}")  # the shape as passed
    single = arr.ndim == 1
    return (arr[None, :] if single else arr), single


def as_point(value, name: str, dim: int) -> np.ndarray:
    """One point of shape (d,) as a (1, d) array; errors report the shape as passed."""
    arr = as_float_array(value, name)
    if arr.shape != (dim,):
        raise ValueError(f"{name}: expected a single point of shape ({dim},), got shape {arr.shape}")
    return arr[None, :]


def check_times(t, name: str = "t", n: Optional[int] = None, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """Validate a strictly increasing 1-d array of times (length ``n`` if given) within [lo, hi]."""
    times = as_float_array(t, name, ndim=1)
    if n is not None and len(times) != n:
        raise ValueError(f"{name}: expected {n} times (one per point), got {len(times)}")
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise ValueError(f"{name}: times must be strictly increasing")
    if times[0] < lo or times[-1] > hi:
        raise ValueError(f"{name}: times must lie in [{lo}, {hi}]")
    return times


def check_threads(n_threads) -> int:
    """Translate ``n_threads`` (None: all cores) into the core's convention (0: all cores).

    Values above the machine's core count are clamped to it (more threads than cores only
    oversubscribe); results do not depend on the thread count.
    """
    if n_threads is None:
        return 0
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or not 1 <= n_threads <= INT_MAX:
        raise ValueError(f"n_threads: expected None or an integer in [1, {INT_MAX}], got {n_threads!r}")
    return min(int(n_threads), os.cpu_count() or 1)


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0 with ``allow_zero``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    ok = np.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be finite and {bound}, got {value!r}")
    return x


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value


def check_metric(metric, name: str = "metric") -> int:
    """Return ``metric.dim`` if ``metric`` follows the metric protocol (dim, quadratic_form)."""
    if not (hasattr(metric, "dim") and callable(getattr(metric, "quadratic_form", None))):
        raise ValueError(f"{name}: expected an object of the metric protocol (dim, quadratic_form, metric)")
    dim = metric.dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"{name}: dim must be a positive integer, got {dim!r}")
    return int(dim)


def check_int(value, name: str, lo: int, hi: int = INT_MAX) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in [``lo``, ``hi``]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        wanted = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ValueError(f"{name}: expected {wanted} (at most {hi}), got {value!r}")
    return int(value)


def check_counts(counts, n_rows: int, name: str = "counts") -> np.ndarray:
    """Points per curve of curves stacked in n_rows rows: integers >= 2 summing to n_rows."""
    sizes = np.asarray(counts)
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or (sizes < 2).any() or sizes.sum() != n_rows:
        raise ValueError(f"{name}: expected integers >= 2 (points per curve) summing to the {n_rows} rows of z")
    return sizes.astype(np.int64)
