"""Curve velocities and length/energy quadrature against closed forms."""

from __future__ import annotations

import latentgeo as lg
import numpy as np
import pytest
from conftest import EPS, SAFETY, PoincareHalfPlane, random_rhvae, reference_rhvae, rhvae_rounding


def line(a, b, t):
    return np.asarray(a) + np.asarray(t)[:, None] * (np.asarray(b) - np.asarray(a))


def test_aetk_reference_values():
    metric = reference_rhvae()
    t = np.linspace(0, 1, 10)
    pts, vel = line([-1.0, 0.0], [1.0, 1.0], t), np.tile([2.0, 1.0], (10, 1))
    assert lg.curve_length(metric, pts, vel, t, rule="aetk") == pytest.approx(4.5330257, abs=1e-7)
    assert lg.curve_energy(metric, pts, vel, t, rule="aetk") == pytest.approx(10.9986044, abs=1e-7)


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_constant_metric_length_and_energy(rule):
    metric = lg.ConstantMetric(np.diag([4.0, 1.0]))
    t = np.linspace(0, 1, 11)
    pts, vel = line([0, 0], [1, 1], t), np.ones((11, 2))
    rel = SAFETY * len(t) * EPS  # exact up to the rounding of a sum of N positive terms
    assert lg.curve_length(metric, pts, vel, t, rule=rule) == pytest.approx(np.sqrt(5), rel=rel)
    assert lg.curve_energy(metric, pts, vel, t, rule=rule) == pytest.approx(5.0, rel=rel)


@pytest.mark.parametrize("rule, n, tol", [("trapezoid", 201, 1e-4), ("simpson", 201, 1e-8)])
def test_poincare_vertical_segment(rule, n, tol):
    # (the energy's integrand 1/y² is rougher than the length's 1/y: 10x / 100x looser)
    # From y=a to y=b at constant Euclidean speed: L = ln(b/a), E = (b-a)(1/a - 1/b).
    a, b = 0.5, 3.0
    t = np.linspace(0, 1, n)
    pts = line([0.2, a], [0.2, b], t)
    vel = np.tile([0.0, b - a], (n, 1))
    metric = PoincareHalfPlane()
    assert lg.curve_length(metric, pts, vel, t, rule=rule) == pytest.approx(np.log(b / a), rel=tol)
    energy = (b - a) * (1 / a - 1 / b)
    assert lg.curve_energy(metric, pts, vel, t, rule=rule) == pytest.approx(
        energy, rel=10 * tol if rule == "trapezoid" else 100 * tol
    )


def test_trapezoid_and_simpson_convergence_orders():
    metric = PoincareHalfPlane()
    exact = np.log(6.0)
    errors = {}
    for rule in ("trapezoid", "simpson"):
        errors[rule] = []
        for n in (21, 41, 81):
            t = np.linspace(0, 1, n)
            pts, vel = line([0, 0.5], [0, 3.0], t), np.tile([0.0, 2.5], (n, 1))
            errors[rule].append(abs(lg.curve_length(metric, pts, vel, t, rule=rule) - exact))
    assert 3.5 < errors["trapezoid"][0] / errors["trapezoid"][1] < 4.5
    assert 14 < errors["simpson"][1] / errors["simpson"][2] < 18


def test_nonuniform_grid_simpson_and_trapezoid():
    metric = PoincareHalfPlane()
    t = np.sort(np.concatenate([[0, 1], np.random.default_rng(3).uniform(0, 1, 199)]))
    pts, vel = line([0, 0.5], [0, 3.0], t), np.tile([0.0, 2.5], (len(t), 1))
    for rule in ("trapezoid", "simpson"):
        assert lg.curve_length(metric, pts, vel, t, rule=rule) == pytest.approx(np.log(6.0), rel=1e-3)


def test_energy_is_length_squared_at_constant_speed_and_larger_otherwise():
    metric = lg.ConstantMetric(np.diag([2.0, 3.0]))
    t = np.linspace(0, 1, 101)
    pts, vel = line([0, 0], [1, 2], t), np.tile([1.0, 2.0], (101, 1))
    L, E = lg.curve_length(metric, pts, vel, t), lg.curve_energy(metric, pts, vel, t)
    assert E == pytest.approx(L**2, rel=SAFETY * len(t) * EPS)  # two sums of N positive terms
    s = t**2  # same path, non-constant speed
    pts2, vel2 = line([0, 0], [1, 2], s), (2 * t)[:, None] * np.array([1.0, 2.0])
    assert lg.curve_length(metric, pts2, vel2, t, rule="simpson") == pytest.approx(L, rel=1e-10)
    assert lg.curve_energy(metric, pts2, vel2, t, rule="simpson") > 1.3 * L**2


