"""The ``latentgeo`` command: ``demo``, ``geodesic``, ``exp``, ``log``, ``info``, ``distances``, ``mean``,
``cluster`` and ``sample``.

Errors (missing or unreadable file, unwritable output, wrong dimension, malformed numbers)
print one line to stderr and exit with status 2, without a traceback; they are found before
any long computation starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import numpy as np

from .. import _core

__all__ = ["main"]


class CommandError(Exception):
    """An error reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CommandError(f"{self.prog}: {message}")


def _parse_point(text: str, name: str) -> np.ndarray:
    try:
        values = np.array([float(part) for part in text.split(",")])
    except ValueError:
        raise CommandError(f"{name}: expected comma-separated numbers like 0.5,-1.2, got {text!r}") from None
    if not np.all(np.isfinite(values)):
        raise CommandError(f"{name}: values must be finite, got {text!r}")
    return values


def _writable_directory(directory: str, option: str, create: bool = False) -> None:
    """Fail with a one-line error before any computation if files cannot be written in ``directory``."""
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"{option}: cannot create the directory {directory}: {exc.strerror or exc}") from None
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: no such directory: {directory}")
    try:  # os.access is not enough: root, read-only file systems, ACLs
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise CommandError(f"{option}: cannot write in {directory}: {exc.strerror or exc}") from None


def _output_file(path: str, option: str, suffix: str) -> str:
    """The file actually written for ``path`` (numpy appends ``suffix`` when missing), checked writable."""
    target = path if path.endswith(suffix) else path + suffix
    if os.path.isdir(target):
        raise CommandError(f"{option}: {target} is a directory")
    _writable_directory(os.path.dirname(target) or ".", option)
    return target


def _load_model(path: Optional[str]):
    from ..datasets import load_digits_rhvae
    from ..metrics import RHVAEMetric

    if path is None:
        return load_digits_rhvae().metric
    if not os.path.isfile(path):
        raise CommandError(f"--model: no such file: {path}")
    try:
        return RHVAEMetric.load(path)
    except (ValueError, OSError) as exc:
        message = str(exc)  # "path: cannot read '<path>' ..." already names the file
        raise CommandError(
            "--model: "
            + (message[len("path: ") :] if message.startswith("path: ") else f"cannot read {path}: {message}")
        ) from None


def _print_table(rows: List[Sequence], header: Sequence[str]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))


