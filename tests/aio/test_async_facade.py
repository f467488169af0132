"""loyaltykit.aio: the async facade on SQLAlchemy's asyncio engines (aiosqlite and psycopg
async), its calls, its backoff on the event loop, joining the caller's AsyncConnection."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import POSTGRESQL
from loyaltykit import (
    InsufficientPoints,
    InvalidInput,
    Loyalty,
    MemberNotFound,
    Money,
    Program,
    RetryLimitExceeded,
    SerializationFailure,
    TestClock,
)
from loyaltykit.aio import AsyncLoyalty, create_async_engine
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.sql.uow import SQLUnitOfWork

PROGRAM = Program(id="aio", time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(sync URL, async URL) of an empty database with loyaltykit's schema."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            sync_url = stack.enter_context(POSTGRESQL.empty_database())
            async_url = sa.make_url(sync_url).set(drivername="postgresql+psycopg_async")
        else:
            sync_url = f"sqlite:///{tmp_path / 'aio.sqlite'}"
            async_url = sa.make_url(f"sqlite+aiosqlite:///{tmp_path / 'aio.sqlite'}")
        engine = create_engine(sync_url)
        SQLStorage(engine).create_schema()
        engine.dispose()
        yield sync_url, async_url.render_as_string(hide_password=False)


def run(urls: tuple[str, str], body: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``body`` with an async engine on ``urls``, on a fresh event loop."""
    async def main() -> T:
        engine = create_async_engine(urls[1])
        try:
            return await body(engine)
        finally:
            await engine.dispose()
    return asyncio.run(main())


def balance_seen_by_sync(urls: tuple[str, str], member_id: str) -> int | None:
    engine = create_engine(urls[0])
    try:
        try:
            return Loyalty(PROGRAM, SQLStorage(engine), clock=TestClock(NOW)).balance(
                member_id).available
        except MemberNotFound:
            return None
    finally:
        engine.dispose()


def test_calls_on_an_engine_commit_and_read(urls: tuple[str, str]) -> None:
    async def body(engine: AsyncEngine) -> None:
        shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await shop.enrol("alice")
        result = await shop.earn("alice", 100, key="order-1")
        assert 100 == result.balance.available
        # the same key and request: the original result, nothing written
        assert result == await shop.earn("alice", 100, key="order-1")
        await shop.spend("alice", 30, key="spend-1")
        assert 70 == (await shop.balance("alice")).available
        assert [100, -30] == sorted([e.points for e in await shop.run(
            lambda loyalty: list(loyalty.statement("alice").lines))], reverse=True)
        # a typed error, nothing written
        with pytest.raises(InsufficientPoints):
            await shop.spend("alice", 1000, key="spend-2")
        # the outbox through events.read/ack
        events = await shop.events.read("mailer")
        assert ["member.enrolled", "points.earned", "points.spent"] == [
            e.type for e in events]
        position = await shop.events.ack("mailer", events[-1])
        assert position == events[-1].position
        assert [] == await shop.events.read("mailer")
    run(urls, body)
    assert 70 == balance_seen_by_sync(urls, "alice")  # committed


def test_concurrent_calls_on_one_loop(urls: tuple[str, str]) -> None:
    """Many calls at once on one event loop: every earn is written once."""
    async def body(engine: AsyncEngine) -> int:
        shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await shop.register()
        await shop.enrol("alice")
        await asyncio.gather(*(shop.earn("alice", 1, key=f"k{i}") for i in range(20)))
        return (await shop.balance("alice")).available
    assert 20 == run(urls, body)


