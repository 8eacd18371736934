"""Neural geodesics (Chen et al., 2018): an MLP t ↦ ℝ^d trained to minimise a curve's energy.

The package's modules: :mod:`.mlp` (the network: activations, forward pass, backpropagation),
:mod:`.curve` (the curve :class:`NeuralGeodesic`: the MLP pinned to its end points, its
gradient and ``.npz`` storage), :mod:`.loss` (the loss, its gradient and one training step),
:mod:`.optim` (Adam, SGD), :mod:`.fit` (training until the loss stops changing) and
:mod:`.batch` (``geodesics(method="neural")``). The documented names say what
they do (:func:`fit_neural_geodesic`, :func:`neural_geodesic_loss`,
:func:`train_neural_geodesic`); the seed's names ``fit``, ``loss`` and ``train`` remain as aliases.
"""

from __future__ import annotations

from .curve import ACTIVATIONS, DEFAULT_MIN_AMPLITUDE, NeuralGeodesic
from .fit import (
    DEFAULT_BETAS,
    DEFAULT_LR,
    DEFAULT_LR_DECAY,
    DEFAULT_N_DECAYS,
    DEFAULT_N_EVAL,
    DEFAULT_N_POINTS,
    DEFAULT_N_STEPS,
    DEFAULT_TOL,
    DEFAULT_WINDOW,
    NeuralGeodesicResult,
    fit_neural_geodesic,
    neural_geodesic,
)
from .loss import (
    INTEGRALS,
    T_RANGE,
    VELOCITIES,
    curve_velocity_exact,
    curve_velocity_TaylorDiff,
    loss_and_grad,
    neural_geodesic_loss,
    train_neural_geodesic,
)

__all__ = [
    "NeuralGeodesic",
    "NeuralGeodesicResult",
    "curve_velocity_exact",
    "curve_velocity_TaylorDiff",
    "neural_geodesic_loss",
    "loss_and_grad",
    "train_neural_geodesic",
    "fit_neural_geodesic",
    "neural_geodesic",
    "ACTIVATIONS",
]

# The seed's generic names (AutoEncoderToolkit.jl's loss, train!, fit), kept as aliases.
loss = neural_geodesic_loss
train = train_neural_geodesic
fit = fit_neural_geodesic
