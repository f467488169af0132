"""The command line on PostgreSQL: a new, empty database migrated by ``loyaltykit
migrate`` (the installed script), seeded through the library, then the commands with
the URL in ``LOYALTYKIT_URL``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from _cli_helpers import BERLIN, run, seed, shop_program

from loyaltykit import Loyalty, describe_program
from loyaltykit.sql import SQLStorage

DUE_AT = dt.datetime(2026, 1, 20, 3, tzinfo=BERLIN)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as found:
        for _ in range(2):  # the second run finds the schema up to date
            proc = run("migrate", url=found, script=True)
            assert (0, "loyaltykit: the database schema is up to date\n") == (
                proc.returncode, proc.stdout), proc.stderr
        storage = SQLStorage.from_url(found)
        try:
            seed(storage, members=12)
        finally:
            storage.dispose()
        yield found


def env(url: str) -> dict[str, str]:
    return {"LOYALTYKIT_URL": url}


def facade(url: str) -> tuple[Loyalty, SQLStorage]:
    storage = SQLStorage.from_url(url)
    return Loyalty(shop_program(), storage), storage


def test_due_on_postgresql_posts_every_due_expiry_once(url: str) -> None:
    loyalty, storage = facade(url)
    try:
        before = loyalty.reports.totals()[0]
        proc = run("due", "--at", DUE_AT.isoformat(), "--workers", "3", "--batch-size", "4",
                   "--format", "json", env=env(url))
        assert 0 == proc.returncode, proc.stderr
        report = json.loads(proc.stdout)
        after = loyalty.reports.totals()[0]
        assert report["expired_points"] == after.expired - before.expired > 0
        assert report["members"] > 0
        assert 0 == loyalty.run_due(DUE_AT).members  # nothing was left behind
    finally:
        storage.dispose()
    done = json.loads(proc.stderr.splitlines()[-1])
    assert ("due.done", report["expired_lots"]) == (done["event"], done["expired_lots"])


def test_reports_events_member_and_program_on_postgresql(url: str) -> None:
    loyalty, storage = facade(url)
    try:
        kpis = run("report", "kpis", "--period", "month", "--start",
                   "2025-01-01T00:00:00+01:00", "--end", "2025-07-01T00:00:00+02:00",
                   "--format", "json", env=env(url))
        assert 0 == kpis.returncode, kpis.stderr
        expected = loyalty.reports.kpis("month", dt.datetime(2025, 1, 1, tzinfo=BERLIN),
                                        dt.datetime(2025, 7, 1, tzinfo=BERLIN))
        assert [k.to_dict()["orders"] for k in expected] == [
            row["orders"] for row in json.loads(kpis.stdout)]
        events = loyalty.events.read("fresh", 3)
        tail = run("events", "tail", "--consumer", "pg-mailer", "--limit", "3", "--ack",
                   env=env(url))
        assert [e.to_dict() for e in events] == [json.loads(x) for x in
                                                 tail.stdout.splitlines()]
        assert events[-1].position == loyalty.events.position("pg-mailer")
        member = run("member", "show", "m01", "--format", "json", env=env(url))
        assert loyalty.balance("m01").available == json.loads(member.stdout)[
            "wallets"]["points"]["balance"]["available"]
        words = run("program", "show", env=env(url))
        assert "\n".join(describe_program(shop_program())) + "\n" == words.stdout
        unknown = run("--program", "other", "report", "totals", env=env(url))
        assert (1, "loyaltykit: error: no program 'other' in the database (stored: "
                   "cli-shop)\n") == (unknown.returncode, unknown.stderr)
    finally:
        storage.dispose()


@pytest.mark.parametrize("report", ["liability", "totals", "tiers", "rfm"])
def test_every_report_on_postgresql_is_the_librarys(url: str, report: str) -> None:
    """Each report's JSON from the command is the library's answer on the same database
    at the same instant."""
    as_of = dt.datetime(2025, 12, 1, tzinfo=BERLIN)
    loyalty, storage = facade(url)
    try:
        proc = run("report", report, "--as-of", as_of.isoformat(), "--format", "json",
                   env=env(url))
        assert 0 == proc.returncode, proc.stderr
        found = json.loads(proc.stdout)
        if report == "totals":
            expected: object = loyalty.reports.totals(as_of=as_of)
        elif report == "rfm":
            expected = loyalty.reports.rfm(as_of=as_of)
        else:
            expected = getattr(loyalty.reports, report)(as_of=as_of)
        want = json.loads(json.dumps(
            [r.to_dict() for r in expected] if isinstance(expected, list | tuple)
            else expected.to_dict()))  # type: ignore[attr-defined]
        assert len(_figures(want)) > 2  # figures, not only an instant
        assert _figures(want) <= _figures(found), (want, found)
    finally:
        storage.dispose()


def _figures(data: object) -> set[str]:
    """Every number and string in a JSON document (its leaves), to compare the
    library's figures with the command's whatever the command's layout."""
    if isinstance(data, dict):
        return set().union(*(_figures(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(_figures(v) for v in data)) if data else set()
    return {json.dumps(data)}


def test_no_schema_and_an_unreachable_server_on_postgresql() -> None:
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as empty:
        proc = run("report", "totals", url=empty)
        assert 1 == proc.returncode
        assert "loyaltykit migrate" in proc.stderr and "Traceback" not in proc.stderr
        assert 1 == len(proc.stderr.splitlines())
        wrong = empty.rsplit("/", 1)[0] + "/no_such_database"
        proc = run("report", "totals", url=wrong)
        assert 1 == proc.returncode
        assert "cannot reach the database" in proc.stderr and "Traceback" not in proc.stderr
