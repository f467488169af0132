"""Concurrency on the SQL backend (DESIGN §3 "Concurrency", §10; SCENARIOS L5).

On PostgreSQL the writers are real processes, each with its own engine and facade
(the way a web application's workers share one database); on a SQLite file they are
threads, each with its own engine. Every worker starts on a barrier, so the writes
really race. What is proven:

* two concurrent spends never overdraw, and writes to one member are serialised
  (each successful spend sees a different balance);
* a member hammered by random writes for ``HAMMER_SECONDS`` keeps every invariant and
  loses or doubles nothing;
* one idempotency key used concurrently gives exactly one transaction, and two
  reversals of one transaction racing give exactly one reversal;
* writes to different members do not block each other on PostgreSQL (shown with the
  server's own lock-wait view, not with timings), while SQLite serialises all writers;
* deadlocks (40P01) and serialization failures (40001), forced for real, are retried,
  and retries are bounded.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from _workers import SharedIds, Team, wait_until, worker_loyalty
from loyaltykit import (
    AlreadyReversed,
    DuplicateKey,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    Kind,
    Loyalty,
    Program,
    RetryLimitExceeded,
    SerializationFailure,
    Storage,
    StorageError,
)
from loyaltykit._model import ProgramVersion
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.contract import make_program, statement_lines
from loyaltykit.testing.invariants import check_invariants, read_ledger

# Real races between threads and processes, each for seconds: the fast loop leaves them out.
pytestmark = pytest.mark.slow

#: How long the workers of the hammer test keep writing.
HAMMER_SECONDS = 10.0
HAMMER_WORKERS = 8
#: Long enough that no hold ends during a test: no release is posted behind our back.
HOLD_TTL = dt.timedelta(hours=1)
WALLET = "points"

transactions_t = SQLStorage.metadata.tables["lk_transactions"]
postings_t = SQLStorage.metadata.tables["lk_postings"]
keys_t = SQLStorage.metadata.tables["lk_idempotency_keys"]


@dataclass
class Database:
    """The database under test: its URL for the workers, the test's own storage, and
    how workers run against it."""

    backend: str
    url: str
    storage: SQLStorage
    workers: str  # "process" or "thread"

    def engine(self) -> sa.Engine:
        return self.storage._engine


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        from conftest import POSTGRESQL

        storage = POSTGRESQL.storage()
        assert isinstance(storage, SQLStorage)
        yield Database("postgresql", POSTGRESQL.get_url(), storage, "process")
    else:
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        storage = SQLStorage.from_url(url)
        storage.create_schema()
        yield Database("sqlite", url, storage, "thread")
        storage.dispose()


def rows(storage: SQLStorage, stmt: sa.Executable) -> list[Any]:
    with storage._engine.connect() as conn:
        return list(conn.execute(stmt).all())


def keyed_transactions(storage: SQLStorage, program: Program) -> dict[str, set[str]]:
    """idempotency key -> ids of the transactions written under it."""
    found: dict[str, set[str]] = {}
    stmt = sa.select(transactions_t.c.idempotency_key, transactions_t.c.id).where(
        transactions_t.c.program_id == program.id)
    for key, tid in rows(storage, stmt):
        found.setdefault(key, set()).add(str(tid))
    return found


def stored_keys(storage: SQLStorage, program: Program) -> set[str]:
    stmt = sa.select(keys_t.c.key).where(keys_t.c.program_id == program.id)
    return {key for (key,) in rows(storage, stmt)}


def unbalanced_transactions(storage: SQLStorage) -> list[Any]:
    """Transactions whose postings do not sum to zero (none may exist)."""
    stmt = (sa.select(postings_t.c.transaction_id, sa.func.sum(postings_t.c.amount))
            .group_by(postings_t.c.transaction_id)
            .having(sa.func.sum(postings_t.c.amount) != 0))
    return rows(storage, stmt)


# -- L5: concurrent spends ---------------------------------------------------------------

SPENDERS = 20


def test_l5_concurrent_spends_never_overdraw(db: Database) -> None:
    program = make_program("L5")
    loyalty = Loyalty(program, db.storage)
    loyalty.enrol("m")
    loyalty.earn("m", 100, key="order")

    spenders, readers = Team(db.workers), Team(db.workers)
    start = spenders.barrier(SPENDERS + 1)  # the spenders and the reader
    finished = spenders.event()

    def spend(i: int) -> tuple[str, int] | None:
        with worker_loyalty(db.url, program) as mine:
            mine.balance("m")  # connected before the race starts
            start.wait(timeout=60)
            try:
                result = mine.spend("m", 10, key=f"spend-{i}")
            except InsufficientPoints:
                return None
            return str(result.transaction_id), result.balance.available

    def read() -> list[int]:
        seen: list[int] = []
        with worker_loyalty(db.url, program) as mine:
            mine.balance("m")
            start.wait(timeout=60)
            while not finished.is_set():
                seen.append(mine.balance("m").available)
            seen.append(mine.balance("m").available)
        return seen

    with spenders, readers:
        readers.start("reader", read)
        for i in range(SPENDERS):
            spenders.start(f"spender-{i}", spend, i)
        outcomes = spenders.results()
        finished.set()
        seen = readers.results()["reader"]

    won = {name: value for name, value in outcomes.items() if value is not None}
    assert (10, 10) == (len(won), SPENDERS - len(won))
    # serialised: each successful spend saw the balance the previous one left
    assert list(range(0, 100, 10)) == sorted(available for _, available in won.values())
    assert 0 == loyalty.balance("m").available
    spends = [line for line in statement_lines(loyalty, "m") if line.kind is Kind.SPEND]
    assert {tid for tid, _ in won.values()} == {str(line.transaction_id) for line in spends}
    # the reader never saw a negative, a partial or a reverted balance
    assert len(seen) >= 2
    assert [] == [value for value in seen if value < 0 or value % 10]
    assert sorted(seen, reverse=True) == seen
    assert 0 == seen[-1]
    check_invariants(db.storage, program, ["m"])


# -- one member hammered with random writes ----------------------------------------------

OPERATIONS = ("earn", "spend", "hold", "capture", "void", "reverse")
WEIGHTS = (25, 20, 20, 12, 8, 15)
#: What a racing write may legitimately be refused with.
EXPECTED_REFUSALS = (InsufficientPoints, HoldNotOpen, AlreadyReversed)


def hammer(url: str, program: Program, worker: int, start: Any, holds: SharedIds,
           txs: SharedIds) -> dict[str, Any]:
    """Write at random to member "m" for HAMMER_SECONDS; report every success."""
    rng = random.Random(worker)
    written: dict[str, list[str]] = {}  # key -> transaction ids
    succeeded: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    overdrawn: list[tuple[str, int]] = []
    with worker_loyalty(url, program) as loyalty:
        loyalty.balance("m")
        start.wait(timeout=60)
        stop_at = time.monotonic() + HAMMER_SECONDS
        n = 0
        while time.monotonic() < stop_at:
            op = rng.choices(OPERATIONS, WEIGHTS)[0]
            n += 1
            key = f"w{worker}-{n}-{op}"
            result: Any
            try:
                if op == "earn":
                    result = loyalty.earn("m", rng.randint(1, 40), key=key)
                    txs.put(result.transaction_id, rng)
                elif op == "spend":
                    result = loyalty.spend("m", rng.randint(1, 30), key=key)
                    txs.put(result.transaction_id, rng)
                elif op == "hold":
                    result = loyalty.hold("m", rng.randint(1, 30), key=key, ttl=HOLD_TTL)
                    holds.put(result.hold_id, rng)
                elif op in ("capture", "void"):
                    hold_id = holds.pick(rng)
                    if hold_id is None:
                        continue
                    if op == "void":
                        result = loyalty.void(hold_id, key=key)
                    else:
                        partly = rng.random() < 0.5
                        result = loyalty.capture(hold_id, 1 if partly else None, key=key)
                        txs.put(result.transaction_id, rng)
                else:
                    tid = txs.pick(rng)
                    if tid is None:
                        continue
                    result = loyalty.reverse(tid, key=key)
            except EXPECTED_REFUSALS as exc:
                refused[type(exc).__name__] += 1
                continue
            succeeded[op] += 1
            written[key] = [str(result.transaction_id)]
            if result.balance.available < 0 or result.balance.held < 0:
                overdrawn.append((key, result.balance.available))
    return {"written": written, "succeeded": succeeded, "refused": refused,
            "overdrawn": overdrawn}


def test_one_member_hammered_by_many_writers(db: Database) -> None:
    program = make_program("hammer")
    loyalty = Loyalty(program, db.storage)
    loyalty.enrol("m")
    loyalty.earn("m", 500, key="seed")
    setup = {"enrol:m", "seed"}

    team = Team(db.workers)
    start = team.barrier(HAMMER_WORKERS)
    holds, txs = SharedIds(), SharedIds()
    began = time.monotonic()
    with team:
        for worker in range(HAMMER_WORKERS):
            team.start(f"hammer-{worker}", hammer, db.url, program, worker, start, holds, txs)
        reports = team.results(timeout=HAMMER_SECONDS + 60)
    elapsed = time.monotonic() - began

    written: dict[str, set[str]] = {}
    succeeded: Counter[str] = Counter()
    for report in reports.values():
        assert [] == report["overdrawn"]
        succeeded.update(report["succeeded"])
        for key, ids in report["written"].items():
            assert key not in written
            written[key] = set(ids)
    print(f"{db.backend}: {sum(succeeded.values())} writes in {elapsed:.1f} s: "
          f"{dict(succeeded)}; refused "
          f"{dict(sum((r['refused'] for r in reports.values()), Counter()))}")
    assert set(OPERATIONS) == set(succeeded)  # every kind of write really happened

    # nothing lost, nothing doubled: one key and one transaction per reported success
    stored = keyed_transactions(db.storage, program)
    assert written == {key: ids for key, ids in stored.items() if key not in setup}
    assert set(written) == stored_keys(db.storage, program) - setup
    assert sum(succeeded.values()) == len(written)

    # the ledger adds up
    assert [] == unbalanced_transactions(db.storage)
    balance = loyalty.balance("m")
    assert balance.available >= 0
    lots = loyalty.lots("m")
    assert balance.available + balance.pending + balance.held == sum(
        lot.remaining for lot in lots)
    assert balance.held == sum(lot.held for lot in lots)
    check_invariants(db.storage, program, ["m"], at=loyalty.clock.now())


# -- one idempotency key, concurrently ----------------------------------------------------

RACERS = 20


def test_same_key_concurrently_writes_one_transaction(db: Database) -> None:
    program = make_program("same-key")
    loyalty = Loyalty(program, db.storage)
    loyalty.enrol("n")
    team = Team(db.workers)
    start = team.barrier(RACERS)

    def earn() -> tuple[str, int]:
        with worker_loyalty(db.url, program) as mine:
            mine.balance("n")
            start.wait(timeout=60)
            result = mine.earn("n", 10, key="same-key")
            return str(result.transaction_id), result.balance.available

    with team:
        for i in range(RACERS):
            team.start(f"earner-{i}", earn)
        outcomes = team.results()

    assert RACERS == len(outcomes)
    ids = {tid for tid, _ in outcomes.values()}
    assert 1 == len(ids)
    # every racer got the original result, balance included
    assert {10} == {available for _, available in outcomes.values()}
    assert 10 == loyalty.balance("n").available
    assert {"same-key": ids} == {
        key: tids for key, tids in keyed_transactions(db.storage, program).items()
        if key is not None}
    assert ids == {str(line.transaction_id) for line in statement_lines(loyalty, "n")}
    check_invariants(db.storage, program, ["n"])


def test_same_key_for_different_members_concurrently(db: Database) -> None:
    program = make_program("shared-key")
    loyalty = Loyalty(program, db.storage)
    members = [f"m{i}" for i in range(RACERS)]
    for member in members:
        loyalty.enrol(member)
    team = Team(db.workers)
    start = team.barrier(RACERS)

    def earn(member: str) -> str:
        with worker_loyalty(db.url, program) as mine:
            mine.balance(member)
            start.wait(timeout=60)
            try:
                return str(mine.earn(member, 10, key="shared").transaction_id)
            except IdempotencyConflict:
                return "conflict"

    with team:
        for member in members:
            team.start(member, earn, member)
        outcomes = team.results()

    winners = {member: tid for member, tid in outcomes.items() if tid != "conflict"}
    assert 1 == len(winners)
    assert RACERS - 1 == list(outcomes.values()).count("conflict")
    (winner, tid), = winners.items()
    assert {m: 10 if m == winner else 0 for m in members} == {
        m: loyalty.balance(m).available for m in members}
    assert {"shared": {tid}} == {
        key: tids for key, tids in keyed_transactions(db.storage, program).items()
        if key is not None and not key.startswith("enrol:")}
    check_invariants(db.storage, program, members)


def test_concurrent_registrations_of_a_new_program(db: Database) -> None:
    """Racers register one new program: half the same version, half versions of their
    own. No racer fails (a lost insert race is not an error) and one of each is kept."""
    team = Team(db.workers)
    start = team.barrier(RACERS)
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def register(i: int) -> None:
        number = 1 if i % 2 else i + 2
        storage = SQLStorage.from_url(db.url)
        try:
            with storage.unit_of_work("racy") as uow:
                uow.programs.program_versions()  # connected before the race starts
            start.wait(timeout=60)
            storage.register_program(
                ProgramVersion("racy", number, None, {"by": i}, created))
        finally:
            storage.dispose()

    with team:
        for i in range(RACERS):
            team.start(f"registrar-{i}", register, i)
        team.results()

    programs_t = SQLStorage.metadata.tables["lk_programs"]
    assert 1 == len(rows(db.storage, sa.select(programs_t.c.id)))
    with db.storage.unit_of_work("racy") as uow:
        versions = uow.programs.program_versions()
    assert [1, *range(2, RACERS + 2, 2)] == [v.version for v in versions]
    assert versions[0].definition["by"] in range(1, RACERS, 2)
    assert all(v.definition == {"by": v.version - 2} for v in versions[1:])


# -- different members do not block each other ------------------------------------------


def lock_waits(engine: sa.Engine, application_name: str) -> list[tuple[str, list[int]]]:
    """PostgreSQL's view of the sessions named ``application_name``: what each waits
    for and which sessions block it."""
    with engine.connect() as conn:
        return [(str(kind), list(blockers)) for kind, blockers in conn.execute(sa.text(
            "SELECT coalesce(wait_event_type, ''), pg_blocking_pids(pid) "
            "FROM pg_stat_activity WHERE application_name = :name"
        ), {"name": application_name})]


def backend_pid(engine: sa.Engine, application_name: str) -> int:
    with engine.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity "
                                    "WHERE application_name = :name"),
                            {"name": application_name}).scalars().all()
    assert 1 == len(pids), pids
    return int(pids[0])


def test_writes_to_different_members_do_not_serialise(db: Database) -> None:
    program = make_program("members")
    loyalty = Loyalty(program, db.storage)
    loyalty.enrol("m1")
    loyalty.enrol("m2")
    team = Team(db.workers)
    ready = {name: team.event() for name in ("locker", "m1", "m2")}
    go = {name: team.event() for name in ("m1", "m2")}
    done = {name: team.event() for name in ("m1", "m2")}
    release = team.event()

    def engine_kwargs(name: str) -> dict[str, Any]:
        # name each session, so the server can tell us who waits for whom
        if db.backend != "postgresql":
            return {}
        return {"connect_args": {"application_name": f"lk-test-{name}"}}

    def locker() -> None:
        storage = SQLStorage.from_url(db.url, **engine_kwargs("locker"))
        try:
            with by_shop_ids(storage).unit_of_work(program.id) as uow:
                assert ["m1"] == list(uow.ledger.lock_accounts(WALLET, ["m1"]))
                ready["locker"].set()
                assert release.wait(timeout=60)
        finally:
            storage.dispose()

    def write(member: str) -> int:
        with worker_loyalty(db.url, program, **engine_kwargs(member)) as mine:
            mine.balance(member)  # connected (and the program read) before the lock
            ready[member].set()
            assert go[member].wait(timeout=60)
            result = mine.earn(member, 10, key=f"earn-{member}")
            done[member].set()
            return result.balance.available

    with team:
        team.start("m1", write, "m1")
        team.start("m2", write, "m2")
        assert ready["m1"].wait(30) and ready["m2"].wait(30)
        team.start("locker", locker)
        assert ready["locker"].wait(30)  # m1's account row is locked now

        go["m1"].set()
        if db.backend == "postgresql":
            monitor = db.engine()
            locker_pid = backend_pid(monitor, "lk-test-locker")
            # the server itself says: the write to m1 waits for a lock the locker holds
            wait_until(lambda: [("Lock", [locker_pid])] == lock_waits(monitor, "lk-test-m1"),
                       10, "the write to m1 to wait for the locker's row lock")
            go["m2"].set()
            # a write to another member completes meanwhile
            assert done["m2"].wait(timeout=10), "the write to m2 was blocked"
            assert [("Lock", [locker_pid])] == lock_waits(monitor, "lk-test-m1")
            assert not done["m1"].wait(timeout=1.0), "the write to m1 ignored the lock"
        else:
            # SQLite serialises all writers (documented): the database lock held by the
            # locker's unit of work keeps both writes out
            go["m2"].set()
            assert not done["m1"].wait(timeout=1.0), "the write to m1 ignored the lock"
            assert not done["m2"].is_set(), "the write to m2 ignored the database lock"
        release.set()
        outcomes = team.results(timeout=30)

    assert {"m1": 10, "m2": 10, "locker": None} == outcomes
    assert (10, 10) == (loyalty.balance("m1").available, loyalty.balance("m2").available)
    check_invariants(db.storage, program, ["m1", "m2"])


# -- retries of deadlocks and serialization failures ------------------------------------


class CountingStorage:
    """Wraps a storage: counts units of work, and can make each one pause before it
    locks (``pause``: called with the attempt number) or fail after it wrote
    (``fail``: an exception to raise once the real write is done)."""

    def __init__(self, inner: Storage, *, pause: Any = None,
                 fail: StorageError | None = None) -> None:
        self.inner = inner
        self.units = 0
        self.writes = 0
        self.pause = pause
        self.fail = fail

    @property
    def concurrent(self) -> bool:
        return self.inner.concurrent

    def register_program(self, version: ProgramVersion) -> None:
        self.inner.register_program(version)

    def unit_of_work(self, program_id: str) -> Any:
        self.units += 1
        return _CountingUnit(self, self.inner.unit_of_work(program_id), self.units)


class _CountingUnit:
    def __init__(self, owner: CountingStorage, inner: Any, attempt: int) -> None:
        self._owner = owner
        self._inner = inner
        self._attempt = attempt

    def __enter__(self) -> _CountingUnit:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def ledger(self) -> Any:
        return _PausingLedger(self._owner, self._inner.ledger, self._attempt)

    def commit(self) -> None:
        # counted where the old port wrote: right before committing
        self._owner.writes += 1
        if self._owner.fail is not None:
            raise self._owner.fail
        self._inner.commit()


class _PausingLedger:
    def __init__(self, owner: CountingStorage, inner: Any, attempt: int) -> None:
        self._owner = owner
        self._inner = inner
        self._attempt = attempt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> Any:
        if self._owner.pause is not None:
            self._owner.pause(self._attempt)
        return self._inner.lock_accounts(wallet, member_ids)


def retried(caplog: pytest.LogCaptureFixture, sqlstate: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "loyaltykit" and r.getMessage().startswith(f"{sqlstate} on ")]


@pytest.fixture
def postgresql() -> Iterator[tuple[str, SQLStorage]]:
    from conftest import POSTGRESQL

    storage = POSTGRESQL.storage()
    assert isinstance(storage, SQLStorage)
    yield POSTGRESQL.get_url(), storage


def test_deadlock_is_retried(postgresql: tuple[str, SQLStorage],
                             caplog: pytest.LogCaptureFixture) -> None:
    url, setup_storage = postgresql
    program = make_program("deadlock")
    setup = Loyalty(program, setup_storage)
    setup.enrol("a")
    setup.enrol("b")
    setup.earn("a", 50, key="seed")

    # the facade's session looks for deadlocks after 1.5 s of waiting, the external one
    # only after 60 s: when both wait for each other, the facade's side is the victim
    engine = create_engine(url, connect_args={
        "application_name": "lk-test-transfer", "options": "-c deadlock_timeout=1500"})
    counting = CountingStorage(SQLStorage(engine))
    loyalty = Loyalty(program, counting)
    accounts_t = SQLStorage.metadata.tables["lk_accounts"]

    with setup_storage.unit_of_work(program.id) as uow:
        key_of = uow.members.keys_of(["a", "b"])  # the rows carry member keys
    assert key_of["a"] < key_of["b"]  # keys are time-ordered: a's is locked first

    def lock_row(conn: sa.Connection, member: str) -> list[Any]:
        rows = conn.execute(
            sa.select(accounts_t.c.member_id).where(
                accounts_t.c.program_id == program.id,
                accounts_t.c.member_id == key_of[member])
            .with_for_update()).all()
        return [(member,) for _ in rows]

    outcome: dict[str, Any] = {}

    def transfer() -> None:
        try:
            outcome["result"] = loyalty.transfer("a", "b", 20, key="transfer")
        except BaseException as exc:
            outcome["error"] = exc

    caplog.set_level(logging.DEBUG, logger="loyaltykit")
    monitor = setup_storage._engine
    external = setup_storage._engine.connect()
    thread = threading.Thread(target=transfer)
    try:
        external.exec_driver_sql("SET deadlock_timeout = '60s'")
        external_pid = external.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert [("b",)] == lock_row(external, "b")
        counting.units = 0
        thread.start()
        # the transfer locked a (members in id order) and now waits for b
        wait_until(lambda: [("Lock", [external_pid])] == lock_waits(
            monitor, "lk-test-transfer"), 10, "the transfer to wait for b's row")
        # now we want a: a cycle. The server aborts the transfer's unit of work (40P01),
        # which lets this statement through
        assert [("a",)] == lock_row(external, "a")
        external.rollback()  # the facade's retry can go on
        thread.join(timeout=30)
    finally:
        external.close()
        thread.join(timeout=30)
        engine.dispose()

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert (30, 20) == (result.outgoing.balance.available, result.incoming.balance.available)
    assert 2 == counting.units  # the deadlocked attempt and the retry
    assert 1 == len(retried(caplog, "40P01"))
    assert (30, 20) == (setup.balance("a").available, setup.balance("b").available)
    check_invariants(setup_storage, program, ["a", "b"])


def test_serialization_failure_is_retried(postgresql: tuple[str, SQLStorage],
                                          caplog: pytest.LogCaptureFixture) -> None:
    url, setup_storage = postgresql
    program = make_program("serializable")
    setup = Loyalty(program, setup_storage)
    setup.enrol("m")
    setup.earn("m", 50, key="seed")

    engine = create_engine(url, isolation_level="SERIALIZABLE")
    paused, resume = threading.Event(), threading.Event()

    def pause(attempt: int) -> None:
        # the first attempt has read (its snapshot is taken) but not locked yet; the
        # other writer commits meanwhile, so the lock finds a row changed since
        if attempt == 1:
            paused.set()
            assert resume.wait(timeout=30)

    counting = CountingStorage(SQLStorage(engine), pause=pause)
    second = Loyalty(program, counting)
    first = Loyalty(program, SQLStorage(engine))
    outcome: dict[str, Any] = {}

    def spend() -> None:
        try:
            outcome["result"] = second.spend("m", 10, key="spend")
        except BaseException as exc:
            outcome["error"] = exc

    caplog.set_level(logging.DEBUG, logger="loyaltykit")
    counting.units = 0
    thread = threading.Thread(target=spend)
    thread.start()
    try:
        assert paused.wait(timeout=30)
        assert 55 == first.earn("m", 5, key="earn").balance.available
    finally:
        resume.set()
        thread.join(timeout=30)
        engine.dispose()

    assert "error" not in outcome, outcome.get("error")
    assert 45 == outcome["result"].balance.available
    assert 2 == counting.units  # the failed attempt and the retry
    assert 1 == len(retried(caplog, "40001"))
    assert 45 == setup.balance("m").available
    check_invariants(setup_storage, program, ["m"])


def test_concurrent_reversals_of_one_transaction(
        postgresql: tuple[str, SQLStorage]) -> None:
    """Two reversals of one spend race: the second has found no reversal yet when it
    starts, and waits for the member's lock while the first commits. It must then see
    the first and refuse with AlreadyReversed, not give the points back twice."""
    url, setup_storage = postgresql
    program = make_program("reversals")
    setup = Loyalty(program, setup_storage)
    setup.enrol("m")
    setup.earn("m", 10, key="seed")
    spend = setup.spend("m", 10, key="spend")

    engine = create_engine(url)
    paused, resume = threading.Event(), threading.Event()

    def pause(attempt: int) -> None:
        if attempt == 1:  # it has looked for a reversal, and is about to lock
            paused.set()
            assert resume.wait(timeout=30)

    counting = CountingStorage(SQLStorage(engine), pause=pause)
    second = Loyalty(program, counting)
    counting.units = 0  # count the reversal's attempts, not the facade's set-up read
    outcome: dict[str, Any] = {}

    def reverse() -> None:
        try:
            outcome["result"] = second.reverse(spend.transaction_id, key="refund-2")
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=reverse)
    thread.start()
    try:
        assert paused.wait(timeout=30)
        assert 10 == setup.reverse(spend.transaction_id, key="refund-1").balance.available
    finally:
        resume.set()
        thread.join(timeout=30)
        engine.dispose()

    assert AlreadyReversed is type(outcome.get("error")), outcome
    assert 10 == setup.balance("m").available
    check_invariants(setup_storage, program, ["m"])


@pytest.mark.parametrize("failure", [
    SerializationFailure("forced", sqlstate="40001"),
    SerializationFailure("forced", sqlstate="40P01"),
    DuplicateKey("forced", key="k"),
], ids=["40001", "40P01", "duplicate-key"])
def test_retries_are_bounded(storage: Storage, failure: StorageError) -> None:
    program = make_program("bounded")
    Loyalty(program, storage).enrol("m")
    before = read_ledger(storage, program, ["m"])
    # every write fails after it wrote its rows, as a real conflict at commit would
    failing = CountingStorage(storage, fail=failure)
    loyalty = Loyalty(program, failing, max_retries=3)
    failing.units = 0  # count the earn's attempts, not the facade's set-up read

    with pytest.raises(RetryLimitExceeded) as raised:
        loyalty.earn("m", 10, key="doomed")

    assert 4 == raised.value.details["attempts"]
    assert (4, 4) == (failing.units, failing.writes)
    assert before == read_ledger(storage, program, ["m"])  # nothing written
    with storage.unit_of_work(program.id) as uow:
        assert None is uow.keys.get_idempotency("doomed")
    check_invariants(storage, program, ["m"])


def test_helpers_see_the_rows() -> None:
    """The SQL helpers above read what they claim (so an empty answer means something)."""
    storage = SQLStorage.from_url("sqlite://")
    storage.create_schema()
    program = make_program("helpers")
    loyalty = Loyalty(program, storage)
    loyalty.enrol("m")
    tid = str(loyalty.earn("m", 10, key="k").transaction_id)
    assert {"k": {tid}} == {k: v for k, v in keyed_transactions(storage, program).items()
                            if k is not None}
    assert {"enrol:m", "k"} == stored_keys(storage, program)
    with storage._engine.begin() as conn:
        conn.execute(postings_t.update().where(postings_t.c.transaction_id == uuid.UUID(tid))
                     .values(amount=postings_t.c.amount * 2).where(postings_t.c.amount > 0))
    assert [uuid.UUID(tid)] == [row[0] for row in unbalanced_transactions(storage)]
    storage.dispose()


class _RacingUnit(_CountingUnit):
    """Before its first ``get_member``, lets ``race`` (another enrolment) commit."""

    race: Any = None

    @property
    def ledger(self) -> Any:
        return _RacingLedger(self._owner, self._inner.ledger, self._attempt)


class _RacingLedger(_PausingLedger):
    def get_member(self, member_id: str) -> Any:
        race = _RacingUnit.race
        if self._attempt == 1 and race is not None:
            _RacingUnit.race = None
            race()
        return self._inner.get_member(member_id)


def test_an_enrolment_racing_the_same_enrolment_replays_it(
        postgresql: tuple[str, SQLStorage]) -> None:
    """Two enrolments of one member with the default key: the second has found no key
    yet when the first commits, then finds the member. It must replay the first's
    result, not refuse with MemberAlreadyEnrolled."""
    url, setup_storage = postgresql
    program = make_program("enrolments")
    first = Loyalty(program, setup_storage)
    first.register()  # (building stores nothing: the race is the enrolments', not this)
    engine = create_engine(url)
    racing = CountingStorage(SQLStorage(engine))
    racing_units = racing.unit_of_work

    def unit_of_work(program_id: str) -> Any:
        unit = racing_units(program_id)
        return _RacingUnit(racing, unit._inner, unit._attempt)

    racing.unit_of_work = unit_of_work  # type: ignore[method-assign]
    results: list[Any] = []
    # the concurrent enrolment runs in its own thread and commits before we look again
    _RacingUnit.race = lambda: _run_in_thread(lambda: results.append(first.enrol("m")))
    loyalty = Loyalty(program, racing)
    racing.units = 0  # count the enrolment's attempts, not the facade's set-up read
    try:
        second = loyalty.enrol("m")
    finally:
        engine.dispose()
    assert [second] == results
    assert 2 == racing.units  # the raced attempt and the replaying retry
    check_invariants(setup_storage, program, ["m"])


def _run_in_thread(work: Any) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
