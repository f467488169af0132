"""The history import part of the storage contract: ``record_orders`` gives what
recording the same orders one by one gives (balances, lots, tiers, order records, the
earning counters), skips what is recorded (a second run, a run resumed after a crash),
refuses an order of a member not enrolled (nothing written for it), reports progress
and refuses bad input before writing.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltykit import (
    EarningPolicy,
    ImportResult,
    InvalidInput,
    InvalidOrder,
    Loyalty,
    LoyaltyError,
    MemberNotFound,
    Money,
    Order,
    OrderAlreadyRecorded,
    OrderLine,
    Program,
    RateRule,
    ReferralPolicy,
    ReferralReward,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit._member_keys import KeyedStorage
from loyaltykit.testing import strategies as lst
from loyaltykit.testing.capability_machine import tier_policies
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory, make_program, utc

__all__ = ["OrderImportContract", "import_snapshot", "outbox_snapshot"]

_programs = itertools.count()
#: the instant of the streams' first order; the clock stands well after the last
START = utc(2025, 3, 1, 9)
NOW = utc(2026, 6, 1)


class _Crash(Exception):
    """What the progress callback raises to stop an import mid-way."""


def _normal(value: Any, program_id: str) -> Any:
    """``value`` with ids drawn by the run (UUIDs) and the program id blanked: two
    programs fed the same calls then compare equal."""
    if isinstance(value, uuid.UUID):
        return "<id>"
    if isinstance(value, str):
        return "<program>" if value == program_id else value
    if isinstance(value, dict):
        return {k: _normal(v, program_id) for k, v in value.items() if k != "result"}
    if isinstance(value, list | tuple):
        return [_normal(v, program_id) for v in value]
    if attrs.has(type(value)):
        return _normal(attrs.asdict(value, recurse=False), program_id)
    return value


def import_snapshot(loyalty: Loyalty, members: Sequence[str],
                    order_ids: Sequence[str]) -> dict[str, Any]:
    """What one program shows of these members and orders, ids blanked: balances, open
    lots, statements, tier status and history, order records (without the stored
    result, whose ids differ), the earning counters on the accounts and the stored tier
    states (their versions count the writes of each)."""
    program_id = loyalty.program.id
    out: dict[str, Any] = {}
    # the counters: no public read shows them whole (read through the shop-id
    # translation, on the facade's storage, so any facade on it can be looked into)
    with KeyedStorage(loyalty.storage).read_unit_of_work(program_id) as uow:
        out["activity"] = {m: (a.activity if (a := uow.ledger.get_account(
            loyalty.program.default_wallet, m)) else None) for m in members}
        if loyalty.program.tiers is not None:
            out["tier states"] = {m: uow.tiers.get_tier_state(m) for m in members}
    for m in members:
        try:
            out[f"balance {m}"] = loyalty.balance(m)
        except MemberNotFound:
            out[f"balance {m}"] = None
            continue
        out[f"member {m}"] = loyalty.member(m)
        out[f"lots {m}"] = sorted(map(repr, _normal(loyalty.lots(m), program_id)))
        lines = loyalty.statement(m, limit=500).lines
        out[f"statement {m}"] = [(line.kind, line.points, line.balance, line.occurred_at,
                                  line.reason) for line in lines]
        if loyalty.program.tiers is not None:
            out[f"tier {m}"] = loyalty.tiers.status(m)
            out[f"tier history {m}"] = loyalty.tiers.history(m)
    for order_id in order_ids:
        try:
            out[f"order {order_id}"] = loyalty.order(order_id)
        except LoyaltyError as exc:
            out[f"order {order_id}"] = type(exc).__name__
    shown: dict[str, Any] = _normal(out, program_id)
    return shown


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def outbox_snapshot(loyalty: Loyalty, members: Sequence[str]) -> dict[str, list[str]]:
    """Each member's outbox events in position order, as text: type, version, member,
    instants and the payload's JSON as stored (its keys in their order), each id (the
    event's, and those the payload names) replaced by the order it first appears in
    among the member's events, so the events of two programs fed the same calls compare
    equal, ids and what they refer to included. Members' events, not the whole outbox:
    an import enrols a batch's members before their orders, one by one enrols first."""
    out: dict[str, list[str]] = {}
    with KeyedStorage(loyalty.storage).read_unit_of_work(loyalty.program.id) as uow:
        for member in members:
            seen: dict[str, str] = {}
            named = functools.partial(_named, seen)
            out[member] = [_UUID.sub(named, "|".join((
                str(e.id), e.type, str(e.version), e.member_id, e.occurred_at.isoformat(),
                e.recorded_at.isoformat(), json.dumps(e.payload))))
                for e in uow.outbox.member_events(member)]
    return out


