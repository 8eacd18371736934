"""The RHVAE metric: G⁻¹(z) = Σ_k M_k exp(−‖z − c_k‖²/T²) + λI, evaluated by the C++ core."""

from __future__ import annotations

import math
import sys
from typing import Optional

import numpy as np

from .. import _core
from .._validation import (
    as_float_array,
    check_choice,
    check_positive,
    check_threads,
)
from ..io.npz import load_saved, saved_scalar, saved_string, write_saved
from .base import Metric
from .support import (
    FrozenState,
    ReadOnly,
    check_spd_stack,
    frozen,
    unsingle,
)

# Smallest temperature whose 1/T² is finite.
_MIN_TEMPERATURE = 1.0 / math.sqrt(sys.float_info.max)


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
        self._M = frozen(factors_to_m(L, n_centroids, dim) if M is None else check_spd_stack(M, n_centroids, dim))
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
        return unsingle(self._square(self._kernel.inverse(pts, n_threads=check_threads(n_threads)), len(pts)), single)

    def inverse_derivative(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """∂G⁻¹/∂z, shape (N, d, d, d) with layout ``[n, a, b, k]``."""
        pts, single = self._points(z)
        d = self.dim
        return unsingle(
            self._kernel.derivative(pts, of_inverse=True, n_threads=check_threads(n_threads)).reshape(
                len(pts), d, d, d
            ),
            single,
        )

    def log_det(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """log det G(z), shape (N,), from the Cholesky factor of G⁻¹."""
        pts, single = self._points(z)
        return unsingle(self._kernel.log_det(pts, n_threads=check_threads(n_threads)), single)

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
        arrays = dict(
            centroids=self.centroids,
            M=self.M,
            temperature=np.float64(self.temperature),
            regularization=np.float64(self.regularization),
            normalization=np.str_(self.normalization),
        )
        write_saved(path, "rhvae", self.FORMAT_VERSION, arrays, extra_arrays)

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
        data = load_saved(path, "rhvae", cls.FORMAT_VERSION, _RHVAE_KEYS, keys=_RHVAE_KEYS)
        return cls(
            data["centroids"],
            M=data["M"],
            temperature=saved_scalar(data, "temperature"),
            regularization=saved_scalar(data, "regularization"),
            normalization=saved_string(data, "normalization"),
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


_RHVAE_KEYS = ("centroids", "M", "temperature", "regularization", "normalization")


def factors_to_m(L, n_centroids: int, dim: int) -> np.ndarray:
    lower = as_float_array(L, "L", ndim=3)
    if lower.shape != (n_centroids, dim, dim):
        raise ValueError(f"L: expected shape {(n_centroids, dim, dim)}, got {lower.shape}")
    if np.any(np.triu(lower, 1) != 0):
        raise ValueError("L: each L_k must be lower-triangular")
    if np.any(np.diagonal(lower, axis1=1, axis2=2) <= 0):
        raise ValueError("L: each L_k must have a positive diagonal")
    return np.einsum("kab,kcb->kac", lower, lower)
