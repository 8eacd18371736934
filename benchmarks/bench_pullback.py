"""Pullback metrics of decoders: latentgeo against baselines measured in the same run.

1. MLP decoder, C++ core: forward mode versus the same computation vectorised in numpy
   (matmul/einsum), for G(z) and for vᵀGv with its gradients; and the FLOP rate of G(z) against
   numpy GEMMs of the same shapes (every dense layer multiplies W (out × in) with the values and
   the Jacobians, in × N(1 + d)). Geodesics on it and on the shipped digits decoder (ReLU): the
   decoded energy against Simpson's.
2. Convolutional decoder (1×8×8 outputs: Linear, ConvTranspose, BatchNorm, a residual block,
   Conv), torch path (``PullbackMetric.from_torch`` → ``TorchPullbackMetric``): G(z) against
   ``torch.func.vmap(jacfwd)`` followed by JᵀJ, vᵀGv with gradients against the finite-difference
   callable path, and one geodesic (the default decoded energy, and Simpson's) against the
   callable path and stochman's ``connecting_geodesic`` (when stochman is installed), with length
   errors against a tight solve; 16 geodesics with the pairs' evaluations per pair or shared.
3. High-dimensional latents (d = 16 … 1000) on a 784-output tanh MLP: one geodesic with the chord
   preconditioner against the metric preconditioner, same pairs, and their lengths' difference.

    python benchmarks/bench_pullback.py [--n 20000] [--width 256] [--dim 2] [--threads N] [--high-dims 16 64 ...]
                                        [--conv-n 2000] [--torch-threads 1] [--skip-conv]
"""

from __future__ import annotations

import argparse
import time

import latentgeo as lg
import numpy as np


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


def gemm_rate(metric, z, weights, threads):
    """GFLOP/s of G(z) (dense layers on values and Jacobians, then JᵀJ) and of numpy GEMMs of the
    same shapes."""
    n, d = z.shape
    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(w.shape[1], n * (1 + d))) for w in weights]
    layer_flops = sum(2.0 * w.shape[0] * w.shape[1] * n * (1 + d) for w in weights)
    total_flops = layer_flops + 2.0 * weights[-1].shape[0] * d * d * n
    t_g = best_of(lambda: metric(z, n_threads=threads))
    t_gemm = best_of(lambda: [w @ x for w, x in zip(weights, blocks)])
    return total_flops / t_g / 1e9, layer_flops / t_gemm / 1e9


def bench_mlp(args):
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
        (
            "G(z)",
            lambda: metric(z, n_threads=args.threads),
            lambda: (lambda j: np.einsum("nia,nib->nab", j, j))(numpy_jacobian(z, weights, biases)),
        ),
        (
            "vᵀGv + grads",
            lambda: metric.quadratic_form(z, v, True, args.threads),
            lambda: numpy_qf_grad(z, v, weights, biases),
        ),
    ]
    print(
        f"N={args.n}, decoder {args.dim}->{args.width}->{args.width}->{args.out} (tanh), "
        f"threads={args.threads or lg.max_threads()}"
    )
    for name, core, baseline in rows:
        t_core, t_np = best_of(core), best_of(baseline)
        print(
            f"{name:14s} latentgeo {args.n / t_core:10.0f} pts/s   numpy {args.n / t_np:10.0f} pts/s   "
            f"ratio {t_np / t_core:5.2f}x"
        )
    rate, gemm = gemm_rate(metric, z, weights, args.threads)
    print(
        f"G(z) at {rate:.1f} GFLOP/s; numpy GEMMs of the same shapes {gemm:.1f} GFLOP/s: "
        f"{100 * rate / gemm:.0f} % of the GEMM rate"
    )


