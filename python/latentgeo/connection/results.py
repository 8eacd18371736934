"""The result types of the connection: :class:`ExpMapResult`, :class:`LogMapResult` and
:class:`TransportResult`.

In all three, ``status`` (one name per trajectory, pair or curve) is the truth and ``converged`` is
``status == "converged"`` entry by entry (checked on construction). Every other status means the
entry failed: its values are the documented fallback (the last point reached, an estimate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["CONVERGED", "ExpMapResult", "LogMapResult", "TransportResult", "converged_mask"]

CONVERGED = "converged"
"""The status of an entry that succeeded."""


def converged_mask(status: Sequence[str]) -> np.ndarray:
    """``status == "converged"`` entry by entry: the one definition of a result's ``converged``."""
    return np.array([s == CONVERGED for s in status], dtype=bool)


class _StatusTruth:
    """Checks on construction that ``converged`` is ``status == "converged"``."""

    def __post_init__(self) -> None:
        if not np.array_equal(np.asarray(self.converged, dtype=bool), converged_mask(self.status)):
            raise ValueError('converged: must be status == "converged" entry by entry')


@dataclass
class ExpMapResult(_StatusTruth):
    """Geodesics shot from points z in directions v.

    Attributes
    ----------
    points : ndarray, shape (N, d)
        γ(1) for γ(0) = z, γ̇(0) = v; where a trajectory failed, the last point it reached (at
        ``t_reached``).
    t : ndarray (T,) or None
        The requested output times.
    curves, velocities : ndarray, shape (N, T, d), or None
        γ and γ̇ at the times ``t`` (NaN after a failed trajectory stopped).
    converged : ndarray of bool, shape (N,)
        ``status == "converged"``.
    status : list of str
    n_steps, n_rejected : ndarray of int, shape (N,)
        Accepted and rejected integrator steps.
    speed_drift : ndarray, shape (N,)
        |q(end) − q(0)| / q(0) with q = γ̇ᵀGγ̇, constant along an exact geodesic.
    t_reached : ndarray, shape (N,)
        Time reached (the end time unless the trajectory failed).
    starts, initial_velocities : ndarray, shape (N, d)
        z and v, for :func:`~latentgeo.parallel_transport` along these geodesics.
    """

    points: np.ndarray
    t: Optional[np.ndarray]
    curves: Optional[np.ndarray]
    velocities: Optional[np.ndarray]
    converged: np.ndarray
    status: List[str]
    n_steps: np.ndarray
    n_rejected: np.ndarray
    speed_drift: np.ndarray
    t_reached: np.ndarray
    starts: np.ndarray
    initial_velocities: np.ndarray


@dataclass
class LogMapResult(_StatusTruth):
    """Initial velocities of the geodesics from z0 to z1 on t ∈ [0, 1].

    Attributes
    ----------
    vectors : ndarray, shape (B, d)
        v with exp(z0, v) = z1; ‖v‖_G = the geodesic's length. For a pair that did not converge,
        the discrete geodesic's initial tangent (an estimate); NaN where there is none (a pair
        redone after shooting from ``init_velocity`` whose discrete geodesic could not be
        computed).
    distances : ndarray, shape (B,)
        ‖v‖_G(z0); for a pair that did not converge, the discrete geodesic's length (NaN where
        ``vectors`` is).
    converged : ndarray of bool, shape (B,)
        ``status == "converged"``.
    status : list of str
        Of the last shooting of the pair.
    residual : ndarray, shape (B,)
        ‖exp(z0, v)(1) − z1‖ (Euclidean) of the last shooting iterate.
    n_iter : ndarray of int, shape (B,)
        Newton iterations of the last shooting.
    discrete : GeodesicBatch or None
        The discrete geodesics that seeded the shooting, one per pair; None when the shooting
        started from ``init_velocity`` (the pairs that failed from there were redone from
        discrete geodesics, and "the last shooting" above is that redo).
    """

    vectors: np.ndarray
    distances: np.ndarray
    converged: np.ndarray
    status: List[str]
    residual: np.ndarray
    n_iter: np.ndarray
    discrete: object


@dataclass
class TransportResult(_StatusTruth):
    """Tangent vectors transported along curves.

    Attributes
    ----------
    vectors : ndarray
        The vectors at the end of the curve(s), in the shape they were given (for a failed
        trajectory: where it stopped, at ``t_reached``).
    t : ndarray (T,) or None
        The requested times.
    along : ndarray or None
        The vectors at the times ``t``: shape (T,) + vectors.shape for one curve, (C, T) +
        vectors.shape[1:] for C curves.
    converged : ndarray of bool, shape (C,)
        One entry per curve: ``status == "converged"``.
    status : list of str
        The transport's status; from :func:`~latentgeo.transport_along_geodesic`, for a pair whose
        log map did not converge, the log map's status (the vectors were then transported along
        the discrete geodesic).
    n_steps : ndarray of int, shape (C,)
        Integrator steps of the transport that gave ``vectors``.
    t_reached : ndarray, shape (C,)
        Time reached by that transport (1 unless it failed).
    """

    vectors: np.ndarray
    t: Optional[np.ndarray]
    along: Optional[np.ndarray]
    converged: np.ndarray
    status: List[str]
    n_steps: np.ndarray
    t_reached: np.ndarray
