"""The compiled layer's contract: the instruction-set variants of the core and how one is chosen."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import latentgeo as lg
import numpy as np
import pytest
from conftest import SAFETY, assert_matrices_close, assert_within, numpy_rhvae_inverse, rhvae_rounding
from latentgeo import _core
from latentgeo.metrics import native_kernel

PACKAGE_DIR = os.path.dirname(lg.__file__)
CPU = _core.cpu_flags()


def test_the_loaded_variant_is_built_and_runs_on_this_cpu():
    assert _core.variant in _core.built_variants()
    assert _core.variant in _core.runnable_variants(CPU)


def test_a_variant_runs_exactly_on_cpus_with_all_its_features():
    for name in _core.built_variants():
        needed = _core.required_flags(name)
        assert _core.missing_flags(name, needed) == []
        for flag in needed:  # one feature less and the variant is refused, naming that feature
            assert _core.missing_flags(name, needed - {flag}) == [flag]
            assert name not in _core.runnable_variants(needed - {flag})
        assert _core.missing_flags(name, None) == []  # features unknown: nothing is known to lack


def test_an_sse2_only_cpu_gets_no_wider_variant():
    sse2 = frozenset({"fpu", "mmx", "fxsr", "sse", "sse2"})
    for name in _core.runnable_variants(sse2):
        assert _core.required_flags(name) <= sse2
    for name in set(_core.built_variants()) & {"avx2", "avx512"}:
        assert {"avx2", "fma"} <= _core.required_flags(name)  # what the x86-64-v3 level promises
    if "avx512" in _core.built_variants():
        assert "avx512f" in _core.required_flags("avx512")
        avx2_cpu = _core.required_flags("avx2") if "avx2" in _core.built_variants() else frozenset({"avx2"})
        assert "avx512" not in _core.runnable_variants(avx2_cpu)


def test_unknown_cpu_features_allow_only_variants_that_run_where_they_were_built():
    assert set(_core.runnable_variants(None)) <= {"native", "baseline", "generic"}


# A child whose /proc/cpuinfo lists only the flags given in argv[1]: the CPU it pretends to be.
_FAKE_CPU = r"""
import builtins, io, sys
real_open = builtins.open
def fake_open(path, *args, **kwargs):
    if path == "/proc/cpuinfo":
        return io.StringIO("processor\t: 0\nflags\t\t: " + sys.argv[1] + "\n")
    return real_open(path, *args, **kwargs)
builtins.open = fake_open
try:
    import latentgeo
except ImportError as error:
    loaded = sorted(m for m in sys.modules if m.startswith("latentgeo._core_"))
    print("ImportError:", error, "| loaded:", loaded or "none")
else:
    print("imported", latentgeo._core.variant)
