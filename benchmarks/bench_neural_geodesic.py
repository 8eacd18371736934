"""Neural geodesic training: latentgeo (numpy + C++ metric) versus PyTorch.

The same algorithm everywhere: the same MLP (1 → 32 → 32 → d, tanh, same initial
parameters), 100 time points, central finite-difference velocities, the energy with the
trapezoid rule, Adam; on an RHVAE metric with K = 2000 centroids at d = 2 and d = 8.

Columns
-------
latentgeo       : ``latentgeo.train`` (hand-written backprop, fused C++ metric gradient).
torch-f64       : PyTorch float64, autograd through a batched metric
                  (weights (N, K) @ M (K, d²), then a batched Cholesky solve).
pythae-f32      : PyTorch float32 with pythae's metric evaluation, broadcasting an
                  (N, K, d, d) array and calling ``torch.inverse`` (how the seed's users run it).

Also times one whole default fit (``latentgeo.neural_geodesic``) at d = 2.
Run: ``python benchmarks/bench_neural_geodesic.py [--steps 2000] [--threads N]``.
"""

from __future__ import annotations

import argparse
import time

import latentgeo as lg
import numpy as np

try:
    import torch
except ImportError:  # the torch columns are skipped
    torch = None

N_POINTS = 100
HIDDEN = (32, 32)
K = 2000
TEMPERATURE = 1.5
REGULARIZATION = 0.01
FD_STEP = np.finfo(np.float64).eps ** (1 / 3)


def make_rhvae(dim: int, rng):
    centroids = rng.normal(size=(K, dim))
    L = np.tril(rng.normal(scale=0.5, size=(K, dim, dim)), -1)
    idx = np.arange(dim)
    L[:, idx, idx] = np.exp(rng.normal(scale=0.5, size=(K, dim)))
    return lg.RHVAEMetric(centroids, L=L, temperature=TEMPERATURE, regularization=REGULARIZATION)


def time_latentgeo(metric, curve, t, steps, n_threads):
    opt = lg.Adam(lr=1e-3)
    lg.train(curve, metric, t, opt, n_threads=n_threads)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        lg.train(curve, metric, t, opt, n_threads=n_threads)
    return (time.perf_counter() - start) / steps


# ----------------------------------------------------------------------------------------
# PyTorch versions
# ----------------------------------------------------------------------------------------
class TorchCurve:
    """The same curve as latentgeo's NeuralGeodesic (seed rescaling + amplitudes), in torch."""

    def __init__(self, curve, dtype):
        self.params = []
        for w, b in curve.layers:
            self.params += [
                torch.tensor(w, dtype=dtype, requires_grad=True),
                torch.tensor(b, dtype=dtype, requires_grad=True),
            ]
        self.z0 = torch.tensor(curve.z_start, dtype=dtype)
        self.z1 = torch.tensor(curve.z_end, dtype=dtype)
        self.amp = torch.tensor(curve._amplitude, dtype=dtype)
        self.dtype = dtype

    def mlp(self, tau):
        x = tau[:, None]
        for i in range(0, len(self.params) - 2, 2):
            x = torch.tanh(x @ self.params[i].T + self.params[i + 1])
        return x @ self.params[-2].T + self.params[-1]

    def __call__(self, tau):
        rows = torch.cat([tau, torch.tensor([0.0, 1.0], dtype=self.dtype)])
        g = self.mlp(rows)
        g0, g1 = g[-2], g[-1]
        u = (g[:-2] - g0) / (g1 - g0)
        tc = tau[:, None]
        return (1 - tc) * self.z0 + tc * self.z1 + self.amp * (u - tc)


def torch_metric_batched(metric, dtype):
    """q(z, v) = vᵀ G(z) v with G⁻¹ = Σ_k M_k w_k(z) + λ I, batched over points."""
    c = torch.tensor(metric.centroids, dtype=dtype)
    d = metric.dim
    m_flat = torch.tensor(metric.M.reshape(len(metric.M), d * d), dtype=dtype)
    eye = torch.eye(d, dtype=dtype)
    t2 = metric.temperature**2

    def q(z, v):
        w = torch.exp(-torch.cdist(z, c).square() / t2)
        ginv = (w @ m_flat).reshape(-1, d, d) + metric.regularization * eye
        chol = torch.linalg.cholesky(ginv)
        x = torch.cholesky_solve(v[:, :, None], chol)
        return (v[:, :, None] * x).sum(dim=(1, 2))

    return q


def torch_metric_pythae(metric, dtype):
    """pythae's evaluation: an (N, K, d, d) broadcast, then torch.inverse."""
    c = torch.tensor(metric.centroids, dtype=dtype)
    d = metric.dim
    m = torch.tensor(metric.M, dtype=dtype)
    eye = torch.eye(d, dtype=dtype)
    t2 = metric.temperature**2

    def q(z, v):
        w = torch.exp(-(torch.norm(c - z.unsqueeze(1), dim=-1) ** 2) / t2)
        ginv = (m.unsqueeze(0) * w.unsqueeze(-1).unsqueeze(-1)).sum(dim=1) + metric.regularization * eye
        g = torch.inverse(ginv)
        return torch.einsum("na,nab,nb->n", v, g, v)

    return q


