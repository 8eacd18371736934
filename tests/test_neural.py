"""Neural geodesics: forward pass, exact velocity, hand-written gradients, training, I/O, bad input."""

from __future__ import annotations

import copy
import pickle

import latentgeo as lg
import numpy as np
import pytest
from conftest import EPS, SAFETY, PoincareHalfPlane, assert_within, random_rhvae
from latentgeo.solvers.neural import loss_and_grad

ACTIVATIONS = ["tanh", "softplus", "relu", "identity"]
POINCARE_DISTANCE = 2 * np.arcsinh(1.0)  # between (−1, 1) and (1, 1)


# ----------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------
def brute_force_mlp(curve, t, activation):
    """The raw MLP output ĝ(t), written out layer by layer."""
    funcs = {
        "tanh": np.tanh,
        "softplus": lambda a: np.log1p(np.exp(a)),
        "relu": lambda a: np.maximum(a, 0),
        "identity": lambda a: a,
    }
    x = np.asarray(t, dtype=float)[:, None]
    pre = []
    for w, b in curve.layers[:-1]:
        a = x @ w.T + b
        pre.append(a)
        x = funcs[activation](a)
    w, b = curve.layers[-1]
    return x @ w.T + b, pre


def curve_rounding(curve, t):
    """Bound on the rounding of γ(t) (d,) for any evaluation order: the MLP's sums (fan_in eps
    times the magnitudes |W| |x| + |b|, propagated with |σ(a)| ≤ |a| + 1) through the rescaling by
    A/D, plus a few eps of the end points."""
    x = np.abs(np.concatenate([t, [0.0, 1.0]]))[:, None]
    error = np.zeros_like(x)
    for w, b in curve.layers:
        x = x @ np.abs(w).T + np.abs(b)
        error = error @ np.abs(w).T + w.shape[1] * EPS * x
        x = x + 1.0
    g, _ = brute_force_mlp(curve, np.array([0.0, 1.0]), curve.activation)
    span = np.abs(g[1] - g[0])
    ends = np.abs(curve.z_start) + np.abs(curve.z_end)
    return SAFETY * (error.max(axis=0) * 2 * np.abs(curve._amplitude) / span + 4 * EPS * ends)


def seed_curve(curve, t, activation):
    """AutoEncoderToolkit's rescaling: γ = scale ⊙ ĝ − shift."""
    g, _ = brute_force_mlp(curve, np.concatenate([t, [0.0, 1.0]]), activation)
    g_t, g0, g1 = g[:-2], g[-2], g[-1]
    z0, z1 = curve.z_start, curve.z_end
    scale = (z0 - z1) / (g0 - g1)
    shift = (z0 * g1 - z1 * g0) / (g0 - g1)
    return scale * g_t - shift


def directional_fd(fun, params, direction, h):
    """Fourth-order central difference of fun along a direction."""
    f = [fun(params + k * h * direction) for k in (-2, -1, 1, 2)]
    return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)


def small_rhvae(dim=3, seed=7):
    metric, _, _ = random_rhvae(np.random.default_rng(seed), n_centroids=6, dim=dim)
    return metric


# ----------------------------------------------------------------------------------------
# the curve
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_the_seeds_rescaling(activation):
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(7, 5), activation=activation, seed=3)
    t = np.linspace(0.0, 1.0, 13)
    # the same function by another formula (and softplus as log1p(exp) here): equal up to rounding
    assert_within(curve(t), seed_curve(curve, t, activation), curve_rounding(curve, t))
    # exact end points, bit for bit
    ends = curve(np.array([0.0, 1.0]))
    assert np.array_equal(ends[0], curve.z_start) and np.array_equal(ends[1], curve.z_end)
    assert curve(0.5).shape == (3,)


def test_identity_activation_gives_the_straight_line():
    curve = lg.NeuralGeodesic([0.0, 1.0], [2.0, -1.0], activation="identity", seed=1)
    t = np.linspace(0, 1, 9)
    line = curve.z_start + t[:, None] * (curve.z_end - curve.z_start)
    assert_within(curve(t), line, curve_rounding(curve, t))  # affine up to rounding


