"""``python -m latentgeo``: the same as the ``latentgeo`` command."""

import sys

from .cli import main

sys.exit(main())
