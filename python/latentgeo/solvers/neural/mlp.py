"""The MLP t ↦ ĝ(t) of a neural geodesic: activations, the forward pass (optionally carrying
dx/dt, for the exact velocity) and backpropagation, written by hand in numpy.

The parameters are one flat vector; :func:`layer_views` cuts it into (W_l, b_l) views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["ACTIVATIONS", "ForwardPass", "backward", "check_hidden", "forward", "layer_views"]

ACTIVATIONS = ("tanh", "softplus", "relu", "identity")
Layers = List[Tuple[np.ndarray, np.ndarray]]


def _activate(name: str, a: np.ndarray, order: int):
    """Return (σ(a), σ'(a) or None, σ''(a) or None) for ``order`` = 0, 1 or 2 derivatives."""
    if name == "tanh":
        s = np.tanh(a, out=a)  # ``a`` is a temporary of the forward pass
        ds = None
        if order >= 1:
            ds = np.multiply(s, s)
            np.subtract(1.0, ds, out=ds)
        return s, ds, (-2.0 * s * ds if order >= 2 else None)
    if name == "softplus":
        s = np.logaddexp(0.0, a)
        sig = 0.5 * (1.0 + np.tanh(0.5 * a)) if order >= 1 else None  # logistic, overflow-free
        return s, sig, (sig * (1.0 - sig) if order >= 2 else None)
    if name == "relu":
        s = np.maximum(a, 0.0)
        return s, ((a > 0).astype(np.float64) if order >= 1 else None), None  # σ'' = 0 a.e.
    return a, None, None  # identity: σ' = 1, σ'' = 0


@dataclass
class ForwardPass:
    """Cache of one forward pass through the MLP at times ``tau`` (M,)."""

    tau: np.ndarray
    inputs: list = field(default_factory=list)  # x_0 .. x_L: inputs of each affine layer, (M, fan_in)
    tangents: list = field(default_factory=list)  # dx/dt of the same (exact velocity only) or None
    d1: list = field(default_factory=list)  # σ'(a_l) per hidden layer (None: identity)
    d2: list = field(default_factory=list)  # σ''(a_l) per hidden layer (None: zero)
    pre_tangents: list = field(default_factory=list)  # da_l/dt per hidden layer (exact velocity only)
    out: Optional[np.ndarray] = None  # ĝ (M, d)
    dout: Optional[np.ndarray] = None  # dĝ/dt (M, d)


def _affine(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w.T if x.shape[1] > 1 else x * w[:, 0]  # first layer: an outer product


def forward(layers: Layers, activation: str, tau: np.ndarray, tangent: bool) -> ForwardPass:
    """The MLP at times ``tau`` (M,), with dĝ/dt when ``tangent``."""
    order = 2 if tangent else 1
    x = tau[:, None]
    dx = np.ones_like(x) if tangent else None
    cache = ForwardPass(tau)
    for w, b in layers[:-1]:
        cache.inputs.append(x)
        cache.tangents.append(dx)
        a = _affine(x, w)
        a += b
        x, d1, d2 = _activate(activation, a, order)
        cache.d1.append(d1)
        cache.d2.append(d2)
        if tangent:
            da = _affine(dx, w)
            cache.pre_tangents.append(da)
            dx = da if d1 is None else d1 * da
    w, b = layers[-1]
    cache.inputs.append(x)
    cache.tangents.append(dx)
    cache.out = _affine(x, w) + b
    if tangent:
        cache.dout = _affine(dx, w)
    return cache


def backward(
    layers: Layers, widths: Tuple[int, ...], fwd: ForwardPass, g_out: np.ndarray, g_dout: Optional[np.ndarray]
) -> np.ndarray:
    """Gradient of a scalar with respect to the flat parameters, given dS/dĝ and dS/dĝ̇ (M, d)."""
    grad = np.zeros(sum(w.size + b.size for w, b in layers))
    views = layer_views(grad, widths)
    gx, gdx = g_out, g_dout
    for layer in range(len(layers) - 1, -1, -1):
        w, _ = layers[layer]
        gw, gb = views[layer]
        x, dx = fwd.inputs[layer], fwd.tangents[layer]
        # a = x Wᵀ + b and ȧ = ẋ Wᵀ
        gw += gx.T @ x
        gb += gx.sum(axis=0)
        if gdx is not None:
            gw += gdx.T @ dx
        if layer == 0:
            break
        gx_in = gx @ w
        gdx_in = gdx @ w if gdx is not None else None
        # x = σ(a), ẋ = σ'(a) ȧ
        h = layer - 1
        d1, d2 = fwd.d1[h], fwd.d2[h]
        gx = gx_in if d1 is None else gx_in * d1
        if gdx_in is not None:
            if d2 is not None:
                gx = gx + gdx_in * d2 * fwd.pre_tangents[h]
            gdx = gdx_in if d1 is None else gdx_in * d1
        else:
            gdx = None
    return grad


def check_hidden(hidden) -> Tuple[int, ...]:
    try:
        widths = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden: expected a sequence of positive integers, got {hidden!r}") from None
    for h in widths:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise ValueError(f"hidden: expected a sequence of positive integers, got {hidden!r}")
    return tuple(int(h) for h in widths)


def layer_views(flat: np.ndarray, widths: Tuple[int, ...]):
    """(W (fan_out, fan_in), b (fan_out,)) views into a flat vector, layer by layer."""
    views, start = [], 0
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        w = flat[start : start + fan_in * fan_out].reshape(fan_out, fan_in)
        start += fan_in * fan_out
        views.append((w, flat[start : start + fan_out]))
        start += fan_out
    return views
