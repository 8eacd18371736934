"""The ``.npz`` files of ``save`` methods: one layout for every saved object.

A saved object is a plain ``.npz`` archive (no pickle, compressed) with two header keys,
``format_version`` (int64 scalar) and ``kind`` (string scalar, e.g. ``"rhvae"``,
``"neural_geodesic"``), and the object's named arrays. Reading names the file in every failure.
Files of the earlier NeuralGeodesic layout (a single ``format`` string key,
``"latentgeo.NeuralGeodesic/1"``) are still read: :func:`saved_header` maps them to the kind
and version they stand for.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

__all__ = [
    "read_npz",
    "write_saved",
    "read_saved",
    "load_saved",
    "saved_header",
    "saved_scalar",
    "saved_string",
    "HEADER_KEYS",
]

HEADER_KEYS = ("format_version", "kind")
_LEGACY_FORMATS = {"latentgeo.NeuralGeodesic/1": ("neural_geodesic", 1)}  # the `format` key of old files

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def read_npz(path, keys: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
    """The arrays ``keys`` (those present; all when None) of the archive at ``path``, read eagerly.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        ``path`` does not name a file.
    ValueError
        ``path: cannot read '<path>' as a .npz archive (...)``: a ``.npy`` or text file, a
        truncated or corrupt archive, or an entry that needs pickle.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:  # FileNotFoundError, IsADirectoryError, PermissionError as they are
        magic = f.read(len(_ZIP_MAGIC))
    if magic == _NPY_MAGIC[: len(magic)] and magic:
        raise ValueError(f"path: cannot read {name!r} as a .npz archive (it is a .npy file: a single array)")
    if magic != _ZIP_MAGIC:
        raise ValueError(f"path: cannot read {name!r} as a .npz archive (not a zip archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated or corrupt archives
        raise ValueError(f"path: cannot read {name!r} as a .npz archive ({type(exc).__name__}: {exc})") from None
    with loaded:
        try:  # entries are decompressed on access: a damaged one fails here
            wanted = loaded.files if keys is None else [k for k in keys if k in loaded.files]
            return {k: loaded[k] for k in wanted}
        except Exception as exc:
            raise ValueError(f"path: cannot read {name!r} as a .npz archive ({type(exc).__name__}: {exc})") from None


def write_saved(
    path, kind: str, version: int, arrays: Dict[str, np.ndarray], extra_arrays: Optional[Dict] = None
) -> None:
    """Write ``arrays`` with the header keys (numpy appends ``.npz`` when missing).

    ``extra_arrays`` (the caller's own arrays, stored alongside and ignored when reading) may not
    reuse the names of the header or of ``arrays``: ValueError naming ``extra_arrays``.
    """
    extra = dict(extra_arrays or {})
    clash = sorted(set(extra) & {*HEADER_KEYS, *arrays})
    if clash:
        raise ValueError(f"extra_arrays: names {clash} are reserved for the {kind} layout")
    extra = {k: np.asarray(v) for k, v in extra.items()}
    np.savez_compressed(path, format_version=np.int64(version), kind=np.str_(kind), **arrays, **extra)


def read_saved(path, keys: Iterable[str]) -> Dict[str, np.ndarray]:
    """The header keys, the legacy ``format`` key and ``keys`` (those present) of a saved object."""
    return read_npz(path, tuple(HEADER_KEYS) + ("format",) + tuple(keys))


def saved_header(data: Dict[str, np.ndarray]) -> Tuple[Optional[str], Optional[int]]:
    """``(kind, format_version)`` of a saved object in either layout; None for what is absent or malformed."""
    legacy = data.get("format")
    if legacy is not None and legacy.shape == () and legacy.dtype.kind == "U" and str(legacy) in _LEGACY_FORMATS:
        return _LEGACY_FORMATS[str(legacy)]
    kind, version = data.get("kind"), data.get("format_version")
    kind = str(kind) if kind is not None and kind.shape == () and kind.dtype.kind == "U" else None
    if version is None or version.shape != () or not np.issubdtype(version.dtype, np.integer):
        return kind, None
    return kind, int(version)


def load_saved(path, kind: str, max_version: int, required: Iterable[str], keys: Optional[Iterable[str]] = None):
    """The arrays of a saved object of ``kind`` (format versions 1..max_version).

    Reads ``keys`` (all arrays when None) and checks, in this order: the header keys are present,
    the version is known, the kind matches, every key of ``required`` is present. Each failure is
    a ValueError whose message starts with the key at fault and names the file.
    """
    name = os.fspath(path)
    data = read_npz(path, None if keys is None else (*HEADER_KEYS, *keys))
    absent = [k for k in (*HEADER_KEYS, *required) if k not in data]
    if absent and absent[0] in HEADER_KEYS:  # not a saved object of latentgeo's layout
        raise ValueError(f"{absent[0]}: missing from {name!r} (missing keys {absent})")
    version = saved_scalar(data, "format_version")
    if version != int(version) or not 1 <= version <= max_version:
        raise ValueError(f"format_version: unsupported version {version!r} (this latentgeo reads 1..{max_version})")
    if saved_string(data, "kind") != kind:
        raise ValueError(f"kind: expected {kind!r}, got {saved_string(data, 'kind')!r}")
    if absent:
        raise ValueError(f"{absent[0]}: missing from {name!r} (missing keys {absent})")
    return data


def saved_scalar(data: Dict[str, np.ndarray], key: str) -> float:
    """The finite numeric scalar stored under ``key``; ValueError naming the key otherwise."""
    arr = data[key]
    if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{key}: expected a numeric scalar, got dtype {arr.dtype} and shape {arr.shape}")
    value = float(arr)
    if not np.isfinite(value):
        raise ValueError(f"{key}: contains NaN or Inf")
    return value


def saved_string(data: Dict[str, np.ndarray], key: str) -> str:
    """The string scalar stored under ``key``; ValueError naming the key otherwise."""
    arr = data[key]
    if arr.shape != () or arr.dtype.kind != "U":
        raise ValueError(f"{key}: expected a string, got dtype {arr.dtype} and shape {arr.shape}")
    return str(arr)
