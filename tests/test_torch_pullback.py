"""Pullback metrics of torch decoders outside the C++ core (TorchPullbackMetric), Bernoulli
likelihoods on both paths, pythae decoders, and torch staying optional.

References: torch's reverse-mode autograd Jacobians (float64), hand-written numpy formulas,
central differences (tolerances from the step, see ``assert_central_differences``) and the
finite-difference callable path."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import latentgeo as lg
import numpy as np
import pytest
from latentgeo.metrics.pullback import PullbackMetric
from latentgeo.solvers.options import default_quadrature
from manifolds import sphere_distance, to_sphere

torch = pytest.importorskip("torch")
nn = torch.nn

from latentgeo.metrics.pullback.torch_decoder import TorchPullbackMetric  # noqa: E402

EPS = np.finfo(float).eps


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Small conv batches: torch's thread pool only adds contention on a shared machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + torch.tanh(self.conv(x))


class ConvDecoder(nn.Module):
    """z (N, d) → (N, 1, 8, 8): Linear, reshape, ConvTranspose, BatchNorm, a residual block, Conv."""

    def __init__(self, dim=2, sigmoid=False):
        super().__init__()
        self.fc = nn.Linear(dim, 8 * 2 * 2)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.Softplus(),
            Residual(8),
            nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
            nn.Tanh(),
            nn.Conv2d(4, 1, 3, padding=1),
        )
        self.sigmoid = sigmoid

    def forward(self, z):
        x = self.up(torch.tanh(self.fc(z)).reshape(-1, 8, 2, 2))
        return torch.sigmoid(x) if self.sigmoid else x


def conv_decoder(sigmoid=False, seed=0):
    """A float32 decoder in eval mode with non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    module = ConvDecoder(sigmoid=sigmoid)
    with torch.no_grad():
        module.fc.weight.mul_(3.0)  # saturating tanh units: G varies, geodesics bend
        bn = module.up[1]
        bn.running_mean.normal_(0.0, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
    return module.eval()


def autograd_jacobians(module, z):
    """Reverse-mode Jacobians (N, D, d) of a float64 copy of module, one point at a time."""
    m64 = copy.deepcopy(module).double()
    fn = lambda x: m64(x[None]).reshape(-1)  # noqa: E731
    return np.stack([torch.autograd.functional.jacobian(fn, torch.from_numpy(p)).numpy() for p in z])


def assert_central_differences(exact, fn, z, h):
    """exact ≈ ∂fn/∂z (last axis) by central differences.

    The truncation error of a central difference is c·h² + O(h⁴); comparing steps h and h/2
    estimates it: err(h/2) ≈ |D(h) − D(h/2)| / 3. Allowed: 3× that estimate, |D(h) − D(h/2)|,
    plus the rounding error of the difference quotient, ~10 ε |fn| / h.
    """

    def central(step):
        return np.stack([(fn(z + step * e) - fn(z - step * e)) / (2 * step) for e in np.eye(z.shape[1])], axis=-1)

    coarse, fine = central(h), central(h / 2)
    rounding = 10 * EPS * np.abs(fn(z)).max() / (h / 2)
    tol = np.abs(coarse - fine).max() + rounding
    err = np.abs(exact - fine).max()
    assert err <= tol, f"max deviation {err:.3g} > tolerance {tol:.3g}"
    assert np.abs(exact).max() > 100 * tol  # the comparison means something


@pytest.fixture(scope="module")
def conv():
    module = conv_decoder()
    return module, PullbackMetric.from_torch(module)


@pytest.fixture(scope="module")
def conv_callable(conv):
    """The conv decoder's float64 copy behind PullbackMetric.from_callable (finite differences)."""
    m64 = copy.deepcopy(conv[0]).double()

    def decode(z):
        with torch.no_grad():
            return m64(torch.from_numpy(z)).reshape(len(z), -1).numpy()

    return PullbackMetric.from_callable(decode, 2)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# -- the conv decoder ---------------------------------------------------------------------------


def test_conv_decoder_takes_the_torch_path(conv):
    module, metric = conv
    assert isinstance(metric, TorchPullbackMetric) and not hasattr(metric, "_kernel")
    assert metric.dim == 2 and metric.output_dim == 64 and metric.output_shape == (1, 8, 8)
    # the user's module is untouched: float32, same parameters object, eval mode as given
    assert module.fc.weight.dtype == torch.float32 and metric._mean is not module


def test_conv_metric_equals_autograd(conv, rng):
    module, metric = conv
    z = rng.normal(size=(7, 2))
    jac = autograd_jacobians(module, z)
    expected = np.einsum("nia,nib->nab", jac, jac)
    G = metric(z)
    # Both are exact float64 AD: they differ by rounding only.
    scale = np.abs(expected).max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(G - expected) <= 1e-10 * scale)
    np.testing.assert_allclose(metric.jacobian(z), jac, rtol=0, atol=1e-12 * np.abs(jac).max())
    with torch.no_grad():
        reference = copy.deepcopy(module).double()(torch.from_numpy(z)).reshape(7, -1).numpy()
    np.testing.assert_allclose(metric.decode(z), reference, rtol=0, atol=1e-13 * np.abs(reference).max())
    single = metric(z[0])
    assert single.shape == (2, 2)
    np.testing.assert_allclose(single, G[0], rtol=1e-13)


