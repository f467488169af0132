"""The ``loyaltykit`` command (also ``python -m loyaltykit``).

``demo`` runs the example of :mod:`loyaltykit.demo` on an embedded SQLite file;
``migrate`` brings a database's schema up to date with the shipped Alembic migrations.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loyaltykit._errors import LoyaltyError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyaltykit",
        description="A double-entry points ledger for loyalty and referral programs.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log what the library does (-v: info, -vv: debug) to stderr",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run 14 months of a sample program on an embedded SQLite file",
        description="Run 14 months of a sample program in seconds and print a summary "
                    "(what happened, balances, liability), where the file, the code "
                    "(loyaltykit.demo) and the docs are, and what to try next. The output "
                    "is the same for the same seed.",
    )
    demo.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="SQLite file to (re)create for the demo (default: ./loyaltykit-demo.sqlite)",
    )
    demo.add_argument("--seed", type=int, default=1, metavar="N",
                      help="seed of the random orders (default: 1)")
    demo.add_argument("--detail", action="store_true",
                      help="also print the month-by-month log and a member's statement")
    demo.add_argument("--memory", action="store_true",
                      help="run in memory and write no file")

    migrate = commands.add_parser(
        "migrate", help="create or upgrade the database schema",
        description="Run the shipped Alembic migrations up to the newest revision.",
    )
    migrate.add_argument(
        "--url", required=True,
        help="SQLAlchemy database URL, e.g. sqlite:///loyalty.sqlite or "
             "postgresql+psycopg://user@host/db",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status (0 success, 1 error, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        if args.command == "demo":
            return _demo(db=args.db, seed=args.seed, memory=args.memory, detail=args.detail)
        if args.command == "migrate":
            return _migrate(args.url)
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (LoyaltyError, OSError) as exc:
        print(f"loyaltykit: error: {exc}", file=sys.stderr)
        return 1
    parser.print_help(sys.stderr)
    return 2


def _demo(*, db: Path | None, seed: int, memory: bool, detail: bool) -> int:
    from loyaltykit import demo

    return demo.run(db=db, seed=seed, memory=memory, detail=detail, out=sys.stdout)


def _migrate(url: str) -> int:
    from loyaltykit.sql import SQLStorage

    storage = SQLStorage.from_url(url)
    try:
        storage.upgrade()
    finally:
        storage.dispose()
    print("loyaltykit: the database schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