def test_degenerate_span_stays_finite_and_continuous():
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 2.0], hidden=(6,), seed=2)
    t = np.linspace(0, 1, 11)
    w, b = curve.layers[-1]
    g, _ = brute_force_mlp(curve, np.array([0.0, 1.0]), "tanh")
    span, row = g[1, 0] - g[0, 0], w[0].copy()
    outputs = []
    for target in (1.0 + 1e-9, 1.0 - 1e-9, 0.0, 1e-3):  # D in units of δ = min_span
        w[0] = row * (target * curve.min_span / span)
        pts = curve(t)
        assert np.all(np.isfinite(pts))
        assert np.array_equal(pts[0], curve.z_start) and np.array_equal(pts[-1], curve.z_end)
        outputs.append(pts)
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)  # continuous across |D| = δ
    np.testing.assert_array_equal(outputs[2][:, 0], t)  # D = 0: exactly the straight line (u = t, r = 0)


def test_shared_coordinate_can_move():
    # The seed's rescaling freezes a coordinate with z_start_k == z_end_k; ours does not.
    curve = lg.NeuralGeodesic([-1.0, 1.0], [1.0, 1.0], seed=0)
    w, b = curve.layers[-1]
    w[1] += 0.1  # bend the second coordinate
    pts = curve(np.linspace(0, 1, 11))
    assert np.ptp(pts[:, 1]) > 1e-3
    assert np.array_equal(pts[0], [-1.0, 1.0]) and np.array_equal(pts[-1], [1.0, 1.0])


def test_constant_curve():
    metric = small_rhvae(dim=2)
    curve = lg.NeuralGeodesic([0.3, 0.3], [0.3, 0.3], seed=0)
    t = np.linspace(0, 1, 20)
    assert curve.is_constant
    assert np.array_equal(curve(t), np.tile([0.3, 0.3], (20, 1)))
    np.testing.assert_array_equal(lg.curve_velocity_exact(curve, t), 0.0)
    value, grad = loss_and_grad(curve, metric, t, integral="length")
    assert value == 0.0 and not np.any(grad)
    result = lg.neural_geodesic(metric, [0.3, 0.3], [0.3, 0.3], progress=False)
    assert result.converged and result.length == 0.0 and result.energy == 0.0 and result.n_steps == 0


@pytest.mark.parametrize("activation", ["tanh", "softplus", "identity", "relu"])
def test_exact_velocity_matches_finite_differences(activation):
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 8), activation=activation, seed=5)
    t = np.linspace(0.03, 0.97, 17)
    if activation == "relu":  # keep away from the kinks: no pre-activation changes sign within ±1e-3
        _, pre = brute_force_mlp(curve, t, "relu")
        _, pre_lo = brute_force_mlp(curve, t - 1e-3, "relu")
        _, pre_hi = brute_force_mlp(curve, t + 1e-3, "relu")
        smooth = np.all(
            [
                np.all((np.sign(a) == np.sign(lo)) & (np.sign(a) == np.sign(hi)), axis=1)
                for a, lo, hi in zip(pre, pre_lo, pre_hi)
            ],
            axis=0,
        )
        t = t[smooth]
        assert len(t) >= 5
    exact = lg.curve_velocity_exact(curve, t)
    fd = lg.curve_velocity_finitediff(curve, t, eps=1e-4)
    scale = np.abs(exact).max()
    assert np.abs(exact - fd).max() < 1e-6 * scale
    np.testing.assert_array_equal(lg.curve_velocity_TaylorDiff(curve, t), exact)


def test_finitediff_loss_matches_the_core_path():
    metric = small_rhvae()
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], seed=4)
    t = np.linspace(0, 1, 31)
    for method, step in (("central", EPS ** (1 / 3)), ("forward", EPS**0.5)):
        # The loss evaluates all shifted times in one MLP pass, the reference one pass per shift:
        # other BLAS kernels, so the points differ by a few ulp, and the difference quotient divides
        # that by the step: ~eps/step relative in the velocities (central ∛eps: ~eps^(2/3), 1e-11;
        # forward √eps: ~√eps, 1e-8), twice that in the energy.
        rel = SAFETY * 2 * EPS / step
        vel = lg.curve_velocity_finitediff(curve, t, method=method)
        for integral in ("energy", "length"):
            reference = lg.curve_integral(metric, curve(t), vel, t, integral=integral)
            assert lg.loss(curve, metric, t, integral=integral, fd_method=method) == pytest.approx(reference, rel=rel)
    # Exact velocities: no amplification, only the rounding of the points and of a sum of N terms.
    exact = lg.curve_energy(metric, curve(t), lg.curve_velocity_exact(curve, t), t)
    assert lg.loss(curve, metric, t, velocity="exact") == pytest.approx(exact, rel=SAFETY * len(t) * EPS)