def test_conv_derivatives_match_central_differences(conv, rng):
    _, metric = conv
    z, v = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    assert_central_differences(metric.derivative(z), metric.metric, z, h=1e-3)
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    assert_central_differences(dqdz, lambda x: metric.quadratic_form(x, v), z, h=1e-3)
    G = metric(z)
    np.testing.assert_allclose(q, np.einsum("na,nab,nb->n", v, G, v), rtol=1e-12)
    np.testing.assert_allclose(metric.quadratic_form(z, v), q, rtol=1e-12)
    np.testing.assert_allclose(dqdv, 2 * np.einsum("nab,nb->na", G, v), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("quadrature", ["simpson", "decoded"])
def test_conv_geodesic_converges_and_matches_the_callable_path(conv, conv_callable, quadrature):
    _, metric = conv
    numeric = conv_callable
    assert default_quadrature(numeric) == default_quadrature(metric) == "decoded"
    start, end = np.array([-0.25, 1.2]), np.array([0.6, -1.6])
    exact = lg.geodesic(metric, start, end, tol=1e-7, quadrature=quadrature)
    fd = lg.geodesic(numeric, start, end, tol=1e-7, quadrature=quadrature)
    assert exact.converged and fd.converged
    assert exact.length < 0.99 * exact.straight_length  # a bent geodesic, not the straight line
    # The callable path's G has relative error ~1e-9 (central differences, step 1e-5) and the
    # length is stationary at the geodesic: lengths agree far below the solver's tol.
    assert exact.length == pytest.approx(fd.length, rel=1e-7)
    # Simpson: its ∂G (differences of G, step 1e-4) is off by ~1e-5 relative, which moves the
    # optimum; decoded: J to ~1e-10. Either way within the nodes' sqrt(tol) tolerance.
    t = np.linspace(0, 1, 101)
    assert np.abs(exact.curve(t) - fd.curve(t)).max() < 1e-4


def test_callable_decoded_energies_match_the_torch_path(conv, conv_callable, rng):
    _, metric = conv
    numeric = conv_callable
    z, counts = rng.normal(size=(12, 2)), [3, 9]
    e_fd, g_fd = numeric.decoded_energies(z, counts)
    e_ad, g_ad = metric.decoded_energies(z, counts)
    np.testing.assert_allclose(e_fd, e_ad, rtol=10 * 64 * 9 * EPS, atol=0)  # the same sums in another order
    # central differences of step h = 1e-5: truncation ~h² |f‴| and rounding ~ε |f| / h, ~1e-10 here
    np.testing.assert_allclose(g_fd, g_ad, rtol=0, atol=1e-8 * np.abs(g_ad).max())
    with pytest.raises(ValueError, match=r"^counts: "):
        numeric.decoded_energies(z, [3, 8])


def test_pickle_roundtrip(conv, rng):
    _, metric = conv
    clone = pickle.loads(pickle.dumps(metric))
    z = rng.normal(size=(4, 2))
    np.testing.assert_array_equal(clone(z), metric(z))


def test_chunks_give_the_same_result(rng):
    module = conv_decoder()
    whole, chunked = PullbackMetric.from_torch(module), PullbackMetric.from_torch(module, max_points=3)
    z, v = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    np.testing.assert_allclose(chunked(z), whole(z), rtol=1e-12, atol=1e-18)
    for a, b in zip(chunked.quadratic_form(z, v, True), whole.quadratic_form(z, v, True)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-18)


def test_gaussian_sigma_head_and_trunk(rng):
    torch.manual_seed(3)
    trunk = nn.Sequential(nn.Linear(2, 6), nn.Tanh())
    mean = nn.Sequential(nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 2, 3), nn.Flatten())  # (N, 8)
    log_sigma = nn.Sequential(nn.Linear(6, 3))
    metric = PullbackMetric.from_torch(mean, trunk=trunk, log_sigma=log_sigma, dim=2)
    assert isinstance(metric, TorchPullbackMetric) and metric.gaussian and metric.output_dim == 11
    z = rng.normal(size=(4, 2))
    jac_mu = autograd_jacobians(nn.Sequential(trunk, mean), z)
    jac_sigma = autograd_jacobians(_Exp(nn.Sequential(trunk, log_sigma)), z)
    expected = np.einsum("nia,nib->nab", jac_mu, jac_mu) + np.einsum("nia,nib->nab", jac_sigma, jac_sigma)
    np.testing.assert_allclose(metric(z), expected, rtol=1e-10, atol=1e-16)
    mu, sigma = metric.decode(z)
    assert mu.shape == (4, 8) and sigma.shape == (4, 3) and np.all(sigma > 0)
    assert_central_differences(metric.derivative(z), metric.metric, z, h=1e-3)