def time_torch(metric, curve, t, steps, dtype, flavour):
    tcurve = TorchCurve(curve, dtype)
    q = (torch_metric_batched if flavour == "batched" else torch_metric_pythae)(metric, dtype)
    tau = torch.tensor(t, dtype=dtype)
    weights = torch.full((len(t),), 1.0 / (len(t) - 1), dtype=dtype)
    weights[[0, -1]] *= 0.5
    opt = torch.optim.Adam(tcurve.params, lr=1e-3)
    eps = float(FD_STEP)

    def step():
        opt.zero_grad()
        pts = tcurve(tau)
        vel = (tcurve(tau + eps) - tcurve(tau - eps)) / (2 * eps)
        energy = (weights * q(pts, vel)).sum()
        energy.backward()
        opt.step()
        return energy

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def check_same_loss(metric, curve, t):
    """The torch float64 loss equals latentgeo's on the same parameters (sanity check)."""
    tcurve = TorchCurve(curve, torch.float64)
    q = torch_metric_batched(metric, torch.float64)
    tau = torch.tensor(t, dtype=torch.float64)
    weights = np.full(len(t), 1.0 / (len(t) - 1))
    weights[[0, -1]] *= 0.5
    with torch.no_grad():
        pts = tcurve(tau)
        vel = (tcurve(tau + FD_STEP) - tcurve(tau - FD_STEP)) / (2 * FD_STEP)
        value = float((torch.tensor(weights) * q(pts, vel)).sum())
    reference = lg.loss(curve, metric, t)
    return abs(value - reference) / abs(reference)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps timed for latentgeo")
    parser.add_argument("--torch-steps", type=int, default=None, help="steps timed for torch-f64 (default: --steps)")
    parser.add_argument("--pythae-steps", type=int, default=None, help="steps timed for pythae-f32 (default: --steps)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both libraries (default: all)")
    args = parser.parse_args()
    torch_steps = args.torch_steps or args.steps
    pythae_steps = args.pythae_steps or args.steps
    rng = np.random.default_rng(0)
    if torch is None:
        print("torch is not installed: the torch-f64 and pythae-f32 columns are skipped")
    elif args.threads:
        torch.set_num_threads(args.threads)
    t = np.linspace(0.0, 1.0, N_POINTS)
    print(
        f"neural geodesic training step: MLP 1-{HIDDEN[0]}-{HIDDEN[1]}-d tanh, {N_POINTS} time points, central "
        f"differences, energy, Adam; RHVAE K = {K}; threads = {args.threads or lg.max_threads()}"
    )
    print(f"{'d':>3} {'latentgeo':>12} {'torch-f64':>12} {'pythae-f32':>12} {'f64/lg':>8} {'f32/lg':>8}")
    for dim in (2, 8):
        metric = make_rhvae(dim, rng)
        z0, z1 = rng.normal(size=dim), rng.normal(size=dim)
        curve = lg.NeuralGeodesic(z0, z1, hidden=HIDDEN, seed=0)
        row = f"{dim:>3}"
        if torch is not None:
            mismatch = check_same_loss(metric, curve, t)
            assert mismatch < 1e-8, f"torch and latentgeo losses differ by {mismatch:.2e}"
        ours = time_latentgeo(metric, lg.NeuralGeodesic(z0, z1, hidden=HIDDEN, seed=0), t, args.steps, args.threads)
        row += f" {ours * 1e3:>9.3f} ms"
        if torch is None:
            print(row)
            continue
        f64 = time_torch(metric, curve, t, torch_steps, torch.float64, "batched")
        f32 = time_torch(metric, curve, t, pythae_steps, torch.float32, "pythae")
        row += f" {f64 * 1e3:>9.3f} ms {f32 * 1e3:>9.3f} ms {f64 / ours:>7.1f}x {f32 / ours:>7.1f}x"
        print(row, flush=True)

    metric = make_rhvae(2, np.random.default_rng(1))
    z0, z1 = np.array([-1.0, -0.5]), np.array([1.0, 0.8])
    lg.neural_geodesic(metric, z0, z1, seed=0, progress=False, n_steps=5, n_threads=args.threads)  # warm-up
    times, results = [], []
    for seed in range(3):
        start = time.perf_counter()
        results.append(lg.neural_geodesic(metric, z0, z1, seed=seed, progress=False, n_threads=args.threads))
        times.append(time.perf_counter() - start)
    for seed, (elapsed, res) in enumerate(zip(times, results)):
        print(
            f"whole default fit, d = 2, K = {K}, seed {seed}: {elapsed:.3f} s ({res.n_steps} steps, "
            f"{elapsed / max(res.n_steps, 1) * 1e3:.2f} ms/step incl. set-up and evaluation; "
            f"converged = {res.converged}, length = {res.length:.6g})"
        )


if __name__ == "__main__":
    main()
