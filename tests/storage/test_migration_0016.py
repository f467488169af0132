"""Migration 0016 (the outbox per stream) on a populated outbox: every event keeps its
key and number, every consumer its position (a read after it returns exactly what it
returned before), and PostgreSQL's new events are keyed by the trigger after the ones
kept. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import sqlalchemy as sa
from alembic import command

from loyaltykit import EventPolicy, Loyalty, Money, Program, TestClock
from loyaltykit.sql import SQLStorage

AT = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)


def _engine(storage: SQLStorage) -> sa.Engine:
    engine = storage._engine
    assert isinstance(engine, sa.Engine)
    return engine


def test_0016_keeps_every_event_and_every_consumers_position(
        unmigrated_storage: SQLStorage) -> None:
    storage = unmigrated_storage
    config = storage.alembic_config()
    engine = _engine(storage)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "lk0015")
    program = Program(id="p", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"), events=EventPolicy())
    Loyalty(program, storage, clock=TestClock(AT)).register()
    # events written by the library of 0015's schema are not at hand: rows as it wrote
    # them (SQLite: tx 0, seq in commit order; PostgreSQL: keys from transaction ids)
    postgres = engine.dialect.name == "postgresql"
    rows = [(i + 1, (100 + i // 2) if postgres else 0, f"m{i % 3}") for i in range(7)]
    with engine.begin() as conn:
        for seq, tx, member in rows:
            conn.execute(sa.text(
                "INSERT INTO lk_outbox (seq, program_id, tx, id, type, version, member_id, "
                "occurred_at, recorded_at, payload) VALUES (:seq, 'p', :tx, :id, 'x', 1, "
                ":m, :at, :at, :payload)"), {
                    "seq": seq, "tx": tx, "id": _id(seq, postgres), "m": member, "at": AT,
                    "payload": json.dumps({"n": seq})})
        if postgres:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('lk_outbox', "
                                 "'seq'), 8, false)")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO lk_outbox_consumers (program_id, name, tx, seq, acked_at) "
            "VALUES ('p', 'mailer', :tx, 3, :at), ('p', 'crm', :tx0, 7, :at)"), {
                "tx": rows[2][1], "tx0": rows[6][1], "at": AT})
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    loyalty = Loyalty(program, storage, clock=TestClock(AT))
    # each consumer goes on after the event it acknowledged: nothing read twice, none lost
    mailer = loyalty.events.read("mailer")
    assert [4, 5, 6, 7] == [e.payload["n"] for e in mailer]
    assert [] == loyalty.events.read("crm")
    assert [e.position for e in mailer] == sorted(e.position for e in mailer)
    positions = {c.name: c.position for c in loyalty.events.consumers()}
    everything = loyalty.events.read("fresh")
    assert list(range(1, 8)) == [e.payload["n"] for e in everything]  # the old order
    assert everything[2].position == positions["mailer"]  # at the event it was at
    assert everything[6].position == positions["crm"] == mailer[-1].position
    # a new event comes after every event kept, for every consumer
    loyalty.enrol("ann")
    new = loyalty.events.read("crm")
    assert ["member.enrolled"] == [e.type for e in new]
    assert new[0].position > mailer[-1].position
    assert _downgraded_and_back(storage) == _events(engine)


def _id(seq: int, postgres: bool) -> Any:
    return uuid.UUID(int=seq) if postgres else f"{seq:032x}"


def _events(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT id, member_id, tx, type FROM lk_outbox ORDER BY stream, tx, seq, id")]


def _downgraded_and_back(storage: SQLStorage) -> list[tuple[Any, ...]]:
    """Down to 0015 and up again: the same events, in the same order."""
    engine = _engine(storage)
    before = _events(engine)
    config = storage.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0015")
    with engine.connect() as conn:
        assert len(before) == conn.exec_driver_sql("SELECT count(*) FROM lk_outbox").scalar()
    storage.upgrade()
    return before