def test_a_conflicting_write_is_retried_with_asyncio_sleep(
        urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's backoff never sleeps the loop's thread: the call waits with
    asyncio.sleep and runs again (on main, the pipeline called time.sleep here)."""
    def no_thread_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep on the event loop")
    monkeypatch.setattr(time, "sleep", no_thread_sleep)
    conflicts = [2]  # the next two commits of a write fail as a concurrent one would
    commit = SQLUnitOfWork.commit

    def conflicting_commit(self: SQLUnitOfWork) -> None:
        if conflicts[0] and not self.read_only:
            conflicts[0] -= 1
            raise SerializationFailure("injected conflict")
        commit(self)
    slept: list[float] = []
    sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any) -> Any:
        slept.append(delay)
        return await sleep(delay, *args)

    async def body(engine: AsyncEngine) -> int:
        shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await shop.register()
        await shop.enrol("alice")
        monkeypatch.setattr(SQLUnitOfWork, "commit", conflicting_commit)
        monkeypatch.setattr(asyncio, "sleep", recording_sleep)
        result = await shop.earn("alice", 5, key="k")
        monkeypatch.undo()
        assert 0 == conflicts[0]
        assert 2 == len(slept)
        assert 5 == result.balance.available
        return (await shop.balance("alice")).available
    assert 5 == run(urls, body)  # written once


def test_retries_are_bounded(urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def always_conflicting(self: SQLUnitOfWork) -> None:
        raise SerializationFailure("injected conflict")

    async def body(engine: AsyncEngine) -> None:
        shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW), max_retries=2)
        await shop.register()
        await shop.enrol("alice")
        monkeypatch.setattr(SQLUnitOfWork, "commit", always_conflicting)
        with pytest.raises(RetryLimitExceeded):
            await shop.earn("alice", 5, key="k")
    run(urls, body)


HOST = sa.MetaData()
ORDERS = sa.Table("shop_orders", HOST, sa.Column("id", sa.String(20), primary_key=True))


async def _host_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(HOST.create_all)


async def _orders(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(ORDERS.c.id))).scalars())


def test_joining_the_callers_connection_commits_and_rolls_back(urls: tuple[str, str]) -> None:
    async def body(engine: AsyncEngine) -> tuple[list[str], int | None]:
        await _host_tables(engine)
        app = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await app.register()
        # a request that commits: the shop's row and the points together
        async with engine.connect() as conn:
            shop = app.bind(conn)
            await conn.execute(ORDERS.insert().values(id="o1"))
            await shop.enrol("alice")
            await shop.earn("alice", 10, key="o1")
            assert 10 == (await shop.balance("alice")).available  # sees its own write
            await conn.commit()
        # a request that fails after its write: both roll back
        async with engine.connect() as conn:
            shop = app.bind(conn)
            await conn.execute(ORDERS.insert().values(id="o2"))
            await shop.earn("alice", 99, key="o2")
            await conn.rollback()
        # a connection given to the constructor joins it as well
        async with engine.connect() as conn:
            shop = AsyncLoyalty(PROGRAM, conn, clock=TestClock(NOW))
            await conn.execute(ORDERS.insert().values(id="o3"))
            await shop.earn("alice", 1, key="o3")
            await conn.rollback()
        return await _orders(engine), (await app.balance("alice")).available
    orders, balance = run(urls, body)
    assert (["o1"], 10) == (orders, balance)
    assert 10 == balance_seen_by_sync(urls, "alice")


def test_a_bound_facade_wires_its_sync_facade_once(urls: tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls of a facade bound to a request's connection reuse one sync facade:
    the wiring is built by its first call, not by every call."""
    binds: list[object] = []
    real = Loyalty.bind

    def counted(self: Loyalty, storage: object) -> Loyalty:
        binds.append(storage)
        return real(self, storage)  # type: ignore[arg-type]

    monkeypatch.setattr(Loyalty, "bind", counted)

    async def body(engine: AsyncEngine) -> int | None:
        app = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await app.register()
        async with engine.connect() as conn:
            shop = app.bind(conn)
            await shop.enrol("bea")
            await shop.earn("bea", 5, key="b1")
            balance = (await shop.balance("bea")).available
            await conn.commit()
        return balance
    assert 5 == run(urls, body)
    assert 1 == len(binds)


def test_a_conflict_on_the_callers_connection_is_the_callers_to_retry(
        urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep on the event loop")
    commit = SQLUnitOfWork.commit

    def conflicting_commit(self: SQLUnitOfWork) -> None:
        if not self.read_only:
            raise SerializationFailure("injected conflict")
        commit(self)

    async def body(engine: AsyncEngine) -> int:
        app = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        await app.register()
        await app.enrol("alice")
        async with engine.connect() as conn:
            monkeypatch.setattr(time, "sleep", no_thread_sleep)
            monkeypatch.setattr(SQLUnitOfWork, "commit", conflicting_commit)
            with pytest.raises(SerializationFailure):
                await app.bind(conn).earn("alice", 5, key="k")
            monkeypatch.undo()
            await conn.rollback()
        return (await app.balance("alice")).available
    assert 0 == run(urls, body)


def test_bad_input_is_refused_before_any_query() -> None:
    with pytest.raises(InvalidInput):
        AsyncLoyalty("aio", sa.create_engine("sqlite://"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        AsyncLoyalty(PROGRAM, sa.create_engine("sqlite://"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        AsyncLoyalty(PROGRAM, create_async_engine("sqlite+aiosqlite://"), max_retries=-1)


def test_the_calls_are_typed() -> None:
    """Each convenience carries the sync call's signature and docstring."""
    import inspect

    for name in ("earn", "spend", "balance", "record_order", "run_due"):
        sync, aio = getattr(Loyalty, name), getattr(AsyncLoyalty, name)
        assert inspect.iscoroutinefunction(aio)
        assert aio.__doc__ == sync.__doc__ and aio.__name__ == name
        assert inspect.signature(aio).parameters == inspect.signature(sync).parameters




def test_a_long_run_on_aiosqlite_sets_and_puts_back_the_wal_threshold(tmp_path: Path) -> None:
    """Due work and imports run as long runs: on an aiosqlite engine the threshold and
    cache PRAGMAs and the closing checkpoint go through the driver's DB-API adapter
    (its own connection object is async), as on pysqlite."""
    from loyaltykit.sql import _checkpoints

    path = tmp_path / "runs.sqlite"
    SQLStorage.from_url(f"sqlite:///{path}").create_schema()

    def threshold(loyalty: Loyalty) -> int:
        with loyalty.storage.unit_of_work("aio") as uow:
            return int(uow.connection().exec_driver_sql(  # type: ignore[attr-defined]
                "PRAGMA wal_autocheckpoint").scalar_one())

    def during_and_after(loyalty: Loyalty) -> tuple[int, int, int]:
        own = threshold(loyalty)
        with loyalty.storage.long_run():  # type: ignore[attr-defined]
            during = threshold(loyalty)
        return own, during, threshold(loyalty)

    async def main() -> tuple[tuple[int, int, int], int]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        try:
            shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
            await shop.enrol("alice")
            await shop.earn("alice", 10, key="e")
            seen = await shop.run(during_and_after)
            report = await shop.run_due()  # a long run of its own, ending in a checkpoint
            return seen, report.members
        finally:
            await engine.dispose()

    seen, members = asyncio.run(main())
    assert (1000, _checkpoints.LONG_RUN_PAGES, 1000) == seen
    assert 0 == members


def test_order_reports_sum_decimals_on_aiosqlite(tmp_path: Path) -> None:
    """The order reports add decimal texts with an aggregate registered on the SQLite
    connection: on aiosqlite it is registered in the driver's own thread."""
    from loyaltykit import Order, OrderLine

    path = tmp_path / "reports.sqlite"
    SQLStorage.from_url(f"sqlite:///{path}").create_schema()
    orders = [Order(id=f"o{i}", member_id="alice", placed_at=NOW - dt.timedelta(days=i),
                    currency="EUR", lines=(OrderLine(sku="cd", quantity=1,
                                                     unit_price=Money(price, "EUR")),))
              for i, price in enumerate(("10.10", "0.20", "3.03"))]
    start, end = NOW - dt.timedelta(days=40), NOW + dt.timedelta(days=1)

    async def main() -> Any:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        try:
            shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
            await shop.enrol("alice", at=NOW - dt.timedelta(days=5))
            for order in orders:
                await shop.record_order(order)
            return await shop.run(lambda loyalty: loyalty.reports.kpis("month", start, end))
        finally:
            await engine.dispose()

    kpis = asyncio.run(main())
    # February: 0.20 + 3.03 (added as decimals, not floats); March: 10.10
    assert [Money("3.23", "EUR"), Money("10.10", "EUR")] == [
        period.revenue for period in kpis if period.orders]
