"""Geodesic distance matrices, solved in chunks locally or on a ``concurrent.futures`` executor."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import List, Optional, Tuple

import numpy as np

from .. import _core
from .._progress import MIN_PAIRS, progress_bar
from .._validation import as_points, check_int, check_metric, check_threads
from .initial import initial_curves
from .options import solver_setup
from .results import DistanceResult, GeodesicBatch
from .runner import chunks, report_failures, run_local, solve_chunk

__all__ = ["geodesic_distances"]


def _pair_indices(m: int, m2: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    if m2 is None:
        return np.triu_indices(m, 1)
    i, j = np.meshgrid(np.arange(m), np.arange(m2), indexing="ij")
    return i.ravel(), j.ravel()


def _worker_failure(
    exc: BaseException, starts: np.ndarray, ends: np.ndarray, opts: _core.GeodesicOptions
) -> GeodesicBatch:
    """The pairs of a chunk whose worker raised: status "worker_error", NaN lengths, straight nodes."""
    b = len(starts)
    t = np.linspace(0.0, 1.0, opts.min_segments + 1)[:, None]
    nan = np.full(b, np.nan)
    return GeodesicBatch(
        length=nan,
        energy=nan.copy(),
        straight_length=nan.copy(),
        converged=np.zeros(b, bool),
        n_iter=np.zeros(b, np.int64),
        status=["worker_error"] * b,
        node_list=[a + t * (e - a) for a, e in zip(starts, ends)],
        messages=[f"{type(exc).__name__}: {exc}"] * b,
        errors=[exc] * b,
    )


def _run_executor(executor: Executor, metric, starts, ends, init, opts, n_threads, size, progress) -> GeodesicBatch:
    from concurrent.futures import as_completed

    slices = chunks(len(starts), size)
    futures = {
        executor.submit(
            solve_chunk, metric, starts[sl], ends[sl], None if init is None else init[sl], opts, n_threads
        ): k
        for k, sl in enumerate(slices)
    }
    parts: List[Optional[GeodesicBatch]] = [None] * len(slices)
    try:
        with progress_bar(len(starts), progress, "geodesic distances", unit="pair", min_total=MIN_PAIRS) as bar:
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    parts[k] = fut.result()
                except Exception as exc:  # the chunk's pairs fail, the others keep their results
                    parts[k] = _worker_failure(exc, starts[slices[k]], ends[slices[k]], opts)
                bar.update(slices[k].stop - slices[k].start)
    except BaseException:  # e.g. KeyboardInterrupt: drop the chunks not started yet
        for fut in futures:
            fut.cancel()
        raise
    return GeodesicBatch.concatenate(parts)


def geodesic_distances(
    metric,
    points,
    points2=None,
    *,
    executor: Optional[Executor] = None,
    chunk_size: Optional[int] = None,
    progress: bool = True,
    n_threads: Optional[int] = None,
    n_nodes: Optional[int] = None,
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    init="line",
    **options,
) -> DistanceResult:
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
        raises (e.g. a lost worker), its pairs get the status ``"worker_error"`` and NaN
        distances, and the other chunks keep their results; if every chunk raises, the first
        exception is re-raised (same type) naming its first pair.
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
        A pair on whose curve the metric failed keeps its status and message there (and in a
        ``RuntimeWarning``); see :func:`geodesics` for when a call raises instead.
    """
    dim = check_metric(metric)
    p1, _ = as_points(points, "points", dim, allow_single=False)
    p2 = None if points2 is None else as_points(points2, "points2", dim, allow_single=False)[0]
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
    solver, graph_opts = solver_setup(metric, n_nodes, tol, max_iter, options)
    curves = initial_curves(metric, starts, ends, init, graph_opts, solver.max_segments)
    if executor is None:
        size = None if chunk_size is None else check_int(chunk_size, "chunk_size", 1)
        batch = run_local(metric, starts, ends, curves, solver, threads, progress, size)
    else:
        size = 64 if chunk_size is None else check_int(chunk_size, "chunk_size", 1)
        batch = _run_executor(executor, metric, starts, ends, curves, solver, threads, size, progress)
    report_failures(batch, [f"({a}, {b})" for a, b in zip(rows, cols)], "geodesic_distances", stacklevel=2)
    dist[rows, cols] = batch.length
    conv[rows, cols] = batch.converged
    status[rows, cols] = batch.status
    if p2 is None:
        dist[cols, rows], conv[cols, rows], status[cols, rows] = dist[rows, cols], conv[rows, cols], status[rows, cols]
    failed = [(int(a), int(b)) for a, b, ok in zip(rows, cols, batch.converged) if not ok]
    messages = {(int(rows[i]), int(cols[i])): batch.messages[i] for i in batch.failed}
    return DistanceResult(dist, conv, failed, status, messages)
