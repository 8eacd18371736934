"""Closed-form test manifolds, each defined once, with the closed forms the tests compare against.

The metrics are Python metric objects (no C++ kernel): the solvers reach them through the Python
callback path. Each implements G (``_metric``), ∂G (``_derivative``) and, where it has one, the
quadratic form q = vᵀGv with its gradients (``_quadratic_form``) analytically; a metric without
``_quadratic_form`` gets q from G and ∂G through :class:`latentgeo.Metric`.

The points are rows z of an (N, d) array; the helpers below broadcast over leading axes unless
they say otherwise.
"""

from __future__ import annotations

import latentgeo as lg
import numpy as np
from latentgeo.errors import MetricDomainError


# ------------------------------------------------------------------------------------------------
# Conformal metrics G = φ(z) I
# ------------------------------------------------------------------------------------------------
class ConformalMetric(lg.Metric):
    """G(z) = φ(z) I; subclasses give φ and its gradient (``_phi``). G, ∂G and q = φ |v|² with
    its gradients are all computed from them."""

    dim = 2

    def _phi(self, z):
        """(φ (N,), ∂φ/∂z (N, d)) at the points z."""
        raise NotImplementedError

    def _metric(self, z, n_threads):
        return self._phi(z)[0][:, None, None] * np.eye(self.dim)

    def _derivative(self, z, n_threads):
        _, dphi = self._phi(z)
        return np.eye(self.dim)[None, :, :, None] * dphi[:, None, None, :]

    def _quadratic_form(self, z, v, grad, n_threads):
        phi, dphi = self._phi(z)
        vv = np.einsum("na,na->n", v, v)
        q = phi * vv
        return (q, vv[:, None] * dphi, 2.0 * phi[:, None] * v) if grad else q


class PoincareHalfPlane(ConformalMetric):
    """The Poincaré half-plane: G = I / y² on y > 0 (curvature −1)."""

    def _phi(self, z):
        y = z[:, 1]
        dphi = np.zeros_like(z)
        dphi[:, 1] = -2.0 / y**3
        return 1.0 / y**2, dphi


class StereographicSphere(ConformalMetric):
    """The unit sphere S^d in stereographic coordinates from the north pole (the pullback of
    :func:`to_sphere`): G = 4 / (1 + |z|²)² I, in any dimension ``dim`` (curvature +1)."""

    def __init__(self, dim=2):
        self.dim = dim

    def _phi(self, z):
        s = 1.0 + np.sum(z**2, axis=1)
        return 4.0 / s**2, -16.0 * z / s[:, None] ** 3


class SmoothWall(ConformalMetric):
    """The Euclidean plane with a high smooth wall on x = 0 for |y| < 1:
    G = φ I with φ = 1 + A exp(−x²/2s²) S(y), S a logistic gate that closes for |y| > 1."""

    height, width, softness = 200.0, 0.15, 0.2

    def _phi(self, z):
        x, y = z[:, 0], z[:, 1]
        bump = self.height * np.exp(-0.5 * x**2 / self.width**2)
        gate = 1.0 / (1.0 + np.exp((y**2 - 1.0) / self.softness))
        dgate = -gate * (1.0 - gate) * 2.0 * y / self.softness
        dphi = np.stack([-x / self.width**2 * bump * gate, bump * dgate], axis=1)
        return 1.0 + bump * gate, dphi


# ------------------------------------------------------------------------------------------------
# The flat plane in other coordinates and with a domain
# ------------------------------------------------------------------------------------------------
class PolarPlane(lg.Metric):
    """The Euclidean plane in polar coordinates z = (r, θ): G = diag(1, r²) (flat)."""

    dim = 2

    def _metric(self, z, n_threads):
        g = np.zeros((len(z), 2, 2))
        g[:, 0, 0], g[:, 1, 1] = 1.0, z[:, 0] ** 2
        return g

    def _derivative(self, z, n_threads):
        dg = np.zeros((len(z), 2, 2, 2))
        dg[:, 1, 1, 0] = 2.0 * z[:, 0]
        return dg

    def _quadratic_form(self, z, v, grad, n_threads):
        r = z[:, 0]
        q = v[:, 0] ** 2 + r**2 * v[:, 1] ** 2
        if not grad:
            return q
        dz = np.zeros_like(z)
        dz[:, 0] = 2.0 * r * v[:, 1] ** 2
        return q, dz, np.stack([2.0 * v[:, 0], 2.0 * r**2 * v[:, 1]], axis=1)


