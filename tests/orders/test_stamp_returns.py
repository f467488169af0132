"""Stamp-card rewards on returns (issue 19, point 7), on every backend.

A stamp card's rewards follow the member's kept stamps: after any sequence of orders,
returns and cancellations, the rewards a card's member keeps are
``floor(kept stamps / every)``, whichever order filled the card. A return takes back
first the rewards of the returned order itself, then those of the member's most
recently placed orders (see docs/earning.md, "Returns").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loyaltykit import (
    ClawbackPolicy,
    EarningPolicy,
    Evaluation,
    LineMatch,
    Loyalty,
    Order,
    OrderLine,
    Program,
    StampCardRule,
    Storage,
    TestClock,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract import berlin, make_program
from loyaltykit.testing.invariants import check_invariants

EUR = "EUR"
POINTS = 10  # what one filled card is worth


def card_program(every: int, *, clawback: ClawbackPolicy = ClawbackPolicy.DEBT) -> Program:
    base = make_program("S", clawback=clawback)
    return Program(
        id=base.id, time_zone=base.time_zone, currency=base.currency,
        point_value=base.point_value, wallets=base.wallets, ledger=base.ledger,
        earning=EarningPolicy(rules=(
            StampCardRule(id="card", every=every, points=POINTS, reward="free_coffee",
                          counts="items", match=LineMatch(categories=("coffee",))),
        )),
    )


class Shop:
    """One member, ``ann``, and a card of ``every`` stamps (items of category coffee)."""

    def __init__(self, storage: Storage, every: int) -> None:
        self.storage = storage
        self.every = every
        self.program = card_program(every)
        self.clock = TestClock(berlin(2026, 6, 1, 9))
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self.loyalty.enrol("ann")
        self.orders: list[str] = []
        self.returns = 0

    def buy(self, cups: int, *, tea: int = 0) -> Any:
        n = len(self.orders) + 1
        lines = [OrderLine(sku="flat-white", category="coffee", quantity=cups,
                           unit_price=_eur("3.20"))]
        if tea:
            lines.append(OrderLine(sku="tea", category="tea", quantity=tea,
                                   unit_price=_eur("2.00")))
        order_id = f"o{n}"
        self.orders.append(order_id)
        return self.loyalty.record_order(Order(
            id=order_id, member_id="ann", placed_at=berlin(2026, 5, 1, 8) + dt.timedelta(
                minutes=n), currency=EUR, lines=tuple(lines)))

    def give_back(self, order_id: str, cups: int) -> Any:
        self.returns += 1
        return self.loyalty.record_return(order_id, {"flat-white": cups},
                                          key=f"r{self.returns}")

    def kept_stamps(self) -> int:
        total = 0
        for order_id in self.orders:
            record = self.loyalty.order(order_id)
            if record.status.value == "cancelled":
                continue
            bought = dict(record.order)["lines"][0]["quantity"]
            total += bought - dict(record.returned).get("flat-white", 0)
        return total

    def rewards(self) -> int:
        """Rewards the member keeps now, over its orders' current breakdowns."""
        return sum(len(Evaluation.from_dict(dict(self.loyalty.order(o).evaluation))
                       .outcome("card").rewards) for o in self.orders)

    def check(self) -> None:
        """The card's rule: kept rewards follow kept stamps, and the points with them."""
        kept = self.kept_stamps() // self.every
        assert kept == self.rewards(), (self.kept_stamps(), self.rewards())
        assert kept * POINTS == sum(self.loyalty.order(o).points for o in self.orders)
        balance = self.loyalty.balance("ann")
        assert kept * POINTS == balance.available - balance.debt
        check_invariants(self.storage, self.program, ["ann"], at=self.clock.now())


def _eur(amount: str) -> Any:
    from loyaltykit import Money
    return Money(amount, EUR)


def test_the_issue_case_a_return_takes_back_the_card_another_order_filled(
        storage: Storage) -> None:
    shop = Shop(storage, every=6)
    assert () == shop.buy(3).rewards
    assert ("free_coffee",) == shop.buy(3).rewards
    shop.check()
    back = shop.give_back("o1", 3)  # order 1 filled no card, but its stamps helped fill it
    assert (0, 0, ()) == (back.points_before, back.clawed_back, back.rewards_withdrawn)
    assert (("o2", "free_coffee"),) == back.rewards_withdrawn_elsewhere
    assert [POINTS] == [t.points * -1 for t in back.card_clawbacks]
    assert 0 == shop.loyalty.order("o2").points
    shop.check()
    assert ("free_coffee",) == shop.buy(3).rewards  # 3 + 3 kept stamps fill it again
    shop.check()
    assert 1 == shop.rewards()  # one reward for 6 kept stamps, not two


@pytest.mark.parametrize("first", ["o1", "o2", "o3"])
def test_a_five_stamp_card_returning_each_order_in_turn(storage: Storage, first: str) -> None:
    shop = Shop(storage, every=5)
    shop.buy(2)
    shop.buy(2)
    assert ("free_coffee",) == shop.buy(3).rewards  # stamps 4 -> 7
    shop.check()
    sizes = {"o1": 2, "o2": 2, "o3": 3}
    rest = [first, *(o for o in sizes if o != first)]
    for order_id in rest:
        shop.give_back(order_id, sizes[order_id])
        shop.check()
    assert 0 == shop.rewards()