class _Exp(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        return torch.exp(self.inner(z))


# -- Bernoulli ------------------------------------------------------------------------------------


def numpy_bernoulli_metric(z, W1, b1, W2, b2):
    """Fisher–Rao pullback of p = sigmoid(W2 tanh(W1 z + b1) + b2), by hand:
    J_p = diag(p(1−p)) W2 diag(1 − h²) W1 and G = J_pᵀ diag(1/(p(1−p))) J_p."""
    h = np.tanh(z @ W1.T + b1)
    logits = h @ W2.T + b2
    p, q = 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits))  # q = 1 − p without cancellation
    jac_logits = np.einsum("ij,nj,jk->nik", W2, 1 - h**2, W1)
    jac_p = (p * q)[:, :, None] * jac_logits
    return np.einsum("nia,ni,nib->nab", jac_p, 1 / (p * q), jac_p), np.einsum(
        "nia,ni,nib->nab", jac_logits, p * q, jac_logits
    )


class Probabilities(nn.Module):
    """The same decoder as a custom module: the torch path sees probabilities only."""

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def forward(self, z):
        return self.seq(z)


@pytest.fixture(scope="module")
def bernoulli_mlp():
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(2, 7), nn.Tanh(), nn.Linear(7, 5), nn.Sigmoid()).double()


def test_bernoulli_against_the_hand_written_formula(bernoulli_mlp, rng):
    seq = bernoulli_mlp
    W1, b1, W2, b2 = (t.detach().numpy() for t in (seq[0].weight, seq[0].bias, seq[2].weight, seq[2].bias))
    z = rng.normal(size=(9, 2))
    expected, expected_logits = numpy_bernoulli_metric(z, W1, b1, W2, b2)
    np.testing.assert_allclose(expected, expected_logits, rtol=1e-12)  # the two forms agree
    native = PullbackMetric.from_torch(seq, likelihood="bernoulli")
    weights = PullbackMetric([W1, W2], [b1, b2], ["tanh", "sigmoid"], likelihood="bernoulli")
    probabilities = PullbackMetric.from_torch(Probabilities(seq), likelihood="bernoulli")
    logits_torch = TorchPullbackMetric(seq, likelihood="bernoulli")  # a Sequential ending in Sigmoid: logits
    assert hasattr(native, "_kernel") and not hasattr(probabilities, "_kernel")
    assert logits_torch._logits and not probabilities._logits
    for metric in (native, weights, probabilities, logits_torch):
        assert metric.likelihood == "bernoulli"
        np.testing.assert_allclose(metric(z), expected, rtol=1e-11, atol=0)
        np.testing.assert_allclose(metric.decode(z), seq(torch.from_numpy(z)).detach().numpy(), rtol=1e-13, atol=0)
        jac = metric.jacobian(z)
        np.testing.assert_allclose(np.einsum("nia,nib->nab", jac, jac), expected, rtol=1e-11, atol=0)
    # not the Euclidean pullback of p
    assert np.abs(PullbackMetric.from_torch(seq)(z) - expected).max() > 0.1 * np.abs(expected).max()


