"""Benchmark: statistics on the latent manifold.

(a) Fréchet mean of 1 000 latent codes: the shipped digits RHVAE (d = 2) and a synthetic d = 8
    RHVAE (K = 400): time on 1 and 2 threads, iterations, final relative gradient, and the cost in
    units of one batch of 1 000 log maps measured in the same run;
(b) k-medoids with k = 10 on 1 000 digits codes: the 499 500-pair geodesic distance matrix and the
    PAM swaps on it;
(c) the closed-form half-plane: Fréchet mean and k-medoids of a few points, latentgeo against
    geomstats' FrechetMean / RiemannianKMedoids given the same metric (when installed), default
    and tuned exp solvers, with the error measured by the closed-form log map (the relative norm
    of Σ log_m(zᵢ) at the returned mean);
(d) the samplers and interpolation on the digits: sample_riemannian (1 000 samples), brownian_motion
    (1 000 paths x 100 steps), interpolate (100 pairs x 10 points, against the geodesics alone).

Run:  python benchmarks/bench_statistics.py [--codes 1000] [--kmedoids-codes 1000] [--gs-points 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import latentgeo as lg
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_toolbox import HalfPlane, half_plane_log, header, load_geomstats, synthetic_rhvae, timed  # noqa: E402


def digits_codes(n: int, seed: int = 0):
    data = lg.datasets.load_digits_rhvae()
    idx = np.random.default_rng(seed).choice(len(data.latent), size=min(n, len(data.latent)), replace=False)
    return data.metric, data.latent[idx]


# --------------------------------------------------------------------------------------------
# (a) Fréchet means
# --------------------------------------------------------------------------------------------
def frechet_section(name, metric, codes, repeat):
    header(f"(a) Fréchet mean of {len(codes)} codes, {name}")
    _, t_log = timed(lambda: lg.log_map(metric, codes.mean(axis=0), codes, n_threads=1), repeat)
    print(f"  baseline: one batch of {len(codes)} log maps (discrete geodesics + shooting), 1 thread: {t_log:.2f} s")
    for threads in (1, 2):
        res, t = timed(lambda t=threads: lg.frechet_mean(metric, codes, n_threads=t), repeat)
        print(
            f"  frechet_mean, {threads} thread(s): {t:7.2f} s = {t / t_log:5.2f} log batches; {res.n_iter} steps, "
            f"relative gradient {res.gradient_norm:.1e}, {res.status}, rms distance {np.sqrt(res.variance):.4f}"
        )
    shift = np.linalg.norm(res.mean - codes.mean(axis=0))
    print(
        f"  |Fréchet mean - Euclidean mean| = {shift:.4f} (rms Euclidean spread "
        f"{np.sqrt(np.mean(np.sum((codes - codes.mean(axis=0)) ** 2, axis=1))):.4f})"
    )


# --------------------------------------------------------------------------------------------
# (b) k-medoids
# --------------------------------------------------------------------------------------------
def kmedoids_section(codes, k):
    metric, points = codes
    m = len(points)
    header(f"(b) k-medoids, k = {k}, on {m} digits codes ({m * (m - 1) // 2} geodesics)")
    start = time.perf_counter()
    dist = lg.geodesic_distances(metric, points, progress=False)
    t_dist = time.perf_counter() - start
    pairs = m * (m - 1) // 2
    print(
        f"  distance matrix ({lg.max_threads()} threads): {t_dist:8.1f} s, {pairs / t_dist:8.0f} pairs/s, "
        f"{len(dist.failed)} pairs failed, {int(np.sum(~dist.converged)) // 2} not converged"
    )
    res, t_pam = timed(lambda: lg.kmedoids(None, points, k, distances=dist.distances), 1)
    print(
        f"  PAM swaps on the matrix (n_init = 10): {t_pam:6.2f} s, {res.n_iter} swaps in the best restart, "
        f"inertia {res.inertia:.4f}; cluster sizes {np.bincount(res.labels, minlength=k).tolist()}"
    )
    print(f"  total {t_dist + t_pam:.1f} s (target: <= 600 s on 2 cores)")


# --------------------------------------------------------------------------------------------
# (c) closed form, with geomstats
# --------------------------------------------------------------------------------------------
def half_plane_residual(mean, points):
    """‖Σ log_m(zᵢ)‖_G / (M · rms distance) at m by the closed-form log map."""
    logs = half_plane_log(np.tile(mean, (len(points), 1)), points)
    g = logs.mean(axis=0)
    dist = np.linalg.norm(logs, axis=1) / mean[1]
    return np.linalg.norm(g) / mean[1] / np.sqrt(np.mean(dist**2))


def closed_form_section(n_points, repeat):
    header(f"(c) half-plane, {n_points} points: Fréchet mean and k-medoids (k = 2) against geomstats")
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-1, 1, n_points), rng.uniform(0.5, 2.0, n_points)])
    res, t_ours = timed(lambda: lg.frechet_mean(HalfPlane(), pts), repeat)
    err_ours = half_plane_residual(res.mean, pts)
    print(f"  latentgeo frechet_mean (Python metric callback): {t_ours:8.3f} s, residual {err_ours:.1e}")
    km, t_km = timed(lambda: lg.kmedoids(HalfPlane(), pts, 2, progress=False), repeat)
    print(f"  latentgeo kmedoids: {t_km:8.3f} s, medoids {sorted(km.medoids.tolist())}")
    gs = load_geomstats()
    if gs is None:
        return
    torch = gs["torch"]
    from geomstats.learning.frechet_mean import FrechetMean
    from geomstats.learning.kmedoids import RiemannianKMedoids

    for label, kwargs in (("default (10 Euler steps)", {}), ("tuned (100 RK4 steps)", {"n_steps": 100, "step": "rk4"})):
        space = gs["space"](gs["HalfPlane"], **kwargs)
        est = FrechetMean(space)
        _, t_gs = timed(lambda e=est: e.fit(torch.tensor(pts)), 1)
        mean_gs = est.estimate_.detach().numpy()
        err_gs = half_plane_residual(mean_gs, pts)
        print(
            f"  geomstats FrechetMean, {label}: {t_gs:8.2f} s ({t_gs / t_ours:6.0f}x latentgeo), "
            f"residual {err_gs:.1e}, |mean - latentgeo| {np.linalg.norm(mean_gs - res.mean):.1e}"
        )
    space = gs["space"](gs["HalfPlane"])
    kmed = RiemannianKMedoids(space, n_clusters=2)
    _, t_gkm = timed(lambda: kmed.fit(torch.tensor(pts)), 1)
    print(f"  geomstats RiemannianKMedoids (default exp/log): {t_gkm:8.2f} s ({t_gkm / t_km:6.0f}x latentgeo)")


# --------------------------------------------------------------------------------------------
# (d) samplers and interpolation
# --------------------------------------------------------------------------------------------
def sampler_section(codes, repeat):
    metric, points = codes
    header("(d) samplers and interpolation on the digits model")
    for density in ("inverse_volume", "volume"):
        for threads in (1, 2):
            res, t = timed(
                lambda s=density, t=threads: lg.sample_riemannian(metric, 1000, density=s, seed=0, n_threads=t), repeat
            )
            print(
                f"  sample_riemannian({density!r}), 1000 samples, {threads} thread(s): {t:6.2f} s, acceptance "
                f"{res.acceptance_rate:.2f}, ESS {res.ess.min():.0f}, {res.n_divergent} divergent"
            )
    for threads in (1, 2):
        res, t = timed(
            lambda t=threads: lg.brownian_motion(metric, points[0], 1.0, 100, 1000, seed=0, n_threads=t), repeat
        )
        print(
            f"  brownian_motion, 1000 paths x 100 steps, {threads} thread(s): {t:6.2f} s "
            f"({t / 1e5 * 1e6:.2f} us per path step), {int(np.sum(res.completed))} completed"
        )
    a, b = points[:100], points[100:200]
    _, t_geo = timed(lambda: lg.geodesics(metric, a, b, progress=False), repeat)
    _, t_int = timed(lambda: lg.interpolate(metric, a, b, 10), repeat)
    print(f"  interpolate, 100 pairs x 10 points: {t_int:6.2f} s = {t_int / t_geo:.2f} x the geodesics alone")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1000)
    parser.add_argument("--kmedoids-codes", type=int, default=1000)
    parser.add_argument("--gs-points", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs (shared machines)")
    args = parser.parse_args()
    print(f"latentgeo core {lg._core.variant}, {lg.max_threads()} threads")
    frechet_section("digits RHVAE (d = 2)", *digits_codes(args.codes), args.repeat)
    metric8, _ = synthetic_rhvae(np.random.default_rng(0), k=400, d=8)
    rng = np.random.default_rng(1)  # codes near the centroids, as latent means lie near the training codes
    codes8 = metric8.centroids[rng.integers(0, 400, args.codes)] + 0.3 * rng.normal(size=(args.codes, 8))
    frechet_section("synthetic RHVAE (d = 8, K = 400)", metric8, codes8, args.repeat)
    closed_form_section(args.gs_points, args.repeat)
    sampler_section(digits_codes(1000), args.repeat)
    kmedoids_section(digits_codes(args.kmedoids_codes), 10)


if __name__ == "__main__":
    main()