def test_partial_returns_line_by_line(storage: Storage) -> None:
    shop = Shop(storage, every=5)
    shop.buy(4, tea=2)
    shop.buy(3)                 # stamps 4 -> 7: 1 reward
    shop.buy(4)                 # 7 -> 11: 1 more
    shop.check()
    shop.loyalty.record_return("o1", {"tea": 2}, key="tea")  # no stamps come back
    shop.check()
    assert 2 == shop.rewards()
    shop.give_back("o1", 1)     # 10 kept: still two cards
    shop.check()
    assert 2 == shop.rewards()
    shop.give_back("o1", 1)     # 9 kept: one card
    shop.check()
    shop.give_back("o3", 2)     # 7 kept: one card
    shop.check()
    shop.give_back("o2", 3)     # 4 kept: none
    shop.check()
    assert 0 == shop.rewards()
    assert ("free_coffee",) == shop.buy(1).rewards  # the 5th kept stamp fills it again
    shop.check()


def test_a_return_keeps_a_reward_that_the_other_stamps_still_fill(storage: Storage) -> None:
    # 5 + 2 + 4 stamps on a card of 6: order 2 filled it. Its 2 stamps come back, and
    # the 9 kept stamps still fill one card: the reward stays (with order 2).
    shop = Shop(storage, every=6)
    shop.buy(5)
    assert ("free_coffee",) == shop.buy(2).rewards
    shop.buy(4)
    back = shop.give_back("o2", 2)
    assert ((), ()) == (back.rewards_withdrawn, back.rewards_withdrawn_elsewhere)
    assert 0 == back.clawed_back
    shop.check()
    assert 1 == shop.rewards()


def test_cancel_and_replay_withdraw_once(storage: Storage) -> None:
    shop = Shop(storage, every=6)
    shop.buy(3)
    shop.buy(3)
    shop.buy(6)                # 6 -> 12: 2 rewards over o2 and o3
    shop.check()
    cancelled = shop.loyalty.cancel_order("o1")
    assert (("o3", "free_coffee"),) == cancelled.rewards_withdrawn_elsewhere
    assert cancelled == shop.loyalty.cancel_order("o1")  # the retry writes nothing
    shop.check()
    assert 1 == shop.rewards()
    # o3's fill went with o1; o2 holds the one card the 6 kept stamps fill, so it keeps
    # it even when all of its own stamps come back (a return never adds points to
    # another order)
    back = shop.give_back("o2", 3)
    assert ((), (), 0) == (back.rewards_withdrawn, back.rewards_withdrawn_elsewhere,
                           back.clawed_back)
    assert POINTS == shop.loyalty.order("o2").points
    shop.check()
    again = shop.loyalty.record_return("o2", {"flat-white": 3}, key=f"r{shop.returns}")
    assert again == back
    shop.check()
    last = shop.loyalty.cancel_order("o3")  # no stamps kept: o2's fill goes
    assert (("o2", "free_coffee"),) == last.rewards_withdrawn_elsewhere
    shop.check()
    assert 0 == shop.rewards()


def test_cancelling_an_order_returned_in_full_keeps_its_fill(storage: Storage) -> None:
    """Found by the property below: o2 is returned in full (its fill stays, 6 stamps kept
    hold 3 rewards), then cancelled; no stamp goes back, so no reward may go either."""
    shop = Shop(storage, every=2)
    for _ in range(7):
        shop.buy(1)
    back = shop.give_back("o2", 1)
    assert ((), ()) == (back.rewards_withdrawn, back.rewards_withdrawn_elsewhere)
    shop.check()
    cancelled = shop.loyalty.cancel_order("o2")
    assert ((), (), 0) == (cancelled.rewards_withdrawn,
                           cancelled.rewards_withdrawn_elsewhere, cancelled.clawed_back)
    shop.check()
    assert 3 == shop.rewards()


def test_withdrawn_points_already_spent_become_debt(storage: Storage) -> None:
    shop = Shop(storage, every=2)
    shop.buy(1)
    shop.buy(1)
    shop.loyalty.spend("ann", POINTS, key="spend")
    shop.give_back("o1", 1)
    balance = shop.loyalty.balance("ann")
    assert (0, POINTS) == (balance.available, balance.debt)
    check_invariants(storage, shop.program, ["ann"], at=shop.clock.now())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(every=2, steps=[*[("buy", 0, 1)] * 7, ("return", 1, 1), ("cancel", 1, 1)])
@given(every=st.integers(1, 7), steps=st.lists(
    st.tuples(st.sampled_from(["buy", "return", "cancel"]), st.integers(0, 30),
              st.integers(1, 6)), min_size=1, max_size=14))
def test_kept_rewards_follow_kept_stamps(every: int, steps: list[tuple[str, int, int]]) -> None:
    shop = Shop(MemoryStorage(), every)
    for op, pick, n in steps:
        if op == "buy" or not shop.orders:
            shop.buy(n)
        else:
            order_id = shop.orders[pick % len(shop.orders)]
            record = shop.loyalty.order(order_id)
            left = (dict(record.order)["lines"][0]["quantity"]
                    - dict(record.returned).get("flat-white", 0))
            if record.status.value == "cancelled":
                continue
            if op == "cancel":
                shop.loyalty.cancel_order(order_id)
            elif left:
                shop.give_back(order_id, min(n, left))
        shop.check()
