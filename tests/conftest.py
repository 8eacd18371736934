"""Shared fixtures and small closed-form metrics used as independent references."""

from __future__ import annotations

import numpy as np
import pytest

import latentgeo as lg


class PoincareHalfPlane(lg.Metric):
    """G = I / y² on the upper half-plane (analytic derivative)."""

    dim = 2

    def _metric(self, z, n_threads):
        return np.eye(2)[None] / z[:, 1, None, None] ** 2

    def _derivative(self, z, n_threads):
        out = np.zeros((len(z), 2, 2, 2))
        out[:, 0, 0, 1] = out[:, 1, 1, 1] = -2.0 / z[:, 1] ** 3
        return out


def reference_rhvae(**overrides) -> lg.RHVAEMetric:
    """The two-centroid metric of the issue's reference values."""
    options = dict(temperature=0.8, regularization=0.01, normalization="mean")
    options.update(overrides)
    centroids = np.array([[0.0, 0.0], [1.0, 1.0]])
    L = np.array([[[1.0, 0.0], [0.5, 2.0]], [[0.5, 0.0], [-1.0, 1.0]]])
    return lg.RHVAEMetric(centroids, L=L, **options)


def random_rhvae(rng, n_centroids=7, dim=3, normalization="sum", temperature=0.9, regularization=0.05):
    centroids = rng.normal(size=(n_centroids, dim))
    L = np.tril(rng.normal(size=(n_centroids, dim, dim)))
    idx = np.arange(dim)
    L[:, idx, idx] = np.abs(L[:, idx, idx]) + 0.3
    metric = lg.RHVAEMetric(centroids, L=L, temperature=temperature, regularization=regularization,
                            normalization=normalization)
    return metric, centroids, L


def numpy_rhvae_inverse(z, centroids, L, temperature, regularization, scale):
    """Brute-force numpy G⁻¹ straight from the formula, one point at a time."""
    M = np.einsum("kab,kcb->kac", L, L)
    out = []
    for point in np.atleast_2d(z):
        w = np.exp(-np.sum((point - centroids) ** 2, axis=1) / temperature**2)
        out.append(scale * np.einsum("k,kab->ab", w, M) + regularization * np.eye(len(point)))
    return np.array(out)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
