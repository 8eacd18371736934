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
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from . import _core
from ._validation import as_float_array, check_choice, check_metric, check_positive, check_threads

__all__ = [
    "curve_velocity_finitediff",
    "discrete_velocity",
    "curve_length",
    "curve_energy",
    "curve_integral",
    "check_times",
    "RULES",
]

RULES = ("trapezoid", "simpson", "aetk")
_EPS = np.finfo(np.float64).eps


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
    check_choice(method, "method", {"central", "forward"})
    times = as_float_array(t, "t", ndim=1)
    step = check_positive(eps, "eps") if eps is not None else (_EPS ** (1 / 3) if method == "central" else _EPS**0.5)
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
    out = _core.discrete_velocity(curves.reshape(b * n, d), times, check_threads(n_threads)).reshape(b, n, d)
    return out[0] if single else out


def curve_integral(metric, points, velocities, t=None, integral: str = "energy", rule: str = "trapezoid",
                   grad: bool = False, n_threads: Optional[int] = None):
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
    threads = check_threads(n_threads)
    weights = _core.quadrature_weights(times, rule)
    factor = 0.5 if rule == "aetk" else 1.0
    z, v = curves.reshape(b * n, d), vel.reshape(b * n, d)
    if not grad:
        q = metric.quadratic_form(z, v, n_threads=n_threads)
        values, _ = _core.integrate(q, weights, integral, factor, False, threads)
        return float(values[0]) if single else values
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True, n_threads=n_threads)
    values, gz, gv = _core.integrate_with_grad(q, dqdz, dqdv, weights, integral, factor, threads)
    gz, gv = gz.reshape(b, n, d), gv.reshape(b, n, d)
    if single:
        return float(values[0]), gz[0], gv[0]
    return values, gz, gv


def curve_length(metric, points, velocities, t=None, rule: str = "trapezoid", grad: bool = False,
                 n_threads: Optional[int] = None):
    """Length L = ∫ √(γ̇ᵀ G(γ) γ̇) dt of one (N, d) or B (B, N, d) sampled curves.

    See :func:`curve_integral` for the parameters; returns a float for one curve and (B,)
    otherwise, plus the gradients with ``grad=True``.
    """
    return curve_integral(metric, points, velocities, t, "length", rule, grad, n_threads)


def curve_energy(metric, points, velocities, t=None, rule: str = "trapezoid", grad: bool = False,
                 n_threads: Optional[int] = None):
    """Energy E = ∫ γ̇ᵀ G(γ) γ̇ dt (no ½; E = L² at constant speed) of sampled curves.

    See :func:`curve_integral` for the parameters.
    """
    return curve_integral(metric, points, velocities, t, "energy", rule, grad, n_threads)
