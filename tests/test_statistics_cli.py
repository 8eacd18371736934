"""The statistics commands of the command line, the statistics demo and Ctrl-C in the samplers."""

from __future__ import annotations

import sys

import latentgeo as lg
import numpy as np
import pytest
from conftest import reference_rhvae
from latentgeo import statistics as st


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def run_cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "latentgeo", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats_cli")
    metric = reference_rhvae()
    metric.save(folder / "model.npz")
    points = np.random.default_rng(3).uniform(-0.5, 1.5, (8, 2))
    np.save(folder / "pts.npy", points)
    return folder, metric, points


def test_cli_distances_and_cluster(cli_files):
    folder, _, points = cli_files
    proc = run_cli(
        "distances",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--out",
        str(folder / "D.npy"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    dist = np.load(folder / "D.npy")
    np.testing.assert_allclose(
        dist,
        lg.geodesic_distances(lg.RHVAEMetric.load(folder / "model.npz"), points, progress=False).distances,
        rtol=1e-12,
    )
    proc = run_cli(
        "cluster",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--k",
        "3",
        "--distances",
        str(folder / "D.npy"),
        "--out",
        str(folder / "labels.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    expected = st.kmedoids(None, points, 3, distances=dist)
    np.testing.assert_array_equal(np.load(folder / "labels.npy"), expected.labels)
    assert f"{expected.inertia:.10g}" in proc.stdout


def test_cli_mean_and_sample(cli_files):
    folder, _, points = cli_files
    proc = run_cli(
        "mean",
        "--model",
        str(folder / "model.npz"),
        "--points",
        str(folder / "pts.npy"),
        "--out",
        str(folder / "mean.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    expected = st.frechet_mean(lg.RHVAEMetric.load(folder / "model.npz"), points)
    np.testing.assert_allclose(np.load(folder / "mean.npy"), expected.mean, rtol=1e-12, atol=1e-14)
    assert "converged" in proc.stdout
    proc = run_cli(
        "sample",
        "--model",
        str(folder / "model.npz"),
        "--n",
        "40",
        "--bounds",
        "-1,-1,2,2",
        "--out",
        str(folder / "samples.npy"),
    )
    assert proc.returncode == 0, proc.stderr
    samples = np.load(folder / "samples.npy")
    assert samples.shape == (40, 2) and samples.min() >= -1 and samples.max() <= 2
    assert "acceptance rate" in proc.stdout and "effective sample size" in proc.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("distances", "--points", "/nonexistent.npy"), "--points"),
        (("mean", "--points", "{bad_dim}"), "--points"),
        (("mean", "--points", "{pts}", "--weights", "{pts}"), "--weights"),
        (("cluster", "--points", "{pts}", "--k", "0"), "--k"),
        (("cluster", "--points", "{pts}", "--k", "9"), "--k"),
        (("cluster", "--points", "{pts}", "--k", "2", "--distances", "{pts}"), "--distances"),
        (("sample", "--n", "5", "--bounds", "0,1"), "--bounds"),
        (("sample", "--n", "5", "--density", "uniform"), "--density"),
        (("sample", "--n", "0"), "--n"),
    ],
)
def test_cli_statistics_errors_are_one_line(cli_files, args, fragment):
    folder = cli_files[0]
    np.save(folder / "bad_dim.npy", np.zeros((4, 3)))
    names = {"pts": str(folder / "pts.npy"), "bad_dim": str(folder / "bad_dim.npy")}
    proc = run_cli(*[a.format(**names) for a in args], "--model", str(folder / "model.npz"))
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_statistics_demo_writes_its_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from latentgeo.cli.demo import statistics_demo
    from latentgeo.cli.files import print_table as _print_table
    from PIL import Image

    rng = np.random.default_rng(0)
    latent = np.concatenate([rng.normal(c, 0.15, (15, 2)) for c in ([0, 0], [1, 1], [1, 0])])
    labels = np.repeat([0, 1, 2], 15)
    assert statistics_demo(reference_rhvae(), latent, labels, str(tmp_path), print_table=_print_table) == 0
    out = capsys.readouterr().out
    assert "Frechet mean" in out and "geometry-aware sampler" in out
    image = np.asarray(Image.open(tmp_path / "demo_statistics.png").convert("RGB"))
    assert image.shape[1] > 800 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize(
    "call",
    [
        "lg.brownian_motion(metric, [0.0, 0.0], 1.0, 1_000, 20_000, seed=0, n_threads=2)",
        "lg.sample_riemannian(metric, 400_000, seed=0, n_chains=20_000, n_warmup=10_000, n_threads=2)",
    ],
)
def test_ctrl_c_stops_the_samplers(call):
    from test_interrupt import _check_stopped, _interrupt_after_one_second

    out, err, elapsed = _interrupt_after_one_second(
        "metric, _, _ = random_rhvae(np.random.default_rng(0), n_centroids=2000, dim=2)", call
    )
    _check_stopped(out, err, elapsed)
