"""Parallel transport ẇᵏ = −Γᵏᵢⱼ γ̇ⁱ wʲ along geodesics (with them), along the discrete solver's
curves (node to node) or along a Python callable curve."""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from .. import _core
from .._validation import as_float_array, check_metric
from ..curves import check_times
from ..solvers.results import GeodesicBatch, GeodesicResult
from .backend import DEFAULTS, TRANSPORTS_PER_CALL, Backend, core_options, make_backend, status_names
from .inputs import point_pairs, reject_options
from .maps import log_map
from .results import ExpMapResult, TransportResult, converged_mask

__all__ = ["parallel_transport", "transport_along_geodesic"]


def _transport_vectors(vectors, n_curves: int, dim: int, batch: bool):
    """(C, V, d) float array of the vectors and a function restoring the user's shape."""
    w = as_float_array(vectors, "vectors")
    if w.shape[-1:] != (dim,):
        raise ValueError(f"vectors: expected vectors of dimension {dim}, got shape {w.shape}")
    if not batch:
        if w.ndim not in (1, 2):
            raise ValueError(f"vectors: expected shape (d,) or (V, d) for one curve, got {w.shape}")
        return w.reshape(1, -1, dim), lambda x: x.reshape(x.shape[:-2] + w.shape)
    if w.ndim not in (2, 3) or w.shape[0] != n_curves:
        raise ValueError(
            f"vectors: expected shape ({n_curves}, d) or ({n_curves}, V, d) for {n_curves} curves, got {w.shape}"
        )
    return w.reshape(n_curves, -1, dim), lambda x: x.reshape(x.shape[:-2] + w.shape[1:])


def _curve_kind(curve):
    """("nodes", list of node arrays) / ("geodesic", (starts, velocities)) / ("callable", (curve, velocity))."""
    if isinstance(curve, ExpMapResult):
        return "geodesic", (curve.starts, curve.initial_velocities), True
    if isinstance(curve, GeodesicBatch):
        if curve.method != "discrete":
            raise ValueError("curve: a GeodesicBatch of the neural method: transport along each result's curve")
        return "nodes", list(curve.node_list), True
    if isinstance(curve, GeodesicResult):
        if curve.method == "discrete":
            return "nodes", [curve.nodes], False
        return "callable", (curve.curve, getattr(curve.curve, "velocity", None)), False
    if callable(curve):
        return "callable", (curve, None), False
    raise ValueError("curve: expected a GeodesicResult, GeodesicBatch, ExpMapResult or a callable t -> points")


def _callable_curve(curve, velocity, dim: int):
    """curve_fn(t) -> (points, velocities) for the core, with shape checks."""
    if velocity is None:
        velocity = getattr(curve, "velocity", None)
    if velocity is None and hasattr(curve, "tangents"):  # a HermiteCurve
        velocity = lambda t: curve(t, derivative=True)  # noqa: E731
    if not callable(velocity):
        raise ValueError("velocity: a callable curve needs its velocity (velocity=callable t -> (N, d))")

    def evaluate(t: np.ndarray):
        points = np.asarray(curve(t), dtype=np.float64)
        vel = np.asarray(velocity(t), dtype=np.float64)
        for name, arr in (("curve", points), ("velocity", vel)):
            if arr.shape != (len(t), dim):
                raise ValueError(f"{name}: expected shape ({len(t)}, {dim}) for {len(t)} times, got {arr.shape}")
        return np.ascontiguousarray(points), np.ascontiguousarray(vel)

    return evaluate


def parallel_transport(
    metric,
    curve,
    vectors,
    *,
    t=None,
    velocity: Optional[Callable] = None,
    rtol: float = DEFAULTS.rtol,
    max_steps: int = DEFAULTS.max_steps,
    n_threads: Optional[int] = None,
    **options,
) -> TransportResult:
    """Transport tangent vectors from the start of a curve to its end: ẇᵏ = −Γᵏᵢⱼ γ̇ⁱ wʲ.

    Parameters
    ----------
    metric : metric object
    curve : GeodesicResult, GeodesicBatch, ExpMapResult or callable
        A discrete geodesic (along the C¹ cubic Hermite interpolant of its nodes, the same curve as
        ``result.curve``, integrated node to node), a batch of them, the geodesics of an
        :func:`exp_map` result (integrated again together with the vectors), or a callable
        ``curve(t)`` (t (N,) in [0, 1] -> points (N, d)) with its velocity.
    vectors : array_like
        For one curve: (d,) or (V, d) vectors at γ(0). For C curves (a batch or an exp result):
        (C, d) or (C, V, d).
    t : array_like (T,), optional
        Strictly increasing times in [0, 1] at which to also return the transported vectors.
    velocity : callable, optional
        γ̇(t) of a callable curve (default: ``curve.velocity`` when it exists).
    rtol, max_steps : float, int
        Integrator settings as in :func:`exp_map`; the vectors are under error control too.
    n_threads : int, optional

    Returns
    -------
    TransportResult
    """
    reject_options(options)
    dim = check_metric(metric)
    kind, data, batch = _curve_kind(curve)
    n_curves = len(data) if kind == "nodes" else (len(data[0]) if kind == "geodesic" else 1)
    w, restore = _transport_vectors(vectors, n_curves, dim, batch)
    times = np.zeros(0) if t is None else check_times(t, "t", lo=0.0, hi=1.0)
    if kind == "geodesic" and data[0].shape[1] != dim:
        raise ValueError(f"curve: the exp result has dimension {data[0].shape[1]}, the metric {dim}")
    if kind == "callable":
        data = _callable_curve(data[0], velocity if velocity is not None else data[1], dim)
    out = _transport(
        make_backend(metric, n_threads), kind, data, w, times=times, opts=core_options(rtol=rtol, max_steps=max_steps)
    )
    return _transport_result(out, w, times if t is not None else None, restore, batch)


