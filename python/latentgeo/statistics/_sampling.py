"""Sampling on the manifold: Brownian motion and the Riemannian volume densities by HMC.

Both run in C++ (``statistics.hpp``) with all paths or chains in lock step: the RHVAE metric is
evaluated natively (one fused pass for log det G, its gradient, G⁻¹ and ∂G⁻¹); any other metric
of the protocol is called back once per step for the whole batch. Each path or chain draws from
its own random stream seeded by (seed, index), so results do not depend on the thread count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

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
from ..metrics import RHVAEMetric, ScaledMetric
from ._common import check_seed

__all__ = [
    "BrownianMotionResult",
    "SamplingResult",
    "brownian_motion",
    "sample_riemannian",
    "effective_sample_size",
    "log_det_and_gradient",
]

_PATH_STATUS = ("completed", "left_domain", "non_finite")
_DENSITY_SIGN = {"volume": 1.0, "inverse_volume": -1.0}


# --------------------------------------------------------------------------------------------
# The geometry of a metric at a batch of points
# --------------------------------------------------------------------------------------------
def _native_rhvae(metric) -> Tuple[Optional[object], float]:
    """(RHVAE kernel, scale) of an RHVAEMetric (possibly scaled), else (None, 1)."""
    if isinstance(metric, ScaledMetric):
        kernel, scale = _native_rhvae(metric.base)
        return (kernel, scale * metric.factor) if kernel is not None else (None, 1.0)
    if isinstance(metric, RHVAEMetric):
        return metric._kernel, 1.0
    return None, 1.0


def _numpy_jet(metric, z: np.ndarray):
    """(G⁻¹ (N, d, d), ∂G⁻¹ [n, a, b, k], ∂ log det G (N, d), log det G (N,), ok) from G and ∂G.

    G and ∂G come from the connection's batched callback (a batch that raises a domain error is
    retried point by point; such points, and those where G is not positive definite, get ok = 0).
    """
    from ..connection import _GeometryCallback

    g, dg, ok = _GeometryCallback(metric)(np.ascontiguousarray(z, dtype=np.float64), True)
    d = z.shape[1]
    low, chol_ok = _cholesky(np.where(ok[:, None, None], g, np.eye(d)))
    ok &= chol_ok
    logdet = np.where(ok, 2.0 * np.sum(np.log(np.abs(np.diagonal(low, axis1=1, axis2=2))), axis=1), np.nan)
    linv = np.linalg.solve(low, np.broadcast_to(np.eye(d), g.shape))  # L⁻¹, so that G⁻¹ = L⁻ᵀ L⁻¹
    ginv = np.einsum("nca,ncb->nab", linv, linv)
    dg = np.where(ok[:, None, None, None], dg, 0.0)
    dginv = -np.einsum("nac,ncek,neb->nabk", ginv, dg, ginv)
    dlogdet = np.einsum("nab,nbak->nk", ginv, dg)
    return ginv, dginv, dlogdet, logdet, ok


def _cholesky(g: np.ndarray):
    """Cholesky factors of a stack (N, d, d) and which succeeded; a failure gets the identity."""
    try:
        return np.linalg.cholesky(g), np.ones(len(g), dtype=bool)
    except np.linalg.LinAlgError:  # one by one, so that the failures stay with their point
        low = np.broadcast_to(np.eye(g.shape[1]), g.shape).copy()
        ok = np.zeros(len(g), dtype=bool)
        for i, gi in enumerate(g):
            try:
                low[i] = np.linalg.cholesky(gi)
                ok[i] = True
            except np.linalg.LinAlgError:
                pass
        return low, ok


def log_det_and_gradient(metric, z, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """log det G(z) (N,) and its gradient (N, d), ∂ₖ log det G = tr(G⁻¹ ∂ₖG) = −tr(G ∂ₖG⁻¹).

    Analytic in the C++ core for :class:`~latentgeo.RHVAEMetric` (one pass over the centroids),
    from ``metric.metric`` and ``metric.derivative`` otherwise. Points outside the metric's
    domain get NaN.
    """
    dim = check_metric(metric)
    pts, single = as_points(z, "z", dim)
    kernel, scale = _native_rhvae(metric)
    if kernel is not None:
        logdet, grad = _core.log_det_gradient(kernel=kernel, scale=scale, z=pts, n_threads=check_threads(n_threads))
    else:
        _, _, grad, logdet, ok = _numpy_jet(metric, pts)
        grad = np.where(ok[:, None], grad, np.nan)
    return (logdet[0], grad[0]) if single else (logdet, grad)


# --------------------------------------------------------------------------------------------
# Brownian motion
# --------------------------------------------------------------------------------------------
@dataclass
class BrownianMotionResult:
    """Brownian paths on the manifold.

    Attributes
    ----------
    paths : ndarray, shape (n_paths, n_steps + 1, d)
        ``paths[:, 0]`` are the starts; a path that stopped early (see ``status``) is NaN after
        its last point.
    t : ndarray, shape (n_steps + 1,)
        The times 0, dt, …, t_end.
    completed : ndarray of bool, shape (n_paths,)
    status : list of str
        ``"completed"``, ``"left_domain"`` (the metric is not defined, or G not positive
        definite, at the path's last point) or ``"non_finite"`` (the step overflowed).
    n_steps_done : ndarray of int, shape (n_paths,)
    """

    paths: np.ndarray
    t: np.ndarray
    completed: np.ndarray
    status: List[str]
    n_steps_done: np.ndarray


def _diffusion_callback(metric):
    """geometry_fn(z) -> (G⁻¹, drift, ok) for the core, from G and ∂G in numpy."""

    def geometry(z):
        ginv, dginv, dlogdet, _, ok = _numpy_jet(metric, np.asarray(z))
        drift = 0.5 * np.einsum("niki->nk", dginv) + 0.25 * np.einsum("nki,ni->nk", ginv, dlogdet)
        return ginv, drift, ok

    return geometry


def brownian_motion(
    metric, z0, t_end: float, n_steps: int, n_paths: int, *, seed: int, n_threads: Optional[int] = None
) -> BrownianMotionResult:
    """Brownian motion on the manifold, in coordinates, by Euler–Maruyama.

    dzᵏ = −½ Gⁱʲ Γᵏᵢⱼ dt + (G^{-1/2} dW)ᵏ, i.e. the diffusion generated by half the
    Laplace–Beltrami operator. The drift is computed as ½ ∂ᵢGⁱᵏ + ¼ Gᵏⁱ ∂ᵢ log det G (the same
    vector, without forming the Christoffel symbols); the noise uses the Cholesky factor of G⁻¹
    (any square root of G⁻¹ gives the same law).

    Parameters
    ----------
    metric : metric protocol object
        :class:`~latentgeo.RHVAEMetric` (and scaled) runs natively, paths in parallel; any
        other metric is called back once per step for all paths (``metric`` and ``derivative``).
    z0 : array_like, shape (d,) or (n_paths, d)
        One start for all paths, or one per path.
    t_end : float
        Final time (> 0).
    n_steps : int
        Euler–Maruyama steps (>= 1), dt = t_end / n_steps.
    n_paths : int
        Number of paths (>= 1).
    seed : int
        Path i draws from the stream (seed, i): the same seed gives the same paths whatever the
        thread count.
    n_threads : int, optional
        Threads (None: all cores).

    Returns
    -------
    BrownianMotionResult
    """
    dim = check_metric(metric)
    t_end = check_positive(t_end, "t_end")
    n_steps = check_int(n_steps, "n_steps", 1)
    n_paths = check_int(n_paths, "n_paths", 1)
    seed = check_seed(seed)
    threads = check_threads(n_threads)
    starts, single = as_points(z0, "z0", dim)
    if single:
        starts = np.repeat(starts, n_paths, axis=0)
    elif len(starts) != n_paths:
        raise ValueError(f"z0: expected one point (d,) or n_paths = {n_paths} points, got shape {starts.shape}")
    kernel, scale = _native_rhvae(metric)
    callback = None if kernel is not None else _diffusion_callback(metric)
    out = _core.brownian_motion(
        kernel=kernel,
        scale=scale,
        geometry_fn=callback,
        z0=starts,
        options=_core.BrownianOptions(dt=t_end / n_steps, n_steps=n_steps, seed=seed),
        n_threads=threads,
    )
    status = [_PATH_STATUS[s] for s in out["status"]]
    return BrownianMotionResult(
        paths=out["paths"],
        t=np.linspace(0.0, t_end, n_steps + 1),
        completed=out["status"] == 0,
        status=status,
        n_steps_done=out["n_done"].astype(np.int64),
    )


# --------------------------------------------------------------------------------------------
# HMC for the volume densities
# --------------------------------------------------------------------------------------------
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
    centroids = getattr(metric, "centroids", None)
    if centroids is None and isinstance(metric, ScaledMetric):
        centroids = getattr(metric.base, "centroids", None)
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
        _, _, dlogdet, logdet, ok = _numpy_jet(metric, np.asarray(z))
        ok &= np.isfinite(logdet)
        return np.where(ok, 0.5 * sign * logdet, 0.0), np.where(ok[:, None], 0.5 * sign * dlogdet, 0.0), ok

    return log_density


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
    kernel, scale = _native_rhvae(metric)
    callback = None if kernel is not None else _log_density_callback(metric, sign)
    options = _core.HmcOptions(
        n_warmup=n_warmup,
        n_draws=n_draws,
        n_leapfrog=n_leapfrog,
        step_size=step_size,
        target_accept=target_accept,
        seed=seed,
    )
    out = _core.hmc_sample(
        kernel=kernel,
        scale=scale,
        sign=sign,
        log_density_fn=callback,
        init=init,
        lo=box[0],
        hi=box[1],
        options=options,
        n_threads=threads,
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
