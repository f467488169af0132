"""The outbox on the SQL backend: inside a host's transaction (O1), and never skipping
an event that commits later (O3) with real concurrent connections on PostgreSQL.

O3 is also run against a *naive* reader (``seq > last seen``), written here as the
counter-example: in the very same timeline it moves past W1's event and never comes
back for it, which is the classic outbox bug (kamu-cli #1398, Eventuous #222).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, MemberNotFound, StorageError, TestClock
from loyaltykit._outbox import NewEvent
from loyaltykit.sql import SQLStorage
from loyaltykit.sql.schema import outbox
from loyaltykit.storage import OutboxChanges
from loyaltykit.testing.contract import berlin
from loyaltykit.testing.contract.outbox import _order, o_program, types

AT = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def test_o1_inside_a_host_transaction_that_rolls_back_nothing_exists(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 1, 15, 9))
    with engine.connect() as conn:
        conn.begin()
        loyalty = Loyalty(o_program(), SQLStorage(conn), clock=clock)
        loyalty.enrol("alice")
        clock.set(berlin(2026, 1, 15, 10))
        loyalty.record_order(_order("1001", "alice", clock.now(), "100.00"))
        assert 100 == loyalty.balance("alice").available
        conn.rollback()
    after = Loyalty(o_program(), SQLStorage(engine), clock=clock)
    with pytest.raises(MemberNotFound):
        after.balance("alice")
    assert [] == after.events.read("mailer")
    with engine.connect() as conn:
        assert 0 == conn.scalar(sa.select(sa.func.count()).select_from(outbox))


def test_o1_inside_a_host_transaction_that_commits_the_events_come_with_it(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 1, 15, 9))
    with engine.connect() as conn, conn.begin():
        loyalty = Loyalty(o_program(), SQLStorage(conn), clock=clock)
        loyalty.enrol("alice")
        clock.set(berlin(2026, 1, 15, 10))
        loyalty.record_order(_order("1001", "alice", clock.now(), "100.00"))
    after = Loyalty(o_program(), SQLStorage(engine), clock=clock)
    assert ["member.enrolled", "points.earned", "order.recorded"] == types(
        after.events.read("mailer"))


# -- O3: never skip an event that commits later (PostgreSQL, two real connections) ---------


@pytest.fixture
def pg() -> SQLStorage:
    from conftest import POSTGRESQL

    storage = POSTGRESQL.storage()
    assert isinstance(storage, SQLStorage)
    return storage


def _event(member: str, n: int) -> NewEvent:
    return NewEvent(uuid.uuid4(), "test.event", 1, member, AT, AT, {"n": n})


def _naive(storage: SQLStorage, last: int) -> list[tuple[int, int]]:
    """The classic outbox reader: everything committed with a number drawn at insert
    (here the key, a transaction id) ``> last``, by that number, without the
    horizon."""
    stmt = (sa.select(outbox.c.tx, outbox.c.payload["n"].as_integer())
            .where(outbox.c.program_id == "p", outbox.c.tx > last).order_by(outbox.c.tx))
    with storage._engine.connect() as conn:
        return [(int(s), int(n)) for s, n in conn.execute(stmt)]


def _read(storage: SQLStorage, after: Any = None) -> list[Any]:
    with storage.unit_of_work("p") as uow:
        streams = uow.outbox.streams()
        assert len(streams) <= 1  # one server: one stream
        return uow.outbox.read(streams[0], after, 100) if streams else []


def _write(uow: Any, member: str, n: int) -> None:
    uow.outbox.write(OutboxChanges([_event(member, n)]))


def test_o3_a_reader_never_moves_past_a_writer_that_has_not_committed(
        pg: SQLStorage) -> None:
    with contextlib.ExitStack() as stack:
        w1 = stack.enter_context(pg.unit_of_work("p"))
        w2 = stack.enter_context(pg.unit_of_work("p"))
        _write(w1, "m1", 1)  # W1 appends first: the lower key, left open
        _write(w2, "m2", 2)
        w2.commit()  # W2 commits
        # the naive reader sees W2's event and moves past W1's key
        naive = _naive(pg, 0)
        assert [2] == [n for _, n in naive]
        assert [] == _read(pg)  # ours: nothing from W1's position on until W1 ends
        w1.commit()
    ours = _read(pg)
    assert [1, 2] == [e.payload["n"] for e in ours]  # both, each exactly once, W1 first
    assert [] == _read(pg, ours[-1].position)
    # the counter-example: after W1's commit the naive reader, resuming after the last
    # key it saw, never gets W1's event
    assert [] == _naive(pg, naive[-1][0])
    assert [1, 2] == [n for _, n in _naive(pg, 0)]  # it is there: it was skipped


def test_o3_a_writer_rolling_back_releases_the_reader(pg: SQLStorage) -> None:
    with contextlib.ExitStack() as stack:
        w1 = stack.enter_context(pg.unit_of_work("p"))
        _write(w1, "m1", 1)
        with pg.unit_of_work("p") as w2:
            _write(w2, "m2", 2)
            w2.commit()
        assert [] == _read(pg)
    # W1 left its block without committing: rolled back
    assert [2] == [e.payload["n"] for e in _read(pg)]


def test_o3_a_transaction_whose_id_is_older_orders_first_though_it_inserts_later(
        pg: SQLStorage) -> None:
    """A transaction gets its id when it first writes, which may be long before it
    appends its event: its event's key is its id, so it still sorts before a younger
    transaction's event appended first, and the reader waits for it."""
    with contextlib.ExitStack() as stack:
        w1 = stack.enter_context(pg.unit_of_work("p"))
        w1.connection().exec_driver_sql("SELECT pg_current_xact_id()")  # W1's id: older
        with pg.unit_of_work("p") as w2:
            _write(w2, "m2", 2)  # appended and committed first
            w2.commit()
        assert [] == _read(pg)
        _write(w1, "m1", 1)
        assert [] == _read(pg)
        w1.commit()
    found = _read(pg)
    assert [1, 2] == [e.payload["n"] for e in found]
    assert found[0].position.tx < found[1].position.tx  # by key, not by insert order


