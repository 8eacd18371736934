"""Benchmark of the Riemannian toolbox (issue 12): exp map, log map and parallel transport.

(a) exp map for 10 000 starts, (b) log map for 1 000 pairs (200 at d = 8) against the discrete geodesic alone,
(c) parallel transport of 1 000 vectors, on the shipped digits RHVAE (d = 2) and a synthetic RHVAE
(d = 8); and the errors against the closed forms (Poincaré half-plane, unit sphere in stereographic
coordinates) of latentgeo and, when installed, of geomstats (its RiemannianMetric with the same G:
default 10 Euler steps and a tuned RK4) and stochman (Manifold.expmap). Every ratio is measured in
this run.

    python benchmarks/bench_toolbox.py            # the issue's sizes (a few minutes)
    python benchmarks/bench_toolbox.py --quick    # smaller batches
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import latentgeo as lg
import numpy as np


def timed(fn, repeat=1):
    """(result, best time of `repeat` runs): the machine may be shared, the minimum is the signal."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def header(title):
    print(f"\n== {title}")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
class HalfPlane(lg.Metric):
    dim = 2

    def _metric(self, z, n_threads):
        return np.eye(2)[None] / z[:, 1, None, None] ** 2

    def _derivative(self, z, n_threads):
        out = np.zeros((len(z), 2, 2, 2))
        out[:, 0, 0, 1] = out[:, 1, 1, 1] = -2.0 / z[:, 1] ** 3
        return out


class Sphere(lg.Metric):
    dim = 2

    def _metric(self, z, n_threads):
        return (4.0 / (1.0 + np.sum(z**2, 1)) ** 2)[:, None, None] * np.eye(2)

    def _derivative(self, z, n_threads):
        s = 1.0 + np.sum(z**2, 1)
        out = np.zeros((len(z), 2, 2, 2))
        for a in range(2):
            out[:, a, a, :] = -16.0 * z / s[:, None] ** 3
        return out


def synthetic_rhvae(rng, k=400, d=8):
    centroids = rng.normal(size=(k, d))
    L = 0.5 * np.tril(rng.normal(size=(k, d, d)))
    L[:, range(d), range(d)] = np.abs(L[:, range(d), range(d)]) + 0.5
    metric = lg.RHVAEMetric(centroids, L=L, temperature=1.0, regularization=0.01)
    return metric, centroids + 0.3 * rng.normal(size=centroids.shape)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def half_plane_exp(z, v):
    """γ(1) on the half-plane for rows of z, v (semicircles centred on the x-axis; vx != 0)."""
    x0, y0, vx, vy = z[:, 0], z[:, 1], v[:, 0], v[:, 1]
    speed = np.hypot(vx, vy) / y0
    c = x0 + y0 * vy / vx
    radius = np.hypot(x0 - c, y0)
    phi = 2 * np.arctan(np.tan(np.arctan2(y0, x0 - c) / 2) * np.exp(-np.sign(vx) * speed))
    return np.stack([c + radius * np.cos(phi), radius * np.sin(phi)], axis=1)


def half_plane_log(z0, z1):
    (x0, y0), (x1, y1) = z0.T, z1.T
    dist = np.arccosh(1 + ((x1 - x0) ** 2 + (y1 - y0) ** 2) / (2 * y0 * y1))
    c = (x1**2 + y1**2 - x0**2 - y0**2) / (2 * (x1 - x0))
    direction = np.sign(x1 - x0)[:, None] * np.stack([y0, c - x0], 1) / np.hypot(x0 - c, y0)[:, None]
    return (dist * y0)[:, None] * direction


def to_sphere(z):
    r2 = np.sum(z**2, -1, keepdims=True)
    return np.concatenate([2 * z, r2 - 1], -1) / (1 + r2)


def chart_velocity(p, w):
    """Dσ(p) w: the chart velocity of an R³ tangent vector w at p (stereographic projection)."""
    q = 1 - p[:, 2:3]
    return w[:, :2] / q + p[:, :2] * w[:, 2:3] / q**2


