#!/usr/bin/env python
"""Benchmark redeeming rewards: loyaltykit against hand-written SQLAlchemy Core doing the
same work, and concurrent redemptions of one reward and of different rewards.

Run as a plain script::

    python benchmarks/rewards.py --backend sqlite|postgresql|memory [--quick]

For ``postgresql`` the server is ``--url``, else the ``LOYALTYKIT_BENCH_POSTGRESQL_URL``
environment variable, else a throwaway server started from the PostgreSQL binaries on
the machine (``tests/_postgres.py``). A given server gets the schema (Alembic) and rows
under a program id of its own, deleted again at the end: use a scratch database.

The program (UTC, one wallet, lots expiring 365 days after their earn) has a catalogue
of rewards costing 30 points, each with a stock and no per-member limit, tier or
window. Measured in one run, in the same database:

* ``redeem``: ``loyalty.rewards.redeem(member, reward, key=...)`` per second against a
  *baseline* that issues the very statements :class:`~loyaltykit.sql.SQLStorage` issues
  for a redemption, one transaction each, written by hand with Core against
  ``SQLStorage.metadata``'s tables and computing the row values directly, without the
  loyaltykit domain (its code is drawn with the program's code spec, as loyaltykit's). The
  15 statements (17 parameter sets) of one redemption, in order (the member's open holds
  are not loaded: nothing is held):

  1. SELECT the idempotency key;
  2. SELECT the member key of the shop's member id (``lk_member_ids``);
  3. SELECT the member's account ... FOR UPDATE (on PostgreSQL; the member's lock);
  4. SELECT the member's open lots;
  5. UPDATE ``lk_reward_counters`` SET held = held + 1, redeemed = redeemed + 1 WHERE
     held < :stock AND redeemed < :limit (the guarded take of one item of stock);
  6. INSERT the idempotency key with the result;
  7. INSERT the spend transaction;
  8. INSERT its two postings (one executemany);
  9. INSERT its lot movement (one per lot consumed), and claim the transaction's id
     with its member (``lk_lookups``);
  10. UPDATE the account;
  11. UPDATE the lot (one per lot consumed);
  12. INSERT the spend's and the redemption's events (``lk_outbox``, one executemany:
      ``points.spent``, then ``reward.redeemed``);
  13. INSERT the voucher's code into ``lk_lookups`` (the program's one code, DESIGN
      §10);
  14. INSERT the voucher (``lk_vouchers``).

  Before timing, the run logs one redemption of each side (SQLAlchemy's
  ``before_cursor_execute``) and stops unless both sent the same statements with the
  same numbers of parameter sets; the output lists them. ``redeem_ratio`` = loyaltykit
  time / baseline time (target <= 1.5 on SQLite and PostgreSQL). The ``memory`` backend
  has no baseline: it reports loyaltykit's redemptions/s only.
* ``hot_reward_redeem_per_s``: vouchers per second of 8 processes (``--processes``),
  each with its own engine, members and keys, making 100 attempts each to redeem *one*
  reward whose stock is one item per process fewer than the attempts: every redemption
  takes the same counter row (the one hot row DESIGN §10 allows), so they serialise on
  it, and the round ends in a race for the last items (8 attempts refused).
* ``distinct_rewards_redeem_per_s``: 8 processes, each redeeming a reward of its own
  (stock: its attempts less one): nothing shared but the database.
  ``hot_vs_distinct`` = hot rate / distinct rate.
* ``contest``: 8 processes redeeming one reward with half as much stock as attempts, all
  released at once (untimed).
* ``oversold``: over every reward of the multi-process runs, the vouchers issued past
  its stock (``max(0, vouchers - stock)``, vouchers counted back from ``lk_vouchers``),
  summed. Must be 0, and each reward's counter row must agree with its vouchers (the
  run exits 1 otherwise). A round stops the run unless its attempts all ended in a
  voucher or ``OutOfStock`` and the stock was used up.

On PostgreSQL the processes run in parallel (up to the machine's cores, which client
and server share); SQLite has one writer, so its processes take turns on the database
lock (every loyaltykit SQLite transaction starts ``BEGIN IMMEDIATE``): its figures
show that queue, not contention on a row. The ``memory`` backend skips the
multi-process runs (its figures are null).

Method: one warm-up round per side, then 7 rounds. In a round both sides of ``redeem``
get fresh members (funded identically, untimed: lots of 100 points) so lot counts stay
comparable, and run their redemptions in alternating blocks of 10 (A B, B A, ...), so
load from elsewhere on a busy machine hits both sides alike. The multi-process runs
alternate hot and distinct rounds the same way (H D, D H, ...) after a warm-up of each;
a round's rate is its vouchers over the time from the workers' common start (a barrier,
after each opened its connection) to the last one's end. Figures are medians over
rounds, a ratio the median of the per-round ratios. ``--quick`` is a smoke run with tiny
sizes (its figures mean little). ``--profile FILE`` writes a cProfile of loyaltykit's
timed single-process redemptions (read it with ``python -m pstats FILE``).

The last line of output is one JSON object holding every figure printed.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime as dt
import functools
import json
import os
import platform
import re
import secrets
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _shared import backend_parser, ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    CodeSpec,
    ExpiryPolicy,
    FixedDiscount,
    LedgerPolicy,
    Loyalty,
    Money,
    OutOfStock,
    Program,
    Reward,
    RewardPolicy,
    Storage,
)
from loyaltykit.sql import SQLStorage  # noqa: E402

#: benchmarks/ledger.py: its baseline's statements and helpers, backends, measuring.
L = ledger_helpers()

WALLET = L.WALLET
COST = 30  # points per redemption
LOT = 100  # points per funding lot
#: a stock no single-process run reaches (the counter UPDATE still checks it)
BIG_STOCK = 10**9
#: Target (issue 19): loyaltykit time / baseline time per redemption.
MAX_REDEEM_RATIO = 1.5
#: The shape of a Crockford base32 voucher code as the program's default spec prints it.

FULL = {
    "rounds": 7,  # per side, after one warm-up round each
    "ops_per_round": 200,
    "block": 10,  # redemptions per side in a row before switching sides
    "members_per_round": 20,
    "lots_per_member": 10,  # 10 x 100 points: 33 redemptions of 30
    "processes": 8,
    "per_process": 100,  # attempts per worker in a multi-process round
    "mp_rounds": 5,  # per layout, after one warm-up round each
    "contest_per_process": 5,
}
QUICK = {
    "rounds": 2,
    "ops_per_round": 20,
    "block": 5,
    "members_per_round": 4,
    "lots_per_member": 10,
    "processes": 8,
    "per_process": 10,
    "mp_rounds": 1,
    "contest_per_process": 3,
}


def program(program_id: str, sizes: dict[str, int]) -> Program:
    """The benchmark's program: a reward per side for the single-process runs and one per
    multi-process round (hot: one; distinct: one per process), plus the contest's."""
    mp_rounds, processes, per_process = (sizes["mp_rounds"] + 1, sizes["processes"],
                                         sizes["per_process"])
    catalogue = [_reward("redeem-lk", BIG_STOCK), _reward("redeem-base", BIG_STOCK)]
    for r in range(mp_rounds):  # one item fewer than attempts per process
        catalogue.append(_reward(f"hot-{r}", processes * (per_process - 1)))
        catalogue += [_reward(f"solo-{r}-{p}", per_process - 1) for p in range(processes)]
    catalogue.append(_reward("contest", processes * sizes["contest_per_process"] // 2))
    return Program(
        id=program_id, time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)),
        rewards=RewardPolicy(catalogue=tuple(catalogue)),
    )


