"""Geodesics and geodesic distances.

The discrete solver (``method="discrete"``, the default) runs in C++. A curve γ: [0, 1] → ℝ^d
is represented by n + 1 nodes at uniform times with pinned ends; the solver minimises the
discrete energy with Simpson's rule on each segment (``quadrature="simpson"``, the default)

    E(x) = (n/6) Σᵢ Δᵢᵀ (G(xᵢ) + 4 G(mᵢ) + G(xᵢ₊₁)) Δᵢ,   Δᵢ = xᵢ₊₁ − xᵢ,   mᵢ = (xᵢ + xᵢ₊₁)/2,

or the midpoint rule n Σᵢ Δᵢᵀ G(mᵢ) Δᵢ (``quadrature="midpoint"``: a third of the metric
evaluations; a coarse polyline can then hop over regions of large G that no midpoint sees, as
happens with pullback metrics of decoders whose units saturate),
with its analytic gradient (from the metric's fused ``quadratic_form``) by L-BFGS whose initial
inverse Hessian is the block-tridiagonal "metric Laplacian", so the iteration count barely
depends on n. The nodes are refined coarse to fine (8 → 16 → 32 … segments) until the error of
the measured length, estimated from its changes between levels (Richardson: the change divided by
the observed convergence ratio minus one, the ratio taken between 2 and 16, i.e. at most fourth
order; the change itself until a ratio is observed), is below ``tol`` (relative) and the nodes,
which converge only like h², moved by less than √tol |z₁ − z₀| away from the previous level's
curve (normal to it). Each node's metric is evaluated once per energy evaluation (for both of its
segments).

``length`` and ``energy`` of a result are *measured*, not the optimiser's objective: they are the
length L = ∫ √(γ̇ᵀGγ̇) dt and energy E = ∫ γ̇ᵀGγ̇ dt of the C¹ cubic Hermite interpolant of the
nodes (tangents by fourth-order differences, the same curve as ``result.curve``), integrated with
3-point Gauss–Legendre per segment. ``straight_length`` is the length of the straight segment.

Every pair has its own convergence test, invariant to the scale of the metric (the relative
energy change of the last step and the quasi-Newton decrement −gᵀd relative to the energy), and
its own status: ``"converged"``, ``"max_iter"`` (a level hit ``max_iter``),
``"line_search_failed"``, ``"non_finite"`` (the energy became NaN/Inf) or ``"max_nodes"`` (every
level converged but the length still changed by more than ``tol`` at ``max_nodes``).

Metrics: :class:`~latentgeo.RHVAEMetric`, :class:`~latentgeo.PullbackMetric` and
:class:`~latentgeo.ConstantMetric` (and :class:`~latentgeo.ScaledMetric` of them) are solved natively, pairs in parallel with the GIL
released. Any other object of the metric protocol is called back in Python
(``metric.quadratic_form(z, v, grad=True)`` and ``metric.metric(z)``) with the GIL held; its
pairs then run one after the other, which is much slower.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._validation import as_float_array, as_points, check_choice, check_int, check_metric, check_positive, check_threads
from .metrics import ConstantMetric, ScaledMetric

__all__ = ["geodesic", "geodesics", "geodesic_distances", "GeodesicResult", "GeodesicBatch", "DistanceResult"]

_STATUS = ("converged", "max_iter", "line_search_failed", "non_finite", "max_nodes")
_GAUSS_S = np.array([0.5 - 0.3872983346207417, 0.5, 0.5 + 0.3872983346207417])
_GAUSS_W = np.array([5.0, 8.0, 5.0]) / 18.0
_SOLVER_OPTIONS = {"min_nodes": 9, "max_nodes": 2049, "history": 8, "ftol": None, "gtol": None,
                   "quadrature": "simpson"}
_GRAPH_OPTIONS = {"anchors": None, "k_neighbors": 10}
_PROGRESS_MIN = 100  # pairs


# --------------------------------------------------------------------------------------------
# Curves and results
# --------------------------------------------------------------------------------------------
def _hermite_tangents(x: np.ndarray) -> np.ndarray:
    """d/dt at n + 1 uniform nodes on [0, 1] by fourth-order differences (n >= 4), as in C++."""
    n = len(x) - 1
    s = n / 12.0
    m = np.empty_like(x)
    m[2:-2] = s * (x[:-4] - 8 * x[1:-3] + 8 * x[3:-1] - x[4:])
    m[0] = s * (-25 * x[0] + 48 * x[1] - 36 * x[2] + 16 * x[3] - 3 * x[4])
    m[1] = s * (-3 * x[0] - 10 * x[1] + 18 * x[2] - 6 * x[3] + x[4])
    m[-1] = -s * (-25 * x[-1] + 48 * x[-2] - 36 * x[-3] + 16 * x[-4] - 3 * x[-5])
    m[-2] = -s * (-3 * x[-1] - 10 * x[-2] + 18 * x[-3] - 6 * x[-4] + x[-5])
    return m


class HermiteCurve:
    """The C¹ cubic Hermite interpolant of nodes at uniform times on [0, 1] (picklable).

    Parameters
    ----------
    nodes : ndarray, shape (n + 1, d), n >= 4
    """

    def __init__(self, nodes: np.ndarray):
        self.nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        self.tangents = _hermite_tangents(self.nodes)

    def __call__(self, t, derivative: bool = False) -> np.ndarray:
        """Points γ(t) (or velocities γ̇(t) with ``derivative=True``), shape (N, d), for t (N,) in [0, 1]."""
        times = as_float_array(t, "t", ndim=1)
        if times.min() < 0.0 or times.max() > 1.0:
            raise ValueError("t: times must lie in [0, 1]")
        x, m = self.nodes, self.tangents
        n = len(x) - 1
        i = np.minimum((times * n).astype(np.int64), n - 1)
        s = (times * n - i)[:, None]
        h = 1.0 / n
        if derivative:
            c = (6 * s**2 - 6 * s) / h, 3 * s**2 - 4 * s + 1, (6 * s - 6 * s**2) / h, 3 * s**2 - 2 * s
            return c[0] * x[i] + c[1] * m[i] + c[2] * x[i + 1] + c[3] * m[i + 1]
        c = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, 3 * s**2 - 2 * s**3, s**3 - s**2
        return c[0] * x[i] + c[1] * h * m[i] + c[2] * x[i + 1] + c[3] * h * m[i + 1]


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
        Measured length and energy of ``curve`` (see the module docstring).
    straight_length : float
        Length of the straight segment between the endpoints, for comparison.
    converged : bool
    n_iter : int
        Optimiser iterations (all levels), or the neural method's training steps.
    status : str
    method : str
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


@dataclass
class GeodesicBatch:
    """B geodesics (the arrays are indexed by pair).

    ``nodes`` has a common node count n (the largest of the batch); curves solved with fewer
    nodes are resampled on their interpolant. ``batch[i]`` returns the i-th
    :class:`GeodesicResult` with the nodes of its own solve.
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

    def __len__(self) -> int:
        return len(self.length)

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
        return GeodesicResult(nodes=x, t=np.linspace(0.0, 1.0, len(x)), curve=self._curve(i),
                              length=float(self.length[i]), energy=float(self.energy[i]),
                              straight_length=float(self.straight_length[i]), converged=bool(self.converged[i]),
                              n_iter=int(self.n_iter[i]), status=self.status[i], method=self.method)

    @classmethod
    def _concatenate(cls, parts: Sequence["GeodesicBatch"]) -> "GeodesicBatch":
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        curves = None if parts[0].curves is None else sum((p.curves for p in parts), [])
        return cls(length=cat("length"), energy=cat("energy"), straight_length=cat("straight_length"),
                   converged=cat("converged"), n_iter=cat("n_iter"), status=sum((p.status for p in parts), []),
                   node_list=sum((p.node_list for p in parts), []), method=parts[0].method, curves=curves)


