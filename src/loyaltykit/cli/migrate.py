"""``loyaltykit migrate``: create or upgrade the database schema (Alembic)."""

from __future__ import annotations

import argparse
from typing import Any

from loyaltykit.cli._connect import check_reachable, open_storage, url_of

__all__ = ["add_parser", "run"]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``migrate`` to the command line."""
    parser = commands.add_parser(
        "migrate", parents=[common], help="create or upgrade the database schema",
        description="Run the shipped Alembic migrations up to the newest revision "
                    "(a SQLite file is created if it does not exist).",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Bring the schema of the database at ``--url`` up to date."""
    storage = open_storage(url_of(args), create=True)
    try:
        check_reachable(storage, schema=False)
        storage.upgrade()
    finally:
        storage.dispose()
    print("loyaltykit: the database schema is up to date")
    return 0
