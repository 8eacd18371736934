"""RHVAE metric evaluation: latentgeo's C++ core against numpy, and against the GEMM roofline.

For K = 2000 and 60 000 centroids (pythae keeps one per training example: an MNIST RHVAE has
K = 60 000) and d = 2, 8, 16 (temperature 1.5 for d >= 8, 0.8 for d = 2, regularization 0.01):

* the kernel's FLOP rate for the quadratic form with gradient, next to the rate that numpy's
  matrix product (BLAS) reaches in the same run on the product of the same shape,
  (N x K) @ (K x d(d+1)/2). FLOPs counted per point and centroid: 3d (distance) + 2p (sum of
  the packed M_k, p = d(d+1)/2) + 2p + 2(d + 1) (the gradient's contraction with u u^T and the
  centroids) -- the exp is not counted, so the rate is a lower bound of the work done;
* points/s and the ratio latentgeo / numpy for G(z), the quadratic form and the quadratic form
  with gradient, where numpy is the best plain-numpy float64 code we know (chunked GEMM
  distances, np.exp, GEMM against the flattened M_k, batched solve);
* the kernel's (point, centroid) pairs per second and thread next to the rate of np.exp alone
  on one thread: every pair needs one exp, so at d = 2, where the rest is a few FLOPs, this is
  the roofline (numpy's own code cannot be faster than its exps);
* the cost per point of small calls (17 and 129 points, one thread: what the geodesic solver does)
  and the cost of dG relative to G.

All cores; the machine may be shared: the load average is printed with every case.

    python benchmarks/bench_metric.py [--ks 2000 60000] [--dims 2 8 16]
"""

from __future__ import annotations

import argparse
import os
import time

import latentgeo as lg
import numpy as np