@pytest.mark.parametrize("path", ["native", "probabilities", "logits_torch"])
def test_bernoulli_derivatives_match_central_differences(bernoulli_mlp, rng, path):
    seq = bernoulli_mlp
    metric = {
        "native": lambda: PullbackMetric.from_torch(seq, likelihood="bernoulli"),
        "probabilities": lambda: PullbackMetric.from_torch(Probabilities(seq), likelihood="bernoulli"),
        "logits_torch": lambda: TorchPullbackMetric(seq, likelihood="bernoulli"),
    }[path]()
    z, v = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    assert_central_differences(metric.derivative(z), metric.metric, z, h=1e-3)
    _, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    assert_central_differences(dqdz, lambda x: metric.quadratic_form(x, v), z, h=1e-3)
    np.testing.assert_allclose(dqdv, 2 * np.einsum("nab,nb->na", metric(z), v), rtol=1e-11, atol=1e-17)


def test_bernoulli_saturated_outputs_stay_finite_and_exact():
    # logits up to ±60: p(1 − p) ~ 1e-26, where 1 − p is 0 in float64.
    W, b = np.array([[30.0, 0.0], [0.0, -30.0], [1.0, 1.0]]), np.array([0.0, 0.0, 0.5])
    seq = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid()).double()
    with torch.no_grad():
        seq[0].weight.copy_(torch.from_numpy(W))
        seq[0].bias.copy_(torch.from_numpy(b))
    z = np.array([[2.0, -2.0], [0.1, 0.2]])
    logits = z @ W.T + b
    pq = 1 / ((1 + np.exp(-logits)) * (1 + np.exp(logits)))
    expected = np.einsum("ia,ni,ib->nab", W, pq, W)
    logits_paths = (
        PullbackMetric.from_torch(seq, likelihood="bernoulli"),
        TorchPullbackMetric(seq, likelihood="bernoulli"),
    )
    for metric in logits_paths:
        G = metric(z)
        assert np.all(np.isfinite(G)) and np.all(np.isfinite(metric.derivative(z)))
        np.testing.assert_allclose(G, expected, rtol=1e-12, atol=0)
    # probabilities only: saturated outputs lose their (tiny) contribution but stay finite
    probs = PullbackMetric.from_torch(Probabilities(seq), likelihood="bernoulli")
    G = probs(z)
    assert np.all(np.isfinite(G)) and np.all(np.isfinite(probs.quadratic_form(z, z, grad=True)[1]))
    np.testing.assert_allclose(G, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_conv_bernoulli_decoder(rng):
    module = conv_decoder(sigmoid=True)
    metric = PullbackMetric.from_torch(module, likelihood="bernoulli")
    z = rng.normal(size=(3, 2))
    jac = autograd_jacobians(module, z)
    with torch.no_grad():
        p = copy.deepcopy(module).double()(torch.from_numpy(z)).reshape(3, -1).numpy()
    expected = np.einsum("nia,ni,nib->nab", jac, 1 / (p * (1 - p)), jac)
    np.testing.assert_allclose(metric(z), expected, rtol=1e-10, atol=0)


def test_mlp_save_and_load_keeps_the_likelihood(bernoulli_mlp, rng, tmp_path):
    metric = PullbackMetric.from_torch(bernoulli_mlp, likelihood="bernoulli")
    metric.save(tmp_path / "decoder.npz")
    loaded = PullbackMetric.load(tmp_path / "decoder.npz")
    z = rng.normal(size=(5, 2))
    assert loaded.likelihood == "bernoulli"
    np.testing.assert_array_equal(loaded(z), metric(z))
    np.testing.assert_array_equal(loaded.decode(z), metric.decode(z))
    gaussian = PullbackMetric(
        [np.ones((3, 2))], [np.zeros(3)], ["tanh"], log_sigma=([np.eye(2)], [np.zeros(2)], ["identity"])
    )
    gaussian.save(tmp_path / "g.npz")
    again = PullbackMetric.load(tmp_path / "g.npz")
    assert again.likelihood is None and again.gaussian
    np.testing.assert_array_equal(again(z), gaussian(z))
    np.savez(tmp_path / "bad.npz", format_version=1, kind="rhvae", likelihood="", structure="{}")
    with pytest.raises(ValueError, match=r"^kind: expected 'mlp_pullback'"):
        PullbackMetric.load(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "bad2.npz",
        format_version=1,
        kind="mlp_pullback",
        likelihood="",
        structure='{"head0": [["dense", "missing"]]}',
    )
    with pytest.raises(ValueError, match=r"^structure: malformed"):
        PullbackMetric.load(tmp_path / "bad2.npz")


# -- bad input ------------------------------------------------------------------------------------


class Summing(nn.Module):
    def forward(self, z):
        return z.sum(0, keepdim=True)  # (1, d) whatever N


class Centering(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, z):
        return self.fc(z - z.mean(0))  # each output depends on the whole batch


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, z):
        return self.fc(z)[:, 0]  # (N,)


