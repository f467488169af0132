"""The rewards part of the storage contract (DESIGN §7, scenarios V1-V4).

:class:`RewardContract` is mixed into :class:`loyaltykit.testing.contract.StorageContract`,
so every backend runs it (a backend may also run it alone): redemption takes points,
stock and limits and issues a voucher whose code is unique in the program; every
refusal writes nothing; a cancelled voucher gives everything back exactly; expiry by
due work; idempotent replays; the guarded stock counter under concurrent redemptions
(threads); and the store's own rules probed directly.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import attrs
import pendulum
import pytest

from loyaltykit import (
    CapPeriod,
    CodeSpec,
    DueWorkReport,
    FixedDiscount,
    FreeItem,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidCode,
    InvalidPayment,
    Money,
    NotReversible,
    Order,
    OrderLine,
    OutOfStock,
    Program,
    RedemptionLimitReached,
    Reward,
    RewardLimit,
    RewardNotAvailable,
    RewardNotFound,
    RewardPolicy,
    SerializationFailure,
    Storage,
    TestClock,
    Tier,
    TierNotAllowed,
    TierPolicy,
    Voucher,
    VoucherAlreadyUsed,
    VoucherNotFound,
    VoucherNotUsable,
    VoucherStatus,
)
from loyaltykit._errors import DuplicateKey
from loyaltykit.storage import RewardChanges
from loyaltykit.testing.contract.base import (
    L_EXPIRY,
    ContractPart,
    LoyaltyFactory,
    check_ledger,
    make_program,
)

__all__ = ["RewardContract", "reward_program", "v_coffee", "v_mug"]

_BERLIN = pendulum.timezone("Europe/Berlin")


def _berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=_BERLIN)


def v_coffee(**changes: Any) -> Reward:
    """Scenario V's ``coffee`` (500 points, 5.00 EUR off, stock 2, 1 per member per
    calendar month, April 2026 in Berlin, vouchers valid 30 days)."""
    fields: dict[str, Any] = {
        "id": "coffee", "name": "Coffee voucher", "cost": 500,
        "kind": FixedDiscount(Money("5.00", "EUR")), "stock": 2,
        "per_member": RewardLimit(1, CapPeriod.MONTH),
        "starts_at": _berlin(2026, 4, 1), "ends_at": _berlin(2026, 5, 1), "valid_days": 30,
    }
    fields.update(changes)
    return Reward(**fields)


def v_mug() -> Reward:
    """Scenario V's ``mug`` (1,200 points, free item, gold members only)."""
    return Reward("mug", "Mug", 1200, FreeItem("mug"), tiers=frozenset({"gold"}))


def reward_program(*rewards: Reward, program_id: str = "V") -> Program:
    """Scenario V's program (Europe/Berlin, EUR, 12-month expiry rounded up to the
    month, soonest-expiring first, tiers member and gold at 5,000 points) with
    ``rewards`` (default: coffee and mug)."""
    base = make_program(program_id, expiry=L_EXPIRY)
    return Program(
        id=base.id, time_zone=base.time_zone, currency=base.currency,
        point_value=base.point_value, wallets=base.wallets, ledger=base.ledger,
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("gold", 5000))),
        rewards=RewardPolicy(catalogue=rewards or (v_coffee(), v_mug())))


class _V:
    """A facade on program V with a test clock; ``members`` earn ``points`` at ``at``."""

    def __init__(self, factory: LoyaltyFactory, storage: Storage, *rewards: Reward,
                 start: dt.datetime | None = None) -> None:
        self.storage = storage
        self.clock = TestClock(start or _berlin(2026, 1, 1))
        self.loyalty = factory(reward_program(*rewards), storage, clock=self.clock)
        self.rewards = self.loyalty.rewards

    def at(self, when: dt.datetime) -> dt.datetime:
        self.clock.set(when)
        return when

    def earn(self, member_id: str, points: int, when: dt.datetime) -> None:
        self.at(when)
        self.loyalty.enrol(member_id, key=f"enrol:{member_id}")  # again: replayed
        self.loyalty.earn(member_id, points, key=f"earn:{member_id}:{when.isoformat()}")

    def available(self, member_id: str) -> int:
        return self.loyalty.balance(member_id).available

    def state(self, *member_ids: str) -> tuple[Any, ...]:
        """What a refusal must leave as it was: balances, stocks, vouchers, statements."""
        stocks = tuple(self.rewards.stock(r.id) for r in self.loyalty.program.rewards.catalogue
                       ) if self.loyalty.program.rewards is not None else ()
        return (
            stocks,
            tuple(self.loyalty.balance(m) for m in member_ids),
            tuple(tuple(self.rewards.vouchers(m)) for m in member_ids),
            tuple(self.loyalty.statement(m).lines for m in member_ids),
        )


