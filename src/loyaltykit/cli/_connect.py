"""From the command line's options to a facade: the database URL (``--url`` or
``LOYALTYKIT_URL``), the storage, the program stored in it (``--program`` or
``LOYALTYKIT_PROGRAM``, else the only one), and a friendly line for each way that can
fail (no URL, a bad URL, a missing driver, an unreachable database, no schema, no or an
unknown program).

The program is the latest version stored in the database (``Program.from_dict`` of its
definition), so the command line works on any database loyaltykit wrote, without the
shop's code.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from loyaltykit import Loyalty, LoyaltyError, Program, StorageError

if TYPE_CHECKING:
    from loyaltykit.sql import SQLStorage

__all__ = [
    "PROGRAM_VARIABLE", "URL_VARIABLE", "CliError", "check_reachable", "connect", "explain",
    "load_program", "open_storage", "parse_instant", "stored_programs", "url_of",
]

#: The environment variable with the database URL (``--url`` wins).
URL_VARIABLE = "LOYALTYKIT_URL"
#: The environment variable with the program's id (``--program`` wins).
PROGRAM_VARIABLE = "LOYALTYKIT_PROGRAM"

#: What to install for a driver SQLAlchemy could not import, by the URL's dialect.
_EXTRAS = {
    "postgresql": "the PostgreSQL driver is not installed: pip install 'loyaltykit[postgresql]'",
}


class CliError(Exception):
    """A failure the command line explains in one line; ``status`` is the exit status
    (1 an error, 2 usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def url_of(args: argparse.Namespace) -> str:
    """The database URL: ``--url``, else ``$LOYALTYKIT_URL``; neither is a usage error."""
    url = getattr(args, "url", None) or os.environ.get(URL_VARIABLE)
    if not url:
        raise CliError(f"no database: give --url URL or set {URL_VARIABLE} "
                       "(e.g. sqlite:///loyalty.sqlite)", status=2)
    return str(url)


def _shown(url: str) -> str:
    """The URL with its password hidden."""
    from loyaltykit.sql.engine import hide_password

    return hide_password(url)


def open_storage(url: str, *, create: bool = False) -> SQLStorage:
    """A storage on ``url``: a bad URL, a missing driver and (unless ``create``) a
    SQLite file that does not exist are one-line errors; the database is not reached
    yet (see :func:`check_reachable`)."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise CliError(f"not a database URL: {_shown(url)!r} (expected e.g. "
                       "sqlite:///loyalty.sqlite or postgresql+psycopg://user@host/db)"
                       ) from None
    driver = parsed.drivername.partition("+")[2]  # (naming no dialect module yet)
    if driver.endswith("_async") or driver.startswith(("aio", "async")):
        sync = {"sqlite": "sqlite:///", "postgresql": "postgresql+psycopg://"}.get(
            parsed.get_backend_name(), "a synchronous driver's URL")
        raise CliError(f"the command line needs a synchronous driver, not {driver}: "
                       f"write the URL as {sync}...")
    if parsed.get_backend_name() == "sqlite" and not create:
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:") \
                and not Path(database).is_file():
            raise CliError(f"no such SQLite database file: {Path(database).absolute()} "
                           "(create it with: loyaltykit migrate --url ...)")
    from loyaltykit.sql import SQLStorage

    try:
        return SQLStorage.from_url(url)
    except ImportError as exc:
        name = parsed.drivername
        message = _EXTRAS.get(name) or _EXTRAS.get(parsed.get_backend_name())
        if message is None:
            message = (f"the database driver for {name} is not installed"
                       + (f": pip install {exc.name}" if exc.name else ""))
        raise CliError(message) from exc


def check_reachable(storage: SQLStorage, *, schema: bool = True) -> None:
    """Connect once: an unreachable database (or, with ``schema``, one without
    loyaltykit's tables) is a one-line error."""
    import sqlalchemy as sa

    url = storage.engine.url.render_as_string(hide_password=True)
    try:
        with storage.engine.connect() as conn:
            has_schema = sa.inspect(conn).has_table("lk_programs")
    except sa.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        raise CliError(f"cannot reach the database {url}: {first}") from exc
    if schema and not has_schema:
        raise CliError(f"the database {url} has no loyaltykit schema: run "
                       "`loyaltykit migrate --url ...` first")


def stored_programs(storage: SQLStorage) -> list[str]:
    """The ids of the programs stored in the database, sorted."""
    import sqlalchemy as sa

    from loyaltykit.sql.schema import programs

    try:
        with storage.engine.connect() as conn:
            return sorted(str(row[0]) for row in conn.execute(sa.select(programs.c.id)))
    except sa.exc.SQLAlchemyError as exc:
        from loyaltykit.sql._errors import storage_error

        raise storage_error(exc) from exc


def load_program(storage: SQLStorage, wanted: str | None) -> Program:
    """The latest stored version of program ``wanted`` (default: the only one stored)."""
    from loyaltykit.storage import read_unit_of_work

    ids = stored_programs(storage)
    if not ids:
        raise CliError("no program is stored in the database (a program is stored by "
                       "its first write, or Loyalty.register())")
    if wanted is None:
        if len(ids) > 1:
            raise CliError(f"the database holds {len(ids)} programs ({', '.join(ids)}): "
                           f"choose one with --program ID or {PROGRAM_VARIABLE}")
        wanted = ids[0]
    elif wanted not in ids:
        raise CliError(f"no program {wanted!r} in the database (stored: {', '.join(ids)})")
    with read_unit_of_work(storage, wanted) as uow:
        versions = uow.programs.program_versions()
    if not versions:
        raise CliError(f"the program {wanted!r} has no stored version")
    latest = max(versions, key=lambda v: v.version)
    return Program.from_dict(dict(latest.definition))


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Loyalty]:
    """A facade of the program the options name, on the database they name, disposed
    of when the block ends."""
    storage = open_storage(url_of(args))
    try:
        check_reachable(storage)
        wanted = getattr(args, "program", None) or os.environ.get(PROGRAM_VARIABLE) or None
        program = load_program(storage, wanted)
        yield Loyalty(program, storage)
    finally:
        storage.dispose()


def parse_instant(text: str, option: str) -> dt.datetime:
    """An ISO 8601 instant with its offset (``2026-03-01T02:00:00+01:00``, or ``Z``); a
    date alone is midnight UTC. Anything else, or no offset, is a one-line error."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: not an ISO 8601 instant: {text!r} "
                       "(e.g. 2026-03-01T02:00:00+01:00)", status=2) from None
    if value.tzinfo is None:
        if len(text) == 10:  # a date: its start in UTC
            return value.replace(tzinfo=dt.UTC)
        raise CliError(f"{option}: give the instant's offset, e.g. {text}+00:00 or {text}Z",
                       status=2)
    return value


def explain(exc: LoyaltyError, args: argparse.Namespace) -> str:
    """One line for a library error met while running a command."""
    if isinstance(exc, StorageError) and type(exc) is StorageError:
        detail = exc.details.get("detail") or exc.details.get("error") or ""
        if "no such table" in str(detail) or "does not exist" in str(detail):
            return (f"{exc} - is the schema up to date? run `loyaltykit migrate --url ...`")
    return str(exc)
