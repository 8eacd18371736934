"""G and ∂G of a Python metric for a whole batch of points, as the C++ core calls them back.

The connection (:mod:`latentgeo.connection`) hands :class:`GeometryCallback` to the core for any
metric without a native kernel; :mod:`latentgeo.statistics.sampling` uses it for the same batched
evaluation in numpy.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["DOMAIN_ERRORS", "GeometryCallback"]

DOMAIN_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)
"""Exceptions of a metric evaluation that mark a point outside the domain (retried point by point)."""


class GeometryCallback:
    """G and ∂G of a Python metric for a whole batch of points: ``(z, want_derivative) -> (G, dG, ok)``.

    A batch that raises a domain error is retried point by point; the points that raise (or give
    non-finite values) are outside the domain. ``last_error`` keeps the last such message.

    Parameters
    ----------
    metric : metric object
        ``dim``, ``metric(z)`` (N, d, d) and ``derivative(z)`` (N, d, d, d).
    """

    def __init__(self, metric):
        self.metric = metric
        self.dim = metric.dim
        self.last_error: Optional[str] = None

    def _evaluate(self, z: np.ndarray, want_derivative: bool):
        with np.errstate(all="ignore"):
            g = np.asarray(self.metric.metric(z), dtype=np.float64)
            dg = np.asarray(self.metric.derivative(z), dtype=np.float64) if want_derivative else None
        d = self.dim
        # A wrong shape is a broken metric, not a point outside the domain: TypeError, never retried.
        if g.shape != (len(z), d, d) or (dg is not None and dg.shape != (len(z), d, d, d)):
            raise TypeError(
                f"metric: metric(z)/derivative(z) returned shapes {g.shape}/"
                f"{None if dg is None else dg.shape} for {len(z)} points of dimension {d}"
            )
        return g, dg

    def __call__(self, z: np.ndarray, want_derivative: bool):
        try:
            g, dg = self._evaluate(z, want_derivative)
        except DOMAIN_ERRORS as exc:
            self.last_error = str(exc)
            return self._pointwise(z, want_derivative)
        return g, dg, self._finite(g, dg)

    @staticmethod
    def _finite(g: np.ndarray, dg: Optional[np.ndarray]) -> np.ndarray:
        ok = np.all(np.isfinite(g.reshape(len(g), -1)), axis=1)
        if dg is not None:
            ok &= np.all(np.isfinite(dg.reshape(len(dg), -1)), axis=1)
        return ok

    def _pointwise(self, z: np.ndarray, want_derivative: bool):
        n, d = z.shape
        g, dg, ok = np.tile(np.eye(d), (n, 1, 1)), np.zeros((n, d, d, d)), np.zeros(n, dtype=bool)
        for i in range(n):
            try:
                gi, dgi = self._evaluate(z[i : i + 1], want_derivative)
            except DOMAIN_ERRORS as exc:
                self.last_error = str(exc)
                continue
            g[i] = gi[0]
            if dgi is not None:
                dg[i] = dgi[0]
            ok[i] = self._finite(gi, dgi)[0]
        return g, (dg if want_derivative else None), ok
