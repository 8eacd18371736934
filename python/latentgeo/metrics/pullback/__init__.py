"""Pullback metrics of decoders, G(z) = J(z)ᵀJ(z) (with likelihood weights): MLPs in the C++ core
(:class:`PullbackMetric`), any Python decoder (:class:`CallablePullbackMetric`) and torch modules
(:mod:`latentgeo.metrics.pullback.torch_decoder`, optional)."""

from .callable import CallablePullbackMetric
from .layers import ACTIVATIONS
from .likelihoods import LIKELIHOODS
from .mlp import PullbackMetric

__all__ = ["PullbackMetric", "CallablePullbackMetric", "ACTIVATIONS", "LIKELIHOODS"]