class RewardContract(ContractPart):
    """Rewards and vouchers on a backend; see the module docstring."""

    # -- scenario V1 ------------------------------------------------------------------------

    def test_v1_stock_limits_window_and_tier(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        for m in ("M", "N", "O"):
            v.earn(m, 1500, _berlin(2026, 3, 1))
        # 1. M redeems coffee: a voucher with a check-charactered code
        v.at(_berlin(2026, 4, 10, 10))
        got = v.rewards.redeem("M", "coffee", key="r1")
        voucher = got.voucher
        assert voucher.status is VoucherStatus.ISSUED and voucher.member_id == "M"
        assert v.rewards.check_code(voucher.shown.lower()) == voucher.code
        assert voucher.expires_at == _berlin(2026, 5, 10, 10)
        assert (v.available("M"), got.balance.available) == (1000, 1000)
        assert v.rewards.stock("coffee") == 1
        # 2. again in the same month: refused, nothing written
        v.at(_berlin(2026, 4, 12, 9))
        before = v.state("M")
        with pytest.raises(RedemptionLimitReached) as limit:
            v.rewards.redeem("M", "coffee", key="r2")
        assert limit.value.details["period"] == "month"
        assert v.state("M") == before
        # 3. N takes the last one; O is refused
        v.rewards.redeem("N", "coffee", key="r3")
        assert (v.available("N"), v.rewards.stock("coffee")) == (1000, 0)
        before = v.state("O", "M", "N")
        with pytest.raises(OutOfStock):
            v.rewards.redeem("O", "coffee", key="r4")
        assert v.state("O", "M", "N") == before
        assert v.available("O") == 1500
        # 5. M is not gold: the mug is refused, nothing written
        before = v.state("M")
        with pytest.raises(TierNotAllowed) as tier:
            v.rewards.redeem("M", "mug", key="r5")
        assert tier.value.details["tier"] == "member"
        assert v.state("M") == before
        check_ledger(v.loyalty, ["M", "N", "O"])

    def test_v1_window_edges_in_the_program_zone(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage, v_coffee(stock=None, per_member=None))
        v.earn("M", 1500, _berlin(2026, 3, 1))
        v.at(dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC))
        before = v.state("M")
        with pytest.raises(RewardNotAvailable) as early:
            v.rewards.redeem("M", "coffee", key="early",
                             at=dt.datetime(2026, 3, 31, 21, 30, tzinfo=dt.UTC))
        assert early.value.details["when"] == "not_yet"
        assert v.state("M") == before
        v.rewards.redeem("M", "coffee", key="in",
                         at=dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC))
        # the window ends at 1 May 00:00 Berlin, not included
        v.at(_berlin(2026, 5, 1))
        v.rewards.redeem("M", "coffee", key="last", at=_berlin(2026, 4, 30, 23, 59))
        before = v.state("M")
        with pytest.raises(RewardNotAvailable) as late:
            v.rewards.redeem("M", "coffee", key="late", at=_berlin(2026, 5, 1))
        assert late.value.details["when"] == "ended"
        assert v.state("M") == before
        assert v.available("M") == 500

    def test_a_gold_member_redeems_the_mug(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("G", 6000, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 4, 2))
        got = v.rewards.redeem("G", "mug", key="mug")
        assert got.balance.available == 4800 and got.voucher.expires_at is None

    # -- scenario V2 ------------------------------------------------------------------------

    def test_v2_cancel_restores_lots_stock_and_limit_exactly(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 300, _berlin(2026, 1, 15))  # lot A, expires 2027-02-01 Berlin
        v.earn("M", 1200, _berlin(2026, 3, 1))  # lot B, expires 2027-04-01 Berlin
        lots = {lot.expires_at: lot for lot in v.loyalty.lots("M")}
        a, b = lots[_berlin(2027, 2, 1)], lots[_berlin(2027, 4, 1)]
        v.at(_berlin(2026, 4, 10, 10))
        got = v.rewards.redeem("M", "coffee", key="r1")
        spend = v.loyalty.transaction(got.transaction_id)
        assert sorted((m.lot_id, m.delta) for m in spend.movements) == sorted(
            [(a.id, -300), (b.id, -200)])
        v.at(_berlin(2026, 4, 11))
        cancelled = v.rewards.cancel(got.voucher.shown, key="c1", reason="changed mind")
        assert cancelled.status is VoucherStatus.CANCELLED and cancelled.refund_id is not None
        after = {lot.id: lot for lot in v.loyalty.lots("M")}
        assert (after[a.id].remaining, after[a.id].expires_at) == (300, _berlin(2027, 2, 1))
        assert (after[b.id].remaining, after[b.id].expires_at) == (1200, _berlin(2027, 4, 1))
        assert v.rewards.stock("coffee") == 2 and v.available("M") == 1500
        # the limit is given back: M may redeem coffee again this month
        again = v.rewards.redeem("M", "coffee", key="r2")
        # a used voucher cannot be cancelled: refused, nothing written
        v.rewards.use(again.voucher.code, order_id="1001", key="u1")
        before = v.state("M")
        with pytest.raises(VoucherAlreadyUsed) as used:
            v.rewards.cancel(again.voucher.code, key="c2")
        assert used.value.details["order_id"] == "1001"
        assert v.state("M") == before
        # and a cancelled one cannot be used or cancelled again
        with pytest.raises(VoucherNotUsable) as refused:
            v.rewards.use(got.voucher.code, order_id="1002", key="u2")
        assert refused.value.details["status"] == "cancelled"
        with pytest.raises(VoucherNotUsable) as refused:
            v.rewards.cancel(got.voucher.code, key="c3")
        assert refused.value.details["status"] == "cancelled"
        assert v.state("M") == before
        check_ledger(v.loyalty, ["M"])

    def test_a_voucher_spend_comes_back_only_through_its_voucher(
            self, storage: Storage) -> None:
        """A direct ``reverse`` of a redemption's spend would give the points back while
        the voucher stays usable, and naming it as an order's payment would let the
        order's cancellation do the same: both refused, nothing written."""
        v = _V(self.make_loyalty, storage)
        v.earn("M", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("M", "coffee", key="r", at=v.at(_berlin(2026, 4, 10)))
        before = v.state("M")
        with pytest.raises(NotReversible) as refused:
            v.loyalty.reverse(got.transaction_id, key="undo")
        assert refused.value.details["code"] == got.voucher.code
        order = Order(id="o1", member_id="M", placed_at=_berlin(2026, 4, 10),
                      currency="EUR", lines=(OrderLine(sku="cup", quantity=1,
                                                       unit_price=Money("5.00", "EUR")),))
        with pytest.raises(InvalidPayment) as paid:
            v.loyalty.record_order(order, paid_with=[got.transaction_id])
        assert paid.value.details["transaction_id"] == str(got.transaction_id)
        assert v.state("M") == before
        # an ordinary spend is still reversed as before
        spent = v.loyalty.spend("M", 100, key="s", metadata={"voucher_id": "shop's own"})
        v.loyalty.reverse(spent.transaction_id, key="undo-s")
        assert v.available("M") == 1000
        # and the voucher's own cancel gives its points back
        v.rewards.cancel(got.voucher.code, key="c")
        assert v.available("M") == 1500
        check_ledger(v.loyalty, ["M"])

    # -- scenario V3 ------------------------------------------------------------------------

    def test_v3_due_work_expires_the_voucher_and_keeps_the_points(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 1500, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 4, 10, 10))
        got = v.rewards.redeem("M", "coffee", key="r1")
        assert got.voucher.expires_at == _berlin(2026, 5, 10, 10)
        v.at(_berlin(2026, 5, 10, 9, 59))
        assert v.loyalty.run_due().expired_vouchers == 0
        v.at(_berlin(2026, 5, 10, 10, 1))
        report = v.loyalty.run_due()
        assert isinstance(report, DueWorkReport)
        assert (report.expired_vouchers, report.refunded_vouchers) == (1, 0)
        expired = v.rewards.voucher(got.voucher.code)
        assert (expired.status, expired.expired_at) == (VoucherStatus.EXPIRED,
                                                        _berlin(2026, 5, 10, 10))
        v.at(_berlin(2026, 5, 10, 10, 5))
        before = v.state("M")
        with pytest.raises(VoucherNotUsable) as refused:
            v.rewards.use(got.voucher.code, order_id="1001", key="u1")
        assert refused.value.details["status"] == "expired"
        assert v.state("M") == before and v.available("M") == 1000
        # the item of stock came back; the redemption still counts against limits
        assert v.rewards.stock("coffee") == 2
        assert v.loyalty.run_due().expired_vouchers == 0  # nothing more to do

    def test_due_work_expires_vouchers_of_a_version_that_had_rewards(
            self, storage: Storage) -> None:
        """A later program version without rewards still expires (and refunds) the
        vouchers an earlier version issued."""
        v = _V(self.make_loyalty, storage, v_coffee(refund_on_expiry=True))
        v.earn("M", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("M", "coffee", key="r1", at=v.at(_berlin(2026, 4, 10, 10)))
        first = v.loyalty.program
        plain = Program.from_dict({**first.to_dict(), "version": 2, "rewards": None,
                                   "effective_from": _berlin(2026, 4, 20).isoformat()})
        v.at(_berlin(2026, 4, 21))
        later = self.make_loyalty(plain, storage, clock=v.clock)
        v.at(_berlin(2026, 5, 11))
        report = later.run_due()
        assert (report.expired_vouchers, report.refunded_vouchers) == (1, 1)
        assert v.rewards.voucher(got.voucher.code).status is VoucherStatus.EXPIRED
        assert later.balance("M").available == 1500
        check_ledger(later, ["M"])

    def test_v3_use_is_refused_at_expiry_even_before_due_work(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("M", "coffee", key="r1", at=v.at(_berlin(2026, 4, 10, 10)))
        v.at(_berlin(2026, 5, 10, 10))
        with pytest.raises(VoucherNotUsable) as refused:
            v.rewards.use(got.voucher.code, order_id="1001", key="u1")
        assert refused.value.details["status"] == "expired"
        assert v.rewards.voucher(got.voucher.code).status is VoucherStatus.ISSUED
        # one microsecond earlier it is still usable
        used = v.rewards.use(got.voucher.code, order_id="1001", key="u2",
                             at=_berlin(2026, 5, 10, 10) - dt.timedelta(microseconds=1))
        assert used.status is VoucherStatus.USED and used.order_id == "1001"

    def test_refund_on_expiry_gives_the_points_back_to_their_lots(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage, v_coffee(refund_on_expiry=True, valid_days=3))
        v.earn("M", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("M", "coffee", key="r1", at=v.at(_berlin(2026, 4, 10, 10)))
        v.at(_berlin(2026, 4, 20))
        report = v.loyalty.run_due()
        assert (report.expired_vouchers, report.refunded_vouchers) == (1, 1)
        voucher = v.rewards.voucher(got.voucher.code)
        assert voucher.status is VoucherStatus.EXPIRED and voucher.refund_id is not None
        assert v.available("M") == 1500
        assert [lot.expires_at for lot in v.loyalty.lots("M")] == [_berlin(2027, 4, 1)]
        # the global limit still counts it; the per-member month too
        with pytest.raises(RedemptionLimitReached):
            v.rewards.redeem("M", "coffee", key="r2")
        check_ledger(v.loyalty, ["M"])

    # -- limits over other periods ------------------------------------------------------------

    def test_a_rolling_limit_counts_the_last_days_on_the_wall_clock(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage, v_coffee(
            stock=None, per_member=RewardLimit(2, CapPeriod.ROLLING, days=7),
            starts_at=None, ends_at=None))
        v.earn("M", 5000, _berlin(2026, 3, 1))
        # across the DST change of 2026-03-29: 7 wall-clock days are 167 hours
        v.rewards.redeem("M", "coffee", key="a", at=v.at(_berlin(2026, 3, 26, 12)))
        v.rewards.redeem("M", "coffee", key="b", at=v.at(_berlin(2026, 3, 28, 12)))
        v.at(_berlin(2026, 4, 2, 11, 59))
        before = v.state("M")
        with pytest.raises(RedemptionLimitReached):
            v.rewards.redeem("M", "coffee", key="c")
        assert v.state("M") == before
        # the first redemption leaves the window 7 days later on the wall clock
        v.rewards.redeem("M", "coffee", key="d", at=v.at(_berlin(2026, 4, 2, 12)))
        assert v.available("M") == 3500

    def test_a_lifetime_limit_and_a_global_limit(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage, v_coffee(
            stock=None, per_member=RewardLimit(1), global_limit=2, starts_at=None,
            ends_at=None, valid_days=None))
        for m in ("A", "B", "C"):
            v.earn(m, 1000, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 6, 1))
        first = v.rewards.redeem("A", "coffee", key="a1")
        with pytest.raises(RedemptionLimitReached):
            v.rewards.redeem("A", "coffee", key="a2")
        v.rewards.redeem("B", "coffee", key="b1")
        before = v.state("C")
        with pytest.raises(OutOfStock) as out:
            v.rewards.redeem("C", "coffee", key="c1")
        assert out.value.details["global_limit"] == 2
        assert v.state("C") == before
        assert v.rewards.stock("coffee") is None
        # a cancelled voucher gives its place in the global limit back
        v.rewards.cancel(first.voucher.code, key="cancel")
        v.rewards.redeem("C", "coffee", key="c2")
        assert v.available("C") == 500

    # -- refusals and replays -------------------------------------------------------------------

    def test_refusals_write_nothing(self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 400, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 4, 10))
        before = v.state("M")
        with pytest.raises(InsufficientPoints):
            v.rewards.redeem("M", "coffee", key="poor")
        with pytest.raises(RewardNotFound):
            v.rewards.redeem("M", "tea", key="tea")
        assert v.state("M") == before
        with pytest.raises(VoucherNotFound):
            v.rewards.use(CodeSpec().display(CodeSpec().draw(lambda n: 3)), order_id="o",
                          key="u")
        with pytest.raises(InvalidCode):
            v.rewards.use("not a code", order_id="o", key="u2")
        assert v.state("M") == before
        # the refused key is free for the next request
        v.earn("M", 100, _berlin(2026, 4, 10, 1))
        assert v.rewards.redeem("M", "coffee", key="poor").balance.available == 0

    def test_a_redemption_replays_under_its_key_and_refuses_another_request(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 1500, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 4, 10))
        first = v.rewards.redeem("M", "coffee", key="k")
        assert v.rewards.redeem("M", "coffee", key="k") == first
        with pytest.raises(IdempotencyConflict):
            v.rewards.redeem("M", "mug", key="k")
        used = v.rewards.use(first.voucher.code, order_id="1", key="u")
        assert v.rewards.use(first.voucher.code, order_id="1", key="u") == used
        assert v.available("M") == 1000 and v.rewards.stock("coffee") == 1
        assert v.rewards.vouchers("M") == [used]
        assert v.rewards.vouchers("M", VoucherStatus.ISSUED) == []

    def test_voucher_codes_are_unique_in_the_program(self, storage: Storage) -> None:
        """A drawn code that is taken is drawn again (a tiny keyspace forces it)."""
        program = reward_program(v_coffee(stock=None, per_member=None))
        assert program.rewards is not None
        draws = iter([1, 2, 3, 4, 5, 6, 7, 8] * 2 + [9, 10, 11, 12, 13, 14, 15, 16] * 100)
        clock = TestClock(_berlin(2026, 3, 1))
        loyalty = self.make_loyalty(program, storage, clock=clock,
                                    randbelow=lambda n: next(draws) % n)
        loyalty.enrol("M", key="e")
        loyalty.earn("M", 1000, key="earn")
        clock.set(_berlin(2026, 4, 2))
        one = loyalty.rewards.redeem("M", "coffee", key="1").voucher
        two = loyalty.rewards.redeem("M", "coffee", key="2").voucher
        assert one.code != two.code
        assert [x.code for x in loyalty.rewards.vouchers("M")] == [one.code, two.code]

    # -- concurrency ------------------------------------------------------------------------------

    def test_concurrent_redemptions_never_take_more_than_the_stock(
            self, storage: Storage) -> None:
        """V4 with threads: stock 3, 8 members at once: exactly 3 vouchers."""
        v = _V(self.make_loyalty, storage, v_coffee(stock=3, per_member=None))
        members = [f"m{i}" for i in range(8)]
        for m in members:
            v.earn(m, 1000, _berlin(2026, 3, 1))
        v.at(_berlin(2026, 4, 10))
        barrier = threading.Barrier(len(members))
        outcomes: dict[str, str] = {}

        def race(member_id: str) -> None:
            barrier.wait()
            try:
                v.rewards.redeem(member_id, "coffee", key=f"r:{member_id}")
                outcomes[member_id] = "voucher"
            except OutOfStock:
                outcomes[member_id] = "out"

        threads = [threading.Thread(target=race, args=(m,)) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes.values()) == ["out"] * 5 + ["voucher"] * 3
        assert sum(v.available(m) for m in members) == 8 * 1000 - 3 * 500
        assert v.rewards.stock("coffee") == 0
        assert sum(len(v.rewards.vouchers(m)) for m in members) == 3

    def test_export_holds_the_vouchers_and_erase_keeps_them_under_the_key(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("alice", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("alice", "coffee", key="r", at=v.at(_berlin(2026, 4, 10)))
        exported = v.loyalty.privacy.export("alice")["vouchers"]
        assert [(x["code"], x["member_id"], x["status"]) for x in exported] == [
            (got.voucher.code, "alice", "issued")]
        erased = v.loyalty.privacy.erase("alice")
        assert erased.erased_as is not None
        kept = v.rewards.voucher(got.voucher.code)
        assert kept.member_id == erased.erased_as  # accounting stays, the person goes
        assert v.rewards.vouchers(erased.erased_as) == [kept]
        assert v.rewards.stock("coffee") == 1

    # -- the store itself -------------------------------------------------------------------

    def _store_voucher(self, program_id: str, member_id: str, code: str,
                       tx: uuid.UUID) -> Voucher:
        return Voucher(id=uuid.uuid4(), program_id=program_id, code=code, shown=code,
                       member_id=member_id, reward_id="coffee", version=1, wallet="points",
                       cost=500, transaction_id=tx, status=VoucherStatus.ISSUED,
                       issued_at=_berlin(2026, 4, 10), expires_at=_berlin(2026, 5, 10))

    def test_the_store_takes_and_releases_counters_and_refuses_a_second_code(
            self, storage: Storage) -> None:
        v = _V(self.make_loyalty, storage)
        v.earn("M", 1500, _berlin(2026, 3, 1))
        got = v.rewards.redeem("M", "coffee", key="r", at=v.at(_berlin(2026, 4, 10)))
        with storage.unit_of_work("V") as uow:
            assert uow.rewards.counters("coffee") == (1, 1)
            assert uow.rewards.counters("mug") == (0, 0)
            assert uow.rewards.take("coffee", 2, None) is True
            assert uow.rewards.take("coffee", 2, None) is False
            assert uow.rewards.take("mug", None, 1) is True
            assert uow.rewards.take("mug", None, 1) is False
            assert uow.rewards.take("tea", 0, None) is False
            uow.rewards.release("coffee", 1, 0)
            assert uow.rewards.counters("coffee") == (1, 2)
            stored = uow.rewards.get_voucher(got.voucher.code)
            assert stored is not None
            twin = self._store_voucher("V", stored.member_id, stored.code,
                                       stored.transaction_id)
            with pytest.raises(DuplicateKey) as dup:
                uow.rewards.write(RewardChanges(vouchers={twin.id: twin},
                                                new_vouchers={twin.id}))
            assert dup.value.details["code"] == stored.code
            # not committed: nothing of it stays
        with storage.unit_of_work("V") as uow:
            assert uow.rewards.counters("coffee") == (1, 1)
            assert uow.rewards.counters("mug") == (0, 0)
            stored = uow.rewards.get_voucher(got.voucher.code)
            assert stored is not None
            assert uow.rewards.due_vouchers(_berlin(2026, 5, 10), 10) == [stored]
            assert uow.rewards.due_vouchers(_berlin(2026, 5, 9), 10) == []
            # an update of a voucher that is no longer issued is a concurrent change
            used = attrs.evolve(stored, status=VoucherStatus.USED)
            uow.rewards.write(RewardChanges(vouchers={used.id: used}))
            with pytest.raises(SerializationFailure):
                uow.rewards.write(RewardChanges(vouchers={used.id: attrs.evolve(
                    stored, status=VoucherStatus.CANCELLED)}))
