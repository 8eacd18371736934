"""latentgeo: Riemannian geometry of generative-model latent spaces.

Metrics (RHVAE, pullback, dense, constant), curve length and energy, and geodesics,
with a C++/Eigen/OpenMP core.
"""

from __future__ import annotations

from . import _core
from .curves import curve_energy, curve_integral, curve_length, curve_velocity_finitediff, discrete_velocity
from .metrics import ConstantMetric, DenseMetric, Metric, RHVAEMetric, ScaledMetric
from .pullback import CallablePullbackMetric, PullbackMetric
from . import datasets
from .geodesic import DistanceResult, GeodesicBatch, GeodesicResult, geodesic, geodesic_distances, geodesics

__version__ = "0.1.0"

__all__ = [
    "CallablePullbackMetric",
    "PullbackMetric",
    "datasets",
    "ConstantMetric",
    "DistanceResult",
    "GeodesicBatch",
    "GeodesicResult",
    "DenseMetric",
    "Metric",
    "RHVAEMetric",
    "ScaledMetric",
    "curve_energy",
    "curve_integral",
    "curve_length",
    "curve_velocity_finitediff",
    "discrete_velocity",
    "geodesic",
    "geodesic_distances",
    "geodesics",
    "max_threads",
    "openmp_enabled",
]


def openmp_enabled() -> bool:
    """True when the C++ core was compiled with OpenMP."""
    return bool(_core.openmp_enabled())


def max_threads() -> int:
    """Number of threads used when ``n_threads=None``."""
    return int(_core.max_threads())