def _named(seen: dict[str, str], found: re.Match[str]) -> str:
    return seen.setdefault(found.group(0), f"<id {len(seen)}>")


@attrs.frozen
class _Return:
    order_id: str
    line: str
    quantity: int
    at: dt.datetime


@st.composite
def _streams(draw: st.DrawFn) -> tuple[Program, list[Order | _Return], int]:
    """A program (caps, stamp cards, maybe tiers), a time-ordered stream of orders of
    up to three members with returns in between, and a batch size."""
    earning = draw(lst.earning_policies(
        max_rules=4, kinds=("rate", "multiplier", "fixed", "stamp_card")))
    tiers = draw(st.none() | tier_policies())
    program = attrs.evolve(make_program("x"), earning=earning, tiers=tiers)
    members = ["ann", "bob", "cy"][:draw(st.integers(1, 3))]
    stream: list[Order | _Return] = []
    placed: list[Order] = []
    for i in range(draw(st.integers(1, 9))):
        at = START + dt.timedelta(days=draw(st.integers(0, 40)), hours=3 * i)
        at = max(at, placed[-1].placed_at + dt.timedelta(hours=3)) if placed else at
        order = draw(lst.orders(member_id=draw(st.sampled_from(members)),
                                placed_at=st.just(at), max_lines=3))
        order = attrs.evolve(order, id=f"o{i}")
        stream.append(order)
        placed.append(order)
        if draw(st.integers(0, 3)) == 0:
            returned = draw(st.sampled_from(placed))
            line = draw(st.sampled_from(returned.lines))
            stream.append(_Return(returned.id, line.id, draw(st.integers(1, line.quantity)),
                                  at + dt.timedelta(hours=1)))
    return program, stream, draw(st.integers(1, 4))


def _facade(factory: LoyaltyFactory, storage: Storage, program: Program, name: str
            ) -> Loyalty:
    return factory(attrs.evolve(program, id=f"{name}{next(_programs)}"), storage,
                   clock=TestClock(NOW))


def _order(i: int, member_id: str, at: dt.datetime, price: str = "10.00") -> Order:
    return Order(id=f"o{i}", member_id=member_id, placed_at=at, currency="EUR",
                 lines=(OrderLine(sku="cd", quantity=1, unit_price=Money(price, "EUR")),))


def _rate_program() -> Program:
    return attrs.evolve(make_program("x"), earning=EarningPolicy(rules=(RateRule(id="base"),)))


def _referral_program() -> Program:
    return attrs.evolve(_rate_program(), referrals=ReferralPolicy(
        reward=ReferralReward(referrer=100, referee=50), min_net=Money("1.00", "EUR"),
        return_window_days=0, attach_within_days=365, existing_customers=True))


def _referred(factory: LoyaltyFactory, storage: Storage, program: Program, name: str
              ) -> tuple[Loyalty, Loyalty]:
    """Two programs (the import's and the reference's) where "ann" referred "bob"."""
    facades = (_facade(factory, storage, program, name),
               _facade(factory, storage, program, f"{name}one"))
    for loyalty in facades:
        loyalty.enrol("ann", at=START - dt.timedelta(days=1))
        loyalty.enrol("bob", at=START - dt.timedelta(days=1))
        code = loyalty.referrals.issue_code("ann", key="code").code
        loyalty.referrals.refer("bob", code, key="refer", at=START)
    return facades