def bench_mlp_geodesics(args):
    """16 geodesics on C++ decoders, the decoded energy against Simpson's, length errors against
    a tight Simpson solve: the tanh MLP above, and the shipped digits decoder (pythae's default
    ReLU MLP, Bernoulli), whose G jumps across the ReLU hyperplanes."""
    rng = np.random.default_rng(1)
    weights, biases = tanh_mlp(rng, args.dim, args.width, args.out)
    digits = lg.datasets.load_digits_rhvae()
    pick = rng.choice(len(digits.latent), size=(2, 16))
    cases = (
        ("tanh MLP", lg.PullbackMetric(weights, biases, ["tanh", "tanh", "identity"]), rng.normal(size=(2, 16, 2))),
        ("digits ReLU", digits.decoder, (digits.latent[pick[0]], digits.latent[pick[1]])),
    )
    print(
        "\n16 geodesics on C++ decoders (2 threads), ms per geodesic (converged of 16, their max length error "
        "against a tol 1e-10 solve):"
    )
    for name, metric, (starts, ends) in cases:
        tight = lg.geodesics(metric, starts, ends, tol=1e-10, quadrature="decoded", progress=False).length
        cells = []
        for quadrature in ("decoded", "simpson"):
            for tol in (1e-5, 1e-8):
                options = dict(tol=tol, quadrature=quadrature, progress=False)
                seconds = best_of(lambda: lg.geodesics(metric, starts, ends, **options), 1)
                batch = lg.geodesics(metric, starts, ends, **options)
                ok = np.asarray(batch.converged)
                error = np.max(np.abs(batch.length - tight)[ok] / tight[ok]) if ok.any() else np.nan
                cells.append(f"{quadrature} {tol:g}: {1e3 * seconds / 16:7.1f} ({sum(batch.converged)}, {error:.0e})")
        print(f"  {name:12s} " + "   ".join(cells))


def bench_high_dim(args):
    """One geodesic at a time on a tanh MLP d → 256 → 256 → 784 (the size of an MNIST decoder) at
    high latent dimension: the chord preconditioner (G along each segment, O(n d)) against the
    metric one (d × d blocks of G, a decoder Jacobian and a Cholesky per node), same pairs, with
    the lengths' relative difference; the decoded energy's gradient is reverse mode in both."""
    rng = np.random.default_rng(2)
    print("\nhigh-dimensional latents, tanh MLP d → 256 → 256 → 784, one thread, tol 1e-4, s per geodesic:")
    for dim in args.high_dims:
        weights, biases, prev = [], [], dim
        for width in (256, 256, 784):
            weights.append(rng.normal(size=(width, prev)) / np.sqrt(prev))
            biases.append(0.1 * rng.normal(size=width))
            prev = width
        metric = lg.PullbackMetric(weights, biases, ["tanh", "tanh", "identity"])
        start, end = rng.normal(size=(2, dim))
        cells, lengths = [], {}
        for preconditioner in ("chord", "metric"):
            if preconditioner == "metric" and dim > args.metric_max_dim:
                cells.append(f"metric: skipped (d > --metric-max-dim {args.metric_max_dim})")
                continue
            options = dict(tol=1e-4, n_threads=1, preconditioner=preconditioner)
            t0 = time.perf_counter()
            result = lg.geodesic(metric, start, end, **options)
            seconds = time.perf_counter() - t0
            lengths[preconditioner] = result.length
            cells.append(f"{preconditioner}: {seconds:7.3f} s ({result.status}, {len(result.nodes)} nodes)")
        ratio = ""
        if len(lengths) == 2:
            ratio = f"   length difference {abs(lengths['chord'] / lengths['metric'] - 1):.1e}"
        print(f"  d = {dim:5d}  " + "   ".join(cells) + ratio)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--out", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--conv-n", type=int, default=2000, help="points of the conv decoder's G(z) timing")
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--skip-conv", action="store_true")
    p.add_argument("--high-dims", type=int, nargs="*", default=[16, 64, 100, 500, 1000])
    p.add_argument("--metric-max-dim", type=int, default=500, help="largest d solved with the metric preconditioner")
    args = p.parse_args()
    bench_mlp(args)
    bench_mlp_geodesics(args)
    bench_high_dim(args)
    if not args.skip_conv:
        bench_conv(args)


# -- the convolutional decoder (torch path) ------------------------------------------------------


