"""The command line: ``python -m loyaltykit demo`` and ``migrate``."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loyaltykit import _demo
from loyaltykit.__main__ import main
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.invariants import check_invariants


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_in_memory_tells_the_whole_story(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["demo", "--memory"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert sum(1 for line in lines if line.startswith("== month ")) == 14
    for expected in (
        "enrolled, welcome bonus +50",
        "earn +",                              # orders
        "pending until",                       # some of them pending
        "captures",                            # a hold captured at checkout
        "capture refused (hold_expired)",      # a hold that timed out...
        "due work released 1 hold",            # ...released by due work
        "redeems",                             # spends
        "cancels the voucher: reversal",       # a reversal
        "transfers",                           # a transfer
        "debt now",                            # a clawback leaving debt
        "Christmas gift: bulk earn",
        "due work expired",                    # expiries
        "== statement of bob",
        "== summary on 2027-03-05 00:00",
    ):
        assert any(expected in line for line in lines), expected
    assert "clawback" in out and "release" in out


def test_demo_output_depends_only_on_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(["demo", "--memory", "--seed", "5"], capsys)
    second = run(["demo", "--memory", "--seed", "5"], capsys)
    other = run(["demo", "--memory", "--seed", "6"], capsys)
    assert first == second
    assert first[1] != other[1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_keeps_the_ledger_invariants_and_settles_the_debt(seed: int) -> None:
    storage = MemoryStorage()
    out = io.StringIO()
    _demo.run_demo(storage, seed=seed, out=out, label="memory")
    check_invariants(storage, _demo.demo_program(), ["alice", "bob", "carol"])
    bob = [line.split() for line in out.getvalue().splitlines() if line.startswith("  bob ")]
    assert bob[-1][-1] == "0"  # the debt column of the summary


def test_demo_on_sqlite_recreates_the_file_and_matches_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, on_sqlite, err = run(["demo"], capsys)
    assert (code, err) == (0, "")
    assert (tmp_path / _demo.DEFAULT_DB).is_file()
    code, again, _ = run(["demo"], capsys)  # the file is replaced, not appended to
    assert code == 0
    assert on_sqlite == again
    _, in_memory, _ = run(["demo", "--memory"], capsys)
    assert on_sqlite.replace(f"SQLite file {_demo.DEFAULT_DB}", "in memory") == in_memory


def test_demo_refuses_to_replace_a_file_that_is_not_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "thesis.txt"
    precious.write_text("four years of work")
    code, out, err = run(["demo", "--db", str(precious)], capsys)
    assert code == 1
    assert out == ""
    assert "is not a SQLite database" in err
    assert precious.read_text() == "four years of work"


def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.sqlite"
    for _ in range(2):  # a second run finds nothing to do
        code, out, err = run(["migrate", "--url", f"sqlite:///{path}"], capsys)
        assert (code, err) == (0, "")
        assert "up to date" in out
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master")}
    assert {"loyaltykit_alembic_version", "lk_transactions", "lk_lots"} <= tables


def test_migrate_reports_a_bad_url_without_a_traceback(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["migrate", "--url", "nosuchdialect://host/db"], capsys)
    assert code == 1
    assert err.startswith("loyaltykit: error: invalid_input")


def test_without_a_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2
    assert "usage: loyaltykit" in err


def test_python_dash_m_runs_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loyaltykit", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0
    assert "demo" in proc.stdout and "migrate" in proc.stdout
