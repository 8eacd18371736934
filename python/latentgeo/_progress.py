"""The one progress bar of latentgeo (tqdm; a disabled bar costs nothing and needs no checks)."""

from __future__ import annotations

__all__ = ["progress_bar", "MIN_PAIRS"]

MIN_PAIRS = 100  # batches of fewer pairs finish too fast to need a bar


def progress_bar(total: int, enabled: bool, desc: str, *, unit: str = "it", min_total: int = 1, leave: bool = True):
    """A tqdm bar over ``total`` units, shown only when ``enabled`` and ``total >= min_total``.

    The bar is a context manager; ``update`` and ``set_postfix`` are no-ops when it is hidden.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not (enabled and total >= min_total), desc=desc, unit=unit, leave=leave)
