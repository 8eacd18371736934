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

Modules: :mod:`~latentgeo.connection.pointwise` (Γ and curvature), :mod:`~latentgeo.connection.maps`
(exp and log), :mod:`~latentgeo.connection.transport`, :mod:`~latentgeo.connection.results` (the
result types), over :mod:`~latentgeo.connection.backend` (the metric's native model or Python
callback, :class:`~latentgeo.metrics.callback.GeometryCallback`; options, chunked core calls).

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
``"singular_jacobian"`` (a conjugate point), ``"no_progress"`` and ``"max_iter"``. In every result
``converged`` is ``status == "converged"``.
"""

from __future__ import annotations

from .backend import DEFAULTS, ConnectionDefaults
from .maps import exp_map, log_map
from .pointwise import christoffel, gaussian_curvature, ricci, scalar_curvature
from .results import ExpMapResult, LogMapResult, TransportResult
from .transport import parallel_transport, transport_along_geodesic

__all__ = [
    "DEFAULTS",
    "ConnectionDefaults",
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
