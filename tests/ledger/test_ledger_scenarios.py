"""The worked ledger scenarios L1-L6 of SCENARIOS.md, number for number, on every backend.

Program P: Europe/Berlin; expiry 12 months after earn rounded up to the end of the
month; spend order soonest-expiring first; no pending period. Wall-clock times are
Berlin's; expiry instants are asserted in UTC exactly as the scenarios state them.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from loyaltykit import (
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    IdempotencyConflict,
    InsufficientPoints,
    Kind,
    PendingPolicy,
    SpendOrder,
    Storage,
)
from loyaltykit.testing.contract import Shop, berlin, lot_of, make_program, statement_lines, utc

P_EXPIRY = ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH)


TTL = dt.timedelta(minutes=15)


def shop_p(
    storage: Storage,
    *,
    expiry: ExpiryPolicy = P_EXPIRY,
    pending: PendingPolicy | None = None,
    clawback: ClawbackPolicy = ClawbackPolicy.DEBT,
) -> Shop:
    """Program P on ``storage``, with the scenario's changes to its policies."""
    program = make_program("P", expiry=expiry, pending=pending,
                           spend_order=SpendOrder.SOONEST_EXPIRING, clawback=clawback)
    return Shop(storage, program, start=berlin(2026, 1, 1))


def test_l1_lots_spend_order_reversal_expiry(storage: Storage) -> None:
    shop = shop_p(storage)
    loyalty = shop.loyalty
    shop.enrol("m")

    # 1. 2026-01-15 10:00 earn 100: lot A, expires 2027-02-01 00:00 Berlin
    shop.go(2026, 1, 15, 10)
    earn_a = loyalty.earn("m", 100, key="order-a")
    lot_a = lot_of(loyalty.transaction(earn_a.transaction_id))
    assert utc(2027, 1, 31, 23) == shop.lot("m", lot_a).expires_at

    # 2. 2026-03-10 09:00 earn 50: lot B, expires 2027-04-01 00:00 = 2027-03-31T22:00Z
    shop.go(2026, 3, 10, 9)
    earn_b = loyalty.earn("m", 50, key="order-b")
    lot_b = lot_of(loyalty.transaction(earn_b.transaction_id))
    assert utc(2027, 3, 31, 22) == shop.lot("m", lot_b).expires_at
    shop.check("m")

    # 3. 2026-06-01 12:00 spend 120: A remaining 0, B remaining 30; available 30
    shop.go(2026, 6, 1, 12)
    spend = loyalty.spend("m", 120, key="checkout")
    assert {lot_b: 30} == shop.remaining("m")  # A is used up
    assert 30 == spend.balance.available
    assert 30 == shop.balance("m").available
    shop.check("m")

    # 4. 2026-07-01 12:00 reverse the spend: A 100, B 50; available 150
    shop.go(2026, 7, 1, 12)
    reversal = loyalty.reverse(spend.transaction_id, key="refund")
    assert {lot_a: 100, lot_b: 50} == shop.remaining("m")
    assert 150 == reversal.balance.available
    assert 150 == shop.balance("m").available
    lines = statement_lines(loyalty, "m")
    assert [
        (Kind.REVERSE, 120, spend.transaction_id, 150),
        (Kind.SPEND, -120, None, 30),
        (Kind.EARN, 50, None, 150),
        (Kind.EARN, 100, None, 100),
    ] == [(line.kind, line.points, line.reverses_id, line.balance) for line in lines]
    assert spend.transaction_id == lines[1].transaction_id
    shop.check("m")

    # 5. due work at 2027-01-31 23:30 Berlin: nothing expires; available 150
    shop.go(2027, 1, 31, 23, 30)
    report = loyalty.run_due()
    assert (0, 0) == (report.expired_lots, report.expired_points)
    assert 150 == shop.balance("m").available
    shop.check("m")

    # 6. due work at 2027-02-01 00:30 Berlin: A expires (100); available 50; expired 100;
    #    next expiry 50 at 2027-04-01 00:00 Berlin
    shop.go(2027, 2, 1, 0, 30)
    report = loyalty.run_due()
    assert (1, 100) == (report.expired_lots, report.expired_points)
    balance = shop.balance("m")
    assert (50, 100) == (balance.available, balance.expired)
    assert (50, utc(2027, 3, 31, 22)) == (balance.next_expiring_points,
                                          balance.next_expiring_at)
    assert berlin(2027, 4, 1) == balance.next_expiring_at
    [expiry, *_] = statement_lines(loyalty, "m")
    assert (Kind.EXPIRE, -100, utc(2027, 1, 31, 23)) == (
        expiry.kind, expiry.points, expiry.occurred_at)
    assert {lot_b: 50} == shop.remaining("m")
    shop.check("m")

    # 7. the same due work again changes nothing
    before = shop.snapshot("m")
    report = loyalty.run_due()
    assert (0, 0, 0) == (report.expired_lots, report.expired_points, report.members)
    assert before == shop.snapshot("m")


