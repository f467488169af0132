"""Every command of ``loyaltykit`` through its real entry point (a subprocess), on one
SQLite database per module seeded through the library; what a command prints is
compared with what the library answers on the same database."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import BERLIN, run, seed, shop_program

from loyaltykit import Loyalty, describe_program
from loyaltykit.sql import SQLStorage

AS_OF = "2026-01-15T00:00:00+01:00"
AS_OF_DT = dt.datetime(2026, 1, 15, tzinfo=BERLIN)
#: due work's instant in the tests that compare it with the library
DUE_AT = "2026-01-20T03:00:00+01:00"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``seeded.sqlite``: the shop as seeded, to copy before a test
    changes it."""
    folder = tmp_path_factory.mktemp("cli")
    storage = SQLStorage.from_url(f"sqlite:///{folder / 'seeded.sqlite'}")
    storage.create_schema()
    seed(storage)
    storage.dispose()
    return folder


def copy(shop: Path, name: str) -> Path:
    target = shop / name
    shutil.copyfile(shop / "seeded.sqlite", target)
    return target


def url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextlib.contextmanager
def library(path: Path) -> Iterator[Loyalty]:
    """The library's facade on the database at ``path`` (the stored program)."""
    storage = SQLStorage.from_url(url(path))
    try:
        yield Loyalty(shop_program(), storage)
    finally:
        storage.dispose()


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert 0 == proc.returncode, proc.stderr
    return proc.stdout


def test_version_help_and_a_core_import_without_rich() -> None:
    version = run("--version", script=True)  # the installed console script
    assert (0, f"loyaltykit {metadata.version('loyaltykit')}\n") == (version.returncode,
                                                                      version.stdout)
    helped = ok(run("--help"))
    for command in ("due", "report", "events", "program", "member", "migrate", "demo",
                    "LOYALTYKIT_URL", "exit status"):
        assert command in helped
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, loyaltykit; "
         "print('rich' in sys.modules, 'loyaltykit.cli' in sys.modules)"],
        capture_output=True, text=True, check=True, timeout=60)
    assert "False False\n" == imported.stdout


def test_due_posts_what_the_library_posts_and_logs_json_lines(shop: Path) -> None:
    path, twin = copy(shop, "due.sqlite"), copy(shop, "due-twin.sqlite")
    proc = run("due", "--at", DUE_AT, "--batch-size", "5", "--format", "json",
               url=url(path))
    report = json.loads(ok(proc))
    with library(twin) as loyalty:
        expected = loyalty.run_due(dt.datetime.fromisoformat(DUE_AT), batch_size=5)
    assert expected.to_dict() == report
    assert report["expired_lots"] > 0 and report["members"] > 0
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert "due.start" == lines[0]["event"]
    assert ["tiers", "rewards", "events", "notices"] == [
        x["stage"] for x in lines if x["event"] == "due.stage" and x["stage"] != "ledger"]
    done = lines[-1]
    assert "due.done" == done["event"]
    assert report == {k: v for k, v in done.items() if k not in ("event", "seconds")}
    # a second run finds nothing left (and says so in its table)
    again = ok(run("due", "--at", DUE_AT, url=url(path)))
    assert re.search(r"members\s+\S\s+0\b", again), again
    assert "expired_lots" not in again


