"""Training a neural geodesic until its loss stops changing, and the one-call entry point."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from ... import _core
from ..._progress import progress_bar
from ..._validation import MAX_SAMPLES, check_int, check_positive
from ...curves import sampled_length_energy
from .curve import NeuralGeodesic
from .loss import (
    LossOptions,
    check_curve,
    check_curve_metric,
    check_optimizer,
    check_train_times,
    checked_loss_and_grad,
    optimizer_step,
)
from .optim import Adam, Optimizer

__all__ = ["NeuralGeodesicResult", "fit_neural_geodesic", "neural_geodesic", "fit_pair"]

# Defaults of fit_neural_geodesic/neural_geodesic, chosen so that the tests' closed forms converge untuned.
DEFAULT_N_POINTS = 100
DEFAULT_N_STEPS = 2000
DEFAULT_LR = 2e-2
DEFAULT_TOL = 3e-5
DEFAULT_WINDOW = 15
DEFAULT_N_EVAL = 2001
DEFAULT_LR_DECAY = 0.2
DEFAULT_N_DECAYS = 2
DEFAULT_BETAS = (0.9, 0.99)


@dataclass
class NeuralGeodesicResult:
    """Outcome of :func:`fit_neural_geodesic` / :func:`neural_geodesic`.

    Attributes
    ----------
    curve : NeuralGeodesic
        The trained curve (callable: times (N,) → points (N, d)).
    length, energy : float
        Measured with exact velocities and the trapezoid rule on a fine grid of ``n_eval``
        times (not the training loss).
    converged : bool
        The relative-change stopping rule was met.
    n_steps : int
        Optimisation steps taken.
    history : ndarray
        Training loss before each step (unnormalised).
    status : str
        Why the fit stopped.
    """

    curve: NeuralGeodesic
    length: float
    energy: float
    converged: bool
    n_steps: int
    history: np.ndarray = field(repr=False)
    status: str
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"NeuralGeodesicResult(length={self.length:.10g}, energy={self.energy:.10g}, "
            f"converged={self.converged}, n_steps={self.n_steps}, status={self.status!r})"
        )


def _measure(curve: NeuralGeodesic, metric, n_eval: int, n_threads) -> Tuple[float, float]:
    """Length and energy on a fine grid with exact velocities and the trapezoid rule."""
    if curve.is_constant:
        return 0.0, 0.0
    times = np.linspace(0.0, 1.0, n_eval)
    points, vel, _, _ = curve._evaluate(times, tangent=True)
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(vel))):
        return float("nan"), float("nan")
    lengths, energies = sampled_length_energy(
        metric, points, vel, _core.quadrature_weights(times, "trapezoid"), n_threads
    )
    return float(lengths[0]), float(energies[0])


def _check_fraction(value, name: str) -> float:
    x = check_positive(value, name)
    if x >= 1.0:
        raise ValueError(f"{name}: must lie in (0, 1), got {value!r}")
    return x


def _plateau(history: list, start: int, window: int, tol: float) -> bool:
    """Relative change of the mean loss between the last two windows of ``window`` steps
    (both after index ``start``) below ``tol``."""
    if len(history) - start < 2 * window:
        return False
    recent = np.mean(history[-window:])
    before = np.mean(history[-2 * window : -window])
    return abs(before - recent) <= tol * abs(recent)


def _fit(
    curve: NeuralGeodesic,
    metric,
    n_steps: int = DEFAULT_N_STEPS,
    t=None,
    tol: float = DEFAULT_TOL,
    optimizer: Optional[Optimizer] = None,
    *,
    n_points: int = DEFAULT_N_POINTS,
    velocity: str = "finitediff",
    integral: str = "energy",
    rule: str = "trapezoid",
    fd_method: str = "central",
    fd_step: Optional[float] = None,
    window: int = DEFAULT_WINDOW,
    lr_decay: float = DEFAULT_LR_DECAY,
    n_decays: int = DEFAULT_N_DECAYS,
    normalize: bool = True,
    n_eval: int = DEFAULT_N_EVAL,
    progress: bool = True,
    n_threads: Optional[int] = None,
) -> NeuralGeodesicResult:
    """Train a neural geodesic until the loss stops changing.

    Parameters
    ----------
    curve : NeuralGeodesic
        Trained in place.
    metric : metric protocol object
    n_steps : int
        Maximum number of optimisation steps.
    t : array_like, shape (N,), optional
        Training times (default ``linspace(0, 1, n_points)``).
    tol : float
        Stop when the mean loss of the last ``window`` steps differs from that of the
        ``window`` steps before by less than ``tol`` relative.
    optimizer : Optimizer, optional
        Default ``Adam(lr=2e-2, betas=(0.9, 0.99))`` (``DEFAULT_LR``, ``DEFAULT_BETAS``).
    n_points : int
        Number of training times when ``t`` is not given.
    velocity, integral, rule, fd_method, fd_step :
        As in :func:`~latentgeo.solvers.neural.loss.neural_geodesic_loss`.
    window : int
        Window of the stopping rule.
    lr_decay, n_decays :
        On each of the first ``n_decays`` plateaus (the stopping rule met), the learning
        rate is multiplied by ``lr_decay`` and training goes on; the next plateau stops.
        The optimiser's learning rate is restored on return.
    normalize : bool
        Divide the loss by its initial value, so that training does not depend on the
        metric's overall scale.
    n_eval : int
        Size of the grid on which ``length`` and ``energy`` are measured.
    progress : bool
        Show a tqdm progress bar.
    n_threads : int, optional
        Threads of the metric evaluation (None: all cores).

    Returns
    -------
    NeuralGeodesicResult
        The curve keeps the parameters with the lowest training loss seen. If the loss
        becomes NaN/Inf, the fit stops there, with ``converged=False`` and the reason in
        ``status``.
    """
    n_steps = check_int(n_steps, "n_steps", 1)
    n_points = check_int(n_points, "n_points", 2, MAX_SAMPLES)
    window = check_int(window, "window", 1)
    n_eval = check_int(n_eval, "n_eval", 2, MAX_SAMPLES)
    tol = check_positive(tol, "tol")
    times = np.linspace(0.0, 1.0, n_points) if t is None else check_train_times(t)
    optimizer = check_optimizer(Adam(lr=DEFAULT_LR, betas=DEFAULT_BETAS) if optimizer is None else optimizer)
    lr_decay = _check_fraction(lr_decay, "lr_decay")
    n_decays = check_int(n_decays, "n_decays", 0)
    initial_lr = optimizer.lr
    loss_options = LossOptions(velocity, integral, rule, fd_method, fd_step, n_threads)
    initial = checked_loss_and_grad(curve, metric, times, loss_options, grad=False)
    start = time.perf_counter()
    # Normalising by the initial loss makes the whole trajectory independent of the metric's scale.
    scale = 1.0 / initial if normalize and np.isfinite(initial) and initial > 0 else 1.0
    history, converged, status = [], False, f"reached n_steps = {n_steps}"
    if curve.is_constant:
        converged, status, n_steps = True, "z_start == z_end: constant curve", 0
    bar = progress_bar(n_steps, progress, "neural geodesic", leave=False)
    before, best, best_value = curve.get_params(), curve.get_params(), np.inf
    plateau_start, decays = 0, 0
    try:
        for step in range(n_steps):
            before[...] = curve._params
            value = optimizer_step(curve, metric, times, optimizer, scale, loss_options)
            if not np.isfinite(value):
                status = f"diverged: non-finite loss or gradient at step {step}; best parameters restored"
                break
            history.append(value)
            if value < best_value:  # ``before`` are the parameters this loss was measured at
                best_value, best[...] = value, before
            bar.update(1)
            if step % 50 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{value:.6g}", lr=f"{optimizer.lr:.2g}", refresh=False)
            if _plateau(history, plateau_start, window, tol):
                if decays == n_decays:
                    converged = True
                    status = f"relative change < tol = {tol:g} over {window} steps after {decays} learning-rate decays"
                    break
                optimizer.lr *= lr_decay  # a plateau: refine with a smaller step
                decays, plateau_start = decays + 1, len(history)
    finally:
        bar.close()
        optimizer.lr = initial_lr
    if np.isfinite(best_value):
        curve.set_params(best)
    length, energy = _measure(curve, metric, n_eval, n_threads)
    if not (np.isfinite(length) and np.isfinite(energy)):
        converged, status = False, status + "; length/energy not finite on the evaluation grid"
    return NeuralGeodesicResult(
        curve, length, energy, converged, len(history), np.asarray(history), status, time.perf_counter() - start
    )


@functools.wraps(_fit, assigned=("__doc__", "__annotations__"))
def fit_neural_geodesic(curve: NeuralGeodesic, metric, *args, **options) -> NeuralGeodesicResult:
    # The signature and docstring are _fit's (inspect follows __wrapped__); this entry point
    # checks the curve and the metric, which the internal callers have checked already.
    check_curve_metric(metric, check_curve(curve))
    return _fit(curve, metric, *args, **options)


def neural_geodesic(
    metric,
    z_start,
    z_end,
    *,
    hidden: Sequence[int] = (32, 32),
    activation: str = "tanh",
    seed=None,
    lr: float = DEFAULT_LR,
    optimizer: Optional[Optimizer] = None,
    **options,
) -> NeuralGeodesicResult:
    """Fit a neural geodesic between two points (the convenience entry point).

    Parameters
    ----------
    metric : metric protocol object
    z_start, z_end : array_like, shape (d,)
    hidden, activation, seed :
        Of the :class:`NeuralGeodesic`.
    lr : float
        Learning rate of the default Adam optimiser (ignored when ``optimizer`` is given).
    optimizer : Optimizer, optional
    **options :
        Passed to :func:`fit_neural_geodesic` (``n_steps``, ``t``, ``tol``, ``n_points``, ``velocity``,
        ``integral``, ``rule``, ``progress``, ``n_threads``, ...).

    Returns
    -------
    NeuralGeodesicResult
    """
    curve = NeuralGeodesic(z_start, z_end, hidden=hidden, activation=activation, seed=seed)
    check_curve_metric(metric, curve)
    return _fit_new_curve(curve, metric, lr, optimizer, options)


def fit_pair(metric, z_start: np.ndarray, z_end: np.ndarray, options: dict) -> NeuralGeodesicResult:
    """:func:`neural_geodesic` with its keyword ``options`` for a metric that the caller checked
    (``geodesics(method="neural")``)."""
    rest = dict(options)
    curve = NeuralGeodesic(z_start, z_end, **{k: rest.pop(k) for k in ("hidden", "activation", "seed") if k in rest})
    return _fit_new_curve(curve, metric, rest.pop("lr", DEFAULT_LR), rest.pop("optimizer", None), rest)


def _fit_new_curve(curve, metric, lr, optimizer, options: dict) -> NeuralGeodesicResult:
    optimizer = Adam(lr=lr, betas=DEFAULT_BETAS) if optimizer is None else optimizer
    return _fit(curve, metric, optimizer=optimizer, **options)
