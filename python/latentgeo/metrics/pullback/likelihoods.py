"""Decoder likelihoods (Gaussian with a σ head, Bernoulli) and what they make of the decoder's heads."""

from __future__ import annotations

from typing import List, Optional

from .layers import Step

LIKELIHOODS = (None, "gaussian", "bernoulli")


def check_likelihood(likelihood) -> Optional[str]:
    if not (likelihood is None or (isinstance(likelihood, str) and likelihood in LIKELIHOODS)):
        raise ValueError(f"likelihood: expected one of None, 'gaussian', 'bernoulli', got {likelihood!r}")
    return likelihood


def apply_likelihood(heads: List[List[Step]], likelihood, mean_name: str) -> List[List[Step]]:
    """The heads evaluated by the core for a likelihood.

    Bernoulli: the mean network must end with a sigmoid (its outputs are the probabilities p);
    the sigmoid is replaced by the core's ``bernoulli`` activation of the logits,
    s = 2 arcsin √p, whose Euclidean pullback is the Fisher–Rao metric J_pᵀ diag(1/(p(1−p))) J_p.
    """
    if check_likelihood(likelihood) != "bernoulli":
        return heads
    if len(heads) > 1:
        raise ValueError("log_sigma: a σ head belongs to a Gaussian decoder, not likelihood='bernoulli'")
    mean = heads[0]
    if not mean or mean[-1][:2] != ("act", "sigmoid"):
        raise ValueError(
            f"{mean_name}: likelihood='bernoulli' needs a mean network that ends with a sigmoid "
            "(its outputs are the Bernoulli probabilities)"
        )
    return [mean[:-1] + [("act", "bernoulli", 1.0)]]


def pullback_repr(self) -> str:
    return (
        f"{type(self).__name__}(dim={self.dim}, output_dim={self.output_dim}, gaussian={self.gaussian}, "
        f"likelihood={getattr(self, 'likelihood', None)!r})"
    )
