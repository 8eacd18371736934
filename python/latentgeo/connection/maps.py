"""The Levi-Civita connection: Christoffel symbols, exponential and logarithmic maps, parallel
transport and curvature.

Everything runs in the C++ core, in batches:

- ``christoffel`` Γᵏᵢⱼ = ½ Gᵏˡ(∂ᵢGₗⱼ + ∂ⱼGₗᵢ − ∂ₗGᵢⱼ); for the RHVAE from G⁻¹ and ∂G⁻¹ directly
  (∂G = −G ∂G⁻¹ G).
- ``exp_map`` integrates the geodesic equation γ̈ᵏ = −Γᵏᵢⱼ γ̇ⁱ γ̇ʲ with an adaptive Dormand–Prince
  5(4) with dense output, one step size per trajectory, trajectories in parallel. The RHVAE uses
  the Hamiltonian form ż = G⁻¹p, ṗ = −½ pᵀ(∂G⁻¹/∂z)p (p = Gż), which needs no factorisation: one
  pass over the centroids per stage.
- ``log_map`` starts from the tangent of the discrete geodesic (:func:`latentgeo.geodesics`) and
  refines it by damped Newton shooting; the Jacobian ∂γ(1)/∂v comes from the variational equations
  (Jacobi fields) integrated along the geodesic.
- ``parallel_transport`` integrates ẇᵏ = −Γᵏᵢⱼ γ̇ⁱ wʲ along a geodesic (with it) or along a given
  curve (the discrete solver's C¹ Hermite curve, node to node, or a Python callable).
- ``scalar_curvature``, ``gaussian_curvature`` (d = 2, = scalar/2) and ``ricci`` from Γ and ∂Γ.

Second derivatives of G: analytic for :class:`~latentgeo.RHVAEMetric` (closed-form second
derivatives of the weights) and :class:`~latentgeo.ConstantMetric` (zero). For pullback and
Python metrics ∂Γ is taken by fourth-order central differences of the analytic Christoffel symbols
with step h = ``fd_step``·max(1, |zₘ|) (default 1e-3): the error is ~h⁴|∂⁵Γ|/30 + ε|Γ|/h, about
1e-11 relative when Γ is exact to rounding; an error δ in Γ (e.g. from a metric whose ∂G is
itself a finite difference) becomes ~1.5 δ/h.

Metrics: the RHVAE, pullback (MLP) and constant metrics, and :class:`~latentgeo.ScaledMetric` of
them, run natively with the GIL released. Any other metric object (``dim``, ``metric(z)``,
``derivative(z)``) is called back in Python, once per integrator stage for a whole batch of points
(all trajectories advance in lockstep). A point where the callback returns non-finite values, or
raises ``ValueError``/``ArithmeticError``/``LinAlgError`` (retried point by point), or where G is not
positive definite, is outside the domain.

Scaling the metric by c leaves geodesics, exp, log vectors and transport unchanged, multiplies
distances by √c and divides the scalar and Gaussian curvature by c (the Ricci tensor is unchanged).

Statuses (per trajectory or pair): ``"converged"``, ``"max_steps"``, ``"domain_exit"`` (the
trajectory reached a point where G is not finite or not positive definite: its result is the last
point reached, at ``t_reached``), ``"step_underflow"``, and for the log map
``"singular_jacobian"`` (a conjugate point), ``"no_progress"`` and ``"max_iter"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import _core
from .._validation import as_float_array, as_points, check_int, check_metric, check_positive, check_threads
from ..curves import check_times
from ..metrics import native_kernel

__all__ = [
    "ExpMapResult",
    "LogMapResult",
    "TransportResult",
    "christoffel",
    "exp_map",
    "gaussian_curvature",
    "log_map",
    "parallel_transport",
    "ricci",
    "scalar_curvature",
    "transport_along_geodesic",
]

_DEFAULTS = _core.ConnectionOptions()
_STATUS = tuple(_core.connection_status_names())
_DOMAIN_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)
_INIT_TOL = 1e-6  # the discrete geodesic only seeds the shooting
# Items in one C++ call (well under a second each on one thread for a d = 8, K = 400 RHVAE).
_POINTS_PER_CALL, _CURVATURE_PER_CALL, _TRAJECTORIES_PER_CALL, _TRANSPORTS_PER_CALL, _PAIRS_PER_CALL = (
    8192,
    1024,
    256,
    128,
    16,
)


# --------------------------------------------------------------------------------------------
# Native models and the Python callback
# --------------------------------------------------------------------------------------------
def _native_model(metric):
    """(native kernel, scale) for metrics with a C++ kernel, else (None, 1.0).

    The core applies the scale itself (c·G has the connection of G; c enters the curvature only),
    for every kernel the same way.
    """
    return native_kernel(metric)  # an RHVAEKernel, ConstantKernel or PullbackKernel, or None


class _GeometryCallback:
    """G and ∂G of a Python metric for a whole batch of points: ``(z, want_derivative) -> (G, dG, ok)``.

    A batch that raises a domain error is retried point by point; the points that raise (or give
    non-finite values) are outside the domain. ``last_error`` keeps the last such message.
    """

    def __init__(self, metric):
        self.metric = metric
        self.dim = metric.dim
        self.last_error: Optional[str] = None

    def _evaluate(self, z: np.ndarray, want_derivative: bool):
        with np.errstate(all="ignore"):
            g = np.asarray(self.metric.metric(z), dtype=np.float64)
            dg = np.asarray(self.metric.derivative(z), dtype=np.float64) if want_derivative else None
        d = self.dim
        # A wrong shape is a broken metric, not a point outside the domain: TypeError, never retried.
        if g.shape != (len(z), d, d) or (dg is not None and dg.shape != (len(z), d, d, d)):
            raise TypeError(
                f"metric: metric(z)/derivative(z) returned shapes {g.shape}/"
                f"{None if dg is None else dg.shape} for {len(z)} points of dimension {d}"
            )
        return g, dg

    def __call__(self, z: np.ndarray, want_derivative: bool):
        try:
            g, dg = self._evaluate(z, want_derivative)
        except _DOMAIN_ERRORS as exc:
            self.last_error = str(exc)
            return self._pointwise(z, want_derivative)
        return g, dg, self._finite(g, dg)

    @staticmethod
    def _finite(g: np.ndarray, dg: Optional[np.ndarray]) -> np.ndarray:
        ok = np.all(np.isfinite(g.reshape(len(g), -1)), axis=1)
        if dg is not None:
            ok &= np.all(np.isfinite(dg.reshape(len(dg), -1)), axis=1)
        return ok

    def _pointwise(self, z: np.ndarray, want_derivative: bool):
        n, d = z.shape
        g, dg, ok = np.tile(np.eye(d), (n, 1, 1)), np.zeros((n, d, d, d)), np.zeros(n, dtype=bool)
        for i in range(n):
            try:
                gi, dgi = self._evaluate(z[i : i + 1], want_derivative)
            except _DOMAIN_ERRORS as exc:
                self.last_error = str(exc)
                continue
            g[i] = gi[0]
            if dgi is not None:
                dg[i] = dgi[0]
            ok[i] = self._finite(gi, dgi)[0]
        return g, (dg if want_derivative else None), ok


@dataclass
class _Backend:
    kernel: object
    scale: float
    callback: Optional[_GeometryCallback]
    threads: int

    def native(self) -> dict:
        """The keyword arguments that select the metric in every connection call of the core."""
        return {"kernel": self.kernel, "scale": self.scale, "geometry_fn": self.callback}

    def chunk(self, n: int, size: int) -> int:
        """Items per C++ call: ``size``, a fraction of a second on large models, so that Ctrl-C
        lands between calls. Fixed (not timed, not per thread): results must not depend on timing
        or n_threads. A Python callback sees KeyboardInterrupt itself and keeps the whole batch in
        lockstep (one call per stage)."""
        return max(n, 1) if self.callback is not None else size


def _backend(metric, n_threads) -> _Backend:
    kernel, scale = _native_model(metric)
    callback = _GeometryCallback(metric) if kernel is None else None
    return _Backend(kernel, scale, callback, check_threads(n_threads))


def _options(**values) -> "_core.ConnectionOptions":
    """The core's options with the given (validated) fields; None keeps the default."""
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