@dataclass
class DistanceResult:
    """Geodesic distances.

    Attributes
    ----------
    distances : ndarray, shape (M, M) or (M, M2)
        Measured geodesic lengths (the diagonal of the symmetric matrix is 0).
    converged : ndarray of bool, same shape
    failed : list of (i, j)
        Index pairs whose solve did not converge (their distance is the length of the curve
        reached, an upper bound of the geodesic distance).
    status : ndarray of str, same shape
    """

    distances: np.ndarray
    converged: np.ndarray
    failed: List[Tuple[int, int]]
    status: np.ndarray = field(repr=False)


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------
@dataclass
class _Options:
    n_segments: int
    min_segments: int
    max_segments: int
    tol: float
    ftol: float
    gtol: float
    max_iter: int
    history: int
    simpson: bool

    def core_args(self) -> tuple:
        return (self.n_segments, self.min_segments, self.max_segments, self.tol, self.ftol, self.gtol,
                self.max_iter, self.history, self.simpson)



def _split_options(options: dict, allowed: dict) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options: unknown option(s) {unknown}; known: {sorted(allowed)}")
    return {**allowed, **options}


def _solver_options(n_nodes, tol, max_iter, opts: dict) -> _Options:
    n_segments = 0 if n_nodes is None else check_int(n_nodes, "n_nodes", 5) - 1
    tol = 1e-8 if tol is None else check_positive(tol, "tol")
    max_iter = 200 if max_iter is None else check_int(max_iter, "max_iter", 1)
    min_nodes = check_int(opts["min_nodes"], "min_nodes", 5)
    max_nodes = check_int(opts["max_nodes"], "max_nodes", min_nodes)
    # The optimiser's tolerances follow tol: the length error of a level is ~ decrement / 4, and
    # the nodes, ~ sqrt(decrement), stay well inside the sqrt(tol) that the levels allow.
    ftol = tol if opts["ftol"] is None else check_positive(opts["ftol"], "ftol")
    gtol = 0.01 * tol if opts["gtol"] is None else check_positive(opts["gtol"], "gtol")
    simpson = check_choice(opts["quadrature"], "quadrature", {"simpson", "midpoint"}) == "simpson"
    return _Options(n_segments, min_nodes - 1, max_nodes - 1, tol, ftol, gtol, max_iter,
                    check_int(opts["history"], "history", 1), simpson)


