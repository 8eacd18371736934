"""Pullback metrics: closed forms (inverse stereographic sphere, linear and Gaussian decoders),
finite differences for random MLPs, torch import, pickling and bad input."""

from __future__ import annotations

import pickle

import latentgeo as lg
import numpy as np
import pytest
from conftest import EPS, SAFETY, assert_within, sum_tol
from latentgeo import _core
from latentgeo.metrics.pullback import ACTIVATIONS, CallablePullbackMetric, PullbackMetric
from manifolds import to_sphere


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def random_mlp(rng, widths, activations, scale=0.8):
    weights = [scale * rng.normal(size=(o, i)) for i, o in zip(widths[:-1], widths[1:])]
    biases = [0.3 * rng.normal(size=o) for o in widths[1:]]
    return weights, biases, list(activations)


def fd_jacobian(fn, z, h=1e-6):
    """Central differences of fn: (N, d) -> (N, D); result (N, D, d)."""
    return np.stack([(fn(z + h * e) - fn(z - h * e)) / (2 * h) for e in np.eye(z.shape[1])], axis=-1)


def outputs(metric, z):
    out = metric.decode(z)
    return np.concatenate(out, axis=1) if isinstance(out, tuple) else out


# -- closed forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_sphere_callable_closed_form(rng, dim):
    metric = PullbackMetric.from_callable(to_sphere, dim)
    z = rng.normal(size=(20, dim))
    r2 = np.sum(z**2, axis=1)
    expected = (4 / (1 + r2) ** 2)[:, None, None] * np.eye(dim)
    np.testing.assert_allclose(metric(z), expected, atol=1e-8)
    # ∂G_ab/∂z_k = -16 z_k / (1+|z|²)³ δ_ab
    d_expected = np.einsum("n,ab,nk->nabk", -16 / (1 + r2) ** 3, np.eye(dim), z)
    np.testing.assert_allclose(metric.derivative(z), d_expected, atol=1e-6)
    v = rng.normal(size=(20, dim))
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    np.testing.assert_allclose(q, 4 / (1 + r2) ** 2 * np.sum(v**2, axis=1), rtol=1e-7)
    np.testing.assert_allclose(dqdz, np.einsum("n,nk->nk", -16 / (1 + r2) ** 3 * np.sum(v**2, axis=1), z), atol=1e-6)
    assert not hasattr(metric, "_kernel")


def test_sphere_length_of_great_circle():
    # The segment z = (s, 0), s ∈ [-1, 1], maps onto half a great circle, from (-1, 0, 0) through
    # the south pole to (1, 0, 0): length π.
    metric = PullbackMetric.from_callable(to_sphere, 2)
    t = np.linspace(0, 1, 2001)
    points = np.stack([2 * t - 1, np.zeros_like(t)], axis=1)
    velocities = np.tile([2.0, 0.0], (len(t), 1))
    assert lg.curve_length(metric, points, velocities, t) == pytest.approx(np.pi, rel=1e-6)


def test_linear_decoder_is_constant(rng):
    W, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    metric = PullbackMetric([W], [b], ["identity"])
    z, v = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    # Sums of D = 5 (and d = 3) products, in the core's order and BLAS's: equal up to their rounding.
    wtw, abs_wtw = W.T @ W, np.abs(W).T @ np.abs(W)
    assert_within(metric(z), np.broadcast_to(wtw, (30, 3, 3)), sum_tol(abs_wtw, 5))
    np.testing.assert_array_equal(metric.derivative(z), 0.0)  # no curvature term at all: exactly 0
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    abs_v = np.abs(v)
    q_magnitude = np.einsum("na,ab,nb->n", abs_v, abs_wtw, abs_v)
    assert_within(q, np.einsum("na,ab,nb->n", v, wtw, v), sum_tol(q_magnitude, 5 + 9))
    np.testing.assert_array_equal(dqdz, 0.0)
    assert_within(dqdv, 2 * v @ wtw, sum_tol(2 * abs_v @ abs_wtw, 5 + 3))


