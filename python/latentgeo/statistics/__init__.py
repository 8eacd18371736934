"""Statistics on the latent manifold.

Fréchet means (:func:`frechet_mean`), clustering with geodesic distances (:func:`kmedoids`,
:func:`kmeans`), points equally spaced along geodesics (:func:`interpolate`), Brownian motion
(:func:`brownian_motion`) and samples of the Riemannian volume densities
(:func:`sample_riemannian`). The per-path work (Brownian steps, HMC leapfrogs) runs in C++; the
rest drives the batched geodesic, exp and log computations of the core.
"""

from __future__ import annotations

from .brownian import BrownianMotionResult, brownian_motion
from .clustering import ClusteringResult
from .interpolation import InterpolationResult, interpolate
from .kmeans import kmeans
from .kmedoids import kmedoids
from .mean import FrechetMeanResult, frechet_mean
from .sampling import log_det_and_gradient
from .volume_sampling import SamplingResult, effective_sample_size, sample_riemannian

__all__ = [
    "BrownianMotionResult",
    "ClusteringResult",
    "FrechetMeanResult",
    "InterpolationResult",
    "SamplingResult",
    "brownian_motion",
    "effective_sample_size",
    "frechet_mean",
    "interpolate",
    "kmeans",
    "kmedoids",
    "log_det_and_gradient",
    "sample_riemannian",
]
