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

import math
import os
import sys
from typing import Callable, Optional, Tuple

import numpy as np

from .. import _core
from .._validation import (
    as_float_array,
    as_points,
    check_choice,
    check_int,
    check_metric,
    check_positive,
    check_threads,
)
from ..errors import MetricDomainError
from ..io.npz import HEADER_KEYS, read_saved, write_saved

__all__ = ["Metric", "RHVAEMetric", "DenseMetric", "ConstantMetric", "ScaledMetric", "native_kernel"]

# Smallest temperature whose 1/T² is finite.
_MIN_TEMPERATURE = 1.0 / math.sqrt(sys.float_info.max)


def _unsingle(arr: np.ndarray, single: bool) -> np.ndarray:
    return arr[0] if single else arr


def _point(z: np.ndarray, i: int) -> str:
    return f"point {i}, z = ({', '.join(f'{x:.6g}' for x in z[i])})"


def real_output(out, name: str) -> np.ndarray:
    """What a user function returned, as a float64 array; complex output is a ValueError."""
    arr = np.asarray(out)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: returned complex values (dtype {arr.dtype}); a metric is real")
    return np.asarray(arr, dtype=np.float64)


def check_finite_rows(values: np.ndarray, z: np.ndarray, name: str, reason: str = "returned NaN or Inf") -> np.ndarray:
    """values (N, ...) computed at the points z (N, d); MetricDomainError naming the first non-finite one."""
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise MetricDomainError(f"{name}: {reason} at {_point(z, i)}", non_finite=True)
    return values


def check_spd(g: np.ndarray, z: np.ndarray, name: str) -> np.ndarray:
    """G (N, d, d) at z (N, d), finite with a positive definite symmetric part (a Cholesky per point).

    Raises MetricDomainError naming the first point where it is not.
    """
    check_finite_rows(g, z, name)
    sym = 0.5 * (g + np.swapaxes(g, 1, 2))
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        i = int(np.argmin(np.linalg.eigvalsh(sym)[:, 0]))  # the failure path only: find the point
        raise MetricDomainError(f"{name}: not positive definite at {_point(z, i)}") from None
    return g


def central_differences(fn: Callable, z: np.ndarray, step: float) -> np.ndarray:
    """∂fn/∂z_k by central differences: fn maps (M, d) points to (M, ...); returns (N, ..., d).

    All 2d shifted copies of the N points go to ``fn`` in one batched call.
    """
    n, d = z.shape
    steps = np.eye(d) * step
    shifted = np.concatenate([z[None] + steps[:, None, :], z[None] - steps[:, None, :]]).reshape(-1, d)
    out = fn(shifted)
    out = out.reshape((2, d, n) + out.shape[1:])
    return np.moveaxis((out[0] - out[1]) / (2 * step), 0, -1)


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


def polyline_energies(e: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Energies n_p Σᵢ ‖e_{i+1} − e_i‖² of P polylines stacked in the rows of e (counts[p] points
    and n_p = counts[p] − 1 segments for curve p), and their gradients dE/de (N, D)."""
    segments = np.repeat(counts - 1, counts)[:-1].astype(float)  # per chord: its curve's segments
    segments[np.cumsum(counts)[:-1] - 1] = 0.0  # no chord from one curve's last point to the next's first
    chords = np.diff(e, axis=0)
    curve = np.repeat(np.arange(len(counts)), counts)[:-1]
    energies = np.bincount(curve, segments * np.einsum("ij,ij->i", chords, chords), minlength=len(counts))
    pull = 2.0 * segments[:, None] * chords
    grad = np.zeros_like(e)
    grad[1:] += pull
    grad[:-1] -= pull
    return energies, grad


def frozen(value):
    """A read-only private copy of an array (lists and tuples of arrays are copied item by item).

    A metric's parameters never change after construction: the kernel built from them, ``repr``,
    pickling and ``save`` all see the same values, whatever the caller does to its own arrays.
    """
    if isinstance(value, np.ndarray):
        out = np.array(value, copy=True)
        out.flags.writeable = False
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(frozen(v) for v in value)
    return value


class ReadOnly:
    """A read-only attribute stored as ``_<name>`` (the parameters of the latentgeo metrics)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value) -> None:
        raise AttributeError(
            f"{self.name}: the parameters of {type(obj).__name__} are read-only; build a new metric instead"
        )


