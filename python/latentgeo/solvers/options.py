"""The discrete solver's options: the keyword options of ``geodesics`` checked into the core's
``GeodesicOptions`` (whose defaults are the only ones), and the endpoints of a batch."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import _core
from .._validation import MAX_SAMPLES, as_points, check_choice, check_int, check_metric, check_positive
from ..metrics import native_kernel
from .initial import GRAPH_OPTIONS

__all__ = [
    "PRECONDITIONERS",
    "QUADRATURES",
    "SOLVER_OPTIONS",
    "check_pairs",
    "default_quadrature",
    "solver_options",
    "solver_setup",
]

# The solver's defaults live in the C++ core (GeodesicOptions); ftol/gtol None: they follow tol.
_DEFAULTS = _core.GeodesicOptions()
SOLVER_OPTIONS = {
    "min_nodes": _DEFAULTS.min_segments + 1,
    "max_nodes": _DEFAULTS.max_segments + 1,
    "history": _DEFAULTS.history,
    "ftol": _DEFAULTS.ftol,
    "gtol": _DEFAULTS.gtol,
    "quadrature": None,  # default_quadrature(metric): "decoded" for decoders, else the core's (Simpson)
    "pairs_per_call": _DEFAULTS.pairs_per_call,
    "smooth": None,  # the metric's own `smooth` (False: G jumps, e.g. ReLU decoders), else True
    "preconditioner": _DEFAULTS.preconditioner,
}
QUADRATURES = ("simpson", "midpoint", "decoded")
PRECONDITIONERS = ("auto", "metric", "chord")


def _with_defaults(options: dict, allowed: dict) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options: unknown option(s) {unknown}; known: {sorted(allowed)}")
    return {**allowed, **options}


def _has_decoder(metric) -> bool:
    return callable(getattr(metric, "decoded_energies", None))


def default_quadrature(metric) -> str:
    """The energy the solver minimises unless told: the decoded polyline's for a decoder's pullback
    metric (its gradient needs no second derivatives of the decoder, and a chord never misses a
    sharp change of the decoder between two nodes, which Simpson's samples of G can), else
    Simpson's rule."""
    return "decoded" if _has_decoder(metric) else _DEFAULTS.quadrature


def _checked_quadrature(metric, quadrature) -> str:
    name = check_choice(
        default_quadrature(metric) if quadrature is None else quadrature, "quadrature", set(QUADRATURES)
    )
    if name == "decoded" and not _has_decoder(metric):
        raise ValueError(
            f"quadrature: 'decoded' needs a decoder's pullback metric with decoded_energies (e.g. "
            f"TorchPullbackMetric), not {type(metric).__name__}"
        )
    return name


# A Python decoder's G costs d Jacobian-vector products per point through torch or numpy, the
# chord preconditioner one per segment: measured on pythae's MNIST conv decoder, chord and metric
# tie at d = 2 (12 s, 11 s per geodesic), chord wins 2× at d = 8 and 6× at d = 16.
CALLBACK_CHORD_DIM = 2


def _checked_preconditioner(metric, name) -> str:
    """ "auto" for a C++ decoder is the core's choice (by dimension); a Python metric reaches the
    core as a callback that always offers decoded energies, so it is decided here: the metric
    preconditioner without a decoder, the chord one for decoders of more than CALLBACK_CHORD_DIM."""
    name = check_choice(name, "preconditioner", set(PRECONDITIONERS))
    if name != "auto" or metric is None or native_kernel(metric)[0] is not None:
        return name
    return "chord" if _has_decoder(metric) and metric.dim > CALLBACK_CHORD_DIM else "metric"


def _checked_smooth(metric, smooth) -> bool:
    value = getattr(metric, "smooth", True) if smooth is None else smooth
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"smooth: expected True, False or None, got {value!r}")
    return bool(value)


def solver_options(n_nodes, tol, max_iter, opts: dict, metric=None) -> _core.GeodesicOptions:
    """The solver's options, checked; None keeps the core's default (ftol, gtol: derived from tol
    there; quadrature: :func:`default_quadrature` of the metric). ``opts`` holds every key of
    :data:`SOLVER_OPTIONS`."""
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
    o.quadrature = _checked_quadrature(metric, opts["quadrature"])
    o.pairs_per_call = check_int(opts["pairs_per_call"], "pairs_per_call", 1)
    o.preconditioner = _checked_preconditioner(metric, opts["preconditioner"])
    o.smooth = _checked_smooth(metric, opts["smooth"])  # the error estimate: fourth order, or first where G jumps
    return o


def solver_setup(metric, n_nodes, tol, max_iter, options: dict) -> Tuple[_core.GeodesicOptions, dict]:
    """The solver's options and the graph options (the rest of ``**options``), checked."""
    opts = _with_defaults(options, {**SOLVER_OPTIONS, **GRAPH_OPTIONS})
    return solver_options(n_nodes, tol, max_iter, opts, metric), {k: opts[k] for k in GRAPH_OPTIONS}


def check_pairs(metric, starts, ends) -> Tuple[np.ndarray, np.ndarray]:
    """Endpoints (B, d) of B pairs, checked against the metric."""
    dim = check_metric(metric)
    s, _ = as_points(starts, "starts", dim)
    e, _ = as_points(ends, "ends", dim)
    if s.shape != e.shape:
        raise ValueError(f"ends: expected the shape of starts {np.shape(starts)}, got {np.shape(ends)}")
    return s, e
