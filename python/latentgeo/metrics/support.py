"""Checks and read-only state shared by the metrics: outputs of user functions, SPD tests,
central differences, decoded-polyline energies, frozen parameters."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np

from .._validation import as_float_array
from ..errors import MetricDomainError


def unsingle(arr: np.ndarray, single: bool) -> np.ndarray:
    return arr[0] if single else arr


def describe_point(z: np.ndarray, i: int) -> str:
    return f"point {i}, z = ({', '.join(f'{x:.6g}' for x in z[i])})"


def real_output(out, name: str) -> np.ndarray:
    """What a user function returned, as a float64 array; complex output is a ValueError."""
    arr = np.asarray(out)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: returned complex values (dtype {arr.dtype}); a metric is real")
    return np.asarray(arr, dtype=np.float64)


def check_finite_rows(values: np.ndarray, z: np.ndarray, name: str, reason: str = "returned NaN or Inf") -> np.ndarray:
    """values (N, ...) computed at the points z (N, d); MetricDomainError naming the first non-finite one."""
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise MetricDomainError(f"{name}: {reason} at {describe_point(z, i)}", non_finite=True)
    return values


def check_spd(g: np.ndarray, z: np.ndarray, name: str) -> np.ndarray:
    """G (N, d, d) at z (N, d), finite with a positive definite symmetric part (a Cholesky per point).

    Raises MetricDomainError naming the first point where it is not.
    """
    check_finite_rows(g, z, name)
    sym = 0.5 * (g + np.swapaxes(g, 1, 2))
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        i = int(np.argmin(np.linalg.eigvalsh(sym)[:, 0]))  # the failure path only: find the point
        raise MetricDomainError(f"{name}: not positive definite at {describe_point(z, i)}") from None
    return g


def check_spd_stack(M, n_centroids: int, dim: int, name: str = "M") -> np.ndarray:
    """Validate a stack of SPD matrices; symmetrise away rounding (e.g. float32 L Lᵀ)."""
    m = as_float_array(M, name, ndim=3)
    if m.shape != (n_centroids, dim, dim):
        raise ValueError(f"{name}: expected shape {(n_centroids, dim, dim)}, got {m.shape}")
    asym = np.abs(m - m.transpose(0, 2, 1)).max()
    if asym > 1e-6 * max(np.abs(m).max(), np.finfo(float).tiny):
        raise ValueError(f"{name}: must be symmetric (max asymmetry {asym:.3g})")
    m = 0.5 * (m + m.transpose(0, 2, 1))
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name}: must be symmetric positive definite") from None
    return m


def central_differences(fn: Callable, z: np.ndarray, step: float) -> np.ndarray:
    """∂fn/∂z_k by central differences: fn maps (M, d) points to (M, ...); returns (N, ..., d).

    All 2d shifted copies of the N points go to ``fn`` in one batched call.
    """
    n, d = z.shape
    steps = np.eye(d) * step
    shifted = np.concatenate([z[None] + steps[:, None, :], z[None] - steps[:, None, :]]).reshape(-1, d)
    out = fn(shifted)
    out = out.reshape((2, d, n) + out.shape[1:])
    return np.moveaxis((out[0] - out[1]) / (2 * step), 0, -1)


def polyline_energies(e: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Energies n_p Σᵢ ‖e_{i+1} − e_i‖² of P polylines stacked in the rows of e (counts[p] points
    and n_p = counts[p] − 1 segments for curve p), and their gradients dE/de (N, D)."""
    segments = np.repeat(counts - 1, counts)[:-1].astype(float)  # per chord: its curve's segments
    segments[np.cumsum(counts)[:-1] - 1] = 0.0  # no chord from one curve's last point to the next's first
    chords = np.diff(e, axis=0)
    curve = np.repeat(np.arange(len(counts)), counts)[:-1]
    energies = np.bincount(curve, segments * np.einsum("ij,ij->i", chords, chords), minlength=len(counts))
    pull = 2.0 * segments[:, None] * chords
    grad = np.zeros_like(e)
    grad[1:] += pull
    grad[:-1] -= pull
    return energies, grad


def frozen(value):
    """A read-only private copy of an array (lists and tuples of arrays are copied item by item).

    A metric's parameters never change after construction: the kernel built from them, ``repr``,
    pickling and ``save`` all see the same values, whatever the caller does to its own arrays.
    """
    if isinstance(value, np.ndarray):
        out = np.array(value, copy=True)
        out.flags.writeable = False
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(frozen(v) for v in value)
    return value


class ReadOnly:
    """A read-only attribute stored as ``_<name>`` (the parameters of the latentgeo metrics)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value) -> None:
        raise AttributeError(
            f"{self.name}: the parameters of {type(obj).__name__} are read-only; build a new metric instead"
        )


class FrozenState:
    """Pickling and copying for metrics with read-only parameters: arrays come back read-only
    and :meth:`_rebuild` recreates what is derived from the parameters (e.g. a C++ kernel)."""

    _derived: tuple = ()  # attributes rebuilt by _rebuild, never pickled

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._derived}

    def __setstate__(self, state):
        self.__dict__.update({k: frozen(v) for k, v in state.items()})
        self._rebuild()

    def _rebuild(self) -> None:
        pass


def callable_name(fn) -> str:
    return "None" if fn is None else getattr(fn, "__qualname__", type(fn).__name__)