def _transport(backend: Backend, kind: str, data, w: np.ndarray, *, times: np.ndarray, opts) -> Dict[str, np.ndarray]:
    """The core's transport of w (C, V, d) along C geodesics (starts, velocities), node curves or one callable."""
    n_curves, dim = len(w), w.shape[2]
    flat = np.ascontiguousarray(w.reshape(n_curves, -1))
    if kind == "callable":
        return _core.transport_callable(**backend.native(), curve_fn=data, dim=dim, w=flat, t_out=times, options=opts)
    if kind == "geodesic":
        starts, vel = data
        return backend.run(
            n_curves,
            TRANSPORTS_PER_CALL,
            lambda s: _core.transport_geodesic(
                **backend.native(),
                z=starts[s],
                v=vel[s],
                w=flat[s],
                t_end=1.0,
                t_out=times,
                options=opts,
                n_threads=backend.threads,
            ),
        )
    nodes = [_check_nodes(x, dim) for x in data]
    return backend.run(
        n_curves,
        TRANSPORTS_PER_CALL,
        lambda s: _core.transport_nodes(
            **backend.native(), nodes=nodes[s], w=flat[s], t_out=times, options=opts, n_threads=backend.threads
        ),
    )


def _check_nodes(nodes, dim: int) -> np.ndarray:
    x = as_float_array(nodes, "curve", ndim=2)
    if x.shape[1] != dim or len(x) < 5:
        raise ValueError(f"curve: expected at least 5 nodes of dimension {dim}, got shape {x.shape}")
    return x


def _transport_result(out, w: np.ndarray, times, restore, batch: bool) -> TransportResult:
    c, v, d = w.shape
    end = restore(out["vectors"].reshape(c, v, d))
    along = None
    if times is not None:
        along = restore(out["along"].reshape(c, len(times), v, d))
    if not batch:
        end = end[0]
        along = None if along is None else along[0]
    status = status_names(out["status"])
    return TransportResult(
        vectors=end,
        t=times,
        along=along,
        converged=converged_mask(status),
        status=status,
        n_steps=out["n_steps"],
        t_reached=out["t_reached"],
    )


def transport_along_geodesic(
    metric,
    z0,
    z1,
    vectors,
    *,
    tol: float = DEFAULTS.tol,
    rtol: float = DEFAULTS.rtol,
    n_threads: Optional[int] = None,
    progress: bool = False,
    geodesic_options: Optional[dict] = None,
    **options,
) -> TransportResult:
    """Vectors at z0 transported along the minimising geodesics to z1 (the one-call convenience).

    The geodesic is found by :func:`log_map`; the vectors are transported together with it. A pair
    whose log map did not converge is transported along its discrete geodesic instead and keeps the
    log map's status (``converged`` False); its ``n_steps`` and ``t_reached`` are those of the
    transport along the discrete geodesic.

    Parameters
    ----------
    metric : metric object
    z0, z1 : array_like, shape (B, d) or (d,)
        Pairs (a single point broadcasts).
    vectors : array_like, shape (B, d)
        One vector per pair (for a single pair, (V, d) transports V vectors along it).
    tol, rtol : float
        Log-map and integrator tolerances.
    n_threads : int, optional
    progress : bool
        Progress bar of the discrete geodesics.
    geodesic_options : dict, optional
        Options of the discrete geodesics seeding the log map.

    Returns
    -------
    TransportResult
        ``vectors`` of the shape given, ``converged``/``status`` per pair.
    """
    reject_options(options)
    dim = check_metric(metric)
    a, b, single = point_pairs(z0, z1, ("z0", "z1"), dim)
    w = as_float_array(vectors, "vectors")
    if w.shape == a.shape:
        per_pair = w[:, None]
    elif single and w.ndim in (1, 2) and w.shape[-1] == dim:
        per_pair = w.reshape(1, -1, dim)
    else:
        raise ValueError(f"vectors: expected shape {a.shape} (one vector per pair), got {w.shape}")
    log = log_map(
        metric, a, b, tol=tol, rtol=rtol, n_threads=n_threads, progress=progress, geodesic_options=geodesic_options
    )
    backend = make_backend(metric, n_threads)
    opts = core_options(rtol=rtol)
    none = np.zeros(0)
    out = _transport(backend, "geodesic", (a, log.vectors), per_pair, times=none, opts=opts)
    moved, status = out["vectors"].reshape(per_pair.shape), status_names(out["status"])
    n_steps, t_reached = out["n_steps"].copy(), out["t_reached"].copy()
    failed = np.flatnonzero(~log.converged)
    if len(failed):  # along the discrete geodesics instead
        nodes = [log.discrete.node_list[i] for i in failed]
        fallback = _transport(backend, "nodes", nodes, per_pair[failed], times=none, opts=opts)
        moved[failed] = fallback["vectors"].reshape(per_pair[failed].shape)
        n_steps[failed], t_reached[failed] = fallback["n_steps"], fallback["t_reached"]
        for i in failed:
            status[i] = log.status[i]
    return TransportResult(
        vectors=moved.reshape(w.shape),
        t=None,
        along=None,
        converged=converged_mask(status),
        status=status,
        n_steps=n_steps,
        t_reached=t_reached,
    )