def test_elementwise_tanh_closed_form(rng):
    # f(z) = tanh(z): G = diag((1 - tanh² z)²), ∂G_aa/∂z_a = -4 tanh(z_a)(1 - tanh² z_a)².
    metric = PullbackMetric([np.eye(2)], [np.zeros(2)], ["tanh"])
    z = rng.normal(size=(10, 2))
    s = 1 - np.tanh(z) ** 2
    # numpy's tanh (SIMD) and the core's (libm) may differ by a few ulp: |Δs| ≤ 2|Δtanh| + eps,
    # so |Δ(s²)| ≤ 2s(2·4 + 1) eps and |Δ(tanh s²)| ≤ (1 + 4·9) eps for |tanh|, s ≤ 1.
    assert_within(metric(z), np.einsum("na,ab->nab", s**2, np.eye(2)), SAFETY * 18 * EPS * s.max())
    dG = np.zeros((10, 2, 2, 2))
    for a in range(2):
        dG[:, a, a, a] = -4 * np.tanh(z[:, a]) * s[:, a] ** 2
    assert_within(metric.derivative(z), dG, SAFETY * 4 * 37 * EPS)


def test_gaussian_linear_heads_closed_form(rng):
    # μ = W z + b, log σ = A z + c:  G = WᵀW + Aᵀ diag(σ²) A.
    W, b, A, c = rng.normal(size=(4, 2)), rng.normal(size=4), 0.5 * rng.normal(size=(3, 2)), rng.normal(size=3)
    metric = PullbackMetric([W], [b], ["identity"], log_sigma=([A], [c], ["identity"]))
    z = rng.normal(size=(8, 2))
    sigma = np.exp(z @ A.T + c)
    expected = W.T @ W + np.einsum("ia,ni,ib->nab", A, sigma**2, A)
    # σ = exp(Az + c): the argument rounds by ~3 eps |A||z| + |c| (in another order here), and exp
    # by a few ulp more; G then sums D = 7 products.
    arg_mag = np.abs(z) @ np.abs(A).T + np.abs(c)
    sigma_rel = SAFETY * (3 * arg_mag + 4) * EPS
    abs_g = np.abs(W).T @ np.abs(W) + np.einsum("ia,ni,ib->nab", np.abs(A), sigma**2, np.abs(A))
    g_tol = sum_tol(abs_g, 7) + np.einsum("ia,ni,ib->nab", np.abs(A), 2 * sigma_rel * sigma**2, np.abs(A))
    assert_within(metric(z), expected, g_tol)
    mean, sig = metric.decode(z)
    assert_within(mean, z @ W.T + b, sum_tol(np.abs(z) @ np.abs(W).T + np.abs(b), 3))
    assert_within(sig, sigma, sigma_rel * sigma)
    assert metric.gaussian and metric.output_dim == 7


# -- random MLPs against finite differences ----------------------------------------------------

CONFIGS = {
    **{act: dict(widths=[3, 9, 6, 5], activations=[act, act, "identity"]) for act in ACTIVATIONS if act != "exp"},
    "mixed": dict(widths=[2, 8, 7, 6, 4], activations=["tanh", ("softplus", 2.0), ("elu", 0.5), "sigmoid"]),
}


def build(rng, config, gaussian=False, trunk=False):
    dim = config["widths"][0]
    extra = {}
    widths = list(config["widths"])
    if trunk:
        extra["trunk"] = random_mlp(rng, [dim, 6], ["tanh"])
        widths[0] = 6
    if gaussian:
        extra["log_sigma"] = random_mlp(rng, [widths[0], 5, 3], ["softplus", "identity"], scale=0.4)
    return PullbackMetric(*random_mlp(rng, widths, config["activations"]), **extra), dim


