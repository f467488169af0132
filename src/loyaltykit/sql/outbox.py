"""The outbox's store in SQL: events read in ``(tx, seq)`` order, consumers' positions.

On SQLite writers take turns (``BEGIN IMMEDIATE``), so ``seq`` (the rowid: one more
than the largest, never reused as pruning keeps each program's last event) grows in
commit order and ``tx`` is 0. On PostgreSQL the INSERT computes ``tx``, the event's
ordering key, from the writer's transaction id and the member's events already stored,
and a read returns only events whose key is below its own snapshot's horizon, in one
statement (one snapshot); :mod:`loyaltykit._outbox` proves that no event is ever
skipped and that each member's events keep their order.
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

__all__ = ["MANY_EVENTS", "PostgreSQLWaiter", "SQLOutboxStore", "append_many", "channel",
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
#: the ordering key of an event: at least the writer's own transaction id, and at least
#: the highest key of the member's events already stored (visible: the writer holds the
#: member's lock, so every earlier writer of the member has committed)
_KEY = sa.func.greatest(
    _as_bigint(sa.func.pg_current_xact_id()),
    sa.select(sa.func.coalesce(sa.func.max(o.tx), 0))
    .where(o.program_id == sa.bindparam("k_p"), o.member_id == sa.bindparam("k_m"))
    .scalar_subquery())

#: From this many events a PostgreSQL write appends them in one INSERT ... SELECT.
MANY_EVENTS = 4
_PG_APPEND = f"""WITH e AS (SELECT * FROM {unnest("e", [
            ("i", "uuid"), ("t", "text"), ("v", "int"), ("m", "text"), ("o", "timestamptz"),
            ("r", "timestamptz"), ("d", "json")], ordinality=True)}),
        k AS (SELECT d.m, (SELECT coalesce(max(x.tx), 0) FROM {outbox.name} x
                           WHERE x.program_id = CAST(%(p)s AS varchar)
                             AND x.member_id = d.m) AS tx
              FROM (SELECT DISTINCT e.m FROM e) d)
    INSERT INTO {outbox.name} (program_id, tx, id, type, version, member_id,
        occurred_at, recorded_at, payload)
    SELECT CAST(%(p)s AS varchar), greatest(CAST(CAST(pg_current_xact_id() AS text) AS bigint),
                                            coalesce(k.tx, 0)),
           e.i, e.t, e.v, e.m, e.o, e.r, e.d
    FROM e LEFT JOIN k ON k.m = e.m
    ORDER BY e.n"""

_after = sa.tuple_(o.tx, o.seq) > sa.tuple_(sa.bindparam("a_tx", type_=_BIG),
                                             sa.bindparam("a_seq", type_=_BIG))
_limit = sa.bindparam("n", type_=sa.Integer())


#: an event's columns as a read takes them: the payload as its JSON text, decoded here
_COLUMNS = (o.seq, o.tx, o.id, o.type, o.version, o.member_id, o.occurred_at,
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
    readable = [o.program_id == _p]
    if dialect == "postgresql":
        readable.append(o.tx < _HORIZON)
    last = (sa.select(o.tx, o.seq).where(*readable).order_by(o.tx.desc(), o.seq.desc())
            .limit(1))
    # upsert the consumer's position, never backwards (concurrent acks keep the
    # highest), and only to a readable one (some readable event is at or past it), in
    # one statement that returns the position it wrote (a consumer acknowledges after
    # every read: four round trips were a tenth of reading under load)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    position = sa.tuple_(sa.bindparam("c_tx", type_=_BIG), sa.bindparam("c_seq", type_=_BIG))
    readable_at = sa.select(sa.literal(1)).where(
        *readable, sa.tuple_(o.tx, o.seq) >= position).exists()
    ack = insert(outbox_consumers).from_select(
        ["program_id", "name", "tx", "seq", "acked_at"],
        sa.select(_p, sa.bindparam("c_name", type_=c.name.type),
                  sa.bindparam("c_tx", type_=_BIG), sa.bindparam("c_seq", type_=_BIG),
                  sa.bindparam("c_at", type_=_TS_TYPE)).where(readable_at))
    upsert = ack.on_conflict_do_update(
        index_elements=["program_id", "name"],
        set_={"tx": ack.excluded.tx, "seq": ack.excluded.seq,
              "acked_at": ack.excluded.acked_at},
        where=sa.tuple_(c.tx, c.seq) < sa.tuple_(ack.excluded.tx, ack.excluded.seq)
    ).returning(c.tx, c.seq)
    below = sa.tuple_(o.tx, o.seq) <= sa.tuple_(sa.bindparam("b_tx", type_=_BIG),
                                                 sa.bindparam("b_seq", type_=_BIG))
    prunable = (sa.select(o.seq)
                .where(o.program_id == _p, below,
                       o.recorded_at < sa.bindparam("before", type_=_TS_TYPE))
                .order_by(o.tx, o.seq).limit(_limit))
    return {
        "read": sa.select(*_COLUMNS).where(*readable, _after).order_by(o.tx, o.seq)
        .limit(_limit),
        "first": sa.select(*_COLUMNS).where(*readable).order_by(o.tx, o.seq).limit(_limit),
        "last": last,
        "ack": upsert,
        "prune": outbox.delete().where(o.seq.in_(prunable)),
        # inline: the database draws seq and nothing is fetched back (no RETURNING)
        "insert": (outbox.insert().values(tx=_KEY).inline() if dialect == "postgresql"
                   else outbox.insert().inline()),
    }


_STATEMENTS = {"postgresql": _reads("postgresql"), "sqlite": _reads("sqlite")}


def insert_statement(dialect: str) -> sa.Executable:
    """The INSERT the store appends events with on ``dialect`` (for benchmarks that
    mirror it): on PostgreSQL each row also names its program and member as ``k_p``
    and ``k_m``, and ``tx`` is computed; on SQLite ``tx`` is given (0)."""
    return _STATEMENTS["postgresql" if dialect == "postgresql" else "sqlite"]["insert"]


def append_many(conn: sa.Connection, program_id: str,
                events: list[tuple[Any, str, int, str, Any, Any, Any]]) -> None:
    """Append (id, type, version, member_id, occurred_at, recorded_at, payload) events
    on PostgreSQL in one INSERT ... SELECT (what the store does from :data:`MANY_EVENTS`
    events; an executemany there is a statement per row), in order: ``seq`` follows
    it, and each row's key is computed as the single-row INSERT computes it (rows of
    one statement see no other, but the writer's transaction id is the key of any
    event of the member it wrote before them); a member's highest stored key is read
    once per statement, not once per event (due work writes a few events per member).
    Exported for benchmarks that mirror the store."""
    columns: list[Sequence[Any]] = list(zip(*events, strict=True))
    columns[6] = [dict(d) for d in columns[6]]  # orjson writes dicts, not every mapping
    conn.exec_driver_sql(_PG_APPEND, {"p": program_id, **column_params(
        "itvmord", columns, documents="d")})


_SEL_CONSUMER: sa.Executable = sa.select(c.tx, c.seq).where(
    c.program_id == _p, c.name == sa.bindparam("c_name"))
_SEL_CONSUMERS: sa.Executable = sa.select(c.name, c.tx, c.seq, c.acked_at).where(
    c.program_id == _p).order_by(c.name)
_SEL_LOWEST: sa.Executable = (sa.select(c.tx, c.seq).where(c.program_id == _p)
                              .order_by(c.tx, c.seq).limit(1))
_SEL_MEMBER_EVENTS: sa.Executable = sa.select(*_COLUMNS).where(
    o.program_id == _p, o.member_id == sa.bindparam("m")).order_by(o.tx, o.seq)
_NOTIFY: sa.Executable = sa.select(sa.func.pg_notify(sa.bindparam("c"), ""))


@functools.cache
def _erase(dialect: str) -> sa.Executable:
    """One UPDATE emptying ``attributes`` in the payloads of a member's events."""
    return outbox.update().where(o.program_id == _p, o.member_id == sa.bindparam("m")).values(
        payload=replaced(o.payload, dialect, [(("attributes",), EMPTY_OBJECT)]))


