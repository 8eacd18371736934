"""The compiled layer's contract: the instruction-set variants of the core and how one is chosen."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import latentgeo as lg
import numpy as np
import pytest
from latentgeo import _core
from latentgeo.metrics import native_kernel

PACKAGE_DIR = os.path.dirname(lg.__file__)


def built_variants():
    names = {
        os.path.basename(p).split(".")[0][len("_core_") :] for p in glob.glob(os.path.join(PACKAGE_DIR, "_core_*"))
    }
    return sorted(n for n in names if n and not n.endswith("pyi"))


def test_the_loaded_variant_is_one_that_was_built():
    assert _core.variant in built_variants()


def test_a_variant_is_chosen_only_when_the_cpu_has_its_features(monkeypatch):
    monkeypatch.delenv("LATENTGEO_CORE", raising=False)  # CI forces the baseline core in one run
    no_avx = _core._candidates(frozenset({"sse2"}))
    assert "avx2" not in no_avx and "avx512" not in no_avx and "baseline" in no_avx
    avx2 = _core._candidates(frozenset({"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}))
    assert avx2.index("avx2") < avx2.index("baseline") and "avx512" not in avx2


def _metric_values(variant: str) -> np.ndarray:
    code = (
        "import numpy as np, latentgeo as lg, sys\n"
        "from latentgeo import _core\n"
        "assert _core.variant == sys.argv[1], _core.variant\n"
        "rng = np.random.default_rng(3)\n"
        "c = rng.normal(size=(300, 3)); L = np.tril(rng.normal(size=(300, 3, 3)), -1) + 2 * np.eye(3)\n"
        "m = lg.RHVAEMetric(c, L=L, temperature=0.7, regularization=0.05)\n"
        "z = rng.normal(size=(50, 3)); v = rng.normal(size=(50, 3))\n"
        "q, gz, gv = m.quadratic_form(z, v, grad=True)\n"
        "np.save(sys.stdout.buffer, np.concatenate([m(z).ravel(), q, gz.ravel(), gv.ravel()]))\n"
    )
    env = dict(os.environ, LATENTGEO_CORE=variant)
    proc = subprocess.run([sys.executable, "-c", code, variant], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    import io

    return np.load(io.BytesIO(proc.stdout))


def test_every_built_variant_gives_the_same_metric():
    variants = built_variants()
    reference = _metric_values(variants[0])
    for variant in variants[1:]:
        # Other vector widths and FMA change rounding only: G⁻¹ is a sum of 300 terms and G a
        # 3×3 inverse of condition ~1e2, so agreement to ~1e-12 relative is expected; 1e-9 is safe.
        np.testing.assert_allclose(_metric_values(variant), reference, rtol=1e-9, atol=1e-12)


def test_forcing_an_unknown_variant_is_an_import_error():
    env = dict(os.environ, LATENTGEO_CORE="no_such_variant")
    proc = subprocess.run(
        [sys.executable, "-c", "import latentgeo"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode != 0 and "no compiled core" in proc.stderr


# -- the stub and the protocol between Python and the core --------------------------------------
def _stub_names():
    """Top-level names of _core.pyi and, per class, its public members."""
    import ast

    with open(os.path.join(PACKAGE_DIR, "_core.pyi"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {
                item.name if isinstance(item, ast.FunctionDef) else item.target.id
                for item in node.body
                if isinstance(item, ast.FunctionDef) or (isinstance(item, ast.AnnAssign) and hasattr(item.target, "id"))
            }
    return names - {"Array"}, members


def test_the_stub_lists_every_name_the_core_exports_and_no_other():
    exported = {name for name in dir(_core._module) if not name.startswith("_")}
    stub, members = _stub_names()
    assert exported - stub == set(), "exported by _core but missing from _core.pyi"
    assert stub - exported == set(), "in _core.pyi but not exported by _core"
    for cls, stubbed in members.items():
        public = {name for name in dir(getattr(_core, cls)) if not name.startswith("_")}
        assert public - stubbed == set(), f"{cls}: members missing from _core.pyi"
        assert {m for m in stubbed if not m.startswith("_")} - public == set(), f"{cls}: stale members in _core.pyi"


def test_geodesic_option_defaults_are_the_documented_ones():
    import re

    o = _core.GeodesicOptions()
    doc = " ".join(lg.geodesics.__doc__.split())
    documented = {
        "tol": float(re.search(r"\(default ([0-9.e-]+)\)", doc).group(1)),
        "max_iter": int(re.search(r"iterations per level \(default (\d+)\)", doc).group(1)),
        "min_nodes": int(re.search(r"``min_nodes`` \((\d+)\)", doc).group(1)),
        "max_nodes": int(re.search(r"``max_nodes`` \((\d+)\)", doc).group(1)),
        "history": int(re.search(r"``history`` \((\d+)\)", doc).group(1)),
    }
    assert documented == {
        "tol": o.length_tol,
        "max_iter": o.max_iter,
        "min_nodes": o.min_segments + 1,
        "max_nodes": o.max_segments + 1,
        "history": o.history,
    }
    assert o.n_segments == 0 and o.ftol is None and o.gtol is None and o.quadrature == "simpson"  # adaptive, derived
    assert o.max_ratio == 16.0  # smooth metrics: up to fourth order
    from latentgeo.geodesic import _SOLVER_OPTIONS, _solver_options

    assert _solver_options(None, None, None, dict(_SOLVER_OPTIONS)) == o  # no option given: the core's defaults


def test_status_names_come_from_the_core():
    from latentgeo.results import FAILURES, STATUS

    assert list(STATUS) == _core.geodesic_status_names()
    assert STATUS[0] == "converged" and {"non_finite", "singular_metric", "metric_error"} <= FAILURES


def test_geodesic_options_round_trip_through_pickle():
    import pickle

    o = _core.GeodesicOptions()
    o.n_segments, o.min_segments, o.max_segments = 32, 4, 64
    o.length_tol, o.ftol, o.gtol = 1e-5, 3e-6, None
    o.max_iter, o.history, o.quadrature, o.max_ratio = 17, 3, "midpoint", 2.0
    back = pickle.loads(pickle.dumps(o))
    assert back == o and repr(back) == repr(o)
    assert (back.n_segments, back.ftol, back.gtol, back.max_iter, back.quadrature, back.max_ratio) == (
        32,
        3e-6,
        None,
        17,
        "midpoint",
        2.0,
    )
    assert back != _core.GeodesicOptions()


def _batch(options):
    metric = lg.ConstantMetric(np.array([[2.0, 0.3], [0.3, 1.0]]))
    kernel, scale = native_kernel(metric)
    starts, ends = np.array([[0.0, 0.0]]), np.array([[1.0, 2.0]])
    return _core.geodesic_batch(metric, kernel, scale, starts, ends, np.zeros((0, 2)), 0, options, 1)


def test_unset_ftol_and_gtol_follow_length_tol_in_the_core():
    centroids = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]])
    lower = np.array([[[1.0, 0.0], [0.3, 0.8]], [[0.7, 0.0], [-0.2, 1.2]], [[1.5, 0.0], [0.1, 0.5]]])
    metric = lg.RHVAEMetric(centroids, L=lower, temperature=0.8, regularization=0.1)
    kernel, scale = native_kernel(metric)
    starts, ends = np.array([[-1.0, -0.5], [0.2, 1.5]]), np.array([[1.5, 1.0], [1.0, -1.0]])

    def solve(options):
        return _core.geodesic_batch(metric, kernel, scale, starts, ends, np.zeros((0, 2)), 0, options, 1)

    derived, explicit, other = _core.GeodesicOptions(), _core.GeodesicOptions(), _core.GeodesicOptions()
    for o in (derived, explicit, other):
        o.length_tol = 1e-6
    explicit.ftol, explicit.gtol = 1e-6, 0.01 * 1e-6
    other.ftol, other.gtol = 1e-6, 1e-6  # gtol = length_tol instead: stops elsewhere, so the test can fail
    a, b, c = solve(derived), solve(explicit), solve(other)
    np.testing.assert_array_equal(a["nodes"], b["nodes"])  # the same solve: bitwise
    np.testing.assert_array_equal(a["n_iter"], b["n_iter"])
    assert not np.array_equal(a["n_iter"], c["n_iter"]) or not np.array_equal(a["nodes"], c["nodes"])


@pytest.mark.parametrize(
    "field, value, name",
    [
        ("n_segments", 3, "n_nodes"),
        ("min_segments", 3, "min_nodes"),
        ("max_segments", 7, "max_nodes"),
        ("length_tol", 0.0, "tol"),
        ("ftol", -1e-3, "ftol"),
        ("gtol", float("nan"), "gtol"),
        ("max_iter", 0, "max_iter"),
        ("history", 0, "history"),
    ],
)
def test_bad_option_values_raise_naming_the_argument(field, value, name):
    o = _core.GeodesicOptions()
    setattr(o, field, value)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        _batch(o)
    assert _batch(_core.GeodesicOptions())["status"][0] == 0  # the defaults pass
