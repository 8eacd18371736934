"""Checks shared by the statistics functions."""

from __future__ import annotations

import numpy as np

__all__ = ["check_seed"]

_SEED_BOUND = 2**64  # the core's random streams take 64-bit seeds


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2⁶⁴) (the core's random streams take 64-bit seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < _SEED_BOUND:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    return int(seed)
