"""The set-based due path against ``catch_up``: part of the ledger contract.

Due work posts most wallets set-based (:mod:`loyaltykit._due_bulk`, written by
:meth:`~loyaltykit.storage.LedgerStore.write_due`; on SQLite and in memory a batch of
plain wallets is computed and written by the store itself,
:mod:`loyaltykit.sql.ledger_due_set`, :mod:`loyaltykit.memory.ledger_due_set`) and the
rest one member at a time through ``Ledger.catch_up``. On random ledgers
(earns pending or not, holds that outlive their lots or not, spends, reversals leaving
debt, two wallets, expiry from the earn or the activation), two programs of one
storage are built alike, with id sources that draw the same sequence; due work runs on
one as it is and on the other with every wallet sent to ``catch_up``. Both must show
the same: the report, balances, statements, transactions, lots, the outbox's events
(ids, payloads, order) and what the next run finds.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltykit import (
    AlreadyReversed,
    ExpiryPolicy,
    ExpiryStart,
    InsufficientPoints,
    Loyalty,
    NotReversible,
    PendingPolicy,
    Storage,
    TestClock,
)
from loyaltykit._due_bulk import DueBulk
from loyaltykit._services.due import DueWork
from loyaltykit.testing.contract.base import (
    ContractPart,
    LoyaltyFactory,
    berlin,
    check_ledger,
    id_source,
    ledger_snapshot,
    make_program,
)

__all__ = ["LedgerDueBulkContract"]

MEMBERS = ("a", "b", "c")
WALLETS = ("points", "credits")
START = berlin(2026, 3, 1, 9)
_programs = itertools.count()

Op = tuple[Any, ...]

_earn = st.tuples(st.just("earn"), st.sampled_from(MEMBERS), st.sampled_from(WALLETS),
                 st.integers(1, 60), st.one_of(st.none(), st.integers(0, 96)))
_hold = st.tuples(st.just("hold"), st.sampled_from(MEMBERS), st.sampled_from(WALLETS),
                  st.integers(1, 40), st.integers(1, 120))
_ops = st.lists(st.one_of(
    _earn, _earn, _earn, _hold, _hold,  # most wallets have something due
    st.tuples(st.just("spend"), st.sampled_from(MEMBERS), st.sampled_from(WALLETS),
              st.integers(1, 40)),
    st.tuples(st.just("reverse_earn"), st.sampled_from(MEMBERS), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.integers(1, 72)),
), min_size=6, max_size=24)

_policies = st.tuples(
    st.one_of(st.none(), st.integers(1, 6)),  # expiry days
    st.sampled_from([ExpiryStart.EARN, ExpiryStart.ACTIVATION]),
    st.integers(0, 3),  # pending days (0: none)
)


def _apply(loyalty: Loyalty, clock: TestClock, ops: list[Op]) -> None:
    earns: dict[str, list[Any]] = {m: [] for m in MEMBERS}
    for n, op in enumerate(ops):
        key = f"op-{n}"
        try:
            if op[0] == "earn":
                _, m, wallet, points, hours = op
                activates = None if hours is None else clock.now() + dt.timedelta(hours=hours)
                done = loyalty.earn(m, points, key=key, wallet=wallet, activates_at=activates)
                earns[m].append(done.transaction_id)
            elif op[0] == "hold":
                _, m, wallet, points, hours = op
                loyalty.hold(m, points, key=key, wallet=wallet,
                             ttl=dt.timedelta(hours=hours))
            elif op[0] == "spend":
                _, m, wallet, points = op
                loyalty.spend(m, points, key=key, wallet=wallet)
            elif op[0] == "reverse_earn":
                _, m, which = op
                if earns[m]:
                    loyalty.reverse(earns[m][which % len(earns[m])], key=key)
            else:
                clock.set(clock.now() + dt.timedelta(hours=op[1]))
        except (InsufficientPoints, AlreadyReversed, NotReversible):
            pass  # the same refusal on both sides


def _seen(loyalty: Loyalty, prefix: str, program_id: str) -> str:
    """What the facade shows of every member and the outbox, as text with the side's
    ids and program id made common."""
    events = [(e.id, e.type, e.member_id, e.occurred_at, e.recorded_at, e.payload)
              for e in loyalty.events.read("check", limit=10_000)]
    text = repr((ledger_snapshot(loyalty, MEMBERS), events))
    return text.replace(prefix, "side-").replace(program_id, "program")


def _run(storage: Storage, policy: tuple[int | None, ExpiryStart, int], ops: list[Op],
         side: int, *, bulk: bool, factory: LoyaltyFactory) -> tuple[Any, ...]:
    days, counted_from, pending_days = policy
    example = next(_programs)
    program_id = f"due{example:06d}"
    program = make_program(
        program_id, wallets=WALLETS,
        expiry=ExpiryPolicy(days=days, counted_from=counted_from) if days else None,
        pending=PendingPolicy(days=pending_days) if pending_days else None)
    clock = TestClock(START)
    loyalty = factory(program, storage, clock=clock, new_id=id_source(side, example))
    for m in MEMBERS:
        loyalty.enrol(m)
    _apply(loyalty, clock, ops)
    reports = []
    for hours in (24 * 3, 24 * 9):
        clock.set(clock.now() + dt.timedelta(hours=hours))
        if bulk:
            reports.append(loyalty.run_due(batch_size=2))
        else:
            # neither set-based path: the Python rows (DueBulk) nor the batches a SQL
            # store posts itself (DueWork._set_based)
            with mock.patch.object(DueBulk, "post", return_value=False), \
                    mock.patch.object(DueWork, "_set_based", return_value=None):
                reports.append(loyalty.run_due(batch_size=2))
        check_ledger(loyalty, MEMBERS)
    return tuple(reports), _seen(loyalty, f"{side:08x}-{example:04x}-", program_id)


class LedgerDueBulkContract(ContractPart):
    """The set-based due path on a backend (see the module docstring)."""

    def test_set_based_due_work_equals_catch_up(self, storage: Storage) -> None:
        @settings(max_examples=30, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(policy=_policies, ops=_ops)
        def check(policy: tuple[int | None, ExpiryStart, int], ops: list[Op]) -> None:
            assert _run(storage, policy, ops, 2, bulk=False,
                        factory=self.make_loyalty) == _run(
                storage, policy, ops, 1, bulk=True, factory=self.make_loyalty)

        check()