def _reward(reward_id: str, stock: int) -> Reward:
    return Reward(id=reward_id, name=reward_id, cost=COST,
                  kind=FixedDiscount(Money("1.00", "EUR")), stock=stock)


# -- the baseline: SQLStorage's statements, by hand ----------------------------------------

_T = SQLStorage.metadata.tables
RC = _T["lk_reward_counters"]
VO = _T["lk_vouchers"]
_BIG = sa.BigInteger()
#: "no bound" for the take's global limit, as the store's
NO_BOUND = 2**62

TAKE = (
    RC.update()
    .where(RC.c.program_id == sa.bindparam("p"), RC.c.reward_id == sa.bindparam("r"),
           RC.c.held < sa.bindparam("stock", type_=_BIG),
           RC.c.redeemed < sa.bindparam("limit", type_=_BIG))
    .values(held=RC.c.held + 1, redeemed=RC.c.redeemed + 1)
    .execution_options(preserve_rowcount=True)
)
INS_VOUCHER = VO.insert()
INS_LOOKUP = _T["lk_lookups"].insert()
COUNTED = (
    sa.select(VO.c.reward_id, sa.func.count())
    .where(VO.c.program_id == sa.bindparam("p"),
           VO.c.reward_id.in_(sa.bindparam("ids", expanding=True)),
           VO.c.status != "cancelled")
    .group_by(VO.c.reward_id)
)
COUNTERS = sa.select(RC.c.reward_id, RC.c.held).where(
    RC.c.program_id == sa.bindparam("p"), RC.c.reward_id.in_(sa.bindparam("ids",
                                                                          expanding=True)))


