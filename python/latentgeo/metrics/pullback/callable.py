"""The pullback metric of any Python decoder, with central-difference Jacobians."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from ..._validation import check_counts, check_int, check_positive
from ..base import DECODED_ENERGIES_DOC, Metric
from ..dense import DenseMetric
from ..support import (
    FrozenState,
    ReadOnly,
    central_differences,
    check_finite_rows,
    polyline_energies,
    real_output,
    unsingle,
)
from .likelihoods import pullback_repr


class CallablePullbackMetric(FrozenState, Metric):
    """Pullback metric of a Python decoder with central-difference Jacobians (slow).

    Parameters
    ----------
    decoder : callable
        ``decoder(z)`` with z (N, d) returns the outputs (N, D) (the mean, for a Gaussian decoder).
    dim : int
        The latent dimension d.
    log_sigma : callable, optional
        ``log_sigma(z)`` returns log σ (N, D'); adds J_σᵀJ_σ with J_σ the Jacobian of σ = exp(log σ).
    fd_step : float
        Step h of the central differences of the Jacobian (error O(h²)). ∂G/∂z takes central
        differences of G with step 1e-4.

    Notes
    -----
    Every metric evaluation calls the decoder on 2d shifted copies of the points (one batched
    call); ∂G/∂z differentiates G once more numerically (2d further calls of that). The geodesic
    solver minimises the decoded polyline's energy (:meth:`decoded_energies`), whose gradient
    needs the Jacobian only (one call on N points and one on 2dN). There is no
    C++ kernel (``_native()`` is None), so geodesic solvers take the callback path of
    :class:`~latentgeo.Metric`.
    The callables must be picklable for the metric to be. ``decoder``, ``log_sigma``, ``dim`` and
    ``fd_step`` are read-only.
    """

    decoder = ReadOnly()
    log_sigma = ReadOnly()
    fd_step = ReadOnly()
    dim = ReadOnly()
    _derived = ("_dense",)
    __repr__ = pullback_repr

    def __init__(self, decoder: Callable, dim: int, *, log_sigma: Optional[Callable] = None, fd_step: float = 1e-5):
        if not callable(decoder):
            raise ValueError("decoder: must be callable")
        if log_sigma is not None and not callable(log_sigma):
            raise ValueError("log_sigma: must be callable or None")
        self._decoder, self._log_sigma, self._dim = decoder, log_sigma, check_int(dim, "dim", 1)
        self._fd_step = check_positive(fd_step, "fd_step")
        self._rebuild()

    def _rebuild(self) -> None:
        # ∂G/∂z: central differences of G, with a step large against G's own numerical error.
        self._dense = DenseMetric(self._metric_of, dim=self.dim, fd_step=1e-4)
        self._dense._positive_definite = False  # J^T J is only semi-definite where J loses rank

    @property
    def output_dim(self) -> int:
        """Total output dimension (mean and σ outputs)."""
        return self._outputs(np.zeros((1, self.dim))).shape[1]

    @property
    def gaussian(self) -> bool:
        """True when the decoder has a log-σ head."""
        return self.log_sigma is not None

    def _call(self, fn, z: np.ndarray, name: str) -> np.ndarray:
        out = real_output(fn(z), name)
        if out.ndim != 2 or out.shape[0] != len(z):
            raise ValueError(f"{name}: must return an array of shape (N, D) for N = {len(z)} points, got {out.shape}")
        return check_finite_rows(out, z, name)

    def _outputs(self, z: np.ndarray) -> np.ndarray:
        out = self._call(self.decoder, z, "decoder")
        if self.log_sigma is not None:
            with np.errstate(over="ignore"):  # an overflow is reported below, naming the point
                sigma = np.exp(self._call(self.log_sigma, z, "log_sigma"))
            out = np.concatenate([out, check_finite_rows(sigma, z, "log_sigma", "exp overflows")], axis=1)
        return out

    def _jacobian(self, z: np.ndarray) -> np.ndarray:
        return central_differences(self._outputs, z, self.fd_step)  # (N, D, d)

    def _metric_of(self, z: np.ndarray) -> np.ndarray:
        jac = self._jacobian(z)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the point
            g = np.einsum("nia,nib->nab", jac, jac)
        return check_finite_rows(g, z, "metric", "J^T J overflows")

    def _metric(self, z, n_threads):
        return self._metric_of(z)

    def _derivative(self, z, n_threads):
        return self._dense.derivative(z)

    def decoded_energies(self, z, counts) -> Tuple[np.ndarray, np.ndarray]:
        pts, _ = self._points(z)
        energies, de = polyline_energies(self._outputs(pts), check_counts(counts, len(pts)))
        return energies, np.einsum("nia,ni->na", self._jacobian(pts), de)

    decoded_energies.__doc__ = DECODED_ENERGIES_DOC.format(
        embedding="the outputs (and σ with ``log_sigma``)",
        gradient=(
            "Jᵀ dE/de with J by central differences (step ``fd_step``: first derivatives only, "
            "relative error ~1e-10, where the quadratic form's gradients need differences of differences)"
        ),
    )

    def decode(self, z, n_threads: Optional[int] = None):
        """Decoder outputs: the mean (N, D), and with ``log_sigma`` the tuple (mean, σ)."""
        pts, single = self._points(z)
        mean = unsingle(self._call(self.decoder, pts, "decoder"), single)
        if self.log_sigma is None:
            return mean
        return mean, np.exp(unsingle(self._call(self.log_sigma, pts, "log_sigma"), single))

    def jacobian(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """Stacked Jacobians (N, D_total, d) by central differences; G = JᵀJ."""
        pts, single = self._points(z)
        return unsingle(self._jacobian(pts), single)
