"""Checks shared by the statistics functions."""

from __future__ import annotations

import numpy as np

__all__ = ["check_seed"]


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2⁶⁴) (the core's random streams take 64-bit seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    return int(seed)
