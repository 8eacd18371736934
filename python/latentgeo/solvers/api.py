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

Layout: this module holds the public ``geodesic``/``geodesics``; the options are checked in
:mod:`.options`, the chunks run and the failures of pairs are reported in :mod:`.runner`, the
result classes are in :mod:`.results`, distance matrices in :mod:`.distances`, the initial
curves in :mod:`.initial`, the neural method in :mod:`.neural` and the Hermite interpolant in
:mod:`latentgeo.curves`. Arguments are validated once, by the public functions; the functions
below them take checked arrays.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._validation import as_point, check_choice, check_metric, check_threads
from .initial import initial_curves
from .options import check_pairs, solver_setup
from .results import GeodesicBatch, GeodesicResult
from .runner import report_failures, run_local

__all__ = ["geodesic", "geodesics"]


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
        "neural" trains one :func:`latentgeo.solvers.neural.fit.neural_geodesic` per pair (serially).
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
        taken for convergence), ``preconditioner`` ("auto": "chord" for C++ decoders of more than 64 dimensions and
        Python (torch, callable) decoders of more than 2, else "metric"; "metric": L-BFGS starts from the block-tridiagonal operator of
        G at the segment midpoints, d × d blocks; "chord": the same with G replaced along each
        segment by the scalar ΔᵀGΔ/|Δ|², one Jacobian-vector product per segment and O(n d) work,
        where forming and factorising G would cost d decoder passes and d³ per node),
        ``pairs_per_call`` (64: for a
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
    s, e = check_pairs(metric, starts, ends)
    return _solve(
        metric,
        s,
        e,
        method=method,
        caller="geodesics",
        progress=progress,
        n_threads=n_threads,
        n_nodes=n_nodes,
        tol=tol,
        max_iter=max_iter,
        init=init,
        options=options,
    )


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
    check_choice(method, "method", {"discrete", "neural"})
    return _solve(
        metric,
        a,
        b,
        method=method,
        caller="geodesic",
        progress=progress and method == "neural",
        n_threads=n_threads,
        n_nodes=n_nodes,
        tol=tol,
        max_iter=max_iter,
        init=init,
        options=options,
    )[0]


def _solve(
    metric,
    s: np.ndarray,
    e: np.ndarray,
    *,
    method: str,
    caller: str,
    progress: bool,
    n_threads,
    n_nodes,
    tol,
    max_iter,
    init,
    options: dict,
) -> GeodesicBatch:
    """Either method on checked endpoints (B, d) of a checked metric; the rest is checked here."""
    if method == "neural":
        from .neural.batch import neural_batch  # numpy training, imported on first use

        return neural_batch(
            metric,
            s,
            e,
            n_nodes=n_nodes,
            tol=tol,
            max_iter=max_iter,
            init=init,
            progress=progress,
            n_threads=n_threads,
            options=options,
        )
    threads = check_threads(n_threads)
    solver, graph_opts = solver_setup(metric, n_nodes, tol, max_iter, options)
    curves = initial_curves(metric, s, e, init, graph_opts, solver.max_segments)
    batch = run_local(metric, s, e, curves, solver, threads, progress)
    report_failures(batch, [str(i) for i in range(len(batch))], caller, stacklevel=3)  # the user's call
    return batch
