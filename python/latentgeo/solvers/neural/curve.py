"""The neural geodesic curve: an MLP t ↦ ℝ^d pinned to its end points, with backpropagation.

This is AutoEncoderToolkit.jl's ``NeuralGeodesic`` with numpy training: the forward pass,
the forward-mode velocity and the backpropagation through the MLP are written by hand,
and the metric enters only through the core's fused ``curve_integral(..., grad=True)``,
so any object of the metric protocol works.

The curve
---------
The MLP output ĝ(t) is rescaled per dimension so that γ(0) = z_start and γ(1) = z_end
exactly. The seed's rescaling γ = scale ⊙ ĝ − shift, scale = (z₀ − z₁)/(ĝ(0) − ĝ(1)),
shift = (z₀ ĝ(1) − z₁ ĝ(0))/(ĝ(0) − ĝ(1)), is written equivalently as γ = z₀ + Δ ⊙ u with
Δ = z₁ − z₀ and

    u(t) = (ĝ(t) − ĝ(0)) · r(D) + t · (1 − D · r(D)),   D = ĝ(1) − ĝ(0),
    r(D) = D / max(D², δ²)   (δ = ``min_span``).

When |D| ≥ δ, r = 1/D and the second term vanishes: this is exactly the seed's curve.
Two remedies keep it usable everywhere:

- *Degenerate span* (|D| < δ, where 1/D would blow up): r stays bounded (|r| ≤ 1/δ) and
  the missing part of the endpoint constraint is filled by the straight line t, so the
  curve stays finite, continuous in the parameters and exact at both ends (u(0) = 0,
  u(1) = 1). Training also fixes the gauge ĝ(0) = 0, ĝ(1) = 1 after every step by
  rescaling the output layer (the curve is invariant under it), so D = 1 in practice.
- *Degenerate displacement* (z₀ and z₁ share a coordinate, e.g. (−1, 1) → (1, 1)): the
  seed's curve is frozen in that coordinate (scale = 0). We write
  γ = (1 − t) z₀ + t z₁ + A ⊙ (u − t) with amplitude A_k = Δ_k (the seed's curve) unless
  |Δ_k| < α ‖Δ‖_∞, where A_k = α ‖Δ‖_∞ (α = ``min_amplitude``).

z_start == z_end gives the constant curve (length and energy 0, zero gradient).

Initialisation: first-layer weights w ~ U(±2) with biases placing each tanh step inside
[0, 1], deeper layers as PyTorch (U(±1/√fan_in)), and the output layer fitted (ridge) to
ĝ_k(t) = t: training starts from (nearly) the straight line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..._validation import INT_MAX, as_float_array, check_choice, check_positive
from ...io.npz import read_saved, saved_header, write_saved
from .mlp import ACTIVATIONS, ForwardPass, backward, check_hidden, forward, layer_views

__all__ = ["NeuralGeodesic", "ACTIVATIONS", "DEFAULT_MIN_AMPLITUDE"]

DEFAULT_MIN_AMPLITUDE = 0.1
_KIND, _VERSION = "neural_geodesic", 1  # the saved file's header (see latentgeo.io.npz)
_SAVED_KEYS = ("params", "z_start", "z_end", "hidden", "activation", "min_span", "min_amplitude")
_RIDGE = 0.1  # relative ridge of the straight-line fit of the output layer
_FIRST_SCALE = 2.0  # first-layer weights ~ U(±2): tanh steps spread over [0, 1]


@dataclass
class _Rescaled:
    """The curve's rescaling u = (ĝ − ĝ0) r + τ c (see the module docstring) at M rows."""

    g0: np.ndarray  # ĝ(0) (d,)
    span: np.ndarray  # D = ĝ(1) − ĝ(0) (d,)
    r: np.ndarray  # r(D) (d,)
    c: np.ndarray  # 1 − D r (d,), exactly 0 where |D| ≥ δ
    small: np.ndarray  # |D| < δ (d,) bool
    u: np.ndarray  # (M, d)
    du: Optional[np.ndarray]  # du/dt (M, d)
    pinned: np.ndarray  # rows with τ ∈ {0, 1}, where u is set to exactly 0 or 1 (M,) bool


