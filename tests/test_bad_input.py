"""Bad input across the public API and the command line: each case raises the documented
exception type, and its message names the argument (or the file) at fault.

Shapes are reported as the caller passed them (``(3,)``, not an internal ``(1, 3)``). Solver
failures per pair and Ctrl-C are covered in test_geodesic.py / test_distances.py.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import latentgeo as lg
import numpy as np
import pytest

HUGE = 2**31  # one past the largest C int: it used to reach the core and fail there


def rhvae():
    rng = np.random.default_rng(0)
    L = np.tile(np.eye(2), (4, 1, 1)) * 0.8
    return lg.RHVAEMetric(rng.normal(size=(4, 2)), L=L, temperature=0.7, regularization=0.05)


def pullback():
    rng = np.random.default_rng(1)
    return lg.PullbackMetric([rng.normal(size=(3, 2))], [rng.normal(size=3)], ["tanh"])


def curve():
    return lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(4,), seed=0)


Z = np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 0.5]])
T = np.linspace(0.0, 1.0, 5)
LINE = np.outer(T, [1.0, 1.0])
VEL = np.ones((5, 2))


def fortran(a):
    return np.asfortranarray(a)


def strided(a):
    """The same values as a non-contiguous view."""
    return np.repeat(a, 2, axis=0)[::2]


def with_nan(a):
    a = np.array(a, dtype=float)
    a.flat[1] = np.nan
    return a


# (call, exception type, message pattern); the pattern starts with the argument's name.
API_CASES = {
    # -- shapes: reported as passed --------------------------------------------------------------
    "metric z (3,)": (lambda: rhvae().metric([0.0, 1.0, 2.0]), ValueError, r"^z: .*got shape \(3,\)"),
    "metric z 3-d": (lambda: rhvae().metric(np.zeros((2, 2, 2))), ValueError, r"^z: .*\(2, 2, 2\)"),
    "metric z scalar": (lambda: rhvae().metric(1.0), ValueError, r"^z: .*got \(\)"),
    "metric z empty": (lambda: rhvae().log_det(np.zeros((0, 2))), ValueError, r"^z: empty"),
    "quadratic_form v (3,)": (
        lambda: rhvae().quadratic_form([0.0, 1.0], [1.0, 2.0, 3.0]),
        ValueError,
        r"^v: .*got shape \(3,\)",
    ),
    "quadratic_form v rows": (
        lambda: pullback().quadratic_form(Z, Z[:2]),
        ValueError,
        r"^v: expected shape \(3, 2\) like z, got \(2, 2\)",
    ),
    "geodesic z_start (3,)": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0, 0.0], [1.0, 1.0]),
        ValueError,
        r"^z_start: .*got shape \(3,\)",
    ),
    "geodesic z_end (1, 2)": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [[1.0, 1.0]]),
        ValueError,
        r"^z_end: .*got shape \(1, 2\)",
    ),
    "geodesics ends rows": (
        lambda: lg.geodesics(rhvae(), Z, Z[:2], progress=False),
        ValueError,
        r"^ends: expected the shape of starts \(3, 2\), got \(2, 2\)",
    ),
    "geodesics starts (3,)": (
        lambda: lg.geodesics(rhvae(), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], progress=False),
        ValueError,
        r"^starts: .*got shape \(3,\)",
    ),
    "geodesics init (5, 3)": (
        lambda: lg.geodesics(rhvae(), Z, Z + 1, init=np.zeros((5, 3)), progress=False),
        ValueError,
        r"^init: .*got shape \(5, 3\)",
    ),
    "curve_length velocities rows": (
        lambda: lg.curve_length(rhvae(), LINE, VEL[:4]),
        ValueError,
        r"^velocities: expected shape \(5, 2\) like points, got \(4, 2\)",
    ),
    "curve_energy points 1-d": (lambda: lg.curve_energy(rhvae(), T, T), ValueError, r"^points: .*\(5,\)"),
    "distances points (2,)": (
        lambda: lg.geodesic_distances(rhvae(), [0.0, 1.0], progress=False),
        ValueError,
        r"^points: .*\(2,\)",
    ),
    "NeuralGeodesic z_end (3,)": (
        lambda: lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0, 1.0]),
        ValueError,
        r"^z_end: .*got \(3,\)",
    ),
    "RHVAE centroids 1-d": (
        lambda: lg.RHVAEMetric([0.0, 1.0], L=np.eye(2)[None], temperature=1, regularization=0),
        ValueError,
        r"^centroids: .*\(2,\)",
    ),
    "ConstantMetric A (2, 3)": (lambda: lg.ConstantMetric(np.ones((2, 3))), ValueError, r"^A: .*\(2, 3\)"),
    "DenseMetric G_fn shape": (
        lambda: lg.DenseMetric(lambda z: np.ones((len(z), 2)), dim=2)(Z),
        ValueError,
        r"^G_fn: returned shape \(3, 2\)",
    ),
    # -- values: NaN and Inf ---------------------------------------------------------------------
    "z NaN": (lambda: rhvae().metric(with_nan(Z)), ValueError, r"^z: contains NaN"),
    "v Inf": (lambda: rhvae().quadratic_form(Z, np.full((3, 2), np.inf)), ValueError, r"^v: contains NaN"),
    "z_start NaN": (lambda: lg.geodesic(rhvae(), [np.nan, 0.0], [1.0, 1.0]), ValueError, r"^z_start: contains"),
    "temperature Inf": (
        lambda: lg.RHVAEMetric(Z, L=np.tile(np.eye(2), (3, 1, 1)), temperature=np.inf, regularization=0.1),
        ValueError,
        r"^temperature: must be finite",
    ),
    "regularization NaN": (
        lambda: lg.RHVAEMetric(Z, L=np.tile(np.eye(2), (3, 1, 1)), temperature=1.0, regularization=np.nan),
        ValueError,
        r"^regularization:",
    ),
    "min_amplitude NaN": (
        lambda: lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], min_amplitude=np.nan),
        ValueError,
        r"^min_amplitude:",
    ),
    "t NaN": (lambda: lg.curve_length(rhvae(), LINE, VEL, with_nan(T)), ValueError, r"^t: contains NaN"),
    "factor Inf": (lambda: rhvae().scaled(np.inf), ValueError, r"^factor: must be finite"),
    "lr Inf": (lambda: lg.Adam(lr=np.inf), ValueError, r"^lr"),
    "biases NaN": (
        lambda: lg.PullbackMetric([np.ones((3, 2))], [with_nan(np.ones(3))], ["tanh"]),
        ValueError,
        r"^biases\[0\]: contains NaN",
    ),
    "points2 Inf": (
        lambda: lg.geodesic_distances(rhvae(), Z, np.array([[np.inf, 0.0]]), progress=False),
        ValueError,
        r"^points2: contains NaN",
    ),
    # -- dtypes and layouts ----------------------------------------------------------------------
    "z complex": (lambda: rhvae().metric(Z + 0j), ValueError, r"^z: complex values"),
    "centroids complex": (
        lambda: lg.RHVAEMetric(Z + 1j, L=np.tile(np.eye(2), (3, 1, 1)), temperature=1, regularization=0),
        ValueError,
        r"^centroids: complex",
    ),
    "A complex": (lambda: lg.ConstantMetric(np.eye(2) * (1 + 1j)), ValueError, r"^A: complex"),
    "starts complex": (lambda: lg.geodesics(rhvae(), Z + 0j, Z, progress=False), ValueError, r"^starts: complex"),
    "velocities complex": (lambda: lg.curve_energy(rhvae(), LINE, VEL + 0j), ValueError, r"^velocities: complex"),
    "params complex": (lambda: curve().set_params(curve().get_params() + 0j), ValueError, r"^params: complex"),
    "z strings": (lambda: rhvae().metric(np.array([["a", "b"]])), ValueError, r"^z: expected a numeric array"),
    "z ragged": (lambda: rhvae().metric([[0.0, 1.0], [2.0]]), ValueError, r"^z: cannot be converted"),
    "z datetime": (
        lambda: rhvae().metric(np.array([["2020-01-01", "2020-01-02"]], dtype="datetime64[D]")),
        ValueError,
        r"^z: expected a numeric array",
    ),
    "z Fortran with NaN": (lambda: rhvae().metric(fortran(with_nan(Z))), ValueError, r"^z: contains NaN"),
    "z strided wrong d": (lambda: rhvae().metric(strided(np.zeros((3, 3)))), ValueError, r"^z: .*\(3, 3\)"),
    "z Fortran complex": (lambda: pullback().jacobian(fortran(Z + 1j)), ValueError, r"^z: complex"),
    "points float16 Inf": (
        lambda: lg.discrete_velocity(np.array([[np.inf, 0.0], [1.0, 1.0]], dtype=np.float16)),
        ValueError,
        r"^points: contains NaN or Inf",
    ),
    # -- options ---------------------------------------------------------------------------------
    "tol string": (lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], tol="small"), ValueError, r"^tol:"),
    "n_nodes huge": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], n_nodes=HUGE),
        ValueError,
        r"^n_nodes: .*at most",
    ),
    "n_nodes too many": (
        lambda: lg.geodesics(rhvae(), Z, Z + 1, n_nodes=HUGE - 1, progress=False),
        ValueError,
        r"^n_nodes: .*at most 1048577",
    ),
    "max_nodes too many": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], max_nodes=10**9),
        ValueError,
        r"^max_nodes: .*at most",
    ),
    "neural n_nodes too many": (
        lambda: lg.geodesics(rhvae(), Z, Z + 1, method="neural", n_nodes=10**9, progress=False),
        ValueError,
        r"^n_nodes: .*at most",
    ),
    "n_eval too many": (lambda: lg.fit(curve(), rhvae(), n_eval=HUGE - 1, progress=False), ValueError, r"^n_eval:"),
    "max_iter huge": (lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], max_iter=10**12), ValueError, r"^max_iter:"),
    "history huge": (lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], history=HUGE), ValueError, r"^history:"),
    "method None": (lambda: lg.geodesics(rhvae(), Z, Z + 1, method=None, progress=False), ValueError, r"^method:"),
    "quadrature number": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], quadrature=3),
        ValueError,
        r"^quadrature:",
    ),
    "chunk_size huge": (
        lambda: lg.geodesic_distances(rhvae(), Z, chunk_size=HUGE, progress=False),
        ValueError,
        r"^chunk_size:",
    ),
    "n_steps float": (lambda: lg.fit(curve(), rhvae(), n_steps=10.0, progress=False), ValueError, r"^n_steps:"),
    "hidden too wide": (
        lambda: lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(2**20, 2**20)),
        ValueError,
        r"^hidden: .*parameters",
    ),
    "velocity None": (lambda: lg.loss(curve(), rhvae(), T, velocity=None), ValueError, r"^velocity:"),
    "normalization None": (
        lambda: lg.RHVAEMetric(Z, L=np.tile(np.eye(2), (3, 1, 1)), temperature=1, regularization=0, normalization=None),
        ValueError,
        r"^normalization:",
    ),
    "fd_step zero": (lambda: lg.DenseMetric(np.sin, dim=2, fd_step=0.0), ValueError, r"^fd_step:"),
    "dim float": (lambda: lg.DenseMetric(np.sin, dim=2.0), ValueError, r"^dim:"),
    "dim bool": (lambda: lg.PullbackMetric.from_callable(np.sin, True), ValueError, r"^dim:"),
    "metric with dim 0": (
        lambda: lg.geodesic(type("M", (), {"dim": 0, "quadratic_form": print})(), [0.0], [1.0]),
        ValueError,
        r"^metric: dim must be a positive integer",
    ),
    "scaled base not a metric": (lambda: lg.ScaledMetric("metric", 2.0), ValueError, r"^base: expected an object"),
    "fd method": (lambda: lg.curve_velocity_finitediff(curve(), T, method="backward"), ValueError, r"^method:"),
    # -- threads ---------------------------------------------------------------------------------
    "n_threads 2**31 metric": (lambda: rhvae().metric(Z, n_threads=HUGE), ValueError, r"^n_threads:"),
    "n_threads 2**63 pullback": (lambda: pullback().quadratic_form(Z, Z, n_threads=2**63), ValueError, r"^n_threads:"),
    "n_threads -1 geodesics": (
        lambda: lg.geodesics(rhvae(), Z, Z + 1, n_threads=-1, progress=False),
        ValueError,
        r"^n_threads:",
    ),
    "n_threads float curve": (lambda: lg.curve_length(rhvae(), LINE, VEL, n_threads=2.0), ValueError, r"^n_threads:"),
    "n_threads string distances": (
        lambda: lg.geodesic_distances(rhvae(), Z, n_threads="2", progress=False),
        ValueError,
        r"^n_threads:",
    ),
    "n_threads 2**31 fit": (
        lambda: lg.fit(curve(), rhvae(), n_threads=HUGE, progress=False),
        ValueError,
        r"^n_threads:",
    ),
    "n_threads numpy 0": (lambda: rhvae().log_det(Z, n_threads=np.int64(0)), ValueError, r"^n_threads:"),
    "n_threads bool": (lambda: lg.discrete_velocity(LINE, n_threads=True), ValueError, r"^n_threads:"),
    "n_threads 2**31 neural": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], method="neural", n_threads=HUGE, progress=False),
        ValueError,
        r"^n_threads:",
    ),
    "n_threads 2**31 geodesic": (
        lambda: lg.geodesic(rhvae(), [0.0, 0.0], [1.0, 1.0], n_threads=HUGE),
        ValueError,
        r"^n_threads:",
    ),
    # -- copies and pickles keep their guards ----------------------------------------------------
    "unpickled RHVAE temperature": (
        lambda: setattr(pickle.loads(pickle.dumps(rhvae())), "temperature", 0.3),
        AttributeError,
        r"^temperature: .*read-only",
    ),
    "copied RHVAE centroids": (
        lambda: setattr(copy.deepcopy(rhvae()), "centroids", Z),
        AttributeError,
        r"^centroids: .*read-only",
    ),
    "unpickled constant A": (
        lambda: setattr(pickle.loads(pickle.dumps(lg.ConstantMetric(np.eye(2)))), "A", np.eye(2)),
        AttributeError,
        r"^A: .*read-only",
    ),
    "copied pullback dim": (lambda: setattr(copy.deepcopy(pullback()), "dim", 3), AttributeError, r"^dim: .*read-only"),
    "scaled factor": (lambda: setattr(rhvae().scaled(2.0), "factor", 3.0), AttributeError, r"^factor: .*read-only"),
    "unpickled curve, bad t": (
        lambda: lg.loss(pickle.loads(pickle.dumps(curve())), rhvae(), [0.0, 2.0]),
        ValueError,
        r"^t: times must lie",
    ),
    "copied curve, bad params": (lambda: copy.deepcopy(curve()).set_params(np.zeros(3)), ValueError, r"^params:"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_public_api(case):
    call, error, pattern = API_CASES[case]
    with pytest.raises(error, match=pattern):
        call()


# -- files -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    rhvae().save(folder / "metric.npz")
    curve().save(folder / "curve.npz")
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "text.npz").write_text("centroids = [[0, 0]]\n")
    (folder / "empty.npz").write_bytes(b"")
    for name in ("metric", "curve"):
        data = (folder / f"{name}.npz").read_bytes()
        (folder / f"{name}-truncated.npz").write_bytes(data[: len(data) // 2])
    raw = bytearray((folder / "metric.npz").read_bytes())  # compressed: damage an entry's data
    raw[60:90] = b"\x00" * 30
    (folder / "metric-corrupt.npz").write_bytes(bytes(raw))
    np.savez(folder / "curve-incomplete.npz", format=np.array("latentgeo.NeuralGeodesic/1"), params=np.zeros(3))
    (folder / "folder.npz").mkdir()
    return folder


FILE_CASES = {
    "metric from .npy": ("RHVAEMetric", "array.npy", ValueError, "it is a .npy file"),
    "metric from text": ("RHVAEMetric", "text.npz", ValueError, "not a zip archive"),
    "metric from empty file": ("RHVAEMetric", "empty.npz", ValueError, "not a zip archive"),
    "metric truncated": ("RHVAEMetric", "metric-truncated.npz", ValueError, "cannot read"),
    "metric corrupt entry": ("RHVAEMetric", "metric-corrupt.npz", ValueError, "cannot read"),
    "metric from a curve file": ("RHVAEMetric", "curve.npz", ValueError, None),  # names the other kind
    "metric from a folder": ("RHVAEMetric", "folder.npz", IsADirectoryError, None),
    "metric missing": ("RHVAEMetric", "missing.npz", FileNotFoundError, None),
    "curve from .npy": ("NeuralGeodesic", "array.npy", ValueError, "it is a .npy file"),
    "curve from text": ("NeuralGeodesic", "text.npz", ValueError, "not a zip archive"),
    "curve truncated": ("NeuralGeodesic", "curve-truncated.npz", ValueError, "cannot read"),
    "curve incomplete": ("NeuralGeodesic", "curve-incomplete.npz", ValueError, "missing"),
    "curve from a metric file": ("NeuralGeodesic", "metric.npz", ValueError, "not a saved NeuralGeodesic"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_files(files, case):
    cls, name, error, fragment = FILE_CASES[case]
    path = files / name
    with pytest.raises(error) as info:
        getattr(lg, cls).load(path)
    message = str(info.value)
    if error is ValueError and name != "curve.npz":
        assert message.startswith("path: ") and str(path) in message  # the argument and the file
    elif error is ValueError:
        assert re.match(r"^kind: expected 'rhvae', got 'neural_geodesic'", message)
    else:
        assert str(path) in message
    assert fragment is None or fragment in message


# -- the command line: exit status 2, one line naming the option ------------------------------------

CLI_CASES = {
    "npy model": (["info", "--model", "{files}/array.npy"], "--model"),
    "text model": (["geodesic", "--model", "{files}/text.npz", "--start", "0,0", "--end", "1,1"], "--model"),
    "folder as model": (["info", "--model", "{files}/folder.npz"], "--model"),
    "start dimension": (["geodesic", "--start", "0,0,0", "--end", "1,1"], "--start"),
    "end infinite": (["geodesic", "--start", "0,0", "--end", "1,inf"], "--end"),
    "method unknown": (["geodesic", "--start", "0,0", "--end", "1,1", "--method", "spline"], "--method"),
    "threads zero": (["demo", "--n-threads", "0"], "--n-threads"),
    "pairs huge": (["demo", "--pairs", str(2**40)], "--pairs"),
    "output folder missing": (["geodesic", "--start", "0,0", "--end", "1,1", "--out", "{files}/no/c.npy"], "--out"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_line(files, case):
    args, option = CLI_CASES[case]
    # run in a temporary folder (never write into the checkout), importing this very latentgeo
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(lg.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "latentgeo", *(a.format(files=files) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=files,
        env=env,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentgeo") and option in lines[0], proc.stderr


def test_accepted_layouts_give_the_same_result():
    # Not errors: Fortran order, strided views, float32 and integers are converted, not rejected.
    metric, expected = rhvae(), rhvae().metric(Z)
    np.testing.assert_array_equal(metric.metric(fortran(Z)), expected)
    np.testing.assert_array_equal(metric.metric(strided(Z)), expected)
    np.testing.assert_array_equal(metric.metric(Z.astype(np.float32)), metric.metric(Z.astype(np.float32) * 1.0))
    np.testing.assert_array_equal(metric.metric(np.array([[1, 2]])), metric.metric(np.array([[1.0, 2.0]])))


def test_the_suite_covers_sixty_cases():
    assert len(API_CASES) + len(FILE_CASES) + len(CLI_CASES) >= 60


def test_the_guide_states_the_error_contract():
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    section = guide.split("## Errors", 1)[1].split("\n## ", 1)[0]
    for promise in (
        "ValueError",
        "argument's name",
        "converged",
        "status",
        "DistanceResult.failed",
        "KeyboardInterrupt",
        "exits with status 2",
        "path: cannot read",
    ):
        assert promise in section
    # The messages quoted there are the ones users get.
    metric = lg.ConstantMetric(np.eye(2))
    with pytest.raises(ValueError) as info:
        lg.geodesic(metric, [0.0, 0.0, 0.0], [1.0, 1.0])
    assert f"`{info.value}`" in section
    with pytest.raises(ValueError) as info:
        metric.metric([np.nan, 0.0])
    assert f"`{info.value}`" in section
    with pytest.raises(ValueError) as info:
        metric.metric([0.0, 0.0], n_threads=HUGE)
    assert f"`{str(info.value).split(', got')[0]}, got ...`" in section