def sphere_tangent(z, v):
    s = 1 + np.sum(z**2, 1, keepdims=True)
    zv = np.sum(z * v, 1, keepdims=True)
    return np.concatenate([2 * v / s - 4 * z * zv / s**2, 4 * zv / s**2], 1)


def sphere_transport(z, v, w):
    """w transported along the great circle exp(z, t v), t ∈ [0, 1]: (end point, chart vector)."""
    p, u, x = to_sphere(z), sphere_tangent(z, v), sphere_tangent(z, w)
    theta = np.linalg.norm(u, axis=1, keepdims=True)
    e1 = u / theta
    n = np.cross(p, e1)
    a, b = np.sum(x * e1, 1, keepdims=True), np.sum(x * n, 1, keepdims=True)
    end = p * np.cos(theta) + e1 * np.sin(theta)
    moved = a * (-p * np.sin(theta) + e1 * np.cos(theta)) + b * n
    return end[:, :2] / (1 - end[:, 2:3]), chart_velocity(end, moved)


# --------------------------------------------------------------------------------------------
# Peers (optional)
# --------------------------------------------------------------------------------------------
def load_geomstats():
    os.environ.setdefault("GEOMSTATS_BACKEND", "pytorch")
    if not hasattr(np, "trapz"):  # geomstats 2.8 imports numpy.trapz, removed in numpy 2.4
        np.trapz = np.trapezoid
    try:
        import geomstats.backend as gs  # noqa: F401
        import torch
        from geomstats.geometry.euclidean import Euclidean
        from geomstats.geometry.riemannian_metric import RiemannianMetric
        from geomstats.numerics.geodesic import ExpODESolver, LogShootingSolver
        from geomstats.numerics.ivp import GSIVPIntegrator
    except Exception as exc:  # not installed, or an incompatible backend
        print(f"geomstats: not available ({type(exc).__name__}: {exc})")
        return None

    class HalfPlaneGS(RiemannianMetric):
        def metric_matrix(self, base_point=None):
            return torch.eye(2, dtype=base_point.dtype) / base_point[..., 1, None, None] ** 2

    class SphereGS(RiemannianMetric):
        def metric_matrix(self, base_point=None):
            s = 1 + (base_point**2).sum(-1)
            return torch.eye(2, dtype=base_point.dtype) * (4 / s**2)[..., None, None]

    def space(metric_cls, n_steps=10, step="euler"):
        sp = Euclidean(2, equip=False)
        sp.equip_with_metric(metric_cls)
        sp.metric.exp_solver = ExpODESolver(sp, integrator=GSIVPIntegrator(n_steps=n_steps, step_type=step))
        sp.metric.log_solver = LogShootingSolver(sp)
        return sp

    return {"torch": torch, "space": space, "HalfPlane": HalfPlaneGS, "Sphere": SphereGS}


def load_stochman():
    try:
        import stochman.manifold
        import torch
    except Exception as exc:
        print(f"stochman: not available ({type(exc).__name__}: {exc})")
        return None

    if not hasattr(torch, "_stochman_solve"):  # stochman 0.3 calls torch.solve, removed in torch 1.9+
        torch._stochman_solve = True
        torch.solve = lambda b, a: (torch.linalg.solve(a, b), None)

    class HalfPlaneSM(stochman.manifold.Manifold):
        def metric(self, points):
            return torch.eye(2, dtype=points.dtype).expand(len(points), 2, 2) / points[:, 1, None, None] ** 2

    return {"torch": torch, "HalfPlane": HalfPlaneSM}


