"""Due work resumes after a crash: a process running ``run_due`` over many batches is
killed (SIGKILL) after some batches, and a second run finishes the work, leaving the
ledger an uninterrupted run leaves, on PostgreSQL and on a SQLite file (WAL).

Two programs in one database get the same members and history: the first's due work
is run by a child process, killed while it commits
its fifth unit of work (a batch written, not committed), then
run again here; the second's runs once, uninterrupted. Each batch commits on its own
and due work is idempotent by what it finds, so the balances, statements and lots are
the same, the invariants hold, and the counts add up: what the killed run committed
plus what the second run reports is what the uninterrupted run reports.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from _workers import FORK
from loyaltykit import DueWorkReport, ExpiryPolicy, Loyalty, PendingPolicy, Program, TestClock
from loyaltykit.sql import SQLStorage
from loyaltykit.sql.uow import SQLUnitOfWork
from loyaltykit.testing.contract import berlin, make_program, statement_lines
from loyaltykit.testing.invariants import check_invariants

# a child process killed mid-run: out of the fast loop
pytestmark = pytest.mark.slow

MEMBERS = [f"m{i:03d}" for i in range(40)]
BATCH = 4  # 10 batches
KILL_AT_BATCH = 5
RUN_AT = berlin(2026, 2, 10, 10)
transactions_t = SQLStorage.metadata.tables["lk_transactions"]


def due_program(program_id: str) -> Program:
    return make_program(program_id, expiry=ExpiryPolicy(days=30),
                        pending=PendingPolicy(days=10))


def seed(storage: SQLStorage, program: Program) -> None:
    """Each member: a lot earned on 1 January that expired on 31 January (active since
    the second earn caught the member up), a lot pending since 25 January that
    activated on 4 February; every fourth member a stale hold."""
    clock = TestClock(berlin(2026, 1, 1, 10))
    loyalty = Loyalty(program, storage, clock=clock)
    for m in MEMBERS:
        loyalty.enrol(m)
    loyalty.bulk_earn({m: 100 + i for i, m in enumerate(MEMBERS)}, key="january")
    clock.set(berlin(2026, 1, 25, 10))
    loyalty.bulk_earn({m: 50 for m in MEMBERS}, key="late-january")
    for m in MEMBERS[::4]:  # catches the member up: the first lot is active now
        loyalty.hold(m, 20, key=f"hold-{m}", ttl=dt.timedelta(minutes=15))


def run_due_until_killed(conn: Any, url: str, program: Program) -> None:
    """The child: run due work; at its fifth commit (a batch written, not committed
    yet) it reports and waits to be killed."""
    commit = SQLUnitOfWork.commit
    batches = 0

    def reporting(self: SQLUnitOfWork) -> None:
        nonlocal batches
        batches += 1
        if batches == KILL_AT_BATCH:
            conn.send("writing")
            time.sleep(60)
        commit(self)

    SQLUnitOfWork.commit = reporting  # type: ignore[method-assign]
    storage = SQLStorage.from_url(url)
    Loyalty(program, storage, clock=TestClock(RUN_AT)).run_due(batch_size=BATCH)
    conn.send("finished")


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, SQLStorage]]:
    if request.param == "postgresql":
        from conftest import POSTGRESQL

        storage = POSTGRESQL.storage()
        assert isinstance(storage, SQLStorage)
        yield POSTGRESQL.get_url(), storage
    else:
        url = f"sqlite:///{tmp_path / 'due.sqlite'}"
        storage = SQLStorage.from_url(url)
        storage.create_schema()
        yield url, storage
        storage.dispose()


def due_counts(storage: SQLStorage, program_id: str) -> dict[str, int]:
    """The due transactions stored for the program, by kind."""
    t = transactions_t
    with storage._engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.kind, sa.func.count()).where(
            t.c.program_id == program_id, t.c.kind.in_(("activate", "expire", "release")))
            .group_by(t.c.kind)).all()
    return {kind: n for kind, n in rows}


def ledger(loyalty: Loyalty) -> dict[str, Any]:
    return {m: (loyalty.balance(m),
                [(line.kind, line.points, line.occurred_at)
                 for line in statement_lines(loyalty, m)],
                [(lot.amount, lot.remaining, lot.pending, lot.expires_at)
                 for lot in loyalty.lots(m)]) for m in MEMBERS}


def test_due_work_killed_mid_run_resumes_to_the_same_ledger(
        database: tuple[str, SQLStorage]) -> None:
    url, storage = database
    killed, whole = due_program("killed"), due_program("whole")
    for program in (killed, whole):
        seed(storage, program)

    seeded = due_counts(storage, "killed")  # (holds' writes activated some lots)
    storage.dispose()  # the child must not inherit SQLite connections
    receiver, sender = FORK.Pipe(duplex=False)
    child = FORK.Process(target=run_due_until_killed, args=(sender, url, killed), daemon=True)
    child.start()
    sender.close()
    try:
        assert receiver.poll(60), "the child did not reach its fifth commit"
        assert "writing" == receiver.recv()
    finally:
        child.kill()  # SIGKILL with a batch written, not committed
        child.join(timeout=10)
    assert -9 == child.exitcode
    receiver.close()

    committed = {kind: n - seeded.get(kind, 0)
                 for kind, n in due_counts(storage, "killed").items()}
    # the batches before the kill committed (whole batches), the one written did not
    assert 0 < committed["expire"] < len(MEMBERS) and 0 == committed["expire"] % BATCH
    resumed_loyalty = Loyalty(killed, storage, clock=TestClock(RUN_AT))
    resumed = resumed_loyalty.run_due(batch_size=BATCH)
    whole_loyalty = Loyalty(whole, storage, clock=TestClock(RUN_AT))
    full = whole_loyalty.run_due(batch_size=BATCH)

    assert ledger(resumed_loyalty) == ledger(whole_loyalty)
    for program in (killed, whole):
        check_invariants(storage, program, MEMBERS, at=RUN_AT)
    assert due_counts(storage, "killed") == due_counts(storage, "whole")
    # the counts add up: committed before the kill + the second run = the whole run
    assert (full.activated_lots, full.expired_lots, full.released_holds) == (
        committed.get("activate", 0) + resumed.activated_lots,
        committed.get("expire", 0) + resumed.expired_lots,
        committed.get("release", 0) + resumed.released_holds)
    # (the second bulk earn activated every member's first lot before the run)
    assert (len(MEMBERS), len(MEMBERS), len(MEMBERS) // 4) == (
        full.activated_lots, full.expired_lots, full.released_holds)
    assert DueWorkReport(at=resumed.at) == resumed_loyalty.run_due(batch_size=BATCH)