def test_l2_pending_points(storage: Storage) -> None:
    shop = shop_p(
        storage,
        expiry=ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH,
                            counted_from=ExpiryStart.ACTIVATION),
        pending=PendingPolicy(days=14),
    )
    loyalty = shop.loyalty
    shop.enrol("m")

    shop.go(2026, 5, 1, 10)
    earn = loyalty.earn("m", 80, key="order")
    assert (0, 80) == (earn.balance.available, earn.balance.pending)
    shop.check("m")

    before = shop.snapshot("m")
    with pytest.raises(InsufficientPoints):
        loyalty.spend("m", 10, key="checkout")
    assert before == shop.snapshot("m")

    shop.go(2026, 5, 15, 10)
    report = loyalty.run_due()
    assert (1, 80) == (report.activated_lots, report.activated_points)
    balance = shop.balance("m")
    assert (80, 0) == (balance.available, balance.pending)
    [lot] = loyalty.lots("m")
    assert utc(2027, 5, 31, 22) == lot.expires_at  # 2027-06-01 00:00 Berlin
    assert berlin(2027, 6, 1) == lot.expires_at
    shop.check("m")


def test_l3_holds(storage: Storage) -> None:
    shop = shop_p(storage)
    loyalty = shop.loyalty
    shop.enrol("m")
    shop.go(2026, 2, 1, 10)
    assert 100 == loyalty.earn("m", 100, key="order").balance.available

    shop.go(2026, 2, 1, 10, 5)
    first = loyalty.hold("m", 60, key="cart-1", ttl=TTL)
    assert (40, 60) == (first.balance.available, first.balance.held)
    shop.check("m")

    before = shop.snapshot("m")
    with pytest.raises(InsufficientPoints):
        loyalty.hold("m", 50, key="cart-2", ttl=TTL)
    assert before == shop.snapshot("m")

    shop.go(2026, 2, 1, 10, 10)
    capture = loyalty.capture(first.hold_id, 45, key="paid-1")
    assert (45, 55, 0) == (capture.balance.spent, capture.balance.available,
                           capture.balance.held)
    shop.check("m")

    shop.go(2026, 2, 1, 10, 15)
    stale = loyalty.hold("m", 30, key="cart-3", ttl=TTL)
    assert (25, 30) == (stale.balance.available, stale.balance.held)
    shop.go(2026, 2, 1, 10, 29)
    assert 0 == loyalty.run_due().released_holds
    shop.go(2026, 2, 1, 10, 31)
    report = loyalty.run_due()
    assert (1, 30) == (report.released_holds, report.released_points)
    balance = shop.balance("m")
    assert (55, 0, 45) == (balance.available, balance.held, balance.spent)
    shop.check("m")


def test_l4_idempotency(storage: Storage) -> None:
    shop = shop_p(storage)
    loyalty = shop.loyalty
    shop.enrol("m")

    first = loyalty.earn("m", 10, key="k1")
    second = loyalty.earn("m", 10, key="k1")
    assert first.transaction_id == second.transaction_id
    assert first == second
    assert 10 == shop.balance("m").available
    assert [first.transaction_id] == [line.transaction_id
                                      for line in statement_lines(loyalty, "m")]

    before = shop.snapshot("m")
    with pytest.raises(IdempotencyConflict):
        loyalty.earn("m", 11, key="k1")
    assert 10 == shop.balance("m").available
    assert before == shop.snapshot("m")
    shop.check("m")


def test_l5_concurrency(storage: Storage) -> None:
    shop = shop_p(storage)
    loyalty = shop.loyalty
    shop.enrol("m", "n")
    loyalty.earn("m", 100, key="order")

    # 20 threads each spend 10 with distinct keys at once, while a reader samples
    barrier = threading.Barrier(20)
    done = threading.Event()
    observed: list[int] = []

    def read() -> None:
        while not done.is_set():
            observed.append(loyalty.balance("m").available)
        observed.append(loyalty.balance("m").available)

    def spend(i: int) -> bool:
        barrier.wait()
        try:
            loyalty.spend("m", 10, key=f"spend-{i}")
        except InsufficientPoints:
            return False
        return True

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(spend, range(20)))
    finally:
        done.set()
        reader.join()
    assert (10, 10) == (outcomes.count(True), outcomes.count(False))
    assert 0 == shop.balance("m").available
    assert [] == [value for value in observed if value < 0]
    assert 0 == observed[-1]
    spends = [line for line in statement_lines(loyalty, "m") if line.kind is Kind.SPEND]
    assert 10 == len(spends)
    shop.check("m")

    # 20 concurrent earns of 10 with the same key: exactly one transaction, balance 10
    barrier = threading.Barrier(20)

    def earn(_: int) -> object:
        barrier.wait()
        return loyalty.earn("n", 10, key="same-key").transaction_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(earn, range(20)))
    assert 1 == len(ids)
    assert 10 == shop.balance("n").available
    assert ids == {line.transaction_id for line in statement_lines(loyalty, "n")}
    shop.check("m", "n")


def test_l6_clawback_shortfall(storage: Storage) -> None:
    shop = shop_p(storage, clawback=ClawbackPolicy.DEBT)
    loyalty = shop.loyalty
    shop.enrol("m")
    assert 30 == loyalty.earn("m", 30, key="order-1").balance.available

    claw = loyalty.clawback("m", 50, key="return-1")
    assert (0, 20) == (claw.balance.available, claw.balance.debt)
    balance = shop.balance("m")
    assert (0, 20) == (balance.available, balance.debt)
    shop.check("m")

    earn = loyalty.earn("m", 35, key="order-2")
    assert (15, 0) == (earn.balance.available, earn.balance.debt)
    balance = shop.balance("m")
    assert (15, 0) == (balance.available, balance.debt)
    shop.check("m")