def test_batched_curves_equal_one_by_one(rng):
    metric, _, _ = random_rhvae(rng, dim=3)
    pts, vel = rng.normal(size=(5, 9, 3)), rng.normal(size=(5, 9, 3))
    t = np.linspace(0, 1, 9)
    # One call of 45 points and five of 9 take other GEMM kernels: G⁻¹ rounds differently, q by
    # κ(G) more; the sums over 9 points add 9 eps.
    rounding, cond = rhvae_rounding(metric, pts.reshape(-1, 3))
    rel = SAFETY * ((rounding * cond).max() + len(t) * EPS)
    for fn in (lg.curve_length, lg.curve_energy):
        batch = fn(metric, pts, vel, t, rule="simpson")
        assert batch.shape == (5,)
        np.testing.assert_allclose(batch, [fn(metric, p, v, t, rule="simpson") for p, v in zip(pts, vel)], rtol=rel)


@pytest.mark.parametrize("integral", ["length", "energy"])
@pytest.mark.parametrize("rule", ["trapezoid", "simpson", "aetk"])
def test_fused_gradients_against_finite_differences(rng, integral, rule):
    metric, _, _ = random_rhvae(rng, dim=2)
    pts, vel = rng.normal(size=(2, 7, 2)), rng.normal(size=(2, 7, 2))
    t = np.sort(rng.uniform(0, 1, 7))
    value, gz, gv = lg.curve_integral(metric, pts, vel, t, integral, rule, grad=True)
    # the same q, summed by the gradient's code: ≤ N eps apart
    np.testing.assert_allclose(
        value, lg.curve_integral(metric, pts, vel, t, integral, rule), rtol=SAFETY * len(t) * EPS
    )
    h = 1e-6
    for arr, grad in ((pts, gz), (vel, gv)):
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args = (plus, vel) if arr is pts else (pts, plus)
            args_m = (minus, vel) if arr is pts else (pts, minus)
            fd[idx] = (
                lg.curve_integral(metric, *args, t, integral, rule)[idx[0]]
                - lg.curve_integral(metric, *args_m, t, integral, rule)[idx[0]]
            ) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_finite_difference_velocity_of_a_known_curve():
    def circle(t):
        return np.column_stack([np.cos(2 * t), np.sin(2 * t)])

    t = np.linspace(0, 1, 13)
    exact = 2 * np.column_stack([-np.sin(2 * t), np.cos(2 * t)])
    central = lg.curve_velocity_finitediff(circle, t)
    forward = lg.curve_velocity_finitediff(circle, t, method="forward")
    np.testing.assert_allclose(central, exact, atol=1e-9)
    np.testing.assert_allclose(forward, exact, atol=1e-6)
    assert np.abs(forward - exact).max() > np.abs(central - exact).max()
    coarse = lg.curve_velocity_finitediff(circle, t, eps=1e-2)
    # exact up to the rounding of cos/sin (a few ulp of |γ| = 1, numpy and libm differ) over the width 2ε
    np.testing.assert_allclose(coarse, exact * np.sin(2e-2) / 2e-2, atol=SAFETY * EPS / 1e-2)


def test_discrete_velocity_exact_for_quadratics_on_uneven_grids():
    t = np.array([0.0, 0.1, 0.35, 0.4, 0.7, 1.0])
    pts = np.column_stack([3 * t**2 - t, 1 + 2 * t, -(t**2)])
    exact = np.column_stack([6 * t - 1, np.full_like(t, 2.0), -2 * t])
    # exact up to rounding: a few ulp of |x| divided by the smallest spacing
    atol = SAFETY * EPS * np.abs(pts).max() / np.diff(t).min()
    np.testing.assert_allclose(lg.discrete_velocity(pts, t), exact, atol=atol)
    batch = lg.discrete_velocity(np.stack([pts, 2 * pts]), t, n_threads=2)
    np.testing.assert_allclose(batch[1], 2 * exact, atol=2 * atol)
    two = lg.discrete_velocity(pts[[0, -1]], t[[0, -1]])
    np.testing.assert_allclose(two, np.tile(pts[-1] - pts[0], (2, 1)), atol=SAFETY * EPS * np.abs(pts).max())


