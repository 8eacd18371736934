"""Pointwise quantities of the Levi-Civita connection: Christoffel symbols, the Ricci tensor and
the scalar and Gaussian curvature (see :mod:`latentgeo.connection` for how ∂Γ is computed)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validation import as_points, check_metric
from .backend import CURVATURE_PER_CALL, POINTS_PER_CALL, core_options, make_backend

__all__ = ["christoffel", "gaussian_curvature", "ricci", "scalar_curvature"]


def christoffel(metric, z, *, n_threads: Optional[int] = None) -> np.ndarray:
    """Christoffel symbols of the Levi-Civita connection.

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (N, d, d, d) (or (d, d, d))
        ``[n, k, i, j] = Γᵏᵢⱼ(zₙ)``, symmetric in i, j.

    Raises
    ------
    ValueError
        Bad input, or G is not finite or not positive definite at a point (named by index).
    """
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    backend = make_backend(metric, n_threads)
    opts = core_options()
    out = backend.run(
        len(pts),
        POINTS_PER_CALL,
        lambda s: dict(
            zip(
                ("gamma", "ok"),
                _core.christoffel(**backend.native(), z=pts[s], options=opts, n_threads=backend.threads),
            )
        ),
    )
    backend.require_inside(out["ok"], "z")
    gamma = out["gamma"].reshape(len(pts), dim, dim, dim)
    return gamma[0] if single else gamma


def _curvature(metric, z, fd_step, n_threads):
    """(Ricci (N, d, d), scalar curvature (N,), z was a single point)."""
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    backend = make_backend(metric, n_threads)
    opts = core_options(fd_step=fd_step)
    out = backend.run(
        len(pts),
        CURVATURE_PER_CALL,
        lambda s: dict(
            zip(
                ("ricci", "scalar", "ok"),
                _core.curvature(**backend.native(), z=pts[s], options=opts, n_threads=backend.threads),
            )
        ),
    )
    backend.require_inside(out["ok"], "z")
    return out["ricci"].reshape(len(pts), dim, dim), out["scalar"], single


def ricci(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None) -> np.ndarray:
    """Ricci tensor Rᵢⱼ = Rᵏᵢₖⱼ (symmetric; unchanged by scaling the metric).

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
    fd_step : float, optional
        Relative step of the finite differences of Γ for pullback and Python metrics (default 1e-3;
        see :mod:`latentgeo.connection`). Unused for RHVAE and constant metrics (analytic).
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (N, d, d) (or (d, d))
    """
    ric, _, single = _curvature(metric, z, fd_step, n_threads)
    return ric[0] if single else ric


def scalar_curvature(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None):
    """Scalar curvature S = Gⁱʲ Rᵢⱼ (2 on the unit sphere, −2 on the Poincaré half-plane).

    Parameters are those of :func:`ricci`.

    Returns
    -------
    ndarray, shape (N,) (or a float for one point)
    """
    _, scalar, single = _curvature(metric, z, fd_step, n_threads)
    return float(scalar[0]) if single else scalar


def gaussian_curvature(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None):
    """Gaussian curvature K = S/2 of a 2-d latent space (+1 on the unit sphere).

    Parameters are those of :func:`ricci`.

    Returns
    -------
    ndarray, shape (N,) (or a float for one point)
    """
    if check_metric(metric) != 2:
        raise ValueError(f"metric: the Gaussian curvature needs d = 2, got d = {metric.dim} (use scalar_curvature)")
    _, scalar, single = _curvature(metric, z, fd_step, n_threads)
    return float(scalar[0]) / 2.0 if single else scalar / 2.0


# --------------------------------------------------------------------------------------------