def test_o3_a_members_events_keep_their_order_across_transactions(pg: SQLStorage) -> None:
    """The member's later writer may hold an older transaction id (it began first and
    waited for the member): the key is at least the member's highest, so the member's
    events stay in the order written."""
    with contextlib.ExitStack() as stack:
        late = stack.enter_context(pg.unit_of_work("p"))
        late.connection().exec_driver_sql("SELECT pg_current_xact_id()")  # older id
        with pg.unit_of_work("p") as first:
            _write(first, "m1", 1)
            first.commit()
        _write(late, "m1", 2)  # the member's second event, from the older transaction
        late.commit()
    found = _read(pg)
    assert [1, 2] == [e.payload["n"] for e in found]
    assert found[0].position.tx == found[1].position.tx  # the key did not go back
    assert found[0].position.seq < found[1].position.seq  # numbered after the key's


def test_o3_many_events_of_several_members_keep_each_members_order(pg: SQLStorage) -> None:
    """The same through the many-events statement (due work's): an older transaction
    writes events of two members in one statement, one of whom a newer transaction
    wrote before; each member's key is at least that member's own highest."""
    with contextlib.ExitStack() as stack:
        late = stack.enter_context(pg.unit_of_work("p"))
        late.connection().exec_driver_sql("SELECT pg_current_xact_id()")  # older id
        with pg.unit_of_work("p") as first:
            _write(first, "m1", 1)
            first.commit()
        late.outbox.write(OutboxChanges(
            [_event("m2", 10), _event("m1", 2), _event("m2", 11), _event("m1", 3)]))
        late.commit()
    found = _read(pg)
    m1 = [e for e in found if e.member_id == "m1"]
    m2 = [e for e in found if e.member_id == "m2"]
    assert [1, 2, 3] == [e.payload["n"] for e in m1]
    assert [10, 11] == [e.payload["n"] for e in m2]
    assert {m1[0].position.tx} == {e.position.tx for e in m1}  # m1's key did not go back
    assert 1 == len({e.position.tx for e in m2})
    assert m2[0].position.tx < m1[0].position.tx  # m2 keeps the older id: no history


def test_a_long_transaction_holds_readers_back_until_it_ends(pg: SQLStorage) -> None:
    """The price of the horizon (documented): any open transaction with an id, even one
    that never touches the outbox, hides events committed after it began."""
    with pg.unit_of_work("p") as w:
        _write(w, "m1", 1)
        w.commit()
    with pg._engine.connect() as other:
        other.begin()
        other.exec_driver_sql("SELECT pg_current_xact_id()")
        with pg.unit_of_work("p") as w:
            _write(w, "m2", 2)
            w.commit()
        assert [1] == [e.payload["n"] for e in _read(pg)]
        other.rollback()
    assert [1, 2] == [e.payload["n"] for e in _read(pg)]