def chunk_size(k):
    """Points per chunk: N x K weights of at most 32 MB."""
    return max(16, 4_000_000 // k)


def numpy_inverse_metric(z, centroids, m_flat, temperature, regularization):
    """G⁻¹ by chunked GEMM distances, np.exp and a GEMM with the flattened M_k."""
    n, d = z.shape
    chunk = chunk_size(len(centroids))
    c_norm = np.einsum("kd,kd->k", centroids, centroids)
    out = np.empty((n, d * d))
    for start in range(0, n, chunk):
        zc = z[start : start + chunk]
        w = np.einsum("nd,nd->n", zc, zc)[:, None] + c_norm[None, :] - 2.0 * zc @ centroids.T
        np.multiply(w, -1.0 / temperature**2, out=w)
        np.exp(w, out=w)
        np.matmul(w, m_flat, out=out[start : start + chunk])
    out = out.reshape(n, d, d)
    out[:, np.arange(d), np.arange(d)] += regularization
    return out


def numpy_metric(z, *args):
    return np.linalg.inv(numpy_inverse_metric(z, *args))


def numpy_quadratic_form(z, v, *args):
    ginv = numpy_inverse_metric(z, *args)
    return np.einsum("nd,nd->n", v, np.linalg.solve(ginv, v[..., None])[..., 0])


def numpy_quadratic_form_grad(z, v, centroids, m_flat, temperature, regularization):
    """q, dq/dz = (2/T²) Σ_k w_k (uᵀM_k u)(z - c_k), dq/dv = 2u with u = G v; one exp per point and
    centroid (the weights of a chunk of points serve G⁻¹ and the gradient)."""
    n, d = z.shape
    chunk = chunk_size(len(centroids))
    c_norm = np.einsum("kd,kd->k", centroids, centroids)
    q, dqdz, u = np.empty(n), np.empty((n, d)), np.empty((n, d))
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        zc = z[part]
        w = np.einsum("nd,nd->n", zc, zc)[:, None] + c_norm[None, :] - 2.0 * zc @ centroids.T
        np.multiply(w, -1.0 / temperature**2, out=w)
        np.exp(w, out=w)
        ginv = (w @ m_flat).reshape(-1, d, d)
        ginv[:, np.arange(d), np.arange(d)] += regularization
        u[part] = np.linalg.solve(ginv, v[part, :, None])[..., 0]
        q[part] = np.einsum("nd,nd->n", u[part], v[part])
        r = w * (np.einsum("na,nb->nab", u[part], u[part]).reshape(-1, d * d) @ m_flat.T)
        dqdz[part] = (2.0 / temperature**2) * (r.sum(axis=1)[:, None] * zc - r @ centroids)
    return q, dqdz, 2.0 * u


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_problem(rng, k, d):
    centroids = rng.normal(size=(k, d))
    lower = np.tril(0.2 * rng.normal(size=(k, d, d)), -1)
    lower += np.exp(0.3 * rng.normal(size=(k, d)))[:, :, None] * np.eye(d)
    temperature = 1.5 if d >= 8 else 0.8
    return lg.RHVAEMetric(centroids, L=lower, temperature=temperature, regularization=1e-2, normalization="sum")


def flops_per_pair(d):
    p = d * (d + 1) // 2
    return 3 * d + 4 * p + 2 * (d + 1)


def gemm_rate(rng, k, p):
    """FLOP/s of numpy's (N x K) @ (K x p) with N = 256 (BLAS on all cores)."""
    a, b = rng.random((256, k)), rng.random((k, p))
    return 2.0 * a.shape[0] * k * p / best_time(lambda: a @ b, repeat=5)


def exp_rate(rng):
    """np.exp results/s on one thread, arguments in cache: the rate of the weights' exps alone."""
    x, out = -30.0 * rng.random(1 << 16), np.empty(1 << 16)
    return x.size / best_time(lambda: np.exp(x, out=out), repeat=20)


def check_against_numpy(metric, z, v, args):
    """The kernel agrees with the numpy code it is compared with (so both do the same work)."""
    q, dqdz, dqdv = metric.quadratic_form(z, v, grad=True)
    q_np, dqdz_np, dqdv_np = numpy_quadratic_form_grad(z, v, *args)
    np.testing.assert_allclose(q, q_np, rtol=1e-8)
    np.testing.assert_allclose(dqdz, dqdz_np, rtol=1e-7, atol=1e-9 * np.abs(dqdz_np).max())
    np.testing.assert_allclose(dqdv, dqdv_np, rtol=1e-8, atol=1e-12 * np.abs(dqdv_np).max())


def run_case(rng, k, d, n, n_numpy):
    metric = make_problem(rng, k, d)
    p = d * (d + 1) // 2
    args = (metric.centroids, metric.M.reshape(k, d * d), metric.temperature, metric.regularization)
    z, v = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    check_against_numpy(metric, z[:50], v[:50], args)
    print(f"\n== K={k}, d={d}, T={metric.temperature} (load average {os.getloadavg()[0]:.1f})")

    t_qg = best_time(lambda: metric.quadratic_form(z, v, grad=True))
    rate, gemm = n * k * flops_per_pair(d) / t_qg, gemm_rate(rng, k, p)
    print(
        f"  quadratic form + gradient: {rate / 1e9:.1f} GFLOP/s; numpy GEMM ({256}x{k})@({k}x{p}): "
        f"{gemm / 1e9:.1f} GFLOP/s -> {100 * rate / gemm:.0f}% of the GEMM rate"
    )

    per_thread = n * k / t_qg / lg.max_threads()
    print(
        f"  one exp per point and centroid: the kernel does {per_thread / 1e9:.2f}e9 pairs/s per thread, "
        f"{100 * per_thread / exp_rate(rng):.0f}% of the rate of np.exp alone on one thread"
    )

    zs, vs = z[:n_numpy], v[:n_numpy]
    t_q = best_time(lambda: metric.quadratic_form(z, v))
    tasks = {  # name: (numpy code, latentgeo seconds for the n points)
        "G(z)": (lambda: numpy_metric(zs, *args), best_time(lambda: metric(z))),
        "quadratic form": (lambda: numpy_quadratic_form(zs, vs, *args), t_q),
        "q + gradient": (lambda: numpy_quadratic_form_grad(zs, vs, *args), t_qg),
    }
    print(f"  {'task':<16} {'numpy pts/s':>12} {'latentgeo pts/s':>16} {'ratio':>7}")
    for name, (np_fn, t_lg) in tasks.items():
        t_np = best_time(np_fn, repeat=2) / n_numpy
        print(f"  {name:<16} {1 / t_np:>12.3g} {n / t_lg:>16.3g} {t_np * n / t_lg:>7.1f}x")

    small = []
    for m in (17, 129):
        t = best_time(lambda: metric.quadratic_form(z[:m], v[:m], grad=True, n_threads=1), repeat=5)
        small.append(f"{m} points {1e3 * t / m:.3f} ms/point ({m * k * flops_per_pair(d) / t / 1e9:.1f} GFLOP/s)")
    print("  small calls, 1 thread, quadratic form + gradient: " + "; ".join(small))
    zd = z[: max(64, n // 8)]
    t_g, t_dg = best_time(lambda: metric(zd)), best_time(lambda: metric.derivative(zd))
    print(f"  cost of dG / G: {t_dg / t_g:.2f}x; quadratic form with gradient / without: {t_qg / t_q:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[2000, 60_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 16])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"latentgeo {lg.__version__}: OpenMP={lg.openmp_enabled()}, threads={lg.max_threads()}")
    for k in args.ks:
        for d in args.dims:
            # Enough points for ~1 s of work per timing at the slowest setting.
            n = int(np.clip(2e10 / (k * flops_per_pair(d)), 256, 20_000))
            run_case(rng, k, d, n, n_numpy=int(np.clip(4e9 / (k * d * d), 64, 2000)))


if __name__ == "__main__":
    main()