class FrozenState:
    """Pickling and copying for metrics with read-only parameters: arrays come back read-only
    and :meth:`_rebuild` recreates what is derived from the parameters (e.g. a C++ kernel)."""

    _derived: tuple = ()  # attributes rebuilt by _rebuild, never pickled

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._derived}

    def __setstate__(self, state):
        self.__dict__.update({k: frozen(v) for k, v in state.items()})
        self._rebuild()

    def _rebuild(self) -> None:
        pass


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
        return _unsingle(self._metric(pts, check_threads(n_threads)), single)

    __call__ = metric

    def derivative(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """∂G/∂z, shape (N, d, d, d) with layout ``[n, a, b, k] = ∂G_ab/∂z_k``."""
        pts, single = self._points(z)
        return _unsingle(self._derivative(pts, check_threads(n_threads)), single)

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


class RHVAEMetric(FrozenState, Metric):
    """The RHVAE metric, evaluated by the C++ core.

    G⁻¹(z) = s · Σ_k M_k exp(−‖z − c_k‖² / T²) + λ I, with M_k = L_k L_kᵀ and
    s = 1 (``normalization="sum"``, pythae) or 1/K (``"mean"``, AutoEncoderToolkit.jl).
    G is obtained from a Cholesky factorisation of G⁻¹, never a plain inverse.

    Parameters
    ----------
    centroids : array_like, shape (K, d)
        Centroids c_k.
    L : array_like, shape (K, d, d), optional
        Lower-triangular factors with positive diagonals. Give exactly one of L and M.
    M : array_like, shape (K, d, d), optional
        Symmetric positive definite matrices M_k = L_k L_kᵀ (pythae's ``M``).
    temperature : float
        T > 0.
    regularization : float
        λ ≥ 0 (pythae's ``lbd``).
    normalization : {"sum", "mean"}
        Scale s of the sum over centroids.

    Notes
    -----
    Arrays are validated once, here; evaluation reuses the packed d(d+1)/2 entries of each
    M_k. Evaluation is blocked over points and parallel with OpenMP; memory stays
    O(block · K), never O(N · K).

    The parameters (``centroids``, ``M``, ``temperature``, ``regularization``,
    ``normalization``) are read-only: the arrays are private read-only copies and assigning an
    attribute raises ``AttributeError``, so the metric evaluated is always the one shown by
    ``repr``, pickled and saved. Build a new metric to change them.
    """

    centroids = ReadOnly()
    M = ReadOnly()
    temperature = ReadOnly()
    regularization = ReadOnly()
    normalization = ReadOnly()
    dim = ReadOnly()
    _derived = ("_kernel",)

    def __init__(self, centroids, L=None, M=None, *, temperature, regularization, normalization: str = "sum"):
        self._centroids = frozen(as_float_array(centroids, "centroids", ndim=2))
        n_centroids, dim = self._centroids.shape
        if (L is None) == (M is None):
            raise ValueError("L, M: give exactly one of L (lower-triangular factors) and M (SPD matrices)")
        self._M = frozen(_factors_to_m(L, n_centroids, dim) if M is None else _check_spd(M, n_centroids, dim))
        self._temperature = check_positive(temperature, "temperature")
        if self._temperature < _MIN_TEMPERATURE:
            raise ValueError(f"temperature: must be >= {_MIN_TEMPERATURE:.3g} (1/T² overflows), got {temperature!r}")
        self._regularization = check_positive(regularization, "regularization", allow_zero=True)
        self._normalization = check_choice(normalization, "normalization", {"sum", "mean"})
        self._dim = dim
        self._rebuild()

    def _rebuild(self) -> None:
        k, d = self.centroids.shape
        rows, cols = np.triu_indices(d)
        packed = np.ascontiguousarray(self.M[:, rows, cols])
        scale = 1.0 if self.normalization == "sum" else 1.0 / k
        self._kernel = _core.RHVAEKernel(self.centroids, packed, self.temperature, self.regularization, scale)

    def _native(self):
        return self._kernel, 1.0

    @property
    def n_centroids(self) -> int:
        return self.centroids.shape[0]

    def __repr__(self) -> str:
        return (
            f"RHVAEMetric(dim={self.dim}, n_centroids={self.n_centroids}, temperature={self.temperature:g}, "
            f"regularization={self.regularization:g}, normalization={self.normalization!r})"
        )

    def _square(self, flat: np.ndarray, n: int) -> np.ndarray:
        return flat.reshape(n, self.dim, self.dim)

    def _metric(self, z, n_threads):
        return self._square(self._kernel.metric(z, n_threads=n_threads), len(z))

    def _derivative(self, z, n_threads):
        return self._kernel.derivative(z, of_inverse=False, n_threads=n_threads).reshape(
            len(z), self.dim, self.dim, self.dim
        )

    def _quadratic_form(self, z, v, grad, n_threads):
        out = self._kernel.quadratic_form(z, v, grad=grad, n_threads=n_threads)
        return out if grad else out[0]

    def inverse(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """G⁻¹(z), shape (N, d, d), computed directly from the formula."""
        pts, single = self._points(z)
        return _unsingle(self._square(self._kernel.inverse(pts, n_threads=check_threads(n_threads)), len(pts)), single)

    def inverse_derivative(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """∂G⁻¹/∂z, shape (N, d, d, d) with layout ``[n, a, b, k]``."""
        pts, single = self._points(z)
        d = self.dim
        return _unsingle(
            self._kernel.derivative(pts, of_inverse=True, n_threads=check_threads(n_threads)).reshape(
                len(pts), d, d, d
            ),
            single,
        )

    def log_det(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """log det G(z), shape (N,), from the Cholesky factor of G⁻¹."""
        pts, single = self._points(z)
        return _unsingle(self._kernel.log_det(pts, n_threads=check_threads(n_threads)), single)

    # -- storage and import ---------------------------------------------------------
    FORMAT_VERSION = 1

    def save(self, path, **extra_arrays) -> None:
        """Write the metric to a ``.npz`` file with named keys.

        Keys: ``format_version`` (int), ``kind`` (``"rhvae"``), ``centroids`` (K, d),
        ``M`` (K, d, d), ``temperature``, ``regularization``, ``normalization``; arrays are float64.

        Parameters
        ----------
        path : str or os.PathLike
            Target file (numpy appends ``.npz`` when missing).
        **extra_arrays : array_like
            Further named arrays stored alongside (e.g. latent means); :meth:`load` ignores them.
        """
        clash = sorted(set(extra_arrays) & set(_RHVAE_KEYS))
        if clash:
            raise ValueError(f"extra_arrays: names {clash} are reserved for the metric")
        arrays = dict(
            centroids=self.centroids,
            M=self.M,
            temperature=np.float64(self.temperature),
            regularization=np.float64(self.regularization),
            normalization=np.str_(self.normalization),
        )
        write_saved(
            path, "rhvae", self.FORMAT_VERSION, {**arrays, **{k: np.asarray(v) for k, v in extra_arrays.items()}}
        )

    @classmethod
    def load(cls, path) -> "RHVAEMetric":
        """Read a metric written by :meth:`save`.

        Raises
        ------
        ValueError
            A key is missing, has the wrong shape or type, holds NaN/Inf, or the format version
            is unknown: the message starts with the key's name. The file is not a readable
            ``.npz`` archive (a ``.npy``, text, truncated or corrupt file): the message starts
            with ``path:`` and names the file.
        FileNotFoundError
            No such file.
        """
        data = read_saved(path, _RHVAE_KEYS)
        missing = [k for k in _RHVAE_KEYS if k not in data]
        if missing and missing[0] in HEADER_KEYS:  # not a saved object of latentgeo's layout
            raise ValueError(f"{missing[0]}: missing from {os.fspath(path)!r} (missing keys {missing})")
        version = _npz_scalar(data, "format_version")
        if version != int(version) or not 1 <= version <= cls.FORMAT_VERSION:
            raise ValueError(
                f"format_version: unsupported version {version!r} (this latentgeo reads 1..{cls.FORMAT_VERSION})"
            )
        if _npz_string(data, "kind") != "rhvae":
            raise ValueError(f"kind: expected 'rhvae', got {_npz_string(data, 'kind')!r}")
        if missing:
            raise ValueError(f"{missing[0]}: missing from {os.fspath(path)!r} (missing keys {missing})")
        return cls(
            data["centroids"],
            M=data["M"],
            temperature=_npz_scalar(data, "temperature"),
            regularization=_npz_scalar(data, "regularization"),
            normalization=_npz_string(data, "normalization"),
        )

    @classmethod
    def from_pythae(cls, path_or_model) -> "RHVAEMetric":
        """The metric of a trained pythae (0.1.2) RHVAE.

        Parameters
        ----------
        path_or_model : str, os.PathLike or pythae RHVAE
            A folder saved by pythae's ``model.save`` (its ``model.pt`` holds ``M``,
            ``centroids`` and the state dict with ``temperature`` and ``lbd``), or a live model
            (``M_tens``, ``centroids_tens``, ``temperature``, ``lbd``).

        Returns
        -------
        RHVAEMetric
            With pythae's M_k = L_k L_kᵀ, ``normalization="sum"``, the float32 values as stored
            and float64 computations.

        Raises
        ------
        ImportError
            torch is missing (install the extra: ``pip install latentgeo[pythae]``).
        """
        from ..io.pythae import read_pythae_rhvae

        p = read_pythae_rhvae(path_or_model)
        return cls(
            p["centroids"],
            M=p["M"],
            temperature=p["temperature"],
            regularization=p["regularization"],
            normalization=p["normalization"],
        )


_RHVAE_KEYS = ("format_version", "kind", "centroids", "M", "temperature", "regularization", "normalization")


def _npz_scalar(data, key: str) -> float:
    arr = data[key]
    if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{key}: expected a numeric scalar, got dtype {arr.dtype} and shape {arr.shape}")
    value = float(arr)
    if not np.isfinite(value):
        raise ValueError(f"{key}: contains NaN or Inf")
    return value


def _npz_string(data, key: str) -> str:
    arr = data[key]
    if arr.shape != () or arr.dtype.kind != "U":
        raise ValueError(f"{key}: expected a string, got dtype {arr.dtype} and shape {arr.shape}")
    return str(arr)


def _factors_to_m(L, n_centroids: int, dim: int) -> np.ndarray:
    lower = as_float_array(L, "L", ndim=3)
    if lower.shape != (n_centroids, dim, dim):
        raise ValueError(f"L: expected shape {(n_centroids, dim, dim)}, got {lower.shape}")
    if np.any(np.triu(lower, 1) != 0):
        raise ValueError("L: each L_k must be lower-triangular")
    if np.any(np.diagonal(lower, axis1=1, axis2=2) <= 0):
        raise ValueError("L: each L_k must have a positive diagonal")
    return np.einsum("kab,kcb->kac", lower, lower)


def _check_spd(M, n_centroids: int, dim: int, name: str = "M") -> np.ndarray:
    """Validate a stack of SPD matrices; symmetrise away rounding (e.g. float32 L Lᵀ)."""
    m = as_float_array(M, name, ndim=3)
    if m.shape != (n_centroids, dim, dim):
        raise ValueError(f"{name}: expected shape {(n_centroids, dim, dim)}, got {m.shape}")
    asym = np.abs(m - m.transpose(0, 2, 1)).max()
    if asym > 1e-6 * max(np.abs(m).max(), np.finfo(float).tiny):
        raise ValueError(f"{name}: must be symmetric (max asymmetry {asym:.3g})")
    m = 0.5 * (m + m.transpose(0, 2, 1))
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name}: must be symmetric positive definite") from None
    return m


def _callable_name(fn) -> str:
    return "None" if fn is None else getattr(fn, "__qualname__", type(fn).__name__)


class DenseMetric(FrozenState, Metric):
    """A metric given by a Python function returning G at a batch of points.

    Parameters
    ----------
    G_fn : callable
        ``G_fn(z)`` with z (N, d) returns G (N, d, d): real, finite and symmetric positive definite
        (its symmetric part is checked with a Cholesky factorisation per point; a point where it
        fails raises :class:`~latentgeo.errors.MetricDomainError` naming it).
    dG_fn : callable, optional
        ``dG_fn(z)`` returns ∂G/∂z (N, d, d, d), layout ``[n, a, b, k]``. Without it the
        derivative is computed by central differences of ``G_fn`` (step ``fd_step``).
    dim : int
        The latent dimension d (keyword).
    fd_step : float
        Step of those central differences.

    The attributes ``G_fn``, ``dG_fn``, ``dim`` and ``fd_step`` are read-only.
    """

    G_fn = ReadOnly()
    dG_fn = ReadOnly()
    dim = ReadOnly()
    fd_step = ReadOnly()

    def __init__(self, G_fn: Callable, dG_fn: Optional[Callable] = None, *, dim: int, fd_step: float = 1e-6):
        if not callable(G_fn):
            raise ValueError("G_fn: must be callable")
        if dG_fn is not None and not callable(dG_fn):
            raise ValueError("dG_fn: must be callable or None")
        self._G_fn, self._dG_fn, self._dim = G_fn, dG_fn, check_int(dim, "dim", 1)
        self._fd_step = check_positive(fd_step, "fd_step")

    def __repr__(self) -> str:
        names = ", ".join(f"{k}={_callable_name(getattr(self, k))}" for k in ("G_fn", "dG_fn"))
        return f"DenseMetric(dim={self.dim}, {names}, fd_step={self.fd_step:g})"

    def _call_checked(self, fn, z, shape, name):
        out = real_output(fn(z), name)
        if out.shape != shape:
            raise ValueError(f"{name}: returned shape {out.shape}, expected {shape}")
        return check_finite_rows(out, z, name)

    # Positive definiteness is part of the contract; a pullback's J^T J may be only semi-definite.
    _positive_definite = True

    def _metric_at(self, z):
        g = self._call_checked(self.G_fn, z, (len(z), self.dim, self.dim), "G_fn")
        return check_spd(g, z, "G_fn") if self._positive_definite else g

    def _metric(self, z, n_threads):
        return self._metric_at(z)

    def _derivative(self, z, n_threads):
        n, d = z.shape
        if self.dG_fn is not None:
            return self._call_checked(self.dG_fn, z, (n, d, d, d), "dG_fn")
        return central_differences(self._metric_at, z, self.fd_step)


class ConstantMetric(FrozenState, Metric):
    """A constant metric G(z) = A (A symmetric positive definite, shape (d, d)); ``A`` is read-only."""

    A = ReadOnly()
    dim = ReadOnly()
    _derived = ("_kernel",)

    def __init__(self, A):
        a = as_float_array(A, "A", ndim=2)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"A: expected a square matrix, got shape {a.shape}")
        self._A = frozen(_check_spd(a[None], 1, a.shape[0], "A")[0])
        self._dim = a.shape[0]
        self._rebuild()

    def _rebuild(self) -> None:
        self._kernel = _core.ConstantKernel(self.A)

    def _native(self):
        return self._kernel, 1.0

    def __repr__(self) -> str:
        return f"ConstantMetric(A={self.A.tolist()})"

    def _metric(self, z, n_threads):
        return np.broadcast_to(self.A, (len(z), self.dim, self.dim)).copy()

    def _derivative(self, z, n_threads):
        return np.zeros((len(z), self.dim, self.dim, self.dim))

    def _quadratic_form(self, z, v, grad, n_threads):
        av = v @ self.A
        q = np.einsum("na,na->n", av, v)
        return (q, np.zeros_like(z), 2.0 * av) if grad else q


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


def native_kernel(metric) -> Tuple[Optional[object], float]:
    """``(C++ kernel, scale)`` of a metric solved natively, else ``(None, 1.0)``.

    Asks the metric itself (``metric._native()``, see :class:`Metric`); objects of the metric
    protocol that are not :class:`Metric` subclasses and have no ``_native`` take the callback path.
    """
    native = getattr(metric, "_native", None)
    found = native() if callable(native) else None
    return (None, 1.0) if found is None else found