class NoLinear(nn.Module):
    def forward(self, z):
        return torch.sin(z)


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (lambda: "not a module", {"dim": 2}, r"^module: expected a torch.nn.Module"),
        (Summing, {"dim": 2}, r"^module: a decoder must map \(N, d\)"),
        (Flat, {}, r"^module: a decoder must map \(N, d\)"),
        (Centering, {}, r"^module: the output of a point depends on the other points"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh()), {"dim": 2}, r"^module: calling the decoder"),
        (NoLinear, {}, r"^dim: cannot infer the latent dimension"),
        (
            lambda: nn.Sequential(nn.Linear(2, 2), nn.Dropout()),
            {"likelihood": "poisson"},
            r"^likelihood: expected one of",
        ),
        (
            lambda: Probabilities(nn.Linear(2, 3)),
            {"likelihood": "bernoulli", "log_sigma": nn.Linear(2, 3)},
            r"^log_sigma: a σ head belongs to a Gaussian decoder",
        ),
        (lambda: Probabilities(nn.Linear(2, 3)), {"max_points": 0}, r"^max_points: expected a positive integer"),
    ],
)
def test_bad_modules(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchPullbackMetric(make(), **kwargs)


def test_native_path_checks_dim():
    with pytest.raises(ValueError, match=r"^dim: the module's first layer takes 2 inputs, not 3"):
        PullbackMetric.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), dim=3)
    assert PullbackMetric.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), dim=2).dim == 2


def test_bernoulli_needs_probabilities():
    torch.manual_seed(0)
    metric = PullbackMetric.from_torch(Probabilities(nn.Linear(2, 3)), likelihood="bernoulli")  # not in [0, 1]
    with pytest.raises(ValueError, match=r"^module: likelihood='bernoulli' needs probabilities in \[0, 1\]"):
        metric(np.full((2, 2), 5.0))
    with pytest.raises(ValueError, match=r"^activations: likelihood='bernoulli' needs a mean network that ends"):
        PullbackMetric([np.ones((3, 2))], [np.zeros(3)], ["tanh"], likelihood="bernoulli")
    with pytest.raises(ValueError, match=r"^likelihood: expected one of"):
        PullbackMetric([np.ones((3, 2))], [np.zeros(3)], ["sigmoid"], likelihood="Bernoulli")


class SquareRoot(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, z):
        return torch.sqrt(50.0 - z[:, :1]) * self.fc(z)  # NaN for z_0 > 50


def test_non_finite_outputs_are_errors():
    metric = PullbackMetric.from_torch(SquareRoot())
    z = np.array([[100.0, 0.0]])
    for call in (metric.metric, metric.derivative, metric.decode, lambda x: metric.quadratic_form(x, x, grad=True)):
        with pytest.raises(ValueError, match=r"^module: returned NaN or Inf"):
            call(z)


def test_training_mode_batchnorm_warns_and_uses_eval_statistics(rng):
    module = conv_decoder()
    module.train()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.warns(UserWarning, match=r"^module: in training mode with \['BatchNorm2d'\] layers"):
        metric = PullbackMetric.from_torch(module)
    z = rng.normal(size=(3, 2))
    np.testing.assert_array_equal(metric(z), PullbackMetric.from_torch(module.eval())(z))
    module.train()
    metric(z)
    assert module.training and module.up[1].training
    for k, v in module.state_dict().items():  # running statistics and weights unchanged, still float32
        assert torch.equal(v, state[k]) and v.dtype == state[k].dtype


def test_float32_module_is_computed_in_float64(rng):
    torch.manual_seed(2)
    seq32 = Probabilities(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3)))
    metric = PullbackMetric.from_torch(seq32)
    z = rng.normal(size=(4, 2))
    jac = autograd_jacobians(seq32, z)  # float64 copy: agrees to rounding, not float32 accuracy
    np.testing.assert_allclose(metric(z), np.einsum("nia,nib->nab", jac, jac), rtol=1e-13)
    assert next(seq32.parameters()).dtype == torch.float32


# -- pythae models ----------------------------------------------------------------------------------


def pythae_vae(tmp_path, config_cls, decoder=None, **config):
    pytest.importorskip("pythae")
    from pythae import models

    torch.manual_seed(0)
    cfg = getattr(models, config_cls)(input_dim=(1, 8, 8), latent_dim=2, **config)
    model = getattr(models, config_cls.replace("Config", ""))(cfg, decoder=decoder)
    folder = tmp_path / config_cls
    model.save(str(folder))
    return model.eval(), folder