def _demo_figure(metric, latent, labels, batch, pairs, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    from ..plot import plot_curves, plot_latent, plot_magnification

    lo, hi = latent.min(axis=0), latent.max(axis=0)
    pad = 0.15 * (hi - lo)
    bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    fig, ax = plt.subplots(figsize=(8, 7), dpi=110)
    plot_magnification(metric, bounds, ax=ax)
    plot_latent(latent, labels, ax=ax, s=4)
    outline = [effects.Stroke(linewidth=4.5, foreground="black"), effects.Normal()]
    plot_curves(
        [batch[i].curve(np.linspace(0, 1, 200)) for i in range(len(batch))],
        ax=ax,
        straight=True,
        colors=["white"] * len(batch),
        linewidth=2.2,
        path_effects=outline,
        straight_kwargs={"linewidth": 1.4, "alpha": 1.0},
    )
    for i, (a, b) in enumerate(pairs):
        for label, point in ((a, batch[i].nodes[0]), (b, batch[i].nodes[-1])):
            ax.annotate(
                str(label),
                point,
                color="white",
                fontsize=11,
                fontweight="bold",
                ha="center",
                va="center",
                path_effects=[effects.withStroke(linewidth=3, foreground="black")],
            )
    ax.set_title("geodesics (white) vs straight lines (dashed) between digit classes")
    fig.savefig(out_path)
    plt.close(fig)


def cmd_demo(args) -> int:
    from ..datasets import load_digits_rhvae
    from ..solvers.api import geodesics
    from .demo import decoded_figure, demo_pairs, most_bent

    out_path = os.path.join(args.out, "demo.png")
    _writable_directory(args.out, "--out", create=True)
    if os.path.isdir(out_path):
        raise CommandError(f"--out: {out_path} is a directory")
    start = time.perf_counter()
    data = load_digits_rhvae()
    metric, latent, labels = data.metric, data.latent, data.labels
    candidates, starts, ends = demo_pairs(latent, labels)
    print(
        f"digits RHVAE: d = {metric.dim}, K = {metric.n_centroids} centroids, "
        f"T = {metric.temperature:.4g}, lambda = {metric.regularization:.4g}, normalization = {metric.normalization}"
    )
    print(
        f"geodesics between {len(candidates)} pairs of digits (the centres of all pairs of classes, all pairs of "
        f"cluster medoids); the {args.pairs} most bent, one per pair of classes:"
    )
    everything = geodesics(metric, starts, ends, progress=False, n_threads=args.n_threads)
    ratio = everything.length / everything.straight_length
    chosen = most_bent(ratio, candidates, everything.converged, args.pairs)
    batch = [everything[i] for i in chosen]
    pairs = [candidates[i] for i in chosen]
    rows = [
        (
            f"{a}->{b}",
            f"{r.straight_length:.4f}",
            f"{r.length:.4f}",
            f"{r.length / r.straight_length:.3f}",
            "yes" if r.converged else "NO: " + r.status,
        )
        for (a, b), r in zip(pairs, batch)
    ]
    _print_table(rows, ("digits", "straight length", "geodesic length", "ratio", "converged"))
    failed = int(np.sum(~everything.converged))
    print(f"all {len(candidates)} pairs: ratio {ratio.min():.3f} .. {ratio.max():.3f}, {failed} not converged")
    decoded_path = os.path.join(args.out, "demo_decoded.png")
    try:
        _demo_figure(metric, latent, labels, batch, pairs, out_path)
        decoded_figure(metric, data.decoder, latent, labels, batch[0], pairs[0], decoded_path)
        print(f"wrote {out_path} and {decoded_path} ({time.perf_counter() - start:.1f} s)")
    except ImportError:  # matplotlib is an optional extra
        print('no picture: matplotlib is not installed (pip install "latentgeo[plot]")')
    mean_failures = _statistics_demo(metric, latent, labels, args)
    return 0 if failed == 0 and mean_failures == 0 else 1


def _statistics_demo(metric, latent, labels, args) -> int:
    """Class Fréchet means and the geometry-aware sampler (demo_statistics.png)."""
    from .statistics_demo import statistics_demo

    return statistics_demo(metric, latent, labels, args.out, args.n_threads, _print_table)


def cmd_geodesic(args) -> int:
    from ..solvers.api import geodesic

    out_path = None if args.out is None else _output_file(args.out, "--out", ".npy")
    metric = _load_model(args.model)
    z0, z1 = _parse_point(args.start, "--start"), _parse_point(args.end, "--end")
    for name, z in (("--start", z0), ("--end", z1)):
        if len(z) != metric.dim:
            raise CommandError(f"{name}: expected {metric.dim} coordinates for this model, got {len(z)}")
    result = geodesic(metric, z0, z1, method=args.method, n_threads=args.n_threads)
    print(
        f"length {result.length:.10g}  straight-line length {result.straight_length:.10g}  "
        f"ratio {result.length / result.straight_length if result.straight_length > 0 else 1.0:.4f}"
    )
    print(f"energy {result.energy:.10g}  converged {result.converged}  ({result.status})")
    if out_path is not None:
        np.save(out_path, result.nodes)
        print(f"wrote {out_path}: nodes of shape {result.nodes.shape}")
    return 0 if result.converged else 1


def _load_array(path: str, flag: str) -> np.ndarray:
    """A float array from a .npy file (one line and exit 2 when it cannot be read)."""
    if not os.path.isfile(path):
        raise CommandError(f"{flag}: no such file: {path}")
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    except (ValueError, OSError, TypeError) as exc:
        raise CommandError(f"{flag}: cannot read {path} as a numeric .npy array ({exc})") from None


def _save_array(path: str, array: np.ndarray, what: str) -> None:
    try:
        np.save(path, array)
    except OSError as exc:
        raise CommandError(f"--out: cannot write {path} ({exc})") from None
    print(f"wrote {path}: {what} of shape {array.shape}")


def _report(converged: np.ndarray, status: List[str], noun: str) -> int:
    failed = [f"{i}: {s}" for i, (ok, s) in enumerate(zip(converged, status)) if not ok]
    print(
        f"{len(converged)} {noun}, {len(converged) - len(failed)} converged"
        + (f"; not converged: {', '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}" if failed else "")
    )
    return 0 if not failed else 1


def cmd_exp(args) -> int:
    from ..connection.maps import exp_map

    if args.curves and args.t is None:
        raise CommandError("--curves: needs --t (the times of the curve points)")
    metric = _load_model(args.model)
    z, v = _load_array(args.z, "--z"), _load_array(args.v, "--v")
    t = None if args.t is None else _load_array(args.t, "--t")
    result = exp_map(metric, z, v, t=t, rtol=args.rtol, n_threads=args.n_threads)
    rc = _report(result.converged, result.status, "geodesics")
    print(
        f"steps per geodesic {int(result.n_steps.min())} .. {int(result.n_steps.max())}, "
        f"max speed drift {float(result.speed_drift.max()):.3g}"
    )
    _save_array(args.out, result.points, "gamma(1)")
    if args.curves:
        _save_array(args.curves, result.curves, "curves (N, len(t), d)")
    return rc


def cmd_log(args) -> int:
    from ..connection.maps import log_map

    metric = _load_model(args.model)
    z0, z1 = _load_array(args.z0, "--z0"), _load_array(args.z1, "--z1")
    result = log_map(metric, z0, z1, tol=args.tol, n_threads=args.n_threads)
    rc = _report(result.converged, result.status, "pairs")
    print(
        f"distances {float(result.distances.min()):.6g} .. {float(result.distances.max()):.6g}, "
        f"max residual {float(result.residual.max()):.3g}"
    )
    _save_array(args.out, result.vectors, "initial velocities")
    if args.distances:
        _save_array(args.distances, result.distances, "distances")
    return rc


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def cmd_info(args) -> int:
    metric = _load_model(args.model)
    g_at_centroids = metric(metric.centroids)
    eig = np.linalg.eigvalsh(g_at_centroids)
    mag = metric.magnification(metric.centroids)
    print(f"dimension      {metric.dim}")
    print(f"centroids      {metric.n_centroids}")
    print(f"temperature    {metric.temperature:.6g}")
    print(f"regularization {metric.regularization:.6g}")
    print(f"normalization  {metric.normalization}")
    print(f"eigenvalues of G at the centroids: {eig.min():.4g} .. {eig.max():.4g}")
    print(f"magnification sqrt(det G) at the centroids: {mag.min():.4g} .. {mag.max():.4g}")
    print(
        f"far from all centroids G -> I/lambda = {1.0 / metric.regularization if metric.regularization else np.inf:.4g} I"
    )
    print(
        f"core           {_core.variant} (built: {', '.join(_core.built_variants())}; OpenMP: "
        f"{'on' if _core.openmp_enabled() else 'off'}, {_core.max_threads()} threads)"
    )
    return 0


# --------------------------------------------------------------------------------------------
# Statistics commands: distances, mean, cluster, sample
# --------------------------------------------------------------------------------------------
def _load_checked(path: str, option: str, dim: Optional[int] = None, ndim: int = 2) -> np.ndarray:
    """A non-empty finite array of ndim dimensions from a .npy file; with dim, of shape (M, dim)."""
    arr = _load_array(path, option)
    if arr.ndim != ndim or arr.size == 0:
        raise CommandError(f"{option}: expected a non-empty {ndim}-d array, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise CommandError(f"{option}: expected points of dimension {dim} for this model, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CommandError(f"{option}: contains NaN or Inf")
    return arr


def _save(path: Optional[str], array: np.ndarray, what: str) -> None:
    if path:
        _save_array(path, array, what)


def _list_failed_pairs(failed, limit: int = 10) -> None:
    if not failed:
        return
    shown = ", ".join(f"({i}, {j})" for i, j in failed[:limit])
    more = f" and {len(failed) - limit} more" if len(failed) > limit else ""
    print(f"{len(failed)} pairs did not converge: {shown}{more}")


def cmd_distances(args) -> int:
    from ..solvers.api import geodesic_distances

    metric = _load_model(args.model)
    points = _load_checked(args.points, "--points", metric.dim)
    result = geodesic_distances(
        metric,
        points,
        progress=not args.quiet,
        n_threads=args.n_threads,
        **({"tol": args.tol} if args.tol is not None else {}),
    )
    off = result.distances[np.triu_indices(len(points), 1)]
    print(
        f"{len(points)} points, {len(off)} pairs: distances {np.nanmin(off, initial=0.0):.6g} .. "
        f"{np.nanmax(off, initial=0.0):.6g}"
    )
    _list_failed_pairs(sorted(zip(*np.nonzero(np.triu(~result.converged, 1)))))
    _save(args.out, result.distances, "distance matrix")
    return 0 if result.converged.all() else 1


def cmd_mean(args) -> int:
    from ..statistics import frechet_mean

    metric = _load_model(args.model)
    points = _load_checked(args.points, "--points", metric.dim)
    weights = None if args.weights is None else _load_checked(args.weights, "--weights", ndim=1)
    if weights is not None and len(weights) != len(points):
        raise CommandError(f"--weights: expected {len(points)} weights (one per point), got {len(weights)}")
    result = frechet_mean(
        metric, points, weights, n_threads=args.n_threads, **({"tol": args.tol} if args.tol is not None else {})
    )
    euclid = points.mean(axis=0) if weights is None else weights @ points / weights.sum()
    print(f"Frechet mean   {','.join(f'{x:.10g}' for x in result.mean)}")
    print(f"Euclidean mean {','.join(f'{x:.10g}' for x in euclid)}")
    print(
        f"variance {result.variance:.10g} (rms distance {np.sqrt(result.variance):.6g}), {result.n_iter} steps, "
        f"relative gradient {result.gradient_norm:.2g}, {result.status}"
    )
    if result.failed:
        print(
            f"{len(result.failed)} points whose log map failed: {result.failed[:10]}"
            f"{' ...' if len(result.failed) > 10 else ''}"
        )
    _save(args.out, result.mean, "mean")
    return 0 if result.converged else 1


def cmd_cluster(args) -> int:
    from ..statistics import kmedoids

    metric = _load_model(args.model)
    points = _load_checked(args.points, "--points", metric.dim)
    if not 1 <= args.k <= len(points):
        raise CommandError(f"--k: must lie in [1, {len(points)}] (the number of points), got {args.k}")
    distances = None if args.distances is None else _load_checked(args.distances, "--distances")
    if distances is not None and distances.shape != (len(points), len(points)):
        raise CommandError(f"--distances: expected shape ({len(points)}, {len(points)}), got {distances.shape}")
    result = kmedoids(
        metric, points, args.k, distances=distances, seed=args.seed, progress=not args.quiet, n_threads=args.n_threads
    )
    sizes = np.bincount(result.labels, minlength=args.k)
    rows = [
        (c, int(m), ",".join(f"{x:.5g}" for x in points[m]), int(n))
        for c, (m, n) in enumerate(zip(result.medoids, sizes))
    ]
    _print_table(rows, ("cluster", "medoid", "point", "size"))
    print(f"inertia (sum of distances to the medoids) {result.inertia:.10g}; {result.status}")
    _list_failed_pairs(result.failed_pairs)
    _save(args.out, result.labels, "labels")
    _save(args.save_distances, result.distances, "distance matrix")
    return 0 if result.converged and not result.failed_pairs else 1


def cmd_sample(args) -> int:
    from ..statistics import sample_riemannian

    metric = _load_model(args.model)
    bounds = None
    if args.bounds is not None:
        values = _parse_point(args.bounds, "--bounds")
        if len(values) != 2 * metric.dim:
            raise CommandError(
                f"--bounds: expected {2 * metric.dim} numbers (lower corner, then upper corner), got {len(values)}"
            )
        bounds = values.reshape(2, metric.dim)
    result = sample_riemannian(
        metric, args.n, density=args.density, bounds=bounds, seed=args.seed, n_threads=args.n_threads
    )
    print(
        f"{len(result.samples)} samples of the {args.density} density on the box "
        f"{result.bounds[0].round(4).tolist()} .. {result.bounds[1].round(4).tolist()}"
    )
    print(
        f"acceptance rate {result.acceptance_rate:.3f}, effective sample size "
        f"{', '.join(f'{e:.0f}' for e in result.ess)} (per coordinate), step {result.step_size:.3g}, "
        f"{result.n_divergent} divergent"
    )
    _save(args.out, result.samples, "samples")
    return 0


def _add_statistics_commands(sub) -> None:
    model_help = "metric saved with RHVAEMetric.save (default: the shipped digits model)"
    dist = sub.add_parser("distances", help="geodesic distance matrix of points (.npy)")
    dist.add_argument("--model", help=model_help)
    dist.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    dist.add_argument("--out", help="save the (M, M) matrix to this .npy file")
    dist.add_argument("--tol", type=float, default=None, help="relative accuracy of the geodesics (default 1e-8)")
    dist.add_argument("--quiet", action="store_true", help="no progress bar")
    dist.add_argument("--n-threads", type=_positive_int, default=None)
    dist.set_defaults(run=cmd_distances)
    mean = sub.add_parser("mean", help="Fréchet mean of points (.npy)")
    mean.add_argument("--model", help=model_help)
    mean.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    mean.add_argument("--weights", help="weights (M,) in a .npy file (default: equal)")
    mean.add_argument("--tol", type=float, default=None, help="relative gradient tolerance (default 1e-10)")
    mean.add_argument("--out", help="save the mean (d,) to this .npy file")
    mean.add_argument("--n-threads", type=_positive_int, default=None)
    mean.set_defaults(run=cmd_mean)
    clus = sub.add_parser("cluster", help="k-medoids clustering of points (.npy) with geodesic distances")
    clus.add_argument("--model", help=model_help)
    clus.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    clus.add_argument("--k", type=_positive_int, default=10, help="number of clusters (default 10)")
    clus.add_argument("--distances", help="precomputed (M, M) distance matrix (.npy, e.g. from latentgeo distances)")
    clus.add_argument("--save-distances", help="save the distance matrix to this .npy file")
    clus.add_argument("--seed", type=int, default=0)
    clus.add_argument("--out", help="save the labels (M,) to this .npy file")
    clus.add_argument("--quiet", action="store_true", help="no progress bar")
    clus.add_argument("--n-threads", type=_positive_int, default=None)
    clus.set_defaults(run=cmd_cluster)
    samp = sub.add_parser("sample", help="samples of the Riemannian volume densities (HMC)")
    samp.add_argument("--model", help=model_help)
    samp.add_argument("--n", type=_positive_int, default=1000, help="number of samples (default 1000)")
    samp.add_argument(
        "--density",
        choices=("volume", "inverse_volume"),
        default="inverse_volume",
        help="sqrt(det G) or sqrt(det G^-1) (default, the geometry-aware sampler)",
    )
    samp.add_argument(
        "--bounds",
        help="box: lower corner then upper corner, comma-separated (default: the centroids' box padded by 10%%)",
    )
    samp.add_argument("--seed", type=int, default=0)
    samp.add_argument("--out", help="save the samples (n, d) to this .npy file")
    samp.add_argument("--n-threads", type=_positive_int, default=None)
    samp.set_defaults(run=cmd_sample)


def _positive_int(text: str) -> int:
    from .._validation import INT_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= INT_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {INT_MAX}], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="latentgeo", description="Riemannian geometry of generative-model latent spaces.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo", help="geodesics between digits of the shipped RHVAE; writes demo.png and demo_decoded.png"
    )
    demo.add_argument("--out", default=".", help="output folder for the pictures (default: .)")
    demo.add_argument("--pairs", type=_positive_int, default=6, help="number of digit pairs (default 6)")
    demo.add_argument("--n-threads", type=_positive_int, default=None)
    demo.set_defaults(run=cmd_demo)
    geo = sub.add_parser("geodesic", help="geodesic between two latent points of a saved RHVAE metric")
    geo.add_argument("--model", help="metric saved with RHVAEMetric.save (default: the shipped digits model)")
    geo.add_argument("--start", required=True, help="start point, comma-separated, e.g. 0.1,-2")
    geo.add_argument("--end", required=True, help="end point, comma-separated")
    geo.add_argument("--method", choices=("discrete", "neural"), default="discrete")
    geo.add_argument("--out", help="save the curve's nodes (n, d) to this .npy file (.npy appended if missing)")
    geo.add_argument("--n-threads", type=_positive_int, default=None)
    geo.set_defaults(run=cmd_geodesic)
    exp = sub.add_parser("exp", help="exponential map: gamma(1) of geodesics shot from points z with velocities v")
    exp.add_argument("--model", help="metric saved with RHVAEMetric.save (default: the shipped digits model)")
    exp.add_argument("--z", required=True, help=".npy file of start points, shape (N, d) or (d,)")
    exp.add_argument("--v", required=True, help=".npy file of initial velocities, shape (N, d) or (d,)")
    exp.add_argument("--out", required=True, help=".npy file for gamma(1), shape (N, d)")
    exp.add_argument("--t", help=".npy file of increasing times >= 0 for --curves")
    exp.add_argument("--curves", help=".npy file for the curves at the times of --t, shape (N, len(t), d)")
    exp.add_argument(
        "--rtol", type=_positive_float, default=None, help="integrator tolerance (default: exp_map's, 1e-10)"
    )
    exp.add_argument("--n-threads", type=_positive_int, default=None)
    exp.set_defaults(run=cmd_exp)
    log = sub.add_parser("log", help="logarithmic map: initial velocities of the geodesics from z0 to z1")
    log.add_argument("--model", help="metric saved with RHVAEMetric.save (default: the shipped digits model)")
    log.add_argument("--z0", required=True, help=".npy file of start points, shape (B, d) or (d,)")
    log.add_argument("--z1", required=True, help=".npy file of end points, shape (B, d) or (d,)")
    log.add_argument("--out", required=True, help=".npy file for the initial velocities, shape (B, d)")
    log.add_argument("--distances", help=".npy file for the geodesic distances, shape (B,)")
    log.add_argument("--tol", type=_positive_float, default=None, help="shooting tolerance (default: log_map's, 1e-10)")
    log.add_argument("--n-threads", type=_positive_int, default=None)
    log.set_defaults(run=cmd_log)
    info = sub.add_parser("info", help="describe a saved RHVAE metric")
    info.add_argument("--model", help="metric saved with RHVAEMetric.save (default: the shipped digits model)")
    info.set_defaults(run=cmd_info)
    _add_statistics_commands(sub)
    return parser


def _attach_point_values(argv: Sequence[str]) -> List[str]:
    """``--start -1,2`` -> ``--start=-1,2``: argparse would take "-1,2" for an option."""
    out: List[str] = []
    for arg in argv:
        if out and out[-1] in ("--start", "--end", "--bounds") and arg.startswith("-"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``latentgeo`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(_attach_point_values(sys.argv[1:] if argv is None else argv))
        return args.run(args)
    except (CommandError, ValueError, OSError) as exc:  # user errors: bad arguments, files, paths
        print(f"latentgeo: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