# -- waking a follower ---------------------------------------------------------------------


def test_follow_wakes_on_a_notification_instead_of_polling(pg: SQLStorage) -> None:
    url = pg._engine.url.render_as_string(hide_password=False)
    clock = TestClock(berlin(2026, 1, 15, 9))
    writer = SQLStorage.from_url(url, notify=True)
    try:
        loyalty = Loyalty(o_program(), writer, clock=clock)
        loyalty.enrol("alice")
        seen: list[tuple[str, float]] = []
        done = threading.Event()

        def follow() -> None:
            for event in loyalty.events.follow("mailer", poll=30.0, stop=done.is_set):
                seen.append((event.type, time.monotonic()))
                if len(seen) == 2:
                    done.set()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the follower is waiting now (30 s if nothing wakes it)
        written = time.monotonic()
        loyalty.earn("alice", 10, key="e1")
        follower.join(timeout=10)
        assert not follower.is_alive()
        assert ["member.enrolled", "points.earned"] == [t for t, _ in seen]
        assert seen[1][1] - written < 5.0  # woken, not the 30 s poll
    finally:
        writer.dispose()
    waiter = pg.event_waiter("p")
    assert waiter is not None
    assert not waiter.wait(0.01)  # nothing came
    waiter.close()
    waiter.close()  # twice is fine
    with pytest.raises(StorageError):  # a closed waiter refuses
        waiter.wait(0.01)


def test_sqlite_and_host_connections_have_no_waiter(tmp_path: Path, pg: SQLStorage) -> None:
    storage = SQLStorage.from_url(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        assert storage.event_waiter("p") is None
    finally:
        storage.dispose()
    with pg._engine.connect() as conn:
        assert SQLStorage(conn).event_waiter("p") is None


def test_payload_text_decodes_exactly_whichever_decoder_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read decodes payloads with orjson, except where an integer may lie beyond 64
    bits (a run of 19 digits) or orjson refuses the text: there the standard decoder,
    exact for every integer, reads it. Both give what the standard decoder gives."""
    from loyaltykit.sql import outbox as sql_outbox

    texts = [
        '{"a": 1, "b": [1.5, "x"], "c": {"d": null, "e": true}}',
        '{"big": 123456789012345678901, "neg": -9223372036854775809}',
        '{"u64": 18446744073709551615, "i64": -9223372036854775808}',
        '{"order_id": "1234567890123456789"}',
        '{"x": NaN, "y": -Infinity}',
        '{"s": "\\ud800 lone", "t": "caf\\u00e9 \u00e9"}',
        '{"huge": 1e999}',
    ]
    for text in texts:
        assert repr(json.loads(text)) == repr(sql_outbox._load(text)), text
    big = sql_outbox._load(texts[1])
    assert (123456789012345678901, -(2**63) - 1) == (big["big"], big["neg"])

    # the common payload never reaches the standard decoder
    def refuse(text: str) -> Any:
        raise AssertionError("the standard decoder was used")

    monkeypatch.setattr(sql_outbox.json, "loads", refuse)
    assert {"a": 1, "b": [1.5, "x"], "c": {"d": None, "e": True}} == sql_outbox._load(
        texts[0])


def test_a_connection_whose_transaction_rolled_back_keys_its_next_events(
        pg: SQLStorage) -> None:
    """The key trigger keeps the server's stream in a session setting; a transaction
    that set it and rolled back leaves the setting empty (not unset), and the next
    write on the same connection (a pooled one, a host's next request) still keys its
    events."""
    with pg._engine.connect() as conn:
        host = SQLStorage(conn)
        conn.begin()
        with host.unit_of_work("p") as uow:
            _write(uow, "m1", 1)
            uow.commit()
        conn.rollback()  # the first setting of the stream rolled back with it
        conn.begin()
        with host.unit_of_work("p") as uow:
            _write(uow, "m1", 2)
            uow.commit()
        conn.commit()
    assert [2] == [e.payload["n"] for e in _read(pg)]
