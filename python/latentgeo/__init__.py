"""latentgeo: Riemannian geometry of generative-model latent spaces.

Metrics (RHVAE, pullback, dense, constant), curve length and energy, geodesics (a C++ discrete
solver and the seed's neural geodesics) and the Levi-Civita connection (exp/log maps, parallel
transport, curvature) and statistics on the manifold (Fréchet means, k-medoids and k-means,
geodesic interpolation, Brownian motion, Riemannian volume sampling), with a C++/Eigen/OpenMP core.
"""

from __future__ import annotations

from . import _core, datasets, statistics
from .connection.maps import (
    ExpMapResult,
    LogMapResult,
    TransportResult,
    christoffel,
    exp_map,
    gaussian_curvature,
    log_map,
    parallel_transport,
    ricci,
    scalar_curvature,
    transport_along_geodesic,
)
from .curves import curve_energy, curve_integral, curve_length, curve_velocity_finitediff, discrete_velocity
from .errors import MetricDomainError
from .metrics import ConstantMetric, DenseMetric, Metric, RHVAEMetric, ScaledMetric
from .metrics.pullback import CallablePullbackMetric, PullbackMetric
from .solvers.api import geodesic, geodesics
from .solvers.distances import geodesic_distances
from .solvers.neural import (  # the seed's names: aliases of the three above
    NeuralGeodesic,
    NeuralGeodesicResult,
    curve_velocity_exact,
    curve_velocity_TaylorDiff,
    fit,
    fit_neural_geodesic,
    loss,
    neural_geodesic,
    neural_geodesic_loss,
    train,
    train_neural_geodesic,
)
from .solvers.neural.optim import SGD, Adam
from .solvers.results import DistanceResult, GeodesicBatch, GeodesicResult
from .statistics import (
    BrownianMotionResult,
    ClusteringResult,
    FrechetMeanResult,
    InterpolationResult,
    SamplingResult,
    brownian_motion,
    frechet_mean,
    interpolate,
    kmeans,
    kmedoids,
    sample_riemannian,
)

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "BrownianMotionResult",
    "CallablePullbackMetric",
    "ClusteringResult",
    "ConstantMetric",
    "DenseMetric",
    "DistanceResult",
    "ExpMapResult",
    "FrechetMeanResult",
    "GeodesicBatch",
    "GeodesicResult",
    "InterpolationResult",
    "LogMapResult",
    "Metric",
    "MetricDomainError",
    "NeuralGeodesic",
    "NeuralGeodesicResult",
    "PullbackMetric",
    "RHVAEMetric",
    "SGD",
    "SamplingResult",
    "ScaledMetric",
    "TransportResult",
    "brownian_motion",
    "christoffel",
    "curve_energy",
    "curve_integral",
    "curve_length",
    "curve_velocity_TaylorDiff",
    "curve_velocity_exact",
    "curve_velocity_finitediff",
    "datasets",
    "discrete_velocity",
    "exp_map",
    "fit_neural_geodesic",
    "frechet_mean",
    "gaussian_curvature",
    "geodesic",
    "geodesic_distances",
    "geodesics",
    "interpolate",
    "kmeans",
    "kmedoids",
    "log_map",
    "max_threads",
    "neural_geodesic",
    "neural_geodesic_loss",
    "openmp_enabled",
    "parallel_transport",
    "ricci",
    "sample_riemannian",
    "scalar_curvature",
    "train_neural_geodesic",
    "statistics",
    "transport_along_geodesic",
]


def openmp_enabled() -> bool:
    """True when the C++ core was compiled with OpenMP."""
    return bool(_core.openmp_enabled())


def max_threads() -> int:
    """Number of threads used when ``n_threads=None``."""
    return int(_core.max_threads())
