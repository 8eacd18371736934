"""The shape of the package (docs/architecture.md): module sizes, imports that point one way, no
private names across modules, one native dispatch in Python and one in the bindings."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import latentgeo as lg
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "latentgeo"
BINDINGS = ROOT / "cpp" / "bindings"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, package: bool, level: int, name: str) -> str:
    """The absolute name of a relative import ``from <level dots><name> import ...``."""
    base = importer.split(".") if package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(name: str) -> Iterator[Tuple[str, str, int]]:
    """(imported latentgeo module, imported name or '', line) for every import of a module,
    at any depth (function-level imports count: they would still close a circle)."""
    path = MODULES[name]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = resolve(name, is_package(path), node.level, node.module or "") if node.level else node.module
            if not target or not target.startswith("latentgeo"):
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}"
                if child in MODULES:  # `from . import module`
                    yield child, "", node.lineno
                else:
                    yield target, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("latentgeo"):
                    yield alias.name, "", node.lineno


def owner(module: str) -> str:
    """The module itself, or for a name inside the compiled core, latentgeo._core."""
    return module if module in MODULES else "latentgeo._core"


def long_modules() -> Dict[str, int]:
    return {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}


def test_no_module_is_longer_than_the_limit():
    long = long_modules()
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_form_no_circle():
    graph: Dict[str, Set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _, _ in imports_of(name):
            target = owner(target)
            # importing a submodule runs its package's __init__ first: an edge to that package
            # from inside the package itself is not a circle
            if target != name and not name.startswith(target + "."):
                graph[name].add(target)
    state: Dict[str, int] = {}
    path: list = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt in graph and not state.get(nxt):
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node)


def private_uses(name: str) -> Iterator[str]:
    """Private names of other latentgeo modules that a module imports or reads as attributes."""
    for target, imported, line in imports_of(name):
        dunder = imported.startswith("__") and imported.endswith("__")  # e.g. __version__: public
        if imported.startswith("_") and not dunder and owner(target) != name:
            yield f"{name}:{line} imports {target}.{imported}"
    tree = ast.parse(MODULES[name].read_text())
    module_aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level
        for alias in node.names
        if not alias.name.startswith("_")  # latentgeo._core and the private helper modules
        and resolve(name, is_package(MODULES[name]), node.level, f"{node.module or ''}.{alias.name}".strip("."))
        in MODULES
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            yield f"{name}:{node.lineno} reads {node.value.id}.{node.attr}"


def test_no_module_uses_another_modules_private_names():
    found = [use for name in MODULES for use in private_uses(name)]
    assert not found, "\n".join(found)


def calls_of(attribute: str) -> Set[str]:
    """Modules that call ``<something>.<attribute>(...)`` or ``getattr(..., "<attribute>")``."""
    pattern = re.compile(rf"\.{attribute}\(|getattr\([^)]*[\"']{attribute}[\"']")
    return {name for name, p in MODULES.items() if pattern.search(p.read_text())}


def test_python_asks_for_the_native_kernel_in_one_place():
    assert calls_of("_native") == {"latentgeo.metrics.base"}
    # nobody else tells kernels or metric classes apart to choose between C++ and callbacks
    sorting = re.compile(r"isinstance\([^)]*(RHVAEMetric|ConstantMetric|ScaledMetric|Kernel\b)")
    outside = {n for n, p in MODULES.items() if sorting.search(p.read_text()) and not n.startswith("latentgeo.metrics")}
    assert not outside, outside


def test_the_bindings_dispatch_over_kernel_types_in_one_place():
    casts = re.compile(r"py::isinstance<\s*(RHVAEKernel|ConstantKernel|PullbackKernel)")
    files = {p.name for p in BINDINGS.glob("*.[ch]pp") if casts.search(p.read_text())}
    assert len(files) == 1, files


def test_the_public_names():
    assert sorted(lg.__all__) == sorted(set(lg.__all__))
    assert set(lg.__all__) == {
        *("Adam", "SGD", "BrownianMotionResult", "ClusteringResult", "FrechetMeanResult", "InterpolationResult"),
        *("SamplingResult", "ExpMapResult", "LogMapResult", "TransportResult", "DistanceResult"),
        *("GeodesicBatch", "GeodesicResult", "NeuralGeodesicResult", "MetricDomainError"),
        *("Metric", "RHVAEMetric", "DenseMetric", "ConstantMetric", "ScaledMetric"),
        *("PullbackMetric", "CallablePullbackMetric", "NeuralGeodesic"),
        *("curve_energy", "curve_integral", "curve_length", "curve_velocity_finitediff", "discrete_velocity"),
        *("curve_velocity_TaylorDiff", "curve_velocity_exact"),
        *("geodesic", "geodesics", "geodesic_distances", "neural_geodesic", "fit_neural_geodesic"),
        *("neural_geodesic_loss", "train_neural_geodesic"),
        *("christoffel", "ricci", "scalar_curvature", "gaussian_curvature", "exp_map", "log_map"),
        *("parallel_transport", "transport_along_geodesic"),
        *("frechet_mean", "kmedoids", "kmeans", "interpolate", "brownian_motion", "sample_riemannian"),
        *("datasets", "statistics", "max_threads", "openmp_enabled"),
    }
    for name in lg.__all__:
        assert getattr(lg, name) is not None, name


def test_the_samplers_run_natively_only_kernels_with_a_volume_jet():
    import numpy as np
    from latentgeo.metrics import native_kernel

    rng = np.random.default_rng(0)
    rhvae = lg.RHVAEMetric(
        rng.normal(size=(5, 2)), M=np.tile(np.eye(2), (5, 1, 1)), temperature=1.0, regularization=0.1
    )
    constant = lg.ConstantMetric(np.diag([1.0, 2.0]))
    assert native_kernel(rhvae, volume_jet=True)[0] is not None
    assert native_kernel(constant)[0] is not None
    assert native_kernel(constant, volume_jet=True) == (None, 1.0)
