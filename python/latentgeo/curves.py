"""Curve velocities, length and energy.

Conventions
-----------
A curve γ: [0, 1] → ℝ^d is sampled at increasing times t (N,) as points (N, d);
B curves sharing the same times are stacked as (B, N, d).

- length  L = ∫ √(γ̇ᵀ G(γ) γ̇) dt,
- energy  E = ∫ γ̇ᵀ G(γ) γ̇ dt (no factor ½), so E = L² on a constant-speed curve and
  E ≥ L² on any curve over [0, 1].

Quadrature rules (``rule=``):

``"trapezoid"`` (default)
    Second order on any increasing grid t.
``"simpson"``
    Composite Simpson on pairs of intervals (odd N; unequal intervals allowed).
``"aetk"``
    AutoEncoderToolkit.jl's sums, which ignore t: L = (1/N) Σ √qᵢ, E = (1/(2N)) Σ qᵢ.

This module also holds what every curve of latentgeo shares: the quadrature rules ``RULES``,
the finite-difference steps ``FD_STEPS``, the 3-point Gauss–Legendre rule, the one measure of
sampled curves (:func:`sampled_length_energy`, of which :func:`segment_lengths` is the
straight-segment case), equal-arc-length spacing (:func:`equal_arc_length_positions`) and
:class:`HermiteCurve`, the interpolant of the discrete geodesics.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from . import _core
from ._validation import as_float_array, check_choice, check_metric, check_positive, check_threads, check_times
from .errors import MetricDomainError

__all__ = [
    "curve_velocity_finitediff",
    "discrete_velocity",
    "curve_length",
    "curve_energy",
    "curve_integral",
    "check_times",
    "sampled_length_energy",
    "segment_lengths",
    "polyline_length",
    "equal_arc_length_positions",
    "HermiteCurve",
    "RULES",
    "FD_METHODS",
    "FD_STEPS",
    "GAUSS_NODES",
    "GAUSS_WEIGHTS",
]

RULES = ("trapezoid", "simpson", "aetk")
FD_METHODS = ("central", "forward")
_EPS = np.finfo(np.float64).eps
# Default finite-difference steps: they balance truncation and rounding error in float64.
FD_STEPS = {"central": _EPS ** (1 / 3), "forward": _EPS**0.5}
# 3-point Gauss–Legendre rule on [0, 1] (exact for polynomials of degree 5), as in the C++ core.
GAUSS_NODES = np.array([0.5 - 0.3872983346207417, 0.5, 0.5 + 0.3872983346207417])
GAUSS_WEIGHTS = np.array([5.0, 8.0, 5.0]) / 18.0


def curve_velocity_finitediff(curve: Callable, t, method: str = "central", eps: Optional[float] = None) -> np.ndarray:
    """Velocity of a curve by finite differences (the seed's ``curve_velocity_finitediff``).

    Parameters
    ----------
    curve : callable
        Maps times (N,) to points (N, d), e.g. a :class:`~latentgeo.NeuralGeodesic`.
    t : array_like, shape (N,)
        Times.
    method : {"central", "forward"}
        ``"central"``: (γ(t+ε) − γ(t−ε)) / (2ε) with ε = ∛eps;
        ``"forward"``: (γ(t+ε) − γ(t)) / ε with ε = √eps (eps: float64 machine epsilon).
    eps : float, optional
        Overrides the step ε.

    Returns
    -------
    ndarray, shape (N, d)
    """
    check_choice(method, "method", set(FD_METHODS))
    times = as_float_array(t, "t", ndim=1)
    step = check_positive(eps, "eps") if eps is not None else FD_STEPS[method]
    ahead = _curve_points(curve, times + step)
    behind = _curve_points(curve, times - step if method == "central" else times)
    if behind.shape != ahead.shape:
        raise ValueError(f"curve: returned shapes {ahead.shape} and {behind.shape} for the same number of times")
    return _core.finite_difference(ahead, behind, 2 * step if method == "central" else step)


def _curve_points(curve: Callable, times: np.ndarray) -> np.ndarray:
    if not callable(curve):
        raise ValueError("curve: must be callable (times (N,) -> points (N, d))")
    pts = np.asarray(curve(times), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != len(times):
        raise ValueError(f"curve: expected points of shape ({len(times)}, d), got {pts.shape}")
    return np.ascontiguousarray(pts)


def _curves(points, name: str):
    """(B, N, d) view of one (N, d) or several (B, N, d) curves, and whether it was one."""
    arr = as_float_array(points, name)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name}: expected shape (N, d) or (B, N, d), got {arr.shape}")
    single = arr.ndim == 2
    return (arr[None] if single else arr), single


def discrete_velocity(points, t=None, n_threads: Optional[int] = None) -> np.ndarray:
    """Velocities of sampled curves by second-order finite differences.

    Three-point central differences inside, three-point one-sided differences at the
    ends (unequal spacing allowed); with only two points, the chord slope.

    Parameters
    ----------
    points : array_like, shape (N, d) or (B, N, d)
    t : array_like, shape (N,), optional
        Increasing times (default: ``linspace(0, 1, N)``).

    Returns
    -------
    ndarray, same shape as ``points``
    """
    curves, single = _curves(points, "points")
    b, n, d = curves.shape
    if n < 2:
        raise ValueError("points: need at least 2 points per curve")
    times = np.linspace(0.0, 1.0, n) if t is None else check_times(t, n=n)
    out = _core.discrete_velocity(curves.reshape(b * n, d), times, n_threads=check_threads(n_threads)).reshape(b, n, d)
    return out[0] if single else out


def curve_integral(
    metric,
    points,
    velocities,
    t=None,
    integral: str = "energy",
    rule: str = "trapezoid",
    grad: bool = False,
    n_threads: Optional[int] = None,
):
    """Length or energy of B curves, optionally with gradients (the fused routine).

    Parameters
    ----------
    metric : metric protocol object
    points, velocities : array_like, shape (N, d) or (B, N, d)
    t : array_like, shape (N,), optional
        Increasing times (default ``linspace(0, 1, N)``); ignored by ``rule="aetk"``.
    integral : {"energy", "length"}
    rule : {"trapezoid", "simpson", "aetk"}
    grad : bool
        Also return the gradients with respect to ``points`` and ``velocities``.

    Returns
    -------
    value : float (one curve) or ndarray (B,)
    d_points, d_velocities : ndarray, shape of ``points`` (only with ``grad=True``)
    """
    check_choice(integral, "integral", {"energy", "length"})
    check_choice(rule, "rule", set(RULES))
    curves, single = _curves(points, "points")
    vel, _ = _curves(velocities, "velocities")
    if vel.shape != curves.shape:
        raise ValueError(f"velocities: expected shape {np.shape(points)} like points, got {np.shape(velocities)}")
    b, n, d = curves.shape
    if d != check_metric(metric):
        raise ValueError(f"points: dimension {d} does not match the metric's dimension {metric.dim}")
    times = np.linspace(0.0, 1.0, n) if t is None else check_times(t, n=n)
    if rule != "aetk" and n < 2:
        raise ValueError("points: need at least 2 points per curve for this rule")
    out = integral_of_checked(metric, curves, vel, times, integral, rule, grad, n_threads)
    if not grad:
        return float(out[0]) if single else out
    values, gz, gv = out
    return (float(values[0]), gz[0], gv[0]) if single else (values, gz, gv)


def integral_of_checked(
    metric,
    curves: np.ndarray,
    velocities: np.ndarray,
    times: np.ndarray,
    integral: str,
    rule: str,
    grad: bool,
    n_threads: Optional[int],
):
    """:func:`curve_integral` on checked (B, N, d) arrays and times (for loops that validated once).

    Returns the values (B,), and with ``grad`` the tuple (values, d_points, d_velocities).
    """
    b, n, d = curves.shape
    threads = check_threads(n_threads)
    weights = _core.quadrature_weights(times, rule)
    factor = 0.5 if rule == "aetk" else 1.0
    z, v = curves.reshape(b * n, d), velocities.reshape(b * n, d)
    if not grad:
        q = metric.quadratic_form(z, v, n_threads=n_threads)
        return _core.integrate(q, weights, integral, factor, n_threads=threads)
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True, n_threads=n_threads)
    values, gz, gv = _core.integrate_with_grad(q, dqdz, dqdv, weights, integral, factor, n_threads=threads)
    return values, gz.reshape(b, n, d), gv.reshape(b, n, d)


def curve_length(
    metric, points, velocities, t=None, rule: str = "trapezoid", grad: bool = False, n_threads: Optional[int] = None
):
    """Length L = ∫ √(γ̇ᵀ G(γ) γ̇) dt of one (N, d) or B (B, N, d) sampled curves.

    See :func:`curve_integral` for the parameters; returns a float for one curve and (B,)
    otherwise, plus the gradients with ``grad=True``.
    """
    return curve_integral(metric, points, velocities, t, "length", rule, grad, n_threads)


def curve_energy(
    metric, points, velocities, t=None, rule: str = "trapezoid", grad: bool = False, n_threads: Optional[int] = None
):
    """Energy E = ∫ γ̇ᵀ G(γ) γ̇ dt (no ½; E = L² at constant speed) of sampled curves.

    See :func:`curve_integral` for the parameters.
    """
    return curve_integral(metric, points, velocities, t, "energy", rule, grad, n_threads)


# --------------------------------------------------------------------------------------------
# Measuring sampled curves
# --------------------------------------------------------------------------------------------
def sampled_length_energy(
    metric, points: np.ndarray, velocities: np.ndarray, weights: np.ndarray, n_threads: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Length Σ wᵢ √qᵢ and energy Σ wᵢ qᵢ (qᵢ = vᵢᵀ G(zᵢ) vᵢ) of B curves sampled alike.

    The one measure of curves in latentgeo's Python layer (the C++ solver has its own).

    Parameters
    ----------
    metric : metric protocol object
    points, velocities : ndarray, shape (B * n, d)
        Checked float64 samples, curve by curve.
    weights : ndarray, shape (n,)
        Quadrature weights of the n samples of one curve (e.g. :data:`GAUSS_WEIGHTS`).

    Returns
    -------
    lengths, energies : ndarray, shape (B,)
    """
    threads = check_threads(n_threads)
    q = np.ascontiguousarray(metric.quadratic_form(points, velocities, n_threads=n_threads), dtype=np.float64)
    lengths = _core.integrate(q, weights, "length", 1.0, n_threads=threads)
    energies = _core.integrate(q, weights, "energy", 1.0, n_threads=threads)
    return lengths, energies


def segment_lengths(metric, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Riemannian lengths of the straight segments a→b (E, d), 3-point Gauss–Legendre.

    A segment that meets a point where the metric is not defined (MetricDomainError) is
    infinitely long, so that graph paths avoid it instead of failing every pair.
    """
    delta = b - a
    z = (a[:, None, :] + GAUSS_NODES[None, :, None] * delta[:, None, :]).reshape(-1, a.shape[1])
    v = np.repeat(delta, len(GAUSS_NODES), axis=0)
    try:
        lengths, _ = sampled_length_energy(metric, z, v, GAUSS_WEIGHTS)
    except MetricDomainError:
        if len(a) == 1:
            return np.array([np.inf])
        return np.concatenate([segment_lengths(metric, a[i : i + 1], b[i : i + 1]) for i in range(len(a))])
    return lengths


def polyline_length(metric, points: np.ndarray) -> float:
    """Riemannian length of the polyline through ``points`` (n, d) (see :func:`segment_lengths`)."""
    return float(segment_lengths(metric, points[:-1], points[1:]).sum())


def equal_arc_length_positions(cumulative: np.ndarray, n_points: int) -> Tuple[np.ndarray, np.ndarray]:
    """Where ``n_points`` equally spaced arc lengths fall on a curve of n + 1 nodes.

    ``cumulative`` (n + 1,) is the non-decreasing arc length at the nodes (``cumulative[0] = 0``),
    the targets are ``linspace(0, cumulative[-1], n_points)``. Returns the segment j (n_points,)
    in [0, n − 1] and the fraction w (n_points,) in [0, 1] of each target, target =
    cumulative[j] + w (cumulative[j + 1] − cumulative[j]): linearly in length within a segment,
    the point is (1 − w) nodes[j] + w nodes[j + 1] (a zero-length segment gives w = 0).
    """
    target = np.linspace(0.0, cumulative[-1], n_points)
    j = np.clip(np.searchsorted(cumulative, target, side="right") - 1, 0, len(cumulative) - 2)
    span = cumulative[j + 1] - cumulative[j]
    return j, np.clip((target - cumulative[j]) / np.where(span > 0, span, 1.0), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# The interpolant of discrete geodesics
# --------------------------------------------------------------------------------------------
class HermiteCurve:
    """The C¹ cubic Hermite interpolant of nodes at uniform times on [0, 1] (picklable).

    Parameters
    ----------
    nodes : ndarray, shape (n + 1, d), n >= 4
    """

    def __init__(self, nodes: np.ndarray):
        self.nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        self.tangents = _core.hermite_tangents(self.nodes)  # d/dt at the nodes, as the solver has them

    def __call__(self, t, derivative: bool = False) -> np.ndarray:
        """Points γ(t) (or velocities γ̇(t) with ``derivative=True``), shape (N, d), for t (N,) in [0, 1]."""
        times = as_float_array(t, "t", ndim=1)
        if times.min() < 0.0 or times.max() > 1.0:
            raise ValueError("t: times must lie in [0, 1]")
        points, velocities = _core.hermite_curve(self.nodes, times)
        return velocities if derivative else points
