"""Due work's ``tier.changed`` events appended by the store against raised ones: part of
the tiers' events contract.

A tier evaluation run by due work appends its ``tier.changed`` events itself where the
store can (:mod:`loyaltykit.storage.tier_due_set`: memory and SQLite); otherwise each
history line is raised as a :class:`~loyaltykit._tiers.TierChanged` and mapped by
:class:`~loyaltykit._services.tier_events.TierEvents`. On random programs (calendar,
rolling and anniversary windows, one-level or recomputed downgrades, grace periods, a
lifetime tier) and random histories (earns, reversals, manual assignments, members
enrolled along the way), two programs of one storage are built alike, with id sources
that draw the same sequence; due work runs on one as it is and on the other with every
evaluation's events raised. Both must show the same: the reports, every member's tier
history and the outbox's events (ids, payloads, order).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loyaltykit import (
    Benefits,
    Downgrade,
    Loyalty,
    Money,
    Program,
    QualificationWindow,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
    WindowKind,
)
from loyaltykit._services.tier_events import TierEvents
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory, berlin, id_source

__all__ = ["TierDueEventContract"]

MEMBERS = ("a", "b", "c", "d")
START = berlin(2026, 1, 10, 9)
_programs = itertools.count()

Op = tuple[Any, ...]

_ops = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.sampled_from(MEMBERS), st.integers(1, 2600)),
    st.tuples(st.just("earn"), st.sampled_from(MEMBERS), st.integers(1, 700)),
    st.tuples(st.just("reverse"), st.sampled_from(MEMBERS), st.integers(0, 5)),
    st.tuples(st.just("assign"), st.sampled_from(MEMBERS),
              st.sampled_from(["member", "silver", "gold"]),
              st.one_of(st.none(), st.integers(1, 500))),
    st.tuples(st.just("wait"), st.integers(1, 400)),
    # a new version of the program with lower thresholds: members it lifts are lifted
    # by the next evaluation (an upgrade by due work, protected for the grace periods)
    st.tuples(st.just("lower"), st.integers(50, 450)),
), min_size=4, max_size=20)

_policies = st.tuples(
    st.sampled_from([QualificationWindow(),
                     QualificationWindow(WindowKind.ROLLING_MONTHS, months=3),
                     QualificationWindow(WindowKind.ANNIVERSARY_YEAR)]),
    st.sampled_from(list(Downgrade)),
    st.integers(0, 2),  # grace periods
    st.booleans(),  # gold is a lifetime tier
)


def _program(program_id: str, policy: tuple[QualificationWindow, Downgrade, int, bool],
             version: int = 1, lower: int = 0, at: dt.datetime | None = None) -> Program:
    """The program (``version`` with thresholds ``lower`` points lower from ``at``)."""
    window, downgrade, grace, lifetime = policy
    return Program(
        id=program_id, time_zone="Europe/Berlin", currency="EUR",
        point_value=Money("0.01", "EUR"), version=version, effective_from=at,
        tiers=TierPolicy(
            tiers=(Tier("member", 0),
                   Tier("silver", 500 - lower, Benefits(discount_percent=Decimal(5))),
                   Tier("gold", 2000 - lower, Benefits(earn_multiplier=Decimal(2),
                                               free_shipping=True, custom={"lounge": "yes"}),
                        lifetime=lifetime)),
            window=window, downgrade=downgrade, grace_periods=grace, notice_days=0))


def _apply(loyalty: Loyalty, clock: TestClock, ops: list[Op],
           policy: tuple[QualificationWindow, Downgrade, int, bool],
           new_id: Callable[[], uuid.UUID], factory: LoyaltyFactory) -> Loyalty:
    """Apply ``ops``; the facade of the program's last version."""
    earns: dict[str, list[Any]] = {m: [] for m in MEMBERS}
    lowered = 0
    for n, op in enumerate(ops):
        key = f"op-{n}"
        if op[0] == "earn":
            earns[op[1]].append(loyalty.earn(op[1], op[2], key=key).transaction_id)
        elif op[0] == "reverse":
            found = earns[op[1]]
            if found:
                loyalty.reverse(found.pop(op[2] % len(found)), key=key)
        elif op[0] == "assign":
            _, m, tier, days = op
            until = None if days is None else clock.now() + dt.timedelta(days=days)
            loyalty.tiers.assign(m, tier, key=key, reason="by hand", until=until)
        elif op[0] == "lower":
            lowered = max(lowered, op[1])
            program = loyalty.program
            loyalty = factory(_program(program.id, policy, program.version + 1, lowered,
                                       clock.now()),
                              loyalty.storage, clock=clock, new_id=new_id)
        else:
            clock.set(clock.now() + dt.timedelta(days=op[1]))
            loyalty.run_due(batch_size=2)  # (due work along the way, as a shop runs it)
    return loyalty


def _seen(loyalty: Loyalty, prefix: str, program_id: str) -> tuple[str, int]:
    """Every member's tier history and the outbox, as text with the side's ids and
    program id made common; and how many evaluations' events tell a protection."""
    read = loyalty.events.read("check", limit=10_000)
    events = [(e.id, e.type, e.member_id, e.occurred_at, e.recorded_at, e.payload)
              for e in read]
    history = [loyalty.tiers.history(m) for m in MEMBERS]
    text = repr((history, events)).replace(prefix, "side-").replace(program_id, "program")
    return text, sum(1 for e in read if e.type == "tier.changed"
                     and e.payload["reason"] == "evaluation"
                     and e.payload["protected_until"] is not None)


def _run(storage: Storage, policy: tuple[QualificationWindow, Downgrade, int, bool],
         ops: list[Op], side: int, *, recorded: bool, factory: LoyaltyFactory
         ) -> tuple[Any, ...]:
    example = next(_programs)
    program_id = f"tier{example:06d}"
    clock = TestClock(START)
    new_id = id_source(side, example)
    loyalty = factory(_program(program_id, policy), storage, clock=clock, new_id=new_id)
    for m in MEMBERS[:3]:
        loyalty.enrol(m)
    clock.set(START + dt.timedelta(days=40))
    loyalty.enrol(MEMBERS[3])  # (another anniversary)
    reports = []
    # (the other side: no store is handed the events, each change is raised)
    with contextlib.nullcontext() if recorded else mock.patch.object(
            TierEvents, "outbox", return_value=None):
        loyalty = _apply(loyalty, clock, ops, policy, new_id, factory)
        for days in (200, 400, 800):
            clock.set(clock.now() + dt.timedelta(days=days))
            reports.append(loyalty.run_due(batch_size=2))
    return (tuple(reports), *_seen(loyalty, f"{side:08x}-{example:04x}-", program_id))


class TierDueEventContract(ContractPart):
    """Due work's ``tier.changed`` events on a backend (see the module docstring)."""

    def test_events_a_store_appends_equal_those_raised(self, storage: Storage) -> None:
        evaluations = 0

        @settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(policy=_policies, ops=_ops)
        # (one lift by due work for sure: 60 points in 2026 reach silver once lowered)
        @example(policy=(QualificationWindow(), Downgrade.ONE_LEVEL, 1, False),
                 ops=[("earn", "a", 60), ("lower", 450)])
        def check(policy: tuple[QualificationWindow, Downgrade, int, bool],
                  ops: list[Op]) -> None:
            nonlocal evaluations
            raised = _run(storage, policy, ops, 2, recorded=False, factory=self.make_loyalty)
            assert raised == _run(storage, policy, ops, 1, recorded=True,
                                  factory=self.make_loyalty)
            evaluations += raised[2]

        check()
        assert evaluations, "no example's due work lifted a member (with a protection)"
