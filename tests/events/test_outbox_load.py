"""O4 under load on PostgreSQL: 8 writer processes, one per member, each earning point
after point, while one consumer reads and acknowledges.

What is proven: the consumer receives every event exactly once, and each member's
events in the order they were written (each earn adds one point, so the balance the
events carry must count 1, 2, 3, ... per member); and the writers never wait for one
another: a sampler watching the server's lock table (``pg_locks``) all along sees no
lock request of a writer that is not granted (relation extension aside: the page
allocator of any table that several writers insert into). Writers of different
members share no row, and the outbox adds none (no counter row, no table lock). The fast loop runs a
few writes per process; ``-m slow`` runs scenario O4's 2,000.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from _workers import Team, worker_loyalty
from loyaltykit import Loyalty, OutboxEvent
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.contract import make_program

PROCESSES = 8

#: Lock requests of the writers (by application name) that are not granted.
WAITS = sa.text("""
    SELECT a.application_name, l.locktype, l.mode, l.relation::regclass::text AS relation,
           l.classid, l.objid
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE NOT l.granted AND a.application_name LIKE 'lk-o4-%'
""")


def _write(url: str, member: str, writes: int, go: Any) -> int:
    program = make_program("o4")
    with worker_loyalty(url, program,
                        connect_args={"application_name": f"lk-o4-{member}"}) as loyalty:
        loyalty.balance(member)  # connected, the program read
        assert go.wait(timeout=60)
        for i in range(writes):
            loyalty.earn(member, 1, key=f"{member}-{i}")
    return writes


class Sampler(threading.Thread):
    """Samples the writers' lock waits until stopped."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.waits: list[Any] = []
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stopped.is_set():
                self.waits += conn.execute(WAITS).all()
                conn.commit()
                self.samples += 1
                time.sleep(0.001)


@pytest.mark.parametrize("writes", [30, pytest.param(2_000, marks=pytest.mark.slow)])
def test_o4_every_event_once_in_each_members_order_and_no_writer_waits(
        writes: int) -> None:
    from conftest import POSTGRESQL

    storage = POSTGRESQL.storage()
    assert isinstance(storage, SQLStorage)
    url = POSTGRESQL.get_url()
    loyalty = Loyalty(make_program("o4"), storage)
    members = [f"m{i}" for i in range(PROCESSES)]
    for member in members:
        loyalty.enrol(member)
    expected = PROCESSES * (writes + 1)  # an enrolment and the earns
    received: list[OutboxEvent] = []
    team = Team("process")
    go = team.event()
    with team:
        for member in members:
            team.start(member, _write, url, member, writes, go)
        sampler = Sampler(storage._engine)  # threads only once every process is forked
        sampler.start()
        go.set()
        deadline = time.monotonic() + 60 + writes * 0.2
        while len(received) < expected and time.monotonic() < deadline:
            batch = loyalty.events.read("o4", limit=500)
            if not batch:
                time.sleep(0.005)
                continue
            received += batch
            loyalty.events.ack("o4", batch[-1])
        outcomes = team.results(timeout=max(deadline - time.monotonic(), 10))
        sampler.stopped.set()
        sampler.join(timeout=10)

    assert {m: writes for m in members} == outcomes
    assert [] == loyalty.events.read("o4")  # nothing left over
    assert expected == len(received)
    assert expected == len({e.id for e in received})  # each exactly once
    positions = [e.position for e in received]
    assert positions == sorted(positions) and len(set(positions)) == expected
    totals: dict[str, list[int]] = defaultdict(list)
    for event in received:
        if event.type == "points.earned":
            totals[event.member_id].append(event.payload["balance"]["total"])
        else:
            assert ("member.enrolled", []) == (event.type, totals[event.member_id])
    assert {m: list(range(1, writes + 1)) for m in members} == dict(totals)
    assert sampler.samples > 10
    # a relation extension lock (``extend``: a new page of a table or index, held for
    # microseconds by the writer that grows the file) is the server's page allocator,
    # taken by concurrent inserters of any table; every other wait would be a row or
    # table lock one writer holds against another
    waits = [w for w in sampler.waits if w.locktype != "extend"]
    assert [] == waits, "a writer waited for a lock"
