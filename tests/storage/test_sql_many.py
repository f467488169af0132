"""The SQL backend's executemany without per-row parameter building
(``loyaltykit.sql._many``) stores exactly what ``Connection.execute`` stores."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from loyaltykit.sql._many import execute_columns, execute_many, execute_rows
from loyaltykit.sql.schema import Document, UTCDateTime


def _tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    meta = sa.MetaData()

    def table(name: str) -> sa.Table:
        return sa.Table(
            name, meta,
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("at", UTCDateTime()),
            sa.Column("doc", Document()),
            sa.Column("flag", sa.Boolean()),
            sa.Column("n", sa.BigInteger()),
            sa.Column("s", sa.String(20)),
            sa.Column("fixed", sa.String(20)),
        )

    return meta, table("by_execute"), table("by_many")


def _rows(count: int) -> list[dict[str, Any]]:
    berlin = dt.timezone(dt.timedelta(hours=1))
    return [{"id": uuid.UUID(int=i + 1),
             "at": None if i % 3 == 0 else dt.datetime(2026, 1, 1, i % 24, tzinfo=berlin),
             "doc": {"lot_id": str(uuid.UUID(int=i)), "points": i, "nested": [i, None]},
             "flag": i % 2 == 0, "n": -i, "s": f"row {i}"}
            for i in range(count)]


def _stored(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    # what the driver stored, read without SQLAlchemy's result processing
    return [tuple(r) for r in conn.exec_driver_sql(
        f"SELECT id, at, doc, flag, n, s, fixed FROM {table.name} ORDER BY id")]


@pytest.mark.parametrize("count", [1, 5, 40])
def test_insert_and_update_store_what_execute_stores(count: int) -> None:
    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        meta.create_all(conn)
        def by_execute(stmt: Any, rows: list[dict[str, Any]]) -> Any:
            return conn.execute(stmt, rows)

        def by_many(stmt: Any, rows: list[dict[str, Any]]) -> Any:
            return execute_many(conn, stmt, rows)

        for table, run in ((plain, by_execute), (fast, by_many)):
            # a constant bound in the statement itself is written too
            run(table.insert().values(fixed=sa.bindparam("fixed_value", "const")),
                _rows(count))
            changed = [{"k_id": r["id"], "at": dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
                        "doc": {"changed": r["n"]}, "flag": None}
                       for r in _rows(count)[::2]]
            result = run(table.update().where(table.c.id == sa.bindparam("k_id")), changed)
            assert len(changed) == result.rowcount
        assert _stored(conn, plain) == _stored(conn, fast)
        assert count == len(_stored(conn, fast))


def test_rows_with_other_keys_are_refused_as_execute_refuses_them() -> None:
    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    rows = _rows(6)
    del rows[3]["s"]
    with engine.begin() as conn:
        meta.create_all(conn)
        with pytest.raises(sa.exc.StatementError) as by_execute:
            conn.execute(plain.insert(), rows)
        with pytest.raises(sa.exc.StatementError) as by_many:
            execute_many(conn, fast.insert(), rows)
    assert type(by_execute.value) is type(by_many.value)


def test_upserts_store_what_execute_stores() -> None:
    """The tier buckets' and rule usage's upserts (ON CONFLICT ... DO UPDATE, the
    stores write them through execute_many) add up and overwrite as execute does."""
    from loyaltykit.sql._shared import upserts_for
    from loyaltykit.sql.schema import metadata

    engine = sa.create_engine("sqlite://")
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        metadata.create_all(conn)
        upserts = upserts_for(conn)
        for program_id, run in (("plain", conn.execute),
                                ("fast", lambda stmt, rows: execute_many(conn, stmt, rows))):
            for value in (3, 4):  # the second adds to the first
                run(upserts.bucket, [{"program_id": program_id, "member_id": f"m{i}",
                                      "period_start": at + dt.timedelta(days=i),
                                      "value": value * i} for i in range(6)])
        stored = {p: [tuple(r)[1:] for r in conn.exec_driver_sql(
            "SELECT program_id, member_id, period_start, value FROM lk_tier_buckets "
            f"WHERE program_id = '{p}' ORDER BY member_id")] for p in ("plain", "fast")}
    assert [7 * i for i in range(6)] == [row[2] for row in stored["fast"]]
    assert stored["plain"] == stored["fast"]


@pytest.mark.parametrize("count", [1, 3])
def test_a_few_rows_skip_the_compiled_statements_path(
        count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # an everyday write's one-row INSERTs and UPDATEs reach the driver as the compiled
    # SQL text (exec_driver_sql), not through execute's per-statement compilation
    meta, _, fast = _tables()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        meta.create_all(conn)

        def refused(*args: object, **kwargs: object) -> None:
            raise AssertionError("Connection.execute called")

        monkeypatch.setattr(sa.Connection, "execute", refused)
        execute_many(conn, fast.insert(), _rows(count))
        changed = [{"k_id": r["id"], "n": 7} for r in _rows(count)]
        result = execute_many(conn, fast.update().where(fast.c.id == sa.bindparam("k_id")),
                              changed)
        assert count == result.rowcount
        monkeypatch.undo()
        assert count == len(_stored(conn, fast))


def _instant_rows(count: int) -> list[dict[str, Any]]:
    # a batch's instants repeat, as the same instant in several zones too (converted
    # once per distinct value: equal instants store the same UTC text)
    zones = [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-5))]
    base = dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC)
    return [{**row, "at": None if i % 7 == 0 else (base + dt.timedelta(hours=i % 3))
             .astimezone(zones[i % len(zones)])}
            for i, row in enumerate(_rows(count))]


@pytest.mark.parametrize("count", [1, 5, 40])
def test_rows_given_by_column_store_what_execute_stores(count: int) -> None:
    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    rows = _instant_rows(count)
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(plain.insert(), rows)
        execute_columns(conn, fast.insert(), {key: [r[key] for r in rows] for key in rows[0]})
        changed = rows[::2]
        update = {"k_id": [r["id"] for r in changed], "at": [r["at"] for r in changed[::-1]]}
        conn.execute(plain.update().where(plain.c.id == sa.bindparam("k_id")),
                     [{"k_id": i, "at": at} for i, at in zip(*update.values(), strict=True)])
        result = execute_columns(conn, fast.update().where(fast.c.id == sa.bindparam("k_id")),
                                 update)
        assert len(changed) == result.rowcount
        assert _stored(conn, plain) == _stored(conn, fast)
        assert count == len(_stored(conn, fast))


@pytest.mark.parametrize("count", [1, 3, 5, 40])
def test_rows_given_as_tuples_store_what_execute_stores(count: int) -> None:
    """execute_rows: a few rows through the plan's positional converter, many turned
    into columns; either way what Connection.execute stores."""
    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    rows = _instant_rows(count)
    keys = tuple(rows[0])[::-1]  # the tuples' order need not be the table's
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(plain.insert(), rows)
        execute_rows(conn, fast.insert(), keys, [tuple(r[k] for k in keys) for r in rows])
        changed = rows[::2]
        update = [(at, r["id"]) for r, at in zip(changed, [r["at"] for r in changed[::-1]],
                                                 strict=True)]
        conn.execute(plain.update().where(plain.c.id == sa.bindparam("k_id")),
                     [{"k_id": i, "at": at} for at, i in update])
        result = execute_rows(conn, fast.update().where(fast.c.id == sa.bindparam("k_id")),
                              ("at", "k_id"), update)
        assert len(changed) == result.rowcount
        assert _stored(conn, plain) == _stored(conn, fast)
        assert count == len(_stored(conn, fast))


def test_rows_of_another_width_are_refused() -> None:
    meta, _, fast = _tables()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        meta.create_all(conn)
        with pytest.raises(ValueError, match="rows of other than 2 values"):
            execute_rows(conn, fast.insert(), ("id", "n"), [(uuid.UUID(int=1),)])
        assert _stored(conn, fast) == []


def test_many_rows_of_another_width_are_refused() -> None:
    """Many rows are turned into columns by strict zips, which refuse a short row or a
    long one as the few rows' check does (nothing written)."""
    meta, _, fast = _tables()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        meta.create_all(conn)
        rows: list[tuple[Any, ...]] = [(uuid.UUID(int=i + 1), i) for i in range(6)]
        for bad in ((uuid.UUID(int=9),), (uuid.UUID(int=9), 9, 9)):
            with pytest.raises(ValueError):
                execute_rows(conn, fast.insert(), ("id", "n"), [*rows[:3], bad, *rows[3:]])
            with pytest.raises(ValueError):
                execute_rows(conn, fast.insert(), ("id", "n"), [bad] * 6)
        assert _stored(conn, fast) == []


