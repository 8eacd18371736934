"""RHVAEMetric.from_pythae against a real pythae RHVAE (skipped when pythae is not installed)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pythae = pytest.importorskip("pythae")
torch = pytest.importorskip("torch")

import latentgeo as lg  # noqa: E402
from pythae.models import RHVAE, RHVAEConfig  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small RHVAE after a few training steps on random data, saved with pythae."""
    torch.manual_seed(0)
    config = RHVAEConfig(input_dim=(6,), latent_dim=2, n_lf=1, eps_lf=0.001, temperature=0.9, regularization=0.02)
    model = RHVAE(config)
    data = torch.rand(48, 6)
    model.train()
    for epoch in range(2):
        for start in range(0, 48, 12):
            model.zero_grad()
            loss = model({"data": data[start : start + 12]}).loss
            assert torch.isfinite(loss)
            loss.backward()
            # Plain gradient steps: building a torch.optim optimizer costs seconds on first use.
            with torch.no_grad():
                for p in model.parameters():
                    if p.grad is not None:
                        p -= 1e-3 * p.grad
        model.update()  # pythae's end-of-epoch metric rebuild
    model.eval()
    folder = tmp_path_factory.mktemp("rhvae") / "model"
    model.save(str(folder))
    return model, folder


def float64_closures(model):
    """pythae's G / G_inv closures evaluated in float64 on the same (float32-stored) values."""
    m = copy.deepcopy(model).double()
    m.M_tens, m.centroids_tens = m.M_tens.double(), m.centroids_tens.double()
    return m


def pythae_G(model, z):
    with torch.no_grad():
        zt = torch.from_numpy(z)
        return model.G(zt).numpy(), model.G_inv(zt).numpy()


def assert_close_per_point(actual, expected, tol):
    """|actual - expected| <= tol · (largest |entry| of that point's matrix); off-diagonal
    entries far from the data can be ~1e-29, where a plain relative test means nothing."""
    scale = np.abs(expected).max(axis=(1, 2), keepdims=True)
    worst = (np.abs(actual - expected) / scale).max()
    assert worst <= tol, f"largest relative deviation {worst:.3g} > {tol:g}"


@pytest.mark.parametrize("source", ["live", "folder"])
def test_matches_pythae_closures(trained, source):
    model, folder = trained
    metric = lg.RHVAEMetric.from_pythae(model if source == "live" else folder)
    assert metric.n_centroids == 48 and metric.dim == 2 and metric.normalization == "sum"
    assert metric.temperature == float(np.float32(0.9)) and metric.regularization == float(np.float32(0.02))
    np.testing.assert_array_equal(metric.centroids, model.centroids_tens.numpy().astype(np.float64))
    rng = np.random.default_rng(7)
    z = np.concatenate([metric.centroids[:10] + 0.1 * rng.normal(size=(10, 2)), 3 * rng.normal(size=(20, 2))])
    # pythae's model as reloaded by pythae itself, and the live one, evaluated in float64.
    reference = model if source == "live" else RHVAE.load_from_folder(str(folder))
    G, G_inv = pythae_G(float64_closures(reference), z)
    assert_close_per_point(metric(z), G, 1e-6)
    assert_close_per_point(metric.inverse(z), G_inv, 1e-6)
    # pythae's own float32 evaluation agrees to float32 accuracy.
    G32, _ = pythae_G(reference, z.astype(np.float32))
    assert_close_per_point(metric(z), G32.astype(np.float64), 1e-4)


def test_folder_and_model_file_agree(trained):
    model, folder = trained
    a = lg.RHVAEMetric.from_pythae(folder)
    b = lg.RHVAEMetric.from_pythae(folder / "model.pt")
    c = lg.RHVAEMetric.from_pythae(model)
    np.testing.assert_array_equal(a.M, b.M)
    np.testing.assert_array_equal(a.M, c.M)


def test_untrained_model_is_rejected():
    torch.manual_seed(1)
    model = RHVAE(RHVAEConfig(input_dim=(4,), latent_dim=3))
    # Before the first model.update() pythae's M_tens is a random, non-symmetric placeholder.
    with pytest.raises(ValueError, match=r"^path_or_model: .*not symmetric"):
        lg.RHVAEMetric.from_pythae(model)


def test_bad_sources(tmp_path):
    with pytest.raises(ValueError, match=r"^path_or_model: no pythae model file"):
        lg.RHVAEMetric.from_pythae(tmp_path)
    with pytest.raises(ValueError, match=r"^path_or_model: .*not a pythae RHVAE"):
        lg.RHVAEMetric.from_pythae(object())
    torch.save({"model_state_dict": {}}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"^path_or_model: .*missing \['M', 'centroids'"):
        lg.RHVAEMetric.from_pythae(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"^path_or_model: cannot read"):
        lg.RHVAEMetric.from_pythae(tmp_path / "junk")
