"""``loyaltykit demo``: 14 months of a sample program on an embedded SQLite file."""

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
        description="Run 14 months of a sample program in seconds and print balances, "
                    "a member's statement and a summary. The output is the same for the "
                    "same seed.",
    )
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="SQLite file to (re)create for the demo (default: ./loyaltykit-demo.sqlite)",
    )
    parser.add_argument("--seed", type=int, default=1, metavar="N",
                        help="seed of the random orders (default: 1)")
    # in memory instead of SQLite; for quick checks, not advertised
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the walkthrough of :mod:`loyaltykit._demo`."""
    from loyaltykit import _demo

    if args.memory:
        from loyaltykit.memory import MemoryStorage

        _demo.run_demo(MemoryStorage(), seed=args.seed, out=sys.stdout, label="in memory")
        return 0
    path = args.db if args.db is not None else Path(_demo.DEFAULT_DB)
    storage = _demo.open_sqlite(path)
    try:
        _demo.run_demo(storage, seed=args.seed, out=sys.stdout, label=f"SQLite file {path}")
    finally:
        storage.dispose()
    return 0