def test_from_pythae_default_mlp_decoder_bce(tmp_path, rng):
    model, folder = pythae_vae(tmp_path, "VAEConfig", reconstruction_loss="bce")
    metric = PullbackMetric.from_pythae(folder)
    assert hasattr(metric, "_kernel") and metric.likelihood == "bernoulli" and metric.dim == 2
    z = rng.normal(size=(4, 2))
    decoder = _Reconstruction(model.decoder)
    jac = autograd_jacobians(decoder, z)
    with torch.no_grad():
        p = copy.deepcopy(decoder).double()(torch.from_numpy(z)).reshape(4, -1).numpy()
    expected = np.einsum("nia,ni,nib->nab", jac, 1 / (p * (1 - p)), jac)
    np.testing.assert_allclose(metric(z), expected, rtol=1e-9, atol=0)  # p(1 − p) of float64 p ≥ 1e-4 here


class _Reconstruction(nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        return self.decoder(z)["reconstruction"]


def pythae_conv_decoder():
    """A custom pythae decoder (a BaseDecoder returning a ModelOutput) around the conv decoder."""
    pytest.importorskip("pythae")
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder

    class PythaeConvDecoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = conv_decoder()

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    return PythaeConvDecoder()


@pytest.mark.parametrize(
    "config_cls, loss, likelihood", [("BetaVAEConfig", "mse", "gaussian"), ("IWAEConfig", "mse", "gaussian")]
)
def test_from_pythae_custom_conv_decoder(tmp_path, rng, config_cls, loss, likelihood):
    model, folder = pythae_vae(tmp_path, config_cls, decoder=pythae_conv_decoder(), reconstruction_loss=loss)
    metric = PullbackMetric.from_pythae(folder)
    assert isinstance(metric, TorchPullbackMetric) and metric.likelihood == likelihood
    z = rng.normal(size=(3, 2))
    jac = autograd_jacobians(model.decoder.net, z)
    np.testing.assert_allclose(metric(z), np.einsum("nia,nib->nab", jac, jac), rtol=1e-10, atol=0)


def test_from_pythae_rejects_unsupported_folders(tmp_path):
    pytest.importorskip("pythae")
    from pythae.models import SVAE, SVAEConfig

    SVAE(SVAEConfig(input_dim=(4,), latent_dim=2)).save(str(tmp_path / "svae"))
    with pytest.raises(ValueError, match=r"^folder: pythae model 'SVAEConfig' is not supported"):
        PullbackMetric.from_pythae(tmp_path / "svae")
    with pytest.raises(ValueError, match=r"^folder: .* is not a pythae model folder"):
        PullbackMetric.from_pythae(tmp_path)
    with pytest.raises(ValueError, match=r"^folder: expected the path"):
        PullbackMetric.from_pythae(3)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_config.json").write_text('{"name": "VAEConfig", "latent_dim": 2}')
    with pytest.raises(ValueError, match=r"^folder: pythae cannot load"):
        PullbackMetric.from_pythae(tmp_path / "broken")


# -- the decoded energy (the solver's default energy for torch decoders) --------------------------


class StereographicSphere(nn.Module):
    """The unit sphere through the inverse stereographic projection: G = 4 I / (1 + |z|²)². The
    torch twin of the decoder manifolds.to_sphere."""

    def forward(self, z):
        r2 = (z**2).sum(1, keepdim=True)
        return torch.cat([2 * z, r2 - 1], 1) / (1 + r2)


def node_gradient(fn, x, h):
    """Central differences of the scalar fn at each entry of the nodes x (n, d), steps h and h/2."""

    def central(step):
        out = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            e = np.zeros_like(x)
            e[idx] = step
            out[idx] = (fn(x + e) - fn(x - e)) / (2 * step)
        return out

    return central(h), central(h / 2)


def test_decoded_energies_against_numpy_and_central_differences(conv, rng):
    _, metric = conv
    counts = [2, 5, 9]
    z = rng.normal(size=(sum(counts), 2))
    energies, grad = metric.decoded_energies(z, counts)
    assert energies.shape == (3,) and grad.shape == z.shape
    decoded = metric.decode(z)  # (N, 64)
    first = np.cumsum([0] + counts[:-1])
    expected = [(c - 1) * np.sum(np.diff(decoded[f : f + c], axis=0) ** 2) for f, c in zip(first, counts)]
    # Same float64 decoder; the sums of 64 (c − 1) positive squares only differ in their order.
    np.testing.assert_allclose(energies, expected, rtol=10 * 64 * max(counts) * EPS, atol=0)
    for f, c in zip(first, counts):  # each curve's gradient is its own energy's
        nodes = z[f : f + c]
        coarse, fine = node_gradient(lambda x: metric.decoded_energies(x, [c])[0][0], nodes, 1e-3)
        rounding = 10 * EPS * np.abs(energies).max() / 5e-4
        assert np.abs(grad[f : f + c] - fine).max() <= np.abs(coarse - fine).max() + rounding
        assert np.abs(grad[f : f + c]).max() > 100 * (np.abs(coarse - fine).max() + rounding)


@pytest.mark.parametrize("kind", ["gaussian", "sigma", "bernoulli_logits", "bernoulli_probabilities"])
def test_decoded_embedding_pulls_back_to_the_metric(kind, bernoulli_mlp, rng):
    """A chord of length δ has squared decoded length δᵀG(midpoint)δ (1 + O(δ²)): the embedding
    behind the decoded energy is the one whose JᵀJ is the metric, for every likelihood."""
    torch.manual_seed(2)
    trunk = nn.Sequential(nn.Linear(2, 6), nn.Tanh())
    metric = {
        "gaussian": lambda: TorchPullbackMetric(nn.Sequential(trunk, nn.Linear(6, 4)), dim=2),
        "sigma": lambda: TorchPullbackMetric(nn.Linear(6, 4), trunk=trunk, log_sigma=nn.Linear(6, 3), dim=2),
        "bernoulli_logits": lambda: TorchPullbackMetric(bernoulli_mlp, likelihood="bernoulli"),
        "bernoulli_probabilities": lambda: PullbackMetric.from_torch(
            Probabilities(bernoulli_mlp), likelihood="bernoulli"
        ),
    }[kind]()
    z, v = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    delta = 1e-4
    for a, dv in zip(z, v):
        energy, _ = metric.decoded_energies(np.stack([a - delta * dv, a + delta * dv]), [2])
        q = metric.quadratic_form(a, 2 * delta * dv)
        assert energy[0] == pytest.approx(q, rel=1e-6)  # O(δ²) ~ 1e-8 relative, rounding ~1e-8


@pytest.mark.parametrize("path", ["torch", "callable"])
def test_decoded_geodesics_are_great_circles(path):
    if path == "torch":
        metric = TorchPullbackMetric(StereographicSphere(), dim=2)
    else:
        metric = PullbackMetric.from_callable(to_sphere, 2)
    assert default_quadrature(metric) == "decoded"
    assert default_quadrature(lg.datasets.load_digits_rhvae().metric) == "simpson"
    starts = np.array([[-0.8, 0.3], [0.0, 0.0], [1.5, -0.4]])
    ends = np.array([[1.1, 0.9], [0.7, -0.2], [-0.3, 2.0]])
    tol = 1e-8
    batch = lg.geodesics(metric, starts, ends, tol=tol, progress=False)
    assert all(batch.converged)
    # tol bounds the estimated error; a factor 10 for the estimate itself
    np.testing.assert_allclose(batch.length, sphere_distance(starts, ends), rtol=10 * tol, atol=0)
    simpson = lg.geodesics(metric, starts, ends, tol=tol, progress=False, quadrature="simpson")
    np.testing.assert_allclose(simpson.length, batch.length, rtol=20 * tol, atol=0)


def test_decoded_conv_geodesics_match_simpson_and_do_not_depend_on_the_batching(conv, rng):
    _, metric = conv
    starts, ends = rng.uniform(-1.5, 1.5, size=(2, 5, 2))
    tol = 1e-6
    shared = lg.geodesics(metric, starts, ends, tol=tol, progress=False)
    alone = lg.geodesics(metric, starts, ends, tol=tol, progress=False, pairs_per_call=1)
    simpson = lg.geodesics(metric, starts, ends, tol=tol, progress=False, quadrature="simpson")
    assert all(shared.converged) and all(alone.converged) and all(simpson.converged)
    # torch may pick other kernels for other batch sizes: equal within the solver's tolerance
    np.testing.assert_allclose(shared.length, alone.length, rtol=20 * tol, atol=0)
    np.testing.assert_allclose(shared.length, simpson.length, rtol=20 * tol, atol=0)
    assert np.all(shared.length < shared.straight_length)


def test_decoded_energy_failures_stay_with_their_pair():
    metric = PullbackMetric.from_torch(SquareRoot())  # NaN for z_0 > 50
    starts = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    ends = np.array([[1.0, 1.0], [100.0, 0.0], [2.0, -1.0]])
    with pytest.warns(RuntimeWarning, match="pair 1"):
        batch = lg.geodesics(metric, starts, ends, tol=1e-6, progress=False)
    assert list(batch.converged) == [True, False, True]
    assert batch.status[1] == "metric_error" and "NaN" in batch.messages[1]
    alone = lg.geodesics(metric, starts[[0, 2]], ends[[0, 2]], tol=1e-6, progress=False)
    np.testing.assert_allclose(batch.length[[0, 2]], alone.length, rtol=1e-5, atol=0)


def test_smooth_sees_kinked_layers(conv):
    _, metric = conv
    assert metric.smooth  # tanh, softplus, batch norm, convolutions
    for kinked in (nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(alpha=0.5), nn.Hardtanh(), nn.SELU()):
        assert not TorchPullbackMetric(nn.Sequential(nn.Linear(2, 3), kinked, nn.Linear(3, 4))).smooth
    assert TorchPullbackMetric(nn.Sequential(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 4))).smooth  # α = 1: C¹
    trunk = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert not TorchPullbackMetric(nn.Linear(3, 4), trunk=trunk, dim=2).smooth


