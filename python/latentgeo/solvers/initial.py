"""Initial curves of the discrete solver: straight lines, given nodes, or paths of a k-NN graph.

``init="graph"`` builds a graph over anchor points (the metric's ``centroids`` or ``anchors=``),
weights its edges by their Riemannian length (:func:`latentgeo.curves.segment_lengths`) and
starts each pair on its Dijkstra path (needs scipy). Inputs are checked by the caller.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._validation import as_float_array, check_choice, check_int
from ..curves import segment_lengths

__all__ = ["initial_curves", "graph_init", "GRAPH_OPTIONS"]

GRAPH_OPTIONS = {"anchors": None, "k_neighbors": 10}


def _knn(points: np.ndarray, queries: np.ndarray, k: int, skip_self: bool) -> np.ndarray:
    from scipy.spatial import cKDTree

    k_eff = min(k + int(skip_self), len(points))
    _, idx = cKDTree(points).query(queries, k=k_eff)
    idx = idx.reshape(len(queries), -1)
    return idx[:, 1:] if skip_self else idx


def graph_init(
    metric, starts: np.ndarray, ends: np.ndarray, anchors: np.ndarray, k: int, max_segments: int
) -> np.ndarray:
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
    pairs = np.concatenate(
        [
            np.stack([np.repeat(np.arange(n_anchor), near_a.shape[1]), near_a.ravel()], 1),
            np.stack([np.repeat(np.arange(len(queries)) + n_anchor, near_q.shape[1]), near_q.ravel()], 1),
            np.stack([s_id, e_id], 1),
        ]
    )
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weights = segment_lengths(metric, vertices[pairs[:, 0]], vertices[pairs[:, 1]])
    nv = len(vertices)
    graph = coo_matrix(
        (
            np.concatenate([weights, weights]),
            (np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])),
        ),
        shape=(nv, nv),
    ).tocsr()
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
    cum = np.concatenate([[0.0], np.cumsum(segment_lengths(metric, polyline[:-1], polyline[1:]))])
    target = np.linspace(0.0, cum[-1], n_seg + 1)
    j = np.clip(np.searchsorted(cum, target, side="right") - 1, 0, len(polyline) - 2)
    w = ((target - cum[j]) / np.maximum(cum[j + 1] - cum[j], np.finfo(float).tiny))[:, None]
    out = (1 - w) * polyline[j] + w * polyline[j + 1]
    out[0], out[-1] = polyline[0], polyline[-1]
    return out


def initial_curves(
    metric, starts: np.ndarray, ends: np.ndarray, init, graph_opts: dict, max_segments: int
) -> Optional[np.ndarray]:
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
        return graph_init(metric, starts, ends, anchors, k, max_segments)
    curves = as_float_array(init, "init")
    given = curves.shape  # errors report the shape as passed
    if curves.ndim == 2:
        curves = np.broadcast_to(curves, (len(starts),) + curves.shape)
    b, d = starts.shape
    if curves.ndim != 3 or curves.shape[0] != b or curves.shape[2] != d or curves.shape[1] < 2:
        raise ValueError(
            f"init: expected 'line', 'graph' or initial nodes (n0, {d}) / ({b}, n0, {d}), got shape {given}"
        )
    if not (np.allclose(curves[:, 0], starts) and np.allclose(curves[:, -1], ends)):
        raise ValueError("init: the initial curves must start at starts and end at ends")
    curves = curves.copy()
    curves[:, 0], curves[:, -1] = starts, ends
    return curves
