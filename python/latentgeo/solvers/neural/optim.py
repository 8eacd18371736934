"""Gradient-descent optimisers with numpy state, updating a flat parameter vector in place."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..._validation import check_positive

__all__ = ["Optimizer", "Adam", "SGD"]


def _check_unit_interval(value, name: str) -> float:
    """Return ``value`` as a float in [0, 1)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}") from None
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name}: must lie in [0, 1), got {value!r}")
    return x


class Optimizer:
    """Base class: ``step(params, grad)`` updates ``params`` (float64 ndarray) in place.

    The state (moments) is created at the first step with the shape of ``params``;
    :meth:`reset` forgets it.
    """

    def __init__(self, lr: float):
        self.lr = check_positive(lr, "lr")
        self.n_steps = 0

    def reset(self) -> None:
        """Forget the state (moments and step count)."""
        self.n_steps = 0
        self._init_state(None)

    def _init_state(self, shape: Optional[Tuple[int, ...]]) -> None:
        raise NotImplementedError

    def _state_shape(self) -> Optional[Tuple[int, ...]]:
        raise NotImplementedError

    def step(self, params: np.ndarray, grad: np.ndarray) -> None:
        """Update ``params`` in place from the gradient ``grad`` (same shape)."""
        if not isinstance(params, np.ndarray) or params.dtype != np.float64:
            raise ValueError("params: expected a float64 ndarray (updated in place)")
        if np.shape(grad) != params.shape:
            raise ValueError(f"grad: expected shape {params.shape}, got {np.shape(grad)}")
        if self._state_shape() != params.shape:
            self._init_state(params.shape)
        self.n_steps += 1
        self._update(params, np.asarray(grad, dtype=np.float64))

    def _update(self, params: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    Parameters
    ----------
    lr : float
        Step size > 0.
    betas : (float, float)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float
        > 0, added to the root of the second moment.
    """

    def __init__(self, lr: float = 1e-2, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas: expected a pair of numbers, got {betas!r}") from None
        self.betas = (_check_unit_interval(b1, "betas"), _check_unit_interval(b2, "betas"))
        self.eps = check_positive(eps, "eps")
        self._init_state(None)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr:g}, betas={self.betas}, eps={self.eps:g})"

    def _init_state(self, shape):
        self.m = None if shape is None else np.zeros(shape)
        self.v = None if shape is None else np.zeros(shape)
        self._buf = None if shape is None else np.empty(shape)

    def _state_shape(self):
        return None if self.m is None else self.m.shape

    def _update(self, params, grad):
        b1, b2 = self.betas
        # m <- b1 m + (1 - b1) g ; v <- b2 v + (1 - b2) g², in place to reuse the buffers.
        self.m *= b1
        self.m += (1.0 - b1) * grad
        self.v *= b2
        np.multiply(grad, grad, out=self._buf)
        self._buf *= 1.0 - b2
        self.v += self._buf
        step = self.lr * np.sqrt(1.0 - b2**self.n_steps) / (1.0 - b1**self.n_steps)
        np.sqrt(self.v, out=self._buf)
        self._buf += self.eps * np.sqrt(1.0 - b2**self.n_steps)
        np.divide(self.m, self._buf, out=self._buf)
        self._buf *= step
        params -= self._buf


class SGD(Optimizer):
    """Gradient descent with optional (heavy-ball) momentum: v <- μ v + g, θ <- θ − lr v.

    Parameters
    ----------
    lr : float
        Step size > 0.
    momentum : float
        μ in [0, 1).
    """

    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr)
        self.momentum = _check_unit_interval(momentum, "momentum")
        self._init_state(None)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr:g}, momentum={self.momentum:g})"

    def _init_state(self, shape):
        self.velocity = None if shape is None else np.zeros(shape)

    def _state_shape(self):
        return None if self.velocity is None else self.velocity.shape

    def _update(self, params, grad):
        self.velocity *= self.momentum
        self.velocity += grad
        params -= self.lr * self.velocity
