"""Discrete geodesics against closed forms, invariances, initialisation and bad input."""

import pickle

import latentgeo as lg
import numpy as np
import pytest
from conftest import EPS, SAFETY
from manifolds import (
    PoincareHalfPlane,
    PolarPlane,
    SmoothWall,
    StereographicSphere,
    poincare_distance,
    polar_distance,
    polar_to_cartesian,
    sphere_distance,
    to_sphere,
)

DEFAULT_TOL = 1e-8  # geodesics' default tol: the relative accuracy of a measured length


# ----------------------------------------------------------------------------------------------
# Closed-form metrics (tests/manifolds.py; Python metric objects: they go through the solver's
# Python callback path)
# ----------------------------------------------------------------------------------------------
def _check_metric_derivatives(metric, z, v):
    """The closed-form metrics' dq/dz against central differences (they drive the solver)."""
    _, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    h = 1e-6
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd_z = (metric.quadratic_form(z + e, v) - metric.quadratic_form(z - e, v)) / (2 * h)
        fd_v = (metric.quadratic_form(z, v + e) - metric.quadratic_form(z, v - e)) / (2 * h)
        np.testing.assert_allclose(dqdz[:, k], fd_z, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dqdv[:, k], fd_v, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("metric", [PoincareHalfPlane(), StereographicSphere(), PolarPlane(), SmoothWall()])
def test_closed_form_metric_gradients(metric):
    rng = np.random.default_rng(0)
    z = np.c_[rng.uniform(-1, 1, 20), rng.uniform(0.3, 1.5, 20)]
    _check_metric_derivatives(metric, z, rng.standard_normal((20, 2)))


# ----------------------------------------------------------------------------------------------
# Pairs for the closed forms: random ones plus ones far from the straight line
# ----------------------------------------------------------------------------------------------
def _poincare_pairs(rng, n=24):
    s = np.c_[rng.uniform(-2, 2, n), rng.uniform(0.2, 2, n)]
    e = np.c_[rng.uniform(-2, 2, n), rng.uniform(0.2, 2, n)]
    far = n // 3  # low and wide apart: the geodesic arcs up, far above the straight line
    s[:far] = np.c_[rng.uniform(-2.5, -1.5, far), rng.uniform(0.15, 0.4, far)]
    e[:far] = np.c_[rng.uniform(1.5, 2.5, far), rng.uniform(0.15, 0.4, far)]
    keep = np.abs(s[:, 0] - e[:, 0]) > 0.1  # exclude near-vertical geodesics (circle centre at infinity)
    return s[keep], e[keep]


def _sphere_pairs(rng, n=24):
    ang = rng.uniform(0, 2 * np.pi, (2, n))
    rad = rng.uniform(0.1, 1.3, (2, n))
    far = n // 3  # northern hemisphere (|z| > 1), far apart: the geodesic bends out towards the pole
    ang[1, :far] = ang[0, :far] + rng.uniform(1.5, 2.2, far)
    rad[:, :far] = rng.uniform(1.5, 2.5, (2, far))
    pts = rad[..., None] * np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    return pts[0], pts[1]


def _polar_pairs(rng, n=24):
    s = np.c_[rng.uniform(0.5, 2, n), rng.uniform(-1.3, 1.3, n)]
    e = np.c_[rng.uniform(0.5, 2, n), rng.uniform(-1.3, 1.3, n)]
    far = n // 3  # large angle differences
    s[:far, 1] = rng.uniform(-1.5, -1.3, far)
    e[:far, 1] = rng.uniform(1.2, 1.4, far)
    return s, e


def _poincare_deviation(s, e, pts):
    """Distance of points from the exact geodesic: the circle centred on y = 0 through s and e."""
    (x0, y0), (x1, y1) = s, e
    c = (x1**2 + y1**2 - x0**2 - y0**2) / (2.0 * (x1 - x0))
    return np.abs(np.hypot(pts[:, 0] - c, pts[:, 1]) - np.hypot(x0 - c, y0))


def _sphere_deviation(s, e, pts):
    """Distance on the sphere of the mapped points from the great circle through s and e."""
    ps, pe = to_sphere(s), to_sphere(e)
    normal = np.cross(ps, pe)
    return np.abs(np.arcsin(np.clip(to_sphere(pts) @ normal / np.linalg.norm(normal), -1, 1)))


def _polar_deviation(s, e, pts):
    """Distance of the mapped points from the Euclidean segment between the mapped ends."""
    a, b = polar_to_cartesian(s), polar_to_cartesian(e)
    p = polar_to_cartesian(pts)
    u = (b - a) / np.linalg.norm(b - a)
    return np.abs((p - a) @ np.array([-u[1], u[0]]))


CLOSED_FORMS = {
    "poincare": (PoincareHalfPlane, _poincare_pairs, poincare_distance, _poincare_deviation),
    "sphere": (StereographicSphere, _sphere_pairs, sphere_distance, _sphere_deviation),
    "polar": (PolarPlane, _polar_pairs, polar_distance, _polar_deviation),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_closed_form_lengths_and_curves(name):
    metric_cls, pairs, exact, deviation = CLOSED_FORMS[name]
    rng = np.random.default_rng(42)
    s, e = pairs(rng)
    assert len(s) >= 20
    truth = exact(s, e)
    batch = lg.geodesics(metric_cls(), s, e, progress=False)
    ratio = batch.straight_length / truth
    assert np.sum(ratio > 1.3) >= 5, ratio  # pairs whose geodesic is far from the straight line
    assert batch.converged.all(), batch.status
    np.testing.assert_allclose(batch.length, truth, rtol=1e-6)
    t = np.linspace(0, 1, 401)
    for i in range(len(s)):
        res = batch[i]
        np.testing.assert_array_equal(res.nodes[[0, -1]], np.stack([s[i], e[i]]))
        assert deviation(s[i], e[i], res.nodes).max() < 1e-4
        assert deviation(s[i], e[i], res.curve(t)).max() < 1e-4


def test_result_fields_and_measured_length():
    metric = PoincareHalfPlane()
    res = lg.geodesic(metric, [-1.0, 0.5], [1.5, 0.3])
    assert isinstance(res, lg.GeodesicResult)
    n, d = res.nodes.shape
    assert d == 2 and res.t.shape == (n,) and res.status == "converged" and res.converged and res.n_iter > 0
    np.testing.assert_allclose(res.t, np.linspace(0, 1, n))
    # at the node times the interpolant is the node, up to t·n rounding by an ulp (times the tangent)
    scale = np.abs(res.nodes).max() + np.abs(res.curve.tangents).max()
    np.testing.assert_allclose(res.curve(res.t), res.nodes, rtol=0, atol=SAFETY * EPS * scale)
    # The measured length is that of the interpolating curve: compare with a fine trapezoid of it.
    t = np.linspace(0, 1, 20001)
    fine = lg.curve_length(metric, res.curve(t), res.curve(t, derivative=True), t)
    np.testing.assert_allclose(res.length, fine, rtol=1e-7)
    # Near constant speed: E ~ L², and E >= L² on [0, 1] (up to the rounding of the two sums of
    # 3 Gauss points per segment).
    assert res.energy >= res.length**2 * (1 - SAFETY * 3 * n * EPS)
    np.testing.assert_allclose(res.energy, res.length**2, rtol=1e-4)
    np.testing.assert_allclose(
        res.straight_length, np.log(0.5 / 0.3) * np.hypot(2.5, 0.2) / 0.2, rtol=1e-8
    )  # ∫ |Δ| / y along the line


def test_fixed_node_count_and_history_option():
    res = lg.geodesic(StereographicSphere(), [0.2, -0.4], [-0.9, 0.7], n_nodes=33, history=4)
    assert res.nodes.shape == (33, 2)
    np.testing.assert_allclose(
        res.length, sphere_distance(np.array([[0.2, -0.4]]), np.array([[-0.9, 0.7]]))[0], rtol=1e-5
    )


def test_identical_endpoints_give_zero():
    res = lg.geodesic(PoincareHalfPlane(), [0.3, 0.7], [0.3, 0.7])
    assert res.length == 0.0 and res.energy == 0.0 and res.converged and res.status == "converged"
    assert np.all(res.nodes == [0.3, 0.7])


# ----------------------------------------------------------------------------------------------
# RHVAE through the C++ path
# ----------------------------------------------------------------------------------------------
def _rhvae(d=2, k=60, seed=3):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((k, d))
    diag = np.exp(0.4 * rng.standard_normal((k, d)))
    lower = np.tril(0.3 * rng.standard_normal((k, d, d)), -1) + diag[:, :, None] * np.eye(d)
    return lg.RHVAEMetric(c, L=lower, temperature=0.6, regularization=1e-2, normalization="mean")


class Forwarding:
    """The RHVAE metric seen through the protocol only (no _kernel): the Python callback path."""

    def __init__(self, base):
        self.base, self.dim = base, base.dim

    def metric(self, z, n_threads=None):
        return self.base.metric(z)

    def quadratic_form(self, z, v, grad=False, n_threads=None):
        return self.base.quadratic_form(z, v, grad=grad)


def _random_pairs(d, n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d))


@pytest.mark.parametrize("d, k", [(2, 60), (5, 600)])
def test_rhvae_native_matches_callback_and_high_resolution(d, k):
    """The native solve (each node's G once for both of its Simpson segments, the kernel's
    one-pass or two-pass gradient) against the callback path (one quadratic form per segment end)."""
    metric = _rhvae(d=d, k=k)
    s, e = _random_pairs(d, 8, 5)
    native = lg.geodesics(metric, s, e, progress=False)
    assert native.converged.all()
    callback = lg.geodesics(Forwarding(metric), s, e, progress=False)
    # The same kernel evaluated through another route may round differently; both solves stop
    # within tol of the same discrete minimum, after (nearly) the same iterations.
    np.testing.assert_allclose(native.length, callback.length, rtol=DEFAULT_TOL)
    assert np.all(np.abs(native.n_iter - callback.n_iter) <= 2)
    fine = lg.geodesics(metric, s, e, n_nodes=257, tol=1e-12, progress=False)
    np.testing.assert_allclose(native.length, fine.length, rtol=1e-7)
    assert np.all(native.length <= native.straight_length * (1 + DEFAULT_TOL))  # never longer, up to tol


def test_rhvae_threads_give_identical_results():
    metric = _rhvae(d=3, k=80)
    s, e = _random_pairs(3, 12, 6)
    one = lg.geodesics(metric, s, e, n_threads=1, progress=False)
    two = lg.geodesics(metric, s, e, n_threads=2, progress=False)
    np.testing.assert_array_equal(one.length, two.length)  # the contract: bit for bit
    np.testing.assert_array_equal(one.nodes, two.nodes)
    np.testing.assert_array_equal(one.n_iter, two.n_iter)
    assert one.status == two.status


def test_constant_metric_is_a_straight_line():
    a = np.array([[4.0, 1.0], [1.0, 2.0]])
    res = lg.geodesic(lg.ConstantMetric(a), [0.0, 0.0], [1.0, -2.0])
    delta = np.array([1.0, -2.0])
    # the solution is the start curve: exact up to the rounding of 3 Gauss terms per segment
    np.testing.assert_allclose(res.length, np.sqrt(delta @ a @ delta), rtol=SAFETY * 3 * len(res.nodes) * EPS)
    np.testing.assert_allclose(res.nodes, np.linspace(0, 1, len(res.nodes))[:, None] * delta, atol=1e-10)


@pytest.mark.parametrize("factor", [1e-4, 1e4])
def test_scale_invariance(factor):
    s, e = _poincare_pairs(np.random.default_rng(7), 9)
    base = lg.geodesics(PoincareHalfPlane(), s, e, progress=False)
    scaled = lg.geodesics(PoincareHalfPlane().scaled(factor), s, e, progress=False)
    # scaling rounds every evaluation differently: both solves stop within tol of the same minimum
    np.testing.assert_allclose(scaled.length, np.sqrt(factor) * base.length, rtol=DEFAULT_TOL)
    assert scaled.converged.all()
    assert np.all(np.abs(scaled.n_iter - base.n_iter) <= 2)
    metric = _rhvae()  # the native path with a scale factor
    s, e = _random_pairs(2, 6, 8)
    base = lg.geodesics(metric, s, e, progress=False)
    scaled = lg.geodesics(metric.scaled(factor), s, e, progress=False)
    np.testing.assert_allclose(scaled.length, np.sqrt(factor) * base.length, rtol=DEFAULT_TOL)
    assert np.all(np.abs(scaled.n_iter - base.n_iter) <= 2) and scaled.converged.all()


def test_neural_method_agrees_with_discrete():
    neural = pytest.importorskip("latentgeo.solvers.neural")
    assert hasattr(neural, "neural_geodesic")
    metric = _rhvae()
    a, b = np.array([-0.8, 0.3]), np.array([0.9, -0.2])
    discrete = lg.geodesic(metric, a, b)
    res = lg.geodesic(metric, a, b, method="neural")
    assert res.method == "neural" and res.nodes.shape[1] == 2
    np.testing.assert_allclose(res.length, discrete.length, rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# Graph initialisation
# ----------------------------------------------------------------------------------------------
def test_graph_init_escapes_the_wall():
    metric = SmoothWall()
    a, b = np.array([-1.0, 0.0]), np.array([1.0, 0.0])
    g = np.linspace(-2.0, 2.0, 21)
    anchors = np.stack(np.meshgrid(g, np.linspace(-2.5, 2.5, 26)), -1).reshape(-1, 2)
    line = lg.geodesic(metric, a, b)
    graph = lg.geodesic(metric, a, b, init="graph", anchors=anchors)
    assert graph.converged
    # The straight line is a critical point (by symmetry): the solver stays on it, over the wall.
    assert np.abs(line.nodes[:, 1]).max() < 1e-8
    assert graph.length < 0.6 * line.length
    assert np.abs(graph.nodes[:, 1]).max() > 1.0  # around the wall's end
    # The same geodesic from a hand-made detour around the same end of the wall.
    side = np.sign(graph.nodes[len(graph.nodes) // 2, 1])
    detour = np.array([a, [-0.5, side * 1.5], [0.5, side * 1.5], b])
    t = np.linspace(0, 3, 25)
    init = np.stack([np.interp(t, np.arange(4), detour[:, k]) for k in range(2)], axis=1)
    ref = lg.geodesic(metric, a, b, init=init)
    assert ref.converged
    np.testing.assert_allclose(graph.length, ref.length, rtol=1e-7)


def test_graph_init_uses_rhvae_centroids():
    metric = _rhvae()
    s, e = _random_pairs(2, 4, 9)
    line = lg.geodesics(metric, s, e, progress=False)
    graph = lg.geodesics(metric, s, e, init="graph", k_neighbors=6, progress=False)
    assert graph.converged.all()
    # On this smooth metric both starts reach the same geodesics.
    np.testing.assert_allclose(graph.length, line.length, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Results travel (pickle) and bad input
# ----------------------------------------------------------------------------------------------
def test_results_pickle():
    batch = lg.geodesics(_rhvae(), *_random_pairs(2, 3, 10), progress=False)
    again = pickle.loads(pickle.dumps(batch))
    np.testing.assert_array_equal(again.nodes, batch.nodes)
    res = pickle.loads(pickle.dumps(batch[1]))
    t = np.linspace(0, 1, 7)
    np.testing.assert_array_equal(res.curve(t), batch[1].curve(t))
    assert len(again) == 3 and batch[-1].length == batch.length[2]


BAD_CALLS = [
    (dict(z_start=[0.0, np.nan]), "z_start"),
    (dict(z_end=[0.0, np.inf]), "z_end"),
    (dict(z_start=[0.0, 1.0, 2.0]), "z_start"),
    (dict(z_end=[[0.0, 1.0], [1.0, 2.0]]), "z_end"),
    (dict(tol=0.0), "tol"),
    (dict(tol=-1e-3), "tol"),
    (dict(n_nodes=0), "n_nodes"),
    (dict(n_nodes=4), "n_nodes"),
    (dict(n_nodes=-3), "n_nodes"),
    (dict(n_nodes=2.5), "n_nodes"),
    (dict(max_iter=0), "max_iter"),
    (dict(method="newton"), "method"),
    (dict(init="spline"), "init"),
    (dict(init=np.zeros((5, 3))), "init"),
    (dict(init=np.zeros((5, 2))), "init"),  # does not start at z_start
    (dict(init="graph"), "anchors"),  # no centroids, no anchors
    (dict(init="graph", anchors=np.zeros((4, 3))), "anchors"),
    (dict(n_threads=0), "n_threads"),
    (dict(bogus=1), "options"),
    (dict(min_nodes=3), "min_nodes"),
    (dict(max_nodes=7), "max_nodes"),
    (dict(history=0), "history"),
]


@pytest.mark.parametrize("kwargs, name", BAD_CALLS)
def test_bad_input(kwargs, name):
    call = dict(z_start=[0.0, 0.5], z_end=[1.0, 0.7])
    call.update(kwargs)
    metric = call.pop("metric", PoincareHalfPlane())
    with pytest.raises(ValueError, match=f"^{name}"):
        lg.geodesic(metric, **call)


def test_bad_batch_input():
    metric = PoincareHalfPlane()
    with pytest.raises(ValueError, match="^ends"):
        lg.geodesics(metric, np.ones((3, 2)), np.ones((4, 2)), progress=False)
    with pytest.raises(ValueError, match="^starts"):
        lg.geodesics(metric, np.ones((3, 3)), np.ones((3, 3)), progress=False)
    with pytest.raises(ValueError, match="^starts"):
        lg.geodesics(metric, np.zeros((0, 2)), np.zeros((0, 2)), progress=False)
    with pytest.raises(ValueError, match="^metric"):
        lg.geodesics(object(), np.ones((3, 2)), np.ones((3, 2)), progress=False)


def test_metric_exceptions_propagate():
    class Broken(PoincareHalfPlane):
        def _quadratic_form(self, z, v, grad, n_threads):
            raise RuntimeError("broken metric")

    with pytest.raises(RuntimeError, match="broken metric"):
        lg.geodesic(Broken(), [0.0, 0.5], [1.0, 0.7])


def test_non_finite_metric_reports_status():
    class Singular(PoincareHalfPlane):
        def _quadratic_form(self, z, v, grad, n_threads):
            out = super()._quadratic_form(z, v, grad, n_threads)
            return tuple(np.full_like(x, np.nan) for x in out) if grad else np.full_like(out, np.nan)

    with pytest.warns(RuntimeWarning, match="pair 0: non_finite"):
        res = lg.geodesic(Singular(), [0.0, 0.5], [1.0, 0.7])
    assert res.status == "non_finite" and not res.converged and np.isnan(res.length)


class _WithoutKernel(lg.Metric):
    """The same metric seen only through the Python protocol (the callback path)."""

    def __init__(self, base):
        self.base, self.dim = base, base.dim

    def _metric(self, z, n_threads):
        return self.base.metric(z)

    def _derivative(self, z, n_threads):
        return self.base.derivative(z)

    def _quadratic_form(self, z, v, grad, n_threads):
        return self.base.quadratic_form(z, v, grad=grad)


class _DecoderWithoutKernel(_WithoutKernel):
    def decoded_energies(self, z, counts):
        return self.base.decoded_energies(z, counts)


@pytest.mark.parametrize("quadrature", ["simpson", "decoded"])
def test_pullback_metric_is_solved_natively_and_agrees_with_the_python_path(quadrature):
    rng = np.random.default_rng(8)
    weights = [rng.normal(size=(6, 2)), rng.normal(size=(3, 6)) / 2]
    biases = [rng.normal(size=6), rng.normal(size=3)]
    pb = lg.PullbackMetric(weights, biases, ["tanh", "identity"])
    starts, ends = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    native = lg.geodesics(pb, starts, ends, progress=False, quadrature=quadrature)
    python = lg.geodesics(_DecoderWithoutKernel(pb), starts, ends, progress=False, quadrature=quadrature)
    assert np.all(native.converged) and np.all(python.converged)
    np.testing.assert_allclose(native.length, python.length, rtol=1e-9)
    # A linear decoder: the constant metric WᵀW, whose geodesic is the straight line.
    w = rng.normal(size=(4, 2))
    linear = lg.PullbackMetric([w], [np.zeros(4)], ["identity"])
    res = lg.geodesic(linear, starts[0], ends[0])
    assert res.length == pytest.approx(np.linalg.norm(w @ (ends[0] - starts[0])), rel=1e-9)


def test_quadrature_option():
    metric = PoincareHalfPlane()
    exact = np.arccosh(1 + 4.0 / 2)
    for quadrature in ("simpson", "midpoint"):
        res = lg.geodesic(metric, [-1.0, 1.0], [1.0, 1.0], quadrature=quadrature)
        assert res.converged and res.length == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ValueError, match="^quadrature"):
        lg.geodesic(metric, [-1.0, 1.0], [1.0, 1.0], quadrature="trapezoid")


def test_progress_bar_for_long_batches(capsys):
    metric = lg.ConstantMetric(np.eye(2))
    s, e = _random_pairs(2, 120, 11)
    lg.geodesics(metric, s, e, progress=False)
    assert "pair" not in capsys.readouterr().err
    lg.geodesics(metric, s, e, progress=True)
    assert "120/120" in capsys.readouterr().err


def test_progress_keyword_of_geodesic(capsys):
    # geodesic() takes progress= like geodesics() (it used to clash with the one passed on)
    metric = lg.ConstantMetric(np.eye(2))
    res = lg.geodesic(metric, [0.0, 0.0], [1.0, 2.0], progress=False)
    assert res.converged and res.length == pytest.approx(np.sqrt(5.0), rel=DEFAULT_TOL)
    res = lg.geodesic(metric, [0.0, 0.0], [1.0, 2.0], method="neural", progress=False, n_steps=5, seed=0)
    assert res.method == "neural" and capsys.readouterr().err == ""
    lg.geodesic(metric, [0.0, 0.0], [1.0, 2.0], method="neural", progress=True, n_steps=5, seed=0)
    assert "neural geodesic" in capsys.readouterr().err  # the training's bar, when asked for


def test_neural_batch_without_progress_prints_nothing(capsys):
    metric = lg.ConstantMetric(np.eye(2))
    starts, ends = _random_pairs(2, 3, 12)
    batch = lg.geodesics(metric, starts, ends, method="neural", progress=False, n_steps=5, seed=0)
    assert len(batch) == 3
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_the_hermite_curve_reproduces_cubic_polynomials():
    """Fourth-order tangents and cubic Hermite segments are exact for a cubic γ(t) (to rounding)."""
    coef = np.array([[0.3, -1.0], [2.0, 0.5], [-1.5, 1.0], [0.7, -0.4]])  # γ(t) = Σ coef[k] t^k

    def gamma(t, derivative=False):
        if derivative:
            return sum(k * coef[k] * t[:, None] ** (k - 1) for k in range(1, 4))
        return sum(coef[k] * t[:, None] ** k for k in range(4))

    for n in (4, 7, 16):
        curve = lg.curves.HermiteCurve(gamma(np.linspace(0.0, 1.0, n + 1)))
        np.testing.assert_allclose(curve.tangents, gamma(np.linspace(0.0, 1.0, n + 1), True), atol=1e-12 * n)
        t = np.linspace(0.0, 1.0, 97)
        np.testing.assert_allclose(curve(t), gamma(t), atol=1e-13 * n)
        np.testing.assert_allclose(curve(t, derivative=True), gamma(t, True), atol=1e-12 * n)
    with pytest.raises(ValueError, match="nodes"):
        lg.curves.HermiteCurve(np.zeros((4, 2)))