def test_decoded_energy_bad_input(conv, rng):
    _, metric = conv
    z = rng.normal(size=(5, 2))
    for counts in ([2, 2], [5, 0], [[5]], [2.5, 2.5], [1, 4]):
        with pytest.raises(ValueError, match=r"^counts: "):
            metric.decoded_energies(z, counts)
    with pytest.raises(ValueError, match=r"^z: "):
        metric.decoded_energies(np.full((2, 2), np.nan), [2])
    with pytest.raises(ValueError, match=r"^z: empty"):
        metric.decoded_energies(np.zeros((0, 2)), [])
    rhvae = lg.datasets.load_digits_rhvae().metric
    with pytest.raises(ValueError, match=r"^quadrature: 'decoded' needs a decoder"):
        lg.geodesic(rhvae, np.zeros(2), np.ones(2), quadrature="decoded")
    with pytest.raises(ValueError, match=r"^quadrature: "):
        lg.geodesic(metric, np.zeros(2), np.ones(2), quadrature="trapezoid")


# -- torch stays optional -------------------------------------------------------------------------------


def test_non_torch_paths_never_import_torch():
    code = """
import sys
sys.modules['torch'] = None  # any `import torch` now raises ImportError
import numpy as np
import latentgeo as lg
m = lg.PullbackMetric([np.ones((3, 2))], [np.zeros(3)], ['sigmoid'], likelihood='bernoulli')
assert m(np.zeros((2, 2))).shape == (2, 2, 2)
assert lg.geodesic(m, np.zeros(2), np.ones(2)).converged
data = lg.datasets.load_digits_rhvae()
assert data.decoder.decode(data.latent[:3]).shape == (3, 64)
assert data.decoder(data.latent[:3]).shape == (3, 2, 2)
try:
    lg.PullbackMetric.from_pythae('.')
except ValueError:
    pass
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


class _SinDecoder(nn.Module):
    """z ↦ sin(W z + b): a module outside the C++ core (the torch path)."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(2, 3)

    def forward(self, z):
        return torch.sin(self.first(z))


