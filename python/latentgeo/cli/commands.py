"""The ``latentgeo`` command: ``demo``, ``geodesic``, ``exp``, ``log``, ``info``, ``distances``, ``mean``,
``cluster`` and ``sample``: the parser and one thin function per subcommand.

Errors (missing or unreadable file, unwritable output, wrong dimension, malformed numbers)
print one line to stderr and exit with status 2, without a traceback; they are found before
any long computation starts (the checks are in :mod:`latentgeo.cli.files`, ``latentgeo demo``
is :mod:`latentgeo.cli.demo`).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

import numpy as np

from .. import __version__, _core
from ..connection import exp_map, log_map
from ..solvers.api import geodesic
from ..solvers.distances import geodesic_distances
from ..statistics import frechet_mean, kmedoids, sample_riemannian
from .demo import run_demo
from .files import (
    SHOWN_FAILURES,
    CommandError,
    load_array,
    load_checked,
    load_model,
    output_file,
    parse_point,
    positive_float,
    positive_int,
    print_failed_pairs,
    print_table,
    report_convergence,
    save_array,
    save_if_asked,
)

__all__ = ["main", "build_parser"]

_MODEL_HELP = "metric saved with RHVAEMetric.save (default: the shipped digits model)"
_POINT_OPTIONS = ("--start", "--end", "--bounds")  # values that may begin with "-"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CommandError(f"{self.prog}: {message}")


def cmd_geodesic(args) -> int:
    out_path = None if args.out is None else output_file(args.out, "--out", ".npy")
    metric = load_model(args.model)
    z0, z1 = parse_point(args.start, "--start"), parse_point(args.end, "--end")
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
        save_array(out_path, result.nodes, "nodes")
    return 0 if result.converged else 1


def cmd_exp(args) -> int:
    if args.curves and args.t is None:
        raise CommandError("--curves: needs --t (the times of the curve points)")
    metric = load_model(args.model)
    z, v = load_array(args.z, "--z"), load_array(args.v, "--v")
    t = None if args.t is None else load_array(args.t, "--t")
    result = exp_map(metric, z, v, t=t, rtol=args.rtol, n_threads=args.n_threads)
    rc = report_convergence(result.converged, result.status, "geodesics")
    print(
        f"steps per geodesic {int(result.n_steps.min())} .. {int(result.n_steps.max())}, "
        f"max speed drift {float(result.speed_drift.max()):.3g}"
    )
    save_array(args.out, result.points, "gamma(1)")
    if args.curves:
        save_array(args.curves, result.curves, "curves (N, len(t), d)")
    return rc


def cmd_log(args) -> int:
    metric = load_model(args.model)
    z0, z1 = load_array(args.z0, "--z0"), load_array(args.z1, "--z1")
    result = log_map(metric, z0, z1, tol=args.tol, n_threads=args.n_threads)
    rc = report_convergence(result.converged, result.status, "pairs")
    print(
        f"distances {float(result.distances.min()):.6g} .. {float(result.distances.max()):.6g}, "
        f"max residual {float(result.residual.max()):.3g}"
    )
    save_array(args.out, result.vectors, "initial velocities")
    if args.distances:
        save_array(args.distances, result.distances, "distances")
    return rc


def cmd_info(args) -> int:
    metric = load_model(args.model)
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


def cmd_distances(args) -> int:
    metric = load_model(args.model)
    points = load_checked(args.points, "--points", metric.dim)
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
    print_failed_pairs(sorted(zip(*np.nonzero(np.triu(~result.converged, 1)))))
    save_if_asked(args.out, result.distances, "distance matrix")
    return 0 if result.converged.all() else 1


def cmd_mean(args) -> int:
    metric = load_model(args.model)
    points = load_checked(args.points, "--points", metric.dim)
    weights = None if args.weights is None else load_checked(args.weights, "--weights", ndim=1)
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
            f"{len(result.failed)} points whose log map failed: {result.failed[:SHOWN_FAILURES]}"
            f"{' ...' if len(result.failed) > SHOWN_FAILURES else ''}"
        )
    save_if_asked(args.out, result.mean, "mean")
    return 0 if result.converged else 1


def cmd_cluster(args) -> int:
    metric = load_model(args.model)
    points = load_checked(args.points, "--points", metric.dim)
    if not 1 <= args.k <= len(points):
        raise CommandError(f"--k: must lie in [1, {len(points)}] (the number of points), got {args.k}")
    distances = None if args.distances is None else load_checked(args.distances, "--distances")
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
    print_table(rows, ("cluster", "medoid", "point", "size"))
    print(f"inertia (sum of distances to the medoids) {result.inertia:.10g}; {result.status}")
    print_failed_pairs(result.failed_pairs)
    save_if_asked(args.out, result.labels, "labels")
    save_if_asked(args.save_distances, result.distances, "distance matrix")
    return 0 if result.converged and not result.failed_pairs else 1


def cmd_sample(args) -> int:
    metric = load_model(args.model)
    bounds = None
    if args.bounds is not None:
        values = parse_point(args.bounds, "--bounds")
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
    save_if_asked(args.out, result.samples, "samples")
    return 0


def _subcommand(sub, name: str, run, help_text: str, *, model: bool = True, threads: bool = True):
    """A subparser running ``run``, with the shared ``--model`` and ``--n-threads`` options."""
    parser = sub.add_parser(name, help=help_text)
    if model:
        parser.add_argument("--model", help=_MODEL_HELP)
    if threads:
        parser.add_argument("--n-threads", type=positive_int, default=None)
    parser.set_defaults(run=run)
    return parser


def _add_statistics_commands(sub) -> None:
    dist = _subcommand(sub, "distances", cmd_distances, "geodesic distance matrix of points (.npy)")
    dist.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    dist.add_argument("--out", help="save the (M, M) matrix to this .npy file")
    dist.add_argument("--tol", type=float, default=None, help="relative accuracy of the geodesics (default 1e-8)")
    dist.add_argument("--quiet", action="store_true", help="no progress bar")
    mean = _subcommand(sub, "mean", cmd_mean, "Fréchet mean of points (.npy)")
    mean.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    mean.add_argument("--weights", help="weights (M,) in a .npy file (default: equal)")
    mean.add_argument("--tol", type=float, default=None, help="relative gradient tolerance (default 1e-10)")
    mean.add_argument("--out", help="save the mean (d,) to this .npy file")
    clus = _subcommand(sub, "cluster", cmd_cluster, "k-medoids clustering of points (.npy) with geodesic distances")
    clus.add_argument("--points", required=True, help="points (M, d) in a .npy file")
    clus.add_argument("--k", type=positive_int, default=10, help="number of clusters (default 10)")
    clus.add_argument("--distances", help="precomputed (M, M) distance matrix (.npy, e.g. from latentgeo distances)")
    clus.add_argument("--save-distances", help="save the distance matrix to this .npy file")
    clus.add_argument("--seed", type=int, default=0)
    clus.add_argument("--out", help="save the labels (M,) to this .npy file")
    clus.add_argument("--quiet", action="store_true", help="no progress bar")
    samp = _subcommand(sub, "sample", cmd_sample, "samples of the Riemannian volume densities (HMC)")
    samp.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``latentgeo`` command; each subcommand sets ``run``."""
    parser = _Parser(prog="latentgeo", description="Riemannian geometry of generative-model latent spaces.")
    parser.add_argument("--version", action="version", version=f"latentgeo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo_help = "geodesics between digits of the shipped RHVAE; writes demo.png and demo_decoded.png"
    demo = _subcommand(sub, "demo", run_demo, demo_help, model=False)
    demo.add_argument("--out", default=".", help="output folder for the pictures (default: .)")
    demo.add_argument("--pairs", type=positive_int, default=6, help="number of digit pairs (default 6)")
    geo = _subcommand(sub, "geodesic", cmd_geodesic, "geodesic between two latent points of a saved RHVAE metric")
    geo.add_argument("--start", required=True, help="start point, comma-separated, e.g. 0.1,-2")
    geo.add_argument("--end", required=True, help="end point, comma-separated")
    geo.add_argument("--method", choices=("discrete", "neural"), default="discrete")
    geo.add_argument("--out", help="save the curve's nodes (n, d) to this .npy file (.npy appended if missing)")
    exp_help = "exponential map: gamma(1) of geodesics shot from points z with velocities v"
    exp = _subcommand(sub, "exp", cmd_exp, exp_help)
    exp.add_argument("--z", required=True, help=".npy file of start points, shape (N, d) or (d,)")
    exp.add_argument("--v", required=True, help=".npy file of initial velocities, shape (N, d) or (d,)")
    exp.add_argument("--out", required=True, help=".npy file for gamma(1), shape (N, d)")
    exp.add_argument("--t", help=".npy file of increasing times >= 0 for --curves")
    exp.add_argument("--curves", help=".npy file for the curves at the times of --t, shape (N, len(t), d)")
    exp.add_argument(
        "--rtol", type=positive_float, default=None, help="integrator tolerance (default: exp_map's, 1e-10)"
    )
    log_help = "logarithmic map: initial velocities of the geodesics from z0 to z1"
    log = _subcommand(sub, "log", cmd_log, log_help)
    log.add_argument("--z0", required=True, help=".npy file of start points, shape (B, d) or (d,)")
    log.add_argument("--z1", required=True, help=".npy file of end points, shape (B, d) or (d,)")
    log.add_argument("--out", required=True, help=".npy file for the initial velocities, shape (B, d)")
    log.add_argument("--distances", help=".npy file for the geodesic distances, shape (B,)")
    log.add_argument("--tol", type=positive_float, default=None, help="shooting tolerance (default: log_map's, 1e-10)")
    _subcommand(sub, "info", cmd_info, "describe a saved RHVAE metric", threads=False)
    _add_statistics_commands(sub)
    return parser


def _attach_point_values(argv: Sequence[str]) -> List[str]:
    """``--start -1,2`` -> ``--start=-1,2``: argparse would take "-1,2" for an option."""
    out: List[str] = []
    for arg in argv:
        if out and out[-1] in _POINT_OPTIONS and arg.startswith("-"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``latentgeo`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(_attach_point_values(sys.argv[1:] if argv is None else argv))
        return args.run(args)
    except (CommandError, ValueError, OSError) as exc:  # user errors: bad arguments, files, paths
        print(f"latentgeo: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
