"""RHVAEMetric.save/load, the optional-torch import path, and the shipped digits model."""

from __future__ import annotations

import os
import subprocess
import sys

import latentgeo as lg
import numpy as np
import pytest
from latentgeo.datasets import digits_rhvae_path, load_digits_rhvae

KEYS = ("format_version", "kind", "centroids", "M", "temperature", "regularization", "normalization")


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def random_metric(rng, normalization="sum", k=6, d=3):
    L = np.tril(rng.normal(size=(k, d, d)))
    L[:, np.arange(d), np.arange(d)] = np.abs(L[:, np.arange(d), np.arange(d)]) + 0.2
    return lg.RHVAEMetric(
        rng.normal(size=(k, d)), L=L, temperature=0.7, regularization=0.03, normalization=normalization
    )


def saved_arrays(metric, tmp_path):
    metric.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        return {k: data[k] for k in data.files}


def write(tmp_path, arrays, name="bad.npz"):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


@pytest.mark.parametrize("normalization", ["sum", "mean"])
def test_roundtrip(rng, tmp_path, normalization):
    metric = random_metric(rng, normalization)
    metric.save(tmp_path / "metric.npz", latent=np.ones((4, 3)), labels=np.arange(4))
    loaded = lg.RHVAEMetric.load(tmp_path / "metric.npz")
    np.testing.assert_array_equal(loaded.centroids, metric.centroids)
    np.testing.assert_array_equal(loaded.M, metric.M)
    assert (loaded.temperature, loaded.regularization, loaded.normalization) == (0.7, 0.03, normalization)
    z = rng.normal(size=(20, 3))
    np.testing.assert_array_equal(loaded(z), metric(z))
    with np.load(tmp_path / "metric.npz") as data:
        assert set(data.files) == set(KEYS) | {"latent", "labels"}
        assert int(data["format_version"]) == lg.RHVAEMetric.FORMAT_VERSION == 1
        assert data["M"].dtype == np.float64 and data["M"].shape == (6, 3, 3)


def test_save_appends_npz_and_rejects_reserved_names(rng, tmp_path):
    metric = random_metric(rng)
    metric.save(str(tmp_path / "plain"))
    assert lg.RHVAEMetric.load(tmp_path / "plain.npz").n_centroids == 6
    with pytest.raises(ValueError, match=r"^extra_arrays: names \['M'\] are reserved"):
        metric.save(tmp_path / "x.npz", M=np.ones(3))


@pytest.mark.parametrize("key", KEYS)
def test_missing_key(rng, tmp_path, key):
    arrays = saved_arrays(random_metric(rng), tmp_path)
    del arrays[key]
    with pytest.raises(ValueError, match=rf"^{key}: missing from"):
        lg.RHVAEMetric.load(write(tmp_path, arrays))


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("M", lambda a: a["M"][:, :, :2], r"^M: expected shape \(6, 3, 3\)"),
        ("M", lambda a: a["M"][:4], r"^M: expected shape \(6, 3, 3\)"),
        ("centroids", lambda a: a["centroids"].ravel(), r"^centroids: expected a 2-d array"),
        ("temperature", lambda a: np.array([0.7, 0.7]), r"^temperature: expected a numeric scalar"),
        ("regularization", lambda a: np.array("x"), r"^regularization: expected a numeric scalar"),
        ("normalization", lambda a: np.array(1.0), r"^normalization: expected a string"),
        ("normalization", lambda a: np.array("median"), r"^normalization: expected one of"),
        ("kind", lambda a: np.array("pullback"), r"^kind: expected 'rhvae'"),
        ("format_version", lambda a: np.array(2), r"^format_version: unsupported version"),
        ("format_version", lambda a: np.array(1.5), r"^format_version: unsupported version"),
        (
            "centroids",
            lambda a: np.where(np.eye(6, 3, dtype=bool), np.nan, a["centroids"]),
            r"^centroids: contains NaN",
        ),
        ("M", lambda a: a["M"] * np.inf, r"^M: contains NaN or Inf"),
        ("temperature", lambda a: np.array(np.nan), r"^temperature: contains NaN or Inf"),
        ("regularization", lambda a: np.array(np.inf), r"^regularization: contains NaN or Inf"),
        ("temperature", lambda a: np.array(-1.0), r"^temperature: must be finite and > 0"),
    ],
)
def test_bad_values(rng, tmp_path, key, value, match):
    arrays = saved_arrays(random_metric(rng), tmp_path)
    arrays[key] = value(arrays)
    with pytest.raises(ValueError, match=match):
        lg.RHVAEMetric.load(write(tmp_path, arrays))


def test_not_an_npz(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"^path: cannot read"):
        lg.RHVAEMetric.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        lg.RHVAEMetric.load(tmp_path / "missing.npz")


def test_importing_latentgeo_does_not_import_torch():
    code = "import sys, latentgeo, latentgeo.metrics.pullback.mlp, latentgeo.datasets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install latentgeo\[pythae\]"):
        lg.RHVAEMetric.from_pythae(tmp_path)


# -- the shipped digits model --------------------------------------------------------------------


def test_shipped_digits_model():
    model = load_digits_rhvae()
    assert os.path.getsize(digits_rhvae_path()) < 400_000
    metric, latent, labels = model.metric, model.latent, model.labels
    assert isinstance(metric, lg.RHVAEMetric) and metric.dim == 2 and metric.normalization == "sum"
    assert latent.shape == (1797, 2) and labels.shape == (1797,)
    assert set(np.unique(labels)) == set(range(10))
    assert model.in_train.sum() == metric.n_centroids == model.provenance["n_train"]
    # The centroids are the encoder means of the training digits seen in the last epoch, so
    # each one lies close to the final mean of some training digit.
    train = latent[model.in_train]
    nearest = np.min(np.linalg.norm(metric.centroids[:, None] - train[None], axis=2), axis=1)
    assert np.median(nearest) < 0.05 * np.ptp(train, axis=0).max()
    g = metric(latent)
    assert np.all(np.isfinite(g)) and np.all(np.linalg.eigvalsh(g) > 0)
    # The same file loads directly as a metric (e.g. for `latentgeo info --model`).
    np.testing.assert_array_equal(lg.RHVAEMetric.load(digits_rhvae_path()).M, metric.M)