def test_modules_without_data_or_on_several_devices_are_refused():
    with pytest.raises(ValueError, match=r"^module: on the 'meta' device"):
        PullbackMetric.from_torch(_SinDecoder().to("meta"), dim=2)
    split = _SinDecoder()
    split.second = nn.Linear(3, 3, device="meta")  # a parameter elsewhere, even if forward skips it
    with pytest.raises(ValueError, match=r"^module: parameters and buffers on several devices \['cpu', 'meta'\]"):
        PullbackMetric.from_torch(split, dim=2)


def test_a_float32_cpu_module_stays_as_it_is_and_the_metric_runs_on_the_cpu():
    module = _SinDecoder().float()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    metric = PullbackMetric.from_torch(module, dim=2)
    z = np.array([[0.3, -0.2]])
    metric.metric(z)
    for key, value in module.state_dict().items():
        assert value.dtype == torch.float32 and value.device.type == "cpu"
        assert torch.equal(value, before[key]), key
    # G = Jᵀ J with J = diag(cos(W z + b)) W, from the float64 copy of the weights
    w = module.first.weight.detach().double().numpy()
    b = module.first.bias.detach().double().numpy()
    jac = np.cos(w @ z[0] + b)[:, None] * w
    np.testing.assert_allclose(metric.metric(z)[0], jac.T @ jac, rtol=1e-12, atol=1e-14)