class NeuralGeodesic:
    """A curve γ: t ↦ ℝ^d given by an MLP, pinned to γ(0) = z_start and γ(1) = z_end.

    Parameters
    ----------
    z_start, z_end : array_like, shape (d,)
        End points (finite).
    hidden : sequence of int
        Widths of the hidden layers (input width 1, output width d, linear output layer).
    activation : {"tanh", "softplus", "relu", "identity"}
        Activation of the hidden layers.
    seed : int or numpy.random.Generator, optional
        Seed of the random initialisation (see the module docstring; the output layer
        is then fitted to the straight line).
    min_span : float
        δ > 0 of the degenerate-span guard (see the module docstring).
    min_amplitude : float
        α > 0: a coordinate moving less than α‖z_end − z_start‖_∞ still bends with that
        amplitude (see the module docstring).

    Notes
    -----
    All parameters live in one flat float64 vector (:meth:`get_params`); the weights
    ``W_l`` (fan_out, fan_in) and biases ``b_l`` are views into it (:attr:`layers`).
    Calling the curve on times (N,) returns points (N, d). With ``activation="identity"``
    the network is affine and the curve is always the straight line.
    """

    def __init__(
        self,
        z_start,
        z_end,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        seed=None,
        min_span: float = 1e-3,
        min_amplitude: float = DEFAULT_MIN_AMPLITUDE,
    ):
        self.z_start = as_float_array(z_start, "z_start", ndim=1)
        self.z_end = as_float_array(z_end, "z_end", ndim=1)
        if self.z_end.shape != self.z_start.shape:
            raise ValueError(f"z_end: expected shape {self.z_start.shape} like z_start, got {self.z_end.shape}")
        self.activation = check_choice(activation, "activation", set(ACTIVATIONS))
        self.hidden = check_hidden(hidden)
        self.min_span = check_positive(min_span, "min_span")
        self.dim = len(self.z_start)
        self.min_amplitude = check_positive(min_amplitude, "min_amplitude")
        self._delta = self.z_end - self.z_start
        self._amplitude = _amplitudes(self._delta, self.min_amplitude)
        self.widths = (1,) + self.hidden + (self.dim,)
        n_params = sum(o * i + o for i, o in zip(self.widths[:-1], self.widths[1:]))
        if n_params > INT_MAX:
            raise ValueError(f"hidden: {hidden!r} gives {n_params} parameters (at most {INT_MAX})")
        self._params = np.empty(n_params)
        self._initialise(seed)

    # -- parameters -------------------------------------------------------------------
    def _initialise(self, seed) -> None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        for w, b in self.layers:
            bound = 1.0 / np.sqrt(w.shape[1])
            w[...] = rng.uniform(-bound, bound, size=w.shape)
            b[...] = rng.uniform(-bound, bound, size=b.shape)
        if self.hidden:
            w, b = self.layers[0]
            w[...] = rng.uniform(-_FIRST_SCALE, _FIRST_SCALE, size=w.shape)
            b[...] = -w[:, 0] * rng.uniform(0.0, 1.0, size=b.shape)
            self._fit_line_output()
        self._normalise_output()

    def _fit_line_output(self) -> None:
        """Start from (nearly) the straight line: a ridge fit of the output layer to ĝ_k(t) = t."""
        grid = np.linspace(0.0, 1.0, 65)
        features = self._forward(grid, tangent=False).inputs[-1]
        centred = features - features.mean(axis=0)
        gram = centred.T @ centred
        gram[np.diag_indices_from(gram)] += _RIDGE * np.trace(gram) / len(gram)
        coef = np.linalg.solve(gram, centred.T @ (grid - grid.mean()))
        w, b = self.layers[-1]
        w[...] = coef
        b[...] = grid.mean() - features.mean(axis=0) @ coef

    def _normalise_output(self) -> None:
        """Rescale the output layer so that ĝ(0) = 0 and ĝ(1) = 1 in every dimension.

        The curve is invariant under this (u only sees (ĝ − ĝ(0)) / D), but the
        sensitivity of u to the parameters, ∝ 1/D, becomes the same in every dimension.
        """
        w, b = self.layers[-1]
        ends = self._forward(np.array([0.0, 1.0]), tangent=False)
        span = ends.out[1] - ends.out[0]
        ok = np.abs(span) >= self.min_span  # leave a degenerate dimension to the guard
        w[ok] /= span[ok, None]
        b[ok] = -(ends.inputs[-1][0] @ w[ok].T)

    @property
    def layers(self):
        """``[(W_l (fan_out, fan_in), b_l (fan_out,)), ...]``: views into the flat parameter vector.

        Made on each access (never stored), so that copies and unpickled curves, which hold
        their own parameter vector, train and evaluate their own parameters.
        """
        return layer_views(self._params, self.widths)

    @property
    def n_params(self) -> int:
        return self._params.size

    @property
    def is_constant(self) -> bool:
        """True when z_start == z_end (the curve is the constant point)."""
        return not np.any(self._delta)

    def get_params(self) -> np.ndarray:
        """A copy of all parameters as one flat float64 vector (layer by layer, W then b)."""
        return self._params.copy()

    def set_params(self, params) -> None:
        """Set all parameters from a flat vector of length :attr:`n_params`."""
        p = as_float_array(params, "params", ndim=1)
        if p.size != self._params.size:
            raise ValueError(f"params: expected {self._params.size} values, got {p.size}")
        self._params[...] = p

    def __repr__(self) -> str:
        return (
            f"NeuralGeodesic(dim={self.dim}, hidden={self.hidden}, activation={self.activation!r}, "
            f"n_params={self.n_params})"
        )

    # -- persistence -------------------------------------------------------------------
    def save(self, path) -> None:
        """Save to ``path`` in numpy ``.npz`` format (arrays only, no pickle; see ``latentgeo.io.npz``)."""
        write_saved(
            path,
            _KIND,
            _VERSION,
            dict(
                params=self._params,
                z_start=self.z_start,
                z_end=self.z_end,
                hidden=np.array(self.hidden, dtype=np.int64),
                activation=np.str_(self.activation),
                min_span=np.float64(self.min_span),
                min_amplitude=np.float64(self.min_amplitude),
            ),
        )

    @classmethod
    def load(cls, path) -> "NeuralGeodesic":
        """Load a curve written by :meth:`save`.

        Raises
        ------
        ValueError
            ``path: ...`` naming the file: not a readable ``.npz`` archive (``.npy``, text,
            truncated or corrupt), or not a saved NeuralGeodesic (missing or malformed keys).
        FileNotFoundError
            No such file.
        """
        data = read_saved(path, _SAVED_KEYS)  # this layout, or the earlier one with a `format` string
        name = os.fspath(path)
        kind, version = saved_header(data)
        if kind != _KIND:
            raise ValueError(f"path: {name!r} is not a saved NeuralGeodesic")
        if version is None or not 1 <= version <= _VERSION:
            raise ValueError(
                f"path: {name!r} is a saved NeuralGeodesic of an unsupported format_version "
                f"{version!r} (this latentgeo reads 1..{_VERSION})"
            )
        missing = [k for k in _SAVED_KEYS if k not in data]
        if missing:
            raise ValueError(f"path: {name!r} is not a complete saved NeuralGeodesic (missing {missing})")
        try:
            hidden = tuple(int(h) for h in np.asarray(data["hidden"]).ravel())
            scalars = {k: float(data[k]) for k in ("min_span", "min_amplitude")}
            activation = str(data["activation"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path: {name!r} holds malformed values ({exc})") from None
        curve = cls(data["z_start"], data["z_end"], hidden=hidden, activation=activation, **scalars)
        curve.set_params(data["params"])
        return curve

    # -- evaluation ----------------------------------------------------------------------
    def __call__(self, t) -> np.ndarray:
        """Points γ(t), shape (N, d), at times t (N,) (a scalar t gives (d,))."""
        scalar = np.ndim(t) == 0
        times = as_float_array(np.atleast_1d(t), "t", ndim=1)
        points, _, _, _ = self._evaluate(times, tangent=False)
        return points[0] if scalar else points

    def velocity(self, t) -> np.ndarray:
        """Exact velocities γ̇(t), shape (N, d) (see :func:`curve_velocity_exact`)."""
        _, vel, _, _ = self._evaluate(as_float_array(t, "t", ndim=1), tangent=True)
        return vel

    def _evaluate(self, tau: np.ndarray, tangent: bool):
        """Points (and velocities with ``tangent``) at times ``tau``; also the caches for backprop."""
        rows = np.concatenate([tau, (0.0, 1.0)])  # ĝ(0), ĝ(1) ride along in the same pass
        fwd = self._forward(rows, tangent)
        resc = self._rescale(fwd, rows)
        tau_col = tau[:, None]
        # exact at t = 0 and t = 1, where u = t exactly
        points = self.z_start * (1.0 - tau_col) + self.z_end * tau_col + self._amplitude * (resc.u[:-2] - tau_col)
        vel = self._delta + self._amplitude * (resc.du[:-2] - 1.0) if tangent else None
        if self.is_constant:  # exactly z_start, whatever the network
            points[...] = self.z_start
            if tangent:
                vel[...] = 0.0
        return points, vel, fwd, resc

    def _forward(self, tau: np.ndarray, tangent: bool) -> ForwardPass:
        return forward(self.layers, self.activation, tau, tangent)

    def _rescale(self, fwd: ForwardPass, tau: np.ndarray) -> _Rescaled:
        g = fwd.out
        g0, span = g[-2], g[-1] - g[-2]
        small = np.abs(span) < self.min_span
        r = span / np.maximum(span * span, self.min_span**2)
        c = np.where(small, 1.0 - span * r, 0.0)
        u = (g - g0) * r + tau[:, None] * c
        pinned = (tau == 0.0) | (tau == 1.0)
        u[pinned] = tau[pinned, None]  # exact end points, whatever the rounding of ĝ
        du = fwd.dout * r + c if fwd.dout is not None else None
        return _Rescaled(g0, span, r, c, small, u, du, pinned)

    # -- backpropagation ------------------------------------------------------------------
    def _backward(self, fwd: ForwardPass, resc: _Rescaled, gu: np.ndarray, gdu: Optional[np.ndarray]) -> np.ndarray:
        """Gradient of a scalar with respect to the flat parameters, given dS/du and dS/du̇ (M, d).

        ``gu`` and ``gdu`` cover all M rows of the pass (zero on the two extra rows).
        """
        gu = np.where(resc.pinned[:, None], 0.0, gu)  # u is constant where pinned
        g = fwd.out
        centred = g - resc.g0
        g_out = gu * resc.r
        g_r = np.einsum("md,md->d", gu, centred)
        g_c = fwd.tau @ gu
        g_dout = None
        if gdu is not None:
            g_dout = gdu * resc.r
            g_r += np.einsum("md,md->d", gdu, fwd.dout)
            g_c += gdu.sum(axis=0)
        g0 = -g_out.sum(axis=0)
        # c = 1 − D r only where |D| < δ (else the constant 0); r = D / max(D², δ²).
        g_span = np.where(resc.small, -resc.r * g_c, 0.0)
        g_r = g_r + np.where(resc.small, -resc.span * g_c, 0.0)
        span_sq = np.where(resc.small, self.min_span**2, resc.span * resc.span)
        dr = np.where(resc.small, 1.0 / span_sq, -1.0 / span_sq)
        g_span += g_r * dr
        g_out[-2] += g0 - g_span
        g_out[-1] += g_span
        return backward(self.layers, self.widths, fwd, g_out, g_dout)


def _amplitudes(delta: np.ndarray, min_amplitude: float) -> np.ndarray:
    """A_k = Δ_k (the seed's rescaling) unless |Δ_k| < α‖Δ‖_∞, where A_k = α‖Δ‖_∞ instead."""
    floor = min_amplitude * np.max(np.abs(delta))
    return np.where(np.abs(delta) >= floor, delta, floor)