# --------------------------------------------------------------------------------------------
# (a)-(c) on the closed forms, with the peers
# --------------------------------------------------------------------------------------------
def closed_forms(rng, n, n_peer):
    header(f"closed forms: exp ({n} starts on the Poincaré half-plane)")
    z = np.column_stack([rng.uniform(-1, 1, n), rng.uniform(0.5, 2.0, n)])
    v = rng.normal(scale=0.5, size=(n, 2))
    exact = half_plane_exp(z, v)
    scale = np.maximum(np.abs(z).max(1), np.abs(v).max(1))
    res, t_ours = timed(lambda: lg.exp_map(HalfPlane(), z, v))
    err_ours = np.max(np.abs(res.points - exact).max(1) / scale)
    print(
        f"latentgeo exp_map (Python metric callback): {t_ours / n * 1e6:9.1f} us/start, "
        f"max error {err_ours:.2e} (relative to the coordinate scale)"
    )
    rows = [("latentgeo", t_ours / n, err_ours)]
    gs = load_geomstats()
    if gs is not None:
        torch = gs["torch"]
        zt, vt = (torch.tensor(a[:n_peer]) for a in (z, v))
        for label, steps, kind, count in (
            ("geomstats default (10 Euler steps)", 10, "euler", n_peer),
            ("geomstats tuned (RK4, 100 steps)", 100, "rk4", max(n_peer // 5, 2)),
        ):
            sp = gs["space"](gs["HalfPlane"], steps, kind)
            out, t = timed(lambda: sp.metric.exp(vt[:count], zt[:count]).detach().numpy())
            err = np.max(np.abs(out - exact[:count]).max(1) / scale[:count])
            rows.append((label, t / count, err))
            print(f"{label}: {t / count * 1e6:9.1f} us/start, max error {err:.2e}")
    sm = load_stochman()
    if sm is not None:
        torch = sm["torch"]
        manifold = sm["HalfPlane"]()
        count = min(n_peer, 50)

        def run():
            return np.concatenate(
                [
                    manifold.expmap(torch.tensor(z[i : i + 1]), torch.tensor(v[i : i + 1])).detach().numpy()
                    for i in range(count)
                ]
            )

        try:
            out, t = timed(run)
            err = np.max(np.abs(out - exact[:count]).max(1) / scale[:count])
            rows.append(("stochman expmap", t / count, err))
            print(f"stochman expmap: {t / count * 1e6:9.1f} us/start, max error {err:.2e}")
        except Exception as exc:
            print(f"stochman expmap failed: {type(exc).__name__}: {exc}")
    for label, t, err in rows[1:]:
        print(
            f"  {label}: {t / rows[0][1]:8.1f}x the time of latentgeo, error {err / max(rows[0][2], 1e-300):9.2e}x "
            f"that of latentgeo"
        )

    header(f"closed forms: log ({min(n, 1000)} pairs on the half-plane)")
    m = min(n, 1000)
    z0 = np.column_stack([rng.uniform(-1, 1, m), rng.uniform(0.5, 2.0, m)])
    z1 = np.column_stack([rng.uniform(-1, 1, m), rng.uniform(0.5, 2.0, m)])
    exact = half_plane_log(z0, z1)
    res, t = timed(lambda: lg.log_map(HalfPlane(), z0, z1))
    err = np.max(np.abs(res.vectors - exact).max(1) / np.abs(exact).max(1))
    back = lg.exp_map(HalfPlane(), z0, res.vectors).points
    print(
        f"latentgeo log_map: {t / m * 1e3:8.2f} ms/pair, max relative error {err:.2e}, "
        f"round trip {np.abs(back - z1).max():.2e}, {res.converged.sum()}/{m} converged"
    )
    if gs is not None:
        torch = gs["torch"]
        count = min(n_peer, 20)
        sp = gs["space"](gs["HalfPlane"], 10, "euler")
        out, t_gs = timed(lambda: sp.metric.log(torch.tensor(z1[:count]), torch.tensor(z0[:count])).detach().numpy())
        err_gs = np.nanmax(np.abs(out - exact[:count]).max(1) / np.abs(exact[:count]).max(1))
        print(
            f"geomstats log (default shooting): {t_gs / count * 1e3:8.2f} ms/pair, max relative error {err_gs:.2e}, "
            f"NaN pairs {int(np.isnan(out).any(1).sum())}/{count}"
        )

    header(f"closed forms: parallel transport ({n} vectors along great circles of the unit sphere)")
    z = rng.normal(scale=0.6, size=(n, 2))
    v, w = rng.normal(scale=0.5, size=(n, 2)), rng.normal(size=(n, 2))
    end, exact = sphere_transport(z, v, w)
    geodesics = lg.exp_map(Sphere(), z, v)
    res, t = timed(lambda: lg.parallel_transport(Sphere(), geodesics, w))
    err = np.max(np.abs(res.vectors - exact).max(1) / np.abs(exact).max(1))
    print(f"latentgeo parallel_transport: {t / n * 1e6:9.1f} us/vector, max relative error {err:.2e}")
    if gs is not None:
        torch = gs["torch"]
        count = min(n_peer, 5)
        sp = gs["space"](gs["Sphere"], 10, "euler")
        zt, vt, wt = (torch.tensor(a[:count]) for a in (z, v, w))
        try:
            out, t_gs = timed(lambda: sp.metric.ladder_parallel_transport(wt, zt, vt)["transported_tangent_vec"])
            out = out.detach().numpy()
            err_gs = np.max(np.abs(out - exact[:count]).max(1) / np.abs(exact[:count]).max(1))
            print(
                f"geomstats ladder_parallel_transport (default): {t_gs / count * 1e3:8.2f} ms/vector, "
                f"max relative error {err_gs:.2e}; latentgeo {t_gs / count / (t / n):.0f}x faster"
            )
        except Exception as exc:
            print(f"geomstats ladder_parallel_transport failed: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# (a)-(c) on RHVAEs
# --------------------------------------------------------------------------------------------
def rhvae_suite(name, metric, data, rng, n_exp, n_log, n_transport, n_threads):
    d = metric.dim
    header(f"{name} (d = {d}, K = {metric.n_centroids} centroids)")
    pick = lambda k: data[rng.integers(0, len(data), k)]  # noqa: E731
    # (b) log map against the discrete geodesic alone (default settings), the same pairs
    z0, z1 = pick(n_log), pick(n_log)
    t_disc = t_log = np.inf
    for _ in range(3):  # interleaved, so that both see the same machine
        discrete, t = timed(lambda: lg.geodesics(metric, z0, z1, progress=False, n_threads=n_threads))
        t_disc = min(t_disc, t)
        log, t = timed(lambda: lg.log_map(metric, z0, z1, n_threads=n_threads))
        t_log = min(t_log, t)
    back = lg.exp_map(metric, z0, log.vectors, n_threads=n_threads).points
    k = min(n_log, 50)
    tight = lg.geodesics(metric, z0[:k], z1[:k], tol=1e-11, progress=False, n_threads=n_threads)
    gap = np.max(np.abs(log.distances[:k] / tight.length - 1))
    print(
        f"(b) log map, {n_log} pairs: {t_log / n_log * 1e3:.2f} ms/pair vs discrete geodesic alone "
        f"{t_disc / n_log * 1e3:.2f} ms/pair -> ratio {t_log / t_disc:.2f}; "
        f"{log.converged.sum()}/{n_log} converged, median {np.median(log.n_iter):.0f} Newton steps, "
        f"round trip {np.abs(back - z1).max():.1e}, |length / tight discrete length - 1| <= {gap:.1e}"
    )
    # (a) exp map: random directions with the G-length of the median distance between data points
    z = pick(n_exp)
    u = rng.normal(size=(n_exp, d))
    v = u / np.sqrt(metric.quadratic_form(z, u))[:, None] * np.median(discrete.length)
    exp, t_exp = timed(lambda: lg.exp_map(metric, z, v, n_threads=n_threads), repeat=3)
    _, t_one = timed(lambda: lg.exp_map(metric, z[: n_exp // 10], v[: n_exp // 10], n_threads=1))
    loose, t_loose = timed(lambda: lg.exp_map(metric, z, v, rtol=1e-9, n_threads=n_threads), repeat=3)
    print(
        f"(a) exp map, {n_exp} starts: {t_exp:.3f} s on {lg.max_threads() if n_threads is None else n_threads} "
        f"threads ({t_one * 10 / n_exp * 1e6:.0f} us/start on 1 thread); steps median {np.median(exp.n_steps):.0f}, "
        f"max {exp.n_steps.max()}; max speed drift {exp.speed_drift.max():.1e}; "
        f"{exp.converged.sum()}/{n_exp} converged; with rtol=1e-9 {t_loose:.3f} s (endpoints within "
        f"{np.abs(loose.points - exp.points).max():.1e} of rtol=1e-10)"
    )
    # (c) transport: along exp geodesics, along one geodesic, along minimising geodesics (with log)
    m = n_transport
    w = rng.normal(size=(m, 2, d))  # two vectors per geodesic: their inner product must be kept
    res, t_tr = timed(lambda: lg.parallel_transport(metric, exp_subset(exp, m), w, n_threads=n_threads))
    g0, g1 = metric.metric(exp.starts[:m]), metric.metric(exp.points[:m])
    before = np.einsum("na,nab,nb->n", w[:, 0], g0, w[:, 1])
    after = np.einsum("na,nab,nb->n", res.vectors[:, 0], g1, res.vectors[:, 1])
    norms = np.sqrt(np.einsum("nia,nab,nib->ni", w, g0, w).prod(1))
    many, t_many = timed(lambda: lg.parallel_transport(metric, exp_subset(exp, 1), w[None, :, 0], n_threads=n_threads))
    p = min(m, n_log)
    along, t_along = timed(lambda: lg.transport_along_geodesic(metric, z0[:p], z1[:p], w[:p, 0], n_threads=n_threads))
    print(
        f"(c) transport: {m} geodesics x 2 vectors {t_tr / m * 1e6:.0f} us/geodesic, "
        f"max |<w1, w2>_G change| / (|w1| |w2|) {np.max(np.abs(after - before) / norms):.1e}; "
        f"{m} vectors along one geodesic {t_many * 1e3:.1f} ms; transport_along_geodesic of {p} pairs "
        f"(log map included) {t_along / p * 1e3:.2f} ms/pair, {along.converged.sum()}/{p} converged"
    )


def exp_subset(result, m):
    return lg.ExpMapResult(
        points=result.points[:m],
        t=None,
        curves=None,
        velocities=None,
        converged=result.converged[:m],
        status=result.status[:m],
        n_steps=result.n_steps[:m],
        n_rejected=result.n_rejected[:m],
        speed_drift=result.speed_drift[:m],
        t_reached=result.t_reached[:m],
        starts=result.starts[:m],
        initial_velocities=result.initial_velocities[:m],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--skip-peers", action="store_true", help="no geomstats/stochman")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    scale = 10 if args.quick else 1
    print(
        f"latentgeo {lg.__version__}, OpenMP {lg.openmp_enabled()}, {lg.max_threads()} threads, "
        f"numpy {np.__version__}, python {sys.version.split()[0]}"
    )
    if not args.skip_peers:
        closed_forms(rng, 1000 // scale, 50 // (5 if args.quick else 1))
    digits = lg.datasets.load_digits_rhvae()
    rhvae_suite(
        "digits RHVAE", digits.metric, digits.latent, rng, 10_000 // scale, 1000 // scale, 1000 // scale, args.n_threads
    )
    metric8, data8 = synthetic_rhvae(rng)
    rhvae_suite("synthetic RHVAE", metric8, data8, rng, 10_000 // scale, 200 // scale, 1000 // scale, args.n_threads)


if __name__ == "__main__":
    main()
