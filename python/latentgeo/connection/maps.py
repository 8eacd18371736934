"""The exponential and logarithmic maps (see :mod:`latentgeo.connection` for the integrators and
the shooting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .. import _core
from .._validation import check_metric
from ..curves import HermiteCurve, check_times
from ..solvers.api import geodesics
from .backend import DEFAULTS, PAIRS_PER_CALL, TRAJECTORIES_PER_CALL, Backend, core_options, make_backend, status_names
from .inputs import point_pairs, reject_options
from .results import ExpMapResult, LogMapResult, converged_mask

__all__ = ["exp_map", "log_map"]

_INIT_TOL = 1e-6  # tol of the discrete geodesics that seed the shooting (they only seed it)


# --------------------------------------------------------------------------------------------
# The exponential map
# --------------------------------------------------------------------------------------------
def _output_times(t):
    """(t_end, times passed to the core, index of t = 1 among them or None, user times or None)."""
    if t is None:
        return 1.0, np.zeros(0), None, None
    times = check_times(t, "t", lo=0.0)
    t_end = max(1.0, float(times[-1]))
    if t_end == 1.0:
        return 1.0, times, None, times
    core_times = np.union1d(times, [1.0])
    return t_end, core_times, int(np.searchsorted(core_times, 1.0)), times


def exp_map(
    metric,
    z,
    v,
    t=None,
    *,
    rtol: float = DEFAULTS.rtol,
    max_steps: int = DEFAULTS.max_steps,
    n_threads: Optional[int] = None,
    **options,
) -> ExpMapResult:
    """The exponential map: γ(1) of the geodesics with γ(0) = z and γ̇(0) = v.

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
        Start points (one point is shared by all v).
    v : array_like, shape (N, d) or (d,)
        Initial velocities (one vector is shared by all z). v = 0 gives γ(1) = z.
    t : array_like, shape (T,), optional
        Strictly increasing times >= 0 at which to also return the curves and velocities (the
        integration runs to max(1, t[-1])).
    rtol : float
        Relative tolerance of each integrator step (default 1e-10); positions are controlled
        against the coordinate scale max(|z|, |v|·t_end), velocities against |v|.
    max_steps : int
        Accepted plus rejected steps per trajectory (default 20000).
    n_threads : int, optional
        Threads over trajectories (None: all cores); results do not depend on it.

    Returns
    -------
    ExpMapResult
    """
    reject_options(options)
    dim = check_metric(metric)
    starts, velocities, _ = point_pairs(z, v, ("z", "v"), dim)
    t_end, core_times, one, user_times = _output_times(t)
    backend = make_backend(metric, n_threads)
    opts = core_options(rtol=rtol, max_steps=max_steps)
    out = backend.run(
        len(starts),
        TRAJECTORIES_PER_CALL,
        lambda s: _core.exp_map(
            **backend.native(),
            z=starts[s],
            v=velocities[s],
            t_end=t_end,
            t_out=core_times,
            options=opts,
            n_threads=backend.threads,
        ),
    )
    n, n_out = len(starts), len(core_times)
    curves = out["curves"].reshape(n, n_out, dim) if n_out else None
    curve_velocities = out["curve_velocities"].reshape(n, n_out, dim) if n_out else None
    points = out["points"]
    if one is not None:  # γ(1) from the dense output; the user's times without the added 1
        points = np.where(np.isnan(curves[:, one]), points, curves[:, one])
        keep = np.isin(core_times, user_times)
        curves, curve_velocities = curves[:, keep], curve_velocities[:, keep]
    status = status_names(out["status"])
    return ExpMapResult(
        points=points,
        t=user_times,
        curves=curves,
        velocities=curve_velocities,
        converged=converged_mask(status),
        status=status,
        n_steps=out["n_steps"],
        n_rejected=out["n_rejected"],
        speed_drift=out["speed_drift"],
        t_reached=out["t_reached"],
        starts=starts,
        initial_velocities=velocities,
    )


# --------------------------------------------------------------------------------------------
# The logarithmic map
# --------------------------------------------------------------------------------------------
def _initial_tangents(batch, z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
    """γ̇(0) of each geodesic of the batch (the discrete solver's C¹ Hermite curve, or a neural
    curve's velocity); the chord z1 − z0 where a solve ended non-finite."""
    zero = np.zeros(1)
    if batch.method == "discrete":
        tangents = np.stack([HermiteCurve(nodes).tangents[0] for nodes in batch.node_list])
    else:
        tangents = np.stack([batch[i].curve.velocity(zero)[0] for i in range(len(batch))])
    bad = ~np.all(np.isfinite(tangents), axis=1)
    tangents[bad] = (z1 - z0)[bad]
    return tangents


def _seed_options(geodesic_options, *, progress: bool, n_threads) -> dict:
    """Keyword arguments of :func:`latentgeo.geodesics` for the seeding discrete geodesics."""
    if not isinstance(geodesic_options, (dict, type(None))):
        raise ValueError("geodesic_options: expected a dict of geodesics() options")
    seed = {"progress": progress, "n_threads": n_threads, **(geodesic_options or {})}
    if seed.get("method", "discrete") == "discrete":
        seed.setdefault("tol", _INIT_TOL)
    return seed


def _check_guess(init_velocity, shape) -> np.ndarray:
    """init_velocity as a (B, d) float array (a single (d,) vector is shared by all pairs)."""
    try:
        guess = np.asarray(init_velocity, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"init_velocity: expected an array of numbers ({exc})") from exc
    if guess.shape == shape[1:]:
        guess = np.broadcast_to(guess, shape)
    if guess.shape != shape:
        raise ValueError(
            f"init_velocity: expected shape {shape} (one velocity per pair) or ({shape[1]},), got {guess.shape}"
        )
    return np.ascontiguousarray(guess)


@dataclass(frozen=True)
class _Shooting:
    """Newton shooting of the core for one metric and one set of options, from discrete geodesics
    or from given initial velocities."""

    metric: object
    backend: Backend
    opts: object  # _core.ConnectionOptions
    seed: dict  # options of the seeding geodesics()
    n_threads: Optional[int]

    def shoot(self, a: np.ndarray, b: np.ndarray, guess: np.ndarray) -> Dict[str, np.ndarray]:
        bk = self.backend
        return bk.run(
            len(a),
            PAIRS_PER_CALL,
            lambda s: _core.log_map(
                **bk.native(), z0=a[s], z1=b[s], v_init=guess[s], options=self.opts, n_threads=bk.threads
            ),
        )

    def norms(self, a: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        q = np.asarray(self.metric.quadratic_form(a, vectors, n_threads=self.n_threads), dtype=np.float64)
        return np.sqrt(np.maximum(q, 0.0))

    def from_discrete(self, a: np.ndarray, b: np.ndarray) -> LogMapResult:
        discrete = geodesics(self.metric, a, b, **self.seed)
        guess = _initial_tangents(discrete, a, b)
        out = self.shoot(a, b, guess)
        status = status_names(out["status"])
        converged = converged_mask(status)
        vectors = np.where(converged[:, None], out["vectors"], guess)
        return LogMapResult(
            vectors=vectors,
            distances=np.where(converged, self.norms(a, vectors), discrete.length),
            converged=converged,
            status=status,
            residual=out["residual"],
            n_iter=out["n_iter"],
            discrete=discrete,
        )

    def from_guess(self, a: np.ndarray, b: np.ndarray, guess: np.ndarray) -> LogMapResult:
        """Shooting from ``guess``; the pairs that fail are redone from discrete geodesics (NaN
        vectors where those cannot be computed either: the metric raised at every redone pair)."""
        out = self.shoot(a, b, guess)
        status = status_names(out["status"])
        converged = converged_mask(status)
        vectors, residual, n_iter = out["vectors"].copy(), out["residual"].copy(), out["n_iter"].copy()
        distances = np.full(len(a), np.nan)
        if converged.any():
            distances[converged] = self.norms(a[converged], vectors[converged])
        redo = np.flatnonzero(~converged)
        if len(redo):
            try:
                again = self.from_discrete(a[redo], b[redo])
            except ValueError:  # no estimate for them
                vectors[redo] = np.nan
            else:
                vectors[redo], distances[redo] = again.vectors, again.distances
                residual[redo], n_iter[redo] = again.residual, again.n_iter
                for i, s in zip(redo, again.status):
                    status[i] = s
        return LogMapResult(
            vectors=vectors,
            distances=distances,
            converged=converged_mask(status),
            status=status,
            residual=residual,
            n_iter=n_iter,
            discrete=None,
        )


def log_map(
    metric,
    z0,
    z1,
    *,
    init_velocity=None,
    tol: float = DEFAULTS.tol,
    max_iter: int = DEFAULTS.max_iter,
    rtol: float = DEFAULTS.rtol,
    max_steps: int = DEFAULTS.max_steps,
    n_threads: Optional[int] = None,
    progress: bool = False,
    geodesic_options: Optional[dict] = None,
    **options,
) -> LogMapResult:
    """The logarithmic map: v with exp(z0, v) = z1, for B pairs.

    The discrete geodesic between each pair (:func:`latentgeo.geodesics`, ``tol=1e-6`` unless
    ``geodesic_options`` says otherwise) gives the initial tangent; damped Newton shooting refines
    it, with the Jacobian ∂γ(1)/∂v from the variational equations. Shooting from the minimising
    discrete geodesic finds the minimising geodesic where it is unique. With ``init_velocity`` the
    shooting starts from it instead, and only the pairs that fail from there are redone from
    discrete geodesics (a good guess, such as the logs at a nearby base point, saves the discrete
    solves and most Newton iterations).

    Parameters
    ----------
    metric : metric object
    z0, z1 : array_like, shape (B, d) or (d,)
        Start and end points (a single point broadcasts). z0 = z1 gives v = 0.
    init_velocity : array_like, shape (B, d) or (d,), optional
        Initial guesses of v (one vector is shared by all pairs). A row that is not finite is no
        guess: its pair fails the first shooting and is redone from its discrete geodesic.
    tol : float
        Shooting stops when ‖exp(z0, v) − z1‖∞ <= tol·max(‖z0‖∞, ‖z1‖∞, ‖z1 − z0‖∞) (default 1e-10).
    max_iter : int
        Newton iterations per pair (default 20).
    rtol, max_steps : float, int
        Integrator settings as in :func:`exp_map`.
    n_threads : int, optional
    progress : bool
        Progress bar of the discrete geodesics.
    geodesic_options : dict, optional
        Keyword arguments of :func:`latentgeo.geodesics` for the initial curves.

    Returns
    -------
    LogMapResult
        ``discrete`` is None when ``init_velocity`` was given.

    Raises
    ------
    ValueError
        Bad input (named), or, without ``init_velocity``, the metric raised at every discrete
        geodesic.
    """
    reject_options(options)
    dim = check_metric(metric)
    a, b, _ = point_pairs(z0, z1, ("z0", "z1"), dim)
    guess = None if init_velocity is None else _check_guess(init_velocity, a.shape)
    shooting = _Shooting(
        metric=metric,
        backend=make_backend(metric, n_threads),
        opts=core_options(tol=tol, max_iter=max_iter, rtol=rtol, max_steps=max_steps),
        seed=_seed_options(geodesic_options, progress=progress, n_threads=n_threads),
        n_threads=n_threads,
    )
    return shooting.from_discrete(a, b) if guess is None else shooting.from_guess(a, b, guess)