#: the program's voucher code spec (the default): the baseline draws a valid code too
CODES = CodeSpec()


def draw_code() -> tuple[str, str]:
    """A voucher code (stored and shown forms) as the program draws one: 10 random
    Crockford symbols and the check character."""
    code = CODES.draw(secrets.randbelow)
    return code, CODES.display(code)


def _when(value: dt.datetime | None) -> Any:
    return None if value is None else {"__dt__": value.isoformat()}


class Baseline(L.Baseline):  # type: ignore[misc]
    """A careful hand-written redemption with the statements SQLStorage issues (same
    order, same shapes), on a plain Core engine."""

    def __init__(self, engine: sa.Engine, program_id: str, version: int) -> None:
        super().__init__(engine, program_id)
        self.version = version

    def _insert_counter(self, conn: sa.Connection, reward_id: str) -> None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(RC).values(program_id=self.p, reward_id=reward_id, held=0,
                                       redeemed=0)
                     .on_conflict_do_nothing(index_elements=["program_id", "reward_id"]))

    def redeem(self, shop_id: str, reward_id: str, stock: int, key: str) -> str:
        now = L.utcnow()
        fingerprint = self._fingerprint("redeem", shop_id, reward_id)
        with self.engine.begin() as conn:
            if conn.execute(L.SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            member = self._member_key(conn, shop_id)
            acc, lot_rows, state, hold_rows = self._load(conn, member)
            taken = self._take(lot_rows, state, COST, now, hold=False)
            voucher_id, tx_id = L.uuid7(), L.uuid7()
            take = {"p": self.p, "r": reward_id, "stock": stock, "limit": NO_BOUND}
            if conn.execute(TAKE, take).rowcount != 1:
                self._insert_counter(conn, reward_id)  # the reward's first redemption
                if conn.execute(TAKE, take).rowcount != 1:
                    raise RuntimeError("baseline: out of stock")
            code, shown = draw_code()
            account = self._account(acc, available=-COST, redeemed=COST)
            account["next_due_at"], nxt = self._due_and_next(state, hold_rows)
            voucher = {
                "program_id": self.p, "id": voucher_id, "code": code, "shown": shown,
                "member_id": member, "reward_id": reward_id, "version": self.version,
                "wallet": WALLET, "cost": COST, "transaction_id": tx_id, "status": "issued",
                "issued_at": now, "expires_at": None, "used_at": None, "order_id": None,
                "cancelled_at": None, "expired_at": None, "refund_id": None,
            }
            result = self._redemption(voucher, shop_id, tx_id, now, account, nxt)
            tx = self._tx(tx_id, member, "spend", now, key,
                          {"reward_id": reward_id, "voucher_id": str(voucher_id)})
            tx["reason"] = f"reward {reward_id}"
            conn.execute(L.INS_KEY, self._key(key, member, fingerprint, result, now))
            conn.execute(L.INS_TX, [tx])
            conn.execute(L.INS_POSTING, self._legs(tx_id, member,
                                                   [("available", -COST), ("redeemed", COST)]))
            conn.execute(L.INS_MOVEMENT, [
                {"transaction_id": tx_id, "lot_id": lot_id, "program_id": self.p,
                 "member_id": member, "delta": -n, "position": i}
                for i, (lot_id, n) in enumerate(taken)])
            conn.execute(L.INS_CLAIM, self._claims(member, tx=tx_id))
            conn.execute(L.UPD_ACCOUNT, [account])
            conn.execute(L.UPD_LOT, self._lot_updates(state, [i for i, _ in taken], member))
            spent = self._event(
                member, "spend", tx_id, -COST, {"available": -COST}, account, now,
                {"reward_id": reward_id, "voucher_id": str(voucher_id)},
                reason=f"reward {reward_id}")
            self._events(conn, [spent, self._redeemed(spent, voucher)])
            conn.execute(INS_LOOKUP, [{"program_id": voucher["program_id"], "kind": "voucher",
                                       "value": voucher["code"],
                                       "member_id": voucher["member_id"]}])
            conn.execute(INS_VOUCHER, [voucher])
        return code

    @staticmethod
    def _redeemed(spent: dict[str, Any], voucher: dict[str, Any]) -> dict[str, Any]:
        """The ``reward.redeemed`` outbox row (the payload loyaltykit writes), in the
        spend's event's INSERT."""
        payload = {
            "voucher_id": str(voucher["id"]), "code": voucher["code"],
            "shown": voucher["shown"], "status": "issued",
            "reward": {"id": voucher["reward_id"], "name": voucher["reward_id"],
                       "kind": {"type": "fixed_discount", "amount": "1.00",
                                "currency": "EUR"}},
            "cost": COST, "wallet": WALLET, "transaction_id": str(voucher["transaction_id"]),
            "program_version": voucher["version"],
            "issued_at": voucher["issued_at"].isoformat(), "expires_at": None,
        }
        return {**spent, "id": L.uuid7(), "type": "reward.redeemed", "payload": payload}

    @staticmethod
    def _redemption(voucher: dict[str, Any], shop_id: str, tx_id: uuid.UUID,
                    now: dt.datetime, account: dict[str, Any], nxt: tuple[int, Any]) -> str:
        """The stored result: the voucher and the balance after, as JSON."""
        shown_voucher = {k: (str(v) if isinstance(v, uuid.UUID) else v)
                         for k, v in voucher.items()}
        shown_voucher.update(member_id=shop_id, issued_at=_when(now))
        spent = account["redeemed"]
        balance = {
            "member_id": shop_id, "wallet": WALLET, "as_of": _when(now),
            "available": account["available"], "pending": account["pending"],
            "held": account["held"], "debt": account["debt"],
            "total": account["available"] + account["pending"] + account["held"],
            "earned": -account["issued"], "spent": spent, "expired": account["expired"],
            "adjusted": account["adjustments"], "transferred": account["transfers"],
            "next_expiring_points": nxt[0], "next_expiring_at": _when(nxt[1]),
        }
        return json.dumps({"voucher": shown_voucher, "transaction_id": str(tx_id),
                           "balance": balance}, sort_keys=True, separators=(",", ":"))


# -- statements ----------------------------------------------------------------------------


#: psycopg's named parameter: SQLStorage hands an everyday write's few rows to the
#: driver as tuples (``%s``, loyaltykit.sql._many), the baseline through ``execute``
_NAMED = re.compile(r"%\(\w+\)s")


class StatementLog:
    """Every statement an engine sends, with its number of parameter sets (its
    parameters written ``%s`` whether named or positional: the same statement)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.entries: list[tuple[str, int]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                context: Any, executemany: bool) -> None:
        self.entries.append((_NAMED.sub("%s", statement),
                             len(parameters) if executemany else 1))

    def of(self, work: Callable[[], object]) -> list[tuple[str, int]]:
        self.entries = []
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        try:
            work()
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", self._record)
        return self.entries


def summary_of(statement: str, sets: int) -> str:
    """``SELECT lk_accounts FOR UPDATE``, ``INSERT lk_postings x2``: a statement in short."""
    words = statement.split()
    verb = words[0].upper()
    if verb == "SELECT":
        table = words[words.index("FROM") + 1] if "FROM" in words else "?"
    elif verb == "INSERT":
        table = words[2]
    else:
        table = words[1]
    out = f"{verb} {table.split('.')[0]}"
    if "FOR UPDATE" in statement:
        out += " FOR UPDATE"
    return out + (f" x{sets}" if sets != 1 else "")


# -- the multi-process runs ------------------------------------------------------------------


def _worker(url: str, prog: Program, members: Sequence[str], reward_id: str, attempts: int,
            tag: str, barrier: Any, results: Any) -> None:
    """Redeem ``reward_id`` ``attempts`` times for ``members`` in turn, after the common
    start; report (ok, vouchers, refused, started, ended) on ``results``."""
    storage = None
    try:
        storage = SQLStorage.from_url(url, pool_size=1)
        loyalty = Loyalty(prog, storage, max_retries=100)
        loyalty.balance(members[0])  # connected and the program known, untimed
        barrier.wait()
        started = time.monotonic()
        done = refused = 0
        for i in range(attempts):
            try:
                loyalty.rewards.redeem(members[i % len(members)], reward_id,
                                       key=f"{tag}-{i}")
                done += 1
            except OutOfStock:
                refused += 1
        results.put((True, done, refused, started, time.monotonic()))
    except BaseException:
        results.put((False, traceback.format_exc(), 0, 0.0, 0.0))
        with contextlib.suppress(Exception):
            barrier.abort()
    finally:
        if storage is not None:
            storage.dispose()


# -- the benchmark ---------------------------------------------------------------------------


class Bench:
    def __init__(self, backend: str, storage: Storage, engine: sa.Engine | None,
                 sizes: dict[str, int], rounds: int | None) -> None:
        self.backend = backend
        self.storage = storage
        self.engine = engine
        self.sizes = sizes
        self.rounds = rounds or sizes["rounds"]
        self.program = program(f"bench-rewards-{uuid.uuid4().hex[:10]}", sizes)
        self.loyalty = Loyalty(self.program, storage)
        self.loyalty.register()  # the baseline writes rows around the facade
        self.baseline = (Baseline(engine, self.program.id, self.program.version)
                         if engine is not None else None)
        #: stock by reward id, of every reward a multi-process run redeemed
        self.stocked: dict[str, int] = {}

    @property
    def pid(self) -> str:
        return self.program.id

    def members(self, tag: str, n: int) -> list[str]:
        """``n`` fresh members, each funded with lots of 100 points (untimed)."""
        members = [f"{tag}-{j}" for j in range(n)]
        now = L.utcnow()
        L.enrol_many(self.storage, self.pid, members, now - dt.timedelta(hours=1))
        lots = self.sizes["lots_per_member"]
        for j in range(lots):
            self.loyalty.bulk_earn([(m, LOT) for m in members], key=f"{tag}-fund-{j}",
                                   at=now - dt.timedelta(minutes=lots - j))
        return members

    # single process

    def check_statements(self) -> list[tuple[str, int]]:
        """Log a redemption of each side (after a first one: the reward's counter row
        exists) and stop unless both sent the same statements."""
        assert self.engine is not None and self.baseline is not None
        lk_member, = self.members("check-lk", 1)
        base_member, = self.members("check-base", 1)
        log = StatementLog(self.engine)
        for i in range(2):
            ours = log.of(functools.partial(self.loyalty.rewards.redeem, lk_member,
                                            "redeem-lk", key=f"check-lk-{i}"))
            theirs = log.of(functools.partial(self.baseline.redeem, base_member,
                                              "redeem-base", BIG_STOCK, f"check-base-{i}"))
        if ours != theirs:
            lines = [f"  loyaltykit: {summary_of(*s)}" for s in ours]
            lines += [f"  baseline:   {summary_of(*s)}" for s in theirs]
            raise SystemExit("the baseline's statements differ from SQLStorage's:\n"
                             + "\n".join(lines))
        return ours

    def redeem(self) -> dict[str, Any]:
        lk = self.loyalty
        base = self.baseline
        n = self.sizes["members_per_round"]

        def prepare(label: str) -> Callable[[str], tuple[list[str], str]]:
            def make(tag: str) -> tuple[list[str], str]:
                prefix = f"redeem-{label}-{tag}"
                return self.members(prefix, n), prefix
            return make

        def lk_step(state: tuple[list[str], str], i: int) -> None:
            lk.rewards.redeem(state[0][i % n], "redeem-lk", key=f"{state[1]}-{i}")

        def base_step(state: tuple[list[str], str], i: int) -> None:
            assert base is not None
            base.redeem(state[0][i % n], "redeem-base", BIG_STOCK, f"{state[1]}-{i}")

        result = L.interleaved((prepare("lk"), lk_step),
                               (prepare("base"), base_step) if base else None,
                               self.sizes["ops_per_round"], self.sizes["block"], self.rounds)
        extra = None if result["b"] is None else 1e6 * (1 / result["a"] - 1 / result["b"])
        return {
            "loyaltykit_per_s": result["a"], "baseline_per_s": result["b"],
            "ratio": result["ratio"], "extra_us_per_redeem": extra,
            "rounds": {"loyaltykit": result["a_rounds"], "baseline": result["b_rounds"],
                       "ratio": result["ratios"]},
        }

    # several processes

    def _url(self) -> str:
        assert self.engine is not None
        return self.engine.url.render_as_string(hide_password=False)

    def _run_processes(self, tag: str, rewards: Sequence[str], attempts: int
                       ) -> dict[str, Any]:
        """One worker per entry of ``rewards`` (a reward id each), ``attempts``
        redemptions each; return vouchers, refusals and the time from the common start
        to the last worker's end."""
        import multiprocessing

        assert self.engine is not None
        per_member = (self.sizes["lots_per_member"] * LOT) // COST
        n = -(-attempts // per_member)
        funded = self.members(tag, n * len(rewards))
        members = [funded[p * n:(p + 1) * n] for p in range(len(rewards))]
        self.engine.dispose()  # no open connection (SQLite's above all) while forking
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(len(rewards) + 1)
        results = ctx.Queue()
        workers = [ctx.Process(target=_worker,
                               args=(self._url(), self.program, members[p], reward_id,
                                     attempts, f"{tag}-w{p}", barrier, results))
                   for p, reward_id in enumerate(rewards)]
        for w in workers:
            w.start()
        try:
            with contextlib.suppress(Exception):
                barrier.wait(timeout=120)
            reports = [results.get(timeout=600) for _ in workers]
        finally:
            for w in workers:
                w.join(timeout=60)
        failed = [r[1] for r in reports if not r[0]]
        if failed:
            raise RuntimeError("a worker failed:\n" + failed[0])
        seconds = max(r[4] for r in reports) - min(r[3] for r in reports)
        done = sum(r[1] for r in reports)
        return {"vouchers": done, "refused": sum(r[2] for r in reports),
                "seconds": seconds, "per_s": done / seconds}

    def processes(self) -> dict[str, Any]:
        processes, attempts = self.sizes["processes"], self.sizes["per_process"]
        hot: list[float] = []
        distinct: list[float] = []
        for r in range(self.sizes["mp_rounds"] + 1):  # round 0 warms up
            layouts = [("hot", [f"hot-{r}"] * processes),
                       ("distinct", [f"solo-{r}-{p}" for p in range(processes)])]
            for name, rewards in (layouts if r % 2 == 0 else layouts[::-1]):
                stock = 0
                for reward_id in set(rewards):
                    stock += self.program.rewards.by_id[reward_id].stock
                    self.stocked[reward_id] = self.program.rewards.by_id[reward_id].stock
                run = self._run_processes(f"{name}-{r}", rewards, attempts)
                self._check_run(f"{name} round {r}", run, stock, processes * attempts)
                if r > 0:
                    (hot if name == "hot" else distinct).append(run["per_s"])
                print(f"  {name} round {r}: {run['per_s']:,.0f} redemptions/s",
                      file=sys.stderr)
        contest_attempts = self.sizes["contest_per_process"]
        stock = self.program.rewards.by_id["contest"].stock
        self.stocked["contest"] = stock
        contest = self._run_processes("contest", ["contest"] * processes, contest_attempts)
        self._check_run("contest", contest, stock, processes * contest_attempts)
        return {
            "hot_per_s": statistics.median(hot), "distinct_per_s": statistics.median(distinct),
            "rounds": {"hot": hot, "distinct": distinct},
            "contest": {"stock": stock, "attempts": processes * contest_attempts,
                        "vouchers": contest["vouchers"], "out_of_stock": contest["refused"]},
        }

    @staticmethod
    def _check_run(name: str, run: dict[str, Any], stock: int, attempts: int) -> None:
        """Every attempt ended in a voucher or OutOfStock, and the stock was used up
        (more vouchers than stock is left for ``oversold`` to count and report)."""
        if run["vouchers"] + run["refused"] != attempts or run["vouchers"] < stock:
            raise RuntimeError(f"{name}: {run} of {attempts} attempts, stock {stock}")

    def oversold(self) -> tuple[int, dict[str, Any]]:
        """Vouchers past their reward's stock, summed, counted back from storage; and
        the totals checked, with any reward oversold or whose counter row disagrees
        with its vouchers."""
        assert self.engine is not None
        ids = sorted(self.stocked)
        with self.engine.connect() as conn:
            counted = dict(conn.execute(COUNTED, {"p": self.pid, "ids": ids}).all())
            held = dict(conn.execute(COUNTERS, {"p": self.pid, "ids": ids}).all())
        by_reward = {r: {"stock": self.stocked[r], "vouchers": int(counted.get(r, 0)),
                         "counter_held": int(held.get(r, 0))} for r in ids}
        wrong = {r: c for r, c in by_reward.items() if c["vouchers"] != c["counter_held"]}
        over = {r: c for r, c in by_reward.items() if c["vouchers"] > c["stock"]}
        return sum(c["vouchers"] - c["stock"] for c in over.values()), {
            "rewards": len(ids), "stock": sum(self.stocked.values()),
            "vouchers": sum(c["vouchers"] for c in by_reward.values()),
            "counters_agree": not wrong, "oversold_rewards": over,
            "counters_disagreeing": wrong,
        }

    def cleanup(self) -> None:
        """Delete this run's rows (on a server given by URL)."""
        if self.engine is None:
            return
        with self.engine.begin() as conn:
            for table in reversed(SQLStorage.metadata.sorted_tables):
                column = table.c.id if table.name == "lk_programs" else table.c.program_id
                conn.execute(table.delete().where(column == self.pid))


# -- output ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> None:
    print(f"\nloyaltykit rewards benchmark: backend={results['backend']}"
          f"{' (quick)' if results['quick'] else ''}  [{results['environment']['database']}]")
    if results["statements"]:
        print(f"\none redemption, {len(results['statements'])} statements on both sides:")
        for i, text in enumerate(results["statements"], 1):
            print(f"  {i:2}. {text}")
    line = f"\nredeem         loyaltykit {_num(results['redeem_per_s'])}/s"
    if results["redeem_baseline_per_s"] is not None:
        ok = "PASS" if results["redeem_pass"] else "MISS"
        line += (f"   baseline {_num(results['redeem_baseline_per_s'])}/s   "
                 f"+{_num(results['redeem_extra_us'])} us/redeem   ratio "
                 f"{results['redeem_ratio']:.2f}x (<= {MAX_REDEEM_RATIO}x)  {ok}")
    print(line)
    if results["hot_reward_redeem_per_s"] is not None:
        n = results["sizes"]["processes"]
        c = results["contest"]
        print(f"{n} processes, one reward:        "
              f"{_num(results['hot_reward_redeem_per_s'])}/s")
        print(f"{n} processes, {n} rewards:       "
              f"{_num(results['distinct_rewards_redeem_per_s'])}/s   "
              f"hot / distinct {results['hot_vs_distinct']:.2f}x")
        print(f"contest: stock {c['stock']}, {c['attempts']} attempts at once: "
              f"{c['vouchers']} vouchers, {c['out_of_stock']} out of stock")
        print(f"oversold: {results['oversold']} "
              f"({'PASS' if results['oversold'] == 0 else 'FAIL'}); counter rows agree "
              f"with the vouchers: {'yes' if results['checked']['counters_agree'] else 'NO'}")
    print(json.dumps(results, separators=(",", ":"), default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = backend_parser(__doc__)
    parser.add_argument("--rounds", type=int, help="rounds per side (default 7, quick 2)")
    parser.add_argument("--processes", type=int, help="workers of the multi-process runs "
                                                      "(default 8)")
    parser.add_argument("--profile", metavar="FILE",
                        help="write a cProfile of loyaltykit's timed single-process "
                             "redemptions to FILE (slows loyaltykit's side: the ratio is "
                             "then meaningless)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name in ("rounds", "processes"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name} must be positive")
            sizes[name] = value
    if args.profile:
        L.PROFILER = cProfile.Profile()

    started = time.perf_counter()
    with L.open_backend(args.backend, args.url) as (storage, engine, database, owned):
        bench = Bench(args.backend, storage, engine, sizes, None)
        results: dict[str, Any] = {
            "backend": args.backend, "quick": args.quick,
            "environment": {"database": database, "python": platform.python_version(),
                            "sqlalchemy": sa.__version__, "cpus": os.cpu_count(),
                            "profiled": bool(args.profile)},
            "sizes": sizes,
        }
        try:
            statements = bench.check_statements() if engine is not None else []
            redeem = bench.redeem()
            print(f"  redeem done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            multi = bench.processes() if engine is not None else None
            oversold, checked = bench.oversold() if engine is not None else (None, None)
        finally:
            if not owned:
                bench.cleanup()
    ratio = redeem["ratio"]
    results.update({
        "redeem_per_s": redeem["loyaltykit_per_s"],
        "redeem_baseline_per_s": redeem["baseline_per_s"],
        "redeem_ratio": ratio,
        "redeem_target_max_ratio": MAX_REDEEM_RATIO if ratio is not None else None,
        "redeem_pass": None if ratio is None else ratio <= MAX_REDEEM_RATIO,
        "redeem_extra_us": redeem["extra_us_per_redeem"],
        "redeem_rounds": redeem["rounds"],
        "statements": [summary_of(*s) for s in statements],
        "statements_per_redeem": len(statements) or None,
        "parameter_sets_per_redeem": sum(n for _, n in statements) or None,
        "hot_reward_redeem_per_s": multi["hot_per_s"] if multi else None,
        "distinct_rewards_redeem_per_s": multi["distinct_per_s"] if multi else None,
        "hot_vs_distinct": multi["hot_per_s"] / multi["distinct_per_s"] if multi else None,
        "hot_vs_one_process": (multi["hot_per_s"] / redeem["loyaltykit_per_s"]
                               if multi else None),
        "distinct_vs_one_process": (multi["distinct_per_s"] / redeem["loyaltykit_per_s"]
                                    if multi else None),
        "multi_process_rounds": multi["rounds"] if multi else None,
        "contest": multi["contest"] if multi else None,
        "oversold": oversold,
        "checked": checked,
        "seconds": time.perf_counter() - started,
    })
    if L.PROFILER is not None:
        L.PROFILER.dump_stats(args.profile)
        print(f"  profile written to {args.profile}", file=sys.stderr)
    report(results)
    return 1 if oversold or (checked and not checked["counters_agree"]) else 0


if __name__ == "__main__":
    sys.exit(main())
