"""The user's side of the ``latentgeo`` command: reading point files and models, writing outputs,
and the argument checks whose failures are one-line errors with exit status 2 (:class:`CommandError`).

Every check runs before any long computation starts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .._validation import INT_MAX

__all__ = [
    "CommandError",
    "parse_point",
    "positive_int",
    "positive_float",
    "writable_directory",
    "output_file",
    "load_model",
    "load_array",
    "load_checked",
    "save_array",
    "save_if_asked",
    "print_table",
    "report_convergence",
    "print_failed_pairs",
    "SHOWN_FAILURES",
]

SHOWN_FAILURES = 10  # failed items named in a summary line; the rest are counted


class CommandError(Exception):
    """An error reported as one line on stderr with exit status 2."""


def parse_point(text: str, name: str) -> np.ndarray:
    """The finite numbers of a comma-separated option value such as ``0.5,-1.2``."""
    try:
        values = np.array([float(part) for part in text.split(",")])
    except ValueError:
        raise CommandError(f"{name}: expected comma-separated numbers like 0.5,-1.2, got {text!r}") from None
    if not np.all(np.isfinite(values)):
        raise CommandError(f"{name}: values must be finite, got {text!r}")
    return values


def positive_int(text: str) -> int:
    """argparse type: an integer in [1, INT_MAX]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= INT_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {INT_MAX}], got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def writable_directory(directory: str, option: str, *, create: bool = False) -> None:
    """Fail with a one-line error before any computation if files cannot be written in ``directory``."""
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"{option}: cannot create the directory {directory}: {exc.strerror or exc}") from None
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: no such directory: {directory}")
    try:  # os.access is not enough: root, read-only file systems, ACLs
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise CommandError(f"{option}: cannot write in {directory}: {exc.strerror or exc}") from None


def output_file(path: str, option: str, suffix: str) -> str:
    """The file actually written for ``path`` (numpy appends ``suffix`` when missing), checked writable."""
    target = path if path.endswith(suffix) else path + suffix
    if os.path.isdir(target):
        raise CommandError(f"{option}: {target} is a directory")
    writable_directory(os.path.dirname(target) or ".", option)
    return target


def load_model(path: Optional[str]):
    """The RHVAE metric saved at ``path`` (``--model``), or the shipped digits model when None."""
    from ..datasets import load_digits_rhvae
    from ..metrics import RHVAEMetric

    if path is None:
        return load_digits_rhvae().metric
    if not os.path.isfile(path):
        raise CommandError(f"--model: no such file: {path}")
    try:
        return RHVAEMetric.load(path)
    except (ValueError, OSError) as exc:
        message = str(exc)  # "path: cannot read '<path>' ..." already names the file
        raise CommandError(
            "--model: "
            + (message[len("path: ") :] if message.startswith("path: ") else f"cannot read {path}: {message}")
        ) from None


def load_array(path: str, flag: str) -> np.ndarray:
    """A float array from a .npy file (one line and exit 2 when it cannot be read)."""
    if not os.path.isfile(path):
        raise CommandError(f"{flag}: no such file: {path}")
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    except (ValueError, OSError, TypeError) as exc:
        raise CommandError(f"{flag}: cannot read {path} as a numeric .npy array ({exc})") from None


def load_checked(path: str, option: str, dim: Optional[int] = None, ndim: int = 2) -> np.ndarray:
    """A non-empty finite array of ndim dimensions from a .npy file; with dim, of shape (M, dim)."""
    arr = load_array(path, option)
    if arr.ndim != ndim or arr.size == 0:
        raise CommandError(f"{option}: expected a non-empty {ndim}-d array, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise CommandError(f"{option}: expected points of dimension {dim} for this model, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CommandError(f"{option}: contains NaN or Inf")
    return arr


def save_array(path: str, array: np.ndarray, what: str) -> None:
    """Save ``array`` to the .npy file ``path`` (``--out``) and say so."""
    try:
        np.save(path, array)
    except OSError as exc:
        raise CommandError(f"--out: cannot write {path} ({exc})") from None
    print(f"wrote {path}: {what} of shape {array.shape}")


def save_if_asked(path: Optional[str], array: np.ndarray, what: str) -> None:
    """:func:`save_array` when the optional output option ``path`` was given."""
    if path:
        save_array(path, array, what)


def print_table(rows: List[Sequence], header: Sequence[str]) -> None:
    """Print rows under a header, right-aligned columns."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))


def report_convergence(converged: np.ndarray, status: List[str], noun: str) -> int:
    """Print how many of the ``noun`` converged, naming the first failures; the exit status (0 or 1)."""
    failed = [f"{i}: {s}" for i, (ok, s) in enumerate(zip(converged, status)) if not ok]
    shown = f"{', '.join(failed[:SHOWN_FAILURES])}{' ...' if len(failed) > SHOWN_FAILURES else ''}"
    print(
        f"{len(converged)} {noun}, {len(converged) - len(failed)} converged"
        + (f"; not converged: {shown}" if failed else "")
    )
    return 0 if not failed else 1


def print_failed_pairs(failed: Sequence[Tuple[int, int]]) -> None:
    """Print the pairs (i, j) whose geodesic did not converge (nothing when there are none)."""
    if not failed:
        return
    shown = ", ".join(f"({i}, {j})" for i, j in failed[:SHOWN_FAILURES])
    more = f" and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
    print(f"{len(failed)} pairs did not converge: {shown}{more}")
