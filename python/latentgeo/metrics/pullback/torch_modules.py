"""What latentgeo needs to know about a torch decoder module: its layers, a float64 eval copy,
a pythae decoder as a plain module. torch is imported by this module (optional dependency)."""

from __future__ import annotations

import copy
import warnings
from typing import Optional

import torch
from torch import nn

# Layers whose derivative jumps (G jumps where they switch); F.relu and the like in a forward()
# cannot be seen: pass smooth=False to the solver for those.
KINKED = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SELU,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)

# Layers whose training mode differs from eval mode (batch statistics, random masks).
TRAINING_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def float64_copy(module, name: str):
    """An eval-mode float64 copy of ``module`` with frozen parameters; the user's module is untouched."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"{name}: expected a torch.nn.Module, got {type(module).__name__}")
    _check_tensors(module, name)
    noisy = [type(m).__name__ for m in module.modules() if m.training and isinstance(m, TRAINING_DEPENDENT)]
    if noisy:
        warnings.warn(
            f"{name}: in training mode with {sorted(set(noisy))} layers; the metric uses an eval-mode "
            "copy (running statistics, no dropout); the module itself is unchanged",
            UserWarning,
            stacklevel=4,
        )
    clone = copy.deepcopy(module).to(torch.float64).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _check_tensors(module, name: str) -> None:
    """The module's parameters and buffers: real floating point, on one device that holds data."""
    tensors = [*module.parameters(), *module.buffers()]
    devices = sorted({str(t.device) for t in tensors})
    if len(devices) > 1:
        raise ValueError(f"{name}: parameters and buffers on several devices {devices}; move the module to one")
    if devices and torch.device(devices[0]).type == "meta":
        raise ValueError(f"{name}: on the 'meta' device (shapes without data); load its weights or move it first")
    odd = sorted({str(t.dtype) for t in tensors if not t.dtype.is_floating_point and t.requires_grad})
    odd += sorted({str(t.dtype) for t in module.parameters() if t.is_complex()})
    if odd:
        raise ValueError(f"{name}: parameters of dtype {odd}; expected real floating point (float16/32/64)")


def first_linear_width(*modules) -> Optional[int]:
    for module in modules:
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, nn.Linear):
                return int(m.in_features)
        return None  # the first module applied to z decides
    return None


def leaves(module):
    """The layers of a (nested) Sequential in order, else None."""
    if not isinstance(module, nn.Sequential):
        return None
    out = []
    for m in module:
        sub = leaves(m)
        out.extend(sub if sub is not None else [m])
    return out


def split_sigmoid(module):
    """(module without its final Sigmoid, True) for a Sequential ending in Sigmoid, else (module, False)."""
    layers = leaves(module)
    if layers and isinstance(layers[-1], nn.Sigmoid):
        return nn.Sequential(*layers[:-1]), True
    return module, False


class PythaeDecoder(nn.Module):
    """A pythae decoder as a plain module: z (N, d) → the flattened reconstruction (N, D)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        out = self.decoder(z)["reconstruction"]
        return out.reshape(out.shape[0], -1)
