"""The outbox's store in SQL: events read per stream in ``(tx, seq, id)`` order,
consumers' positions per stream.

On SQLite writers take turns (``BEGIN IMMEDIATE``), so ``seq``, which the INSERT gives
one more than the program's largest (never reused: pruning keeps each program's last
event), grows in commit order; ``stream`` and ``tx`` are 0. On PostgreSQL a trigger
(:data:`~loyaltykit.sql.schema.OUTBOX_KEY`) gives each row its stream (the server's
system identifier), its ordering key ``tx`` from the writer's transaction id and the
member's last key, and ``seq``, its number within the key; a read returns only events
of the server's own stream whose key is below its own snapshot's horizon, in one
statement (one snapshot); :mod:`loyaltykit._outbox` proves that no event is ever
skipped and that each member's events keep their order. Events of another stream (a
distributed engine's other node, or the server a database was restored from) were
keyed by another server's transaction ids: they are read as they are, final.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from loyaltykit._errors import StorageError
from loyaltykit._outbox import EventConsumer, EventPosition, OutboxEvent, stored_position
from loyaltykit.sql._errors import storage_error, translated
from loyaltykit.sql._many import execute_columns, execute_many
from loyaltykit.sql._pg_columns import column_params, unnest
from loyaltykit.sql._scrub import EMPTY_OBJECT, replaced
from loyaltykit.sql._shared import Store, as_stored
from loyaltykit.sql.schema import outbox, outbox_consumers
from loyaltykit.storage.outbox import OutboxChanges

__all__ = ["MANY_EVENTS", "NEXT_SEQ", "PostgreSQLWaiter", "SQLOutboxStore", "append_many",
           "channel",
           "insert_statement"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_BIG = sa.BigInteger()
_TS_TYPE = outbox.c.recorded_at.type
o, c = outbox.c, outbox_consumers.c


def channel(program_id: str) -> str:
    """The PostgreSQL notification channel of a program's outbox (a short identifier
    whatever characters the program id has)."""
    digest = hashlib.sha256(program_id.encode()).hexdigest()[:24]
    return f"lk_outbox_{digest}"


def _as_bigint(xid8: Any) -> Any:
    # xid8 has no cast to bigint; through text it is exact (64-bit, never wraps)
    return sa.cast(sa.cast(xid8, sa.Text), _BIG)


#: the oldest transaction id still running when the statement's snapshot was taken
_HORIZON = sa.select(_as_bigint(sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()))
                     ).scalar_subquery()
#: the stream of the server the statement runs on (see the module docstring)
_HERE = sa.select(sa.column("system_identifier", sa.BigInteger())).select_from(
    sa.func.pg_control_system()).scalar_subquery()

#: From this many events a PostgreSQL write appends them in one INSERT ... SELECT.
MANY_EVENTS = 4
# (stream, tx and seq are the trigger's: 0 here)
_PG_APPEND = f"""INSERT INTO {outbox.name} (program_id, member_id, seq, stream, tx, id,
        type, version, occurred_at, recorded_at, payload)
    SELECT CAST(%(p)s AS varchar), e.m, 0, 0, 0, e.i, e.t, e.v, e.o, e.r, e.d
    FROM {unnest("e", [("i", "uuid"), ("t", "text"), ("v", "int"), ("m", "text"),
                       ("o", "timestamptz"), ("r", "timestamptz"), ("d", "json")],
                 ordinality=True)}
    ORDER BY e.n"""

_s = sa.bindparam("s", type_=_BIG)
_after = sa.tuple_(o.tx, o.seq, o.id) > sa.tuple_(
    sa.bindparam("a_tx", type_=_BIG), sa.bindparam("a_seq", type_=_BIG),
    sa.bindparam("a_id", type_=o.id.type))
_limit = sa.bindparam("n", type_=sa.Integer())
#: the next seq of a program's events on SQLite (its one stream, key 0)
_NEXT_SEQ = (sa.select(sa.func.coalesce(sa.func.max(o.seq), 0) + 1)
             .where(o.program_id == sa.bindparam("k_p"), o.stream == 0, o.tx == 0)
             .scalar_subquery())
#: the program's largest seq on SQLite as SQL text (``:p`` the program), for the
#: set-based appends that number their rows after it
NEXT_SEQ = (f"(SELECT coalesce(max(x.seq), 0) FROM {outbox.name} x "
            "WHERE x.program_id = :p AND x.stream = 0 AND x.tx = 0)")


#: an event's columns as a read takes them: the payload as its JSON text, decoded here
_COLUMNS = (o.stream, o.tx, o.seq, o.id, o.type, o.version, o.member_id, o.occurred_at,
            o.recorded_at, sa.cast(o.payload, sa.Text).label("payload"))


#: every digit as "0": a run of 19 zeros after it is a run of 19 digits
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _load(text: str) -> Any:
    """A payload's JSON text as data (the payload is cast to text in SQL: the driver's
    JSON loader detects each value's encoding before decoding it).

    With orjson (a fifth of the standard decoder's time) unless the text holds a run
    of 19 digits: only there can an integer lie beyond 64 bits, which orjson reads as
    an inexact float (or refuses), so the standard decoder, exact for every integer,
    reads those. The run is found by a byte translation, in C (a regular expression
    cost twice the decoding it saved)."""
    data = text.encode("utf-8", "surrogatepass")
    if _LONG_RUN not in data.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # what orjson refuses: NaN, 1e999, lone surrogates
            pass
    return json.loads(text)


def _reads(dialect: str) -> dict[str, sa.Executable]:
    readable = [o.program_id == _p, o.stream == _s]
    if dialect == "postgresql":  # this server's stream: below the horizon only
        readable.append(sa.or_(o.stream != _HERE, o.tx < _HORIZON))
    order = (o.tx, o.seq, o.id)
    last = (sa.select(o.stream, o.tx, o.seq, o.id).where(*readable)
            .order_by(*(c.desc() for c in order)).limit(1))
    # upsert the consumer's position in the stream, never backwards (concurrent acks
    # keep the highest), and only to a readable one (some readable event is at or
    # past it), in one statement that returns the position it wrote (a consumer
    # acknowledges after every read: four round trips were a tenth of reading under
    # load)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    position = sa.tuple_(sa.bindparam("c_tx", type_=_BIG), sa.bindparam("c_seq", type_=_BIG),
                         sa.bindparam("c_event", type_=c.event.type))
    readable_at = sa.select(sa.literal(1)).where(
        *readable, sa.tuple_(*order) >= position).exists()
    ack = insert(outbox_consumers).from_select(
        ["program_id", "name", "stream", "tx", "seq", "event", "acked_at"],
        sa.select(_p, sa.bindparam("c_name", type_=c.name.type), _s,
                  sa.bindparam("c_tx", type_=_BIG), sa.bindparam("c_seq", type_=_BIG),
                  sa.bindparam("c_event", type_=c.event.type),
                  sa.bindparam("c_at", type_=_TS_TYPE)).where(readable_at))
    upsert = ack.on_conflict_do_update(
        index_elements=["program_id", "name", "stream"],
        set_={"tx": ack.excluded.tx, "seq": ack.excluded.seq, "event": ack.excluded.event,
              "acked_at": ack.excluded.acked_at},
        where=sa.tuple_(c.tx, c.seq, c.event)
        < sa.tuple_(ack.excluded.tx, ack.excluded.seq, ack.excluded.event)
    ).returning(c.tx, c.seq, c.event)
    bound = sa.tuple_(*order)
    prunable = (sa.select(o.member_id, o.id)
                .where(o.program_id == _p, o.stream == _s,
                       bound <= sa.tuple_(sa.bindparam("b_tx", type_=_BIG),
                                          sa.bindparam("b_seq", type_=_BIG),
                                          sa.bindparam("b_id", type_=o.id.type)),
                       bound < sa.tuple_(sa.bindparam("l_tx", type_=_BIG),
                                         sa.bindparam("l_seq", type_=_BIG),
                                         sa.bindparam("l_id", type_=o.id.type)),
                       o.recorded_at < sa.bindparam("before", type_=_TS_TYPE))
                .order_by(*order).limit(_limit))
    return {
        "read": sa.select(*_COLUMNS).where(*readable, _after).order_by(*order).limit(_limit),
        "first": sa.select(*_COLUMNS).where(*readable).order_by(*order).limit(_limit),
        "last": last,
        "ack": upsert,
        "prune": outbox.delete().where(o.program_id == _p, sa.tuple_(o.member_id, o.id)
                                       .in_(prunable)),
        # inline: nothing is fetched back (no RETURNING); on PostgreSQL the trigger
        # gives stream, tx and seq
        "insert": (outbox.insert().values(stream=0, tx=0, seq=0).inline()
                   if dialect == "postgresql"
                   else outbox.insert().values(stream=0, tx=0, seq=_NEXT_SEQ).inline()),
    }


_STATEMENTS = {"postgresql": _reads("postgresql"), "sqlite": _reads("sqlite")}


def insert_statement(dialect: str) -> sa.Executable:
    """The INSERT the store appends events with on ``dialect`` (for benchmarks that
    mirror it): a row names neither stream, tx nor seq (PostgreSQL's trigger gives
    them; on SQLite the statement computes seq)."""
    return _STATEMENTS["postgresql" if dialect == "postgresql" else "sqlite"]["insert"]


def append_many(conn: sa.Connection, program_id: str,
                events: list[tuple[Any, str, int, str, Any, Any, Any]]) -> None:
    """Append (id, type, version, member_id, occurred_at, recorded_at, payload) events
    on PostgreSQL in one INSERT ... SELECT (what the store does from :data:`MANY_EVENTS`
    events; an executemany there is a statement per row), in order: the key trigger
    fires row by row in it, and sees the rows before (a member's seq follows the
    order). Exported for benchmarks that mirror the store."""
    columns: list[Sequence[Any]] = list(zip(*events, strict=True))
    columns[6] = [dict(d) for d in columns[6]]  # orjson writes dicts, not every mapping
    conn.exec_driver_sql(_PG_APPEND, {"p": program_id, **column_params(
        "itvmord", columns, documents="d")})


_SEL_CONSUMER: sa.Executable = sa.select(c.name, c.stream, c.tx, c.seq, c.event, c.acked_at
                                        ).where(c.program_id == _p,
                                                c.name == sa.bindparam("c_name")
                                                ).order_by(c.stream)
_SEL_CONSUMERS: sa.Executable = sa.select(c.name, c.stream, c.tx, c.seq, c.event, c.acked_at
                                         ).where(c.program_id == _p).order_by(c.name, c.stream)
#: the program's lowest and highest stream (two index probes; more than two streams
#: are walked one by one between them)
_SEL_STREAM_ENDS: sa.Executable = sa.select(sa.func.min(o.stream), sa.func.max(o.stream)
                                            ).where(o.program_id == _p)
_SEL_STREAM_AFTER: sa.Executable = sa.select(sa.func.min(o.stream)).where(
    o.program_id == _p, o.stream > _s)
_SEL_MEMBER_EVENTS: sa.Executable = sa.select(*_COLUMNS).where(
    o.program_id == _p, o.member_id == sa.bindparam("m")).order_by(
        o.stream, o.tx, o.seq, o.id)
_NOTIFY: sa.Executable = sa.select(sa.func.pg_notify(sa.bindparam("c"), ""))


@functools.cache
def _erase(dialect: str) -> sa.Executable:
    """One UPDATE emptying ``attributes`` in the payloads of a member's events."""
    return outbox.update().where(o.program_id == _p, o.member_id == sa.bindparam("m")).values(
        payload=replaced(o.payload, dialect, [(("attributes",), EMPTY_OBJECT)]))


def _event(row: Any) -> OutboxEvent:
    stream, tx, seq, id_, type_, version, member_id, occurred_at, recorded_at, payload = row
    return OutboxEvent(id_, type_, version, member_id, occurred_at, recorded_at,
                       _load(payload), stored_position(tx, seq, id_, stream))


def _consumer(row: Any) -> EventConsumer:
    return EventConsumer(row.name, stored_position(int(row.tx), int(row.seq), row.event,
                                                   int(row.stream)), row.acked_at)


class SQLOutboxStore(Store):
    """The outbox of one program."""

    def _statements(self) -> dict[str, sa.Executable]:
        return _STATEMENTS["postgresql" if self._c().dialect.name == "postgresql"
                           else "sqlite"]

    @translated
    def streams(self) -> list[int]:
        """The program's streams (one on SQLite; on PostgreSQL one a server that
        keyed events), ascending: two index probes, and one more a stream between
        the first and the last."""
        conn, p = self._c(), self.program_id
        low, high = conn.execute(_SEL_STREAM_ENDS, {"p": p}).one()
        if low is None:
            return []
        found = [int(low)]
        while found[-1] != high:
            found.append(int(conn.execute(_SEL_STREAM_AFTER, {"p": p, "s": found[-1]})
                             .scalar_one()))
        return found

    @translated
    def read(self, stream: int, after: EventPosition | None,
             limit: int) -> list[OutboxEvent]:
        """Up to ``limit`` safe events of ``stream`` after ``after``, in position
        order (one statement: one snapshot)."""
        s = self._statements()
        params: dict[str, Any] = {"p": self.program_id, "s": stream, "n": limit}
        if after is None:
            rows = self._c().execute(s["first"], params).all()
        else:
            rows = self._c().execute(s["read"], {**params, "a_tx": after.tx,
                                                 "a_seq": after.seq,
                                                 "a_id": after.event}).all()
        return [_event(row) for row in rows]

    @translated
    def member_events(self, member_id: str) -> list[OutboxEvent]:
        """The member's events, in the order they were written (readable yet or
        not)."""
        rows = self._c().execute(_SEL_MEMBER_EVENTS, {"p": self.program_id, "m": member_id})
        return [_event(row) for row in rows]

    @translated
    def last_position(self, stream: int) -> EventPosition | None:
        """The position of the last event of ``stream`` a read could return now."""
        row = self._c().execute(self._statements()["last"],
                                {"p": self.program_id, "s": stream}).first()
        return None if row is None else stored_position(int(row.tx), int(row.seq), row.id,
                                                        int(row.stream))

    @translated
    def consumer_positions(self, name: str) -> list[EventConsumer]:
        """Consumer ``name``'s positions, one a stream, by stream."""
        rows = self._c().execute(_SEL_CONSUMER, {"p": self.program_id, "c_name": name})
        return [_consumer(row) for row in rows]

    @translated
    def consumers(self) -> list[EventConsumer]:
        """Every consumer's positions, by name and stream."""
        rows = self._c().execute(_SEL_CONSUMERS, {"p": self.program_id})
        return [_consumer(row) for row in rows]

    @translated
    def set_consumer_position(self, name: str, position: EventPosition,
                              at: Any) -> EventPosition | None:
        """One guarded upsert (never backwards, only to a readable position) that
        returns what it wrote; when it wrote nothing, the stored position if it is at
        or past ``position``, else None (not readable)."""
        stream = position.stream
        row = self._c().execute(self._statements()["ack"], {
            "p": self.program_id, "c_name": name, "s": stream, "c_tx": position.tx,
            "c_seq": position.seq, "c_event": position.event, "c_at": at}).first()
        if row is not None:
            return stored_position(int(row.tx), int(row.seq), row.event, stream)
        stored = next((c.position for c in self.consumer_positions(name)
                       if c.position.stream == stream), None)
        return stored if stored is not None and position <= stored else None

    @translated
    def prune(self, before: Any, limit: int) -> int:
        """Per stream, one DELETE of up to ``limit`` events in all below every
        consumer's position there and the stream's last readable event, recorded
        before ``before``."""
        conn, p = self._c(), self.program_id
        acked = self.consumers()
        names = {a.name for a in acked}
        pruned = 0
        for stream in self.streams():
            last = self.last_position(stream)
            if last is None or pruned >= limit:
                continue
            bound = last
            if names:  # every consumer must have passed an event (in this stream)
                here = [a.position for a in acked if a.position.stream == stream]
                if len(here) < len(names):
                    continue
                bound = min(bound, *here)
            result = conn.execute(self._statements()["prune"].execution_options(
                preserve_rowcount=True), {
                    "p": p, "s": stream, "b_tx": bound.tx, "b_seq": bound.seq,
                    "b_id": bound.event, "l_tx": last.tx, "l_seq": last.seq,
                    "l_id": last.event, "before": before, "n": limit - pruned})
            pruned += int(result.rowcount)
        return pruned

    @translated
    def erase(self, member_id: str) -> None:
        """Empty ``attributes`` in the payloads of the member's events (one UPDATE)."""
        conn = self._c()
        conn.execute(_erase(conn.dialect.name), {"p": self.program_id, "m": member_id})

    @translated
    def write(self, changes: OutboxChanges) -> None:
        """Append the events in one executemany (positions drawn by the database in
        the order given)."""
        self._write(changes, as_stored)

    @translated
    def write_keyed(self, changes: OutboxChanges, keys: Mapping[str, str]) -> None:
        """:meth:`write` with each event's member looked up in ``keys`` (see
        :mod:`loyaltykit.storage.keyed_writes`)."""
        self._write(changes, keys.__getitem__)

    def _write(self, changes: OutboxChanges, key: Callable[[str], str]) -> None:
        conn = self._c()
        program_id = self.program_id
        postgres = conn.dialect.name == "postgresql"
        if postgres and len(changes.events) >= MANY_EVENTS:
            append_many(conn, program_id, [
                (e.id, e.type, e.version, key(e.member_id), e.occurred_at, e.recorded_at,
                 e.payload) for e in changes.events])
        elif not postgres:  # column by column: no dict per row
            events = changes.events
            n = len(events)
            execute_columns(conn, self._statements()["insert"], {
                "program_id": [program_id] * n, "k_p": [program_id] * n,
                "id": [e.id for e in events],
                "type": [e.type for e in events], "version": [e.version for e in events],
                "member_id": [key(e.member_id) for e in events],
                "occurred_at": [e.occurred_at for e in events],
                "recorded_at": [e.recorded_at for e in events],
                # a payload is a dict already (the events service builds them): encoded
                # as it is, not copied first
                "payload": [p if type(p) is dict else dict(p)
                            for p in (e.payload for e in events)]})
        else:
            rows = [{"program_id": program_id, "id": e.id, "type": e.type,
                     "version": e.version, "member_id": key(e.member_id),
                     "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
                     "payload": dict(e.payload)} for e in changes.events]
            # one executemany, row by row: the key trigger sees the rows before
            execute_many(conn, self._statements()["insert"], rows)
        if postgres and getattr(self._uow, "notify", False):
            # sent at commit, once per transaction and channel
            conn.execute(_NOTIFY, {"c": channel(program_id)})


class PostgreSQLWaiter:
    """Waits for a program's outbox notifications on a connection of its own
    (``LISTEN``, autocommit); see :meth:`loyaltykit.sql.SQLStorage.event_waiter`."""

    def __init__(self, engine: sa.Engine, program_id: str) -> None:
        self._conn: sa.Connection | None = None
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
            conn.exec_driver_sql(f'LISTEN "{channel(program_id)}"')
        except sa_exc.SQLAlchemyError as exc:
            self.close()
            raise storage_error(exc) from exc

    def wait(self, timeout: float) -> bool:
        """Block until a notification comes or ``timeout`` seconds pass; True if one
        came (every notification waiting is taken)."""
        if self._conn is None:
            raise StorageError("the waiter is closed")
        driver = self._conn.connection.driver_connection
        try:
            woken = False
            for _ in driver.notifies(timeout=timeout, stop_after=1):  # type: ignore[union-attr]
                woken = True
            return woken
        except TypeError:  # psycopg before 3.2 cannot wait with a timeout: poll
            time.sleep(timeout)
            return False
        except Exception as exc:  # the driver's own errors: a lost connection
            raise StorageError("waiting for events failed", error=type(exc).__name__,
                               detail=str(exc).splitlines()[0] if str(exc) else "") from exc

    def close(self) -> None:
        """Stop listening and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.exec_driver_sql("UNLISTEN *")
            conn.close()
        except sa_exc.SQLAlchemyError:
            conn.invalidate()
