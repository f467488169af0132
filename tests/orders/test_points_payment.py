"""Points as payment (issue 19, points 4 and 5; SCENARIOS V5-V7), on every backend.

A cart's usable points under the program's payment policy; hold -> capture -> the
order records its payment; the order earns on its money-paid part only; a partial
return gives points back to the lots they came from (pro rata, points first or money
first) and money for the rest; a cancellation gives back whatever is left.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from loyaltykit import (
    EarningPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    InvalidPayment,
    InvalidProgram,
    Kind,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    OrderNotFound,
    PaymentPolicy,
    Program,
    RateRule,
    ReturnSplit,
    Rounding,
    Storage,
    TestClock,
)
from loyaltykit._payment import allocate
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract import berlin
from loyaltykit.testing.invariants import check_invariants, check_replay

EUR = "EUR"


def eur(amount: str) -> Money:
    return Money(amount, EUR)


V_POLICY = PaymentPolicy(points=100, money=eur("1.00"), min_points=500,
                         max_share=Decimal("0.5"), step=100)


def program_v(payments: PaymentPolicy | None = V_POLICY, **kw: Any) -> Program:
    """Program V of SCENARIOS.md with a points-as-payment policy."""
    return Program(
        id="V", time_zone="Europe/Berlin", currency=EUR, point_value=eur("0.01"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH)),
        earning=EarningPolicy(rules=(RateRule(id="base"),), rounding=Rounding.FLOOR),
        payments=payments, **kw)


def cart(order_id: str = "o1", member_id: str = "m", *, lines: Any = None,
         placed_at: dt.datetime | None = None) -> Order:
    """The V5 cart: beans 2 x 12.50, grinder 1 x 15.00 (goods 40.00), shipping 4.90."""
    return Order(
        id=order_id, member_id=member_id, placed_at=placed_at or berlin(2026, 5, 2, 10),
        currency=EUR, shipping=eur("4.90"),
        lines=lines or (OrderLine(sku="beans", quantity=2, unit_price=eur("12.50")),
                        OrderLine(sku="grinder", quantity=1, unit_price=eur("15.00"))))


class Shop:
    """Program V on ``storage``; member ``m`` with lot A (1,500, expires 2027-02-01 00:00
    Berlin) and lot B (1,230, expires 2027-04-01 00:00 Berlin): 2,730 available."""

    def __init__(self, storage: Storage, program: Program | None = None) -> None:
        self.storage = storage
        self.program = program or program_v()
        self.clock = TestClock(berlin(2026, 1, 15, 10))
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self.members = ["m"]
        self.loyalty.enrol("m")
        self.a = self.loyalty.earn("m", 1500, key="earn-a").transaction_id
        self.clock.set(berlin(2026, 3, 10, 9))
        self.b = self.loyalty.earn("m", 1230, key="earn-b").transaction_id
        self.clock.set(berlin(2026, 5, 2, 10))
        self.check()

    def check(self) -> None:
        check_invariants(self.storage, self.program, self.members, at=self.clock.now())

    def available(self) -> int:
        return self.loyalty.balance("m").available

    def lots(self) -> dict[uuid.UUID, tuple[int, dt.datetime | None]]:
        """Open lots by the transaction that made them: (remaining, expires_at)."""
        return {lot.transaction_id: (lot.remaining, lot.expires_at)
                for lot in self.loyalty.lots("m")}

    def pay(self, points: int, order: Order | None = None) -> Any:
        """Hold ``points`` at checkout, capture them on payment, record the order."""
        order = order or cart()
        held = self.loyalty.payments.hold(order, points, key=f"hold-{order.id}")
        captured = self.loyalty.payments.capture(held.hold_id, key=f"capture-{order.id}")
        result = self.loyalty.record_order(order, paid_with=[captured.transaction_id])
        self.check()
        return result


# -- V5: the quote, the payment, earning on the money-paid part ---------------------------


def test_v5_quote_pay_and_earn_on_the_money_paid_part(storage: Storage) -> None:
    shop = Shop(storage)
    loyalty = shop.loyalty
    quote = loyalty.payments.quote(cart())
    assert (True, 500, 2000, 100, 2730) == (quote.usable, quote.min_points, quote.max_points,
                                            quote.step, quote.available)
    assert (eur("5.00"), eur("20.00"), eur("40.00")) == (quote.min_value, quote.max_value,
                                                         quote.goods)
    loyalty.enrol("poor", at=berlin(2026, 1, 15, 10))
    shop.members.append("poor")
    loyalty.earn("poor", 450, key="earn-poor")
    poor = loyalty.payments.quote(cart("o2", "poor"))
    assert (False, 0, eur("0.00")) == (poor.usable, poor.max_points, poor.max_value)
    assert poor.reason is not None and "450" in poor.reason and "500" in poor.reason
    held = loyalty.payments.hold(cart(), 2000, key="hold")
    assert 730 == shop.available()
    captured = loyalty.payments.capture(held.hold_id, key="capture")
    assert (Kind.CAPTURE, -2000, 730) == (captured.kind, captured.points,
                                          captured.balance.available)
    result = loyalty.record_order(cart(), paid_with=[captured.transaction_id])
    # beans 25.00 - 12.50 and grinder 15.00 - 7.50: 20.00 paid in money
    assert 20 == result.points
    assert 750 == shop.available()
    assert {shop.b: (730, berlin(2027, 4, 1))} == {
        k: v for k, v in shop.lots().items() if k in (shop.a, shop.b)}
    shop.check()


def test_v5_release_on_abandonment(storage: Storage) -> None:
    shop = Shop(storage)
    held = shop.loyalty.payments.hold(cart(), 1500, key="hold")
    assert 1230 == shop.available()
    shop.loyalty.payments.release(held.hold_id, key="release")
    assert 2730 == shop.available()
    shop.check()


# -- V6: a partial return, pro rata --------------------------------------------------------


def test_v6_partial_return_pro_rata(storage: Storage) -> None:
    shop = Shop(storage)
    shop.pay(2000)
    shop.clock.set(berlin(2026, 5, 10, 12))
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    assert (750, eur("7.50")) == (back.points_refunded, back.money_refunded)
    assert (20, 12, 8) == (back.points_before, back.points_after, back.clawed_back)
    assert [Kind.REFUND] == [t.kind for t in back.restored]
    assert 1492 == shop.available()
    # the lots consumed last come back first: B's 500, then 250 of A, original expiry
    lots = shop.lots()
    assert (250, berlin(2027, 2, 1)) == lots[shop.a]
    assert (1230, berlin(2027, 4, 1)) == lots[shop.b]
    shop.check()
    check_replay(shop.loyalty, lambda: shop.loyalty.record_return(
        "o1", {"grinder": 1}, key="r1"), shop.members, original=back)


# -- V7: cancelling an order paid with points ----------------------------------------------


def test_v7_cancel_restores_every_point_to_its_lot(storage: Storage) -> None:
    shop = Shop(storage)
    shop.pay(2000)
    shop.clock.set(berlin(2026, 5, 10, 12))
    back = shop.loyalty.cancel_order("o1")
    assert (2000, eur("20.00"), 20) == (back.points_refunded, back.money_refunded,
                                        back.clawed_back)
    assert [Kind.REVERSE] == [t.kind for t in back.restored]
    assert 2730 == shop.available()
    lots = shop.lots()
    assert (1500, berlin(2027, 2, 1)) == lots[shop.a]
    assert (1230, berlin(2027, 4, 1)) == lots[shop.b]
    shop.check()


# -- the other return policies -------------------------------------------------------------


def test_points_first(storage: Storage) -> None:
    program = program_v(PaymentPolicy(points=100, money=eur("1.00"), min_points=500,
                                      max_share=Decimal("0.5"), step=100,
                                      returns=ReturnSplit.POINTS_FIRST))
    shop = Shop(storage, program)
    shop.pay(2000)
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    # 15.00 returned, all of it in points; beans 25.00 keep 5.00 of points: 20.00 money
    assert (1500, eur("0.00"), 20, 0) == (back.points_refunded, back.money_refunded,
                                          back.points_after, back.clawed_back)
    assert 750 + 1500 == shop.available()
    back = shop.loyalty.cancel_order("o1")
    assert (500, eur("20.00"), 20) == (back.points_refunded, back.money_refunded,
                                       back.clawed_back)
    assert 2730 == shop.available()
    assert {shop.a: (1500, berlin(2027, 2, 1)), shop.b: (1230, berlin(2027, 4, 1))} == {
        k: v for k, v in shop.lots().items() if k in (shop.a, shop.b)}
    shop.check()


def test_money_first(storage: Storage) -> None:
    program = program_v(PaymentPolicy(points=100, money=eur("1.00"), min_points=500,
                                      max_share=Decimal("0.5"), step=100,
                                      returns=ReturnSplit.MONEY_FIRST))
    shop = Shop(storage, program)
    shop.pay(2000)
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    # 15.00 of the 20.00 paid in money; beans 25.00 keep all 2,000 points: 5.00 money
    assert (0, eur("15.00"), 5, 15) == (back.points_refunded, back.money_refunded,
                                        back.points_after, back.clawed_back)
    assert () == back.restored
    assert 750 - 15 == shop.available()
    back = shop.loyalty.record_return("o1", {"beans": 1}, key="r2")
    # 12.50 more: 5.00 money left, then 7.50 in points (750)
    assert (750, eur("5.00"), 0) == (back.points_refunded, back.money_refunded,
                                     back.points_after)
    assert 735 + 750 - 5 == shop.available()
    shop.check()


def test_another_conversion_step_and_share(storage: Storage) -> None:
    # 1 point = 0.05 EUR, steps of 10, at most 30% of goods, no minimum
    program = program_v(PaymentPolicy(points=20, money=eur("1.00"), step=10,
                                      max_share=Decimal("0.3")))
    shop = Shop(storage, program)
    quote = shop.loyalty.payments.quote(cart())
    assert (10, 240, eur("12.00")) == (quote.min_points, quote.max_points, quote.max_value)
    # 12.00 paid in points: beans 7.50, grinder 4.50; money 17.50 + 10.50 = 28.00
    assert 28 == shop.pay(240).points
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    # 15.00 x 12.00 / 40.00 = 4.50 in points (90), 10.50 in money; beans keep 150
    # points (7.50): 17.50 in money -> 17
    assert (90, eur("10.50"), 17, 11) == (back.points_refunded, back.money_refunded,
                                          back.points_after, back.clawed_back)
    assert 2730 - 240 + 28 + 90 - 11 == shop.available()
    shop.check()


def test_earning_on_the_points_paid_part_too(storage: Storage) -> None:
    program = program_v(PaymentPolicy(points=100, money=eur("1.00"), min_points=500,
                                      max_share=Decimal("0.5"), step=100,
                                      earn_on_points_paid=True))
    shop = Shop(storage, program)
    assert 40 == shop.pay(2000).points
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    assert (750, 25, 15) == (back.points_refunded, back.points_after, back.clawed_back)
    shop.check()


# -- repeated returns, then a cancellation -------------------------------------------------


def four_lines() -> Order:
    return cart(lines=(
        OrderLine(sku="beans", quantity=2, unit_price=eur("12.50")),
        OrderLine(sku="grinder", quantity=1, unit_price=eur("15.00")),
        OrderLine(sku="mug", quantity=3, unit_price=eur("3.33")),
        OrderLine(sku="filter", quantity=1, unit_price=eur("0.99")),
    ))


def test_two_partial_returns_then_a_cancel_never_restore_more_than_was_paid(
        storage: Storage) -> None:
    shop = Shop(storage)
    order = four_lines()  # goods 50.98, at most 25.49: 2,500 points
    assert 2500 == shop.loyalty.payments.quote(order).max_points
    result = shop.pay(2500, order)
    assert 25 == result.points  # 25.49 - 0.01 left of allocations: money 25.48 -> 25
    first = shop.loyalty.record_return("o1", {"mug": 2}, key="r1")
    second = shop.loyalty.record_return("o1", {"beans": 1, "filter": 1}, key="r2")
    last = shop.loyalty.cancel_order("o1")
    refunds = [first.points_refunded, second.points_refunded, last.points_refunded]
    assert 2500 == sum(refunds)
    assert all(n > 0 for n in refunds)
    assert [Kind.REFUND] == [t.kind for t in last.restored]
    money = first.money_refunded + second.money_refunded + last.money_refunded  # type: ignore
    assert eur("50.98") - eur("25.00") == money
    assert 2730 == shop.available()
    assert {shop.a: (1500, berlin(2027, 2, 1)), shop.b: (1230, berlin(2027, 4, 1))} == {
        k: v for k, v in shop.lots().items() if k in (shop.a, shop.b)}
    # cancelling again changes nothing
    again = shop.loyalty.cancel_order("o1")
    assert again == last
    shop.check()


def test_returning_everything_line_by_line_gives_back_every_point(storage: Storage) -> None:
    shop = Shop(storage)
    shop.pay(2000)
    shop.loyalty.record_return("o1", {"beans": 1}, key="r1")
    shop.loyalty.record_return("o1", {"grinder": 1}, key="r2")
    last = shop.loyalty.record_return("o1", {"beans": 1}, key="r3")
    assert 0 == last.points_after
    assert 2730 == shop.available()
    cancel = shop.loyalty.cancel_order("o1")
    assert (0, ()) == (cancel.points_refunded, cancel.restored)
    assert 2730 == shop.available()
    shop.check()


def test_a_return_after_some_refunded_lots_expired(storage: Storage) -> None:
    shop = Shop(storage)
    shop.pay(2000)  # took A 1,500 and B 500
    shop.clock.set(berlin(2027, 2, 15, 12))
    shop.loyalty.run_due()
    assert 750 == shop.available()  # A was empty; nothing expired
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    # 750 back: B's 500 into B, then 250 into A, which is past its expiry: expired at once
    assert 750 == back.points_refunded
    balance = shop.loyalty.balance("m")
    assert (730 + 500 + 12, 250) == (balance.available, balance.expired)
    assert shop.a not in shop.lots()
    shop.check()
    cancel = shop.loyalty.cancel_order("o1")
    balance = shop.loyalty.balance("m")
    assert (1250, 1230, 1500) == (cancel.points_refunded, balance.available,
                                  balance.expired)
    shop.check()


def test_a_statement_shows_the_refund(storage: Storage) -> None:
    shop = Shop(storage)
    shop.pay(2000)
    shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    kinds = [line.kind for line in shop.loyalty.statement("m").lines]
    assert [Kind.CLAWBACK, Kind.REFUND, Kind.EARN, Kind.CAPTURE] == kinds[:4]


# -- refusals write nothing ----------------------------------------------------------------


@pytest.mark.parametrize(("points", "why"), [(2100, "at most 2000"), (400, "at least 500"),
                                             (550, "whole steps of 100")])
def test_a_payment_that_breaks_the_policy_is_refused(storage: Storage, points: int,
                                                     why: str) -> None:
    shop = Shop(storage)
    with pytest.raises(InvalidPayment, match=why):
        shop.loyalty.payments.hold(cart(), points, key="hold")
    assert 2730 == shop.available()
    spent = shop.loyalty.spend("m", points, key="spend")
    with pytest.raises(InvalidPayment, match=why) as caught:
        shop.loyalty.record_order(cart(), paid_with=[spent.transaction_id])
    assert points == caught.value.details["points"]
    with pytest.raises(OrderNotFound):
        shop.loyalty.order("o1")
    assert 2730 - points == shop.available()
    shop.check()


def test_no_policy_no_payment(storage: Storage) -> None:
    shop = Shop(storage, program_v(payments=None))
    with pytest.raises(InvalidPayment):
        shop.loyalty.payments.quote(cart())
    with pytest.raises(InvalidPayment):
        shop.loyalty.payments.hold(cart(), 500, key="hold")
    # without a policy, paid_with keeps its old meaning: a cancellation gives it back
    spent = shop.loyalty.spend("m", 2000, key="spend")
    assert 40 == shop.loyalty.record_order(cart(), paid_with=[spent.transaction_id]).points
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="r1")
    assert (0, None) == (back.points_refunded, back.money_refunded)
    assert 2000 == shop.loyalty.cancel_order("o1").points_refunded
    assert 2730 == shop.available()
    shop.check()


# -- the policy as data ---------------------------------------------------------------------


def test_policy_round_trips_and_names_bad_fields() -> None:
    program = program_v()
    assert program == Program.from_dict(program.to_dict())
    data = program.to_dict()
    for field, value in (("step", 0), ("max_share", "1.5"), ("max_share", "0"),
                         ("returns", "whatever"), ("points", -1), ("min_points", True)):
        bad = {**data, "payments": {**data["payments"], field: value}}
        with pytest.raises(InvalidProgram) as caught:
            Program.from_dict(bad)
        assert f"payments.{field}" == caught.value.details["field"]
    usd = {"amount": "1", "currency": "USD"}
    bad = {**data, "payments": {**data["payments"], "money": usd}}
    with pytest.raises(InvalidProgram, match=r"payments\.money"):
        Program.from_dict(bad)
    with pytest.raises(InvalidProgram, match=r"payments\.typo"):
        Program.from_dict({**data, "payments": {**data["payments"], "typo": 1}})


def test_policy_from_toml(tmp_path: Any) -> None:
    path = tmp_path / "v.toml"
    path.write_text('id = "V"\ntime_zone = "Europe/Berlin"\ncurrency = "EUR"\n'
                    'point_value = {amount = "0.01", currency = "EUR"}\n'
                    '[payments]\npoints = 100\nmoney = {amount = "1.00", currency = "EUR"}\n'
                    'min_points = 500\nmax_share = "0.5"\nstep = 100\n'
                    'returns = "points_first"\n')
    policy = Program.from_file(path).payments
    assert policy is not None
    assert (500, Decimal("0.5"), ReturnSplit.POINTS_FIRST) == (
        policy.min_points, policy.max_share, policy.returns)


def test_allocation_is_exact_to_the_cent() -> None:
    assert [Decimal("12.50"), Decimal("7.50")] == allocate(
        Decimal("20.00"), [Decimal("25.00"), Decimal("15.00")])
    parts = allocate(Decimal("10.00"), [Decimal("3.33")] * 3 + [Decimal("0.01")])
    assert Decimal("10.00") == sum(parts)
    assert [Decimal("3.33"), Decimal("3.33"), Decimal("3.33"), Decimal("0.01")] == parts


def test_the_old_payments_document_is_still_read() -> None:
    storage = MemoryStorage()
    shop = Shop(storage)
    spent = shop.loyalty.spend("m", 2000, key="spend")
    shop.loyalty.record_order(cart(), paid_with=[spent.transaction_id])
    assert {} == dict(shop.loyalty.order("o1").refunded)



# -- a payment's points go back once ---------------------------------------------------------


def test_a_payment_partly_refunded_cannot_be_reversed(storage: Storage) -> None:
    """Reversing a payment after a partial return would give the refunded points back a
    second time: refused (NotReversible, nothing written); cancelling the order gives
    back the rest."""
    from loyaltykit import NotReversible
    from loyaltykit.testing.stored import stored_rows

    shop = Shop(storage)
    shop.pay(2000)
    paid = shop.loyalty.order("o1").payments[0]
    back = shop.loyalty.record_return("o1", {"grinder": 1}, key="return-1")
    assert 750 == back.points_refunded
    before = stored_rows(storage)
    with pytest.raises(NotReversible) as caught:
        shop.loyalty.reverse(paid, key="reverse-payment")
    assert str(paid) == caught.value.details["transaction_id"]
    assert before == stored_rows(storage)
    cancelled = shop.loyalty.cancel_order("o1")
    assert 1250 == cancelled.points_refunded
    assert 2730 == shop.available()
    shop.check()


def test_a_payment_pays_one_order(storage: Storage) -> None:
    """One capture named by two orders would give its points back twice (once per
    cancellation): the second order is refused, and so is a reversed payment."""
    from loyaltykit.testing.stored import stored_rows

    shop = Shop(storage)
    shop.pay(2000)
    paid = shop.loyalty.order("o1").payments[0]
    before = stored_rows(storage)
    with pytest.raises(InvalidPayment) as caught:
        shop.loyalty.record_order(cart("o2"), paid_with=[paid])
    assert ("o1", str(paid)) == (caught.value.details["other_order_id"],
                                  caught.value.details["transaction_id"])
    assert before == stored_rows(storage)
    # a payment reversed outright pays nothing any more
    held = shop.loyalty.payments.hold(cart("o3"), 500, key="hold-o3")
    captured = shop.loyalty.payments.capture(held.hold_id, key="capture-o3")
    shop.loyalty.reverse(captured.transaction_id, key="undo-o3")
    before = stored_rows(storage)
    with pytest.raises(InvalidPayment, match="reversed"):
        shop.loyalty.record_order(cart("o3"), paid_with=[captured.transaction_id])
    assert before == stored_rows(storage)
    shop.check()


def test_the_earning_quote_takes_the_points_the_member_will_pay(storage: Storage) -> None:
    """``quote(order, paid_points=n)`` is what ``record_order`` with that payment earns."""
    from loyaltykit import InvalidPoints
    from loyaltykit.testing.stored import stored_rows

    shop = Shop(storage)
    assert 40 == shop.loyalty.quote(cart()).points
    before = stored_rows(storage)
    assert 20 == shop.loyalty.quote(cart(), paid_points=2000).points
    assert 35 == shop.loyalty.quote(cart(), paid_points=500).points
    with pytest.raises(InvalidPayment) as caught:
        shop.loyalty.quote(cart(), paid_points=2100)
    assert 2000 == caught.value.details["max_points"]
    with pytest.raises(InvalidPoints):
        shop.loyalty.quote(cart(), paid_points=-1)
    assert before == stored_rows(storage)
    assert 20 == shop.pay(2000).points
    # without a payments policy points paid change nothing, as paid_with does not
    plain = Shop(MemoryStorage(), program_v(None))
    assert 40 == plain.loyalty.quote(cart("o9"), paid_points=2000).points
