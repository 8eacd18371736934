"""Benchmark: many geodesics on RHVAE metrics.

Part 1 (K = 2000 centroids, d = 2 and d = 8):

For 200 random pairs of data points, wall time per geodesic and the relative length error
against a high-resolution solve (513 nodes, tol 1e-12) of

  (a) latentgeo discrete, batched (several tolerances; 1 and 2 threads),
  (b) latentgeo neural (``method="neural"``, when latentgeo.solvers.neural exists), on a few pairs,
  (c) stochman 0.3.0's ``Manifold.connecting_geodesic`` (when installed) with the same metric in
      torch, and a PyTorch neural geodesic (the seed's algorithm, written here, 500 Adam steps), on a
      few pairs,

plus 1000 pairwise distances among the means of the shipped digits model (when
``latentgeo.datasets.load_digits_rhvae`` exists). The length of every curve is measured the same
way (fine trapezoid of the sampled curve, or latentgeo's measured length), so errors compare.

Part 2 (``--large-dims``): MNIST-size synthetic RHVAEs, K = 60 000 centroids (pythae keeps one per
training example), d = 2, 8, 16, temperature 1.5 for d >= 8 (0.4 for d = 2), regularization 0.01,
"sum" normalization; centroids either N(0, I) or in 10 clusters (centres N(0, 1.5^2 I), width 0.5).
Pairs of random centroids, 2 threads: ms per geodesic at tol = 1e-5 and at the default tol, length
errors against a tight solve (tol = 1e-10), where the time goes (levels, nodes, iterations,
line-search evaluations, metric evaluations and kernel time per level), and, with ``--baseline``,
the same solves by another latentgeo checkout (e.g. commit d20a480) run side by side in a
subprocess. Build the baseline into its own directory, e.g.

    git worktree add ../old d20a480 && (cd ../old && <build> )
    python benchmarks/bench_geodesics.py --parts large --baseline ../old/python

Run:  python benchmarks/bench_geodesics.py [--parts small large digits] [--pairs 200] [--slow-pairs 2]
      [--dims 2 8] [--ref-nodes 513] [--large-dims 2 8 16] [--baseline PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import latentgeo as lg
import numpy as np

K = 2000


def make_metric(d: int, seed: int = 0):
    """A clustered RHVAE-like metric: 10 clusters of 200 centroids, pythae's "sum" convention."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((10, d))
    centroids = np.repeat(centres, K // 10, axis=0) + 0.5 * rng.standard_normal((K, d))
    lower = np.tril(0.2 * rng.standard_normal((K, d, d)), -1)
    lower += np.exp(0.3 * rng.standard_normal((K, d)))[:, :, None] * np.eye(d)
    temperature = 0.4 if d == 2 else 2.0  # d = 8 with T = 1: cross-cluster pairs hit max_iter (see the notes)
    metric = lg.RHVAEMetric(centroids, L=lower, temperature=temperature, regularization=1e-2, normalization="sum")
    return metric, centroids


def random_pairs(centroids: np.ndarray, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(centroids), (2, n))
    noise = 0.05 * rng.standard_normal((2, n, centroids.shape[1]))
    return centroids[i] + noise[0], centroids[j] + noise[1]


def sampled_length(metric, curve_points: np.ndarray) -> float:
    """Length of a densely sampled curve (N, d) on uniform times: 2nd-order velocities, trapezoid."""
    t = np.linspace(0.0, 1.0, len(curve_points))
    v = lg.discrete_velocity(curve_points, t)
    return float(lg.curve_length(metric, curve_points, v, t))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def kernel_point_cost(metric, d: int) -> float:
    """Seconds per point of one-thread quadratic_form with gradients, measured now (the machine
    may be shared: the cost of a geodesic in these units does not depend on its load)."""
    z = np.random.default_rng(5).standard_normal((4000, d))
    best = np.inf
    for _ in range(3):
        _, seconds = timed(metric.quadratic_form, z, z, grad=True, n_threads=1)
        best = min(best, seconds / len(z))
    return best


def row(name: str, seconds: float, n: int, errors: np.ndarray, converged=None, note: str = "", unit=None):
    conv = "" if converged is None else f"{100.0 * np.mean(converged):5.1f}%"
    units = "" if unit is None else f"{seconds / n / unit:9.0f}"
    print(
        f"  {name:<40s} {1e3 * seconds / n:10.2f} {units:>9s} {np.max(errors):10.2e} {np.median(errors):10.2e} "
        f"{conv:>7s}  {note}"
    )


# ----------------------------------------------------------------------------------------------
# Torch baselines
# ----------------------------------------------------------------------------------------------
def torch_metric_fn(metric):
    """G(z) of the RHVAE formula in torch (float64)."""
    import torch

    c = torch.tensor(metric.centroids)
    m = torch.tensor(metric.M)
    scale = 1.0 if metric.normalization == "sum" else 1.0 / len(c)
    eye = torch.eye(metric.dim, dtype=torch.float64)

    def g(z):
        w = torch.exp(-(torch.cdist(z, c) ** 2) / metric.temperature**2)
        ginv = scale * torch.einsum("nk,kab->nab", w, m) + metric.regularization * eye
        return torch.cholesky_inverse(torch.linalg.cholesky(ginv))

    return g


NEURAL_STEPS = 500


def torch_neural_geodesic(g, a, b, steps=NEURAL_STEPS, n_t=100, hidden=32, lr=1e-2, seed=0):
    """The seed's neural geodesic: an MLP t -> z with endpoints fixed by scale and shift, trained by
    Adam on the discrete energy (1/N) Σ γ̇ᵀGγ̇ (central finite-difference velocities)."""
    import torch

    torch.manual_seed(seed)
    d = len(a)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(1, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, d),
    ).double()
    za, zb = torch.tensor(a), torch.tensor(b)

    def curve(t):
        out = mlp(t[:, None])
        ends = mlp(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
        scale = (za - zb) / (ends[0] - ends[1])
        shift = (za * ends[1] - zb * ends[0]) / (ends[1] - ends[0])
        return out * scale + shift

    t = torch.linspace(0, 1, n_t, dtype=torch.float64)
    eps = np.finfo(float).eps ** (1 / 3)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        z = curve(t)
        v = (curve(t + eps) - curve(t - eps)) / (2 * eps)
        loss = torch.einsum("na,nab,nb->n", v, g(z), v).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return curve(torch.linspace(0, 1, 4001, dtype=torch.float64)).numpy()


def stochman_geodesic(g, a, b):
    import torch
    from stochman.manifold import Manifold

    class RHVAEManifold(Manifold):
        def metric(self, points):
            return g(points)

    curve, _ = RHVAEManifold().connecting_geodesic(torch.tensor(a)[None], torch.tensor(b)[None])
    with torch.no_grad():
        return curve(torch.linspace(0, 1, 4001, dtype=torch.float64)).reshape(-1, len(a)).numpy()


def baseline(name, fn, metric, starts, ends, ref, unit):
    errors, total = [], 0.0
    for a, b, r in zip(starts, ends, ref):
        pts, seconds = timed(fn, a, b)
        total += seconds
        errors.append(abs(sampled_length(metric, pts) / r - 1.0))
    row(name, total, len(starts), np.array(errors), unit=unit)
    return total / len(starts)


# ----------------------------------------------------------------------------------------------
def bench_dimension(d: int, n_pairs: int, n_slow: int, ref_nodes: int) -> None:
    metric, centroids = make_metric(d)
    starts, ends = random_pairs(centroids, n_pairs)
    print(f"\n== RHVAE K={K}, d={d}, {n_pairs} pairs (threads available: {lg.max_threads()})")
    ref, seconds = timed(
        lg.geodesics, metric, starts, ends, n_nodes=ref_nodes, tol=1e-12, max_iter=2000, progress=False
    )
    print(
        f"  reference: {ref_nodes} nodes, tol 1e-12: {seconds:.1f} s, converged {ref.converged.mean():.0%}, "
        f"straight/geodesic length: median {np.median(ref.straight_length / ref.length):.3f}, "
        f"max {np.max(ref.straight_length / ref.length):.3f}"
    )
    unit = kernel_point_cost(metric, d)
    print(f"  one kernel point-evaluation (quadratic form + gradients, 1 thread, measured now): {1e6 * unit:.2f} us")
    print(f"  {'method':<40s} {'ms/geodesic':>10s} {'kernel-pts':>9s} {'max relerr':>10s} {'median':>10s} {'conv':>7s}")
    timings = {}
    for tol in (1e-4, 1e-5, 1e-6, 1e-8):
        for threads in (1, 2):
            batch, seconds = timed(lg.geodesics, metric, starts, ends, tol=tol, n_threads=threads, progress=False)
            errors = np.abs(batch.length / ref.length - 1.0)
            nodes = np.array([len(batch[i].nodes) for i in range(len(batch))])
            timings[tol, threads] = seconds / n_pairs
            row(
                f"latentgeo discrete tol={tol:g} threads={threads}",
                seconds,
                n_pairs,
                errors,
                batch.converged,
                f"nodes median {int(np.median(nodes))}, iters {batch.n_iter.mean():.0f}",
                unit / threads,
            )
        print(f"    thread scaling (1 -> 2 threads): {timings[tol, 1] / timings[tol, 2]:.2f}x")
    if n_slow == 0:  # --slow-pairs 0: the discrete solver only
        return
    sub = slice(0, n_slow)
    slow = {}
    try:
        import latentgeo.solvers.neural  # noqa: F401

        errors, total = [], 0.0
        for a, b, r in zip(starts[sub], ends[sub], ref.length[sub]):
            res, seconds = timed(lg.geodesic, metric, a, b, method="neural", progress=False)
            total += seconds
            errors.append(abs(sampled_length(metric, res.curve(np.linspace(0, 1, 4001))) / r - 1.0))
        row(f"latentgeo neural ({n_slow} pairs)", total, n_slow, np.array(errors), unit=unit)
        slow["latentgeo neural"] = total / n_slow
    except ImportError:
        print("  latentgeo neural: latentgeo.solvers.neural is not available in this build; skipped")
    try:
        import torch

        torch.set_num_threads(2)
        g = torch_metric_fn(metric)
        slow["torch neural"] = baseline(
            f"torch neural (seed, {NEURAL_STEPS} steps, {n_slow} pairs)",
            lambda a, b: torch_neural_geodesic(g, a, b),
            metric,
            starts[sub],
            ends[sub],
            ref.length[sub],
            unit,
        )
        try:
            import stochman  # noqa: F401

            slow["stochman"] = baseline(
                f"stochman connecting_geodesic ({n_slow} pairs)",
                lambda a, b: stochman_geodesic(g, a, b),
                metric,
                starts[sub],
                ends[sub],
                ref.length[sub],
                unit,
            )
        except ImportError:
            print("  stochman: not installed (pip install stochman==0.3.0); skipped")
    except ImportError:
        print("  torch: not installed; torch baselines skipped")
    ours = timings[1e-5, 2]
    for name, seconds in slow.items():
        print(f"    latentgeo discrete (tol 1e-5, 2 threads) is {seconds / ours:,.0f}x faster than {name}")
    print(
        "  (kernel-pts: wall time per geodesic in units of one-thread kernel point-evaluations x threads,\n"
        "   i.e. the work per geodesic independent of the machine's load)"
    )


def bench_digits() -> None:
    try:
        from latentgeo.datasets import load_digits_rhvae
    except ImportError:
        print("\n== digits: latentgeo.datasets.load_digits_rhvae is not available in this build; skipped")
        return
    model = load_digits_rhvae()
    metric, means = model.metric, model.latent
    rng = np.random.default_rng(0)
    pts = means[rng.choice(len(means), size=min(46, len(means)), replace=False)]  # 46 points: 1035 pairs
    n = len(pts) * (len(pts) - 1) // 2
    print(
        f"\n== digits model (K = {metric.n_centroids} centroids, d = {metric.dim}): {n} pairwise distances "
        f"among {len(pts)} latent means"
    )
    for threads in (1, 2):
        res, seconds = timed(lg.geodesic_distances, metric, pts, tol=1e-5, n_threads=threads, progress=False)
        print(
            f"  tol 1e-5, {threads} thread(s): {seconds:.2f} s ({1e3 * seconds / n:.2f} ms each), "
            f"{len(res.failed)} not converged"
        )


# ----------------------------------------------------------------------------------------------
# Part 2: K = 60 000
# ----------------------------------------------------------------------------------------------
LARGE_K = 60_000
LARGE_PAIRS = {2: 16, 8: 8, 16: 4}  # pairs per case; the baseline needs ~1 min per d = 16 clustered pair


def large_model(d: int, clustered: bool, seed: int = 0) -> dict:
    """Arrays of a synthetic MNIST-size RHVAE (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if clustered:
        centres = 1.5 * rng.standard_normal((10, d))
        centroids = centres[rng.integers(0, 10, LARGE_K)] + 0.5 * rng.standard_normal((LARGE_K, d))
    else:
        centroids = rng.standard_normal((LARGE_K, d))
    lower = np.tril(0.2 * rng.standard_normal((LARGE_K, d, d)), -1)
    lower += np.exp(0.3 * rng.standard_normal((LARGE_K, d)))[:, :, None] * np.eye(d)
    return {"centroids": centroids, "L": lower, "temperature": 1.5 if d >= 8 else 0.4, "regularization": 0.01}


def large_pairs(centroids: np.ndarray, n: int, seed: int = 1):
    i, j = np.random.default_rng(seed).integers(0, len(centroids), (2, n))
    return centroids[i], centroids[j]


def timed_geodesics(lg_module, model: dict, starts, ends, tol: float) -> dict:
    """lg.geodesics on 2 threads; works with any latentgeo version (used by the baseline worker)."""
    metric = lg_module.RHVAEMetric(
        model["centroids"],
        L=model["L"],
        temperature=model["temperature"],
        regularization=model["regularization"],
        normalization="sum",
    )
    batch, seconds = timed(lg_module.geodesics, metric, starts, ends, tol=tol, n_threads=2, progress=False)
    return {
        "seconds": seconds,
        "length": np.asarray(batch.length),
        "converged": np.asarray(batch.converged),
        "straight": np.asarray(batch.straight_length),
    }


def solver_statistics(metric, starts, ends, tol: float):
    """The batch solve that lg.geodesics runs, through the private core entry point, which also
    returns per-level statistics: (seconds, lengths, converged, levels[pair][level] tuples of
    (segments, iterations, evaluations, metric points, kernel seconds, length))."""
    from latentgeo import _core
    from latentgeo.metrics import native_kernel
    from latentgeo.solvers.options import SOLVER_OPTIONS, solver_options

    options = solver_options(None, tol, None, dict(SOLVER_OPTIONS))
    kernel, scale = native_kernel(metric)
    empty = np.zeros((0, starts.shape[1]))
    out, seconds = timed(_core.geodesic_batch, metric, kernel, scale, starts, ends, empty, 0, options, 2)
    return seconds, out["length"], out["status"] == 0, out["levels"]


def baseline_worker(path_in: str, path_out: str) -> None:
    """Run in a subprocess whose PYTHONPATH selects the baseline latentgeo."""
    import latentgeo as baseline_lg

    data = np.load(path_in)
    model = {k: data[k] for k in ("centroids", "L")}
    model.update(temperature=float(data["temperature"]), regularization=float(data["regularization"]))
    res = timed_geodesics(baseline_lg, model, data["starts"], data["ends"], float(data["tol"]))
    np.savez(path_out, **res)


def run_baseline(baseline: str, model: dict, starts, ends, tol: float):
    with tempfile.TemporaryDirectory() as tmp:
        path_in, path_out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(path_in, starts=starts, ends=ends, tol=tol, **model)
        env = dict(os.environ, PYTHONPATH=os.path.abspath(baseline))
        subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", path_in, path_out], env=env, check=True)
        out = np.load(path_out)
        return {k: out[k] for k in out.files}


def print_levels(levels, wall: float) -> None:
    """Per level: how many pairs reached it, nodes, iterations, line-search evaluations, metric
    evaluations (points) and kernel time, averaged over the pairs that reached it."""
    depth = max(len(pair) for pair in levels)
    print(
        f"    {'level':>5} {'nodes':>6} {'pairs':>5} {'iterations':>10} {'evaluations':>11} {'evals/iter':>10} "
        f"{'metric points':>13} {'kernel ms':>9}"
    )
    kernel_seconds = 0.0
    for lvl in range(depth):
        rows = np.array([pair[lvl][:5] for pair in levels if len(pair) > lvl], dtype=float)
        segments, iters, evals, points, seconds = rows.mean(axis=0)
        kernel_seconds += rows[:, 4].sum()
        print(
            f"    {lvl + 1:>5} {int(segments) + 1:>6} {len(rows):>5} {iters:>10.1f} {evals:>11.1f} "
            f"{(evals - 1) / max(iters, 1):>10.2f} {points:>13.0f} {1e3 * seconds:>9.1f}"
        )
    points = sum(lvl[3] for pair in levels for lvl in pair) / len(levels)
    print(
        f"    metric points per geodesic: {points:.0f}; kernel time: {100 * kernel_seconds / (2 * wall):.0f}% of the "
        f"2 threads' time\n    (evaluations = 1 + line-search trials; metric points: energy (2n + 1 a trial), "
        f"preconditioner, length (3n))"
    )


def bench_large_case(d: int, clustered: bool, n_pairs: int, baseline) -> None:
    model = large_model(d, clustered)
    metric = lg.RHVAEMetric(
        model["centroids"],
        L=model["L"],
        temperature=model["temperature"],
        regularization=model["regularization"],
        normalization="sum",
    )
    starts, ends = large_pairs(model["centroids"], n_pairs)
    kind = "10 clusters (spread 1.5, width 0.5)" if clustered else "N(0, I) centroids"
    print(
        f"\n== RHVAE K={LARGE_K}, d={d}, {kind}, T={model['temperature']}, lambda=0.01: {n_pairs} random pairs "
        f"of centroids, 2 threads (load average before: {os.getloadavg()[0]:.1f})"
    )
    ref = timed_geodesics(lg, model, starts, ends, 1e-10)
    print(
        f"  reference tol=1e-10: {1e3 * ref['seconds'] / n_pairs:.0f} ms/geodesic, "
        f"converged {ref['converged'].mean():.0%}, "
        f"straight/geodesic length median {np.median(ref['straight'] / ref['length']):.3f}, "
        f"max {np.max(ref['straight'] / ref['length']):.3f}"
    )
    print(f"  {'method':<34s} {'ms/geodesic':>11s} {'max relerr':>10s} {'median':>10s} {'conv':>6s}")

    def show(name, seconds, length, converged, note=""):
        err = np.abs(length / ref["length"] - 1.0)
        print(
            f"  {name:<34s} {1e3 * seconds / n_pairs:>11.1f} {err.max():>10.2e} {np.median(err):>10.2e} "
            f"{100 * np.mean(converged):>5.0f}%  {note}"
        )

    seconds_5, length, converged, levels = solver_statistics(metric, starts, ends, 1e-5)
    show("latentgeo tol=1e-5", seconds_5, length, converged)
    default = timed_geodesics(lg, model, starts, ends, 1e-8)
    show(
        "latentgeo tol=1e-8 (default)",
        default["seconds"],
        default["length"],
        default["converged"],
        f"{default['seconds'] / seconds_5:.1f}x the tol=1e-5 time",
    )
    if baseline:
        old = run_baseline(baseline, model, starts, ends, 1e-5)
        show(
            "baseline tol=1e-5",
            old["seconds"],
            old["length"],
            old["converged"],
            f"latentgeo is {old['seconds'] / seconds_5:.1f}x faster",
        )
    z = model["centroids"][:17]
    unit = min(timed(metric.quadratic_form, z, z, grad=True, n_threads=1)[1] for _ in range(3)) / len(z)
    print(
        f"  where the time goes (latentgeo tol=1e-5; load average now {os.getloadavg()[0]:.1f}; one-thread "
        f"quadratic form + gradient at 17 points, now: {1e3 * unit:.3f} ms/point):"
    )
    print_levels(levels, seconds_5)


def bench_large(dims, baseline, n_pairs=None) -> None:
    if baseline:
        print(f"\nbaseline: latentgeo from {os.path.abspath(baseline)}")
    for d in dims:
        for clustered in (False, True):
            bench_large_case(d, clustered, n_pairs or LARGE_PAIRS.get(d, 4), baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--slow-pairs", type=int, default=2, help="pairs for the slow (neural, stochman) methods")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--ref-nodes", type=int, default=513, help="nodes of the reference solve")
    parser.add_argument(
        "--parts", nargs="+", default=["small", "large", "digits"], choices=["small", "large", "digits"]
    )
    parser.add_argument("--large-dims", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument(
        "--large-pairs",
        type=int,
        help="pairs per K = 60000 case (default 16, 8, 4 for d = 2, 8, 16; a batch of"
        " few pairs leaves one thread idle at its end)",
    )
    parser.add_argument("--baseline", help="python/ directory of another latentgeo build to compare with")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        baseline_worker(*args.worker)
        return
    if "small" in args.parts:
        for d in args.dims:
            bench_dimension(d, args.pairs, args.slow_pairs, args.ref_nodes)
    if "large" in args.parts:
        bench_large(args.large_dims, args.baseline, args.large_pairs)
    if "digits" in args.parts:
        bench_digits()


if __name__ == "__main__":
    main()
