"""``python -m loyaltykit``: the command line of :mod:`loyaltykit.cli`."""

from __future__ import annotations

import sys

from loyaltykit.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
