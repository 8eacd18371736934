"""Reading the ``.npz`` files written by ``save`` methods: every failure names the file."""

from __future__ import annotations

import os
from typing import Dict, Iterable

import numpy as np

__all__ = ["read_npz"]

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def read_npz(path, keys: Iterable[str]) -> Dict[str, np.ndarray]:
    """The arrays ``keys`` (those present) of the archive at ``path``, read eagerly.

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
    if magic == _NPY_MAGIC[:len(magic)] and magic:
        raise ValueError(f"path: cannot read {name!r} as a .npz archive (it is a .npy file: a single array)")
    if magic != _ZIP_MAGIC:
        raise ValueError(f"path: cannot read {name!r} as a .npz archive (not a zip archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated or corrupt archives
        raise ValueError(f"path: cannot read {name!r} as a .npz archive ({type(exc).__name__}: {exc})") from None
    with loaded:
        try:  # entries are decompressed on access: a damaged one fails here
            return {k: loaded[k] for k in keys if k in loaded.files}
        except Exception as exc:
            raise ValueError(f"path: cannot read {name!r} as a .npz archive ({type(exc).__name__}: {exc})") from None
