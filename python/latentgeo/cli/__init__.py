"""The ``latentgeo`` command line: ``latentgeo demo | info | geodesic | ...``."""

from .commands import main

__all__ = ["main"]