def _import_equals_one_by_one(factory: LoyaltyFactory, storage: Storage, program: Program,
                              stream: list[Order | _Return], batch_size: int) -> None:
    imported, one_by_one = (_facade(factory, storage, program, "imp"),
                            _facade(factory, storage, program, "one"))
    orders = [s for s in stream if isinstance(s, Order)]
    first: dict[str, dt.datetime] = {}
    for order in orders:
        first.setdefault(order.member_id, order.placed_at)
    for member_id, at in first.items():  # the reference enrols first
        one_by_one.enrol(member_id, at=at)
    segment: list[Order] = []
    total, points = ImportResult(), 0
    for n, step in enumerate([*stream, None]):
        if isinstance(step, Order):
            points += one_by_one.record_order(step).points
            segment.append(step)
            continue
        total += imported.record_orders(segment, enrol=True, batch_size=batch_size)
        segment = []
        if step is None:
            break
        outcomes: list[object] = []
        for loyalty in (one_by_one, imported):
            try:
                done = loyalty.record_return(step.order_id, {step.line: step.quantity},
                                             key=f"r{n}", at=step.at)
                outcomes.append((done.points_after, done.clawed_back))
            except LoyaltyError as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1]
    assert (len(orders), 0, len(first), (), points) == (
        total.recorded, total.skipped, total.enrolled, total.failed, total.points)
    ids = [o.id for o in orders]
    assert import_snapshot(one_by_one, list(first), ids) == import_snapshot(
        imported, list(first), ids)
    assert outbox_snapshot(one_by_one, list(first)) == outbox_snapshot(imported, list(first))