@pytest.mark.parametrize(
    "variant", [dict(), dict(gaussian=True), dict(gaussian=True, trunk=True)], ids=["plain", "gaussian", "trunk"]
)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_mlp_against_finite_differences(rng, name, variant):
    metric, dim = build(rng, CONFIGS[name], **variant)
    z, v = rng.normal(size=(12, dim)), rng.normal(size=(12, dim))
    jac = metric.jacobian(z)
    np.testing.assert_allclose(jac, fd_jacobian(lambda x: outputs(metric, x), z), atol=1e-8)
    G = metric(z)
    # G = JᵀJ, q = |Jv|² = vᵀGv and dq/dv = 2Gv by the core and by einsum: sums of D products in
    # other orders, equal up to their rounding (the magnitudes |J|ᵀ|J|, |v|ᵀ|G||v|, |G||v|).
    n_out = jac.shape[1]
    abs_g = np.einsum("nia,nib->nab", np.abs(jac), np.abs(jac))
    assert_within(G, np.einsum("nia,nib->nab", jac, jac), sum_tol(abs_g, n_out))
    np.testing.assert_allclose(metric.derivative(z), fd_jacobian(metric.metric, z, h=1e-5), atol=1e-7)
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    q_tol = sum_tol(np.einsum("na,nab,nb->n", np.abs(v), abs_g, np.abs(v)), n_out + dim * dim)
    assert_within(q, np.einsum("na,nab,nb->n", v, G, v), q_tol)
    assert_within(metric.quadratic_form(z, v), q, q_tol)  # the gradient's code path
    qfun = lambda x: metric.quadratic_form(x, v)[:, None]  # noqa: E731
    np.testing.assert_allclose(dqdz, fd_jacobian(qfun, z, h=1e-5)[:, 0, :], atol=1e-7)
    assert_within(
        dqdv, 2 * np.einsum("nab,nb->na", G, v), sum_tol(2 * np.einsum("nab,nb->na", abs_g, np.abs(v)), n_out + dim)
    )


def embedding(metric, z):
    """e with G = JᵀJ: the outputs (σ included), for a Bernoulli decoder s = 2 arcsin √p."""
    out = outputs(metric, z)
    return 2 * np.arcsin(np.sqrt(out)) if metric.likelihood == "bernoulli" else out


