"""The volume geometry of a metric at a batch of points, as the samplers need it.

log det G, its gradient, G⁻¹ and ∂G⁻¹: natively in C++ for the RHVAE metric (one fused pass,
:func:`latentgeo.metrics.native_kernel` with ``volume_jet=True`` finds the kernel), in numpy from ``metric.metric`` and
``metric.derivative`` for any other metric of the protocol (:func:`numpy_jet`, which feeds the
Python callbacks of :mod:`~latentgeo.statistics.brownian` and
:mod:`~latentgeo.statistics.volume_sampling`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _core
from .._validation import as_points, check_metric, check_threads
from ..metrics import native_kernel

__all__ = ["log_det_and_gradient", "numpy_jet"]


def numpy_jet(metric, z: np.ndarray):
    """(G⁻¹ (N, d, d), ∂G⁻¹ [n, a, b, k], ∂ log det G (N, d), log det G (N,), ok) from G and ∂G.

    G and ∂G come from the connection's batched callback (a batch that raises a domain error is
    retried point by point; such points, and those where G is not positive definite, get ok = 0).
    """
    from ..metrics.callback import GeometryCallback

    g, dg, ok = GeometryCallback(metric)(np.ascontiguousarray(z, dtype=np.float64), True)
    d = z.shape[1]
    low, chol_ok = _cholesky(np.where(ok[:, None, None], g, np.eye(d)))
    ok &= chol_ok
    logdet = np.where(ok, 2.0 * np.sum(np.log(np.abs(np.diagonal(low, axis1=1, axis2=2))), axis=1), np.nan)
    linv = np.linalg.solve(low, np.broadcast_to(np.eye(d), g.shape))  # L⁻¹, so that G⁻¹ = L⁻ᵀ L⁻¹
    ginv = np.einsum("nca,ncb->nab", linv, linv)
    dg = np.where(ok[:, None, None, None], dg, 0.0)
    dginv = -np.einsum("nac,ncek,neb->nabk", ginv, dg, ginv)
    dlogdet = np.einsum("nab,nbak->nk", ginv, dg)
    return ginv, dginv, dlogdet, logdet, ok


def _cholesky(g: np.ndarray):
    """Cholesky factors of a stack (N, d, d) and which succeeded; a failure gets the identity."""
    try:
        return np.linalg.cholesky(g), np.ones(len(g), dtype=bool)
    except np.linalg.LinAlgError:  # one by one, so that the failures stay with their point
        low = np.broadcast_to(np.eye(g.shape[1]), g.shape).copy()
        ok = np.zeros(len(g), dtype=bool)
        for i, gi in enumerate(g):
            try:
                low[i] = np.linalg.cholesky(gi)
                ok[i] = True
            except np.linalg.LinAlgError:
                pass
        return low, ok


def log_det_and_gradient(metric, z, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """log det G(z) (N,) and its gradient (N, d), ∂ₖ log det G = tr(G⁻¹ ∂ₖG) = −tr(G ∂ₖG⁻¹).

    Analytic in the C++ core for :class:`~latentgeo.RHVAEMetric` (one pass over the centroids),
    from ``metric.metric`` and ``metric.derivative`` otherwise. Points outside the metric's
    domain get NaN.
    """
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    kernel, scale = native_kernel(metric, volume_jet=True)
    if kernel is not None:
        logdet, grad = _core.log_det_gradient(kernel=kernel, scale=scale, z=pts, n_threads=check_threads(n_threads))
    else:
        _, _, grad, logdet, ok = numpy_jet(metric, pts)
        grad = np.where(ok[:, None], grad, np.nan)
    return (logdet[0], grad[0]) if single else (logdet, grad)
