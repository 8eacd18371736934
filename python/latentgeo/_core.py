"""The compiled core, in the variant that this CPU runs fastest.

CMake builds the same C++ core once per x86-64 instruction-set level (``_core_baseline``,
``_core_avx2`` with FMA, ``_core_avx512``), or a single ``_core_native`` / ``_core_generic``
elsewhere. This module imports the best variant the CPU and the operating system support and
re-exports its names, so that the rest of the package sees one module ``latentgeo._core``.
Set ``LATENTGEO_CORE=<variant>`` to force one (an unknown or unbuilt variant is an ImportError).
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import FrozenSet, List

# Preference order; a variant is tried only if the CPU has its features.
_REQUIRED = {
    "native": frozenset(),
    "avx512": frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"}),
    "avx2": frozenset({"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}),
    "baseline": frozenset(),
    "generic": frozenset(),
}


def _cpu_flags() -> FrozenSet[str]:
    """The CPU features the kernel enables (Linux's /proc/cpuinfo); empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _candidates(flags: FrozenSet[str]) -> List[str]:
    forced = os.environ.get("LATENTGEO_CORE")
    if forced:
        return [forced]
    return [name for name, needs in _REQUIRED.items() if needs <= flags]


def _load():
    errors = []
    for name in _candidates(_cpu_flags()):
        try:
            return import_module(f"latentgeo._core_{name}")
        except ImportError as exc:  # variant not built here
            errors.append(f"{name}: {exc}")
    raise ImportError("latentgeo: no compiled core could be imported (" + "; ".join(errors) + ")")


_module = _load()
globals().update({key: getattr(_module, key) for key in dir(_module) if not key.startswith("__")})
variant: str = _module.variant
