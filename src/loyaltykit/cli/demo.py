"""``loyaltykit demo``: 14 months of a sample program on an embedded SQLite file (the
example of :mod:`loyaltykit.demo`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``demo`` to the command line."""
    parser = commands.add_parser(
        "demo", parents=[common],
        help="run 14 months of a sample program on an embedded SQLite file",
        description="Run 14 months of a sample program in seconds and print a summary "
                    "(what happened, balances, liability), where the file, the code "
                    "(loyaltykit.demo) and the docs are, and what to try next. The output "
                    "is the same for the same seed.",
    )
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="SQLite file to (re)create for the demo (default: ./loyaltykit-demo.sqlite)",
    )
    parser.add_argument("--seed", type=int, default=1, metavar="N",
                        help="seed of the random orders (default: 1)")
    parser.add_argument("--detail", action="store_true",
                        help="also print the month-by-month log and a member's statement")
    parser.add_argument("--memory", action="store_true",
                        help="run in memory and write no file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the example of :mod:`loyaltykit.demo`."""
    from loyaltykit import demo

    return demo.run(db=args.db, seed=args.seed, memory=args.memory, detail=args.detail,
                    out=sys.stdout)