def conv_decoder(dim=2):
    """z (N, d) → (N, 1, 8, 8), the decoder of tests/test_torch_pullback.py (float32, eval mode)."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x):
            return x + torch.tanh(self.conv(x))

    class ConvDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(dim, 8 * 2 * 2)
            self.up = nn.Sequential(
                nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1),
                nn.BatchNorm2d(8),
                nn.Softplus(),
                Residual(8),
                nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                nn.Tanh(),
                nn.Conv2d(4, 1, 3, padding=1),
            )

        def forward(self, z):
            return self.up(torch.tanh(self.fc(z)).reshape(-1, 8, 2, 2))

    torch.manual_seed(0)
    module = ConvDecoder()
    with torch.no_grad():
        module.fc.weight.mul_(3.0)
        module.up[1].running_mean.normal_(0.0, 0.3)
        module.up[1].running_var.uniform_(0.5, 2.0)
    return module.eval()


def vmap_jacfwd_metric(module):
    """The baseline: torch.func.vmap(jacfwd) of a float64 copy, then JᵀJ."""
    import copy

    import torch
    from torch.func import jacfwd, vmap

    m64 = copy.deepcopy(module).double()
    for p in m64.parameters():
        p.requires_grad_(False)
    single = lambda x: m64(x[None]).reshape(-1)  # noqa: E731

    def metric(z):
        with torch.no_grad():
            jac = vmap(jacfwd(single))(torch.from_numpy(z))
            return torch.einsum("nia,nib->nab", jac, jac).numpy()

    return metric, m64


def stochman_geodesic(m64, start, end):
    """stochman's connecting_geodesic on the decoder's embedding (None when stochman is missing)."""
    try:
        from stochman.manifold import EmbeddedManifold
    except ImportError:
        return None
    import torch

    class Decoded(EmbeddedManifold):
        def embed(self, points, jacobian=False):
            flat = points.reshape(-1, points.shape[-1])
            return m64(flat).reshape(*points.shape[:-1], -1)

    p0, p1 = (torch.from_numpy(p[None]) for p in (start, end))
    curve, success = Decoded().connecting_geodesic(p0, p1)
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    with torch.no_grad():
        return curve(t).reshape(-1, len(start)).numpy(), bool(success)


class CallCounter:
    """A metric seen through the protocol, counting the solver's calls and their points."""

    def __init__(self, inner):
        self.inner, self.dim, self.calls, self.points = inner, inner.dim, 0, 0

    def _count(self, z):
        self.calls += 1
        self.points += len(z)

    def quadratic_form(self, z, v, grad=False):
        self._count(z)
        return self.inner.quadratic_form(z, v, grad=grad)

    def metric(self, z):
        self._count(z)
        return self.inner.metric(z)

    def count_decoded(self, z, counts):
        self._count(z)
        return self.inner.decoded_energies(z, counts)


def polyline_length(metric, nodes):
    """Riemannian length of a fine polyline (midpoint rule per segment)."""
    delta = np.diff(nodes, axis=0)
    return float(np.sum(np.sqrt(metric.quadratic_form(0.5 * (nodes[1:] + nodes[:-1]), delta))))


