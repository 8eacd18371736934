"""Results of the geodesic solvers: one geodesic, a batch of them, and distance matrices.

Statuses (see :mod:`latentgeo.solvers.api`): ``"converged"``, ``"max_iter"``,
``"line_search_failed"``, ``"max_nodes"`` from the optimiser, and the failures of the metric on
a pair's curve ``"non_finite"``, ``"singular_metric"``, ``"metric_error"`` and, with an
executor, ``"worker_error"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ..curves import HermiteCurve

__all__ = ["GeodesicResult", "GeodesicBatch", "DistanceResult", "STATUS", "FAILURES"]

# The solver's status names, index = status code (the C++ core's table).
STATUS = tuple(_core.geodesic_status_names())
# Statuses of a pair on whose curve the metric failed (the others are the optimiser's).
FAILURES = frozenset({"non_finite", "singular_metric", "metric_error", "worker_error"})


@dataclass
class GeodesicResult:
    """One geodesic.

    Attributes
    ----------
    nodes : ndarray, shape (n, d)
        The curve's nodes at the times ``t``; ``nodes[0]`` and ``nodes[-1]`` are the endpoints.
    t : ndarray, shape (n,)
        Uniform times on [0, 1].
    curve : callable
        ``curve(t)`` with t (N,) in [0, 1] returns points (N, d) (interpolates the nodes).
    length, energy : float
        Measured length and energy of ``curve`` (see :mod:`latentgeo.solvers.api`); NaN when the
        metric failed before any curve could be measured (see ``status``).
    straight_length : float
        Length of the straight segment between the endpoints, for comparison (inf when the
        metric is not defined somewhere on it).
    converged : bool
    n_iter : int
        Optimiser iterations (all levels), or the neural method's training steps.
    status : str
        See :mod:`latentgeo.solvers.api`.
    method : str
    message : str
        Why the metric failed (statuses ``"singular_metric"``, ``"non_finite"``,
        ``"metric_error"``, ``"worker_error"``), naming the pair; "" otherwise.
    """

    nodes: np.ndarray
    t: np.ndarray
    curve: Callable
    length: float
    energy: float
    straight_length: float
    converged: bool
    n_iter: int
    status: str
    method: str = "discrete"
    message: str = ""


@dataclass
class GeodesicBatch:
    """B geodesics (the arrays are indexed by pair).

    ``nodes`` has a common node count n (the largest of the batch); curves solved with fewer
    nodes are resampled on their interpolant. ``batch[i]`` returns the i-th
    :class:`GeodesicResult` with the nodes of its own solve. ``messages[i]`` says why the metric
    failed on pair i ("" when it did not); ``failed`` lists those pairs.
    """

    length: np.ndarray
    energy: np.ndarray
    straight_length: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    status: List[str]
    node_list: List[np.ndarray] = field(repr=False)
    method: str = "discrete"
    curves: Optional[List[Callable]] = field(default=None, repr=False)
    messages: Optional[List[str]] = field(default=None, repr=False)
    # The exception behind each failure (None elsewhere), re-raised when every pair failed.
    errors: Optional[List[Optional[BaseException]]] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.messages is None:
            self.messages = [""] * len(self.length)
        if self.errors is None:
            self.errors = [None] * len(self.length)

    def __len__(self) -> int:
        return len(self.length)

    @property
    def failed(self) -> List[int]:
        """Indices of the pairs on whose curve the metric failed (see ``messages``)."""
        return [i for i, status in enumerate(self.status) if status in FAILURES]

    def _curve(self, i: int) -> Callable:
        return self.curves[i] if self.curves is not None else HermiteCurve(self.node_list[i])

    @property
    def nodes(self) -> np.ndarray:
        """Nodes of all curves on a common uniform grid, shape (B, n, d)."""
        n = max(len(x) for x in self.node_list)
        t = np.linspace(0.0, 1.0, n)
        return np.stack([x if len(x) == n else self._curve(i)(t) for i, x in enumerate(self.node_list)])

    def __getitem__(self, i: int) -> GeodesicResult:
        i = range(len(self))[i]
        x = self.node_list[i]
        return GeodesicResult(
            nodes=x,
            t=np.linspace(0.0, 1.0, len(x)),
            curve=self._curve(i),
            length=float(self.length[i]),
            energy=float(self.energy[i]),
            straight_length=float(self.straight_length[i]),
            converged=bool(self.converged[i]),
            n_iter=int(self.n_iter[i]),
            status=self.status[i],
            method=self.method,
            message=self.messages[i],
        )

    @classmethod
    def concatenate(cls, parts: Sequence["GeodesicBatch"]) -> "GeodesicBatch":
        """One batch of the pairs of ``parts``, in order (e.g. the chunks of a solve)."""
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        curves = None if parts[0].curves is None else sum((p.curves for p in parts), [])
        join = lambda name: sum((getattr(p, name) for p in parts), [])  # noqa: E731
        return cls(
            length=cat("length"),
            energy=cat("energy"),
            straight_length=cat("straight_length"),
            converged=cat("converged"),
            n_iter=cat("n_iter"),
            status=join("status"),
            node_list=join("node_list"),
            method=parts[0].method,
            curves=curves,
            messages=join("messages"),
            errors=join("errors"),
        )


@dataclass
class DistanceResult:
    """Geodesic distances.

    Attributes
    ----------
    distances : ndarray, shape (M, M) or (M, M2)
        Measured geodesic lengths (the diagonal of the symmetric matrix is 0); NaN where the
        metric failed before a curve could be measured.
    converged : ndarray of bool, same shape
    failed : list of (i, j)
        Index pairs whose solve did not converge (their distance is the length of the curve
        reached, an upper bound of the geodesic distance, or NaN; see ``status``).
    status : ndarray of str, same shape
    messages : dict of (i, j) -> str
        Why the metric failed on a pair (statuses ``"singular_metric"``, ``"non_finite"``,
        ``"metric_error"``, ``"worker_error"``).
    """

    distances: np.ndarray
    converged: np.ndarray
    failed: List[Tuple[int, int]]
    status: np.ndarray = field(repr=False)
    messages: Dict[Tuple[int, int], str] = field(default_factory=dict, repr=False)