@pytest.mark.parametrize("variant", [dict(), dict(gaussian=True, trunk=True), "bernoulli"])
def test_decoded_energies_against_numpy_and_central_differences(rng, variant):
    if variant == "bernoulli":
        metric, dim = PullbackMetric(*random_mlp(rng, [3, 9, 6], ["tanh", "sigmoid"]), likelihood="bernoulli"), 3
    else:
        metric, dim = build(rng, CONFIGS["mixed"], **variant)
    counts = [2, 4, 6]
    z = rng.normal(size=(sum(counts), dim))
    energies, grad = metric.decoded_energies(z, counts)
    first = np.cumsum([0] + counts[:-1])
    e = embedding(metric, z)
    expected = [(c - 1) * np.sum(np.diff(e[f : f + c], axis=0) ** 2) for f, c in zip(first, counts)]
    # the embedding from decode (arcsin of p for Bernoulli: ~1e-15 relative) vs the core's own
    np.testing.assert_allclose(energies, expected, rtol=1e-11, atol=0)
    for f, c in zip(first, counts):
        nodes = z[f : f + c]

        def energy(x, c=c):
            return metric.decoded_energies(x.reshape(c, dim), [c])[0][0]

        flat = nodes.ravel()
        fd = fd_jacobian(lambda x: np.array([[energy(row)] for row in x]), flat[None], h=1e-5)[0, 0]
        np.testing.assert_allclose(grad[f : f + c].ravel(), fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


def test_smooth_says_whether_g_can_jump(rng):
    from latentgeo.solvers.options import SOLVER_OPTIONS, solver_options

    smooth = {name: build(rng, config)[0].smooth for name, config in CONFIGS.items()}
    assert smooth == {name: name not in ("relu", "mixed") for name in CONFIGS}  # "mixed": ELU with α = 0.5
    elu = PullbackMetric(*random_mlp(rng, [2, 4, 3], [("elu", 0.5), "identity"]))
    assert not elu.smooth and PullbackMetric(*random_mlp(rng, [2, 4, 3], [("elu", 1.0), "identity"])).smooth
    assert not lg.datasets.load_digits_rhvae().decoder.smooth  # pythae's default decoder: ReLU
    assert not lg.ScaledMetric(elu, 3.0).smooth and lg.ScaledMetric(lg.ConstantMetric(np.eye(2)), 2.0).smooth

    def ratio(metric, smooth=None):
        return solver_options(None, None, None, dict(SOLVER_OPTIONS, smooth=smooth), metric).max_ratio

    assert (ratio(elu), ratio(elu, True), ratio(smooth_tanh := build(rng, CONFIGS["tanh"])[0])) == (2.0, 16.0, 16.0)
    assert ratio(smooth_tanh, False) == 2.0
    with pytest.raises(ValueError, match=r"^smooth: "):
        lg.geodesic(elu, np.zeros(2), np.ones(2), smooth="no")


def test_decoded_polylines_that_skip_their_curve_are_solved_again_with_simpson(rng):
    """A random tanh MLP maps distant latent points close together: with the decoded energy some
    nodes wander where the chords are short but the curve between them is long (measured energy
    5-150x the polyline's). Those pairs are solved again with Simpson's energy."""
    from latentgeo.solvers.options import SOLVER_OPTIONS, solver_options

    metric, dim = build(rng, CONFIGS["tanh"])
    starts, ends = rng.normal(size=(2, 6, dim))
    tol = 1e-6
    decoded = lg.geodesics(metric, starts, ends, tol=tol, progress=False)
    simpson = lg.geodesics(metric, starts, ends, tol=tol, progress=False, quadrature="simpson")
    both = np.array(decoded.converged) & np.array(simpson.converged)
    assert both.sum() >= 4
    np.testing.assert_allclose(decoded.length[both], simpson.length[both], rtol=20 * tol)
    options = solver_options(None, tol, None, dict(SOLVER_OPTIONS), metric)
    assert options.quadrature == "decoded"
    out = _core.geodesic_batch(metric, metric._kernel, 1.0, starts, ends, np.zeros((0, dim)), 0, options, 1)
    restarted = [any(b[0] <= a[0] for a, b in zip(pair, pair[1:])) for pair in out["levels"]]
    assert any(restarted) and not all(restarted)  # the levels start again at 8 segments for those


def test_scaled_decoder_keeps_the_decoded_energy(rng):
    from latentgeo.solvers.options import default_quadrature

    metric, dim = build(rng, CONFIGS["tanh"])
    scaled = lg.ScaledMetric(metric, 4.0)
    assert default_quadrature(scaled) == "decoded"
    assert default_quadrature(lg.ScaledMetric(lg.ConstantMetric(np.eye(dim)), 2.0)) == "simpson"
    z = rng.normal(size=(5, dim))
    e, g = metric.decoded_energies(z, [2, 3])
    e4, g4 = scaled.decoded_energies(z, [2, 3])
    np.testing.assert_array_equal(e4, 4.0 * e)
    np.testing.assert_array_equal(g4, 4.0 * g)
    starts, ends = rng.normal(size=(2, 3, dim)) * 0.5
    tol = 1e-8
    base = lg.geodesics(metric, starts, ends, tol=tol, progress=False)
    four = lg.geodesics(scaled, starts, ends, tol=tol, progress=False)
    assert all(base.converged) and all(four.converged)
    np.testing.assert_allclose(four.length, 2.0 * base.length, rtol=10 * tol)  # lengths scale by √4


def test_decoded_geodesics_do_not_depend_on_threads(rng):
    metric, dim = build(rng, CONFIGS["tanh"])
    starts, ends = rng.normal(size=(2, 6, dim))
    one = lg.geodesics(metric, starts, ends, tol=1e-6, n_threads=1, progress=False)
    two = lg.geodesics(metric, starts, ends, tol=1e-6, n_threads=2, progress=False)
    np.testing.assert_array_equal(one.length, two.length)
    np.testing.assert_array_equal(one.status, two.status)
    for a, b in zip(one.node_list, two.node_list):
        np.testing.assert_array_equal(a, b)


def test_a_linear_decoder_of_high_dimension_gives_the_straight_line_with_either_preconditioner(rng):
    # e(z) = W z: G = WᵀW is constant, the geodesic is the segment, of length |W (b − a)|. At d = 80
    # "auto" takes the chord preconditioner (G along each segment), which must not change the answer.
    dim, tol = 80, 1e-8
    w = rng.normal(size=(100, dim)) / np.sqrt(dim)
    metric = PullbackMetric([w], [np.zeros(100)], ["identity"])
    starts, ends = rng.normal(size=(2, 3, dim))
    exact = np.linalg.norm((ends - starts) @ w.T, axis=1)
    for preconditioner in ("auto", "chord", "metric"):
        batch = lg.geodesics(metric, starts, ends, tol=tol, preconditioner=preconditioner, progress=False)
        assert all(batch.converged), (preconditioner, batch.status)
        np.testing.assert_allclose(batch.length, exact, rtol=10 * tol)


def test_the_chord_preconditioner_finds_the_metric_preconditioners_geodesics(rng):
    metric, dim = build(rng, CONFIGS["tanh"])
    starts, ends = 0.5 * rng.normal(size=(2, 4, dim))
    tol = 1e-7  # the chord preconditioner ignores G's anisotropy at d = 3: more iterations, same curve
    options = dict(tol=tol, max_iter=2000, progress=False)
    by = {p: lg.geodesics(metric, starts, ends, preconditioner=p, **options) for p in ("metric", "chord")}
    assert all(by["metric"].converged) and all(by["chord"].converged)
    # two solves of one problem, each within ~tol of the true length (Richardson's estimate)
    np.testing.assert_allclose(by["chord"].length, by["metric"].length, rtol=10 * tol)


def test_auto_leaves_metrics_without_a_decoder_to_the_metric_preconditioner(rng):
    from latentgeo.solvers.options import SOLVER_OPTIONS, solver_options

    dim = 80
    dense = lg.DenseMetric(lambda z: np.broadcast_to(np.eye(dim), (len(z), dim, dim)), dim=dim)
    decoder = PullbackMetric([rng.normal(size=(90, dim))], [np.zeros(90)], ["tanh"])
    python_decoders = {f"callable d={d}": PullbackMetric.from_callable(np.tanh, d) for d in (2, 3)}
    chosen = {
        name: solver_options(None, None, None, dict(SOLVER_OPTIONS), m).preconditioner
        for name, m in (("dense", dense), ("decoder", decoder), *python_decoders.items())
    }
    # the core picks by dimension for C++ decoders; a Python decoder's G costs d decoder passes
    assert chosen == {"dense": "metric", "decoder": "auto", "callable d=2": "metric", "callable d=3": "chord"}


def test_the_preconditioner_option_is_checked(rng):
    metric, dim = build(rng, CONFIGS["tanh"])
    with pytest.raises(ValueError, match=r"^preconditioner: "):
        lg.geodesic(metric, np.zeros(dim), np.ones(dim), preconditioner="jacobi")


def test_decoded_energy_bad_input(rng):
    metric, dim = build(rng, CONFIGS["tanh"])
    z = rng.normal(size=(5, dim))
    for counts in ([2, 2], [5, 0], [[5]], [2.5, 2.5], [1, 4]):
        with pytest.raises(ValueError, match=r"^counts: "):
            metric.decoded_energies(z, counts)
    with pytest.raises(ValueError, match=r"^z: "):
        metric.decoded_energies(z[:, :1], [5])


def test_bernoulli_mlp_against_finite_differences(rng):
    # Fisher–Rao pullback of the probabilities p = sigmoid(logits): the derivatives of the core's
    # `bernoulli` activation (s = 2 arcsin √p) against central differences of G and q.
    metric = PullbackMetric(*random_mlp(rng, [2, 9, 6], ["tanh", "sigmoid"], scale=2.0), likelihood="bernoulli")
    z, v = rng.normal(size=(12, 2)), rng.normal(size=(12, 2))
    p = metric.decode(z)
    jac_p = fd_jacobian(metric.decode, z)
    np.testing.assert_allclose(metric(z), np.einsum("nia,ni,nib->nab", jac_p, 1 / (p * (1 - p)), jac_p), rtol=1e-7)
    np.testing.assert_allclose(metric.derivative(z), fd_jacobian(metric.metric, z, h=1e-5), atol=1e-7)
    _, dqdz, _ = metric.quadratic_form(z, v, grad=True)
    qfun = lambda x: metric.quadratic_form(x, v)[:, None]  # noqa: E731
    np.testing.assert_allclose(dqdz, fd_jacobian(qfun, z, h=1e-5)[:, 0, :], atol=1e-7)


def test_results_do_not_depend_on_threads(rng):
    metric, dim = build(rng, CONFIGS["mixed"], gaussian=True)
    z, v = rng.normal(size=(500, dim)), rng.normal(size=(500, dim))
    for fn in (metric.metric, metric.derivative, metric.jacobian):
        np.testing.assert_array_equal(fn(z, n_threads=1), fn(z, n_threads=2))
    one, two = metric.quadratic_form(z, v, True, 1), metric.quadratic_form(z, v, True, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_single_point_and_kernel(rng):
    metric, dim = build(rng, CONFIGS["tanh"])
    z = rng.normal(size=dim)
    assert metric(z).shape == (dim, dim) and metric.derivative(z).shape == (dim, dim, dim)
    np.testing.assert_allclose(metric(z), metric(z[None])[0])
    assert isinstance(metric._kernel, _core.PullbackKernel) and metric._kernel.dim == dim


def test_pickle_roundtrip(rng):
    metric, dim = build(rng, CONFIGS["mixed"], gaussian=True, trunk=True)
    clone = pickle.loads(pickle.dumps(metric))
    z = rng.normal(size=(5, dim))
    np.testing.assert_array_equal(clone(z), metric(z))
    sphere = pickle.loads(pickle.dumps(PullbackMetric.from_callable(to_sphere, 2)))
    np.testing.assert_allclose(sphere(z[:, :2]), PullbackMetric.from_callable(to_sphere, 2)(z[:, :2]))


def test_callable_gaussian_matches_mlp(rng):
    metric, dim = build(rng, CONFIGS["softplus"], gaussian=True)
    mean = lambda z: metric.decode(z)[0]  # noqa: E731
    log_sigma = lambda z: np.log(metric.decode(z)[1])  # noqa: E731
    numeric = PullbackMetric.from_callable(mean, dim, log_sigma=log_sigma)
    assert isinstance(numeric, CallablePullbackMetric) and numeric.gaussian
    z = rng.normal(size=(6, dim))
    np.testing.assert_allclose(numeric(z), metric(z), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(numeric.derivative(z), metric.derivative(z), rtol=1e-4, atol=1e-6)


def test_pullback_length_equals_decoded_curve_length(rng):
    # The pullback length of a latent curve is the Euclidean length of its image (smooth
    # activations: ELU with α ≠ 1 has a kink in its derivative, which slows both quadratures).
    metric = PullbackMetric(*random_mlp(rng, [2, 8, 6, 4], ["tanh", ("softplus", 2.0), "sigmoid"]))
    t = np.linspace(0, 1, 4001)
    points = np.stack([np.cos(3 * t), np.sin(2 * t)], axis=1)
    velocities = np.stack([-3 * np.sin(3 * t), 2 * np.cos(2 * t)], axis=1)
    image = metric.decode(points)
    euclid = np.sum(np.linalg.norm(np.diff(image, axis=0), axis=1))
    assert lg.curve_length(metric, points, velocities, t) == pytest.approx(euclid, rel=1e-6)


# -- torch ------------------------------------------------------------------------------------


def test_torch_sequential_matches_weight_lists(rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Linear(3, 8),
        nn.Tanh(),
        nn.Sequential(nn.Linear(8, 7), nn.Softplus(beta=2.0)),
        nn.Linear(7, 6),
        nn.ELU(alpha=0.5),
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 4),
        nn.Sigmoid(),
        nn.Identity(),
    ).double()
    head = nn.Sequential(nn.Linear(3, 2)).double()
    metric = PullbackMetric.from_torch(seq, log_sigma=head)
    lin = [m for m in seq.modules() if isinstance(m, nn.Linear)]
    weights = [m.weight.detach().numpy() for m in lin]
    biases = [m.bias.detach().numpy() for m in lin]
    acts = ["tanh", ("softplus", 2.0), ("elu", 0.5), "relu", "sigmoid"]
    reference = PullbackMetric(
        weights,
        biases,
        acts,
        log_sigma=([head[0].weight.detach().numpy()], [head[0].bias.detach().numpy()], ["identity"]),
    )
    z = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(metric(z), reference(z))  # the same weights, bit for bit: the same computation
    # ... and against torch's own forward pass and autograd Jacobian.
    zt = torch.from_numpy(z)
    mean, sigma = metric.decode(z)
    # torch's kernels against the core's: each layer's sum rounds by ~fan_in eps of its inputs,
    # carried to the output by weights of norm ≲ 1 and activations of slope ≤ 1; exp adds a few ulp.
    fan_ins = [m.in_features for m in seq.modules() if isinstance(m, nn.Linear)]
    scale = 1.0 + np.abs(z).max()
    np.testing.assert_allclose(mean, seq(zt).detach().numpy(), rtol=0, atol=SAFETY * sum(fan_ins) * EPS * scale)
    np.testing.assert_allclose(sigma, torch.exp(head(zt)).detach().numpy(), rtol=SAFETY * (3 * scale + 4) * EPS)
    jac_mu = torch.autograd.functional.jacobian(lambda x: seq(x).sum(0), zt).permute(1, 0, 2).numpy()
    jac_sig = torch.autograd.functional.jacobian(lambda x: torch.exp(head(x)).sum(0), zt).permute(1, 0, 2).numpy()
    expected = np.einsum("nia,nib->nab", jac_mu, jac_mu) + np.einsum("nia,nib->nab", jac_sig, jac_sig)
    # Reverse mode (torch) against forward mode (the core): each Jacobian entry rounds by ~Σ fan_in
    # eps of its magnitude, G = JᵀJ sums D = 6 products of them.
    jac = np.abs(np.concatenate([jac_mu, jac_sig], axis=1))
    assert_within(metric(z), expected, sum_tol(np.einsum("nia,nib->nab", jac, jac), 6 + 2 * sum(fan_ins)))


def test_torch_layers_outside_the_core_take_the_torch_path():
    torch = pytest.importorskip("torch")
    from latentgeo.metrics.pullback.torch_decoder import TorchPullbackMetric

    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout())  # training mode
    with pytest.warns(UserWarning, match=r"^module: in training mode with \['Dropout'\] layers"):
        metric = PullbackMetric.from_torch(seq)
    assert isinstance(metric, TorchPullbackMetric) and not hasattr(metric, "_kernel")
    assert seq.training and seq[0].weight.dtype == torch.float32  # the user's module is untouched
    W = seq[0].weight.detach().double().numpy()
    # eval-mode dropout is the identity: G = WᵀW everywhere
    np.testing.assert_allclose(metric(np.ones((3, 2))), np.broadcast_to(W.T @ W, (3, 2, 2)), rtol=1e-13)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([np.ones((3, 2))], [np.ones(3)], ["swish"]), {}, r"^activations\[0\]: unknown activation"),
        (([np.ones((3, 2))], [np.ones(3)], [("softplus", -1.0)]), {}, r"^activations\[0\]: must be finite"),
        (([np.ones((3, 2))], [np.ones(4)], ["tanh"]), {}, r"^biases\[0\]: expected length 3"),
        (
            ([np.ones((3, 2)), np.ones((2, 4))], [np.ones(3), np.ones(2)], ["tanh", "tanh"]),
            {},
            r"^weights: a layer expects 4 inputs but receives 3",
        ),
        (([np.full((3, 2), np.nan)], [np.ones(3)], ["tanh"]), {}, r"^weights\[0\]: contains NaN"),
        (([np.ones(3)], [np.ones(3)], ["tanh"]), {}, r"^weights\[0\]: expected a 2-d array"),
        (([], [], []), {}, r"^weights: need as many"),
        (([np.ones((3, 2))], [np.ones(3)], ["tanh", "tanh"]), {}, r"^weights: need as many"),
        (
            ([np.ones((3, 2))], [np.ones(3)], ["tanh"]),
            {"log_sigma": ([np.ones((2, 3))], [np.ones(2)], ["identity"])},
            r"^log_sigma: a layer expects 3 inputs but receives 2",
        ),
        (([np.ones((3, 2))], [np.ones(3)], ["tanh"]), {"log_sigma": "nope"}, r"^log_sigma: expected a tuple"),
        (
            ([np.ones((3, 2))], [np.ones(3)], ["tanh"]),
            {"log_sigma": ([np.ones((2, 3))], [np.ones(3)], ["identity"])},
            r"^log_sigma.biases\[0\]: expected length 2",
        ),
        (
            ([np.ones((3, 5))], [np.ones(3)], ["tanh"]),
            {"trunk": ([np.ones((4, 2))], [np.ones(4)], ["relu"])},
            r"^weights: a layer expects 5 inputs but receives 4",
        ),
    ],
)
def test_bad_construction(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PullbackMetric(*args, **kwargs)


def test_bad_points_and_callables(rng):
    metric = PullbackMetric([np.ones((3, 2))], [np.ones(3)], ["tanh"])
    with pytest.raises(ValueError, match=r"^z: expected dimension d = 2"):
        metric(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"^z: contains NaN"):
        metric.jacobian([np.nan, 0.0])
    with pytest.raises(ValueError, match=r"^v: expected shape"):
        metric.quadratic_form(np.ones((4, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"^n_threads:"):
        metric.derivative(np.ones((4, 2)), n_threads=0)
    with pytest.raises(ValueError, match=r"^decoder: must be callable"):
        PullbackMetric.from_callable(3, 2)
    with pytest.raises(ValueError, match=r"^dim: expected a positive integer"):
        PullbackMetric.from_callable(to_sphere, 0)
    with pytest.raises(ValueError, match=r"^fd_step:"):
        PullbackMetric.from_callable(to_sphere, 2, fd_step=-1.0)
    with pytest.raises(ValueError, match=r"^decoder: must return an array of shape \(N, D\)"):
        PullbackMetric.from_callable(lambda z: z[:, 0], 2)(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"^log_sigma: returned NaN"):
        PullbackMetric.from_callable(to_sphere, 2, log_sigma=lambda z: z * np.nan)(np.ones((3, 2)))
