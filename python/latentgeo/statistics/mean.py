"""The weighted Fréchet (Karcher) mean: argmin_m Σ wᵢ d²(m, zᵢ).

At a candidate mean m the logs vᵢ = log_m(zᵢ) (one batch of shootings of the toolbox's log map)
give the Riemannian gradient −2 Σ wᵢ vᵢ / Σ wᵢ of the variance. The mean solves r(m) = Σ wᵢ vᵢ /
Σ wᵢ = 0; the steps are quasi-Newton steps on r in coordinates: the first is the Gauss–Newton step
m + r (exact in flat coordinates), the next use Broyden's estimate of ∂r/∂m, so that curvature
costs a few iterations instead of a slow linear rate. Each step is halved until the variance does
not increase (beyond its measurement error). The first logs start from the discrete geodesics;
later ones start from the previous logs shifted by the step, so that each shooting takes a Newton
iteration or two, and the pairs whose shooting fails from there are redone from the discrete
geodesics. The logs' accuracy follows the gradient: the first ones are the discrete geodesics'
initial tangents (``tol=1e-5``, no shooting), the last ones are shot to ``log_tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .. import _core
from .._validation import as_float_array, as_points, check_int, check_metric, check_positive, check_threads

__all__ = ["FrechetMeanResult", "frechet_mean"]

_MIN_STEP = 2.0**-10  # halvings of the Gauss-Newton step before giving up
_FIRST_TOL = 1e-5  # accuracy of the first logs (discrete geodesics alone)


@dataclass
class FrechetMeanResult:
    """The weighted Fréchet mean of M points.

    Attributes
    ----------
    mean : ndarray, shape (d,)
    variance : float
        Σ wᵢ d²(mean, zᵢ) / Σ wᵢ.
    distances : ndarray, shape (M,)
        d(mean, zᵢ) (for a point in ``failed``: the discrete geodesic's length, an estimate).
    log_vectors : ndarray, shape (M, d)
        log_mean(zᵢ), the initial velocities of the geodesics from the mean.
    converged : bool
        The relative gradient norm ‖Σ wᵢ vᵢ‖_G / (Σ wᵢ · rms distance) reached ``tol`` and every
        log converged.
    status : str
        ``"converged"``, ``"max_iter"``, ``"log_failed"`` (the logs of the points in ``failed``
        did not converge; the mean uses their discrete estimates, or leaves out points without
        one) or ``"no_progress"`` (no step of at least 2⁻¹⁰ of the Gauss–Newton step lowered the
        variance: the accuracy of the logs is reached).
    n_iter : int
        Accepted steps.
    gradient_norm : float
        The final relative gradient norm.
    failed : list of int
        Indices of the points whose log did not converge at the final mean.
    """

    mean: np.ndarray
    variance: float
    distances: np.ndarray
    log_vectors: np.ndarray = field(repr=False)
    converged: bool
    status: str
    n_iter: int
    gradient_norm: float
    failed: List[int] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Batched logs from one base point
# --------------------------------------------------------------------------------------------
class _Logs:
    """log_m(zᵢ) for all points at one base m: vectors, distances, converged."""

    def __init__(self, base: np.ndarray, vectors: np.ndarray, distances: np.ndarray, converged: np.ndarray):
        self.base, self.vectors, self.distances, self.converged = base, vectors, distances, converged

    def variance(self, w: np.ndarray) -> float:
        usable = np.isfinite(self.distances)
        return float(np.sum(w[usable] * self.distances[usable] ** 2) / np.sum(w[usable]))


def _logs_discrete(metric, base: np.ndarray, points: np.ndarray, n_threads, tol) -> _Logs:
    from ..connection.maps import log_map

    res = log_map(metric, base, points, tol=tol, rtol=_rtol(tol), n_threads=n_threads)
    return _Logs(base, res.vectors, res.distances, res.converged.copy())


def _logs_tangents(metric, base: np.ndarray, points: np.ndarray, n_threads, tol) -> _Logs:
    """Logs estimated by the discrete geodesics alone (initial tangents and lengths, no shooting):
    enough for the first step, far from the mean."""
    from ..solvers.api import HermiteCurve, geodesics

    starts = np.ascontiguousarray(np.broadcast_to(base, points.shape))
    batch = geodesics(metric, starts, points, tol=tol, progress=False, n_threads=n_threads)
    vectors = np.stack(
        [
            HermiteCurve(nodes).tangents[0] if np.all(np.isfinite(nodes)) else np.full(len(base), np.nan)
            for nodes in batch.node_list
        ]
    )
    return _Logs(base, vectors, np.where(np.isfinite(vectors[:, 0]), batch.length, np.nan), batch.converged.copy())


def _rtol(tol: float) -> float:
    """The integrator's step tolerance for logs of accuracy tol (the toolbox default 1e-10 at most)."""
    return float(np.clip(0.1 * tol, 1e-10, 1e-6))


def _logs_warm(metric, base: np.ndarray, points: np.ndarray, guess: np.ndarray, n_threads, tol) -> _Logs:
    """Shooting from given initial velocities; the pairs that fail are redone from discrete geodesics."""
    from ..connection import maps as conn

    backend = conn._backend(metric, n_threads)
    opts = conn._options(tol=tol, rtol=_rtol(tol))
    starts = np.ascontiguousarray(np.broadcast_to(base, points.shape))
    out = conn._run_chunks(
        len(points),
        backend.chunk(len(points), conn._PAIRS_PER_CALL),
        lambda s: _core.log_map(
            **backend.native(), z0=starts[s], z1=points[s], v_init=guess[s], options=opts, n_threads=backend.threads
        ),
    )
    vectors, converged = out["vectors"].copy(), out["status"] == 0
    if not converged.all():
        redo = np.flatnonzero(~converged)
        try:
            again = _logs_discrete(metric, base, points[redo], n_threads, tol)
            vectors[redo], converged[redo] = again.vectors, again.converged
        except ValueError:  # the metric failed on every redone pair: no estimate for them
            vectors[redo] = np.nan
    return _Logs(base, vectors, _norms(metric, starts, vectors, n_threads), converged)


def _norms(metric, starts: np.ndarray, vectors: np.ndarray, n_threads) -> np.ndarray:
    """‖v‖_G at the starts; NaN where v is not finite."""
    out = np.full(len(vectors), np.nan)
    ok = np.all(np.isfinite(vectors), axis=1)
    if ok.any():
        q = np.asarray(metric.quadratic_form(starts[ok], vectors[ok], n_threads=n_threads), dtype=np.float64)
        out[ok] = np.sqrt(np.maximum(q, 0.0))
    return out


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------
def check_weights(weights, m: int) -> np.ndarray:
    if weights is None:
        return np.ones(m)
    w = as_float_array(weights, "weights", ndim=1, allow_empty=True)
    if w.shape != (m,):
        raise ValueError(f"weights: expected {m} weights (one per point), got shape {w.shape}")
    if np.any(w < 0):
        raise ValueError("weights: must be non-negative")
    if not np.sum(w) > 0:
        raise ValueError("weights: must not all be zero")
    return w


def _initial_mean(init, points: np.ndarray, w: np.ndarray, dim: int) -> np.ndarray:
    if init is None:
        return w @ points / np.sum(w)  # the Euclidean weighted mean of the coordinates
    start, single = as_points(init, "init", dim)
    if not single:
        raise ValueError(f"init: expected one point of shape ({dim},), got shape {np.shape(init)}")
    return start[0]


# --------------------------------------------------------------------------------------------
# The iteration
# --------------------------------------------------------------------------------------------
@dataclass
class _State:
    """The logs at a candidate mean, with the descent direction r = Σ wᵢ vᵢ / Σ wᵢ and its measures."""

    logs: _Logs
    tol: float  # accuracy of these logs
    r: np.ndarray
    gnorm: float  # ‖r‖_G / rms distance
    variance: float
    n_failed: int


def _state(metric, logs: _Logs, tol: float, w: np.ndarray, n_threads) -> _State:
    usable = np.all(np.isfinite(logs.vectors), axis=1)
    r = w[usable] @ logs.vectors[usable] / np.sum(w[usable])
    norm = float(np.sqrt(max(metric.quadratic_form(logs.base[None], r[None], n_threads=n_threads)[0], 0.0)))
    variance = logs.variance(w)
    gnorm = norm / np.sqrt(variance) if variance > 0 else 0.0
    return _State(logs, tol, r, gnorm, variance, int(np.sum(~logs.converged)))


def _accepts(trial: _State, current: _State) -> bool:
    """The variance does not increase beyond its measurement error (10 × the logs' relative
    accuracy), and the trial is better in variance or gradient (the only reliable signal once the
    variance's changes fall below that error). A trial with more failed logs is refused."""
    if trial.n_failed > current.n_failed or not np.isfinite(trial.variance):
        return False
    noise = 10.0 * max(trial.tol, current.tol)
    return trial.variance <= current.variance * (1 + noise) and (
        trial.variance < current.variance or trial.gnorm < current.gnorm
    )


def _descend(metric, points, w, state: _State, tol, max_iter, n_threads, log_tol):
    """Quasi-Newton steps on r(m) = 0 in coordinates (Broyden, J₀ = −I: the first step is the
    Gauss–Newton step m + r), halved until accepted; the logs' accuracy follows the gradient.
    Returns (final state, accepted steps, status)."""
    dim = len(state.r)
    jac = -np.eye(dim)
    n_iter = 0
    while True:
        tight = state.tol <= log_tol
        if state.gnorm <= tol and tight:
            return state, n_iter, "converged"
        if n_iter >= max_iter:
            return state, n_iter, "max_iter"
        if state.gnorm <= tol:  # converged on loose logs: measure again, accurately
            state = _state(
                metric,
                _logs_warm(metric, state.logs.base, points, state.logs.vectors, n_threads, log_tol),
                log_tol,
                w,
                n_threads,
            )
            continue
        try:
            direction = -np.linalg.solve(jac, state.r)
        except np.linalg.LinAlgError:
            jac, direction = -np.eye(dim), state.r
        trial = _line_search(metric, points, w, state, direction, n_threads, _log_tolerance(state.gnorm, log_tol))
        if trial is None:
            if tight:
                return state, n_iter, "no_progress"
            state = _state(
                metric,
                _logs_warm(metric, state.logs.base, points, state.logs.vectors, n_threads, log_tol),
                log_tol,
                w,
                n_threads,
            )
            jac = -np.eye(dim)
            continue
        step, dr = trial.logs.base - state.logs.base, trial.r - state.r
        if n_iter == 0 and (step @ dr) < 0:  # rescale J₀ = −I by the first secant (Barzilai–Borwein)
            jac = (step @ dr) / (step @ step) * np.eye(dim)
        jac += np.outer(dr - jac @ step, step) / (step @ step)  # Broyden's update
        state, n_iter = trial, n_iter + 1


def _log_tolerance(gnorm: float, log_tol: float) -> float:
    """Logs need an accuracy of about 1e-3 of the current relative gradient (never looser than 1e-5)."""
    return float(np.clip(1e-3 * gnorm, log_tol, max(1e-5, log_tol)))


def _line_search(metric, points, w, state: _State, direction, n_threads, tol_logs) -> Optional[_State]:
    tau = 1.0
    while tau >= _MIN_STEP:
        candidate = state.logs.base + tau * direction
        guess = state.logs.vectors - tau * direction  # first-order shift of the base point
        logs = _logs_warm(metric, candidate, points, np.where(np.isfinite(guess), guess, 0.0), n_threads, tol_logs)
        trial = _state(metric, logs, tol_logs, w, n_threads)
        if _accepts(trial, state):
            return trial
        tau *= 0.5
    return None


def frechet_mean(
    metric,
    points,
    weights=None,
    *,
    init=None,
    tol: float = 1e-10,
    max_iter: int = 100,
    log_tol: float = 1e-11,
    n_threads: Optional[int] = None,
) -> FrechetMeanResult:
    """The weighted Fréchet mean of points on the latent manifold.

    Parameters
    ----------
    metric : metric protocol object
        Any metric that :func:`latentgeo.log_map` accepts (native RHVAE, pullback, constant and
        scaled ones in parallel; others through the batched callback).
    points : array_like, shape (M, d)
    weights : array_like, shape (M,), optional
        Non-negative, not all zero (default: equal weights).
    init : array_like, shape (d,), optional
        Starting point (default: the weighted Euclidean mean of the coordinates).
    tol : float
        Stop when ‖Σ wᵢ log_m(zᵢ)‖_G / Σ wᵢ <= tol · rms distance (the mean's error is about tol
        times the spread of the points; invariant to the metric's scale).
    max_iter : int
        Accepted steps at most.
    log_tol : float
        Accuracy of each log's shooting (``tol`` of :func:`latentgeo.log_map`).
    n_threads : int, optional
        Threads (None: all cores); the result does not depend on it.

    Returns
    -------
    FrechetMeanResult
        A point whose log fails is named in ``failed`` and the result is flagged
        (``converged=False``, ``status="log_failed"``).
    """
    dim = check_metric(metric)
    pts = as_float_array(points, "points", ndim=2)
    if pts.shape[1] != dim:
        raise ValueError(f"points: expected dimension d = {dim}, got shape {pts.shape}")
    w = check_weights(weights, len(pts))
    tol = check_positive(tol, "tol")
    log_tol = check_positive(log_tol, "log_tol")
    max_iter = check_int(max_iter, "max_iter", 0)
    check_threads(n_threads)
    start = _initial_mean(init, pts, w, dim)
    first_tol = max(log_tol, _FIRST_TOL)
    try:
        logs = _logs_tangents(metric, start, pts, n_threads, first_tol)
    except ValueError as exc:  # every geodesic from the start failed
        raise ValueError(
            f"init: no geodesic from the starting point {start.tolist()} could be computed ({exc})"
        ) from exc
    state = _state(metric, logs, first_tol, w, n_threads)
    state, n_iter, status = _descend(metric, pts, w, state, tol, max_iter, n_threads, log_tol)
    logs = state.logs
    failed = np.flatnonzero(~logs.converged).tolist()
    if failed and status == "converged":
        status = "log_failed"
    return FrechetMeanResult(
        mean=logs.base.copy(),
        variance=state.variance,
        distances=logs.distances,
        log_vectors=logs.vectors,
        converged=status == "converged",
        status=status,
        n_iter=n_iter,
        gradient_norm=state.gnorm,
        failed=failed,
    )
