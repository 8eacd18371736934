"""The latentgeo command, run as a subprocess: outputs, files and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import latentgeo as lg
import numpy as np
import pytest


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "latentgeo", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "metric.npz"
    rng = np.random.default_rng(4)
    centroids = rng.normal(size=(12, 2))
    L = np.tile(np.eye(2), (12, 1, 1)) * 0.7
    lg.RHVAEMetric(centroids, L=L, temperature=0.6, regularization=0.05).save(path)
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_cli("demo", "--out", str(out)), out


def test_demo_prints_a_table_and_writes_a_real_picture(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "geodesic length" in line)
    rows = [line.split() for line in lines[header + 1 : header + 7]]
    assert len(rows) == 6
    for row in rows:
        straight, geo, ratio = float(row[1]), float(row[2]), float(row[3])
        assert 0 < geo <= straight * (1 + 1e-9)
        assert ratio == pytest.approx(geo / straight, abs=2e-3)
        assert row[4] == "yes"
    from PIL import Image

    image = np.asarray(Image.open(out / "demo.png").convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_geodesic_command_writes_the_curve(saved_model, tmp_path):
    curve_path = tmp_path / "curve.npy"
    proc = run_cli(
        "geodesic", "--model", str(saved_model), "--start", "-1,0.5", "--end=1.2,-0.3", "--out", str(curve_path)
    )
    assert proc.returncode == 0, proc.stderr
    nodes = np.load(curve_path)
    assert nodes.ndim == 2 and nodes.shape[1] == 2
    np.testing.assert_allclose(nodes[0], [-1, 0.5])
    np.testing.assert_allclose(nodes[-1], [1.2, -0.3])
    length = float(proc.stdout.split()[1])
    metric = lg.RHVAEMetric.load(saved_model)
    t = np.linspace(0, 1, len(nodes))
    polyline = lg.curve_length(metric, nodes, lg.discrete_velocity(nodes, t), t)
    assert length == pytest.approx(polyline, rel=1e-3)


def test_info_command(saved_model):
    proc = run_cli("info", "--model", str(saved_model))
    assert proc.returncode == 0, proc.stderr
    assert "dimension      2" in proc.stdout
    assert "centroids      12" in proc.stdout
    assert "temperature    0.6" in proc.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("geodesic", "--model", "/nonexistent/model.npz", "--start", "0,0", "--end", "1,1"), "no such file"),
        (("geodesic", "--start", "0,0,0", "--end", "1,1"), "--start"),
        (("geodesic", "--start", "0,zero", "--end", "1,1"), "--start"),
        (("geodesic", "--start", "0,0", "--end", "1,nan"), "--end"),
        (("info", "--model", "/nonexistent.npz"), "no such file"),
        (("demo", "--pairs", "-3"), "--pairs"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_errors_are_one_line_with_status_2(args, fragment):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_corrupt_model_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, centroids=np.zeros((2, 2)))
    proc = run_cli("info", "--model", str(bad))
    assert proc.returncode == 2
    assert "--model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [(), ("demo",), ("geodesic",), ("info",)])
def test_help(command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0
    assert "usage: latentgeo" in proc.stdout


def test_demo_without_matplotlib_prints_the_table(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from latentgeo.cli import main; "
        f"sys.exit(main(['demo', '--out', {str(tmp_path)!r}, '--pairs', '2']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "geodesic length" in proc.stdout and "matplotlib is not installed" in proc.stdout
    assert not (tmp_path / "demo.png").exists()


# -- user errors found before any computation, one line each (issue 9, section 4) ---------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, saved_model):
    folder = tmp_path_factory.mktemp("bad")
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "text.npz").write_text("not an archive\n")
    (folder / "truncated.npz").write_bytes(saved_model.read_bytes()[:200])
    (folder / "a_file").write_text("x")
    return folder


BAD_FILE_CALLS = {
    "npy model": (["info", "--model", "{bad}/array.npy"], ["--model", "array.npy"]),
    "text model": (["info", "--model", "{bad}/text.npz"], ["--model", "text.npz"]),
    "truncated model": (
        ["geodesic", "--model", "{bad}/truncated.npz", "--start", "0,0", "--end", "1,1"],
        ["--model", "truncated.npz"],
    ),
    "missing output folder": (
        ["geodesic", "--start", "0,0", "--end", "1,1", "--out", "{bad}/nodir/c.npy"],
        ["--out", "nodir"],
    ),
    "output under a file": (
        ["geodesic", "--start", "0,0", "--end", "1,1", "--out", "{bad}/a_file/c.npy"],
        ["--out", "a_file"],
    ),
    "output is a folder": (
        ["geodesic", "--start", "0,0", "--end", "1,1", "--out", "{bad}/sub.npy"],
        ["--out", "sub.npy", "is a directory"],
    ),
    "demo folder under a file": (["demo", "--out", "{bad}/a_file/pictures"], ["--out", "a_file/pictures"]),
    "demo folder is a file": (["demo", "--out", "{bad}/a_file"], ["--out", "a_file"]),
    "huge thread count": (
        ["geodesic", "--start", "0,0", "--end", "1,1", "--n-threads", str(2**31)],
        ["--n-threads", str(2**31)],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILE_CALLS))
def test_bad_files_and_outputs_exit_2_before_computing(bad_files, case):
    (bad_files / "sub.npy").mkdir(exist_ok=True)
    args, fragments = BAD_FILE_CALLS[case]
    proc = run_cli(*(a.format(bad=bad_files) for a in args))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr
    assert proc.stdout == ""  # nothing computed, nothing printed


def test_out_without_suffix_reports_the_file_written(saved_model, tmp_path):
    proc = run_cli(
        "geodesic", "--model", str(saved_model), "--start", "-1,0.5", "--end", "1,0", "--out", str(tmp_path / "curve")
    )
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "curve.npy"
    assert written.is_file() and not (tmp_path / "curve").exists()
    assert f"wrote {written}:" in proc.stdout


def test_demo_writes_decoded_digits_along_the_most_bent_pair(demo_run):
    proc, out = demo_run
    assert "demo_decoded.png" in proc.stdout
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "geodesic length" in line)
    ratios = [float(line.split()[3]) for line in lines[header + 1 : header + 7]]
    # pairs across low-density gaps: the most bent geodesic is clearly shorter than the line
    assert ratios == sorted(ratios) and ratios[0] < 0.9
    from PIL import Image

    image = np.asarray(Image.open(out / "demo_decoded.png").convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 1000
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_version_is_the_packages():

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"latentgeo {lg.__version__}"
    # one home for the version: pyproject reads it from the package
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject
