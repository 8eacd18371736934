"""RHVAE metric evaluation: latentgeo's C++ core versus the best plain-numpy float64 code.

Prints points/s and the ratio latentgeo/numpy for G(z) and the quadratic form vᵀG(z)v at
N points, K centroids, d = 2, 8, 16 (all cores), and the cost of ∂G relative to G.

    python benchmarks/bench_metric.py [--n 100000] [--k 2000] [--dims 2 8 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import latentgeo as lg


def numpy_inverse_metric(z, centroids, m_flat, temperature, regularization, chunk=2048):
    """G⁻¹ by chunked GEMM distances, np.exp and a GEMM with the flattened M_k."""
    n, d = z.shape
    c_norm = np.einsum("kd,kd->k", centroids, centroids)
    out = np.empty((n, d * d))
    for start in range(0, n, chunk):
        zc = z[start:start + chunk]
        dist = np.einsum("nd,nd->n", zc, zc)[:, None] + c_norm[None, :] - 2.0 * zc @ centroids.T
        np.multiply(dist, -1.0 / temperature**2, out=dist)
        np.exp(dist, out=dist)
        np.matmul(dist, m_flat, out=out[start:start + chunk])
    out = out.reshape(n, d, d)
    out[:, np.arange(d), np.arange(d)] += regularization
    return out


def numpy_metric(*args):
    return np.linalg.inv(numpy_inverse_metric(*args))


def numpy_quadratic_form(z, v, *args):
    ginv = numpy_inverse_metric(z, *args)
    return np.einsum("nd,nd->n", v, np.linalg.solve(ginv, v[..., None])[..., 0])


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_problem(rng, n, k, d):
    centroids = rng.normal(size=(k, d))
    L = np.tril(rng.normal(scale=0.3, size=(k, d, d)))
    L[:, np.arange(d), np.arange(d)] = np.exp(rng.normal(scale=0.3, size=(k, d)))
    metric = lg.RHVAEMetric(centroids, L=L, temperature=0.8, regularization=1e-2, normalization="sum")
    z = rng.normal(size=(n, d))
    v = rng.normal(size=(n, d))
    return metric, z, v


def run(n, k, dims, n_deriv):
    rng = np.random.default_rng(0)
    print(f"latentgeo {lg.__version__}: OpenMP={lg.openmp_enabled()}, threads={lg.max_threads()}; N={n}, K={k}")
    print(f"{'d':>3} {'task':<16} {'numpy pts/s':>12} {'latentgeo pts/s':>16} {'ratio':>7}")
    for d in dims:
        metric, z, v = make_problem(rng, n, k, d)
        args = (metric.centroids, metric.M.reshape(k, d * d), metric.temperature, metric.regularization)
        np.testing.assert_allclose(metric(z[:500]), numpy_metric(z[:500], *args), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(metric.quadratic_form(z[:500], v[:500]), numpy_quadratic_form(z[:500], v[:500], *args),
                                   rtol=1e-8)
        tasks = {
            "G(z)": (lambda: numpy_metric(z, *args), lambda: metric(z)),
            "quadratic form": (lambda: numpy_quadratic_form(z, v, *args), lambda: metric.quadratic_form(z, v)),
        }
        for name, (np_fn, lg_fn) in tasks.items():
            t_np, t_lg = best_time(np_fn), best_time(lg_fn)
            print(f"{d:>3} {name:<16} {n / t_np:>12.3g} {n / t_lg:>16.3g} {t_np / t_lg:>7.1f}x")
        zs, vs = z[:n_deriv], v[:n_deriv]
        t_g = best_time(lambda: metric(zs))
        t_dg = best_time(lambda: metric.derivative(zs))
        t_q = best_time(lambda: metric.quadratic_form(zs, vs))
        t_qg = best_time(lambda: metric.quadratic_form(zs, vs, grad=True))
        print(f"{d:>3} cost of dG / G (N={n_deriv}): {t_dg / t_g:.2f}x; "
              f"quadratic form with gradient / without: {t_qg / t_q:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=2000)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument("--n-deriv", type=int, default=20_000, help="points for the dG timing (dG is N*d^3)")
    args = parser.parse_args()
    run(args.n, args.k, args.dims, args.n_deriv)


if __name__ == "__main__":
    main()
