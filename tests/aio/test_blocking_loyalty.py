"""loyaltykit.testing.async_facade (the blocking stand-in that runs the contract through
AsyncLoyalty) and loyaltykit.testing.contract.asynchronous (its contract mixin): what the
contract itself does not show."""

from __future__ import annotations

import ast
import datetime as dt
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_async_contract as contract_tests  # (its Test classes: not collected here)

import loyaltykit.testing.contract as contract_package
from _backends import AsyncSQLiteBackend
from loyaltykit import (
    InsufficientPoints,
    InvalidInput,
    Loyalty,
    Money,
    Program,
    SystemClock,
    TestClock,
)
from loyaltykit.aio import AsyncLoyalty, create_async_engine
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.async_facade import BlockingLoyalty, EventLoopThread
from loyaltykit.testing.contract import ContractPart

PROGRAM = Program(id="aio", time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[tuple[BlockingLoyalty, SQLStorage]]:
    path = tmp_path / "blocking.sqlite"
    storage = SQLStorage.from_url(f"sqlite:///{path}")
    storage.create_schema()
    loop = EventLoopThread()
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        shop = AsyncLoyalty(PROGRAM, engine, clock=TestClock(NOW))
        yield BlockingLoyalty(shop, loop, storage=storage), storage
    finally:
        loop.run(engine.dispose())
        loop.close()
        storage.dispose()


def test_calls_run_on_the_async_facade_and_raise_its_errors_unchanged(
        blocking: tuple[BlockingLoyalty, SQLStorage]) -> None:
    loyalty, storage = blocking
    loyalty.enrol("alice")
    assert 10 == loyalty.earn("alice", 10, key="e").balance.available
    with pytest.raises(InsufficientPoints) as refused:
        loyalty.spend("alice", 11, key="s")
    assert "insufficient_points" == refused.value.code
    # what the async facade wrote, the sync one on the same database reads
    assert 10 == Loyalty(PROGRAM, storage, clock=TestClock(NOW)).balance("alice").available
    # the parts' calls too
    assert ["member.enrolled", "points.earned"] == [e.type for e in loyalty.events.read("crm")]
    with pytest.raises(InvalidInput, match="no tiers"):
        loyalty.tiers.status("alice")


def test_program_clock_and_storage(blocking: tuple[BlockingLoyalty, SQLStorage]) -> None:
    loyalty, storage = blocking
    assert PROGRAM == loyalty.program
    assert NOW == loyalty.clock.now()
    assert storage is loyalty.storage
    assert isinstance(loyalty.shop, AsyncLoyalty)
    with pytest.raises(AttributeError):
        loyalty.no_such_call  # noqa: B018
    with pytest.raises(AttributeError):
        loyalty._c  # noqa: B018  (the sync facade's insides are not offered)
    with pytest.raises(NotImplementedError):
        loyalty.bind(storage)


def test_an_iterator_is_stepped_lazily(blocking: tuple[BlockingLoyalty, SQLStorage]) -> None:
    """events.follow acknowledges a batch when the next event is asked for: each step
    is a call of its own, so that still holds through the stand-in."""
    loyalty, _ = blocking
    loyalty.enrol("alice")
    loyalty.earn("alice", 1, key="e1")
    follower = loyalty.events.follow("mailer", batch=1, poll=0.001)
    first = next(follower)
    assert loyalty.events.position("mailer") is None
    second = next(follower)
    assert first.position == loyalty.events.position("mailer")
    assert ["member.enrolled", "points.earned"] == [first.type, second.type]
    follower.close()  # type: ignore[attr-defined]


def test_a_callback_calling_back_in_is_refused_not_deadlocked(
        blocking: tuple[BlockingLoyalty, SQLStorage]) -> None:
    loyalty, _ = blocking
    loyalty.enrol("alice")
    follower = loyalty.events.follow("mailer", poll=0.001,
                                     stop=lambda: bool(loyalty.balance("alice")))
    with pytest.raises(RuntimeError, match="own loop's thread"):
        next(follower)


def test_the_async_facade_tells_its_clock() -> None:
    clock = TestClock(NOW)
    engine = create_async_engine("sqlite+aiosqlite://")
    assert clock is AsyncLoyalty(PROGRAM, engine, clock=clock).clock
    assert isinstance(AsyncLoyalty(PROGRAM, engine).clock, SystemClock)


class _Part(AsyncSQLiteBackend, ContractPart):
    pass


def test_the_mixin_refuses_a_storage_other_than_the_tests(tmp_path: Path) -> None:
    part = _Part()
    part.tmp_path = tmp_path
    storage = part.make_storage()
    try:
        part.make_loyalty(PROGRAM, storage, clock=TestClock(NOW))
        with pytest.raises(TypeError, match="wrapped storage"):
            part.make_loyalty(PROGRAM, SQLStorage(storage.engine))  # type: ignore[attr-defined]
    finally:
        part.dispose_storage(storage)


def test_every_part_of_the_contract_runs_through_the_async_facade() -> None:
    parts = set()
    for module in pkgutil.iter_modules(contract_package.__path__):
        loaded = __import__(f"{contract_package.__name__}.{module.name}", fromlist=["_"])
        parts |= {value for value in vars(loaded).values() if isinstance(value, type)
                  and issubclass(value, ContractPart) and value.__name__.endswith("Contract")}
    assert len(parts) > 15
    for backend in (contract_tests.TestAsyncSQLite, contract_tests.TestAsyncPostgreSQL):
        assert set() == parts - set(backend.__mro__)


def test_the_contract_builds_its_facades_through_make_loyalty() -> None:
    """A facade the contract built with ``Loyalty(...)`` (or a Shop without a factory)
    would test the sync facade whatever make_loyalty a backend gives: only the tests
    whose subject is a wrapper around the storage do (see their comments)."""
    allowed = {("base.py", "make_loyalty"),  # the default itself
               ("ledger_writes.py", "test_a_failure_after_writing_leaves_nothing")}
    found = set()
    for path in Path(contract_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                        node.func.id == "Loyalty" or (node.func.id == "Shop" and not any(
                            k.arg == "factory" for k in node.keywords))):
                    found.add((path.name, function.name))
    assert allowed == found