"""


def _import_on_fake_cpu(flags, forced=None):
    env = {key: value for key, value in os.environ.items() if key != "LATENTGEO_CORE"}
    if forced:
        env["LATENTGEO_CORE"] = forced
    argv = [sys.executable, "-c", _FAKE_CPU, " ".join(sorted(flags))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _most_demanding_built_variant():
    name = max(_core.built_variants(), key=lambda n: len(_core.required_flags(n)))
    if not _core.required_flags(name):
        pytest.skip(f"no built variant needs CPU features here (built: {', '.join(_core.built_variants())})")
    return name


def test_forcing_a_variant_the_cpu_cannot_run_is_an_import_error_before_loading_it():
    name = _most_demanding_built_variant()
    needed = _core.required_flags(name)
    lacking = sorted(needed)[-1]
    out = _import_on_fake_cpu(needed - {lacking}, forced=name)
    assert out.startswith("ImportError:"), out
    assert f"LATENTGEO_CORE='{name}'" in out and lacking in out.split("lacks")[1]
    assert out.endswith("loaded: none"), out  # refused before any of its code ran


def test_forcing_a_runnable_variant_loads_it():
    name = _most_demanding_built_variant()
    assert _import_on_fake_cpu(_core.required_flags(name), forced=name) == f"imported {name}"


def test_a_cpu_that_runs_no_built_variant_is_an_import_error_naming_what_each_needs():
    _most_demanding_built_variant()
    out = _import_on_fake_cpu({"fpu"})  # not even SSE2: below every x86-64 variant
    if out.startswith("imported"):  # only a variant that needs no listed flag (generic) runs there
        assert not _core.required_flags(out.split()[1]), out
        return
    assert "no compiled core that this CPU can run" in out and "sse2" in out, out
    assert out.endswith("loaded: none"), out


def test_forcing_a_variant_that_was_not_built_is_an_import_error():
    for name in ("no_such_variant", *(n for n in _core.PREFERENCE if n not in _core.built_variants())):
        out = _import_on_fake_cpu(CPU or set(), forced=name)
        assert out.startswith("ImportError:") and "no such compiled core" in out and repr(name) in out, out


_CHILD_METRIC = r"""
import io, sys
import numpy as np
import latentgeo as lg
from latentgeo import _core
assert _core.variant == sys.argv[1], _core.variant
args = np.load(io.BytesIO(sys.stdin.buffer.read()))
m = lg.RHVAEMetric(args["c"], L=args["L"], temperature=float(args["T"]), regularization=float(args["lam"]))
q, gz, gv = m.quadratic_form(args["z"], args["v"], grad=True)
out = io.BytesIO()
np.savez(out, g=m(args["z"]), q=q, gz=gz, gv=gv)
sys.stdout.buffer.write(out.getvalue())
"""


def _metric_in_child(variant: str, **arrays):
    payload = io.BytesIO()
    np.savez(payload, **arrays)
    env = dict(os.environ, LATENTGEO_CORE=variant)
    argv = [sys.executable, "-c", _CHILD_METRIC, variant]
    proc = subprocess.run(argv, input=payload.getvalue(), capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return dict(np.load(io.BytesIO(proc.stdout)))


def _numpy_metric(z, c, L, T, lam):
    return np.linalg.inv(numpy_rhvae_inverse(z, c, L, T, lam, 1.0))


def _quadratic(v, g):
    return np.einsum("na,nab,nb->n", v, g, v)


@pytest.mark.parametrize("variant", _core.PREFERENCE)
def test_each_variant_this_cpu_runs_matches_brute_force_numpy(variant):
    if variant not in _core.built_variants():
        pytest.skip(f"{variant}: not built here (built: {', '.join(_core.built_variants())})")
    missing = _core.missing_flags(variant, CPU)
    if missing:
        pytest.skip(f"{variant}: this CPU lacks {' '.join(missing)}")
    rng = np.random.default_rng(3)
    c, T, lam = rng.normal(size=(300, 3)), 0.7, 0.05
    L = np.tril(rng.normal(size=(300, 3, 3)), -1) + 2 * np.eye(3)
    z, v = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    got = _metric_in_child(variant, c=c, L=L, T=T, lam=lam, z=z, v=v)

    g = _numpy_metric(z, c, L, T, lam)
    rel, cond = rhvae_rounding(lg.RHVAEMetric(c, L=L, temperature=T, regularization=lam), z)
    tol = SAFETY * rel * cond  # relative rounding of G through the inverse, per point
    assert_matrices_close(got["g"], g, tol)
    q = _quadratic(v, g)
    assert_within(got["q"], q, tol * _quadratic(np.abs(v), np.abs(g)))
    assert_within(
        got["gv"], 2 * np.einsum("nab,nb->na", g, v), 2 * tol[:, None] * np.einsum("nab,nb->na", np.abs(g), np.abs(v))
    )

    # dq/dz by central differences of the numpy reference: truncation ~h² |q'''|, rounding ~tol |q| / h.
    h, fd = 1e-5, np.empty_like(z)
    for a in range(3):
        step = h * np.eye(3)[a]
        up, down = _numpy_metric(z + step, c, L, T, lam), _numpy_metric(z - step, c, L, T, lam)
        fd[:, a] = (_quadratic(v, up) - _quadratic(v, down)) / (2 * h)
    scale = (np.abs(q) / T**3)[:, None]  # q''' ~ q / T³: the weights vary on the scale T
    assert_within(got["gz"], fd, 10 * h**2 * scale + (tol * np.abs(q))[:, None] / h)


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
    loader = {"PREFERENCE", "cpu_flags", "built_variants", "required_flags", "missing_flags", "runnable_variants"}
    exported = {name for name in dir(_core._module) if not name.startswith("_")} | loader
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
    from latentgeo.solvers.options import SOLVER_OPTIONS, solver_options

    assert solver_options(None, None, None, dict(SOLVER_OPTIONS)) == o  # no option given: the core's defaults


def test_status_names_come_from_the_core():
    from latentgeo.solvers.results import FAILURES, STATUS

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
