"""Crash safety: a writer process killed (SIGKILL) at random moments loses nothing it
committed and leaves nothing half-written, on PostgreSQL and on a SQLite file (WAL).

The writer runs a stream of writes (earn, spend, hold, capture, void, reverse,
transfer) on a few members. Before each write it tells the parent which key it is
about to use; after the write has committed it reports the key, the request and the
ids of the transactions written. The parent kills it after a random delay, checks the
ledger, and starts a new writer, round after round. At the end every reported write
must be in storage with exactly its transactions (a replay with its key returns the
same result and writes nothing), and every stored write must be one the writer
reported or the one it was in the middle of when it died.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from _workers import FORK, worker_loyalty
from loyaltykit import (
    AlreadyReversed,
    HoldNotOpen,
    InsufficientPoints,
    Loyalty,
    Program,
)
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.contract import make_program
from loyaltykit.testing.invariants import check_invariants, read_ledger

# Writer processes killed round after round: the fast loop leaves them out.
pytestmark = pytest.mark.slow

ROUNDS = 8
#: The writer is killed this many seconds (uniformly at random) after it is ready.
KILL_AFTER = (0.05, 0.5)
MEMBERS = ("c1", "c2", "c3")
HOLD_TTL = dt.timedelta(hours=1)
SEED_POINTS = 300

tables = SQLStorage.metadata.tables
transactions_t = tables["lk_transactions"]
postings_t = tables["lk_postings"]
lots_t = tables["lk_lots"]
movements_t = tables["lk_lot_movements"]
holds_t = tables["lk_holds"]
allocations_t = tables["lk_hold_allocations"]
keys_t = tables["lk_idempotency_keys"]


@dataclass
class Write:
    """A write the writer reported as committed."""

    key: str
    op: str
    args: dict[str, Any]
    transaction_ids: set[str]
    hold_id: str | None = None


@dataclass
class History:
    """What the parent learnt from the writers, round after round."""

    done: dict[str, Write] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)  # keys being written at a kill
    holds: list[str] = field(default_factory=list)
    reversible: list[str] = field(default_factory=list)


# -- the writer (runs in a forked process) -----------------------------------------------


def perform(loyalty: Loyalty, op: str, args: dict[str, Any], key: str) -> Write:
    """Do one write of the stream (the parent replays it with the same call)."""
    hold_id = None
    if op == "earn":
        result: Any = loyalty.earn(args["member"], args["points"], key=key)
    elif op == "spend":
        result = loyalty.spend(args["member"], args["points"], key=key)
    elif op == "hold":
        result = loyalty.hold(args["member"], args["points"], key=key, ttl=HOLD_TTL)
        hold_id = str(result.hold_id)
    elif op == "capture":
        result = loyalty.capture(args["hold_id"], args["points"], key=key)
    elif op == "void":
        result = loyalty.void(args["hold_id"], key=key)
    elif op == "reverse":
        result = loyalty.reverse(args["transaction_id"], key=key)
    elif op == "transfer":
        result = loyalty.transfer(args["member"], args["to"], args["points"], key=key)
        ids = {str(result.outgoing.transaction_id), str(result.incoming.transaction_id)}
        return Write(key, op, args, ids)
    else:
        raise ValueError(op)
    return Write(key, op, args, {str(result.transaction_id)}, hold_id)


def next_request(rng: random.Random, holds: list[str], reversible: list[str]
                 ) -> tuple[str, dict[str, Any]]:
    op = rng.choices(("earn", "spend", "hold", "capture", "void", "reverse", "transfer"),
                     (25, 20, 15, 12, 5, 13, 10))[0]
    member = rng.choice(MEMBERS)
    if op in ("capture", "void") and holds:
        return op, {"hold_id": rng.choice(holds),
                    "points": None if op == "void" or rng.random() < 0.5 else 1}
    if op == "reverse" and reversible:
        return op, {"transaction_id": rng.choice(reversible)}
    if op == "transfer":
        return op, {"member": member, "to": rng.choice([m for m in MEMBERS if m != member]),
                    "points": rng.randint(1, 20)}
    return rng.choice(("earn", "spend", "hold")), {"member": member,
                                                  "points": rng.randint(1, 40)}


def writer(conn: Any, url: str, program: Program, round_no: int, holds: list[str],
           reversible: list[str]) -> None:
    """Write until killed: announce each key, report each committed write."""
    rng = random.Random(round_no)
    with worker_loyalty(url, program) as loyalty:
        conn.send(("ready",))
        for n in range(1, 1_000_000):
            key = f"r{round_no}-{n}"
            op, args = next_request(rng, holds, reversible)
            conn.send(("begin", key))
            try:
                write = perform(loyalty, op, args, key)
            except (InsufficientPoints, HoldNotOpen, AlreadyReversed):
                continue
            if write.hold_id is not None:
                holds.append(write.hold_id)
            if op in ("earn", "spend", "capture"):
                reversible.extend(write.transaction_ids)
            conn.send(("done", write))


# -- the parent ---------------------------------------------------------------------------


@dataclass
class Database:
    backend: str
    url: str
    storage: SQLStorage

    def before_fork(self) -> None:
        # a forked child must not inherit open SQLite connections (SQLite keeps its
        # locks' bookkeeping per process); the engine reconnects on next use
        if self.backend == "sqlite":
            self.storage.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        from conftest import POSTGRESQL

        storage = POSTGRESQL.storage()
        assert isinstance(storage, SQLStorage)
        yield Database("postgresql", POSTGRESQL.get_url(), storage)
    else:
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        storage = SQLStorage.from_url(url)
        storage.create_schema()
        with storage._engine.connect() as conn:
            assert "wal" == conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        yield Database("sqlite", url, storage)
        storage.dispose()


def run_round(db: Database, program: Program, round_no: int, history: History,
              rng: random.Random) -> None:
    """Start a writer, kill it after a random delay, and record what it reported."""
    receiver, sender = FORK.Pipe(duplex=False)
    db.before_fork()
    process = FORK.Process(
        target=writer, name=f"writer-{round_no}", daemon=True,
        args=(sender, db.url, program, round_no, list(history.holds),
              list(history.reversible)))
    process.start()
    sender.close()  # the parent keeps no write end: EOF once the writer is gone
    messages: list[Any] = []
    try:
        assert receiver.poll(30), "the writer did not start"
        assert ("ready",) == receiver.recv()
        kill_at = time.monotonic() + rng.uniform(*KILL_AFTER)
        # keep reading while waiting, so the writer never blocks on a full pipe
        while (left := kill_at - time.monotonic()) > 0:
            if receiver.poll(left):
                messages.append(receiver.recv())
        assert process.is_alive(), f"the writer died on its own (exit {process.exitcode})"
    finally:
        process.kill()  # SIGKILL: no cleanup, no rollback by the client
        process.join(timeout=10)
    while True:
        try:
            messages.append(receiver.recv())
        except EOFError:
            break
    receiver.close()
    assert -9 == process.exitcode

    current = None
    for message in messages:
        if message[0] == "begin":
            current = message[1]
        else:
            write: Write = message[1]
            assert current == write.key
            history.done[write.key] = write
            if write.hold_id is not None:
                history.holds.append(write.hold_id)
            if write.op in ("earn", "spend", "capture"):
                history.reversible.extend(write.transaction_ids)
            current = None
    if current is not None:
        history.in_flight.append(current)


def select(storage: SQLStorage, stmt: sa.Executable) -> list[Any]:
    with storage._engine.connect() as conn:
        return list(conn.execute(stmt).all())


def half_written(storage: SQLStorage) -> dict[str, list[Any]]:
    """Every trace of a partly written transaction (all lists must be empty)."""
    t, p = transactions_t, postings_t
    found = {
        "transactions without postings": select(storage, sa.select(t.c.id).where(
            ~sa.exists().where(p.c.transaction_id == t.c.id))),
        "transactions whose postings do not sum to zero": select(storage, sa.select(
            p.c.transaction_id).group_by(p.c.transaction_id).having(sa.func.sum(p.c.amount) != 0)),
    }
    for name, table in (("postings", p), ("lots", lots_t), ("lot movements", movements_t),
                        ("holds", holds_t)):
        found[f"{name} of a missing transaction"] = select(storage, sa.select(
            table.c.transaction_id).where(~sa.exists().where(t.c.id == table.c.transaction_id)))
    found["lot movements of a missing lot"] = select(storage, sa.select(
        movements_t.c.lot_id).where(~sa.exists().where(lots_t.c.id == movements_t.c.lot_id)))
    found["holds without allocations"] = select(storage, sa.select(holds_t.c.id).where(
        ~sa.exists().where(allocations_t.c.hold_id == holds_t.c.id)))
    found["keys without their transactions"] = select(storage, sa.select(keys_t.c.key).where(
        ~keys_t.c.key.startswith("enrol:"),
        ~sa.exists().where(t.c.idempotency_key == keys_t.c.key,
                           t.c.program_id == keys_t.c.program_id)))
    found["transactions without their key"] = select(storage, sa.select(t.c.id).where(
        ~sa.exists().where(keys_t.c.key == t.c.idempotency_key,
                           keys_t.c.program_id == t.c.program_id)))
    transfers = select(storage, sa.select(t.c.id, t.c["metadata"]).where(t.c.kind == "transfer"))
    ids = {str(tid) for tid, _ in transfers}
    found["transfers missing their other half"] = [
        tid for tid, meta in transfers if meta["counterpart_id"] not in ids]
    return {what: rows for what, rows in found.items() if rows}


def stored_writes(storage: SQLStorage, program: Program) -> dict[str, set[str]]:
    """idempotency key -> the ids of the transactions written under it."""
    found: dict[str, set[str]] = {}
    stmt = sa.select(transactions_t.c.idempotency_key, transactions_t.c.id).where(
        transactions_t.c.program_id == program.id)
    for key, tid in select(storage, stmt):
        found.setdefault(key, set()).add(str(tid))
    return found


def test_killed_writer_loses_nothing_and_leaves_nothing_half_written(db: Database) -> None:
    program = make_program("crash")
    loyalty = Loyalty(program, db.storage)
    for member in MEMBERS:
        loyalty.enrol(member)
        loyalty.earn(member, SEED_POINTS, key=f"seed-{member}")
    setup = {f"seed-{member}" for member in MEMBERS}
    history = History()
    rng = random.Random(2026)

    for round_no in range(ROUNDS):
        run_round(db, program, round_no, history, rng)
        assert {} == half_written(db.storage), f"after round {round_no}"
        check_invariants(db.storage, program, MEMBERS, at=loyalty.clock.now())

    print(f"{db.backend}: {len(history.done)} writes committed and reported; killed inside "
          f"{len(history.in_flight)} writes")
    assert len(history.done) >= ROUNDS  # the writers did work...
    assert history.in_flight  # ...and were killed in the middle of writes

    # nothing committed and reported is lost: each key has exactly its transactions
    stored = stored_writes(db.storage, program)
    assert {key: w.transaction_ids for key, w in history.done.items()} == {
        key: ids for key, ids in stored.items() if key in history.done}
    # nothing else was written but the writes in progress at a kill (all or nothing)
    assert set() == set(stored) - setup - set(history.done) - set(history.in_flight)

    # replaying each reported write with its key returns the original and writes nothing
    before = read_ledger(db.storage, program, MEMBERS)
    for key, write in history.done.items():
        assert write.transaction_ids == perform(loyalty, write.op, write.args, key
                                                ).transaction_ids, key
    assert before == read_ledger(db.storage, program, MEMBERS)
    assert {} == half_written(db.storage)
    check_invariants(db.storage, program, MEMBERS, at=loyalty.clock.now())


def test_half_written_finds_a_partial_transaction(tmp_path: Path) -> None:
    """The partial-write probe above reports what it claims (so {} means something)."""
    storage = SQLStorage.from_url(f"sqlite:///{tmp_path / 'probe.sqlite'}")
    storage.create_schema()
    program = make_program("probe")
    loyalty = Loyalty(program, storage)
    loyalty.enrol("m")
    assert {} == half_written(storage)
    tid = loyalty.earn("m", 10, key="k").transaction_id
    assert {} == half_written(storage)
    with storage._engine.begin() as conn:
        conn.execute(postings_t.delete().where(postings_t.c.transaction_id == tid))
        conn.execute(keys_t.delete().where(keys_t.c.key == "k"))
    assert {"transactions without postings": [(tid,)],
            "transactions without their key": [(tid,)]} == half_written(storage)
    storage.dispose()