def _native_kernel(metric):
    """(C++ kernel, scale) for metrics solved natively, else (None, 1.0); unwraps ScaledMetric."""
    if isinstance(metric, ScaledMetric):
        kernel, scale = _native_kernel(metric.base)
        return (kernel, scale * metric.factor) if kernel is not None else (None, 1.0)
    if isinstance(metric, ConstantMetric):
        return _core.ConstantKernel(metric.A), 1.0
    # RHVAEKernel and PullbackKernel are dispatched on in the binding.
    return getattr(metric, "_kernel", None), 1.0


# --------------------------------------------------------------------------------------------
# The solver (runs locally or on an executor's worker)
# --------------------------------------------------------------------------------------------
def _solve_chunk(metric, starts: np.ndarray, ends: np.ndarray, init: Optional[np.ndarray], opts: _Options,
                 n_threads: int) -> GeodesicBatch:
    """Runs the C++ batch solver on B pairs (module level, so that executors can pickle it)."""
    b, d = starts.shape
    n0 = 0 if init is None else init.shape[1]
    flat_init = np.zeros((0, d)) if init is None else np.ascontiguousarray(init.reshape(-1, d))
    kernel, scale = _native_kernel(metric)
    out = _core.geodesic_batch(metric, kernel, scale, starts, ends, flat_init, n0, *opts.core_args(), n_threads)
    status = [_STATUS[s] for s in out["status"]]
    return GeodesicBatch(length=out["length"], energy=out["energy"], straight_length=out["straight_length"],
                         converged=out["status"] == 0, n_iter=out["n_iter"].astype(np.int64), status=status,
                         node_list=[out["nodes"][i, :k].copy() for i, k in enumerate(out["n_nodes"])])


