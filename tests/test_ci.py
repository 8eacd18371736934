""".ci/require-tests: CI fails loudly when ctest or pytest runs no test at all."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = ROOT / ".ci" / "require-tests"


def require(kind, *command, cwd=None):
    return subprocess.run(["bash", str(REQUIRE), kind, *command], capture_output=True, text=True, cwd=cwd, timeout=120)


def fake_ctest(tmp_path, output: str, status: int) -> str:
    """An executable that prints ctest's summary line and exits with ``status``."""
    path = tmp_path / "fake-ctest"
    path.write_text(f"#!/usr/bin/env bash\necho {output!r}\nexit {status}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def pytest_in(folder):
    return [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider"]


def test_pytest_collecting_nothing_fails(tmp_path):
    proc = require("pytest", *pytest_in(tmp_path))
    assert proc.returncode == 3
    assert "pytest collected no test" in proc.stderr


@pytest.mark.parametrize("body, status", [("assert True", 0), ("assert False", 1)])
def test_pytest_status_passes_through(tmp_path, body, status):
    (tmp_path / "test_one.py").write_text(f"def test_one():\n    {body}\n")
    assert require("pytest", *pytest_in(tmp_path)).returncode == status


@pytest.mark.parametrize(
    "output, status, expected",
    [
        ("No tests were found!!!", 0, 3),  # ctest's default for an empty test list: status 0
        ("100% tests passed out of 0", 0, 3),
        ("100% tests passed out of 21", 0, 0),
        ("95% tests passed, 1 tests failed out of 21", 8, 8),
    ],
)
def test_ctest_summary(tmp_path, output, status, expected):
    proc = require("ctest", fake_ctest(tmp_path, output, status))
    assert proc.returncode == expected, proc.stderr
    assert ("ctest ran no test" in proc.stderr) == (expected == 3)


def test_ci_script_guards_both_test_runs():
    script = (ROOT / ".ci" / "run").read_text()
    assert "require-tests ctest ctest" in script and "--no-tests=error" in script
    assert script.count("require-tests pytest") == 2  # the README's command and the other-BLAS run
    assert os.access(REQUIRE, os.X_OK)
