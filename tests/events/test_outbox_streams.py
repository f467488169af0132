"""The outbox per stream (issue 23 item 4): events a distributed engine's other node
keyed (or the server a database was restored from) form a stream of their own. Each
stream is read in its own order, a consumer keeps a position per stream and reads every
stream in turn, and pruning never takes a stream's events from a consumer that has not
read that stream. One server has one stream, so the other stream here is written as
another node would have written it: rows of another stream id, their keys far above
this server's transaction ids (on PostgreSQL the key trigger is set aside for that
insert, as the rows would arrive from another node)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from loyaltykit import Loyalty, OutboxEvent, TestClock
from loyaltykit.sql import SQLStorage
from loyaltykit.sql.schema import member_ids, outbox
from loyaltykit.testing.contract.outbox import o_program

AT = dt.datetime(2026, 5, 4, 9, tzinfo=dt.UTC)
FAR = 2**40  # a key no transaction id of this server comes near


def _other_stream(engine: sa.Engine, program_id: str, member: str, stream: int,
                  keys: list[tuple[int, int]]) -> list[uuid.UUID]:
    """Events of ``member`` (a shop id) in ``stream``, one a (tx, seq) of ``keys``."""
    ids = [uuid.uuid4() for _ in keys]
    with engine.begin() as conn:
        key = conn.execute(sa.select(member_ids.c.member_id).where(
            member_ids.c.program_id == program_id,
            member_ids.c.external_id == member)).scalar_one()
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("ALTER TABLE lk_outbox DISABLE TRIGGER lk_outbox_key")
        conn.execute(outbox.insert(), [
            {"program_id": program_id, "member_id": key, "id": id_, "stream": stream,
             "tx": tx, "seq": seq, "type": "test.elsewhere", "version": 1,
             "occurred_at": AT, "recorded_at": AT, "payload": {"n": n}}
            for n, (id_, (tx, seq)) in enumerate(zip(ids, keys, strict=True))])
        if postgres:
            conn.exec_driver_sql("ALTER TABLE lk_outbox ENABLE TRIGGER lk_outbox_key")
    return ids


def _setup(engine: sa.Engine) -> tuple[Loyalty, int, int, list[uuid.UUID]]:
    loyalty = Loyalty(o_program(), SQLStorage(engine), clock=TestClock(AT))
    loyalty.enrol("ann")
    loyalty.earn("ann", 100, key="e1")
    loyalty.enrol("bob")
    with loyalty.storage.unit_of_work(loyalty.program.id) as uow:
        (here,) = uow.outbox.streams()
    elsewhere = here - 1 if here > 0 else here + 1
    ids = _other_stream(engine, loyalty.program.id, "bob", elsewhere,
                        [(FAR, 1), (FAR, 2), (FAR + 1, 1)])
    return loyalty, here, elsewhere, ids


def _drain(loyalty: Loyalty, consumer: str) -> list[list[OutboxEvent]]:
    reads = []
    while batch := loyalty.events.read(consumer, limit=2):
        reads.append(batch)
        loyalty.events.ack(consumer, batch[-1])
    return reads


def test_a_consumer_reads_every_stream_each_in_its_order(engine: Any) -> None:
    loyalty, here, elsewhere, ids = _setup(engine)
    with loyalty.storage.unit_of_work(loyalty.program.id) as uow:
        assert sorted([here, elsewhere]) == uow.outbox.streams()
    reads = _drain(loyalty, "mailer")
    for batch in reads:  # a read serves one stream
        assert 1 == len({e.position.stream for e in batch})
    events = [e for batch in reads for e in batch]
    assert 6 == len(events) == len({e.id for e in events})  # each once
    mine = [e for e in events if e.position.stream == here]
    theirs = [e for e in events if e.position.stream == elsewhere]
    assert ["member.enrolled", "points.earned", "member.enrolled"] == [e.type for e in mine]
    # another node's events are final: read whatever this server's horizon is
    assert ids == [e.id for e in theirs]
    assert ["bob"] * 3 == [e.member_id for e in theirs]
    for stream in (mine, theirs):
        assert [e.position for e in stream] == sorted(e.position for e in stream)
    # one position a stream, each the stream's last event
    assert sorted([mine[-1].position, theirs[-1].position]) == sorted(
        loyalty.events.positions("mailer"))
    assert reads[-1][-1].position == loyalty.events.position("mailer")
    assert [] == loyalty.events.read("mailer")
    # a new event comes in this server's stream, and is read next
    loyalty.earn("bob", 5, key="e2")
    (new,) = loyalty.events.read("mailer")
    assert ("points.earned", here) == (new.type, new.position.stream)


def test_a_read_serves_the_stream_acknowledged_longest_ago(engine: Any) -> None:
    loyalty, here, elsewhere, _ = _setup(engine)
    first = loyalty.events.read("mailer", limit=1)
    assert min(here, elsewhere) == first[0].position.stream  # none acked: by stream
    loyalty.events.ack("mailer", first[0])
    loyalty.clock.advance(minutes=1)  # type: ignore[attr-defined]
    second = loyalty.events.read("mailer", limit=1)
    assert max(here, elsewhere) == second[0].position.stream  # the other one's turn
    loyalty.events.ack("mailer", second[0])
    loyalty.clock.advance(minutes=1)  # type: ignore[attr-defined]
    third = loyalty.events.read("mailer", limit=1)
    assert first[0].position < third[0].position  # the first stream, where it stopped
    assert first[0].position.stream == third[0].position.stream


def test_pruning_keeps_a_streams_events_for_a_consumer_that_has_not_read_it(
        engine: Any) -> None:
    loyalty, here, elsewhere, _ = _setup(engine)
    later = AT + dt.timedelta(days=1)

    def counts() -> dict[int, int]:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(outbox.c.stream, sa.func.count())
                                     .group_by(outbox.c.stream)).all())

    _drain(loyalty, "mailer")
    batch = loyalty.events.read("crm", limit=10)  # one stream only
    loyalty.events.ack("crm", batch[-1])
    read_by_both = batch[-1].position.stream
    not_by_crm = here if read_by_both == elsewhere else elsewhere
    before = counts()
    loyalty.clock.advance(days=2)  # type: ignore[attr-defined]
    pruned = loyalty.events.prune(later)
    after = counts()
    assert after[not_by_crm] == before[not_by_crm]  # crm has not read it yet
    assert after[read_by_both] == 1  # every consumer passed it: all but the last
    assert pruned == before[read_by_both] - 1
    _drain(loyalty, "crm")  # crm reads the other stream, nothing of it lost
    assert loyalty.events.prune(later) == before[not_by_crm] - 1
    assert {here: 1, elsewhere: 1} == counts()  # each stream keeps its last event
