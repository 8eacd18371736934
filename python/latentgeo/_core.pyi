"""Type stubs of the private compiled module latentgeo._core (C++ kernels)."""

from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

variant: str  # the instruction-set level of the loaded build (native, avx512, avx2, baseline, generic)

# The loader (_core.py): which variant this CPU runs.
PREFERENCE: Tuple[str, ...]

def cpu_flags(path: str = ...) -> Optional[FrozenSet[str]]: ...
def built_variants() -> List[str]: ...
def required_flags(variant: str) -> FrozenSet[str]: ...
def missing_flags(variant: str, flags: Optional[FrozenSet[str]]) -> List[str]: ...
def runnable_variants(flags: Optional[FrozenSet[str]]) -> List[str]: ...
def openmp_enabled() -> bool: ...
def max_threads() -> int: ...

class RHVAEKernel:
    def __init__(
        self, centroids: Array, m_packed: Array, temperature: float, regularization: float, scale: float
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def n_centroids(self) -> int: ...
    def inverse(self, z: Array, n_threads: int) -> Array: ...
    def metric(self, z: Array, n_threads: int) -> Array: ...  # G (N, d*d)
    def log_det(self, z: Array, n_threads: int) -> Array: ...  # (N,)
    def derivative(self, z: Array, of_inverse: bool, n_threads: int) -> Array: ...
    def quadratic_form(self, z: Array, v: Array, grad: bool, n_threads: int) -> Tuple[Array, ...]: ...

def finite_difference(ahead: Array, behind: Array, step: float) -> Array: ...
def discrete_velocity(points: Array, t: Array, n_threads: int) -> Array: ...
def quadrature_weights(t: Array, rule: str) -> Array: ...

# The C¹ cubic Hermite curve through nodes (n + 1, d), n >= 4, at uniform times on [0, 1]: tangents
# (n + 1, d) by fourth-order differences; points and velocities (N, d) at times t (N,) in [0, 1].
def hermite_tangents(nodes: Array) -> Array: ...
def hermite_curve(nodes: Array, t: Array) -> Tuple[Array, Array]: ...
def integrate(q: Array, weights: Array, integral: str, energy_factor: float, n_threads: int) -> Array: ...
def integrate_with_grad(
    q: Array, dqdz: Array, dqdv: Array, weights: Array, integral: str, energy_factor: float, n_threads: int
) -> Tuple[Array, Array, Array]: ...

class PullbackKernel:
    # trunk and each head: lists of ("dense", W (out, in), b (out,)) and ("act", name, param) steps;
    # names: identity, tanh, relu, softplus, sigmoid, elu, exp, bernoulli (s = 2 arcsin sqrt(sigmoid)).
    def __init__(self, dim: int, trunk: list, heads: List[list]) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def output_dim(self) -> int: ...
    @property
    def head_dims(self) -> List[int]: ...
    def evaluate(self, z: Array, n_threads: int) -> Array: ...  # (N, output_dim)
    def jacobian(self, z: Array, n_threads: int) -> Array: ...  # (N, output_dim * d)
    def metric(self, z: Array, n_threads: int) -> Array: ...
    def derivative(self, z: Array, n_threads: int) -> Array: ...
    def decoded_energies(self, z: Array, counts: List[int]) -> Tuple[Array, Array]: ...  # (P,), (N, d)
    def quadratic_form(self, z: Array, v: Array, grad: bool, n_threads: int) -> Tuple[Array, ...]: ...

class ConstantKernel:
    def __init__(self, A: Array) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def A(self) -> Array: ...

# Options of the discrete solver; a default-constructed one holds latentgeo.geodesics' defaults.
# ftol/gtol None: they follow length_tol (length_tol and 0.01 length_tol). Picklable.
class GeodesicOptions:
    n_segments: int  # > 0: fixed final number of segments; 0: adaptive
    min_segments: int
    max_segments: int
    length_tol: float
    ftol: Optional[float]
    gtol: Optional[float]
    max_iter: int
    history: int
    quadrature: str  # "simpson", "midpoint" or "decoded"
    preconditioner: str  # "auto", "metric" or "chord"
    max_ratio: float  # the length error estimate's largest convergence ratio (16 smooth, 2 where G jumps)
    smooth: bool  # setting it sets max_ratio to the core's smooth (16) or jump (2) value
    pairs_per_call: int  # metrics without a C++ kernel: pairs whose evaluations share one call
    def __init__(self, **options: Any) -> None: ...  # defaults from C++; unknown names raise ValueError
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple: ...
    def __setstate__(self, state: tuple) -> None: ...

# Keys of the result: nodes (B, n, d), n_nodes, length, energy, straight_length, n_iter, n_evaluations,
# n_levels, status (codes, see geodesic_status_names), message (B str: why the metric failed, "" if it
# did not), error (B: the Python exception of a "metric_error", else None) and levels (per pair, per
# level: (segments, n_iter, n_evaluations, kernel_points, kernel_seconds, length)).
# Raises ValueError naming the latentgeo.geodesics argument of an option out of range.
def geodesic_batch(
    metric: object,
    kernel: object,
    scale: float,
    starts: Array,
    ends: Array,
    init: Array,
    n0: int,
    options: GeodesicOptions,
    n_threads: int,
) -> Dict[str, Any]: ...

# The status names, index = status code.
def geodesic_status_names() -> List[str]: ...

# -- the connection (register_connection.cpp) -------------------------------------------------
# Every entry point takes keyword arguments only. `kernel` is an RHVAEKernel, ConstantKernel or
# PullbackKernel evaluated as `scale` · G (the core applies the scale: Christoffel symbols and the
# exp/log maps do not change, the scalar curvature scales by 1 / scale); kernel None selects the
# batched Python callback geometry_fn(z (N, d), want_derivative) -> (G (N, d, d), dG (N, d, d, d) or
# None, ok (N,) bool) with scale 1. Result dicts hold arrays indexed by trajectory or pair.

class ConnectionOptions:
    rtol: float
    max_steps: int
    tol: float
    max_iter: int
    jacobian_rtol: float
    fd_step: float
    block: int
    def __init__(self, **options: Any) -> None: ...  # defaults from C++; unknown names raise ValueError

def connection_status_names() -> List[str]: ...
def christoffel(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Tuple[Array, NDArray[np.bool_]]: ...
def curvature(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Tuple[Array, Array, NDArray[np.bool_]]: ...
def exp_map(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z: Array,
    v: Array,
    t_end: float,
    t_out: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Dict[str, np.ndarray]: ...
def log_map(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z0: Array,
    z1: Array,
    v_init: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Dict[str, np.ndarray]: ...
def transport_geodesic(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z: Array,
    v: Array,
    w: Array,
    t_end: float,
    t_out: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Dict[str, np.ndarray]: ...
def transport_nodes(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    nodes: List[Array],
    w: Array,
    t_out: Array,
    options: ConnectionOptions,
    n_threads: int,
) -> Dict[str, np.ndarray]: ...
def transport_callable(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    curve_fn: Callable,
    dim: int,
    w: Array,
    t_out: Array,
    options: ConnectionOptions,
) -> Dict[str, np.ndarray]: ...

# -- statistics (register_statistics.cpp) ------------------------------------------------------
# Keyword arguments only. `kernel` is a native kernel with an analytic volume jet (today the
# RHVAEKernel; ConstantKernel and PullbackKernel raise ValueError) evaluated as `scale` · G, or None:
# then the Python callback runs once per step for the whole batch (scale 1).
# brownian geometry_fn(z (N, d)) -> (G^{-1} (N, d, d), drift (N, d), ok (N,) bool);
# hmc log_density_fn(z (N, d)) -> (log p (N,), grad (N, d), ok (N,) bool).

class BrownianOptions:
    dt: float  # Euler-Maruyama step
    n_steps: int  # steps per path
    seed: int  # path i draws from the stream (seed, i)
    def __init__(self, **options: Any) -> None: ...  # defaults from C++; unknown names raise ValueError

class HmcOptions:
    n_warmup: int  # iterations adapting the step size, then discarded
    n_draws: int  # iterations recorded per chain
    n_leapfrog: int  # leapfrog steps per iteration
    step_size: float  # initial step in box units
    target_accept: float  # target acceptance of the step adaptation
    seed: int  # chain i draws from the stream (seed, i)
    def __init__(self, **options: Any) -> None: ...  # defaults from C++; unknown names raise ValueError

# Keys: paths (P, n_steps + 1, d), status (P,) int (0 completed, 1 left_domain, 2 non_finite),
# n_done (P,) steps completed.
def brownian_motion(
    *,
    kernel: Optional[object],
    scale: float,
    geometry_fn: Optional[Callable],
    z0: Array,
    options: BrownianOptions,
    n_threads: int,
) -> Dict[str, np.ndarray]: ...

# Keys: draws (n_draws, n_chains, d), accept_prob (n_chains,), n_divergent (int), step_size (float).
def hmc_sample(
    *,
    kernel: Optional[object],
    scale: float,
    sign: float,
    log_density_fn: Optional[Callable],
    init: Array,
    lo: Array,
    hi: Array,
    options: HmcOptions,
    n_threads: int,
) -> Dict[str, Any]: ...

# (log det (scale · G) (N,), its gradient (N, d)) of a kernel with a volume jet; NaN rows where
# G^{-1} is singular.
def has_volume_jet(kernel: object) -> bool: ...
def log_det_gradient(*, kernel: object, scale: float, z: Array, n_threads: int) -> Tuple[Array, Array]: ...
