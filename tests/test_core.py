"""The compiled layer's contract: the instruction-set variants of the core and how one is chosen."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import latentgeo as lg
import numpy as np
from latentgeo import _core

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
