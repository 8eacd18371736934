"""Exceptions of latentgeo."""

from __future__ import annotations

__all__ = ["MetricDomainError"]


class MetricDomainError(ValueError):
    """The metric is not defined at a point: G is singular, not positive definite or not finite there.

    Raised by metric evaluations (the message names the point). A metric of the protocol may
    raise it too: the geodesic solver then treats the point as one of infinite energy (its line
    search backtracks) instead of failing the pair.

    Parameters
    ----------
    message : str
    non_finite : bool
        True when the values were NaN or Inf (status ``"non_finite"`` of a pair whose curve
        meets such a point), False for a singular or indefinite G (status ``"singular_metric"``).
    """

    def __init__(self, message: str, non_finite: bool = False):
        super().__init__(message)
        self.non_finite = bool(non_finite)

    def __reduce__(self):  # picklable with its flag (executors send exceptions between processes)
        return type(self), (str(self), self.non_finite)
