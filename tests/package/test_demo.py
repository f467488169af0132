"""The demo (``loyaltykit demo``, :mod:`loyaltykit.demo`): its story, its order (the
summary first, the detail behind ``--detail``, where things are at the end), its
determinism, and that it leaves a database the other commands can open."""

from __future__ import annotations

import ast
import io
import os
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from loyaltykit import Program, demo
from loyaltykit.cli import demo as command
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.invariants import check_invariants

# what the scripted moments leave in the detail log
_STORY = (
    "enrolled, welcome bonus +50",
    "earn +",                              # orders
    "pending until",                       # their points pending
    "activated at the till",               # but in-store ones activated at once
    "captures",                            # a hold captured at checkout
    "capture refused (hold_expired)",      # a hold that timed out...
    "due work released 1 hold",            # ...released by due work
    "redeems",                             # spends
    "cancels the voucher: reversal",       # a reversal
    "transfers",                           # a transfer
    "debt now",                            # a clawback leaving debt
    "Christmas gift: bulk earn",
    "due work expired",                    # expiries
)


def run(**options: object) -> str:
    out = io.StringIO()
    assert 0 == command.run_demo(out=out, **options)  # type: ignore[arg-type]
    return out.getvalue()


def section(text: str, title: str) -> list[str]:
    """The lines of the section whose heading starts with ``title``, up to the next
    blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start + 1:end]


def test_the_summary_comes_first_and_the_detail_only_with_detail() -> None:
    short = run(memory=True)
    lines = short.splitlines()
    headings = [line for line in lines if line and not line.startswith(" ")]
    assert [
        "What happened, 2025-01-06 .. 2026-03-05",
        "Balances on 2026-03-06 00:00 (loyalty.balance)",
        "The program's liability and totals (loyalty.reports)",
        "Where things are",
        "Try next",
    ] == headings[2:]
    assert not any(line.startswith("== month") for line in lines)
    assert len(lines) < 45  # a screenful, not 247 lines

    long = run(memory=True, detail=True)
    assert long.startswith(short[:short.index("Where things are")])  # same summary first
    months = [i for i, line in enumerate(long.splitlines()) if line.startswith("== month ")]
    assert 14 == len(months)
    assert long.index("What happened") < long.index("== month 1:") < long.index(
        "== statement of bob") < long.index("Where things are")
    for expected in _STORY:
        assert expected in long, expected
    assert "--detail" not in long[long.index("Try next"):]  # no hint to add what is there
    assert "demo --detail --memory" in short


def test_the_summary_tells_the_story_in_a_few_lines() -> None:
    happened = section(run(memory=True), "What happened")
    assert len(happened) <= 12
    assert happened[0].startswith("  3 members, 74 orders (1 returned): 3815.99 EUR kept, ")
    for expected in ("pays 70 points at checkout", "releases its hold of 150 points",
                     "cancels a 70-point voucher", "transfers 130 points to bob",
                     "redeems all 942", "224 points clawed back", "30 goodwill points",
                     "Christmas gift", "due work every night (424 runs)"):
        assert sum(expected in line for line in happened) == 1, expected
    assert all(len(line) <= 100 for line in happened)


def test_the_summary_figures_are_the_programs_reports() -> None:
    story = demo.play(MemoryStorage(), seed=4)
    out = io.StringIO()
    demo.print_summary(story, out)
    liability = story.loyalty.reports.liability()
    [totals] = story.loyalty.reports.totals()
    lines = section(out.getvalue(), "The program's liability")
    assert lines[0].startswith(f"  {liability.points} points outstanding: "
                               f"{liability.available} available, {liability.pending} "
                               f"pending, {liability.held} held (debt {liability.debt}")
    assert lines[1].startswith(f"  liability {liability.liability.amount} EUR = face value "
                               f"{liability.face_value.amount} EUR x ")
    assert (f"  issued {totals.issued} = redeemed {totals.redeemed} + expired "
            f"{totals.expired} + written off {totals.written_off} + outstanding "
            f"{totals.outstanding}") == lines[2]
    assert totals.issued == (totals.redeemed + totals.expired + totals.written_off
                             + totals.outstanding)
    balances = section(out.getvalue(), "Balances on")[1:]
    assert sum(b.total for b in map(story.loyalty.balance, story.members)) == sum(
        int(row.split()[-4]) + int(row.split()[-3]) + int(row.split()[-2])
        - int(row.split()[-1]) for row in balances)


def test_the_output_depends_only_on_the_seed() -> None:
    first, second = run(memory=True, seed=5, detail=True), run(memory=True, seed=5,
                                                               detail=True)
    assert first == second
    assert first != run(memory=True, seed=6, detail=True)
    assert "seed 5" in first.splitlines()[0]


def test_the_orders_go_through_the_program_s_earning_rules() -> None:
    story = demo.play(MemoryStorage(), seed=3)
    kpis = story.loyalty.reports.kpis("month", demo.START, demo.END)
    assert 15 == len(kpis)  # January 2025 .. March 2026
    assert story.orders - story.returned == sum(k.orders for k in kpis) > 50
    assert story.order_total - story.returned_total == sum(
        (k.revenue.amount for k in kpis), Decimal(0))
    # 1 point per whole EUR: the big order's points come back with its return
    assert any("earn +224 " in line for line in demo.play(MemoryStorage()).log)
    assert ["base"] == [rule.id for rule in demo.demo_program().earning.rules]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_demo_keeps_the_ledger_invariants_and_settles_the_debt(seed: int) -> None:
    storage = MemoryStorage()
    story = demo.play(storage, seed=seed)
    check_invariants(storage, demo.demo_program(), list(demo.MEMBERS))
    assert list(demo.MEMBERS) == story.members
    assert 0 == story.loyalty.balance("bob").debt
    assert any("debt now" in line for line in story.log)  # there was some to settle


def test_on_sqlite_it_says_which_file_and_matches_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / command.DEFAULT_DB
    first = run(detail=True)
    assert f"storage: SQLite file {path} (a new file)" == first.splitlines()[1]
    assert f"  database   {path} (SQLite; new)" in first.splitlines()
    assert path.is_file()
    again = run(detail=True)  # the file is replaced, not appended to
    assert f"storage: SQLite file {path} (replacing the previous one)" == again.splitlines()[1]
    assert f"  database   {path} (SQLite; replaced the previous demo database)" in again
    assert first.replace("(a new file)", "(replacing the previous one)").replace(
        "(SQLite; new)", "(SQLite; replaced the previous demo database)") == again
    in_memory = run(memory=True, detail=True)
    assert first.splitlines()[0] == in_memory.splitlines()[0]
    assert story(first) == story(in_memory)


def story(text: str) -> list[str]:
    """The output between the storage line and where things are."""
    lines = text.splitlines()
    return lines[2:lines.index("Where things are")]


def test_the_database_holds_the_program_for_the_other_commands(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    out = run(db=path)
    storage = SQLStorage.from_url(f"sqlite:///{path}")
    try:
        with storage.read_unit_of_work("demo-shop") as uow:
            versions = uow.programs.program_versions()
    finally:
        storage.dispose()
    assert [1] == [v.version for v in versions]
    assert demo.demo_program() == Program.from_dict(versions[-1].definition)
    url = shlex.quote(f"sqlite:///{path}")
    try_next = section(out, "Try next")
    assert [f"  {line}" for line in command.try_next(path, command=command._command())] == \
        try_next[1:]
    assert f" report kpis --url {url} --period quarter " in try_next[1]
    assert try_next[2].endswith(f" due --url {url} --at 2026-04-01T03:00:00+02:00")
    assert try_next[0].endswith(f" demo --detail --db {shlex.quote(str(path))}   "
                                "# adds the month-by-month log")


def test_it_says_where_its_code_and_the_docs_are() -> None:
    where = section(run(memory=True), "Where things are")
    assert "  database   none: in memory" in where[0]
    assert f"  code       loyaltykit.demo  {Path(demo.__file__).resolve()}" == where[1]
    pages = [line.split()[-1] for line in where[2:5]]
    online = "https://github.com/loyaltykit/loyaltykit/blob/main/docs"
    for page, name in zip(pages, command.READ_NEXT, strict=True):
        if page.startswith("https://"):  # installed from a wheel: the project's docs
            assert f"{online}/{name}" == page
        else:  # run from a checkout: the file beside it
            assert Path(page).is_file() and Path(page).name == name, page
    assert "mkdocs serve" in where[5]
    # the online address comes from the installed metadata's [project.urls]
    assert online == command._docs_base()
    repo = Path(__file__).resolve().parents[2]
    for name in command.READ_NEXT:
        assert (repo / "docs" / name).is_file(), name


def test_the_demo_is_an_example_of_the_public_api() -> None:
    tree = ast.parse(Path(demo.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    ours = sorted(m for m in imported if m.split(".")[0] == "loyaltykit")
    assert ["loyaltykit", "loyaltykit.storage"] == ours
    doc = demo.__doc__ or ""
    for expected in ("loyaltykit demo", "--detail", "docs/quickstart.md", "demo_program",
                     "Story.nightly", "print_summary"):
        assert expected in doc, expected


def test_it_refuses_to_replace_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.txt"
    precious.write_text("four years of work")
    out = io.StringIO()
    with pytest.raises(FileExistsError, match="is not a SQLite database"):
        command.run_demo(db=precious, out=out)
    assert "" == out.getvalue()
    assert "four years of work" == precious.read_text()


def test_the_command_runs_the_demo_in_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOYALTYKIT_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "loyaltykit", "demo", "--seed", "2"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path, env=env,
    )
    assert (0, "") == (proc.returncode, proc.stderr)
    path = (tmp_path / command.DEFAULT_DB).resolve()
    assert path.is_file()
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(", seed 2")
    assert f"storage: SQLite file {path} (a new file)" == lines[1]
    assert f"  database   {path} (SQLite; new)" in lines
    assert not any(line.startswith("== month") for line in lines)

    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    proc = subprocess.run(
        [sys.executable, "-m", "loyaltykit", "demo", "--detail", "--db", str(precious)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path, env=env,
    )
    assert (1, "") == (proc.returncode, proc.stdout)
    assert proc.stderr.startswith("loyaltykit: error: ")
    assert "is not a SQLite database" in proc.stderr
    assert "keep me" == precious.read_text()