def _chunks(n: int, size: int) -> List[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _progress(total: int, enabled: bool, desc: str):
    """A tqdm bar, shown for long batches only (>= _PROGRESS_MIN pairs)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not (enabled and total >= _PROGRESS_MIN), desc=desc, unit="pair")


def _run_local(metric, starts, ends, init, opts: _Options, n_threads: int, progress: bool,
               size: Optional[int] = None) -> GeodesicBatch:
    """The batch in chunks (so that the progress bar moves); results do not depend on the chunks."""
    b = len(starts)
    threads = _core.max_threads() if n_threads == 0 else n_threads
    size = max(16 * threads, -(-b // 50)) if size is None else size
    parts = []
    with _progress(b, progress, "geodesics") as bar:
        for sl in _chunks(b, size):
            parts.append(_solve_chunk(metric, starts[sl], ends[sl], None if init is None else init[sl], opts,
                                      n_threads))
            bar.update(sl.stop - sl.start)
    return GeodesicBatch._concatenate(parts)


# --------------------------------------------------------------------------------------------
# Graph initialisation
# --------------------------------------------------------------------------------------------
def _edge_lengths(metric, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Riemannian lengths of the straight edges a→b (E, d), 3-point Gauss–Legendre."""
    delta = b - a
    z = (a[:, None, :] + _GAUSS_S[None, :, None] * delta[:, None, :]).reshape(-1, a.shape[1])
    v = np.repeat(delta, 3, axis=0)
    q = np.asarray(metric.quadratic_form(z, v), dtype=np.float64).reshape(-1, 3)
    return np.sqrt(np.maximum(q, 0.0)) @ _GAUSS_W


def _knn(points: np.ndarray, queries: np.ndarray, k: int, skip_self: bool) -> np.ndarray:
    from scipy.spatial import cKDTree

    k_eff = min(k + int(skip_self), len(points))
    _, idx = cKDTree(points).query(queries, k=k_eff)
    idx = idx.reshape(len(queries), -1)
    return idx[:, 1:] if skip_self else idx


def _graph_init(metric, starts: np.ndarray, ends: np.ndarray, anchors: np.ndarray, k: int,
                max_segments: int) -> np.ndarray:
    """Initial curves (B, n0, d) along Dijkstra paths of a k-NN graph over the anchors.

    The graph's vertices are the anchors and the distinct endpoints; edges join each vertex to
    its k nearest anchors (and each start to its end), weighted by their Riemannian length. The
    nodes of each initial curve are spread at equal Riemannian length along its path.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n_anchor = len(anchors)
    queries, inverse = np.unique(np.concatenate([starts, ends]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    vertices = np.concatenate([anchors, queries])
    b = len(starts)
    s_id, e_id = n_anchor + inverse[:b], n_anchor + inverse[b:]
    near_a = _knn(anchors, anchors, k, skip_self=True)
    near_q = _knn(anchors, queries, k, skip_self=False)
    pairs = np.concatenate([
        np.stack([np.repeat(np.arange(n_anchor), near_a.shape[1]), near_a.ravel()], 1),
        np.stack([np.repeat(np.arange(len(queries)) + n_anchor, near_q.shape[1]), near_q.ravel()], 1),
        np.stack([s_id, e_id], 1),
    ])
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weights = _edge_lengths(metric, vertices[pairs[:, 0]], vertices[pairs[:, 1]])
    nv = len(vertices)
    graph = coo_matrix((np.concatenate([weights, weights]),
                        (np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]]))),
                       shape=(nv, nv)).tocsr()
    sources, source_row = np.unique(s_id, return_inverse=True)
    dist, pred = dijkstra(graph, directed=False, indices=sources, return_predecessors=True)
    paths = []
    for i in range(b):
        row = source_row[i]
        path = [e_id[i]]
        while path[-1] != s_id[i] and pred[row, path[-1]] >= 0:
            path.append(pred[row, path[-1]])
        paths.append(path[::-1] if path[-1] == s_id[i] else [s_id[i], e_id[i]])
    hops = max(len(p) - 1 for p in paths)
    n_seg = 8
    while n_seg < 2 * hops and n_seg < max_segments:
        n_seg *= 2
    return np.stack([_spread_on_path(metric, vertices[p], n_seg) for p in paths])


def _spread_on_path(metric, polyline: np.ndarray, n_seg: int) -> np.ndarray:
    """n_seg + 1 points at equal Riemannian length along a polyline (its ends kept exactly)."""
    if len(polyline) == 2:
        return polyline[0] + np.linspace(0.0, 1.0, n_seg + 1)[:, None] * (polyline[1] - polyline[0])
    cum = np.concatenate([[0.0], np.cumsum(_edge_lengths(metric, polyline[:-1], polyline[1:]))])
    target = np.linspace(0.0, cum[-1], n_seg + 1)
    j = np.clip(np.searchsorted(cum, target, side="right") - 1, 0, len(polyline) - 2)
    w = ((target - cum[j]) / np.maximum(cum[j + 1] - cum[j], np.finfo(float).tiny))[:, None]
    out = (1 - w) * polyline[j] + w * polyline[j + 1]
    out[0], out[-1] = polyline[0], polyline[-1]
    return out


def _initial_curves(metric, starts, ends, init, graph_opts: dict, opts: _Options) -> Optional[np.ndarray]:
    """None (straight lines), the graph paths, or the user's initial nodes as (B, n0, d)."""
    if isinstance(init, str):
        check_choice(init, "init", {"line", "graph"})
        if init == "line":
            return None
        anchors = graph_opts["anchors"]
        if anchors is None:
            anchors = getattr(metric, "centroids", None)
        if anchors is None:
            raise ValueError("anchors: init='graph' needs anchor points (anchors=...) when the metric has no centroids")
        anchors = as_float_array(anchors, "anchors", ndim=2)
        if anchors.shape[1] != starts.shape[1]:
            raise ValueError(f"anchors: expected dimension {starts.shape[1]}, got shape {anchors.shape}")
        k = check_int(graph_opts["k_neighbors"], "k_neighbors", 1)
        return _graph_init(metric, starts, ends, anchors, k, opts.max_segments)
    curves = as_float_array(init, "init")
    if curves.ndim == 2:
        curves = np.broadcast_to(curves, (len(starts),) + curves.shape)
    b, d = starts.shape
    if curves.ndim != 3 or curves.shape[0] != b or curves.shape[2] != d or curves.shape[1] < 2:
        raise ValueError(f"init: expected 'line', 'graph' or initial nodes (n0, {d}) / ({b}, n0, {d}), "
                         f"got shape {curves.shape}")
    if not (np.allclose(curves[:, 0], starts) and np.allclose(curves[:, -1], ends)):
        raise ValueError("init: the initial curves must start at starts and end at ends")
    curves = curves.copy()
    curves[:, 0], curves[:, -1] = starts, ends
    return curves


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _prepare(metric, starts, ends, n_nodes, tol, max_iter, init, options):
    dim = check_metric(metric)
    s, _ = as_points(starts, "starts", dim)
    e, _ = as_points(ends, "ends", dim)
    if s.shape != e.shape:
        raise ValueError(f"ends: expected the shape of starts {s.shape}, got {e.shape}")
    opts = _split_options(options, {**_SOLVER_OPTIONS, **_GRAPH_OPTIONS})
    solver = _solver_options(n_nodes, tol, max_iter, opts)
    return s, e, solver, {k: opts[k] for k in _GRAPH_OPTIONS}


def geodesics(metric, starts, ends, *, method: str = "discrete", n_nodes: Optional[int] = None,
              tol: Optional[float] = None, max_iter: Optional[int] = None, init="line", progress: bool = True,
              n_threads: Optional[int] = None, **options) -> GeodesicBatch:
    """Geodesics between B pairs of points, solved in parallel.

    Parameters
    ----------
    metric : metric protocol object
        E.g. :class:`~latentgeo.RHVAEMetric` (native C++, pairs in parallel) or any object with
        ``dim``, ``quadratic_form`` and ``metric`` (called back in Python, pairs serially).
    starts, ends : array_like, shape (B, d)
        Endpoints of the pairs. Identical endpoints give length 0, converged.
    method : {"discrete", "neural"}
        "neural" trains one :func:`latentgeo.neural.neural_geodesic` per pair (serially).
    n_nodes : int, optional
        Fixed number of nodes (>= 5) of the final level. Default: adaptive refinement.
    tol : float, optional
        Relative accuracy target of the length (default 1e-8): refinement stops when the error
        of the last level's length, estimated from the changes between levels (Richardson, with
        their observed convergence rate, at most fourth order), is below ``tol`` and the nodes
        moved by less than ``sqrt(tol)`` times the distance of the ends; each level stops
        when its last step changed the energy by at most ``ftol = tol`` and the decrement is at
        most ``gtol = 0.01 tol`` (relative to the energy).
    max_iter : int, optional
        L-BFGS iterations per level (default 200).
    init : {"line", "graph"} or array_like (n0, d) or (B, n0, d)
        Start curve: the straight line, the Dijkstra path of a k-NN graph over anchor points
        (the metric's ``centroids`` or ``anchors=``, with ``k_neighbors=10``; needs scipy), or
        given nodes at uniform times (the first level then has n0 − 1 segments).
    progress : bool
        tqdm progress bar for long batches (100 pairs or more).
    n_threads : int, optional
        Threads over pairs (None: all cores). Results do not depend on it.
    **options
        ``min_nodes`` (9), ``max_nodes`` (2049), ``history`` (8), ``ftol``, ``gtol``,
        ``quadrature`` ("simpson": G at both ends and the midpoint of each segment, robust where G
        changes fast, e.g. decoders with saturated units; "midpoint": a third of the metric
        evaluations, fine for smooth metrics such as RHVAEs), ``anchors``,
        ``k_neighbors``; for method="neural", the options of ``neural_geodesic``.

    Returns
    -------
    GeodesicBatch
    """
    check_choice(method, "method", {"discrete", "neural"})
    threads = check_threads(n_threads)
    if method == "neural":
        return _neural_batch(metric, starts, ends, n_nodes, tol, max_iter, init, progress, options)
    s, e, solver, graph_opts = _prepare(metric, starts, ends, n_nodes, tol, max_iter, init, options)
    curves = _initial_curves(metric, s, e, init, graph_opts, solver)
    return _run_local(metric, s, e, curves, solver, threads, progress)


def geodesic(metric, z_start, z_end, *, method: str = "discrete", n_nodes: Optional[int] = None,
             tol: Optional[float] = None, max_iter: Optional[int] = None, init="line",
             n_threads: Optional[int] = None, **options) -> GeodesicResult:
    """The geodesic between two points; see :func:`geodesics` for the parameters.

    Parameters
    ----------
    z_start, z_end : array_like, shape (d,)

    Returns
    -------
    GeodesicResult
    """
    dim = check_metric(metric)
    a, b = (_as_point_array(np.asarray(z)[None] if np.ndim(z) == 1 else z, name, dim)
            for name, z in (("z_start", z_start), ("z_end", z_end)))
    for name, z in (("z_start", a), ("z_end", b)):
        if len(z) != 1:
            raise ValueError(f"{name}: expected a single point of shape (d,), got shape {np.shape(z)}")
    if check_choice(method, "method", {"discrete", "neural"}) == "neural":
        # options (e.g. progress=False) go to neural_geodesic untouched
        return _neural_batch(metric, a, b, n_nodes, tol, max_iter, init, False, options)[0]
    batch = geodesics(metric, a, b, n_nodes=n_nodes, tol=tol, max_iter=max_iter, init=init, progress=False,
                      n_threads=n_threads, **options)
    return batch[0]


# --------------------------------------------------------------------------------------------
# The neural method (issue 4's neural_geodesic, imported lazily)
# --------------------------------------------------------------------------------------------
def _straight_length(metric, a: np.ndarray, b: np.ndarray, n_seg: int = 16) -> float:
    t = np.linspace(0.0, 1.0, n_seg + 1)
    pts = a + t[:, None] * (b - a)
    return float(_edge_lengths(metric, pts[:-1], pts[1:]).sum())


def _neural_batch(metric, starts, ends, n_nodes, tol, max_iter, init, progress, options) -> GeodesicBatch:
    from .neural import neural_geodesic

    dim = check_metric(metric)
    s, _ = as_points(starts, "starts", dim)
    e, _ = as_points(ends, "ends", dim)
    if s.shape != e.shape:
        raise ValueError(f"ends: expected the shape of starts {s.shape}, got {e.shape}")
    for name, value in (("tol", tol), ("max_iter", max_iter)):
        if value is not None:
            raise ValueError(f"{name}: not used by method='neural'; pass neural_geodesic's options by name")
    if not (isinstance(init, str) and init == "line"):
        raise ValueError("init: method='neural' supports only init='line'")
    n = 65 if n_nodes is None else check_int(n_nodes, "n_nodes", 2)
    t = np.linspace(0.0, 1.0, n)
    fields = {k: [] for k in ("length", "energy", "straight", "converged", "n_iter", "status", "nodes", "curves")}
    with _progress(len(s), progress, "neural geodesics") as bar:
        for a, b in zip(s, e):
            res = neural_geodesic(metric, a, b, **options)
            fields["length"].append(float(res.length))
            fields["energy"].append(float(res.energy))
            fields["straight"].append(_straight_length(metric, a, b))
            fields["converged"].append(bool(res.converged))
            fields["n_iter"].append(int(res.n_steps))
            fields["status"].append(str(res.status))
            fields["nodes"].append(np.asarray(res.curve(t), dtype=np.float64))
            fields["curves"].append(res.curve)
            bar.update(1)
    return GeodesicBatch(length=np.array(fields["length"]), energy=np.array(fields["energy"]),
                         straight_length=np.array(fields["straight"]), converged=np.array(fields["converged"]),
                         n_iter=np.array(fields["n_iter"], dtype=np.int64), status=fields["status"],
                         node_list=fields["nodes"], method="neural", curves=fields["curves"])


# --------------------------------------------------------------------------------------------
# Distance matrices
# --------------------------------------------------------------------------------------------
def _pair_indices(m: int, m2: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    if m2 is None:
        return np.triu_indices(m, 1)
    i, j = np.meshgrid(np.arange(m), np.arange(m2), indexing="ij")
    return i.ravel(), j.ravel()


def _with_pairs(exc: BaseException, rows: np.ndarray, cols: np.ndarray) -> BaseException:
    """The worker's exception, re-raised with the index pairs of its chunk in the message."""
    shown = ", ".join(f"({a}, {b})" for a, b in zip(rows[:5], cols[:5]))
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    message = f"geodesic_distances: the chunk of pairs {shown}{more} failed: {exc}"
    try:
        new = type(exc)(message)
    except Exception:
        new = RuntimeError(message)
    return new


def _run_executor(executor: Executor, metric, starts, ends, init, opts, n_threads, size, rows, cols,
                  progress) -> GeodesicBatch:
    from concurrent.futures import as_completed

    slices = _chunks(len(starts), size)
    futures = {executor.submit(_solve_chunk, metric, starts[sl], ends[sl], None if init is None else init[sl], opts,
                               n_threads): k for k, sl in enumerate(slices)}
    parts: List[Optional[GeodesicBatch]] = [None] * len(slices)
    with _progress(len(starts), progress, "geodesic distances") as bar:
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                parts[k] = fut.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                sl = slices[k]
                raise _with_pairs(exc, rows[sl], cols[sl]) from exc
            bar.update(slices[k].stop - slices[k].start)
    return GeodesicBatch._concatenate(parts)


def _as_point_array(value, name: str, dim: int) -> np.ndarray:
    arr = as_float_array(value, name, ndim=2)
    if arr.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension d = {dim}, got shape {arr.shape}")
    return arr


def geodesic_distances(metric, points, points2=None, *, executor: Optional[Executor] = None,
                       chunk_size: Optional[int] = None, progress: bool = True, n_threads: Optional[int] = None,
                       n_nodes: Optional[int] = None, tol: Optional[float] = None, max_iter: Optional[int] = None,
                       init="line", **options) -> DistanceResult:
    """Geodesic distances between points (discrete method).

    Parameters
    ----------
    metric : metric protocol object
        Must be picklable when ``executor`` runs in other processes (all latentgeo metrics are).
    points : array_like, shape (M, d)
    points2 : array_like, shape (M2, d), optional
        Without it, the symmetric (M, M) matrix (M (M − 1)/2 solves); with it, the (M, M2) cross
        matrix.
    executor : concurrent.futures.Executor, optional
        Runs chunks of pairs (each chunk is one C++ batch solve on the worker), e.g.
        ``ProcessPoolExecutor`` or Dask's ``distributed.Client(...).get_executor()``. If a chunk
        raises, the exception is re-raised (same type) with the chunk's index pairs, and no
        matrix is returned.
    chunk_size : int, optional
        Pairs per chunk (default: about 4 chunks per thread locally, 64 pairs with an executor).
    progress : bool
        tqdm progress bar.
    n_threads : int, optional
        Threads per chunk solve (on the worker with an executor). None: all cores.
    n_nodes, tol, max_iter, init, **options
        As in :func:`geodesics`. With ``init="graph"`` the graph is built once, here.

    Returns
    -------
    DistanceResult
    """
    dim = check_metric(metric)
    p1 = _as_point_array(points, "points", dim)
    p2 = None if points2 is None else _as_point_array(points2, "points2", dim)
    threads = check_threads(n_threads)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise ValueError("executor: expected a concurrent.futures.Executor (with submit)")
    rows, cols = _pair_indices(len(p1), None if p2 is None else len(p2))
    starts, ends = p1[rows], (p1 if p2 is None else p2)[cols]
    shape = (len(p1), len(p1) if p2 is None else len(p2))
    dist, conv = np.zeros(shape), np.ones(shape, dtype=bool)
    status = np.full(shape, "converged", dtype=object)
    if len(rows) == 0:
        return DistanceResult(dist, conv, [], status)
    _, _, solver, graph_opts = _prepare(metric, starts, ends, n_nodes, tol, max_iter, init, options)
    curves = _initial_curves(metric, starts, ends, init, graph_opts, solver)
    if executor is None:
        size = None if chunk_size is None else check_int(chunk_size, "chunk_size", 1)
        batch = _run_local(metric, starts, ends, curves, solver, threads, progress, size)
    else:
        size = 64 if chunk_size is None else check_int(chunk_size, "chunk_size", 1)
        batch = _run_executor(executor, metric, starts, ends, curves, solver, threads, size, rows, cols, progress)
    dist[rows, cols] = batch.length
    conv[rows, cols] = batch.converged
    status[rows, cols] = batch.status
    if p2 is None:
        dist[cols, rows], conv[cols, rows], status[cols, rows] = dist[rows, cols], conv[rows, cols], status[rows, cols]
    failed = [(int(a), int(b)) for a, b, ok in zip(rows, cols, batch.converged) if not ok]
    return DistanceResult(dist, conv, failed, status)