@pytest.mark.parametrize("count", [1, 40])
def test_ids_and_empty_documents_are_written_without_a_call_per_value(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UUID column is bound as its hex digits without the ``UUID.hex`` property (a
    call a value, twice with the type's processor), an empty document without the
    JSON encoder; the rows stored are those Connection.execute stores."""
    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    empties: list[Any] = [{}, [], None]
    rows = [{"id": uuid.UUID(int=(i + 1) * 7919), "doc": empties[i % 3]}
            for i in range(count)]
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(plain.insert(), rows)
        hexes: list[uuid.UUID] = []
        dumps: list[Any] = []
        real_hex = uuid.UUID.hex
        real_dumps = orjson.dumps

        def counted_hex(self: uuid.UUID) -> str:
            hexes.append(self)
            return real_hex.__get__(self)  # type: ignore[attr-defined, no-any-return]

        def counted_dumps(value: Any, *args: Any, **kwargs: Any) -> bytes:
            dumps.append(value)
            return real_dumps(value, *args, **kwargs)

        monkeypatch.setattr(uuid.UUID, "hex", property(counted_hex))
        monkeypatch.setattr(orjson, "dumps", counted_dumps)
        execute_rows(conn, fast.insert(), ("id", "doc"),
                     [(r["id"], r["doc"]) for r in rows])
        inserted = _stored(conn, fast)
        execute_rows(conn, fast.update().where(fast.c.id == sa.bindparam("k_id")),
                     ("doc", "k_id"), [({"k": 1}, r["id"]) for r in rows])
        monkeypatch.undo()
        assert _stored(conn, plain) == inserted  # "{}", "[]" and "null" as the encoder's
        conn.execute(plain.update().where(plain.c.id == sa.bindparam("k_id")),
                     [{"doc": {"k": 1}, "k_id": r["id"]} for r in rows])
        assert hexes == []
        assert dumps == [{"k": 1}] * count  # only the documents that are not empty
        assert _stored(conn, plain) == _stored(conn, fast)


def test_a_naive_instant_among_equal_aware_ones_is_refused() -> None:
    meta, _, fast = _tables()
    engine = sa.create_engine("sqlite://")
    rows = _instant_rows(10)
    rows[5]["at"] = rows[4]["at"].astimezone(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        meta.create_all(conn)
        # raised by the column's own conversion, as execute_many always did
        with pytest.raises(ValueError, match="naive datetime"):
            execute_many(conn, fast.insert(), rows)
        with pytest.raises(ValueError, match="naive datetime"):
            execute_columns(conn, fast.insert(), {k: [r[k] for r in rows] for k in rows[0]})
        assert _stored(conn, fast) == []


def test_columns_of_different_lengths_are_refused() -> None:
    meta, _, fast = _tables()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        meta.create_all(conn)
        with pytest.raises(ValueError, match="different lengths"):
            execute_columns(conn, fast.insert(), {"id": [uuid.UUID(int=1)], "n": [1, 2]})


# -- PostgreSQL: many rows as one statement over a JSON document (sql/_many_pg.py) ---------

def _pg_tables(meta: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    def table(name: str) -> sa.Table:
        return sa.Table(
            name, meta,
            sa.Column("seq", sa.BigInteger(), sa.Identity(), primary_key=True),
            sa.Column("id", sa.Uuid(), nullable=False, unique=True),
            sa.Column("at", UTCDateTime()),
            sa.Column("doc", Document()),
            sa.Column("flag", sa.Boolean()),
            sa.Column("n", sa.BigInteger()),
            sa.Column("small", sa.SmallInteger()),
            sa.Column("day", sa.Date()),
            sa.Column("s", sa.String(20)),
            sa.Column("fixed", sa.String(20)),
        )

    return table("pg_by_execute"), table("pg_by_many")


def _pg_rows(count: int) -> list[dict[str, Any]]:
    berlin = dt.timezone(dt.timedelta(hours=1))
    # ids out of order: the serial column numbers the rows in the order given
    return [{"id": uuid.UUID(int=(i * 7919) % 1000 + 1),
             "at": None if i % 3 == 0 else dt.datetime(2026, 1, 1, i % 24, 0, i,
                                                        123 * i, tzinfo=berlin),
             "doc": None if i % 4 == 1 else {"lot_id": str(uuid.UUID(int=i)), "points": i,
                                               "nested": [i, None, "é\"'%s"]},
             "flag": None if i % 5 == 0 else i % 2 == 0, "n": -i * 10**12,
             "small": i, "day": dt.date(2026, 1, 1 + i % 28), "s": f"row {i} %(x)s"}
            for i in range(count)]


def _pg_stored(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    # the documents as stored: JSON null is not SQL NULL
    return [tuple(r) for r in conn.exec_driver_sql(
        f"SELECT seq, id, at, doc::text IS NULL, doc, flag, n, small, day, s, fixed "
        f"FROM {table.name} ORDER BY seq")]


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    """An engine on an empty PostgreSQL database (these tests are PostgreSQL's)."""
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as url:
        made = sa.create_engine(url)
        yield made
        made.dispose()


def _insert_fixed(table: sa.Table) -> Any:
    """An INSERT with a constant bound in the statement (written with each row)."""
    return table.insert().values(fixed=sa.bindparam("fixed_value", "const"))


def _update_small(table: sa.Table) -> Any:
    """An UPDATE by id with a bound in an expression of the row's value."""
    return table.update().where(table.c.id == sa.bindparam("k_id")).values(
        small=table.c.small + 1)


def _pg_created(engine: sa.Engine) -> tuple[sa.Table, sa.Table]:
    """The plain and the fast table of :func:`_pg_tables`, created on ``engine``."""
    meta = sa.MetaData()
    plain, fast = _pg_tables(meta)
    meta.create_all(engine)
    return plain, fast


def _no_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("Connection.execute called")

    monkeypatch.setattr(sa.Connection, "execute", refused)


@pytest.mark.parametrize("count", [4, 40])
def test_postgresql_writes_many_rows_in_one_statement_as_execute_writes_them(
        pg_engine: sa.Engine, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = pg_engine
    plain, fast = _pg_created(engine)
    rows = _pg_rows(count)
    changed = [{"k_id": r["id"], "at": dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
                "doc": None if i % 2 else {"changed": r["n"]}, "flag": None,
                "s": "changed"} for i, r in enumerate(rows) if i % 5 != 4]
    with engine.begin() as conn:
        conn.execute(_insert_fixed(plain), rows)
        result = conn.execute(_update_small(plain), changed)
        assert len(changed) == result.rowcount
        _no_execute(monkeypatch)  # many rows: one statement, through the driver
        execute_many(conn, _insert_fixed(fast), rows)
        result = execute_many(conn, _update_small(fast), changed)
        assert len(changed) == result.rowcount
        monkeypatch.undo()
        assert _pg_stored(conn, plain) == _pg_stored(conn, fast)
        assert count == len(_pg_stored(conn, fast))


@pytest.mark.parametrize("count", [1, 3])
def test_postgresql_a_few_rows_reach_the_driver_as_execute_writes_them(
        pg_engine: sa.Engine, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # an everyday write's one-row INSERTs and UPDATEs (an earn's seven, its
    # transaction id's claim among them) skip execute's work per statement on
    # PostgreSQL too: compiled once with positional parameters, rows as tuples
    engine = pg_engine
    plain, fast = _pg_created(engine)
    rows = _pg_rows(count)
    changed = [{"k_id": r["id"], "doc": {"changed": r["n"]}, "s": "%(s)s %s"} for r in rows]

    keys = tuple(rows[0])
    with engine.begin() as conn:
        conn.execute(_insert_fixed(plain), rows)
        conn.execute(_update_small(plain), changed)
        _no_execute(monkeypatch)
        execute_rows(conn, _insert_fixed(fast), keys, [tuple(r.values()) for r in rows])
        result = execute_many(conn, _update_small(fast), changed)
        assert count == result.rowcount
        monkeypatch.undo()
        assert _pg_stored(conn, plain) == _pg_stored(conn, fast)
        assert count == len(_pg_stored(conn, fast))
    for rows, error in (([{**_pg_rows(1)[0], "s": "x" * 21}], sa.exc.DataError),
                        ([_pg_rows(1)[0]] * 2, sa.exc.IntegrityError)):
        with engine.connect() as conn, pytest.raises(error):
            execute_many(conn, _insert_fixed(fast), rows)


def test_postgresql_many_rows_are_refused_as_execute_refuses_them(
        pg_engine: sa.Engine) -> None:
    engine = pg_engine
    plain, fast = _pg_created(engine)
    for table in (plain, fast):
        too_long = _pg_rows(5)
        too_long[2]["s"] = "x" * 21  # a varchar(20): refused, not cut
        naive = _pg_rows(5)
        naive[3]["at"] = dt.datetime(2026, 1, 1)
        twice = _pg_rows(5)
        twice[4]["id"] = twice[0]["id"]
        for rows, error in ((too_long, sa.exc.DataError), (naive, sa.exc.StatementError),
                            (twice, sa.exc.IntegrityError)):
            with engine.connect() as conn, pytest.raises(error):
                execute_many(conn, table.insert(), rows) if table is fast \
                    else conn.execute(table.insert(), rows)
    with engine.connect() as conn:
        assert [] == _pg_stored(conn, fast)


def test_postgresql_update_rows_repeating_a_key_keep_the_last(pg_engine: sa.Engine) -> None:
    # one statement would update the row once: those rows run one by one, as before
    engine = pg_engine
    meta = sa.MetaData()
    _, fast = _pg_tables(meta)
    meta.create_all(engine)
    rows = _pg_rows(4)
    with engine.begin() as conn:
        execute_many(conn, fast.insert(), rows)
        changed = [{"k_id": rows[0]["id"], "n": n} for n in (1, 2, 3, 4)]
        result = execute_many(conn, fast.update().where(fast.c.id == sa.bindparam("k_id")),
                              changed)
        assert 4 == result.rowcount
        assert 4 == conn.scalar(sa.select(fast.c.n).where(fast.c.id == rows[0]["id"]))


def test_postgresql_upserts_of_many_rows_store_what_execute_stores(
        pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tier buckets' upsert (ON CONFLICT ... DO UPDATE) adds up as execute does in
    one statement; rows repeating a key of the conflict run one by one, as before."""
    from loyaltykit.sql import SQLStorage
    from loyaltykit.sql._shared import upserts_for

    engine = pg_engine
    SQLStorage(engine).create_schema()
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def rows(program_id: str, value: int) -> list[dict[str, Any]]:
        return [{"program_id": program_id, "member_id": f"m{i}",
                 "period_start": at + dt.timedelta(days=i), "value": value * i}
                for i in range(6)]

    from loyaltykit.sql.schema import members, programs

    with engine.begin() as conn:  # the buckets' programs and members (foreign keys)
        names = ("plain", "fast", "twice")
        conn.execute(programs.insert(), [{"id": p, "definition": {}, "created_at": at}
                                         for p in names])
        conn.execute(members.insert(), [
            {"program_id": p, "member_id": f"m{i}", "enrolled_at": at, "attributes": {}}
            for p in names for i in range(6)])
        bucket = upserts_for(conn).bucket
        for value in (3, 4):  # the second adds to the first
            conn.execute(bucket, rows("plain", value))
        twice = rows("twice", 3) + rows("twice", 4)  # each key twice in one call
        _no_execute(monkeypatch)
        for value in (3, 4):
            execute_many(conn, bucket, rows("fast", value))
        monkeypatch.undo()
        execute_many(conn, bucket, twice)
        stored = {p: [tuple(r)[1:] for r in conn.exec_driver_sql(
            "SELECT program_id, member_id, period_start, value FROM lk_tier_buckets "
            f"WHERE program_id = '{p}' ORDER BY member_id")]
            for p in names}
    assert [7 * i for i in range(6)] == [row[2] for row in stored["fast"]]
    assert stored["plain"] == stored["fast"] == stored["twice"]


@pytest.mark.parametrize("count", [1, 3])
def test_a_few_rows_given_by_column_go_straight_to_the_driver(
        count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # an everyday write's one outbox event: converted by its plan's row converter, not
    # turned into dicts for execute_many and planned a second time
    from loyaltykit.sql import _many

    meta, plain, fast = _tables()
    engine = sa.create_engine("sqlite://")
    rows = _instant_rows(count)
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(plain.insert(), rows)

        def refused(*args: object, **kwargs: object) -> None:
            raise AssertionError("execute_many called")

        monkeypatch.setattr(_many, "execute_many", refused)
        execute_columns(conn, fast.insert(), {key: [r[key] for r in rows] for key in rows[0]})
        monkeypatch.undo()
        assert _stored(conn, plain) == _stored(conn, fast)


def test_a_row_converter_takes_any_key_as_a_literal() -> None:
    # the converter is written out as source: a key is quoted, never run as code
    meta = sa.MetaData()
    odd = "it's \"odd\"\\n"
    by_execute = sa.Table("plain", meta, sa.Column("id", sa.Integer, primary_key=True),
                          sa.Column(odd, UTCDateTime()))
    by_many = sa.Table("fast", meta, sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column(odd, UTCDateTime()))
    engine = sa.create_engine("sqlite://")
    at = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(by_execute.insert(), [{"id": 1, odd: at}])
        execute_many(conn, by_many.insert(), [{"id": 1, odd: at}])
        read = [list(conn.exec_driver_sql(f"SELECT * FROM {t}")) for t in ("plain", "fast")]
        assert read[0] == read[1]