def test_discrete_velocity_second_order():
    errors = []
    for n in (21, 41):
        t = np.linspace(0, 1, n)
        errors.append(np.abs(lg.discrete_velocity(np.sin(3 * t)[:, None], t)[:, 0] - 3 * np.cos(3 * t)).max())
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_threads_agree_for_batched_integrals(rng):
    metric, _, _ = random_rhvae(rng, n_centroids=40, dim=3)
    pts, vel = rng.normal(size=(30, 21, 3)), rng.normal(size=(30, 21, 3))
    one = lg.curve_energy(metric, pts, vel, grad=True, n_threads=1)
    two = lg.curve_energy(metric, pts, vel, grad=True, n_threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)  # the contract: bit for bit


# ---------------------------------------------------------------------------- bad input
def test_bad_curve_inputs():
    metric = reference_rhvae()
    t = np.linspace(0, 1, 5)
    pts, vel = np.zeros((5, 2)), np.ones((5, 2))
    cases = [
        (dict(points=np.zeros((5, 3)), velocities=np.ones((5, 3))), "points"),
        (dict(velocities=np.ones((4, 2))), "velocities"),
        (dict(points=np.zeros((0, 2)), velocities=np.zeros((0, 2)), t=np.zeros(0)), "points"),
        (dict(points=np.full((5, 2), np.nan)), "points"),
        (dict(velocities=np.full((5, 2), np.inf)), "velocities"),
        (dict(t=np.linspace(0, 1, 4)), "t"),
        (dict(t=t[::-1]), "t"),
        (dict(t=np.array([0, 0.5, 0.5, 0.7, 1.0])), "t"),
        (dict(rule="midpoint"), "rule"),
        (dict(t=np.linspace(0, 1, 4), points=pts[:4], velocities=vel[:4], rule="simpson"), "t"),
        (dict(points=np.zeros(5), velocities=np.ones(5)), "points"),
    ]
    for changes, name in cases:
        args = {"points": pts, "velocities": vel, "t": t, **changes}
        for fn in (lg.curve_length, lg.curve_energy):
            with pytest.raises(ValueError, match=f"^{name}"):
                fn(metric, args["points"], args["velocities"], args["t"], rule=args.get("rule", "trapezoid"))
    with pytest.raises(ValueError, match="^integral"):
        lg.curve_integral(metric, pts, vel, t, integral="area")


def test_bad_velocity_inputs():
    with pytest.raises(ValueError, match="^method"):
        lg.curve_velocity_finitediff(lambda t: np.zeros((len(t), 2)), np.linspace(0, 1, 3), method="backward")
    with pytest.raises(ValueError, match="^curve"):
        lg.curve_velocity_finitediff(lambda t: np.zeros((2, 2)), np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="^curve"):
        lg.curve_velocity_finitediff("not callable", np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="^eps"):
        lg.curve_velocity_finitediff(lambda t: np.zeros((len(t), 2)), np.linspace(0, 1, 3), eps=0.0)
    with pytest.raises(ValueError, match="^t"):
        lg.curve_velocity_finitediff(lambda t: np.zeros((len(t), 2)), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="^points"):
        lg.discrete_velocity(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="^t"):
        lg.discrete_velocity(np.zeros((3, 2)), np.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="^points"):
        lg.discrete_velocity(np.zeros((2, 3, 2, 1)))


def test_metric_must_follow_the_protocol():
    pts = np.zeros((3, 2))
    for fn in (lg.curve_length, lg.curve_energy):
        with pytest.raises(ValueError, match="^metric"):
            fn("not a metric", pts, pts)


