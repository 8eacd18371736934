"""``geodesics(method="neural")``: one neural geodesic per pair, gathered in a GeodesicBatch."""

from __future__ import annotations

import numpy as np

from ..._progress import MIN_PAIRS, progress_bar
from ..._validation import MAX_SAMPLES, check_int
from ...curves import polyline_length
from ..results import GeodesicBatch
from .fit import fit_pair

__all__ = ["neural_batch"]


def _straight_length(metric, a: np.ndarray, b: np.ndarray, n_seg: int = 16) -> float:
    t = np.linspace(0.0, 1.0, n_seg + 1)
    return polyline_length(metric, a + t[:, None] * (b - a))


def neural_batch(
    metric, starts: np.ndarray, ends: np.ndarray, *, n_nodes, tol, max_iter, init, progress, n_threads, options: dict
) -> GeodesicBatch:
    """One neural_geodesic per pair. ``progress``: the batch's bar (100 pairs or more) or, for a
    shorter batch, each pair's training bar; nothing at all with ``progress=False``. ``starts``
    and ``ends`` are the checked endpoints (B, d); the metric was checked too."""
    for name, value in (("tol", tol), ("max_iter", max_iter)):
        if value is not None:
            raise ValueError(f"{name}: not used by method='neural'; pass neural_geodesic's options by name")
    if not (isinstance(init, str) and init == "line"):
        raise ValueError("init: method='neural' supports only init='line'")
    n = 65 if n_nodes is None else check_int(n_nodes, "n_nodes", 2, MAX_SAMPLES)
    options = {**options, "progress": bool(progress) and len(starts) < MIN_PAIRS, "n_threads": n_threads}
    t = np.linspace(0.0, 1.0, n)
    results = []
    with progress_bar(len(starts), progress, "neural geodesics", unit="pair", min_total=MIN_PAIRS) as bar:
        for a, b in zip(starts, ends):
            results.append(fit_pair(metric, a, b, options))
            bar.update(1)
    return GeodesicBatch(
        length=np.array([float(r.length) for r in results]),
        energy=np.array([float(r.energy) for r in results]),
        straight_length=np.array([_straight_length(metric, a, b) for a, b in zip(starts, ends)]),
        converged=np.array([bool(r.converged) for r in results], dtype=bool),
        n_iter=np.array([int(r.n_steps) for r in results], dtype=np.int64),
        status=[str(r.status) for r in results],
        node_list=[np.asarray(r.curve(t), dtype=np.float64) for r in results],
        method="neural",
        curves=[r.curve for r in results],
    )