# ----------------------------------------------------------------------------------------
# gradients against finite differences
# ----------------------------------------------------------------------------------------
def check_gradient(curve, metric, t, h, tol, n_directions=3, **options):
    rng = np.random.default_rng(0)
    params = curve.get_params()
    value, grad = loss_and_grad(curve, metric, t, **options)
    # the same points; the gradient's code sums the N terms of the integral in its own way
    assert value == pytest.approx(lg.loss(curve, metric, t, **options), rel=SAFETY * len(t) * EPS)

    def fun(p):
        curve.set_params(p)
        return lg.loss(curve, metric, t, **options)

    directions = [rng.normal(size=params.size) for _ in range(n_directions)]
    directions.append(np.eye(params.size)[np.argmax(np.abs(grad))])  # the steepest coordinate
    for direction in directions:
        direction /= np.linalg.norm(direction)
        numeric = directional_fd(fun, params, direction, h)
        analytic = grad @ direction
        assert abs(analytic - numeric) < tol * max(abs(numeric), 1e-3 * np.linalg.norm(grad)), (analytic, numeric)
    curve.set_params(params)
    return grad


# The finite-difference velocity's rounding noise (~1e-16/ε) limits any check of its
# gradient: with ε = ∛eps the loss is only smooth to ~1e-11, so the tight checks use
# fd_step = 1e-3 (same code path, only the width changes) and the default ε gets a looser one.
VELOCITY_CASES = [
    dict(velocity="exact"),
    dict(velocity="finitediff", fd_method="central", fd_step=1e-3),
    dict(velocity="finitediff", fd_method="forward", fd_step=1e-3),
]


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
@pytest.mark.parametrize("integral", ["energy", "length"])
@pytest.mark.parametrize("case", VELOCITY_CASES, ids=["exact", "central", "forward"])
def test_gradient_smooth_activations(activation, integral, case):
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 6), activation=activation, seed=3)
    curve.set_params(curve.get_params() + 0.3 * np.random.default_rng(1).normal(size=curve.n_params))  # bend it
    check_gradient(curve, small_rhvae(), np.linspace(0, 1, 25), h=1e-3, tol=1e-6, integral=integral, **case)


@pytest.mark.parametrize("integral", ["energy", "length"])
@pytest.mark.parametrize("case", VELOCITY_CASES, ids=["exact", "central", "forward"])
def test_gradient_relu_away_from_kinks(integral, case):
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 6), activation="relu", seed=3)
    t = np.linspace(0, 1, 25)
    step = case.get("fd_step", 0.0)
    rows = np.concatenate([t, t + step, t - step, [0.0, 1.0]])
    _, pre = brute_force_mlp(curve, rows, "relu")
    margin = min(np.abs(a).min() for a in pre)
    h = 1e-7
    assert margin > 100 * h  # the stencil (4h, unit direction) cannot cross a kink
    check_gradient(curve, small_rhvae(), t, h=h, tol=1e-6, integral=integral, **case)


@pytest.mark.parametrize("case", VELOCITY_CASES, ids=["exact", "central", "forward"])
def test_gradient_identity_activation_is_zero(case):
    # An affine network always gives the straight line: the loss does not depend on the parameters.
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 6), activation="identity", seed=3)
    metric = small_rhvae()
    t = np.linspace(0, 1, 25)
    value, grad = loss_and_grad(curve, metric, t, **case)
    _, reference = loss_and_grad(
        lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 6), activation="tanh", seed=3),
        metric,
        t,
        **case,
    )
    assert np.abs(grad).max() < 1e-9 * np.abs(reference).max()
    curve.set_params(curve.get_params() * 1.7)
    assert lg.loss(curve, metric, t, **case) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("integral", ["energy", "length"])
def test_gradient_default_finite_difference_step(integral):
    curve = lg.NeuralGeodesic([0.1, -0.3, 0.5], [1.0, 0.4, -0.2], hidden=(8, 6), seed=3)
    check_gradient(curve, small_rhvae(), np.linspace(0, 1, 25), h=1e-3, tol=1e-4, integral=integral)


