"""``loyaltykit demo``: 14 months of a sample program on an embedded SQLite file.

The story is the example of :mod:`loyaltykit.demo` (an example to read); this module
is the command around it: it (re)creates the SQLite file, plays the story, prints its
report, then says where the file, the code and the docs are and which commands to try
on the file.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loyaltykit import demo as example

if TYPE_CHECKING:
    from loyaltykit.sql import SQLStorage

__all__ = ["DEFAULT_DB", "READ_NEXT", "add_parser", "open_sqlite", "run", "run_demo",
           "try_next"]

logger = logging.getLogger(__name__)

#: The database file the demo (re)creates when no ``--db`` is given.
DEFAULT_DB = "loyaltykit-demo.sqlite"

#: The docs pages to read after the demo (file names under ``docs/``).
READ_NEXT = ("quickstart.md", "ledger.md", "reports.md")


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
    """Run the example of :mod:`loyaltykit.demo` (:func:`run_demo`)."""
    return run_demo(db=args.db, seed=args.seed, memory=args.memory, detail=args.detail,
                    out=sys.stdout)



def run_demo(*, db: Path | None = None, seed: int = 1, memory: bool = False,
             detail: bool = False, out: TextIO | None = None) -> int:
    """What ``loyaltykit demo`` does: say which SQLite file it (re)creates (``db``,
    default ``./loyaltykit-demo.sqlite``; or nothing written with ``memory``), play the
    fourteen months, print the summary (and with ``detail`` the log and a statement),
    then where the file, the code and the docs are and what to try next on the file.
    Returns the exit status (0).

    Refuses (:class:`FileExistsError`) to replace a file that is not a SQLite database.
    """
    out = sys.stdout if out is None else out
    say = functools.partial(print, file=out)
    program = example.demo_program()
    intro = (f"loyaltykit demo: 14 months of the program {program.id!r} ({program.time_zone}, "
             f"{program.currency}, 1 point = {program.point_value.amount} "
             f"{program.currency}), seed {seed}")
    if memory:
        from loyaltykit.memory import MemoryStorage

        say(intro)
        say("storage: in memory (nothing is written)")
        story = example.play(MemoryStorage(), seed=seed)
        _report(story, out, detail=detail)
        _where(out, path=None, replaced=False, detail=detail, db=None)
        return 0
    path = (db if db is not None else Path(DEFAULT_DB)).resolve()
    replaced = path.exists()
    storage = open_sqlite(path)
    try:
        say(intro)
        say(f"storage: SQLite file {path} "
            f"({'replacing the previous one' if replaced else 'a new file'})")
        story = example.play(storage, seed=seed)
        _report(story, out, detail=detail)
    finally:
        storage.dispose()
    _where(out, path=path, replaced=replaced, detail=detail, db=db)
    return 0


def open_sqlite(path: Path) -> SQLStorage:
    """Recreate the SQLite file at ``path``, migrate it and return its storage.

    Refuses (:class:`FileExistsError`) to delete a file that is not a SQLite database,
    so a mistyped ``--db`` cannot destroy someone's document.
    """
    from loyaltykit.sql import SQLStorage  # SQLAlchemy is imported only when needed

    if path.exists():
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
        if header and header != _SQLITE_MAGIC:
            raise FileExistsError(f"{path} exists and is not a SQLite database; not replacing it")
        logger.info("removing the previous demo database %s", path)
    for stale in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    storage = SQLStorage.from_url(f"sqlite:///{path.resolve()}")
    storage.upgrade()
    return storage


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _report(story: example.Story, out: TextIO, *, detail: bool) -> None:
    example.print_summary(story, out)
    if detail:
        example.print_detail(story, out)


def _where(out: TextIO, *, path: Path | None, replaced: bool, detail: bool,
           db: Path | None) -> None:
    """Where the database, the code and the docs are, and what to try next."""
    say = functools.partial(print, file=out)
    command = _command()
    say()
    say("Where things are")
    if path is None:
        say("  database   none: in memory (without --memory the demo writes a SQLite file)")
    else:
        say(f"  database   {path} (SQLite; "
            f"{'replaced the previous demo database' if replaced else 'new'})")
    say(f"  code       {example.__name__}  {Path(example.__file__).resolve()}")
    for index, page in enumerate(_read_next()):
        say(f"  {'read next' if index == 0 else '':<10} {page}")
    say("             as a site, in a source checkout: "
        "pip install -e '.[docs]' && mkdocs serve")
    say()
    say("Try next")
    if not detail:
        again = " --memory" if path is None else ""
        if path is not None and db is not None:
            again = f" --db {shlex.quote(str(db))}"
        say(f"  {command} demo --detail{again}   # adds the month-by-month log")
    if path is not None:
        for line in try_next(path, command=command):
            say(f"  {line}")


def try_next(path: Path, *, command: str = "loyaltykit") -> list[str]:
    """The commands to try on the demo's SQLite file at ``path``: the order KPIs of
    the story's quarters (``report kpis``), then the nightly job (``due``) at
    :data:`loyaltykit.demo.DUE_AT`, the first night of the month after the story, when its last
    orders' points activate and the lots earned a year before expire (the story
    ends in the past, so ``--at`` is not refused as a future instant)."""
    url = shlex.quote(f"sqlite:///{path}")
    return [
        f"{command} report kpis --url {url} --period quarter "
        f"--start {example.START.isoformat()} --end {example.END.isoformat()}",
        f"{command} due --url {url} --at {example.DUE_AT.isoformat()}",
    ]


def _read_next() -> list[str]:
    """The docs pages to read next: the files, when this module runs from a source
    checkout (``src/loyaltykit/demo.py`` beside ``docs/``), else their online address."""
    checkout = Path(example.__file__).resolve().parents[2] / "docs"
    if all((checkout / page).is_file() for page in READ_NEXT):
        return [_shown(checkout / page) for page in READ_NEXT]
    base = _docs_base() or "docs"
    return [f"{base}/{page}" for page in READ_NEXT]


def _shown(path: Path) -> str:
    """``path`` relative to the working directory if it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _docs_base() -> str | None:
    """Where the docs pages are online: the ``Source`` link of the installed
    distribution's metadata (``[project.urls]`` in pyproject.toml) + ``/blob/main/docs``."""
    from importlib import metadata

    try:
        urls = metadata.metadata("loyaltykit").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source":
            return f"{url.strip().rstrip('/')}/blob/main/docs"
    return None


def _command() -> str:
    """How to call the command line here: ``loyaltykit`` when it is on the PATH, else
    the script beside this Python, else ``python -m loyaltykit``."""
    script = Path(sys.executable).with_name("loyaltykit")
    found = shutil.which("loyaltykit")
    if found is not None and Path(found).resolve() == script.resolve():
        return "loyaltykit"
    if script.is_file():
        return shlex.quote(_shown(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m loyaltykit"
