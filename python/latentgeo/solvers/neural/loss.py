"""The loss of a neural geodesic (its length or energy on sampled times), its gradient and one training step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..._validation import check_choice, check_metric, check_positive, check_threads, check_times
from ...curves import FD_METHODS, FD_STEPS, RULES, integral_of_checked
from .curve import NeuralGeodesic
from .optim import Optimizer

__all__ = [
    "curve_velocity_exact",
    "curve_velocity_TaylorDiff",
    "neural_geodesic_loss",
    "loss_and_grad",
    "train_neural_geodesic",
    "VELOCITIES",
    "INTEGRALS",
    "T_RANGE",
    "LossOptions",
    "check_curve",
    "check_curve_metric",
    "check_optimizer",
    "check_train_times",
    "checked_loss_and_grad",
    "optimizer_step",
]

VELOCITIES = ("finitediff", "exact")
INTEGRALS = ("energy", "length")
T_RANGE = (-0.5, 1.5)


def check_curve(curve) -> NeuralGeodesic:
    if not isinstance(curve, NeuralGeodesic):
        raise ValueError(f"curve: expected a NeuralGeodesic, got {type(curve).__name__}")
    return curve


def check_curve_metric(metric, curve: NeuralGeodesic) -> None:
    dim = check_metric(metric)
    if dim != curve.dim:
        raise ValueError(f"metric: dimension {dim} does not match the curve's dimension {curve.dim}")


def check_train_times(t) -> np.ndarray:
    times = check_times(t, "t", lo=T_RANGE[0], hi=T_RANGE[1])
    if len(times) < 2:
        raise ValueError("t: need at least 2 times")
    return times


def curve_velocity_exact(curve: NeuralGeodesic, t) -> np.ndarray:
    """Exact velocity γ̇(t) of a neural geodesic by forward-mode differentiation.

    The tangent dx/dt is carried through the MLP alongside the values in a single pass
    (not one pass per dimension), then through the rescaling.

    Parameters
    ----------
    curve : NeuralGeodesic
    t : array_like, shape (N,)

    Returns
    -------
    ndarray, shape (N, d)
    """
    return check_curve(curve).velocity(t)


curve_velocity_TaylorDiff = curve_velocity_exact  # the seed's name


def _evaluate_for_loss(
    curve: NeuralGeodesic, times: np.ndarray, velocity: str, fd_method: str, fd_step: Optional[float]
):
    """Points and velocities at ``times`` for the loss, plus what the backward pass needs."""
    n = len(times)
    if velocity == "exact":
        points, vel, fwd, resc = curve._evaluate(times, tangent=True)
        return points, vel, (fwd, resc, None)
    step = FD_STEPS[fd_method] if fd_step is None else fd_step
    if fd_method == "central":
        rows = np.concatenate([times, times + step, times - step])
    else:
        rows = np.concatenate([times, times + step])
    pts, _, fwd, resc = curve._evaluate(rows, tangent=False)  # one pass for all shifted times
    behind = pts[2 * n :] if fd_method == "central" else pts[:n]
    width = 2 * step if fd_method == "central" else step
    vel = (pts[n : 2 * n] - behind) / width
    return pts[:n], vel, (fwd, resc, width)


def _backward_for_loss(curve: NeuralGeodesic, cache, g_points: np.ndarray, g_vel: np.ndarray) -> np.ndarray:
    fwd, resc, width = cache
    delta = curve._amplitude  # dγ/du = A
    n = len(g_points)
    m = len(fwd.tau)
    if width is None:  # exact velocity: γ̇ = Δ ⊙ u̇
        gu = np.zeros((m, curve.dim))
        gdu = np.zeros((m, curve.dim))
        gu[:n] = g_points * delta
        gdu[:n] = g_vel * delta
        return curve._backward(fwd, resc, gu, gdu)
    gu = np.zeros((m, curve.dim))
    gu[:n] = g_points * delta
    g_ahead = g_vel * (delta / width)
    gu[n : 2 * n] += g_ahead
    if m - 2 == 3 * n:  # central: behind = t − ε
        gu[2 * n : 3 * n] -= g_ahead
    else:  # forward: behind = t
        gu[:n] -= g_ahead
    return curve._backward(fwd, resc, gu, None)


def loss_and_grad(
    curve: NeuralGeodesic,
    metric,
    t,
    velocity: str = "finitediff",
    integral: str = "energy",
    rule: str = "trapezoid",
    fd_method: str = "central",
    fd_step: Optional[float] = None,
    grad: bool = True,
    n_threads: Optional[int] = None,
):
    """The loss of :func:`neural_geodesic_loss` and its gradient with respect to the flat parameters.

    Returns
    -------
    value : float
    gradient : ndarray, shape (curve.n_params,) (only with ``grad=True``)
    """
    check_curve_metric(metric, check_curve(curve))
    times = check_train_times(t)
    options = LossOptions(velocity, integral, rule, fd_method, fd_step, n_threads)
    return checked_loss_and_grad(curve, metric, times, options, grad)


@dataclass(frozen=True)
class LossOptions:
    """The options of the loss (see :func:`neural_geodesic_loss`), checked when made."""

    velocity: str = "finitediff"
    integral: str = "energy"
    rule: str = "trapezoid"
    fd_method: str = "central"
    fd_step: Optional[float] = None
    n_threads: Optional[int] = None

    def __post_init__(self):
        check_choice(self.velocity, "velocity", set(VELOCITIES))
        check_choice(self.integral, "integral", set(INTEGRALS))
        check_choice(self.rule, "rule", set(RULES))
        check_choice(self.fd_method, "fd_method", set(FD_METHODS))
        if self.fd_step is not None:
            check_positive(self.fd_step, "fd_step")
        check_threads(self.n_threads)


def checked_loss_and_grad(curve: NeuralGeodesic, metric, times: np.ndarray, options: LossOptions, grad: bool):
    """:func:`loss_and_grad` on checked arguments (the training loop checks once)."""
    if curve.is_constant:  # γ ≡ z_start: zero velocity, zero length and energy
        return (0.0, np.zeros(curve.n_params)) if grad else 0.0
    o = options
    points, vel, cache = _evaluate_for_loss(curve, times, o.velocity, o.fd_method, o.fd_step)
    out = integral_of_checked(metric, points[None], vel[None], times, o.integral, o.rule, grad, o.n_threads)
    if not grad:
        return float(out[0])
    values, g_points, g_vel = out
    return float(values[0]), _backward_for_loss(curve, cache, g_points[0], g_vel[0])


def neural_geodesic_loss(
    curve: NeuralGeodesic,
    metric,
    t,
    velocity: str = "finitediff",
    integral: str = "energy",
    rule: str = "trapezoid",
    fd_method: str = "central",
    fd_step: Optional[float] = None,
    n_threads: Optional[int] = None,
) -> float:
    """Length or energy of a neural geodesic sampled at times t (the seed's ``loss``).

    Parameters
    ----------
    curve : NeuralGeodesic
    metric : metric protocol object
        Any metric (RHVAE, dense, constant, pullback, ...) of dimension ``curve.dim``.
    t : array_like, shape (N,)
        Strictly increasing times in [−0.5, 1.5], N ≥ 2.
    velocity : {"finitediff", "exact"}
        Finite differences (the seed's default) or the forward-mode velocity.
    integral : {"energy", "length"}
    rule : {"trapezoid", "simpson", "aetk"}
        Quadrature rule of :func:`latentgeo.curve_integral`.
    fd_method : {"central", "forward"}
        Finite-difference scheme (steps as :func:`latentgeo.curve_velocity_finitediff`).
    fd_step : float, optional
        Overrides the finite-difference step ε (default ∛eps for central, √eps for forward).

    Returns
    -------
    float
    """
    return loss_and_grad(
        curve, metric, t, velocity, integral, rule, fd_method, fd_step, grad=False, n_threads=n_threads
    )


def train_neural_geodesic(
    curve: NeuralGeodesic,
    metric,
    t,
    optimizer: Optimizer,
    velocity: str = "finitediff",
    integral: str = "energy",
    rule: str = "trapezoid",
    fd_method: str = "central",
    fd_step: Optional[float] = None,
    loss_scale: float = 1.0,
    n_threads: Optional[int] = None,
) -> float:
    """One optimisation step on the loss (the seed's ``train!``).

    Parameters
    ----------
    curve : NeuralGeodesic
        Updated in place.
    metric : metric protocol object
    t : array_like, shape (N,)
        Training times (strictly increasing, in [−0.5, 1.5]).
    optimizer : Adam or SGD
        Holds the state between steps.
    velocity, integral, rule, fd_method, fd_step, n_threads :
        As in :func:`neural_geodesic_loss`.
    loss_scale : float
        Multiplies the gradient handed to the optimiser (``fit_neural_geodesic`` passes 1/initial loss,
        which makes training independent of the metric's overall scale).

    Returns
    -------
    float
        The loss before the step; NaN (and no update) when the loss or its gradient is
        not finite.
    """
    check_optimizer(optimizer)
    check_curve_metric(metric, check_curve(curve))
    times = check_train_times(t)
    options = LossOptions(velocity, integral, rule, fd_method, fd_step, n_threads)
    return optimizer_step(curve, metric, times, optimizer, loss_scale, options)


def check_optimizer(optimizer) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise ValueError(
            f"optimizer: expected a latentgeo.Adam or latentgeo.SGD optimiser, got {type(optimizer).__name__}"
        )
    return optimizer


def optimizer_step(
    curve: NeuralGeodesic, metric, times: np.ndarray, optimizer: Optimizer, loss_scale: float, options: LossOptions
) -> float:
    """One optimiser step on checked arguments; returns the loss (NaN when not finite)."""
    value, gradient = checked_loss_and_grad(curve, metric, times, options, grad=True)
    if np.isfinite(value) and np.all(np.isfinite(gradient)):
        if loss_scale != 1.0:
            gradient *= loss_scale
        optimizer.step(curve._params, gradient)
        curve._normalise_output()  # fix the gauge ĝ(0) = 0, ĝ(1) = 1: the curve is unchanged
    elif np.isfinite(value):
        value = float("nan")  # a non-finite gradient is reported as a failed step
    return value