class WalledPlane(lg.Metric):
    """The Euclidean plane, G = I, defined on x < ``wall`` only; ∂G = 0 (everywhere, unchecked).

    Beyond the wall G is NaN (``raises=False``: a metric that does not check its domain, the
    library has to notice the NaN), or the call raises MetricDomainError (``raises=True``: a
    metric that checks its domain)."""

    dim = 2

    def __init__(self, wall=1.0, raises=False):
        self.wall, self.raises = wall, raises

    def _metric(self, z, n_threads):
        outside = z[:, 0] >= self.wall
        if self.raises and np.any(outside):
            raise MetricDomainError(f"metric: x >= {self.wall:g}")
        g = np.tile(np.eye(2), (len(z), 1, 1))
        g[outside] = np.nan
        return g

    def _derivative(self, z, n_threads):
        return np.zeros((len(z), 2, 2, 2))


# ------------------------------------------------------------------------------------------------
# Closed forms of the Poincaré half-plane
# ------------------------------------------------------------------------------------------------
def poincare_distance(a, b):
    """Hyperbolic distance between the points a and b (broadcast; at least 1-d result)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.arccosh(1.0 + np.sum((a - b) ** 2, axis=-1) / (2.0 * a[..., 1] * b[..., 1]))


def poincare_exp(z, v, t=1.0):
    """γ(t) from one point z with velocity v: semicircles centred on the x-axis, or vertical lines."""
    x0, y0 = z
    vx, vy = v
    if vx == 0.0:
        return np.array([x0, y0 * np.exp(vy * t / y0)])
    speed = np.hypot(vx, vy) / y0
    c = x0 + y0 * vy / vx
    radius = np.hypot(x0 - c, y0)
    phi0 = np.arctan2(y0, x0 - c)
    phi = 2.0 * np.arctan(np.tan(phi0 / 2.0) * np.exp(-np.sign(vx) * speed * t))
    return np.array([c + radius * np.cos(phi), radius * np.sin(phi)])


def poincare_log(z0, z1):
    """The initial velocity at z0 of the unit-time geodesic to z1 (one pair of points)."""
    (x0, y0), (x1, y1) = z0, z1
    dist = np.arccosh(1.0 + ((x1 - x0) ** 2 + (y1 - y0) ** 2) / (2.0 * y0 * y1))
    if x0 == x1:
        return np.array([0.0, y0 * np.log(y1 / y0)])
    c = (x1**2 + y1**2 - x0**2 - y0**2) / (2.0 * (x1 - x0))
    direction = np.sign(x1 - x0) * np.array([y0, c - x0]) / np.hypot(x0 - c, y0)
    return dist * y0 * direction


# ------------------------------------------------------------------------------------------------
# Closed forms of the sphere
# ------------------------------------------------------------------------------------------------
def to_sphere(z):
    """The inverse stereographic projection ℝ^d → S^d ⊂ ℝ^(d+1) (from the north pole); as a
    decoder, its pullback metric is :class:`StereographicSphere`."""
    r2 = np.sum(z**2, axis=-1, keepdims=True)
    return np.concatenate([2 * z, r2 - 1], axis=-1) / (1 + r2)


def to_chart(p):
    """The stereographic projection S^d → ℝ^d, the inverse of :func:`to_sphere`."""
    return p[..., :-1] / (1.0 - p[..., -1:])


def sphere_distance(a, b):
    """Great-circle distance between the points of the chart a and b (rows, (N, d))."""
    return np.arccos(np.clip(np.sum(to_sphere(a) * to_sphere(b), axis=1), -1, 1))


def sphere_tangent(z, v):
    """The differential of :func:`to_sphere`: the ℝ^(d+1) velocity of the chart velocity v at one
    point z."""
    s = 1.0 + z @ z
    zv = z @ v
    return np.concatenate([2.0 * v / s - 4.0 * z * zv / s**2, [4.0 * zv / s**2]])


def sphere_exp(z, v, t=1.0):
    """γ(t) from one chart point z with velocity v: along the great circle, mapped back to the chart."""
    p, u = to_sphere(z), sphere_tangent(z, v)
    n = np.linalg.norm(u)
    return to_chart(p * np.cos(n * t) + u / n * np.sin(n * t))


# ------------------------------------------------------------------------------------------------
# Closed forms of polar coordinates
# ------------------------------------------------------------------------------------------------
def polar_to_cartesian(z):
    """(r, θ) → (r cos θ, r sin θ)."""
    return np.stack([z[..., 0] * np.cos(z[..., 1]), z[..., 0] * np.sin(z[..., 1])], axis=-1)


def polar_velocity_to_cartesian(z, v):
    """The Cartesian velocity of the polar velocity v at the polar point z."""
    r, th = z[..., 0], z[..., 1]
    return np.stack(
        [v[..., 0] * np.cos(th) - r * v[..., 1] * np.sin(th), v[..., 0] * np.sin(th) + r * v[..., 1] * np.cos(th)],
        axis=-1,
    )


def polar_distance(a, b):
    """Euclidean distance between the polar points a and b."""
    return np.linalg.norm(polar_to_cartesian(a) - polar_to_cartesian(b), axis=-1)