class OrderImportContract(ContractPart):
    """The history import on a backend (see the module docstring)."""

    def test_import_equals_recording_one_by_one(self, storage: Storage) -> None:
        """Random streams (caps, stamp cards, tiers, returns between imports): the
        import gives what recording one by one gives, two programs of one storage."""

        @settings(max_examples=8, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(world=_streams())
        def check(world: tuple[Program, list[Order | _Return], int]) -> None:
            _import_equals_one_by_one(self.make_loyalty, storage, *world)

        check()

    def test_running_again_skips_what_is_recorded(self, storage: Storage) -> None:
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "again")
        orders = [_order(i, f"m{i % 3}", START + dt.timedelta(days=i)) for i in range(7)]
        first = loyalty.record_orders(orders, enrol=True, batch_size=3)
        assert (7, 0, 3, 70, (), 3) == (first.recorded, first.skipped, first.enrolled,
                                        first.points, first.failed, first.batches)
        before = import_snapshot(loyalty, ["m0", "m1", "m2"], [o.id for o in orders])
        again = loyalty.record_orders(orders, enrol=True, batch_size=3)
        assert (0, 7, 0, 0, ()) == (again.recorded, again.skipped, again.enrolled,
                                    again.points, again.failed)
        assert before == import_snapshot(loyalty, ["m0", "m1", "m2"], [o.id for o in orders])
        # record_order and enrol replay what the import recorded
        assert 10 == loyalty.record_order(orders[0]).points
        assert START == loyalty.enrol("m0", at=START).enrolled_at
        assert 30 == loyalty.balance("m0").total

    def test_a_crash_after_a_batch_keeps_it_and_a_rerun_goes_on(self,
                                                                storage: Storage) -> None:
        program = _rate_program()
        crashed, whole = (_facade(self.make_loyalty, storage, program, "crash"),
                          _facade(self.make_loyalty, storage, program, "whole"))
        orders = [_order(i, f"m{i % 4}", START + dt.timedelta(days=i)) for i in range(10)]
        calls: list[tuple[int, int | None]] = []

        def progress(done: int, total: int | None) -> None:
            calls.append((done, total))
            if len(calls) == 2:
                raise _Crash

        with pytest.raises(_Crash):
            crashed.record_orders(orders, enrol=True, batch_size=3, on_progress=progress)
        assert [(3, 10), (6, 10)] == calls
        with pytest.raises(LoyaltyError):
            crashed.order("o6")  # the batch after the crash never ran
        assert 10 == crashed.order("o5").points
        rerun = crashed.record_orders(orders, enrol=True, batch_size=3)
        assert (4, 6, 0) == (rerun.recorded, rerun.skipped, rerun.enrolled)
        whole.record_orders(orders, enrol=True, batch_size=3)
        members, ids = [f"m{i}" for i in range(4)], [o.id for o in orders]
        assert import_snapshot(whole, members, ids) == import_snapshot(crashed, members, ids)

    def test_without_enrol_an_unknown_member_is_refused_and_nothing_written(
            self, storage: Storage) -> None:
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "strict")
        loyalty.enrol("known", at=START)
        orders = [_order(0, "known", START), _order(1, "stranger", START),
                  _order(2, "known", START + dt.timedelta(hours=1))]
        result = loyalty.record_orders([*orders, orders[1]], batch_size=5)
        assert (2, 20, 0, 0) == (result.recorded, result.points, result.enrolled,
                                 result.skipped)
        # refused twice: the first refusal recorded nothing the repeat could match
        assert ["o1", "o1"] == [order_id for order_id, _ in result.failed]
        assert all(isinstance(error, MemberNotFound) for _, error in result.failed)
        with pytest.raises(MemberNotFound):
            loyalty.member("stranger")
        with pytest.raises(LoyaltyError):
            loyalty.order("o1")
        assert 20 == loyalty.balance("known").total
        # the order goes in once its member is enrolled
        assert 1 == loyalty.record_orders(orders, enrol=True).recorded

    def test_no_version_in_force_and_other_content_are_refused_per_order(
            self, storage: Storage) -> None:
        program = attrs.evolve(_rate_program(), effective_from=START)
        loyalty = _facade(self.make_loyalty, storage, program, "refused")
        early = _order(0, "m", START - dt.timedelta(days=1))
        fine = _order(1, "m", START)
        changed = _order(1, "m", START, price="99.00")
        result = loyalty.record_orders([fine, early, changed, fine], enrol=True)
        assert (1, 1, 10) == (result.recorded, result.skipped, result.points)
        assert ["o0", "o1"] == [order_id for order_id, _ in result.failed]
        assert isinstance(result.failed[0][1], InvalidOrder)
        assert isinstance(result.failed[1][1], OrderAlreadyRecorded)
        with pytest.raises(LoyaltyError):
            loyalty.order("o0")
        assert Decimal("10.00") == Decimal(loyalty.order("o1").order["lines"][0]["unit_price"])
        again = loyalty.record_orders([changed])  # and on a later run
        assert isinstance(again.failed[0][1], OrderAlreadyRecorded)

    def test_orders_of_record_order_are_skipped_under_its_default_key_only(
            self, storage: Storage) -> None:
        """The import decides as ``record_order`` under the default key does: an order
        it recorded (same content) is skipped, one recorded under another key is
        refused."""
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "byone")
        loyalty.enrol("m", at=START)
        orders = [_order(i, "m", START + dt.timedelta(hours=i)) for i in range(3)]
        loyalty.record_order(orders[0])
        loyalty.record_order(orders[1], key="till-1")
        result = loyalty.record_orders(orders)
        assert (1, 1, 10) == (result.recorded, result.skipped, result.points)
        assert ["o1"] == [order_id for order_id, _ in result.failed]
        assert isinstance(result.failed[0][1], OrderAlreadyRecorded)
        assert 30 == loyalty.balance("m").total

    def test_progress_is_reported_after_each_batch(self, storage: Storage) -> None:
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "progress")
        orders = [_order(i, "m", START + dt.timedelta(hours=i)) for i in range(5)]
        calls: list[tuple[int, int | None]] = []
        loyalty.record_orders(orders, enrol=True, batch_size=2,
                              on_progress=lambda d, t: calls.append((d, t)))
        assert [(2, 5), (4, 5), (5, 5)] == calls
        calls.clear()
        others = [_order(i, "m", START + dt.timedelta(hours=i)) for i in range(5, 8)]
        loyalty.record_orders(iter(others), batch_size=2,
                              on_progress=lambda d, t: calls.append((d, t)))
        assert [(2, None), (3, None)] == calls  # a stream without a length

    def test_bad_input_is_refused_before_its_batch_writes(self, storage: Storage) -> None:
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "bad")
        good = [_order(i, "m", START + dt.timedelta(hours=i)) for i in range(3)]
        for kwargs in ({"batch_size": 0}, {"batch_size": True}, {"batch_size": 10**6},
                       {"enrol": "yes"}, {"on_progress": 5}, {"wallet": "nope"}):
            with pytest.raises(InvalidInput):
                loyalty.record_orders(good, **kwargs)
        for orders in (5, good[0], "orders"):
            with pytest.raises(InvalidInput):
                loyalty.record_orders(orders)  # type: ignore[arg-type]
        late = _order(9, "m", NOW + dt.timedelta(days=1))
        bad: Any
        for bad in ("not an order", late, attrs.evolve(good[0], currency="USD", lines=(
                OrderLine(sku="cd", quantity=1, unit_price=Money("1.00", "USD")),))):
            with pytest.raises(InvalidInput):
                loyalty.record_orders([*good[:2], bad], enrol=True, batch_size=2)
            # the first batch committed, the second (with the bad order) wrote nothing
            assert 20 == loyalty.balance("m").total
        with pytest.raises(LoyaltyError):
            loyalty.order("o2")

    def test_enrolling_refuses_ids_that_name_erased_members(self, storage: Storage) -> None:
        """With ``enrol=True`` an order's member id is checked as :meth:`enrol` checks
        it: an id in the erased members' namespace is refused before its batch writes."""
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "erasedns")
        good = [_order(i, "m", START + dt.timedelta(hours=i)) for i in range(2)]
        erased = _order(2, "erased:0123abcd", START)
        with pytest.raises(InvalidInput, match="erased"):
            loyalty.record_orders([*good, erased], enrol=True)
        for member_id in ("m", "erased:0123abcd"):
            with pytest.raises(MemberNotFound):
                loyalty.member(member_id)
        with pytest.raises(LoyaltyError):
            loyalty.order("o0")
        # without enrol the id is only an unknown member, refused per order
        result = loyalty.record_orders([erased])
        assert isinstance(result.failed[0][1], MemberNotFound)

    def test_the_store_reads_recorded_orders_by_ids(self, storage: Storage) -> None:
        loyalty = _facade(self.make_loyalty, storage, _rate_program(), "ids")
        loyalty.record_orders([_order(i, "m", START + dt.timedelta(hours=i)) for i in range(3)],
                              enrol=True)
        asked = ["o2", *(f"x{i}" for i in range(1200)), "o0", "o2"]  # more than one read
        with storage.unit_of_work(loyalty.program.id) as uow:
            found = uow.orders.get_orders(asked)
            assert [] == uow.orders.get_orders([])
        assert ["o0", "o2"] == sorted(o.order_id for o in found)
        assert {10} == {o.points for o in found}

    def test_a_referees_order_rewards_its_referrer_as_one_by_one(self,
                                                                storage: Storage) -> None:
        """An order can touch another member (a referral's reward): the referrer's
        later order still sees it."""
        imported, one_by_one = _referred(self.make_loyalty, storage, _referral_program(), "ref")
        orders = [_order(0, "ann", START), _order(1, "bob", START + dt.timedelta(hours=1)),
                  _order(2, "ann", START + dt.timedelta(hours=2))]
        for order in orders:
            one_by_one.record_order(order)
        assert 3 == imported.record_orders(orders, batch_size=10).recorded
        ids = [o.id for o in orders]
        assert import_snapshot(one_by_one, ["ann", "bob"], ids) == import_snapshot(
            imported, ["ann", "bob"], ids)
        assert outbox_snapshot(one_by_one, ["ann", "bob"]) == outbox_snapshot(
            imported, ["ann", "bob"])
        assert one_by_one.balance("ann").total > 20  # the reward came

    def test_a_referrers_first_order_after_its_reward_sees_it(self,
                                                             storage: Storage) -> None:
        """The batch reads its members at its start: a referrer rewarded by an earlier
        order of the batch (its referee's) is read again for its own first order."""
        program = attrs.evolve(_referral_program(),
                               tiers=TierPolicy(tiers=(Tier("base", 0), Tier("silver", 100))))
        imported, one_by_one = _referred(self.make_loyalty, storage, program, "reffirst")
        orders = [_order(0, "bob", START), _order(1, "ann", START + dt.timedelta(hours=1))]
        for order in orders:
            one_by_one.record_order(order)
        assert 2 == imported.record_orders(orders, batch_size=10).recorded
        ids = [o.id for o in orders]
        assert import_snapshot(one_by_one, ["ann", "bob"], ids) == import_snapshot(
            imported, ["ann", "bob"], ids)
        assert outbox_snapshot(one_by_one, ["ann", "bob"]) == outbox_snapshot(
            imported, ["ann", "bob"])
        assert 110 == imported.balance("ann").total  # the reward and the order's points
        assert "silver" == imported.tiers.status("ann").tier

    def test_orders_are_priced_with_the_version_in_force_at_their_instant(
            self, storage: Storage) -> None:
        """Two versions of the program: each order of a batch earns under the one in
        force when it was placed, as one by one."""
        later = START + dt.timedelta(days=10)
        facades = []
        for name in ("vers", "versone"):
            program_id = f"{name}{next(_programs)}"
            first = attrs.evolve(_rate_program(), id=program_id)
            # building stores nothing
            self.make_loyalty(first, storage, clock=TestClock(NOW)).register()
            second = attrs.evolve(first, version=2, effective_from=later, earning=EarningPolicy(
                rules=(RateRule(id="base", points=Decimal(2)),)))
            facades.append(self.make_loyalty(second, storage, clock=TestClock(NOW)))
        imported, one_by_one = facades
        orders = [_order(i, f"m{i % 3}", START + dt.timedelta(days=4 * i)) for i in range(6)]
        for order in orders[:3]:  # each member's first order
            one_by_one.enrol(order.member_id, at=order.placed_at)
        points = [one_by_one.record_order(order).points for order in orders]
        assert [10, 10, 10, 20, 20, 20] == points
        result = imported.record_orders(orders, enrol=True, batch_size=10)
        assert (6, sum(points)) == (result.recorded, result.points)
        assert [2, 2, 2] == [imported.order(o.id).version for o in orders[3:]]
        ids = [o.id for o in orders]
        members = ["m0", "m1", "m2"]
        assert import_snapshot(one_by_one, members, ids) == import_snapshot(
            imported, members, ids)

    def test_the_stores_read_a_batchs_members_as_one_by_one(self, storage: Storage) -> None:
        """The batch reads (members and accounts, tier states, tier buckets) give what
        the one-member reads give, for more members than one statement takes."""
        program = attrs.evolve(_rate_program(), tiers=TierPolicy(
            tiers=(Tier("base", 0), Tier("silver", 15))))
        loyalty = _facade(self.make_loyalty, storage, program, "reads")
        orders = [_order(i, f"m{i % 3}", START + dt.timedelta(days=80 * i)) for i in range(6)]
        loyalty.record_orders(orders, enrol=True)
        asked = ["m2", *(f"x{i}" for i in range(600)), "m0", "m1", "m0"]
        wallets = [program.default_wallet]
        # through the shop-id translation the facade reads through (and so the backend's)
        with KeyedStorage(storage).unit_of_work(loyalty.program.id) as uow:
            members = uow.ledger.load_members(asked, wallets)
            states = uow.tiers.get_tier_states(asked)
            buckets = uow.tiers.tier_buckets(asked)
            assert ({}, {}, {}) == (uow.ledger.load_members([], wallets),
                                    uow.tiers.get_tier_states([]), uow.tiers.tier_buckets([]))
            for m in ("m0", "m1", "m2"):
                one = uow.ledger.load_member(m, wallets, NOW, lock=True)
                assert one is not None
                assert (one.member, dict(one.accounts)) == members[m]
                assert uow.tiers.get_tier_state(m) == states[m]
                assert uow.tiers.tier_metric(m, utc(2000, 1, 1), None) == sum(
                    buckets[m].values())
                for start in buckets[m]:
                    assert uow.tiers.tier_metric(
                        m, start, start + dt.timedelta(days=1)) == buckets[m][start]
        assert ["m0", "m1", "m2"] == sorted(members) == sorted(states) == sorted(buckets)
        assert [20, 20, 20] == [sum(buckets[m].values()) for m in ("m0", "m1", "m2")]
