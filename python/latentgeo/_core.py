"""The compiled core, in the best variant that was built and that this CPU runs.

CMake builds the C++ core as one or more variants ``_core_<variant>``: a source build makes one,
``native``, for the building CPU; portable wheels make ``baseline`` (x86-64), ``avx2``
(x86-64-v3) and ``avx512`` (x86-64-v4). Next to each lies ``_core_<variant>.features``, the
instruction-set macros the compiler enabled for it. This module imports the best variant whose
instruction sets the CPU has and re-exports its names, so that the rest of the package sees one
module ``latentgeo._core``. ``LATENTGEO_CORE=<variant>`` forces one: a variant that was not built,
or whose instructions this CPU lacks, is an ``ImportError`` raised before any of its code is loaded
(an illegal instruction would kill the interpreter).
"""

from __future__ import annotations

import os
from importlib import import_module
from importlib.util import find_spec
from typing import FrozenSet, List, Optional

PREFERENCE = ("native", "avx512", "avx2", "baseline", "generic")
"""Variant names, best first."""

# Compiler macro -> the flag Linux lists in /proc/cpuinfo for the same instructions. Macros of
# no instruction set (__LP64__, ...) are not in the table and need nothing.
_MACRO_FLAGS = {
    "__MMX__": "mmx", "__FXSR__": "fxsr", "__SSE__": "sse", "__SSE2__": "sse2", "__SSE3__": "pni",
    "__SSSE3__": "ssse3", "__SSE4_1__": "sse4_1", "__SSE4_2__": "sse4_2", "__SSE4A__": "sse4a",
    "__POPCNT__": "popcnt", "__LZCNT__": "abm", "__ABM__": "abm", "__LAHF_SAHF__": "lahf_lm",
    "__AVX__": "avx", "__AVX2__": "avx2", "__FMA__": "fma", "__FMA4__": "fma4", "__F16C__": "f16c",
    "__BMI__": "bmi1", "__BMI2__": "bmi2", "__MOVBE__": "movbe", "__ADX__": "adx", "__AES__": "aes",
    "__PCLMUL__": "pclmulqdq", "__SHA__": "sha_ni", "__RDRND__": "rdrand", "__RDSEED__": "rdseed",
    "__RDPID__": "rdpid", "__XSAVE__": "xsave", "__XSAVEOPT__": "xsaveopt", "__XSAVEC__": "xsavec",
    "__XSAVES__": "xsaves", "__FSGSBASE__": "fsgsbase", "__CLFLUSHOPT__": "clflushopt", "__CLWB__": "clwb",
    "__CLZERO__": "clzero", "__PRFCHW__": "3dnowprefetch", "__GFNI__": "gfni", "__VAES__": "vaes",
    "__VPCLMULQDQ__": "vpclmulqdq", "__AVXVNNI__": "avx_vnni", "__AVX512F__": "avx512f",
    "__AVX512CD__": "avx512cd", "__AVX512DQ__": "avx512dq", "__AVX512BW__": "avx512bw",
    "__AVX512VL__": "avx512vl", "__AVX512IFMA__": "avx512ifma", "__AVX512VBMI__": "avx512vbmi",
    "__AVX512VBMI2__": "avx512_vbmi2", "__AVX512VNNI__": "avx512_vnni", "__AVX512BITALG__": "avx512_bitalg",
    "__AVX512VPOPCNTDQ__": "avx512_vpopcntdq", "__AVX512BF16__": "avx512_bf16", "__AVX512FP16__": "avx512_fp16",
}  # fmt: skip


def cpu_flags(path: str = "/proc/cpuinfo") -> Optional[FrozenSet[str]]:
    """The CPU features the kernel enables (Linux's /proc/cpuinfo), or None where unknown."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _module_name(variant: str) -> str:
    return f"latentgeo._core_{variant}"


def built_variants() -> List[str]:
    """The variants installed here, best first (located without loading them)."""
    return [name for name in PREFERENCE if find_spec(_module_name(name)) is not None]


def required_flags(variant: str) -> FrozenSet[str]:
    """The CPU flags a built variant's instructions need (empty if it has no features file)."""
    spec = find_spec(_module_name(variant))
    if spec is None or not spec.origin:
        return frozenset()
    path = os.path.join(os.path.dirname(spec.origin), f"_core_{variant}.features")
    try:
        with open(path, encoding="ascii") as f:
            macros = f.read().split()
    except OSError:
        return frozenset()
    return frozenset(_MACRO_FLAGS[m] for m in macros if m in _MACRO_FLAGS)


def missing_flags(variant: str, flags: Optional[FrozenSet[str]]) -> List[str]:
    """The required CPU flags of `variant` that `flags` lacks; unknown flags (None) lack nothing."""
    if flags is None:
        return []
    return sorted(required_flags(variant) - flags)


def runnable_variants(flags: Optional[FrozenSet[str]]) -> List[str]:
    """The built variants this CPU runs, best first. Where the CPU's features are unknown only
    those that run on the machine that built them or on any CPU of the architecture."""
    names = built_variants()
    if flags is None:
        return [name for name in names if name in ("native", "baseline", "generic")]
    return [name for name in names if not missing_flags(name, flags)]


def _forced(name: str, flags: Optional[FrozenSet[str]]):
    built = built_variants()
    if name not in built:
        listed = ", ".join(built) or "none"
        raise ImportError(f"latentgeo: LATENTGEO_CORE={name!r}: no such compiled core here (built: {listed})")
    missing = missing_flags(name, flags)
    if missing:
        raise ImportError(
            f"latentgeo: LATENTGEO_CORE={name!r}: this CPU cannot run the {name} core, it lacks " + " ".join(missing)
        )
    return import_module(_module_name(name))


def _load():
    flags = cpu_flags()
    forced = os.environ.get("LATENTGEO_CORE")
    if forced:
        return _forced(forced, flags)
    runnable = runnable_variants(flags)
    if not runnable:
        details = "; ".join(f"{name} needs {' '.join(missing_flags(name, flags))}" for name in built_variants())
        raise ImportError(f"latentgeo: no compiled core that this CPU can run ({details or 'none was built'})")
    return import_module(_module_name(runnable[0]))


_module = _load()
globals().update({key: getattr(_module, key) for key in dir(_module) if not key.startswith("__")})
variant: str = _module.variant
