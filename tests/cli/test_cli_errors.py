"""What goes wrong before a command runs: one line on stderr, no traceback (unless
``-v``), exit 1 for an error and 2 for usage, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_helpers import run, shop_program

from loyaltykit import Loyalty
from loyaltykit.sql import SQLStorage


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert 1 == len(lines), stderr
    assert lines[0].startswith("loyaltykit: error: "), stderr
    return lines[0].removeprefix("loyaltykit: error: ")


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """URLs of SQLite files: without a schema, with an empty schema, with two programs."""
    folder = tmp_path_factory.mktemp("cli-errors")
    import sqlite3

    with sqlite3.connect(folder / "plain.sqlite") as conn:
        conn.execute("create table notes (text)")
    urls = {"plain": f"sqlite:///{folder / 'plain.sqlite'}"}
    for name in ("empty", "two"):
        urls[name] = f"sqlite:///{folder / name}.sqlite"
        storage = SQLStorage.from_url(urls[name])
        storage.create_schema()
        if name == "two":
            for program_id in ("north", "south"):
                Loyalty(shop_program(program_id), storage).register()
        storage.dispose()
    urls["missing"] = f"sqlite:///{folder / 'missing.sqlite'}"
    return urls


def test_no_url_is_a_usage_error() -> None:
    proc = run("due")
    assert 2 == proc.returncode
    assert "no database: give --url URL or set LOYALTYKIT_URL" in one_line(proc.stderr)


@pytest.mark.parametrize(("given", "said"), [
    ("nonsense", "not a database URL: 'nonsense'"),
    ("nosuchdialect://host/db", "invalid_input: unusable database URL"),
    ("postgresql+psycopg_async://shop@localhost/loyalty", "the command line needs a "
     "synchronous driver, not psycopg_async: write the URL as postgresql+psycopg://..."),
])
def test_a_bad_url(given: str, said: str) -> None:
    proc = run("report", "totals", url=given)
    assert 1 == proc.returncode
    assert one_line(proc.stderr).startswith(said)


def test_a_missing_driver_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "psycopg"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named psycopg', name='psycopg')\n")
    proc = run("due", url="postgresql+psycopg://shop@localhost/loyalty",
               env={"PYTHONPATH": str(tmp_path)})
    assert 1 == proc.returncode
    assert ("the PostgreSQL driver is not installed: pip install 'loyaltykit[postgresql]'"
            == one_line(proc.stderr))


def test_an_unreachable_database() -> None:
    proc = run("due", url="postgresql+psycopg://shop:secret@127.0.0.1:1/loyalty")
    assert 1 == proc.returncode
    line = one_line(proc.stderr)
    assert line.startswith("cannot reach the database postgresql+psycopg://shop:***@127.0.0.1:1")
    assert "secret" not in line


def test_sqlite_files_without_loyaltykit(databases: dict[str, str]) -> None:
    missing = run("due", url=databases["missing"])
    assert 1 == missing.returncode
    assert "no such SQLite database file" in one_line(missing.stderr)
    assert not Path(databases["missing"].removeprefix("sqlite:///")).exists()  # not created
    plain = run("due", url=databases["plain"])
    assert 1 == plain.returncode
    assert "has no loyaltykit schema: run `loyaltykit migrate" in one_line(plain.stderr)
    empty = run("report", "totals", url=databases["empty"])
    assert 1 == empty.returncode
    assert one_line(empty.stderr).startswith("no program is stored in the database")


def test_choosing_among_several_programs(databases: dict[str, str]) -> None:
    two = databases["two"]
    several = run("program", "show", url=two)
    assert 1 == several.returncode
    assert ("the database holds 2 programs (north, south): choose one with --program ID "
            "or LOYALTYKIT_PROGRAM") == one_line(several.stderr)
    by_option = run("program", "show", "--program", "south", url=two)  # after the command
    assert by_option.stdout.startswith("Program south, version 1")
    by_env = run("--url", two, "program", "show", env={"LOYALTYKIT_PROGRAM": "north"})
    assert by_env.stdout.startswith("Program north, version 1")
    unknown = run("--program", "west", "program", "show", env={"LOYALTYKIT_URL": two})
    assert 1 == unknown.returncode
    assert "no program 'west' in the database (stored: north, south)" == one_line(
        unknown.stderr)


def test_bad_instants_and_verbose_tracebacks(databases: dict[str, str]) -> None:
    url = databases["two"]
    unparsable = run("due", "--program", "north", "--at", "yesterday", url=url)
    assert 2 == unparsable.returncode
    assert one_line(unparsable.stderr).startswith("--at: not an ISO 8601 instant")
    naive = run("due", "--program", "north", "--at", "2026-01-01T00:00", url=url)
    assert 2 == naive.returncode and "give the instant's offset" in naive.stderr
    future = run("due", "--program", "north", "--at", "2999-01-01T00:00:00Z", "--no-progress",
                 url=url)
    assert 1 == future.returncode
    last = future.stderr.splitlines()[-1]
    assert last.startswith("loyaltykit: error: invalid_input: at is later than the clock")
    assert "Traceback" not in future.stderr
    verbose = run("-v", "due", "--program", "north", "--at", "2999-01-01T00:00:00Z", url=url)
    assert 1 == verbose.returncode
    assert "Traceback (most recent call last)" in verbose.stderr
    # the same line last (its now aside)
    assert verbose.stderr.splitlines()[-1].split(", now=")[0] == last.split(", now=")[0]


def test_usage_errors_exit_2() -> None:
    for argv, said in ((["bogus"], "invalid choice: 'bogus'"),
                       (["report"], "the following arguments are required: REPORT"),
                       (["due", "--workers", "many"], "invalid int value: 'many'")):
        proc = run(*argv)
        assert 2 == proc.returncode, argv
        assert "usage: loyaltykit" in proc.stderr and said in proc.stderr


def test_clv_without_numpy_says_what_to_install(databases: dict[str, str],
                                                tmp_path: Path) -> None:
    blocker = tmp_path / "numpy"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named numpy', name='numpy')\n")
    proc = run("report", "clv", "--program", "north", url=databases["two"],
               env={"PYTHONPATH": str(tmp_path)})
    assert (1, "") == (proc.returncode, proc.stdout)
    assert ("clv needs numpy and scipy: pip install 'loyaltykit[analytics]'"
            == one_line(proc.stderr))