# --------------------------------------------------------------------------------------------
# Equal arc length: curves.equal_arc_length_positions and its three users against brute force
# --------------------------------------------------------------------------------------------
def brute_force_equal_arc_length(dense: np.ndarray, lengths: np.ndarray, n_points: int) -> np.ndarray:
    """Points of a dense polyline (M, d) whose pieces are ``lengths`` (M - 1,) long, at equal
    cumulative length: a plain loop to the first node past each target, then linear in length."""
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    out = []
    for target in np.linspace(0.0, cum[-1], n_points):
        k = 1
        while k < len(cum) - 1 and cum[k] < target:
            k += 1
        piece = cum[k] - cum[k - 1]
        w = 0.0 if piece == 0 else (target - cum[k - 1]) / piece
        out.append((1 - w) * dense[k - 1] + w * dense[k])
    return np.array(out)


def densify(nodes: np.ndarray, per_segment: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, per_segment + 1)[:-1, None]
    pieces = [a + s * (b - a) for a, b in zip(nodes[:-1], nodes[1:])]
    return np.concatenate(pieces + [nodes[-1:]])


def test_equal_arc_length_positions_against_a_dense_polyline(rng):
    from latentgeo.curves import equal_arc_length_positions

    g = np.array([[4.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])  # a constant metric: exact on segments
    nodes = np.cumsum(rng.normal(size=(9, 3)), axis=0)
    nodes = np.concatenate([nodes[:4], nodes[3:4], nodes[4:]])  # one zero-length segment
    norm = lambda d: np.sqrt(np.einsum("ni,ij,nj->n", d, g, d))  # noqa: E731
    cum = np.concatenate([[0.0], np.cumsum(norm(np.diff(nodes, axis=0)))])
    for n_points in (2, 3, 11, 40):
        j, w = equal_arc_length_positions(cum, n_points)
        assert j.shape == w.shape == (n_points,) and np.all((w >= 0) & (w <= 1))
        points = (1 - w[:, None]) * nodes[j] + w[:, None] * nodes[j + 1]
        dense = densify(nodes, 200)
        expected = brute_force_equal_arc_length(dense, norm(np.diff(dense, axis=0)), n_points)
        np.testing.assert_allclose(points, expected, atol=1e-10)
        np.testing.assert_array_equal(points[[0, -1]], nodes[[0, -1]])
    j, w = equal_arc_length_positions(np.zeros(4), 3)  # a constant curve: its first node
    np.testing.assert_array_equal(w, 0.0)


def test_the_three_equal_arc_length_users_against_brute_force(rng):
    from latentgeo.plot import points_at_equal_arc_length
    from latentgeo.solvers.initial import _spread_on_path

    metric = reference_rhvae()
    nodes = np.array([[-1.0, -0.5], [0.2, 0.4], [0.1, 1.2], [1.0, 1.5]])
    # plot: the polyline through the nodes (uniform times), on a grid that has its corners
    dense = densify(nodes, 512)
    mid = 0.5 * (dense[1:] + dense[:-1])
    expected = brute_force_equal_arc_length(dense, np.sqrt(metric.quadratic_form(mid, np.diff(dense, axis=0))), 7)
    np.testing.assert_allclose(points_at_equal_arc_length(metric, nodes, 7, n_grid=3 * 512), expected, atol=1e-12)
    # the default grid of 1024 segments cuts the corners by ~1e-3
    np.testing.assert_allclose(points_at_equal_arc_length(metric, nodes, 7), expected, atol=1e-3)
    # the graph initialisation: exact for a constant metric
    const = lg.ConstantMetric(np.array([[3.0, 0.5], [0.5, 1.0]]))
    dense = densify(nodes, 100)
    d = np.diff(dense, axis=0)
    expected = brute_force_equal_arc_length(dense, np.sqrt(const.quadratic_form(dense[:-1], d)), 9)
    np.testing.assert_allclose(_spread_on_path(const, nodes, 8), expected, atol=1e-10)
    # interpolate: the solver's curve sampled densely
    z0, z1 = np.array([-1.0, -0.5]), np.array([1.0, 1.5])
    curve = lg.geodesic(metric, z0, z1).curve
    dense = curve(np.linspace(0, 1, 20001))
    mid = 0.5 * (dense[1:] + dense[:-1])
    lengths = np.sqrt(metric.quadratic_form(mid, np.diff(dense, axis=0)))
    expected = brute_force_equal_arc_length(dense, lengths, 6)
    np.testing.assert_allclose(lg.interpolate(metric, z0, z1, 6), expected, atol=1e-6)
