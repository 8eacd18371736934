"""Samples of the Riemannian volume densities, by Hamiltonian Monte Carlo in C++ (``statistics.hpp``).

All chains run in lock step on a box: the RHVAE metric natively (one fused pass for log det G
and its gradient), any other metric of the protocol called back once per leapfrog step for the
whole batch. Chain c draws from its own random stream seeded by (seed, c), so results do not
depend on the thread count. :func:`effective_sample_size` is the multi-chain ESS of the draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import _core
from .._validation import as_float_array, check_choice, check_int, check_metric, check_positive, check_threads
from ..metrics import native_kernel
from .common import check_seed
from .sampling import numpy_jet

__all__ = ["SamplingResult", "sample_riemannian", "effective_sample_size"]

_DENSITY_SIGN = {"volume": 1.0, "inverse_volume": -1.0}


@dataclass
class SamplingResult:
    """Samples of a density on the latent space.

    Attributes
    ----------
    samples : ndarray, shape (n, d)
        Draw-major: the first draw of every chain, then the second, …
    chains : ndarray, shape (n_draws, n_chains, d)
        All recorded draws per chain.
    acceptance_rate : float
        Mean acceptance probability of the recorded iterations.
    ess : ndarray, shape (d,)
        Effective sample size per coordinate (multi-chain estimator, see
        :func:`effective_sample_size`) of all recorded draws.
    step_size : float
        The adapted leapfrog step, in units of the box's sides.
    n_divergent : int
        Recorded iterations whose trajectory left the domain or whose energy blew up (rejected).
    bounds : ndarray, shape (2, d)
        The box (lower and upper corner).
    density : str
    """

    samples: np.ndarray
    chains: np.ndarray
    acceptance_rate: float
    ess: np.ndarray
    step_size: float
    n_divergent: int
    bounds: np.ndarray
    density: str


def effective_sample_size(chains) -> np.ndarray:
    """Effective sample size per coordinate of draws (n_draws, n_chains, d).

    The multi-chain estimator of Stan (Gelman et al., BDA3 §11.5): autocorrelations
    ρₜ = 1 − (W − mean within-chain autocovariance at lag t) / var⁺ with W the mean within-chain
    variance and var⁺ = (N − 1)/N W + B/N, summed over Geyer's initial positive and monotone
    sequence; ESS = M N / τ. With a single draw per chain the chains count as independent
    (ESS = M). A coordinate that never moves has ESS 1.
    """
    x = as_float_array(chains, "chains", ndim=3)
    n, m, d = x.shape
    if n == 1:
        return np.full(d, float(m))
    centred = x - x.mean(axis=0)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * n, axis=0)[:n] / n  # (n, m, d), biased
    within = acov[0] * n / (n - 1)  # chain variances
    w = within.mean(axis=0)
    between = x.mean(axis=0).var(axis=0, ddof=1) if m > 1 else np.zeros(d)
    var_plus = (n - 1) / n * w + between
    ess = np.ones(d)
    for j in range(d):
        if not var_plus[j] > 0:
            continue
        rho = 1.0 - (w[j] - acov[:, :, j].mean(axis=1)) / var_plus[j]
        rho[0] = 1.0
        tau = _geyer_tau(rho)
        ess[j] = n * m / max(tau, 1.0 / np.log10(max(n * m, 10)))
    return ess


def _geyer_tau(rho: np.ndarray) -> float:
    """τ = −1 + 2 Σ Pₖ over the initial positive, monotone pairs Pₖ = ρ₂ₖ + ρ₂ₖ₊₁."""
    pairs = rho[: len(rho) // 2 * 2].reshape(-1, 2).sum(axis=1)
    total, previous = 0.0, np.inf
    for p in pairs:
        if p <= 0:
            break
        p = min(p, previous)
        total += p
        previous = p
    return -1.0 + 2.0 * total if total > 0 else 1.0


def _default_bounds(metric, dim: int) -> np.ndarray:
    centroids = getattr(metric, "centroids", getattr(getattr(metric, "base", None), "centroids", None))
    if centroids is None:
        raise ValueError(
            "bounds: required (a (2, d) array of the box's lower and upper corners) for a metric without centroids"
        )
    lo, hi = centroids.min(axis=0), centroids.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-3 * max(1.0, float(np.abs(centroids).max())))
    return np.stack([lo - pad, hi + pad])


def _check_bounds(bounds, dim: int) -> np.ndarray:
    b = as_float_array(bounds, "bounds", ndim=2)
    if b.shape != (2, dim):
        raise ValueError(f"bounds: expected shape (2, {dim}) (lower and upper corners), got {b.shape}")
    if not np.all(b[0] < b[1]):
        raise ValueError("bounds: the lower corner must lie below the upper corner in every coordinate")
    return b


def _log_density_callback(metric, sign: float):
    def log_density(z):
        _, _, dlogdet, logdet, ok = numpy_jet(metric, np.asarray(z))
        ok &= np.isfinite(logdet)
        return np.where(ok, 0.5 * sign * logdet, 0.0), np.where(ok[:, None], 0.5 * sign * dlogdet, 0.0), ok

    return log_density


@dataclass(frozen=True)
class _HmcSettings:
    """The checked sampler settings of one :func:`sample_riemannian` run (its defaults are that
    function's)."""

    n_warmup: int
    n_draws: int
    n_leapfrog: int
    step_size: float
    target_accept: float
    seed: int
    n_threads: int


def _run_hmc(
    metric, *, kernel, scale: float, sign: float, init: np.ndarray, box: np.ndarray, settings: _HmcSettings
) -> dict:
    """The core's HMC: natively with an RHVAE ``kernel`` (of ``scale`` · G), else calling back ``metric`` in numpy."""
    options = _core.HmcOptions(
        n_warmup=settings.n_warmup,
        n_draws=settings.n_draws,
        n_leapfrog=settings.n_leapfrog,
        step_size=settings.step_size,
        target_accept=settings.target_accept,
        seed=settings.seed,
    )
    return _core.hmc_sample(
        kernel=kernel,
        scale=scale,
        sign=sign,
        log_density_fn=None if kernel is not None else _log_density_callback(metric, sign),
        init=init,
        lo=box[0],
        hi=box[1],
        options=options,
        n_threads=settings.n_threads,
    )


def sample_riemannian(
    metric,
    n: int,
    *,
    density: str = "volume",
    bounds=None,
    method: str = "hmc",
    seed: int,
    n_chains: Optional[int] = None,
    n_warmup: int = 200,
    n_leapfrog: int = 10,
    step_size: float = 0.1,
    target_accept: float = 0.8,
    n_threads: Optional[int] = None,
) -> SamplingResult:
    """Samples from a density of the metric on a box, by Hamiltonian Monte Carlo.

    Parameters
    ----------
    metric : metric protocol object
        :class:`~latentgeo.RHVAEMetric` (and scaled) runs natively; any other metric is called
        back once per leapfrog step for all chains (``metric`` and ``derivative``).
    n : int
        Number of samples.
    density : {"volume", "inverse_volume"}
        ∝ √det G(z) (the Riemannian uniform distribution on the box) or ∝ √det G⁻¹(z) (the
        "geometry-aware" sampler of Chadebec & Allassonnière 2022, pythae's ``RHVAESampler``:
        high where the data are).
    bounds : array_like, shape (2, d), optional
        Lower and upper corner of the box; default: the metric's centroids' bounding box, padded
        by 10% on each side. The chains reflect at its walls.
    method : {"hmc"}
    seed : int
        Chain c draws from the stream (seed, c); the starts are uniform in the box from ``seed``.
    n_chains : int, optional
        Chains run in lock step (default ⌈n / 10⌉, at least 4 and at most n); each records
        ⌈n / n_chains⌉ draws after the warm-up.
    n_warmup : int
        Warm-up iterations (step size adapted by dual averaging towards ``target_accept``).
    n_leapfrog : int
        Leapfrog steps per iteration.
    step_size : float
        Initial leapfrog step in units of the box's sides.
    target_accept : float
        In (0, 1).
    n_threads : int, optional
        Threads of the metric evaluations (None: all cores); the result does not depend on it.

    Returns
    -------
    SamplingResult
        With the acceptance rate and the effective sample size.
    """
    dim = check_metric(metric)
    n = check_int(n, "n", 1)
    sign = _DENSITY_SIGN[check_choice(density, "density", set(_DENSITY_SIGN))]
    check_choice(method, "method", {"hmc"})
    seed = check_seed(seed)
    box = _default_bounds(metric, dim) if bounds is None else _check_bounds(bounds, dim)
    n_chains = min(n, max(4, -(-n // 10))) if n_chains is None else check_int(n_chains, "n_chains", 1)
    n_warmup = check_int(n_warmup, "n_warmup", 0)
    n_leapfrog = check_int(n_leapfrog, "n_leapfrog", 1)
    step_size = check_positive(step_size, "step_size")
    target_accept = check_positive(target_accept, "target_accept")
    if not target_accept < 1:
        raise ValueError(f"target_accept: must lie in (0, 1), got {target_accept!r}")
    threads = check_threads(n_threads)
    n_draws = -(-n // n_chains)
    init = box[0] + (box[1] - box[0]) * np.random.default_rng(seed).random((n_chains, dim))
    kernel, scale = native_kernel(metric, volume_jet=True)
    out = _run_hmc(
        metric,
        kernel=kernel,
        scale=scale,
        sign=sign,
        init=init,
        box=box,
        settings=_HmcSettings(
            n_warmup=n_warmup,
            n_draws=n_draws,
            n_leapfrog=n_leapfrog,
            step_size=step_size,
            target_accept=target_accept,
            seed=seed,
            n_threads=threads,
        ),
    )
    chains = out["draws"]
    samples = chains.reshape(-1, dim)[:n].copy()
    return SamplingResult(
        samples=samples,
        chains=chains,
        acceptance_rate=float(np.mean(out["accept_prob"])),
        ess=effective_sample_size(chains),
        step_size=float(out["step_size"]),
        n_divergent=int(out["n_divergent"]),
        bounds=box,
        density=density,
    )
