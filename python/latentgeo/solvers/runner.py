"""Running the C++ batch solver: one chunk of pairs (locally or on an executor's worker), the
chunks of a batch with a progress bar, and the failures of pairs (named, warned about, raised
only when every pair failed because the metric raised)."""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence

import numpy as np

from .. import _core
from .._progress import MIN_PAIRS, progress_bar
from ..errors import MetricDomainError
from ..metrics import native_kernel
from .results import FAILURES, STATUS, GeodesicBatch

__all__ = ["chunks", "report_failures", "run_local", "solve_chunk"]


def solve_chunk(
    metric,
    starts: np.ndarray,
    ends: np.ndarray,
    init: Optional[np.ndarray],
    opts: _core.GeodesicOptions,
    n_threads: int,
) -> GeodesicBatch:
    """Runs the C++ batch solver on B pairs (module level, so that executors can pickle it)."""
    d = starts.shape[1]
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


def report_failures(batch: GeodesicBatch, labels: Sequence[str], caller: str, stacklevel: int) -> None:
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


def chunks(n: int, size: int) -> List[slice]:
    """Slices of ``size`` items covering ``range(n)``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def run_local(
    metric, starts, ends, init, opts: _core.GeodesicOptions, n_threads: int, progress: bool, size: Optional[int] = None
) -> GeodesicBatch:
    """The batch in chunks (so that the progress bar moves); results do not depend on the chunks."""
    b = len(starts)
    threads = _core.max_threads() if n_threads == 0 else n_threads
    size = max(16 * threads, -(-b // 50)) if size is None else size
    parts = []
    with progress_bar(b, progress, "geodesics", unit="pair", min_total=MIN_PAIRS) as bar:
        for sl in chunks(b, size):
            parts.append(solve_chunk(metric, starts[sl], ends[sl], None if init is None else init[sl], opts, n_threads))
            bar.update(sl.stop - sl.start)
    return GeodesicBatch.concatenate(parts)
