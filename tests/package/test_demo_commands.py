"""The commands the demo prints at its end (``Try next``) show something on its file:
run the demo as a user does, parse the commands from its output, run exactly those,
and compare what they print with the library's own reports on the same file."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from loyaltykit import Loyalty, demo
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          cwd=cwd, env=_env())


def _table(text: str) -> list[dict[str, str]]:
    """The rows of the (rich) table in ``text`` as dicts by column heading."""
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows = [[cell.strip() for cell in line.strip("│").split("│")]
            for line in lines if line.startswith("│")]
    return [dict(zip(columns, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """The demo run in a subprocess on a file: (its directory, the file, the commands
    it printed under "Try next", by subcommand)."""
    where = tmp_path_factory.mktemp("demo")
    path = where / "shop demo.sqlite"  # a space: the printed commands quote the URL
    proc = _run([sys.executable, "-m", "loyaltykit", "demo", "--db", str(path)], where)
    assert (0, "") == (proc.returncode, proc.stderr)
    lines = proc.stdout.splitlines()
    try_next = lines[lines.index("Try next") + 1:]
    commands = {}
    for line in try_next:
        argv = shlex.split(line, comments=True)
        for name in ("report", "due"):
            if name in argv:
                commands[name] = line.strip()
    assert {"report", "due"} == set(commands), try_next
    return where, path, commands


def test_the_printed_kpis_command_shows_the_orders_of_the_story(
    played: tuple[Path, Path, dict[str, str]]
) -> None:
    where, path, commands = played
    argv = shlex.split(commands["report"])
    assert ["report", "kpis", "--url", f"sqlite:///{path.resolve()}"] == argv[-10:-6]
    proc = _run(argv, where)
    assert (0, "") == (proc.returncode, proc.stderr)
    rows = _table(proc.stdout)

    storage = SQLStorage.from_url(f"sqlite:///{path.resolve()}")
    try:
        expected = Loyalty(demo.demo_program(), storage).reports.kpis(
            "quarter", demo.START, demo.END)
    finally:
        storage.dispose()
    assert len(expected) == len(rows) >= 4  # the story's quarters, each in a row
    assert all(row["orders"] != "0" for row in rows)
    for row, kpis in zip(rows, expected, strict=True):
        assert str(kpis.orders) == row["orders"]
        assert f"{kpis.revenue.amount} EUR" == row["revenue"]
        assert kpis.orders > 0 and kpis.revenue.amount > 0
    # the orders the story recorded, less the one it returned (kpis count orders kept)
    story = demo.play(MemoryStorage(), seed=1)
    assert story.returned == 1
    assert story.orders - story.returned == sum(k.orders for k in expected)
    assert story.order_total - story.returned_total == sum(
        (Decimal(row["revenue"].split()[0]) for row in rows), Decimal(0))


def test_the_printed_due_command_does_the_work_due_after_the_story(
    played: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    where, path, commands = played
    argv = shlex.split(commands["due"])
    assert ["--at", demo.DUE_AT.isoformat()] == argv[-2:]
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(path, copy)

    proc = _run(argv, where)
    assert 0 == proc.returncode, proc.stderr
    shown = {row["count"]: row["value"] for row in _table(proc.stdout)}

    storage = SQLStorage.from_url(f"sqlite:///{copy}")
    try:
        report = Loyalty(demo.demo_program(), storage).run_due(demo.DUE_AT)
    finally:
        storage.dispose()
    assert report.activated_points > 0 and report.expired_points > 0  # non-trivial
    expected = {name: str(value) for name, value in report.to_dict().items()
                if name in ("at", "members") or value}
    assert expected == shown
    # run again: the work is done (the printed command is safe to repeat)
    again = _run(argv, where)
    assert 0 == again.returncode, again.stderr
    assert {"at", "members"} == {row["count"] for row in _table(again.stdout)}


def test_the_story_ends_before_the_due_instant_and_both_in_the_past() -> None:
    assert demo.END == demo._add_months(demo.START, demo.MONTHS)
    assert demo.END < demo.DUE_AT < dt.datetime.now(dt.UTC)  # due refuses the future
    assert (demo.DUE_AT.day, demo.DUE_AT.hour) == (1, demo.NIGHTLY.hour)
    assert demo._add_months(demo.END.replace(day=1), 1) == demo.DUE_AT.replace(hour=0)