def bench_conv(args):
    try:
        import torch
    except ImportError:
        print("\n== conv decoder: torch is not installed; skipped")
        return
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    module = conv_decoder()
    metric = lg.PullbackMetric.from_torch(module)
    reference, m64 = vmap_jacfwd_metric(module)
    rng = np.random.default_rng(0)
    z, v = rng.normal(size=(args.conv_n, 2)), rng.normal(size=(args.conv_n, 2))
    print(
        f"\n== conv decoder 2 -> 1x8x8 ({type(metric).__name__}), N = {args.conv_n}, "
        f"torch threads {torch.get_num_threads()}"
    )
    assert np.allclose(metric(z[:50]), reference(z[:50]), rtol=1e-10, atol=1e-14)
    metric(z[:10]), metric.quadratic_form(z[:10], v[:10], True)  # torch's one-time start-up costs
    t_g, t_ref = best_of(lambda: metric(z)), best_of(lambda: reference(z))
    n = args.conv_n
    print(
        f"G(z)            latentgeo {n / t_g:9.0f} pts/s   vmap(jacfwd)+JᵀJ {n / t_ref:9.0f} pts/s"
        f"   time ratio {t_g / t_ref:4.2f} (target <= 1.5)"
    )

    def decode(x):
        with torch.no_grad():
            return m64(torch.from_numpy(x)).reshape(len(x), -1).numpy()

    numeric = lg.PullbackMetric.from_callable(decode, 2)
    t_q = best_of(lambda: metric.quadratic_form(z, v, True))
    t_fd = best_of(lambda: numeric.quadratic_form(z, v, True))
    print(
        f"vᵀGv + grads    latentgeo {n / t_q:9.0f} pts/s   finite differences {n / t_fd:9.0f} pts/s"
        f"   speed-up {t_fd / t_q:4.1f}x"
    )

    start, end = np.array([-0.25, 1.2]), np.array([0.6, -1.6])
    tight = lg.geodesic(metric, start, end, tol=1e-11, quadrature="simpson").length
    rows = []
    for name, target, tol, quadrature, repeat in (
        ("latentgeo decoded energy, tol 1e-4", metric, 1e-4, "decoded", 3),
        ("latentgeo decoded energy, tol 1e-5", metric, 1e-5, "decoded", 3),
        ("latentgeo decoded energy, tol 1e-8", metric, 1e-8, "decoded", 3),
        ("latentgeo Simpson (torch AD), tol 1e-4", metric, 1e-4, "simpson", 3),
        ("latentgeo Simpson (torch AD), tol 1e-8", metric, 1e-8, "simpson", 3),
        ("latentgeo decoded (callable FD), tol 1e-7", numeric, 1e-7, "decoded", 3),
        ("latentgeo Simpson (callable FD), tol 1e-7", numeric, 1e-7, "simpson", 1),
    ):
        options = dict(tol=tol, quadrature=quadrature)
        seconds = best_of(lambda: lg.geodesic(target, start, end, **options), repeat)
        res = lg.geodesic(target, start, end, **options)
        rows.append((name, seconds, res.length, res.converged))
    stoch = stochman_geodesic(m64, start, end)
    if stoch is None:
        print("stochman is not installed: its connecting_geodesic was not measured")
    else:
        seconds = best_of(lambda: stochman_geodesic(m64, start, end), 3)
        rows.append(("stochman connecting_geodesic", seconds, polyline_length(metric, stoch[0]), stoch[1]))
    pairs = np.random.default_rng(1).uniform(-1.5, 1.5, size=(2, 16, 2))
    print("16 geodesics, tol 1e-5: the pairs' evaluations one pair per call, or shared (<= 256 points per call):")
    for label, target, quadrature in (
        ("decoded", metric, "decoded"),
        ("torch AD", metric, "simpson"),
        ("FD decoded", numeric, "decoded"),
        ("FD Simpson", numeric, "simpson"),
    ):
        for per_call in (1, 64):
            counter = CallCounter(target)
            if quadrature == "decoded":
                counter.decoded_energies = counter.count_decoded
            options = dict(tol=1e-5, pairs_per_call=per_call, progress=False, quadrature=quadrature)
            seconds = best_of(lambda: lg.geodesics(counter, *pairs, **options), 1)
            print(
                f"  {label:12s} pairs_per_call={per_call:<3d} {1e3 * seconds / 16:7.1f} ms/geodesic   "
                f"{counter.calls:5d} calls of the metric, {counter.points / max(counter.calls, 1):7.1f} points per call"
            )
    line = start + np.linspace(0, 1, 4001)[:, None] * (end - start)
    print(f"one geodesic (straight line {polyline_length(metric, line):.6f}, tight solve {tight:.10f}):")
    for name, seconds, length, ok in rows:
        print(
            f"  {name:42s} {seconds * 1e3:8.1f} ms   length {length:.10f}   "
            f"relative error {abs(length - tight) / tight:8.1e}   converged {ok}"
        )
    if stoch is not None:
        ours, theirs = rows[0], rows[-1]
        print(
            f"  decoded tol 1e-4 vs stochman: {theirs[1] / ours[1]:.1f}x faster at a "
            f"{abs(theirs[2] - tight) / abs(ours[2] - tight):.0f}x smaller length error (target: >= 5x at >= 100x)"
        )


if __name__ == "__main__":
    main()
