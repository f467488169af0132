"""The command line: ``python -m loyaltykit migrate`` and the usage (the demo:
test_demo.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loyaltykit.__main__ import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


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