@pytest.mark.parametrize("rule, n", [("simpson", 21), ("aetk", 20)])
def test_gradient_other_rules_and_a_python_metric(rule, n):
    curve = lg.NeuralGeodesic([-1.0, 1.0], [1.0, 1.5], hidden=(8, 6), seed=2)
    check_gradient(curve, PoincareHalfPlane(), np.linspace(0, 1, n), h=1e-3, tol=1e-6, velocity="exact", rule=rule)
    check_gradient(curve, PoincareHalfPlane(), np.linspace(0, 1, n), h=1e-3, tol=1e-6, rule=rule, fd_step=1e-3)


def test_gradient_in_the_degenerate_span_regime():
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 2.0], hidden=(6,), seed=2)
    w, _ = curve.layers[-1]
    g, _ = brute_force_mlp(curve, np.array([0.0, 1.0]), "tanh")
    w[0] *= 0.4 * curve.min_span / (g[1, 0] - g[0, 0])  # |D| = 0.4 δ in the first dimension
    check_gradient(curve, small_rhvae(dim=2), np.linspace(0, 1, 15), h=1e-7, tol=1e-6, velocity="exact")


# ----------------------------------------------------------------------------------------
# training with the defaults
# ----------------------------------------------------------------------------------------
def test_constant_metric_gives_the_straight_line():
    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    z0, z1 = np.array([-1.0, 0.5, 2.0]), np.array([1.0, -0.5, 0.0])
    result = lg.neural_geodesic(lg.ConstantMetric(a), z0, z1, seed=0, progress=False)
    exact = np.sqrt((z1 - z0) @ a @ (z1 - z0))
    assert result.converged
    assert abs(result.length - exact) < 1e-6
    # E ≥ L² (Cauchy–Schwarz), up to the rounding of the two sums over the evaluation grid
    assert result.energy >= result.length**2 * (1 - SAFETY * lg.solvers.neural.DEFAULT_N_EVAL * EPS)
    t = np.linspace(0, 1, 51)
    pts = result.curve(t)
    offsets = (pts - z0) - np.outer((pts - z0) @ (z1 - z0) / np.sum((z1 - z0) ** 2), z1 - z0)
    assert np.abs(offsets).max() < 1e-3  # on the segment


@pytest.mark.parametrize("seed", [0, 1])
def test_poincare_half_plane_semicircle(seed):
    result = lg.neural_geodesic(PoincareHalfPlane(), [-1.0, 1.0], [1.0, 1.0], seed=seed, progress=False)
    assert result.converged, result.status
    assert abs(result.length - POINCARE_DISTANCE) < 1e-3 * POINCARE_DISTANCE
    pts = result.curve(np.linspace(0, 1, 201))
    assert np.abs(np.hypot(pts[:, 0], pts[:, 1]) - np.sqrt(2)).max() < 1e-2
    assert len(result.history) == result.n_steps and np.all(np.isfinite(result.history))


def rhvae_case(scale=1.0):
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(5, 2))
    L = np.tril(rng.normal(size=(5, 2, 2)) * 0.5)
    L[:, [0, 1], [0, 1]] = np.abs(L[:, [0, 1], [0, 1]]) + 0.5
    metric = lg.RHVAEMetric(centroids, L=L, temperature=0.7, regularization=0.05)
    return (metric if scale == 1.0 else metric.scaled(scale)), np.array([-1.5, -0.5]), np.array([1.5, 0.8])


def straight_length(metric, z0, z1, n=2001):
    t = np.linspace(0, 1, n)
    return lg.curve_length(metric, z0 + t[:, None] * (z1 - z0), np.tile(z1 - z0, (n, 1)), t)


def test_rhvae_geodesic_is_shorter_than_the_straight_line():
    metric, z0, z1 = rhvae_case()
    result = lg.neural_geodesic(metric, z0, z1, seed=0, progress=False)
    assert result.converged, result.status
    assert result.length < 0.99 * straight_length(metric, z0, z1)
    other = lg.neural_geodesic(metric, z0, z1, seed=1, progress=False)  # another start, the same geodesic
    assert other.length == pytest.approx(result.length, rel=1e-4)
    # the reported length is measured on a fine grid, independently of the training loss
    t = np.linspace(0, 1, 4001)
    reference = lg.curve_length(metric, result.curve(t), lg.curve_velocity_exact(result.curve, t), t, rule="simpson")
    assert result.length == pytest.approx(reference, rel=1e-5)


