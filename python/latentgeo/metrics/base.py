"""Riemannian metrics on a latent space ℝ^d.

The metric protocol
-------------------
Every curve and geodesic function of latentgeo accepts any object with

``dim`` : int
    The latent dimension d.
``metric(z)`` (and ``__call__(z)``)
    G at points ``z`` of shape (N, d): an array (N, d, d), symmetric positive definite.
``derivative(z)``
    ∂G/∂z with layout ``[n, a, b, k] = ∂G_ab/∂z_k``, shape (N, d, d, d).
``quadratic_form(z, v, grad=False, n_threads=None)``
    q_n = v_nᵀ G(z_n) v_n, shape (N,); with ``grad=True`` the tuple
    ``(q, dq/dz, dq/dv)`` with both gradients of shape (N, d).

Where G is not defined (singular, not positive definite, NaN or Inf) the latentgeo metrics raise
:class:`~latentgeo.errors.MetricDomainError` (a ``ValueError``) naming the point; a metric of
the protocol may raise it too, and the geodesic solver then backtracks from such points.

Subclassing :class:`Metric` and implementing ``metric`` and ``derivative`` gives the
rest (``quadratic_form``, ``inverse``, ``log_det``, ``magnification``) in numpy;
:class:`RHVAEMetric` computes everything in the C++ core.

Native dispatch: a metric backed by a C++ kernel says so through ``Metric._native()``
(see :class:`Metric`); :func:`native_kernel` asks any metric of the protocol.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _core
from .._validation import (
    as_points,
    check_metric,
    check_positive,
    check_threads,
)
from .support import (
    FrozenState,
    ReadOnly,
    unsingle,
)

# The docstring of every decoder metric's decoded_energies; {embedding} and {gradient} say how
# that metric computes them.
DECODED_ENERGIES_DOC = """Energies of decoded polylines and their gradients (the geodesic solver's
        default energy for this metric, ``quadrature="decoded"``).

        Parameters
        ----------
        z : array_like, shape (N, d)
            The nodes of P curves, one curve after the other.
        counts : sequence of int, shape (P,)
            Nodes of each curve (each >= 2, summing to N).

        Returns
        -------
        energies : ndarray, shape (P,)
            E_p = n_p Σᵢ ‖e(xᵢ₊₁) − e(xᵢ)‖² over the n_p = counts[p] − 1 segments of curve p, with e
            {embedding}. It tends to the energy ∫ γ̇ᵀGγ̇ dt as the nodes refine.
        gradient : ndarray, shape (N, d)
            dE_p/dx at the nodes of curve p: {gradient}.
        """


class Metric:
    """Base class of the metric protocol (see the module docstring).

    Subclasses implement ``_metric(z)`` and ``_derivative(z)`` on validated (N, d) float64
    points; the public methods validate, broadcast single points and derive the rest.

    How the geodesic solver uses a metric
    -------------------------------------
    *Native path.* ``_native()`` returns ``(kernel, scale)`` when a C++ kernel of the core
    (``RHVAEKernel``, ``PullbackKernel``, ``ConstantKernel``) evaluates ``scale · G``; the solver
    then runs on the kernel, pairs in parallel with the GIL released, and never calls back into
    Python. The default returns None. Wrappers delegate: :class:`ScaledMetric` multiplies its
    base's scale.

    *Callback path* (``_native()`` is None, or the object is not a :class:`Metric` at all).
    The solver works on up to ``pairs_per_call`` pairs at once (default 64; 1: one after the
    other) and gathers the evaluations they need into rounds: each round is one call, with
    C-contiguous float64 arrays, for all M points of the curves of all those pairs (nodes and
    quadrature points; never one point or one pair per call). The rows must not depend on each
    other (which points share a call varies); a call that raises is repeated pair by pair, so
    that the failure stays with its pair:

    - ``quadratic_form(z, v, grad=True)``: z, v (M, d) → ``(q (M,), dq_dz (M, d), dq_dv (M, d))``
      (energy and gradient);
    - ``quadratic_form(z, v)``: → q (M,) (the measured length and energy);
    - ``metric(z)``: → G (M, d, d) (the preconditioner, once per level);
    - optional, for the pullback metric G = JᵀJ of a decoder e: ``decoded_energies(z, counts)``
      → ``(E (P,), dE_dz (M, d))``, the energies n Σᵢ ‖e(xᵢ₊₁) − e(xᵢ)‖² of the P decoded
      polylines whose nodes are the rows of z (``counts[p]`` nodes for curve p) and their
      gradients; with it the solver minimises that energy (``quadrature="decoded"``, the default
      then), which needs no second derivatives of the decoder;
    - optional: a ``smooth`` attribute, False when G jumps (e.g. a decoder with ReLU units): the
      solver's length error estimate is then first order.

    ``n_threads`` is not passed. A :class:`~latentgeo.errors.MetricDomainError` marks the
    points as outside the metric's domain (infinite energy: the line search backtracks); any
    other ``Exception`` fails that pair only (status ``"metric_error"``); ``KeyboardInterrupt``
    stops the call.
    """

    dim: int

    def _native(self) -> Optional[Tuple[object, float]]:
        """``(C++ kernel, scale)`` when the core evaluates this metric as ``scale · G_kernel``, else None."""
        return None

    # -- to implement ---------------------------------------------------------------
    def _metric(self, z: np.ndarray, n_threads: int) -> np.ndarray:
        raise NotImplementedError

    def _derivative(self, z: np.ndarray, n_threads: int) -> np.ndarray:
        raise NotImplementedError

    # -- public API -----------------------------------------------------------------
    def _points(self, z, name: str = "z"):
        return as_points(z, name, self.dim)

    def metric(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """Metric tensor G(z).

        Parameters
        ----------
        z : array_like, shape (N, d) or (d,)
            Latent points.
        n_threads : int, optional
            Threads of the C++ core (None: all cores).

        Returns
        -------
        ndarray, shape (N, d, d) (or (d, d) for a single point)
        """
        pts, single = self._points(z)
        return unsingle(self._metric(pts, check_threads(n_threads)), single)

    __call__ = metric

    def derivative(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """∂G/∂z, shape (N, d, d, d) with layout ``[n, a, b, k] = ∂G_ab/∂z_k``."""
        pts, single = self._points(z)
        return unsingle(self._derivative(pts, check_threads(n_threads)), single)

    def inverse(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """G⁻¹(z), shape (N, d, d)."""
        return np.linalg.inv(self.metric(z, n_threads=n_threads))

    def log_det(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """log det G(z), shape (N,)."""
        sign, logdet = np.linalg.slogdet(self.metric(z, n_threads=n_threads))
        return logdet

    def magnification(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """Magnification factor √det G(z), shape (N,)."""
        return np.exp(0.5 * self.log_det(z, n_threads=n_threads))

    def quadratic_form(self, z, v, grad: bool = False, n_threads: Optional[int] = None):
        """q_n = v_nᵀ G(z_n) v_n and optionally its gradients.

        Parameters
        ----------
        z, v : array_like, shape (N, d)
            Points and tangent vectors.
        grad : bool
            Also return ∂q/∂z and ∂q/∂v, each (N, d).

        Returns
        -------
        q : ndarray (N,), or the tuple (q, dq_dz, dq_dv)
        """
        pts, _ = self._points(z)
        vel, _ = as_points(v, "v", self.dim)
        if vel.shape != pts.shape:
            raise ValueError(f"v: expected shape {np.shape(z)} like z, got {np.shape(v)}")
        return self._quadratic_form(pts, vel, grad, check_threads(n_threads))

    def _quadratic_form(self, z, v, grad, n_threads):
        g = self._metric(z, n_threads)
        gv = np.einsum("nab,nb->na", g, v)
        q = np.einsum("na,na->n", v, gv)
        if not grad:
            return q
        dg = self._derivative(z, n_threads)
        dqdz = np.einsum("na,nabk,nb->nk", v, dg, v)
        return q, dqdz, 2.0 * gv

    def scaled(self, factor: float) -> "ScaledMetric":
        """This metric multiplied by a positive constant."""
        return ScaledMetric(self, factor)


class ScaledMetric(FrozenState, Metric):
    """``factor`` times another metric (factor > 0); lengths scale by √factor. ``base`` and
    ``factor`` are read-only."""

    base = ReadOnly()
    factor = ReadOnly()
    dim = ReadOnly()

    def __init__(self, base, factor: float):
        self._dim = check_metric(base, "base")
        self._base = base
        self._factor = check_positive(factor, "factor")

    def __repr__(self) -> str:
        return f"ScaledMetric({self.base!r}, factor={self.factor:g})"

    def _native(self):
        kernel, scale = native_kernel(self.base)
        return None if kernel is None else (kernel, scale * self.factor)

    @property
    def smooth(self) -> bool:
        """The base's (a constant factor does not make G jump)."""
        return bool(getattr(self.base, "smooth", True))

    @property
    def decoded_energies(self):
        """The base's ``decoded_energies`` times the factor; absent (AttributeError) when the base
        has none, so that the geodesic solver's default energy follows the base's."""
        base = getattr(self.base, "decoded_energies", None)
        if not callable(base):
            raise AttributeError(f"{type(self.base).__name__} has no decoded_energies")

        def scaled(z, counts):
            energies, grad = base(z, counts)
            return self.factor * energies, self.factor * grad

        return scaled

    def _metric(self, z, n_threads):
        return self.factor * self.base.metric(z, n_threads=n_threads or None)

    def _derivative(self, z, n_threads):
        return self.factor * self.base.derivative(z, n_threads=n_threads or None)

    def _quadratic_form(self, z, v, grad, n_threads):
        out = self.base.quadratic_form(z, v, grad=grad, n_threads=n_threads or None)
        return tuple(self.factor * x for x in out) if grad else self.factor * out


def native_kernel(metric, *, volume_jet: bool = False) -> Tuple[Optional[object], float]:
    """``(C++ kernel, scale)`` of a metric solved natively, else ``(None, 1.0)``.

    Asks the metric itself (``metric._native()``, see :class:`Metric`); objects of the metric
    protocol that are not :class:`Metric` subclasses and have no ``_native`` take the callback path.
    With ``volume_jet=True`` only a kernel the core's samplers run natively (one with an analytic
    volume jet, ``_core.has_volume_jet``) counts; the others take the callback path there.
    """
    native = getattr(metric, "_native", None)
    found = native() if callable(native) else None
    if found is None or (volume_jet and not _core.has_volume_jet(found[0])):
        return None, 1.0
    return found
