"""Riemannian metrics on a latent space: the metric protocol (:class:`Metric`), RHVAE, user
functions, constants, scaled metrics, and decoder pullbacks (:mod:`latentgeo.metrics.pullback`)."""

from .base import Metric, ScaledMetric, native_kernel
from .dense import ConstantMetric, DenseMetric
from .rhvae import RHVAEMetric

__all__ = ["Metric", "RHVAEMetric", "DenseMetric", "ConstantMetric", "ScaledMetric", "native_kernel"]
