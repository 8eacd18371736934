"""Ctrl-C stops long C++ calls within a second: a child process gets SIGINT one second into the call.

Each call would run for well over 10 s on a laptop core (its threads are fixed, so a machine with
many cores does not finish it before the signal); the child reports how it ended.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")

_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np
import latentgeo as lg
from conftest import random_rhvae

{setup}
print("ready", flush=True)
try:
    {call}
    print("finished", flush=True)
except KeyboardInterrupt:
    # No thread may keep computing: the process's CPU time (all threads) stays still while we sleep.
    cpu = time.process_time()
    time.sleep(0.3)
    print(f"interrupted {{time.process_time() - cpu:.3f}}", flush=True)
"""


def _interrupt_after_one_second(setup: str, call: str):
    code = _CHILD.format(tests=str(Path(__file__).parent), setup=textwrap.dedent(setup), call=call)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(1.0)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=5.0)
        elapsed = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    return out.strip(), err, elapsed


def _check_stopped(out: str, err: str, elapsed: float):
    assert out.startswith("interrupted"), (out, err)
    _, cpu_after = out.split()
    # 0.3 s of the child's sleep are in `elapsed`: it stopped within 0.7 s of the signal.
    assert elapsed < 1.0, f"exited {elapsed:.2f} s after SIGINT"
    assert float(cpu_after) < 0.1, "a thread kept computing after KeyboardInterrupt"


def test_ctrl_c_stops_a_long_metric_evaluation():
    out, err, elapsed = _interrupt_after_one_second(
        """
        metric, _, _ = random_rhvae(np.random.default_rng(0), n_centroids=10_000, dim=2)
        z = np.random.default_rng(1).normal(size=(4_000_000, 2))
        """,
        "metric.log_det(z, n_threads=2)",
    )
    _check_stopped(out, err, elapsed)


def test_ctrl_c_stops_a_long_geodesic_batch():
    out, err, elapsed = _interrupt_after_one_second(
        """
        metric, _, _ = random_rhvae(np.random.default_rng(0), n_centroids=50, dim=2)
        points = np.random.default_rng(1).normal(size=(400, 2))
        """,
        "lg.geodesic_distances(metric, points, chunk_size=100_000, n_threads=1, progress=False)",
    )
    _check_stopped(out, err, elapsed)


def test_ctrl_c_stops_a_parallel_geodesic_batch():
    out, err, elapsed = _interrupt_after_one_second(
        """
        metric, _, _ = random_rhvae(np.random.default_rng(0), n_centroids=50, dim=2)
        rng = np.random.default_rng(1)
        starts, ends = rng.normal(size=(100_000, 2)), rng.normal(size=(100_000, 2))
        """,
        "lg.geodesics(metric, starts, ends, n_threads=2, progress=False)",
    )
    _check_stopped(out, err, elapsed)


def test_ctrl_c_stops_a_batch_on_a_python_metric():
    """The pairs of a Python metric run on worker threads in lockstep; all of them stop."""
    out, err, elapsed = _interrupt_after_one_second(
        """
        from conftest import PoincareHalfPlane
        rng = np.random.default_rng(1)
        starts = np.column_stack([rng.uniform(-2, 2, 100_000), rng.uniform(0.5, 2, 100_000)])
        ends = np.column_stack([rng.uniform(-2, 2, 100_000), rng.uniform(0.5, 2, 100_000)])
        """,
        "lg.geodesics(PoincareHalfPlane(), starts, ends, progress=False)",
    )
    _check_stopped(out, err, elapsed)