def test_fit_is_independent_of_the_metric_scale():
    metric, z0, z1 = rhvae_case()
    tiny, _, _ = rhvae_case(1e-4)
    big = lg.neural_geodesic(metric, z0, z1, seed=0, progress=False)
    small = lg.neural_geodesic(tiny, z0, z1, seed=0, progress=False)
    assert small.converged and big.converged
    assert abs(small.n_steps - big.n_steps) <= 5
    assert small.length == pytest.approx(1e-2 * big.length, rel=1e-5)
    n = min(small.n_steps, big.n_steps)
    np.testing.assert_allclose(small.history[:n], 1e-4 * big.history[:n], rtol=1e-6)


def test_fit_with_exact_velocity_length_and_sgd():
    metric = lg.ConstantMetric(np.eye(2))
    result = lg.neural_geodesic(
        metric, [0.0, 0.0], [3.0, 4.0], seed=1, velocity="exact", integral="length", progress=False, n_steps=50
    )
    assert 5.0 * (1 - 1e-9) <= result.length < 5.0 * (1 + 1e-4)  # nearly the segment, never shorter
    assert result.history[-1] < result.history[0]
    result = lg.neural_geodesic(
        metric, [0.0, 0.0], [3.0, 4.0], seed=1, optimizer=lg.SGD(lr=1e-3, momentum=0.9), progress=True, n_steps=20
    )
    assert result.n_steps == 20 and not result.converged and "n_steps" in result.status


def test_train_returns_the_loss_and_updates():
    metric = small_rhvae(dim=2)
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], seed=0)
    t = np.linspace(0, 1, 30)
    before = curve.get_params()
    expected = lg.loss(curve, metric, t)
    # train's value comes from the gradient's code path: the same terms, summed in its own way
    assert lg.train(curve, metric, t, lg.Adam(lr=1e-3)) == pytest.approx(expected, rel=SAFETY * len(t) * EPS)
    assert not np.array_equal(before, curve.get_params())


class BoundedMetric:
    """Euclidean inside |z| < 3, NaN outside (a metric defined on a bounded domain)."""

    dim = 2

    def quadratic_form(self, z, v, grad=False, n_threads=None):
        inside = np.linalg.norm(z, axis=1) < 3
        q = np.where(inside, np.sum(v * v, axis=1), np.nan)
        return (q, np.zeros_like(z), 2 * v) if grad else q


def test_diverging_fit_stops_with_a_reason():
    result = lg.neural_geodesic(
        BoundedMetric(), [-1.0, 0.0], [1.0, 0.5], seed=0, progress=False, optimizer=lg.SGD(lr=1e4)
    )
    assert not result.converged
    assert "diverged" in result.status
    assert np.all(np.isfinite(result.history)) and len(result.history) == result.n_steps
    assert np.isfinite(result.length)  # the best (finite) parameters were restored
    assert np.all(np.isfinite(result.curve.get_params()))


# ----------------------------------------------------------------------------------------
# optimisers
# ----------------------------------------------------------------------------------------
def test_adam_first_steps_match_the_formula():
    opt = lg.Adam(lr=0.1, betas=(0.8, 0.9), eps=1e-8)
    x = np.array([1.0, -2.0])
    g1, g2 = np.array([0.5, -1.0]), np.array([0.2, 3.0])
    opt.step(x, g1)
    np.testing.assert_allclose(x, [1.0 - 0.1, -2.0 + 0.1], rtol=1e-7)  # first step: lr·sign(g)
    m = 0.8 * 0.2 * g1 + 0.2 * g2
    v = 0.9 * 0.1 * g1**2 + 0.1 * g2**2
    expected = x - 0.1 * (m / (1 - 0.8**2)) / (np.sqrt(v / (1 - 0.9**2)) + 1e-8)
    opt.step(x, g2)
    np.testing.assert_allclose(x, expected, rtol=SAFETY * 12 * EPS)  # ~12 rounded operations, in another order


def test_sgd_momentum():
    opt = lg.SGD(lr=0.1, momentum=0.5)
    x = np.array([1.0])
    opt.step(x, np.array([2.0]))
    opt.step(x, np.array([2.0]))
    assert x[0] == pytest.approx(1.0 - 0.2 - 0.1 * (0.5 * 2 + 2))


