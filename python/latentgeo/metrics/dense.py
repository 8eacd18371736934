"""Metrics given by user functions (DenseMetric) or by one constant matrix (ConstantMetric)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .. import _core
from .._validation import (
    as_float_array,
    check_int,
    check_positive,
)
from .base import Metric
from .support import (
    FrozenState,
    ReadOnly,
    callable_name,
    central_differences,
    check_finite_rows,
    check_spd,
    check_spd_stack,
    frozen,
    real_output,
)


class DenseMetric(FrozenState, Metric):
    """A metric given by a Python function returning G at a batch of points.

    Parameters
    ----------
    G_fn : callable
        ``G_fn(z)`` with z (N, d) returns G (N, d, d): real, finite and symmetric positive definite
        (its symmetric part is checked with a Cholesky factorisation per point; a point where it
        fails raises :class:`~latentgeo.errors.MetricDomainError` naming it).
    dG_fn : callable, optional
        ``dG_fn(z)`` returns ∂G/∂z (N, d, d, d), layout ``[n, a, b, k]``. Without it the
        derivative is computed by central differences of ``G_fn`` (step ``fd_step``).
    dim : int
        The latent dimension d (keyword).
    fd_step : float
        Step of those central differences.

    The attributes ``G_fn``, ``dG_fn``, ``dim`` and ``fd_step`` are read-only.
    """

    G_fn = ReadOnly()
    dG_fn = ReadOnly()
    dim = ReadOnly()
    fd_step = ReadOnly()

    def __init__(self, G_fn: Callable, dG_fn: Optional[Callable] = None, *, dim: int, fd_step: float = 1e-6):
        if not callable(G_fn):
            raise ValueError("G_fn: must be callable")
        if dG_fn is not None and not callable(dG_fn):
            raise ValueError("dG_fn: must be callable or None")
        self._G_fn, self._dG_fn, self._dim = G_fn, dG_fn, check_int(dim, "dim", 1)
        self._fd_step = check_positive(fd_step, "fd_step")

    def __repr__(self) -> str:
        names = ", ".join(f"{k}={callable_name(getattr(self, k))}" for k in ("G_fn", "dG_fn"))
        return f"DenseMetric(dim={self.dim}, {names}, fd_step={self.fd_step:g})"

    def _call_checked(self, fn, z, shape, name):
        out = real_output(fn(z), name)
        if out.shape != shape:
            raise ValueError(f"{name}: returned shape {out.shape}, expected {shape}")
        return check_finite_rows(out, z, name)

    # Positive definiteness is part of the contract; a pullback's J^T J may be only semi-definite.
    _positive_definite = True

    def _metric_at(self, z):
        g = self._call_checked(self.G_fn, z, (len(z), self.dim, self.dim), "G_fn")
        return check_spd(g, z, "G_fn") if self._positive_definite else g

    def _metric(self, z, n_threads):
        return self._metric_at(z)

    def _derivative(self, z, n_threads):
        n, d = z.shape
        if self.dG_fn is not None:
            return self._call_checked(self.dG_fn, z, (n, d, d, d), "dG_fn")
        return central_differences(self._metric_at, z, self.fd_step)


class ConstantMetric(FrozenState, Metric):
    """A constant metric G(z) = A (A symmetric positive definite, shape (d, d)); ``A`` is read-only."""

    A = ReadOnly()
    dim = ReadOnly()
    _derived = ("_kernel",)

    def __init__(self, A):
        a = as_float_array(A, "A", ndim=2)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"A: expected a square matrix, got shape {a.shape}")
        self._A = frozen(check_spd_stack(a[None], 1, a.shape[0], "A")[0])
        self._dim = a.shape[0]
        self._rebuild()

    def _rebuild(self) -> None:
        self._kernel = _core.ConstantKernel(self.A)

    def _native(self):
        return self._kernel, 1.0

    def __repr__(self) -> str:
        return f"ConstantMetric(A={self.A.tolist()})"

    def _metric(self, z, n_threads):
        return np.broadcast_to(self.A, (len(z), self.dim, self.dim)).copy()

    def _derivative(self, z, n_threads):
        return np.zeros((len(z), self.dim, self.dim, self.dim))

    def _quadratic_form(self, z, v, grad, n_threads):
        av = v @ self.A
        q = np.einsum("na,na->n", av, v)
        return (q, np.zeros_like(z), 2.0 * av) if grad else q
