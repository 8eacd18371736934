"""Decoder networks as steps the C++ core evaluates: dense layers and activations, from weight
lists or torch ``nn.Sequential`` modules, and their storage as named arrays."""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..._validation import as_float_array, check_positive

#: Supported activation names; ``softplus`` takes a parameter β and ``elu`` a parameter α
#: (give ``("softplus", beta)``), both 1 by default.
ACTIVATIONS = ("identity", "tanh", "relu", "softplus", "sigmoid", "elu", "exp")

Step = Tuple  # ("dense", W (out, in), b (out,)) or ("act", name, param)


def activation_step(spec, name: str) -> Step:
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        act, param = spec
    else:
        act, param = spec, 1.0
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {spec!r}; expected one of {list(ACTIVATIONS)}")
    return ("act", act, check_positive(param, name))


def mlp_steps(weights, biases, activations, prefix: str = "") -> List[Step]:
    """Steps of a dense network given as lists: layer i is act_i(W_i h + b_i), W_i of shape (out, in).

    Error messages name the arrays ``{prefix}weights[i]`` etc. (prefix "" for the mean network,
    "log_sigma." or "trunk." for the others).
    """
    label = prefix.rstrip(".") or "weights"
    if not all(isinstance(x, (list, tuple)) for x in (weights, biases, activations)):
        raise ValueError(f"{label}: weights, biases and activations must be lists")
    if not weights or not (len(weights) == len(biases) == len(activations)):
        raise ValueError(
            f"{label}: need as many weights, biases and activations (at least one layer), got "
            f"{len(weights)}, {len(biases)}, {len(activations)}"
        )
    steps: List[Step] = []
    for i, (w, b, act) in enumerate(zip(weights, biases, activations)):
        w = as_float_array(w, f"{prefix}weights[{i}]", ndim=2)
        b = as_float_array(b, f"{prefix}biases[{i}]", ndim=1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(
                f"{prefix}biases[{i}]: expected length {w.shape[0]} (rows of weights[{i}]), got {b.shape[0]}"
            )
        steps += [("dense", w, b), activation_step(act, f"{prefix}activations[{i}]")]
    return steps


def check_widths(steps: Sequence[Step], width: int, name: str) -> int:
    """Output width of a sequence fed with `width` inputs; ValueError on mismatched layers."""
    for step in steps:
        if step[0] == "dense":
            if step[1].shape[1] != width:
                raise ValueError(f"{name}: a layer expects {step[1].shape[1]} inputs but receives {width}")
            width = step[1].shape[0]
    return width


def input_width(steps: Sequence[Step]) -> Optional[int]:
    return next((s[1].shape[1] for s in steps if s[0] == "dense"), None)


_SIMPLE_TORCH_ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid", "Identity": "identity"}
_NATIVE_TORCH_LAYERS = ("Linear", "Softplus", "ELU", *_SIMPLE_TORCH_ACTIVATIONS)


def import_nn():
    try:
        from torch import nn
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("importing a torch decoder needs torch: pip install latentgeo[torch]") from exc
    return nn


def is_native_torch(module) -> bool:
    """True for a (nested) Sequential, or a single layer, made only of layers the C++ core runs."""
    nn = import_nn()
    if isinstance(module, nn.Sequential):
        return all(is_native_torch(m) for m in module)
    return type(module).__name__ in _NATIVE_TORCH_LAYERS and type(module).__module__.startswith("torch.nn")


def torch_steps(module, name: str) -> List[Step]:
    """Steps of a torch ``nn.Sequential`` (nested allowed) of Linear and supported activations."""
    nn = import_nn()

    def to_numpy(t):
        return t.detach().cpu().double().numpy()

    modules = list(module) if isinstance(module, nn.Sequential) else [module]
    steps: List[Step] = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Sequential):
            steps += torch_steps(m, f"{name}[{i}]")
        elif isinstance(m, nn.Linear):
            bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_features)
            steps.append(
                (
                    "dense",
                    as_float_array(to_numpy(m.weight), f"{name}[{i}].weight", ndim=2),
                    as_float_array(bias, f"{name}[{i}].bias", ndim=1),
                )
            )
        elif type(m).__name__ in _SIMPLE_TORCH_ACTIVATIONS:
            steps.append(("act", _SIMPLE_TORCH_ACTIVATIONS[type(m).__name__], 1.0))
        elif isinstance(m, nn.Softplus):
            # torch switches to the identity above `threshold` (error < e^-threshold): ignored.
            steps.append(activation_step(("softplus", float(m.beta)), f"{name}[{i}]"))
        elif isinstance(m, nn.ELU):
            steps.append(activation_step(("elu", float(m.alpha)), f"{name}[{i}]"))
        else:
            raise ValueError(
                f"{name}[{i}]: unsupported layer {type(m).__name__}; supported: Linear, Tanh, ReLU, "
                "Softplus, Sigmoid, ELU, Identity, Sequential"
            )
    return steps


def as_triple(value, name: str) -> Tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name}: expected a tuple (weights, biases, activations)")
    return tuple(value)


def compact(arr: np.ndarray) -> np.ndarray:
    """float32 when it holds the float64 values exactly (half the file), else float64."""
    single = arr.astype(np.float32)
    return single if np.array_equal(single.astype(np.float64), arr) else arr


def steps_to_arrays(sequences: Dict[str, List[Step]]) -> Dict[str, np.ndarray]:
    """Named step sequences as arrays: ``{name}.{i}.weight`` / ``.bias`` (float32 when exact) and
    ``structure``, a JSON description in which each dense step names its arrays."""
    arrays, structure = {}, {}
    for seq_name, steps in sequences.items():
        described = []
        for i, step in enumerate(steps):
            if step[0] == "dense":
                arrays[f"{seq_name}.{i}.weight"], arrays[f"{seq_name}.{i}.bias"] = map(compact, step[1:])
                described.append(["dense", f"{seq_name}.{i}"])
            else:
                described.append(["act", step[1], float(step[2])])
        structure[seq_name] = described
    arrays["structure"] = np.str_(json.dumps(structure))
    return arrays


def steps_from_arrays(data: Dict[str, np.ndarray], path: str) -> Dict[str, List[Step]]:
    """The step sequences written by :func:`steps_to_arrays`; ValueError naming ``structure``."""
    try:
        structure = json.loads(str(data["structure"]))
        return {
            name: [
                (
                    "dense",
                    as_float_array(data[f"{ref}.weight"], f"{ref}.weight", ndim=2),
                    as_float_array(data[f"{ref}.bias"], f"{ref}.bias", ndim=1),
                )
                if kind == "dense"
                else ("act", ref, float(rest[0]))
                for kind, ref, *rest in steps
            ]
            for name, steps in structure.items()
        }
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"structure: malformed decoder description in {path!r} ({exc})") from None