# ----------------------------------------------------------------------------------------
# persistence
# ----------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    curve = lg.NeuralGeodesic(
        [0.1, -0.3], [1.0, 0.4], hidden=(5, 4, 3), activation="softplus", seed=9, min_span=1e-4, min_amplitude=0.3
    )
    path = tmp_path / "curve.npz"
    curve.save(path)
    loaded = lg.NeuralGeodesic.load(path)
    t = np.linspace(-0.2, 1.2, 17)
    assert np.array_equal(loaded(t), curve(t))
    assert np.array_equal(loaded.get_params(), curve.get_params())
    assert (loaded.hidden, loaded.activation, loaded.min_span, loaded.min_amplitude) == (
        (5, 4, 3),
        "softplus",
        1e-4,
        0.3,
    )
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[k].dtype != object for k in data.files)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="^path"):
        lg.NeuralGeodesic.load(tmp_path / "other.npz")


def _pickled(curve):
    return pickle.loads(pickle.dumps(curve))


def _saved_and_loaded(curve, tmp_path):
    curve.save(tmp_path / "curve.npz")
    return lg.NeuralGeodesic.load(tmp_path / "curve.npz")


CLONES = {"deepcopy": lambda c, _: copy.deepcopy(c), "pickle": lambda c, _: _pickled(c), "save_load": _saved_and_loaded}


@pytest.mark.parametrize("clone", sorted(CLONES))
def test_a_copy_trains_like_the_original(clone, tmp_path):
    # The layers are views into the parameter vector: a copy must train its own parameters.
    metric = small_rhvae(dim=2)
    t = np.linspace(0, 1, 20)
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(8, 6), seed=0)
    lg.train(curve, metric, t, lg.Adam(lr=1e-2))  # a curve that has moved away from its initialisation
    twin = CLONES[clone](curve, tmp_path)
    np.testing.assert_array_equal(twin(t), curve(t))  # the same parameters: the same computation
    start = curve(t)
    for c in (curve, twin):
        optimizer = lg.Adam(lr=1e-2)
        for _ in range(3):
            lg.train(c, metric, t, optimizer)
    assert np.abs(twin(t) - start).max() > 1e-4  # the copy moved ...
    np.testing.assert_array_equal(twin(t), curve(t))  # ... exactly as the original did
    np.testing.assert_array_equal(twin.get_params(), curve.get_params())


@pytest.mark.parametrize("clone", ["deepcopy", "pickle"])
def test_a_copy_fits_and_saves_its_own_curve(clone, tmp_path):
    metric = small_rhvae(dim=2)
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(8,), seed=1)
    twin = CLONES[clone](curve, tmp_path)
    result = lg.fit(twin, metric, n_steps=40, progress=False)
    assert np.ptp(result.history) > 0  # the loss moves (a frozen copy gives a flat history)
    t = np.linspace(0, 1, 33)
    assert np.abs(twin(t) - curve(t)).max() > 1e-4  # the original did not train
    loaded = _saved_and_loaded(twin, tmp_path)  # what was saved is the curve that was evaluated
    np.testing.assert_array_equal(loaded(t), twin(t))


def test_neural_batch_curves_survive_pickling():
    metric = small_rhvae(dim=2)
    batch = lg.geodesics(metric, [[0.0, 0.0]], [[1.0, 0.5]], method="neural", progress=False, n_steps=20, seed=0)
    curve = _pickled(batch.curves[0])  # as an executor worker would send it back
    t = np.linspace(0, 1, 15)
    np.testing.assert_array_equal(curve(t), batch.curves[0](t))
    start = curve(t)
    lg.train(curve, metric, t, lg.Adam(lr=1e-2))
    assert np.abs(curve(t) - start).max() > 1e-4


def test_get_set_params():
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(4,), seed=0)
    assert curve.n_params == (4 + 4) + (2 * 4 + 2)
    p = curve.get_params()
    p[0] += 1
    assert curve.get_params()[0] != p[0]  # a copy
    curve.set_params(p)
    assert curve.layers[0][0][0, 0] == p[0]  # views into the flat vector
    with pytest.raises(ValueError, match="^params"):
        curve.set_params(p[:-1])
    with pytest.raises(ValueError, match="^params"):
        curve.set_params(np.full_like(p, np.nan))