def _event(row: Any) -> OutboxEvent:
    seq, tx, id_, type_, version, member_id, occurred_at, recorded_at, payload = row
    return OutboxEvent(id_, type_, version, member_id, occurred_at, recorded_at,
                       _load(payload), stored_position(tx, seq))


class SQLOutboxStore(Store):
    """The outbox of one program."""

    def _statements(self) -> dict[str, sa.Executable]:
        return _STATEMENTS["postgresql" if self._c().dialect.name == "postgresql"
                           else "sqlite"]

    @translated
    def read(self, after: EventPosition | None, limit: int) -> list[OutboxEvent]:
        """Up to ``limit`` safe events after ``after``, in position order (one
        statement: one snapshot)."""
        s = self._statements()
        params: dict[str, Any] = {"p": self.program_id, "n": limit}
        if after is None:
            rows = self._c().execute(s["first"], params).all()
        else:
            rows = self._c().execute(s["read"], {**params, "a_tx": after.tx,
                                                 "a_seq": after.seq}).all()
        return [_event(row) for row in rows]

    @translated
    def member_events(self, member_id: str) -> list[OutboxEvent]:
        """The member's events, by position (readable yet or not)."""
        rows = self._c().execute(_SEL_MEMBER_EVENTS, {"p": self.program_id, "m": member_id})
        return [_event(row) for row in rows]

    @translated
    def last_position(self) -> EventPosition | None:
        """The position of the last event a read could return now."""
        row = self._c().execute(self._statements()["last"], {"p": self.program_id}).first()
        return None if row is None else EventPosition(int(row.tx), int(row.seq))

    @translated
    def consumer_position(self, name: str) -> EventPosition | None:
        """The position consumer ``name`` acknowledged last, or None."""
        row = self._c().execute(_SEL_CONSUMER, {"p": self.program_id, "c_name": name}).first()
        return None if row is None else EventPosition(int(row.tx), int(row.seq))

    @translated
    def consumers(self) -> list[EventConsumer]:
        """Every consumer of the program, by name."""
        rows = self._c().execute(_SEL_CONSUMERS, {"p": self.program_id})
        return [EventConsumer(row.name, EventPosition(int(row.tx), int(row.seq)), row.acked_at)
                for row in rows]

    @translated
    def set_consumer_position(self, name: str, position: EventPosition,
                              at: Any) -> EventPosition | None:
        """One guarded upsert (never backwards, only to a readable position) that
        returns what it wrote; when it wrote nothing, the stored position if it is at
        or past ``position``, else None (not readable)."""
        row = self._c().execute(self._statements()["ack"], {
            "p": self.program_id, "c_name": name, "c_tx": position.tx,
            "c_seq": position.seq, "c_at": at}).first()
        if row is not None:
            return EventPosition(int(row.tx), int(row.seq))
        stored = self.consumer_position(name)
        return stored if stored is not None and position <= stored else None

    @translated
    def prune(self, before: Any, limit: int) -> int:
        """One DELETE of up to ``limit`` events below every consumer's position and the
        last readable event, recorded before ``before``."""
        conn = self._c()
        last = self.last_position()
        if last is None or last.seq == 0:
            return 0
        bound = EventPosition(last.tx, last.seq - 1)  # the last readable event stays
        lowest = conn.execute(_SEL_LOWEST, {"p": self.program_id}).first()
        if lowest is not None:
            bound = min(bound, EventPosition(int(lowest.tx), int(lowest.seq)))
        result = conn.execute(self._statements()["prune"].execution_options(
            preserve_rowcount=True), {"p": self.program_id, "b_tx": bound.tx,
                                      "b_seq": bound.seq, "before": before, "n": limit})
        return int(result.rowcount)

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
                "program_id": [program_id] * n, "tx": [0] * n, "id": [e.id for e in events],
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
                     "version": e.version, "member_id": member,
                     "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
                     "payload": dict(e.payload), "k_p": program_id, "k_m": member}
                    for e in changes.events for member in (key(e.member_id),)]
            # one executemany: rows of one statement may not see each other, but two
            # events of one member in it get the same key (their writer's), and seq
            # keeps their order
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
