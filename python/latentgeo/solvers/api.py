"""Geodesics and geodesic distances.

The discrete solver (``method="discrete"``, the default) runs in C++. A curve γ: [0, 1] → ℝ^d
is represented by n + 1 nodes at uniform times with pinned ends; the solver minimises the
discrete energy with Simpson's rule on each segment (``quadrature="simpson"``, the default)

    E(x) = (n/6) Σᵢ Δᵢᵀ (G(xᵢ) + 4 G(mᵢ) + G(xᵢ₊₁)) Δᵢ,   Δᵢ = xᵢ₊₁ − xᵢ,   mᵢ = (xᵢ + xᵢ₊₁)/2,

or the midpoint rule n Σᵢ Δᵢᵀ G(mᵢ) Δᵢ (``quadrature="midpoint"``: a third of the metric
evaluations; a coarse polyline can then hop over regions of large G that no midpoint sees, as
happens with pullback metrics of decoders whose units saturate), with its analytic gradient
(from the metric's fused ``quadratic_form``), or, for the pullback metric G = JᵀJ of a decoder e
(``quadrature="decoded"``, the default for metrics with ``decoded_energies``:
:class:`~latentgeo.PullbackMetric`, :class:`~latentgeo.TorchPullbackMetric` and ``from_callable``
decoders), the energy of the decoded polyline

    E(x) = n Σᵢ ‖e(xᵢ₊₁) − e(xᵢ)‖²,

whose gradient costs the decoder's first derivatives only (2–5× cheaper than a quadratic form's
gradients) and whose chords never miss a sharp change of the decoder between two nodes (ReLU
decoders, where G jumps and Simpson's energy with it), by L-BFGS whose initial
inverse Hessian is the block-tridiagonal "metric Laplacian", so the iteration count barely
depends on n. The nodes are refined coarse to fine (8 → 16 → 32 … segments) until the error of
the measured length, estimated from its changes between levels (Richardson: the change divided by
the observed convergence ratio minus one, the ratio taken between 2 and 16, i.e. at most fourth
order; the change itself until a ratio is observed), is below ``tol`` (relative) and the nodes, which converge
only like h², moved by less than √tol |z₁ − z₀| away from the previous level's curve (normal to it).
Each node's metric is evaluated once per energy evaluation (for both of its segments).
Chords can also skip what lies between two nodes, where a decoder maps distant points close
together (saturated units): a pair whose measured curve has more than 1.1× the energy of its
decoded polyline, an excess that does not shrink with the levels as the O(h²) of a resolved
curve does (or more than 2× on the first level), is solved again with Simpson's energy.

``length`` and ``energy`` of a result are *measured*, not the optimiser's objective: they are the
length L = ∫ √(γ̇ᵀGγ̇) dt and energy E = ∫ γ̇ᵀGγ̇ dt of the C¹ cubic Hermite interpolant of the
nodes (tangents by fourth-order differences, the same curve as ``result.curve``), integrated with
3-point Gauss–Legendre per segment. ``straight_length`` is the length of the straight segment.

Every pair has its own convergence test, invariant to the scale of the metric (the relative
energy change of the last step and the quasi-Newton decrement −gᵀd relative to the energy), and
its own status: ``"converged"``, ``"max_iter"`` (a level hit ``max_iter``),
``"line_search_failed"``, ``"max_nodes"`` (every level converged but the length still changed by
more than ``tol`` at ``max_nodes``), or a failure of the metric on the pair's curve:
``"non_finite"`` (NaN/Inf values), ``"singular_metric"`` (G singular or not positive definite,
a :class:`~latentgeo.errors.MetricDomainError`), ``"metric_error"`` (the metric raised another
exception) and, with an executor, ``"worker_error"`` (the chunk's worker failed).

Failures stay with their pair: a point where the metric is not defined (singular, indefinite or
NaN: ``MetricDomainError``) met by the optimiser's trial points counts as an infinite energy, so
the line search backtracks from it. A pair whose own curve cannot be evaluated gets
``converged=False``, its status, a ``message`` naming the pair, and NaN ``length``/``energy``
when no curve could be measured; the other pairs keep their results and a ``RuntimeWarning``
lists the failed pairs. Only when every pair of a call failed because the metric raised does the
call raise (the first pair's exception, naming the pair). Ctrl-C stops a batch within a
fraction of a second (``KeyboardInterrupt``).

Metrics: a metric whose ``_native()`` names a C++ kernel (:class:`~latentgeo.RHVAEMetric`,
:class:`~latentgeo.PullbackMetric`, :class:`~latentgeo.ConstantMetric` and
:class:`~latentgeo.ScaledMetric` of them) is solved natively, pairs in parallel with the GIL
released. Any other object of the metric protocol takes the callback path documented in
:class:`~latentgeo.Metric`: its pairs are solved together, and each round of their evaluations
is one call of ``quadratic_form`` or ``metric`` with the points of all of them (the GIL is held
only for the call).

Layout: this module holds the public ``geodesic``/``geodesics`` and the solver plumbing (options,
the chunk runner, failures of pairs); the result classes are in :mod:`latentgeo.results`,
distance matrices in :mod:`latentgeo.distances`, the initial curves in ``latentgeo._graph_init``
and the Hermite interpolant in :mod:`latentgeo.curves`. Arguments are validated once, by the
public functions; the functions below them take checked arrays.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence

import numpy as np

from .. import _core
from .._progress import MIN_PAIRS, progress_bar
from .._validation import (
    MAX_SAMPLES,
    as_point,
    as_points,
    check_choice,
    check_int,
    check_metric,
    check_positive,
    check_threads,
)
from ..curves import GAUSS_NODES, GAUSS_WEIGHTS, HermiteCurve, polyline_length, segment_lengths
from ..errors import MetricDomainError
from ..metrics import native_kernel
from .initial import GRAPH_OPTIONS, initial_curves
from .results import FAILURES, STATUS, DistanceResult, GeodesicBatch, GeodesicResult

__all__ = [
    "geodesic",
    "geodesics",
    "GeodesicResult",
    "GeodesicBatch",
    "DistanceResult",
    "HermiteCurve",
    "native_kernel",
]

# The solver's defaults live in the C++ core (GeodesicOptions); ftol/gtol None: they follow tol.
_DEFAULTS = _core.GeodesicOptions()
_SOLVER_OPTIONS = {
    "min_nodes": _DEFAULTS.min_segments + 1,
    "max_nodes": _DEFAULTS.max_segments + 1,
    "history": _DEFAULTS.history,
    "ftol": _DEFAULTS.ftol,
    "gtol": _DEFAULTS.gtol,
    "quadrature": None,  # default_quadrature(metric): "decoded" for decoders, else the core's (Simpson)
    "pairs_per_call": _DEFAULTS.pairs_per_call,
    "smooth": None,  # the metric's own `smooth` (False: G jumps, e.g. ReLU decoders), else True
}

# Earlier names, kept for modules that import them from here.
_native_kernel = native_kernel
_STATUS, _FAILURES, _GAUSS_S, _GAUSS_W = STATUS, FAILURES, GAUSS_NODES, GAUSS_WEIGHTS
_edge_lengths = segment_lengths
_PROGRESS_MIN = MIN_PAIRS


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------
def _split_options(options: dict, allowed: dict) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options: unknown option(s) {unknown}; known: {sorted(allowed)}")
    return {**allowed, **options}


QUADRATURES = ("simpson", "midpoint", "decoded")


def _has_decoder(metric) -> bool:
    return callable(getattr(metric, "decoded_energies", None))


def default_quadrature(metric) -> str:
    """The energy the solver minimises unless told: the decoded polyline's for a decoder's pullback
    metric (its gradient needs no second derivatives of the decoder, and a chord never misses a
    sharp change of the decoder between two nodes, which Simpson's samples of G can), else
    Simpson's rule."""
    return "decoded" if _has_decoder(metric) else _DEFAULTS.quadrature


def _solver_options(n_nodes, tol, max_iter, opts: dict, metric=None) -> _core.GeodesicOptions:
    """The solver's options, checked; None keeps the core's default (ftol, gtol: derived from tol
    there; quadrature: :func:`default_quadrature` of the metric)."""
    o = _core.GeodesicOptions()
    if n_nodes is not None:
        o.n_segments = check_int(n_nodes, "n_nodes", 5, MAX_SAMPLES) - 1
    if tol is not None:
        o.length_tol = check_positive(tol, "tol")
    if max_iter is not None:
        o.max_iter = check_int(max_iter, "max_iter", 1)
    min_nodes = check_int(opts["min_nodes"], "min_nodes", 5, MAX_SAMPLES)
    o.min_segments = min_nodes - 1
    o.max_segments = check_int(opts["max_nodes"], "max_nodes", min_nodes, MAX_SAMPLES) - 1
    o.ftol = None if opts["ftol"] is None else check_positive(opts["ftol"], "ftol")
    o.gtol = None if opts["gtol"] is None else check_positive(opts["gtol"], "gtol")
    o.history = check_int(opts["history"], "history", 1)
    quadrature = default_quadrature(metric) if opts["quadrature"] is None else opts["quadrature"]
    o.quadrature = check_choice(quadrature, "quadrature", set(QUADRATURES))
    if o.quadrature == "decoded" and not _has_decoder(metric):
        raise ValueError(
            f"quadrature: 'decoded' needs a decoder's pullback metric with decoded_energies (e.g. "
            f"TorchPullbackMetric), not {type(metric).__name__}"
        )
    o.pairs_per_call = check_int(opts["pairs_per_call"], "pairs_per_call", 1)
    smooth = getattr(metric, "smooth", True) if opts["smooth"] is None else opts["smooth"]
    if not isinstance(smooth, (bool, np.bool_)):
        raise ValueError(f"smooth: expected True, False or None, got {smooth!r}")
    o.smooth = bool(smooth)  # the core's error-estimate ratio: fourth order, or first where G jumps
    return o


def _solver_setup(metric, n_nodes, tol, max_iter, options: dict):
    """The solver's options and the graph options (the rest of ``**options``), checked."""
    opts = _split_options(options, {**_SOLVER_OPTIONS, **GRAPH_OPTIONS})
    return _solver_options(n_nodes, tol, max_iter, opts, metric), {k: opts[k] for k in GRAPH_OPTIONS}


def check_pairs(metric, starts, ends):
    """Endpoints (B, d) of B pairs, checked against the metric."""
    dim = check_metric(metric)
    s, _ = as_points(starts, "starts", dim)
    e, _ = as_points(ends, "ends", dim)
    if s.shape != e.shape:
        raise ValueError(f"ends: expected the shape of starts {np.shape(starts)}, got {np.shape(ends)}")
    return s, e


# --------------------------------------------------------------------------------------------
# The solver (runs locally or on an executor's worker)
# --------------------------------------------------------------------------------------------
def _solve_chunk(
    metric,
    starts: np.ndarray,
    ends: np.ndarray,
    init: Optional[np.ndarray],
    opts: _core.GeodesicOptions,
    n_threads: int,
) -> GeodesicBatch:
    """Runs the C++ batch solver on B pairs (module level, so that executors can pickle it)."""
    b, d = starts.shape
    n0 = 0 if init is None else init.shape[1]
    flat_init = np.zeros((0, d)) if init is None else np.ascontiguousarray(init.reshape(-1, d))
    kernel, scale = native_kernel(metric)
    out = _core.geodesic_batch(
        metric=metric,
        kernel=kernel,
        scale=scale,
        starts=starts,
        ends=ends,
        init=flat_init,
        n0=n0,
        options=opts,
        n_threads=n_threads,
    )
    status = [STATUS[s] for s in out["status"]]
    errors = [_failure_error(*item) for item in zip(status, out["message"], out["error"])]
    messages = [_failure_message(*item) for item in zip(status, out["message"], errors)]
    return GeodesicBatch(
        length=out["length"],
        energy=out["energy"],
        straight_length=out["straight_length"],
        converged=out["status"] == 0,
        n_iter=out["n_iter"].astype(np.int64),
        status=status,
        node_list=[out["nodes"][i, :k].copy() for i, k in enumerate(out["n_nodes"])],
        messages=messages,
        errors=errors,
    )


def _failure_error(status: str, message: str, error) -> Optional[BaseException]:
    """The exception behind a failed pair: the metric's own, or one rebuilt from the core's message."""
    if error is not None or not message:
        return error
    if status == "metric_error":
        return ValueError(message)  # the core's checks of what a Python metric returned
    return MetricDomainError(message, non_finite=status == "non_finite")


def _failure_message(status: str, message: str, error: Optional[BaseException]) -> str:
    if status not in FAILURES:
        return ""
    if error is not None and status == "metric_error":
        return f"{type(error).__name__}: {error}"
    return message or "the energy is NaN or Inf on the curve (the metric overflows or returns NaN)"


# --------------------------------------------------------------------------------------------
# Failures of pairs
# --------------------------------------------------------------------------------------------
def _report_failures(batch: GeodesicBatch, labels: Sequence[str], caller: str, stacklevel: int) -> None:
    """Names the pairs in the messages of the failed pairs and warns about them.

    Raises the first pair's exception (naming the pair) when every pair failed because the
    metric raised: there is no result to keep then, and a single ``geodesic`` call raises as a
    metric evaluation would.
    """
    failed = batch.failed
    for i in failed:
        batch.messages[i] = f"pair {labels[i]}: {batch.status[i]}: {batch.messages[i]}"
    if not failed:
        return
    raised = [i for i in failed if batch.errors[i] is not None and not np.isfinite(batch.length[i])]
    if len(raised) == len(batch):
        first = raised[0]
        context = "" if len(batch) == 1 else f"all {len(batch)} pairs failed; the first, "
        raise _renamed(batch.errors[first], f"{caller}: {context}{batch.messages[first]}") from batch.errors[first]
    shown = "; ".join(batch.messages[i] for i in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    warnings.warn(
        f"{caller}: {len(failed)} of {len(batch)} pairs failed (see status and messages): {shown}{more}",
        RuntimeWarning,
        stacklevel=stacklevel + 1,
    )


def _renamed(exc: BaseException, message: str) -> BaseException:
    """An exception of the same type as exc with another message (RuntimeError if impossible)."""
    if isinstance(exc, MetricDomainError):
        return MetricDomainError(message, non_finite=exc.non_finite)
    try:
        return type(exc)(message)
    except Exception:
        return RuntimeError(message)


def _chunks(n: int, size: int) -> List[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _run_local(
    metric, starts, ends, init, opts: _core.GeodesicOptions, n_threads: int, progress: bool, size: Optional[int] = None
) -> GeodesicBatch:
    """The batch in chunks (so that the progress bar moves); results do not depend on the chunks."""
    b = len(starts)
    threads = _core.max_threads() if n_threads == 0 else n_threads
    size = max(16 * threads, -(-b // 50)) if size is None else size
    parts = []
    with progress_bar(b, progress, "geodesics", unit="pair", min_total=MIN_PAIRS) as bar:
        for sl in _chunks(b, size):
            parts.append(
                _solve_chunk(metric, starts[sl], ends[sl], None if init is None else init[sl], opts, n_threads)
            )
            bar.update(sl.stop - sl.start)
    return GeodesicBatch._concatenate(parts)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def geodesics(
    metric,
    starts,
    ends,
    *,
    method: str = "discrete",
    n_nodes: Optional[int] = None,
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    init="line",
    progress: bool = True,
    n_threads: Optional[int] = None,
    **options,
) -> GeodesicBatch:
    """Geodesics between B pairs of points, solved in parallel.

    Parameters
    ----------
    metric : metric protocol object
        E.g. :class:`~latentgeo.RHVAEMetric` (native C++, pairs in parallel) or any object with
        ``dim``, ``quadratic_form`` and ``metric`` (called back in Python: the pairs are solved
        together, and each round of their evaluations is one call with the points of all of
        them, so a batch costs about as many calls as its slowest pair).
    starts, ends : array_like, shape (B, d)
        Endpoints of the pairs. Identical endpoints give length 0, converged.
    method : {"discrete", "neural"}
        "neural" trains one :func:`latentgeo.neural.neural_geodesic` per pair (serially).
    n_nodes : int, optional
        Fixed number of nodes (5 .. 2**20 + 1, as ``min_nodes``/``max_nodes``) of the final level. Default:
        adaptive refinement.
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
        evaluations, fine for smooth metrics such as RHVAEs; "decoded": the energy of the
        decoded polyline, the default for decoders' pullback metrics; the length is measured
        on the metric in every case), ``smooth`` (None: the metric's ``smooth`` attribute, False
        for decoders with ReLU-like units, whose G jumps; False makes the length's error estimate
        first order instead of up to fourth order, so that erratic changes between levels are not
        taken for convergence), ``pairs_per_call`` (64: for a
        metric called back in Python, the pairs whose evaluations share one call; 1 solves the
        pairs one after the other), ``anchors``, ``k_neighbors``; for method="neural", the
        options of ``neural_geodesic``.

    Returns
    -------
    GeodesicBatch
        A pair on whose curve the metric failed has ``converged=False``, a status
        (``"singular_metric"``, ``"non_finite"``, ``"metric_error"``), ``messages[i]`` naming it and
        NaN length when no curve could be measured; the others keep their results, and a
        ``RuntimeWarning`` lists the failed pairs.

    Raises
    ------
    Exception
        Only when every pair failed because the metric raised: the first pair's exception (same
        type, e.g. :class:`~latentgeo.errors.MetricDomainError`), naming the pair.
    KeyboardInterrupt
        Ctrl-C, within a fraction of a second.
    """
    check_choice(method, "method", {"discrete", "neural"})
    threads = check_threads(n_threads)
    s, e = check_pairs(metric, starts, ends)
    if method == "neural":
        return _neural_batch(metric, s, e, n_nodes, tol, max_iter, init, progress, options, n_threads)
    return _discrete_batch(metric, s, e, n_nodes, tol, max_iter, init, progress, threads, options, "geodesics")


def _discrete_batch(
    metric,
    s: np.ndarray,
    e: np.ndarray,
    n_nodes,
    tol,
    max_iter,
    init,
    progress,
    threads: int,
    options: dict,
    caller: str,
) -> GeodesicBatch:
    """The discrete solver on checked endpoints (B, d) and thread count."""
    solver, graph_opts = _solver_setup(metric, n_nodes, tol, max_iter, options)
    curves = initial_curves(metric, s, e, init, graph_opts, solver.max_segments)
    batch = _run_local(metric, s, e, curves, solver, threads, progress)
    _report_failures(batch, [str(i) for i in range(len(batch))], caller, stacklevel=3)  # the user's call
    return batch


def geodesic(
    metric,
    z_start,
    z_end,
    *,
    method: str = "discrete",
    n_nodes: Optional[int] = None,
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    init="line",
    progress: bool = True,
    n_threads: Optional[int] = None,
    **options,
) -> GeodesicResult:
    """The geodesic between two points; see :func:`geodesics` for the parameters.

    Parameters
    ----------
    z_start, z_end : array_like, shape (d,)
    progress : bool
        With ``method="neural"``, the training's progress bar (the discrete solver shows none
        for one pair).

    Returns
    -------
    GeodesicResult
    """
    dim = check_metric(metric)
    a, b = (as_point(z, name, dim) for name, z in (("z_start", z_start), ("z_end", z_end)))
    if check_choice(method, "method", {"discrete", "neural"}) == "neural":
        return _neural_batch(metric, a, b, n_nodes, tol, max_iter, init, progress, options, n_threads)[0]
    threads = check_threads(n_threads)
    return _discrete_batch(metric, a, b, n_nodes, tol, max_iter, init, False, threads, options, "geodesic")[0]


# --------------------------------------------------------------------------------------------
# The neural method (latentgeo.neural, imported lazily)
# --------------------------------------------------------------------------------------------
def _straight_length(metric, a: np.ndarray, b: np.ndarray, n_seg: int = 16) -> float:
    t = np.linspace(0.0, 1.0, n_seg + 1)
    pts = a + t[:, None] * (b - a)
    return polyline_length(metric, pts)


def _neural_batch(
    metric, s: np.ndarray, e: np.ndarray, n_nodes, tol, max_iter, init, progress, options, n_threads
) -> GeodesicBatch:
    """One neural_geodesic per pair. ``progress``: the batch's bar (100 pairs or more) or, for a
    shorter batch, each pair's training bar; nothing at all with ``progress=False``. ``s`` and
    ``e`` are the checked endpoints (B, d); the metric was checked too."""
    from .neural.fit import fit_pair

    for name, value in (("tol", tol), ("max_iter", max_iter)):
        if value is not None:
            raise ValueError(f"{name}: not used by method='neural'; pass neural_geodesic's options by name")
    if not (isinstance(init, str) and init == "line"):
        raise ValueError("init: method='neural' supports only init='line'")
    n = 65 if n_nodes is None else check_int(n_nodes, "n_nodes", 2, MAX_SAMPLES)
    options = {**options, "progress": bool(progress) and len(s) < MIN_PAIRS, "n_threads": n_threads}
    t = np.linspace(0.0, 1.0, n)
    fields = {k: [] for k in ("length", "energy", "straight", "converged", "n_iter", "status", "nodes", "curves")}
    with progress_bar(len(s), progress, "neural geodesics", unit="pair", min_total=MIN_PAIRS) as bar:
        for a, b in zip(s, e):
            res = fit_pair(metric, a, b, **options)
            fields["length"].append(float(res.length))
            fields["energy"].append(float(res.energy))
            fields["straight"].append(_straight_length(metric, a, b))
            fields["converged"].append(bool(res.converged))
            fields["n_iter"].append(int(res.n_steps))
            fields["status"].append(str(res.status))
            fields["nodes"].append(np.asarray(res.curve(t), dtype=np.float64))
            fields["curves"].append(res.curve)
            bar.update(1)
    return GeodesicBatch(
        length=np.array(fields["length"]),
        energy=np.array(fields["energy"]),
        straight_length=np.array(fields["straight"]),
        converged=np.array(fields["converged"]),
        n_iter=np.array(fields["n_iter"], dtype=np.int64),
        status=fields["status"],
        node_list=fields["nodes"],
        method="neural",
        curves=fields["curves"],
    )


def __getattr__(name: str):
    # geodesic_distances lives in latentgeo.distances, which imports this module: resolved on use.
    if name == "geodesic_distances":
        from .distances import geodesic_distances

        return geodesic_distances
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