# ----------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(z_start=[np.nan, 0.0]), "z_start"),
        (dict(z_start=[[0.0, 0.0]]), "z_start"),
        (dict(z_end=[1.0, np.inf]), "z_end"),
        (dict(z_end=[1.0, 1.0, 1.0]), "z_end"),
        (dict(activation="sigmoid"), "activation"),
        (dict(hidden=(8, 0)), "hidden"),
        (dict(hidden=8), "hidden"),
        (dict(min_span=0.0), "min_span"),
    ],
)
def test_bad_curve_arguments(kwargs, name):
    args = dict(z_start=[0.0, 0.0], z_end=[1.0, 1.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        lg.NeuralGeodesic(**args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(t=[0.0, 0.5, 2.0]), "t"),
        (dict(t=[-0.6, 0.5, 1.0]), "t"),
        (dict(t=[0.0, 0.5, 0.5, 1.0]), "t"),
        (dict(t=[0.0, np.nan, 1.0]), "t"),
        (dict(velocity="taylor"), "velocity"),
        (dict(integral="action"), "integral"),
        (dict(rule="midpoint"), "rule"),
        (dict(fd_method="backward"), "fd_method"),
        (dict(fd_step=-1.0), "fd_step"),
    ],
)
def test_bad_loss_arguments(kwargs, name):
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], seed=0)
    args = dict(t=np.linspace(0, 1, 10))
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        lg.loss(curve, small_rhvae(dim=2), **args)


def test_dimension_mismatch():
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], seed=0)
    metric = small_rhvae(dim=3)
    t = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="^metric"):
        lg.loss(curve, metric, t)
    with pytest.raises(ValueError, match="^metric"):
        lg.fit(curve, metric, progress=False)
    with pytest.raises(ValueError, match="^metric"):
        lg.neural_geodesic(metric, [0.0, 0.0], [1.0, 1.0], progress=False)
    with pytest.raises(ValueError, match="^curve"):
        lg.loss("not a curve", metric, t)


@pytest.mark.parametrize(
    "make",
    [
        lambda: lg.Adam(lr=0.0),
        lambda: lg.Adam(lr=-1e-3),
        lambda: lg.SGD(lr=0.0),
        lambda: lg.SGD(lr=np.nan),
    ],
)
def test_non_positive_learning_rate(make):
    with pytest.raises(ValueError, match="^lr"):
        make()


def test_bad_optimiser_and_fit_options():
    metric = small_rhvae(dim=2)
    with pytest.raises(ValueError, match="^lr"):
        lg.neural_geodesic(metric, [0.0, 0.0], [1.0, 1.0], lr=0.0, progress=False)
    with pytest.raises(ValueError, match="^betas"):
        lg.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="^eps"):
        lg.Adam(eps=0.0)
    with pytest.raises(ValueError, match="^momentum"):
        lg.SGD(lr=0.1, momentum=1.0)
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], seed=0)
    for kwargs, name in [
        (dict(n_steps=0), "n_steps"),
        (dict(tol=0.0), "tol"),
        (dict(n_points=1), "n_points"),
        (dict(optimizer="adam"), "optimizer"),
        (dict(lr_decay=1.5), "lr_decay"),
        (dict(velocity="exactly"), "velocity"),
        (dict(t=[0.0, 2.0]), "t"),
    ]:
        with pytest.raises(ValueError, match=f"^{name}"):
            lg.fit(curve, metric, progress=False, **kwargs)
    with pytest.raises(ValueError, match="^optimizer"):
        lg.train(curve, metric, np.linspace(0, 1, 5), optimizer=None)


def test_gradient_and_fit_on_a_pullback_metric():
    # The metric protocol is all the loss needs: the pullback metric of a small decoder.
    rng = np.random.default_rng(4)
    weights = [rng.normal(size=(6, 2)), rng.normal(size=(5, 6))]
    biases = [rng.normal(size=6), rng.normal(size=5)]
    metric = lg.PullbackMetric(weights, biases, ["tanh", "identity"])
    curve = lg.NeuralGeodesic([-0.5, 0.2], [0.6, -0.4], hidden=(8, 6), seed=1)
    check_gradient(curve, metric, np.linspace(0, 1, 21), h=1e-3, tol=1e-6, velocity="exact")
    check_gradient(curve, metric, np.linspace(0, 1, 21), h=1e-3, tol=1e-6, fd_step=1e-3)
    result = lg.neural_geodesic(metric, [-0.5, 0.2], [0.6, -0.4], seed=0, progress=False)
    assert result.converged and result.length <= straight_length(metric, [-0.5, 0.2], np.array([0.6, -0.4])) + 1e-9
