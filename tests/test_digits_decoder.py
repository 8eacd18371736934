"""The decoder shipped with the digits RHVAE: loading, decoding, and its Bernoulli metric."""

from __future__ import annotations

import os

import latentgeo as lg
import numpy as np
import pytest
from latentgeo.datasets import digits_decoder_path, load_digits_rhvae


@pytest.fixture(scope="module")
def model():
    return load_digits_rhvae()


def stored_layers():
    with np.load(digits_decoder_path()) as data:
        keys = ("head0.0.weight", "head0.0.bias", "head0.2.weight", "head0.2.bias")
        return [data[k].astype(np.float64) for k in keys]


def test_loader_and_shapes(model):
    decoder = model.decoder
    assert isinstance(decoder, lg.PullbackMetric) and hasattr(decoder, "_kernel")
    assert decoder.dim == 2 and decoder.output_dim == 64 and decoder.likelihood == "bernoulli"
    assert os.path.getsize(digits_decoder_path()) < 400_000
    images = decoder.decode(model.latent[:5])
    assert images.shape == (5, 64) and np.all((images >= 0) & (images <= 1))
    assert decoder.decode(model.latent[0]).shape == (64,)
    assert lg.PullbackMetric.load(digits_decoder_path()).likelihood == "bernoulli"


def test_decode_is_the_stored_relu_sigmoid_mlp(model):
    # pythae's default decoder: p = sigmoid(W2 relu(W1 z + b1) + b2), written out in numpy.
    W1, b1, W2, b2 = stored_layers()
    z = model.latent[::50]
    logits = np.maximum(z @ W1.T + b1, 0) @ W2.T + b2
    expected = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(model.decoder.decode(z), expected, rtol=1e-12, atol=1e-15)
    # Fisher–Rao pullback: G = J_ℓᵀ diag(p(1−p)) J_ℓ with J_ℓ = W2 diag(1[W1 z + b1 > 0]) W1.
    active = (z @ W1.T + b1 > 0).astype(float)
    jac = np.einsum("ij,nj,jk->nik", W2, active, W1)
    G = np.einsum("nia,ni,nib->nab", jac, expected * (1 - expected), jac)
    np.testing.assert_allclose(model.decoder(z), G, rtol=1e-10)


def test_decoder_reconstructs_the_digits(model):
    sklearn = pytest.importorskip("sklearn.datasets")
    pixels = sklearn.load_digits().data / 16.0
    recon = model.decoder.decode(model.latent)
    own = np.abs(recon - pixels).mean(axis=1)
    shuffled = np.abs(recon - pixels[np.random.default_rng(0).permutation(len(pixels))]).mean(axis=1)
    # A decoder of these latent codes: each reconstruction is closer to its own digit than to a
    # random other one for most digits (measured 94 %), and better than the mean image overall.
    assert np.mean(own < shuffled) > 0.85
    assert own.mean() < 0.75 * np.abs(pixels - pixels.mean(axis=0)).mean()
