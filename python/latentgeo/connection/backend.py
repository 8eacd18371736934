"""Between the connection's functions and the C++ core: the metric's native kernel or Python
callback, the core's options and defaults, chunked calls and status names.

The kernel comes from :func:`latentgeo.metrics.native_kernel`, the one place that decides between
the C++ kernel and the callback; the core applies the scale factor itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import _core
from .._validation import check_int, check_positive, check_threads
from ..metrics import native_kernel
from ..metrics.callback import GeometryCallback

__all__ = [
    "CURVATURE_PER_CALL",
    "DEFAULTS",
    "PAIRS_PER_CALL",
    "POINTS_PER_CALL",
    "TRAJECTORIES_PER_CALL",
    "TRANSPORTS_PER_CALL",
    "Backend",
    "ConnectionDefaults",
    "core_options",
    "make_backend",
    "status_names",
]

# Items in one C++ call (well under a second each on one thread for a d = 8, K = 400 RHVAE).
POINTS_PER_CALL = 8192  # christoffel
CURVATURE_PER_CALL = 1024  # ricci, scalar and Gaussian curvature
TRAJECTORIES_PER_CALL = 256  # exp_map
TRANSPORTS_PER_CALL = 128  # parallel transport along geodesics or node curves
PAIRS_PER_CALL = 16  # log_map (Newton shooting)

_STATUS = tuple(_core.connection_status_names())


@dataclass(frozen=True)
class ConnectionDefaults:
    """The C++ core's default connection options, read from ``_core.ConnectionOptions()``."""

    rtol: float
    tol: float
    max_iter: int
    max_steps: int
    fd_step: float


def _read_defaults() -> ConnectionDefaults:
    core = _core.ConnectionOptions()
    return ConnectionDefaults(**{f.name: getattr(core, f.name) for f in fields(ConnectionDefaults)})


DEFAULTS = _read_defaults()
"""The core's defaults (C++ is their one home); the signatures' default values come from here."""


@dataclass(frozen=True)
class Backend:
    """What the core's connection entry points take for one metric: its native kernel (or None and
    a Python callback), the metric's scale factor over that kernel, and the thread count."""

    kernel: object
    scale: float
    callback: Optional[GeometryCallback]
    threads: int

    def native(self) -> dict:
        """The keyword arguments that select the metric in every connection call of the core."""
        return {"kernel": self.kernel, "scale": self.scale, "geometry_fn": self.callback}

    def run(self, n: int, per_call: int, call: Callable[[slice], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """Runs ``call`` on consecutive slices of [0, n) and concatenates its arrays along axis 0.

        A slice holds ``per_call`` items (a fraction of a second on large models, so that Ctrl-C
        lands between calls). Fixed (not timed, not per thread): results must not depend on timing
        or n_threads. A Python callback sees KeyboardInterrupt itself and keeps the whole batch in
        lockstep (one call per stage).
        """
        size = max(n, 1) if self.callback is not None else per_call
        parts = [call(slice(i, min(i + size, n))) for i in range(0, n, size)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def require_inside(self, ok: np.ndarray, name: str) -> None:
        """Raises ValueError naming the points (of argument ``name``) where ``ok`` is False."""
        if np.all(ok):
            return
        bad = np.flatnonzero(~ok)
        error = self.callback.last_error if self.callback is not None else None
        raise ValueError(
            f"{name}: the metric is not finite or not positive definite at point(s) {bad[:5].tolist()}"
            f"{' and more' if len(bad) > 5 else ''}{f' ({error})' if error else ''}"
        )


def make_backend(metric, n_threads) -> Backend:
    """The :class:`Backend` of a metric: its native kernel, or the Python callback when it has none."""
    kernel, scale = native_kernel(metric)
    callback = GeometryCallback(metric) if kernel is None else None
    return Backend(kernel, scale, callback, check_threads(n_threads))


def core_options(**values) -> "_core.ConnectionOptions":
    """The core's options with the given (validated) fields; None keeps the core's default."""
    checks = {
        "rtol": lambda x: _check_fraction(x, "rtol"),
        "tol": lambda x: check_positive(x, "tol"),
        "max_steps": lambda x: check_int(x, "max_steps", 1),
        "max_iter": lambda x: check_int(x, "max_iter", 1),
        "fd_step": lambda x: _check_fraction(x, "fd_step"),
    }
    opts = _core.ConnectionOptions()
    for name, value in values.items():
        if value is not None:
            setattr(opts, name, checks[name](value))
    return opts


def _check_fraction(value, name: str) -> float:
    x = check_positive(value, name)
    if x >= 1.0:
        raise ValueError(f"{name}: must be < 1, got {value!r}")
    return x


def status_names(codes) -> List[str]:
    """The core's status codes as names (``"converged"``, ``"max_steps"``, ...)."""
    return [_STATUS[int(c)] for c in codes]
