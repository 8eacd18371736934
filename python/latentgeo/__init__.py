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
from .neural import (NeuralGeodesic, NeuralGeodesicResult, curve_velocity_exact, curve_velocity_TaylorDiff, fit,
                     loss, neural_geodesic, train)
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = [
    "CallablePullbackMetric",
    "PullbackMetric",
    "datasets",
    "ConstantMetric",
    "DenseMetric",
    "Metric",
    "RHVAEMetric",
    "ScaledMetric",
    "curve_energy",
    "curve_integral",
    "curve_length",
    "curve_velocity_finitediff",
    "discrete_velocity",
    "max_threads",
    "openmp_enabled",
]
__all__ += ["Adam", "SGD", "NeuralGeodesic", "NeuralGeodesicResult", "curve_velocity_TaylorDiff",
            "curve_velocity_exact", "fit", "loss", "neural_geodesic", "train"]


def openmp_enabled() -> bool:
    """True when the C++ core was compiled with OpenMP."""
    return bool(_core.openmp_enabled())


def max_threads() -> int:
    """Number of threads used when ``n_threads=None``."""
    return int(_core.max_threads())