def _run_chunks(n: int, size: int, call: Callable[[slice], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Runs ``call`` on consecutive slices of [0, n) and concatenates its arrays along axis 0."""
    parts = [call(slice(i, min(i + size, n))) for i in range(0, n, size)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _status_names(codes) -> List[str]:
    return [_STATUS[int(c)] for c in codes]


def _require_inside(ok: np.ndarray, name: str, backend: _Backend) -> None:
    if np.all(ok):
        return
    bad = np.flatnonzero(~ok)
    why = f" ({backend.callback.last_error})" if backend.callback is not None and backend.callback.last_error else ""
    raise ValueError(
        f"{name}: the metric is not finite or not positive definite at point(s) {bad[:5].tolist()}"
        f"{' and more' if len(bad) > 5 else ''}{why}"
    )


def _pairs(a, b, names, dim):
    """Two point arrays of one shape (N, d); a single point (d,) broadcasts to the other's N."""
    x, single_x = as_points(a, names[0], dim)
    y, single_y = as_points(b, names[1], dim)
    if single_x and not single_y:
        x = np.repeat(x, len(y), axis=0)
    elif single_y and not single_x:
        y = np.repeat(y, len(x), axis=0)
    if x.shape != y.shape:
        raise ValueError(f"{names[1]}: expected shape {x.shape} like {names[0]}, got {y.shape}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y), single_x and single_y


# --------------------------------------------------------------------------------------------
# Christoffel symbols and curvature
# --------------------------------------------------------------------------------------------
def christoffel(metric, z, *, n_threads: Optional[int] = None) -> np.ndarray:
    """Christoffel symbols of the Levi-Civita connection.

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (N, d, d, d) (or (d, d, d))
        ``[n, k, i, j] = Γᵏᵢⱼ(zₙ)``, symmetric in i, j.

    Raises
    ------
    ValueError
        Bad input, or G is not finite or not positive definite at a point (named by index).
    """
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    backend = _backend(metric, n_threads)
    out = _run_chunks(
        len(pts),
        backend.chunk(len(pts), _POINTS_PER_CALL),
        lambda s: dict(
            zip(
                ("gamma", "ok"),
                _core.christoffel(**backend.native(), z=pts[s], options=_options(), n_threads=backend.threads),
            )
        ),
    )
    _require_inside(out["ok"], "z", backend)
    gamma = out["gamma"].reshape(len(pts), dim, dim, dim)
    return gamma[0] if single else gamma


def _curvature(metric, z, fd_step, n_threads):
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    backend = _backend(metric, n_threads)
    opts = _options(fd_step=fd_step)
    out = _run_chunks(
        len(pts),
        backend.chunk(len(pts), _CURVATURE_PER_CALL),
        lambda s: dict(
            zip(
                ("ricci", "scalar", "ok"),
                _core.curvature(**backend.native(), z=pts[s], options=opts, n_threads=backend.threads),
            )
        ),
    )
    _require_inside(out["ok"], "z", backend)
    return out["ricci"].reshape(len(pts), dim, dim), out["scalar"], single


def ricci(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None) -> np.ndarray:
    """Ricci tensor Rᵢⱼ = Rᵏᵢₖⱼ (symmetric; unchanged by scaling the metric).

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
    fd_step : float, optional
        Relative step of the finite differences of Γ for pullback and Python metrics (default 1e-3;
        see the module docstring). Unused for RHVAE and constant metrics (analytic).
    n_threads : int, optional

    Returns
    -------
    ndarray, shape (N, d, d) (or (d, d))
    """
    ric, _, single = _curvature(metric, z, fd_step, n_threads)
    return ric[0] if single else ric


def scalar_curvature(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None):
    """Scalar curvature S = Gⁱʲ Rᵢⱼ (2 on the unit sphere, −2 on the Poincaré half-plane).

    Parameters are those of :func:`ricci`.

    Returns
    -------
    ndarray, shape (N,) (or a float for one point)
    """
    _, scalar, single = _curvature(metric, z, fd_step, n_threads)
    return float(scalar[0]) if single else scalar


def gaussian_curvature(metric, z, *, fd_step: Optional[float] = None, n_threads: Optional[int] = None):
    """Gaussian curvature K = S/2 of a 2-d latent space (+1 on the unit sphere).

    Parameters are those of :func:`ricci`.

    Returns
    -------
    ndarray, shape (N,) (or a float for one point)
    """
    if check_metric(metric) != 2:
        raise ValueError(f"metric: the Gaussian curvature needs d = 2, got d = {metric.dim} (use scalar_curvature)")
    _, scalar, single = _curvature(metric, z, fd_step, n_threads)
    return float(scalar[0]) / 2.0 if single else scalar / 2.0


# --------------------------------------------------------------------------------------------
# The exponential map
# --------------------------------------------------------------------------------------------
@dataclass
class ExpMapResult:
    """Geodesics shot from points z in directions v.

    Attributes
    ----------
    points : ndarray, shape (N, d)
        γ(1) for γ(0) = z, γ̇(0) = v; where a trajectory failed, the last point it reached (at
        ``t_reached``).
    t : ndarray (T,) or None
        The requested output times.
    curves, velocities : ndarray, shape (N, T, d), or None
        γ and γ̇ at the times ``t`` (NaN after a failed trajectory stopped).
    converged : ndarray of bool, shape (N,)
    status : list of str
    n_steps, n_rejected : ndarray of int, shape (N,)
        Accepted and rejected integrator steps.
    speed_drift : ndarray, shape (N,)
        |q(end) − q(0)| / q(0) with q = γ̇ᵀGγ̇, constant along an exact geodesic.
    t_reached : ndarray, shape (N,)
        Time reached (the end time unless the trajectory failed).
    starts, initial_velocities : ndarray, shape (N, d)
        z and v, for :func:`parallel_transport` along these geodesics.
    """

    points: np.ndarray
    t: Optional[np.ndarray]
    curves: Optional[np.ndarray]
    velocities: Optional[np.ndarray]
    converged: np.ndarray
    status: List[str]
    n_steps: np.ndarray
    n_rejected: np.ndarray
    speed_drift: np.ndarray
    t_reached: np.ndarray
    starts: np.ndarray
    initial_velocities: np.ndarray


def _output_times(t):
    """(t_end, times passed to the core, index of t = 1 among them or None, user times or None)."""
    if t is None:
        return 1.0, np.zeros(0), None, None
    times = check_times(t, "t", lo=0.0)
    t_end = max(1.0, float(times[-1]))
    if t_end == 1.0:
        return 1.0, times, None, times
    core_times = np.union1d(times, [1.0])
    return t_end, core_times, int(np.searchsorted(core_times, 1.0)), times


def exp_map(
    metric,
    z,
    v,
    t=None,
    *,
    rtol: float = _DEFAULTS.rtol,
    max_steps: int = _DEFAULTS.max_steps,
    n_threads: Optional[int] = None,
    **options,
) -> ExpMapResult:
    """The exponential map: γ(1) of the geodesics with γ(0) = z and γ̇(0) = v.

    Parameters
    ----------
    metric : metric object
    z : array_like, shape (N, d) or (d,)
        Start points (one point is shared by all v).
    v : array_like, shape (N, d) or (d,)
        Initial velocities (one vector is shared by all z). v = 0 gives γ(1) = z.
    t : array_like, shape (T,), optional
        Strictly increasing times >= 0 at which to also return the curves and velocities (the
        integration runs to max(1, t[-1])).
    rtol : float
        Relative tolerance of each integrator step (default 1e-10); positions are controlled
        against the coordinate scale max(|z|, |v|·t_end), velocities against |v|.
    max_steps : int
        Accepted plus rejected steps per trajectory (default 20000).
    n_threads : int, optional
        Threads over trajectories (None: all cores); results do not depend on it.

    Returns
    -------
    ExpMapResult
    """
    _no_options(options)
    dim = check_metric(metric)
    starts, velocities, _ = _pairs(z, v, ("z", "v"), dim)
    t_end, core_times, one, user_times = _output_times(t)
    backend = _backend(metric, n_threads)
    opts = _options(rtol=rtol, max_steps=max_steps)
    out = _run_chunks(
        len(starts),
        backend.chunk(len(starts), _TRAJECTORIES_PER_CALL),
        lambda s: _core.exp_map(
            **backend.native(),
            z=starts[s],
            v=velocities[s],
            t_end=t_end,
            t_out=core_times,
            options=opts,
            n_threads=backend.threads,
        ),
    )
    n, n_out = len(starts), len(core_times)
    curves = out["curves"].reshape(n, n_out, dim) if n_out else None
    curve_velocities = out["curve_velocities"].reshape(n, n_out, dim) if n_out else None
    points = out["points"]
    if one is not None:  # γ(1) from the dense output; the user's times without the added 1
        points = np.where(np.isnan(curves[:, one]), points, curves[:, one])
        keep = np.isin(core_times, user_times)
        curves, curve_velocities = curves[:, keep], curve_velocities[:, keep]
    status = out["status"]
    return ExpMapResult(
        points=points,
        t=user_times,
        curves=curves,
        velocities=curve_velocities,
        converged=status == 0,
        status=_status_names(status),
        n_steps=out["n_steps"],
        n_rejected=out["n_rejected"],
        speed_drift=out["speed_drift"],
        t_reached=out["t_reached"],
        starts=starts,
        initial_velocities=velocities,
    )


# --------------------------------------------------------------------------------------------
# The logarithmic map
# --------------------------------------------------------------------------------------------
@dataclass
class LogMapResult:
    """Initial velocities of the geodesics from z0 to z1 on t ∈ [0, 1].

    Attributes
    ----------
    vectors : ndarray, shape (B, d)
        v with exp(z0, v) = z1; ‖v‖_G = the geodesic's length. For a pair that did not converge,
        the discrete geodesic's initial tangent (an estimate).
    distances : ndarray, shape (B,)
        ‖v‖_G(z0); for a pair that did not converge, the discrete geodesic's length.
    converged : ndarray of bool, shape (B,)
    status : list of str
    residual : ndarray, shape (B,)
        ‖exp(z0, v)(1) − z1‖ (Euclidean) of the last shooting iterate.
    n_iter : ndarray of int, shape (B,)
        Newton iterations.
    discrete : GeodesicBatch
        The discrete geodesics that seeded the shooting.
    """

    vectors: np.ndarray
    distances: np.ndarray
    converged: np.ndarray
    status: List[str]
    residual: np.ndarray
    n_iter: np.ndarray
    discrete: object


def _initial_tangents(batch, z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
    """γ̇(0) of each geodesic of the batch (the discrete solver's C¹ Hermite curve, or a neural
    curve's velocity); the chord z1 − z0 where a solve ended non-finite."""
    from ..solvers.api import HermiteCurve

    zero = np.zeros(1)
    if batch.method == "discrete":
        tangents = np.stack([HermiteCurve(nodes).tangents[0] for nodes in batch.node_list])
    else:
        tangents = np.stack([batch[i].curve.velocity(zero)[0] for i in range(len(batch))])
    bad = ~np.all(np.isfinite(tangents), axis=1)
    tangents[bad] = (z1 - z0)[bad]
    return tangents


def log_map(
    metric,
    z0,
    z1,
    *,
    tol: float = _DEFAULTS.tol,
    max_iter: int = _DEFAULTS.max_iter,
    rtol: float = _DEFAULTS.rtol,
    max_steps: int = _DEFAULTS.max_steps,
    n_threads: Optional[int] = None,
    progress: bool = False,
    geodesic_options: Optional[dict] = None,
    **options,
) -> LogMapResult:
    """The logarithmic map: v with exp(z0, v) = z1, for B pairs.

    The discrete geodesic between each pair (:func:`latentgeo.geodesics`, ``tol=1e-6`` unless
    ``geodesic_options`` says otherwise) gives the initial tangent; damped Newton shooting refines
    it, with the Jacobian ∂γ(1)/∂v from the variational equations. Shooting from the minimising
    discrete geodesic finds the minimising geodesic where it is unique.

    Parameters
    ----------
    metric : metric object
    z0, z1 : array_like, shape (B, d) or (d,)
        Start and end points (a single point broadcasts). z0 = z1 gives v = 0.
    tol : float
        Shooting stops when ‖exp(z0, v) − z1‖∞ <= tol·max(‖z0‖∞, ‖z1‖∞, ‖z1 − z0‖∞) (default 1e-10).
    max_iter : int
        Newton iterations per pair (default 20).
    rtol, max_steps : float, int
        Integrator settings as in :func:`exp_map`.
    n_threads : int, optional
    progress : bool
        Progress bar of the discrete geodesics.
    geodesic_options : dict, optional
        Keyword arguments of :func:`latentgeo.geodesics` for the initial curves.

    Returns
    -------
    LogMapResult
    """
    from ..solvers.api import geodesics

    _no_options(options)
    dim = check_metric(metric)
    a, b, _ = _pairs(z0, z1, ("z0", "z1"), dim)
    opts = _options(tol=tol, max_iter=max_iter, rtol=rtol, max_steps=max_steps)
    if not isinstance(geodesic_options, (dict, type(None))):
        raise ValueError("geodesic_options: expected a dict of geodesics() options")
    geo_opts = {"progress": progress, "n_threads": n_threads, **(geodesic_options or {})}
    if geo_opts.get("method", "discrete") == "discrete":
        geo_opts.setdefault("tol", _INIT_TOL)
    discrete = geodesics(metric, a, b, **geo_opts)
    guess = _initial_tangents(discrete, a, b)
    backend = _backend(metric, n_threads)
    out = _run_chunks(
        len(a),
        backend.chunk(len(a), _PAIRS_PER_CALL),
        lambda s: _core.log_map(
            **backend.native(), z0=a[s], z1=b[s], v_init=guess[s], options=opts, n_threads=backend.threads
        ),
    )
    converged = out["status"] == 0
    vectors = np.where(converged[:, None], out["vectors"], guess)
    q = np.asarray(metric.quadratic_form(a, vectors, n_threads=n_threads), dtype=np.float64)
    distances = np.where(converged, np.sqrt(np.maximum(q, 0.0)), discrete.length)
    return LogMapResult(
        vectors=vectors,
        distances=distances,
        converged=converged,
        status=_status_names(out["status"]),
        residual=out["residual"],
        n_iter=out["n_iter"],
        discrete=discrete,
    )


# --------------------------------------------------------------------------------------------
# Parallel transport
# --------------------------------------------------------------------------------------------
@dataclass
class TransportResult:
    """Tangent vectors transported along curves.

    Attributes
    ----------
    vectors : ndarray
        The vectors at the end of the curve(s), in the shape they were given (for a failed
        trajectory: where it stopped, at ``t_reached``).
    t : ndarray (T,) or None
        The requested times.
    along : ndarray or None
        The vectors at the times ``t``: shape (T,) + vectors.shape for one curve, (C, T) +
        vectors.shape[1:] for C curves.
    converged : ndarray of bool, shape (C,)
        One entry per curve.
    status : list of str
    n_steps : ndarray of int, shape (C,)
    t_reached : ndarray, shape (C,)
    """

    vectors: np.ndarray
    t: Optional[np.ndarray]
    along: Optional[np.ndarray]
    converged: np.ndarray
    status: List[str]
    n_steps: np.ndarray
    t_reached: np.ndarray


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
    from ..solvers.api import GeodesicBatch, GeodesicResult

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
    rtol: float = _DEFAULTS.rtol,
    max_steps: int = _DEFAULTS.max_steps,
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
    _no_options(options)
    dim = check_metric(metric)
    kind, data, batch = _curve_kind(curve)
    n_curves = len(data) if kind == "nodes" else (len(data[0]) if kind == "geodesic" else 1)
    w, restore = _transport_vectors(vectors, n_curves, dim, batch)
    times = np.zeros(0) if t is None else check_times(t, "t", lo=0.0, hi=1.0)
    if kind == "geodesic" and data[0].shape[1] != dim:
        raise ValueError(f"curve: the exp result has dimension {data[0].shape[1]}, the metric {dim}")
    if kind == "callable":
        data = _callable_curve(data[0], velocity if velocity is not None else data[1], dim)
    out = _transport(_backend(metric, n_threads), kind, data, w, times, _options(rtol=rtol, max_steps=max_steps))
    return _transport_result(out, w, times if t is not None else None, restore, batch)


def _transport(backend: _Backend, kind: str, data, w: np.ndarray, times: np.ndarray, opts) -> Dict[str, np.ndarray]:
    """The core's transport of w (C, V, d) along C geodesics (starts, velocities), node curves or one callable."""
    n_curves, dim = len(w), w.shape[2]
    flat = np.ascontiguousarray(w.reshape(n_curves, -1))
    if kind == "callable":
        return _core.transport_callable(**backend.native(), curve_fn=data, dim=dim, w=flat, t_out=times, options=opts)
    if kind == "geodesic":
        starts, vel = data
        return _run_chunks(
            n_curves,
            backend.chunk(n_curves, _TRANSPORTS_PER_CALL),
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
    return _run_chunks(
        n_curves,
        backend.chunk(n_curves, _TRANSPORTS_PER_CALL),
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
    status = out["status"]
    return TransportResult(
        vectors=end,
        t=times,
        along=along,
        converged=status == 0,
        status=_status_names(status),
        n_steps=out["n_steps"],
        t_reached=out["t_reached"],
    )


def transport_along_geodesic(
    metric,
    z0,
    z1,
    vectors,
    *,
    tol: float = _DEFAULTS.tol,
    rtol: float = _DEFAULTS.rtol,
    n_threads: Optional[int] = None,
    progress: bool = False,
    geodesic_options: Optional[dict] = None,
    **options,
) -> TransportResult:
    """Vectors at z0 transported along the minimising geodesics to z1 (the one-call convenience).

    The geodesic is found by :func:`log_map`; the vectors are transported together with it. A pair
    whose log map did not converge is transported along its discrete geodesic instead and keeps the
    log map's status (``converged`` False).

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
    _no_options(options)
    dim = check_metric(metric)
    a, b, single = _pairs(z0, z1, ("z0", "z1"), dim)
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
    backend = _backend(metric, n_threads)
    opts = _options(rtol=rtol)
    out = _transport(backend, "geodesic", (a, log.vectors), per_pair, np.zeros(0), opts)
    moved, status = out["vectors"].reshape(per_pair.shape), _status_names(out["status"])
    failed = np.flatnonzero(~log.converged)
    if len(failed):  # along the discrete geodesics instead
        fallback = _transport(
            backend, "nodes", [log.discrete.node_list[i] for i in failed], per_pair[failed], np.zeros(0), opts
        )
        moved[failed] = fallback["vectors"].reshape(per_pair[failed].shape)
        for i in failed:
            status[i] = log.status[i]
    return TransportResult(
        vectors=moved.reshape(w.shape),
        t=None,
        along=None,
        converged=np.array([s == "converged" for s in status]),
        status=status,
        n_steps=out["n_steps"],
        t_reached=out["t_reached"],
    )


def _no_options(options: dict) -> None:
    if options:
        raise ValueError(f"options: unknown option(s) {sorted(options)}")