def test_due_draws_a_progress_bar_on_a_terminal(shop: Path) -> None:
    path = copy(shop, "pty.sqlite")
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}
    env.update(TERM="xterm-256color", COLUMNS="100", LOYALTYKIT_URL=url(path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyaltykit", "due", "--at", DUE_AT, "--batch-size", "5"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    seen = b""
    while True:  # read the terminal until the process closes it
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(controller)
    assert 0 == proc.returncode, seen.decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert "due work" in text and "━" in text  # rich's bar
    assert re.search(r"notices: \d+ members", text), text
    with library(path) as loyalty:
        expired = loyalty.reports.totals()[0].expired
    assert expired > 0
    assert b"expired_lots" in out  # the report still goes to stdout
    assert b'"event"' not in seen  # no JSON lines on a terminal


@pytest.mark.parametrize("name", ["totals", "liability", "tiers", "rfm"])
def test_reports_in_json_are_the_library_s_results(shop: Path, name: str) -> None:
    path = shop / "seeded.sqlite"
    found = json.loads(ok(run("report", name, "--format", "json", "--as-of", AS_OF,
                              url=url(path))))
    with library(path) as loyalty:
        reports = loyalty.reports
        expected: Any = {
            "totals": lambda: [t.to_dict() for t in reports.totals(as_of=AS_OF_DT)],
            "liability": lambda: reports.liability(as_of=AS_OF_DT).to_dict(),
            "tiers": lambda: reports.tiers(as_of=AS_OF_DT).to_dict(),
            "rfm": lambda: [r.to_dict() for r in reports.rfm(as_of=AS_OF_DT)],
        }[name]()
    assert expected == found
    assert found  # a report of something


def test_kpis_per_quarter_as_json_csv_and_table(shop: Path) -> None:
    path = shop / "seeded.sqlite"
    window = ["--period", "quarter", "--start", "2025-01-01T00:00:00+01:00",
              "--end", "2026-01-01T00:00:00+01:00"]
    found = json.loads(ok(run("report", "kpis", *window, "--format", "json", url=url(path))))
    with library(path) as loyalty:
        expected = loyalty.reports.kpis("quarter", dt.datetime(2025, 1, 1, tzinfo=BERLIN),
                                        dt.datetime(2026, 1, 1, tzinfo=BERLIN))
    assert ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"] == [k["label"] for k in found]
    for row, kpis in zip(found, expected, strict=True):
        assert kpis.to_dict().items() <= row.items()
        assert (None if kpis.retention_rate is None else str(kpis.retention_rate)) == \
            row["retention_rate"]
    table = list(csv.DictReader(io.StringIO(ok(run("report", "kpis", *window, "--format",
                                                   "csv", url=url(path))))))
    assert [str(k.orders) for k in expected] == [r["orders"] for r in table]
    assert [str(k.revenue.amount) for k in expected] == [r["revenue"] for r in table]
    drawn = ok(run("report", "kpis", *window, url=url(path)))
    assert "KPIs per quarter" in drawn and "2025-Q3" in drawn
    assert f"{expected[0].revenue.amount} EUR" in drawn


def test_totals_as_csv_and_tiers_as_a_table(shop: Path) -> None:
    path = shop / "seeded.sqlite"
    rows = list(csv.DictReader(io.StringIO(ok(run(
        "report", "totals", "--format", "csv", "--as-of", AS_OF, url=url(path))))))
    with library(path) as loyalty:
        totals = loyalty.reports.totals(as_of=AS_OF_DT)[0]
        tiers = loyalty.reports.tiers()
    assert [("points", str(totals.issued), str(totals.outstanding))] == [
        (r["wallet"], r["issued"], r["outstanding"]) for r in rows]
    drawn = ok(run("report", "tiers", url=url(path)))
    for count in tiers.tiers:
        name = count.tier or "(none)"
        assert re.search(rf"{re.escape(name)}\s+\S\s+{count.members}\b", drawn), drawn


def test_clv_lists_the_members_of_highest_value(shop: Path) -> None:
    from loyaltykit import analytics

    path = shop / "seeded.sqlite"
    found = json.loads(ok(run("report", "clv", "--format", "json", "--limit", "3",
                              "--as-of", AS_OF, "--horizon", "26", url=url(path))))
    with library(path) as loyalty:
        summary = analytics.summary_from(loyalty, end=AS_OF_DT)
        values = analytics.clv(summary, analytics.fit_bgnbd(summary),
                               analytics.fit_gamma_gamma(summary), horizon=26)
    best = sorted(values.rows(), key=lambda v: -v.expected_value)[:3]
    assert [v.member_id for v in best] == [row["member_id"] for row in found["top"]]
    assert [v.expected_value for v in best] == pytest.approx(
        [row["expected_value"] for row in found["top"]])
    assert (24, 26.0) == (found["members"], found["horizon_weeks"])


def test_clv_plot_draws_the_horizon_asked_for(shop: Path, tmp_path: Path) -> None:
    picture = tmp_path / "clv.svg"
    ok(run("report", "clv", "--as-of", AS_OF, "--horizon", "26", "--plot", str(picture),
           url=url(shop / "seeded.sqlite")))
    assert "over 26 weeks" in picture.read_text()


def test_plot_without_matplotlib_says_what_to_install(shop: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named matplotlib', name='matplotlib')\n")
    picture = tmp_path / "rfm.png"
    proc = run("report", "rfm", "--plot", str(picture), url=url(shop / "seeded.sqlite"),
               env={"PYTHONPATH": str(blocker.parent)})
    assert 1 == proc.returncode
    assert "loyaltykit[plot]" in proc.stderr and "Traceback" not in proc.stderr
    assert not picture.exists()


@pytest.mark.parametrize(("report", "extra", "suffix"), [
    ("liability", ["--period", "quarter", "--start", "2025-01-01T00:00:00+01:00"], ".png"),
    ("tiers", ["--period", "month"], ".svg"),
    ("kpis", ["--period", "month", "--start", "2025-01-01T00:00:00+01:00",
              "--end", AS_OF], ".png"),
])
def test_plot_draws_the_picture_of_the_reports_periods(shop: Path, tmp_path: Path,
                                                       report: str, extra: list[str],
                                                       suffix: str) -> None:
    """``report NAME --plot FILE`` writes what loyaltykit.plots.draw_report draws for the
    same options, byte for byte (so the command passes --period/--start/--end on)."""
    from loyaltykit import plots

    path = shop / "seeded.sqlite"
    picture = tmp_path / f"{report}{suffix}"
    proc = run("report", report, "--as-of", AS_OF, "--plot", str(picture), *extra,
               url=url(path))
    ok(proc)
    assert f"drew {report} to" in proc.stderr
    options: dict[str, Any] = {"as_of": AS_OF_DT}
    args = dict(zip(extra[::2], extra[1::2], strict=True))
    options["period"] = args["--period"]
    options["start"] = (dt.datetime.fromisoformat(args["--start"]) if "--start" in args
                        else None)
    options["end"] = dt.datetime.fromisoformat(args["--end"]) if "--end" in args else None
    expected = tmp_path / f"expected{suffix}"
    with library(path) as loyalty:
        plots.draw_report(report, loyalty, expected, **options)
    assert expected.read_bytes() == picture.read_bytes()


def test_events_tail_ack_and_follow(shop: Path) -> None:
    path = copy(shop, "events.sqlite")
    with library(path) as loyalty:
        first = [e.to_dict() for e in loyalty.events.read("someone-new", 8)]
    lines = ok(run("events", "tail", "--limit", "3", url=url(path))).splitlines()
    assert first[:3] == [json.loads(line) for line in lines]
    # --ack acknowledges what was printed; ack moves on by hand; tail goes on from there
    ok(run("events", "tail", "--consumer", "mailer", "--limit", "2", "--ack",
           url=url(path)))
    with library(path) as loyalty:
        assert first[1]["position"] == loyalty.events.position("mailer").to_str()
    acked = ok(run("events", "ack", "--consumer", "mailer", first[4]["position"],
                   url=url(path)))
    assert first[4]["position"] + "\n" == acked
    after = ok(run("events", "tail", "--consumer", "mailer", "--limit", "1", url=url(path)))
    assert [first[5]] == [json.loads(after)]
    # tail without --ack leaves the position where it was
    with library(path) as loyalty:
        assert first[4]["position"] == loyalty.events.position("mailer").to_str()
    followed = ok(run("events", "tail", "--consumer", "mailer", "--follow", "--limit", "2",
                      "--poll", "0.05", url=url(path))).splitlines()
    assert first[5:7] == [json.loads(line) for line in followed]
    with library(path) as loyalty:
        assert first[6]["position"] == loyalty.events.position("mailer").to_str()
    # stopped by SIGTERM, a follower acknowledges what it printed last
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "loyaltykit", "--url", url(path), "events", "tail",
         "--consumer", "stopped", "--follow", "--poll", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert follower.stdout is not None
    printed = [follower.stdout.readline()]  # it is following
    follower.send_signal(signal.SIGTERM)
    rest, err = follower.communicate(timeout=60)
    assert (0, "") == (follower.returncode, err)
    printed += rest.splitlines()
    with library(path) as loyalty:
        assert json.loads(printed[-1])["position"] == loyalty.events.position(
            "stopped").to_str()
    bad = run("events", "ack", "--consumer", "mailer", "not-a-position", url=url(path))
    assert 1 == bad.returncode
    assert bad.stderr.startswith("loyaltykit: error: invalid_position")
    follow_alone = run("events", "tail", "--follow", url=url(path))
    assert 2 == follow_alone.returncode and "--consumer" in follow_alone.stderr


def test_member_show_and_program_show(shop: Path) -> None:
    path = shop / "seeded.sqlite"
    shown = json.loads(ok(run("member", "show", "m03", "--format", "json", "--lines", "2",
                              url=url(path))))
    with library(path) as loyalty:
        balance = loyalty.balance("m03").to_dict()
        lots = [lot.to_dict() for lot in loyalty.lots("m03")]
        lines = [line.to_dict() for line in loyalty.statement("m03", limit=2).lines]
        tier = loyalty.tiers.status("m03").tier
    wallet = shown["wallets"]["points"]
    del balance["as_of"], wallet["balance"]["as_of"]  # each its own now
    assert (balance, lots, lines) == (wallet["balance"], wallet["lots"], wallet["statement"])
    assert ("m03", tier) == (shown["member"]["member_id"], shown["tier"]["tier"])
    drawn = ok(run("member", "show", "m03", url=url(path)))
    assert "member m03" in drawn and f"tier {tier}" in drawn
    assert f"{balance['available']} available" in drawn
    missing = run("member", "show", "nobody", url=url(path))
    assert 1 == missing.returncode and "member_not_found" in missing.stderr
    words = ok(run("program", "show", url=url(path)))
    assert "\n".join(describe_program(shop_program())) + "\n" == words


def test_a_due_run_that_stops_half_way_exits_1_and_says_how_far_it_came(
        shop: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # in process: the second range of members fails as a conflict retried too often would
    from loyaltykit import RetryLimitExceeded
    from loyaltykit._services.due import DueWork
    from loyaltykit.cli import main

    path = copy(shop, "stopped.sqlite")
    ranges = DueWork._range
    calls: list[int] = []

    def failing(self: DueWork, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RetryLimitExceeded("gave up after 3 retries", retries=3)
        return ranges(self, *args)

    monkeypatch.setattr(DueWork, "_range", failing)
    code = main(["due", "--url", url(path), "--at", DUE_AT, "--batch-size", "5",
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert (1, "") == (code, out)
    *logged, last = err.splitlines()
    failed = json.loads(logged[-1])
    assert ("due.failed", 1) == (failed["event"], failed["stages_done"])
    assert last.startswith("loyaltykit: error: due work stopped after 1 of ")
    assert "retry_limit_exceeded" in last and "run it again" in last
    monkeypatch.setattr(DueWork, "_range", ranges)
    with library(path) as loyalty:  # the first range stayed committed; the rest is left
        rest = loyalty.run_due(dt.datetime.fromisoformat(DUE_AT), batch_size=5)
    with library(copy(shop, "stopped-twin.sqlite")) as loyalty:
        whole = loyalty.run_due(dt.datetime.fromisoformat(DUE_AT), batch_size=5)
    assert 5 == whole.members - rest.members
