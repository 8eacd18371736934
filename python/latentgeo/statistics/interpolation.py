"""Points equally spaced in arc length along geodesics, for decoding smooth transitions.

Each geodesic is the discrete solver's curve: the C¹ cubic Hermite interpolant of its nodes (the
curve that its measured length belongs to). The arc length s(t) = ∫₀ᵗ √(γ̇ᵀGγ̇) is summed per
segment with 5-point Gauss–Legendre, and s(t) = k L / (n − 1) is solved for t by safeguarded
Newton steps (ds/dt is the speed), all pairs and targets in one batched metric call per step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .._validation import as_points, check_int, check_metric
from ..curves import HermiteCurve
from ..solvers.api import geodesics

__all__ = ["InterpolationResult", "interpolate"]

_GL_X, _GL_W = np.polynomial.legendre.leggauss(5)
_GL_X, _GL_W = 0.5 * (_GL_X + 1.0), 0.5 * _GL_W  # on [0, 1]
_NEWTON_MAX = 60
_NEWTON_RTOL = 1e-13


@dataclass
class InterpolationResult:
    """Points along B geodesics.

    Attributes
    ----------
    points : ndarray, shape (B, n_points, d)
        Equally spaced in arc length; ``points[:, 0]`` = z0 and ``points[:, -1]`` = z1.
    lengths : ndarray, shape (B,)
        Length of each curve (5-point Gauss–Legendre per segment).
    converged : ndarray of bool, shape (B,)
        The geodesic solve converged.
    status : list of str
        The solver's status per pair (see :func:`latentgeo.geodesics`); a pair whose metric
        failed has NaN points.
    """

    points: np.ndarray
    lengths: np.ndarray
    converged: np.ndarray
    status: List[str]


class _Curves:
    """The Hermite interpolants (:class:`latentgeo.curves.HermiteCurve`, C++) of B node arrays
    (different node counts), evaluated together."""

    def __init__(self, node_list):
        self.curves = [HermiteCurve(x) for x in node_list]
        self.n_seg = np.array([len(x) - 1 for x in node_list])

    def evaluate(self, pair: np.ndarray, t: np.ndarray):
        """Points and velocities (N, d) of curve ``pair[i]`` at time ``t[i]`` in [0, 1]."""
        pos = np.empty((len(t), self.curves[0].nodes.shape[1]))
        vel = np.empty_like(pos)
        order = np.argsort(pair, kind="stable")
        edges = np.searchsorted(pair[order], np.arange(len(self.curves) + 1))
        for curve, lo, hi in zip(self.curves, edges[:-1], edges[1:]):
            if lo < hi:
                rows = order[lo:hi]
                pos[rows], vel[rows] = curve(t[rows]), curve(t[rows], derivative=True)
        return pos, vel

    def speed(self, metric, pair: np.ndarray, t: np.ndarray) -> np.ndarray:
        pos, vel = self.evaluate(pair, t)
        return np.sqrt(np.maximum(np.asarray(metric.quadratic_form(pos, vel), dtype=np.float64), 0.0))

    def partial_length(self, metric, pair: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """∫ₐᵇ speed of curve ``pair[i]`` (a, b within one segment or whole segments)."""
        nodes_t = a[:, None] + (b - a)[:, None] * _GL_X[None, :]
        sp = self.speed(metric, np.repeat(pair, len(_GL_X)), nodes_t.ravel()).reshape(nodes_t.shape)
        return (b - a) * (sp @ _GL_W)


def _segment_lengths(curves: _Curves, metric) -> List[np.ndarray]:
    """Cumulative arc length at the nodes of every curve."""
    pair = np.repeat(np.arange(len(curves.n_seg)), curves.n_seg)
    seg = np.concatenate([np.arange(n) for n in curves.n_seg])
    n = curves.n_seg[pair]
    lengths = curves.partial_length(metric, pair, seg / n, (seg + 1) / n)
    split = np.split(lengths, np.cumsum(curves.n_seg)[:-1])
    return [np.concatenate([[0.0], np.cumsum(x)]) for x in split]


def _solve_times(curves: _Curves, metric, cumulative: List[np.ndarray], n_points: int) -> np.ndarray:
    """Times t (B, n_points) with s(t) = k L / (n_points − 1), by safeguarded Newton per segment."""
    b = len(cumulative)
    total = np.array([c[-1] for c in cumulative])
    target = total[:, None] * np.linspace(0.0, 1.0, n_points)[None, :]
    pair = np.repeat(np.arange(b), n_points)
    goal = target.ravel()
    # the segment of each target: s(node_seg) <= goal < s(node_seg + 1)
    seg = np.concatenate(
        [np.clip(np.searchsorted(c, g, side="right") - 1, 0, len(c) - 2) for c, g in zip(cumulative, target)]
    )
    first = np.concatenate([[0], np.cumsum([len(c) for c in cumulative])[:-1]])[pair] + seg
    flat = np.concatenate(cumulative)
    base, seg_len = flat[first], flat[first + 1] - flat[first]
    n = curves.n_seg[pair]
    lo, hi = seg / n, (seg + 1) / n
    start = lo.copy()
    # first guess: linear in s within the segment (exact for a constant-speed curve)
    frac = np.clip((goal - base) / np.where(seg_len > 0, seg_len, 1.0), 0.0, 1.0)
    t = lo + frac * (hi - lo)
    active = (goal > base) & (goal < base + seg_len)  # targets on a node are done
    tol = _NEWTON_RTOL * np.maximum(total[pair], np.finfo(float).tiny)
    for _ in range(_NEWTON_MAX):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        f = base[idx] + curves.partial_length(metric, pair[idx], start[idx], t[idx]) - goal[idx]
        speed = curves.speed(metric, pair[idx], t[idx])
        lo[idx] = np.where(f < 0, t[idx], lo[idx])
        hi[idx] = np.where(f > 0, t[idx], hi[idx])
        step = np.where(speed > 0, t[idx] - f / np.where(speed > 0, speed, 1.0), np.nan)
        inside = (step > lo[idx]) & (step < hi[idx])
        t[idx] = np.where(inside, step, 0.5 * (lo[idx] + hi[idx]))
        active[idx] = np.abs(f) > tol[idx]
    return t.reshape(b, n_points)


def interpolate(
    metric,
    z0,
    z1,
    n_points: int,
    *,
    return_result: bool = False,
    progress: bool = False,
    n_threads: Optional[int] = None,
    **geodesic_options,
):
    """Points equally spaced in arc length along the geodesic from z0 to z1.

    Parameters
    ----------
    metric : metric protocol object
    z0, z1 : array_like, shape (d,) or (B, d)
        Endpoints (one pair, or B pairs for the batched form).
    n_points : int
        Number of points (>= 2), endpoints included.
    return_result : bool
        Return an :class:`InterpolationResult` with the lengths and per-pair status instead of
        the points alone.
    progress : bool
        Progress bar of the geodesic solves (long batches).
    n_threads : int, optional
        Threads of the geodesic solver (None: all cores).
    **geodesic_options
        Passed to :func:`latentgeo.geodesics` (``tol``, ``n_nodes``, ``init``, ...).

    Returns
    -------
    ndarray, shape (n_points, d) for one pair or (B, n_points, d)
        Consecutive points are at equal Riemannian distance along the curve (relative accuracy
        ~1e-12 on the curve; the curve is the geodesic to the solver's ``tol``). A pair whose
        geodesic did not converge is named in a ``RuntimeWarning``; one whose metric failed has
        NaN points (and is named too).
    """
    dim = check_metric(metric)
    n_points = check_int(n_points, "n_points", 2)
    a, single = as_points(z0, "z0", dim)
    b, single1 = as_points(z1, "z1", dim)
    if a.shape != b.shape:
        raise ValueError(f"z1: expected the shape of z0 {np.shape(z0)}, got {np.shape(z1)}")
    batch = geodesics(metric, a, b, progress=progress, n_threads=n_threads, **geodesic_options)
    usable = np.array([np.all(np.isfinite(x)) for x in batch.node_list]) & np.isfinite(batch.length)
    points = np.full((len(a), n_points, dim), np.nan)
    lengths = np.full(len(a), np.nan)
    if usable.any():
        idx = np.flatnonzero(usable)
        curves = _Curves([batch.node_list[i] for i in idx])
        cumulative = _segment_lengths(curves, metric)
        times = _solve_times(curves, metric, cumulative, n_points)
        pos, _ = curves.evaluate(np.repeat(np.arange(len(idx)), n_points), times.ravel())
        points[idx] = pos.reshape(len(idx), n_points, dim)
        points[idx, 0], points[idx, -1] = a[idx], b[idx]
        lengths[idx] = [c[-1] for c in cumulative]
        still = np.flatnonzero(np.all(a == b, axis=1))  # identical endpoints: the constant curve, exactly
        points[still], lengths[still] = a[still, None, :], 0.0
    _warn_failures(batch, usable)
    if return_result:
        return InterpolationResult(points, lengths, batch.converged.copy(), list(batch.status))
    return points[0] if single and single1 else points


def _warn_failures(batch, usable: np.ndarray) -> None:
    bad = [i for i in range(len(batch)) if not batch.converged[i]]
    if not bad:
        return
    shown = ", ".join(f"{i} ({batch.status[i]}{'' if usable[i] else ', NaN points'})" for i in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    warnings.warn(
        f"interpolate: the geodesics of {len(bad)} of {len(batch)} pairs did not converge: pairs {shown}{more}",
        RuntimeWarning,
        stacklevel=3,
    )
