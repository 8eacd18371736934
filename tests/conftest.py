"""Shared fixtures, reference RHVAE metrics and derived rounding tolerances.

The closed-form test manifolds live in tests/manifolds.py; PoincareHalfPlane is re-exported here
for the tests (and the child processes of test_interrupt) that import it from conftest."""

from __future__ import annotations

import latentgeo as lg
import numpy as np
import pytest
from manifolds import PoincareHalfPlane  # noqa: F401 - re-exported


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
    metric = lg.RHVAEMetric(
        centroids, L=L, temperature=temperature, regularization=regularization, normalization=normalization
    )
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


# ------------------------------------------------------------------------------------------------
# Tolerances derived from the computation. Two code paths (another BLAS kernel, vector width, FMA
# contraction, summation order) round differently: never compare their results exactly, bound the
# difference by the rounding analysis of the computation instead.
# ------------------------------------------------------------------------------------------------
EPS = np.finfo(np.float64).eps
SAFETY = 16  # rounding bounds below are first-order estimates; the factor keeps them safe


def sum_tol(magnitude, n_terms):
    """Bound on the rounding difference of a sum of n_terms products evaluated in any order:
    n_terms · eps · Σ|terms| (``magnitude``, elementwise)."""
    return SAFETY * n_terms * EPS * np.asarray(magnitude)


def assert_within(actual, expected, tol):
    """Elementwise |actual − expected| ≤ tol (tol: an array broadcast against them, or a scalar)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    excess = np.abs(actual - expected) / np.broadcast_to(tol, expected.shape)
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else ()
    assert not excess.size or excess[worst] <= 1.0, (
        f"at {worst}: |{actual[worst]!r} - {expected[worst]!r}| is {excess[worst]:.3g} times the derived tolerance"
    )


def spd_cond(g):
    """Condition numbers of a stack of SPD matrices (N, d, d): how much a solve amplifies rounding."""
    eig = np.linalg.eigvalsh(g)
    return eig[..., -1] / eig[..., 0]


def assert_matrices_close(actual, expected, rel):
    """Per point, ‖actual − expected‖_F ≤ rel · ‖expected‖_F (rel: scalar or one per point).

    Normwise is the right measure for a matrix through a solve or an inverse: the rounding of
    G = (G⁻¹)⁻¹ is bounded by κ(G) eps ‖G‖, not entry by entry."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    diff = np.linalg.norm((actual - expected).reshape(len(expected), -1), axis=1)
    scale = np.linalg.norm(expected.reshape(len(expected), -1), axis=1)
    worst = np.max(diff / (np.asarray(rel) * scale))
    assert worst <= 1.0, f"normwise deviation {worst:.3g} times the derived tolerance"


def rhvae_rounding(metric, z):
    """Relative rounding of G⁻¹(z) for an RHVAE metric (sum of K weighted terms, each with an
    exp whose argument |z − c_k|²/T² is itself rounded) and κ(G) per point."""
    sq = np.sum((np.asarray(z)[:, None, :] - metric.centroids[None]) ** 2, axis=2) / metric.temperature**2
    arg = np.where(sq < 708, sq, 0.0).max(axis=1)  # weights that underflow to 0 contribute nothing
    return (metric.n_centroids + metric.dim + arg) * EPS, spd_cond(metric(z))
