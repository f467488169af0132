"""The walkthrough behind ``python -m loyaltykit demo``.

Fourteen months of a small shop's points program, on an embedded SQLite file (or in
memory), driven by a :class:`~loyaltykit.TestClock` so it runs in seconds: members
enrol and order (online orders pending for the 14-day return window, in-store orders
spendable at once), a nightly job runs due work, points pay for part of a checkout,
an abandoned checkout's hold times out, a voucher is redeemed and cancelled, points
are transferred, a late return leaves debt that later orders settle, and lots expire.

The output is the same for the same seed (ids are random and never printed), so it
doubles as a smoke test of a backend.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loyaltykit._calendar import zone
from loyaltykit._clock import TestClock
from loyaltykit._errors import HoldExpired
from loyaltykit._facade import Loyalty
from loyaltykit._model import Kind
from loyaltykit._program import (
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    LedgerPolicy,
    PendingPolicy,
    Program,
    SpendOrder,
)
from loyaltykit._results import Balance, DueWorkReport, StatementLine
from loyaltykit._values import Money
from loyaltykit.storage import Storage

if TYPE_CHECKING:
    from loyaltykit.sql import SQLStorage

__all__ = ["DEFAULT_DB", "demo_program", "open_sqlite", "run_demo"]

logger = logging.getLogger(__name__)

#: The database file the demo (re)creates when no ``--db`` is given.
DEFAULT_DB = "loyaltykit-demo.sqlite"

TIME_ZONE = "Europe/Berlin"
LOCAL = zone(TIME_ZONE)
START = dt.datetime(2026, 1, 5, tzinfo=LOCAL)
MONTHS = 14
NIGHTLY = dt.time(3, 0)
CHECKOUT_TTL = dt.timedelta(minutes=15)
WELCOME_BONUS = 50

_SQLITE_MAGIC = b"SQLite format 3\x00"


def demo_program() -> Program:
    """The demo shop's program: EUR, Berlin time, 12-month expiry, 14 days pending."""
    return Program(
        id="demo-shop",
        time_zone=TIME_ZONE,
        currency="EUR",
        point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(
            expiry=ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH),
            pending=PendingPolicy(days=14),
            spend_order=SpendOrder.SOONEST_EXPIRING,
            clawback=ClawbackPolicy.DEBT,
        ),
    )


def open_sqlite(path: Path) -> SQLStorage:
    """Recreate the SQLite file at ``path``, migrate it and return its storage.

    Refuses (FileExistsError) to delete a file that is not a SQLite database, so a
    mistyped ``--db`` cannot destroy someone's document.
    """
    from loyaltykit.sql import SQLStorage  # SQLAlchemy is imported only when needed

    if path.exists():
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
        if header and header != _SQLITE_MAGIC:
            raise FileExistsError(f"{path} exists and is not a SQLite database; not replacing it")
        logger.info("removing the previous demo database %s", path)
    for stale in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    storage = SQLStorage.from_url(f"sqlite:///{path.resolve()}")
    storage.upgrade()
    return storage


def _local(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(LOCAL)


def _stamp(instant: dt.datetime) -> str:
    return f"{_local(instant):%Y-%m-%d %H:%M}"


def _add_months(start: dt.datetime, months: int) -> dt.datetime:
    year, month = divmod(start.month - 1 + months, 12)
    return start.replace(year=start.year + year, month=month + 1)


def _share(points: int, percent: int) -> int:
    """About ``percent`` % of ``points``, rounded down to a multiple of 10 (at least 10,
    or all of them when there are fewer)."""
    if points < 10:
        return points
    return max(10, points * percent // 100 // 10 * 10)


_Action = Callable[[], None]


class _Demo:
    """One run of the demo; owns the clock, the facade and the printed output."""

    def __init__(self, storage: Storage, *, seed: int, out: TextIO, label: str) -> None:
        self.program = demo_program()
        self.clock = TestClock(START)
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self.rng = random.Random(seed)
        self.seed = seed
        self.out = out
        self.label = label
        self.members: list[str] = []
        self.order_no = 1000
        self.orders = 0
        self.order_total = Decimal(0)
        self.nightly_runs = 0
        self.due_month = DueWorkReport(at=START)
        self.due_all = DueWorkReport(at=START)
        self.big_order: tuple[uuid.UUID, int] | None = None
        self.voucher: uuid.UUID | None = None
        self.abandoned_hold: uuid.UUID | None = None

    # -- output ---------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def event(self, member: str, text: str) -> None:
        self.say(f"  {_stamp(self.clock.now())}  {member:<6} {text}")

    # -- the timeline ---------------------------------------------------------------------

    def run(self) -> None:
        p = self.program
        self.say(f"loyaltykit demo: program {p.id!r} ({p.time_zone}, {p.currency}, "
                 f"1 point = {p.point_value.amount} {p.currency}), seed {self.seed}")
        self.say(f"storage: {self.label}")
        for rule in (
            "1 point per EUR; online orders stay pending for the 14-day return window,",
            "in-store orders are spendable at once; points expire 12 months after they",
            "are earned, at the end of the month; spends use the soonest-expiring",
            "points first; a return larger than the balance leaves debt that later",
            "points settle first; due work runs every night at 03:00.",
        ):
            self.say(f"  {rule}")
        for index in range(MONTHS):
            start = _add_months(START, index)
            end = _add_months(START, index + 1)
            self.month(index, start, end)
        self.statement("bob")
        self.summary()

    def month(self, index: int, start: dt.datetime, end: dt.datetime) -> None:
        self.say()
        self.say(f"== month {index + 1}: {start:%Y-%m-%d} .. "
                 f"{end - dt.timedelta(days=1):%Y-%m-%d} " + "=" * 40)
        events: list[tuple[dt.datetime, int, _Action]] = []

        def at(day: int, hour: int, minute: int, action: _Action) -> None:
            when = (start + dt.timedelta(days=day)).replace(hour=hour, minute=minute)
            events.append((when, len(events), action))

        self.story(index, at)
        self.shopping(index, at)
        day = start
        while day < end:
            at((day - start).days, NIGHTLY.hour, NIGHTLY.minute, self.nightly)
            day += dt.timedelta(days=1)
        for when, _, action in sorted(events, key=lambda e: (e[0], e[1])):
            self.clock.set(when)
            action()
        self.clock.set(end)
        self.month_close(end)

    def story(self, index: int, at: Callable[[int, int, int, _Action], None]) -> None:
        """The scripted moments; amounts follow the balances the seed produced."""
        if index == 0:
            at(0, 9, 0, lambda: self.enrol("alice"))
            at(0, 9, 0, lambda: self.enrol("bob"))
        elif index == 1:
            at(1, 10, 0, lambda: self.enrol("carol"))
            at(15, 14, 0, self.alice_checkout)
        elif index == 2:
            at(13, 19, 30, self.bob_abandons_checkout)
            at(13, 20, 10, self.bob_comes_back)
        elif index == 3:
            at(17, 11, 0, self.carol_redeems_voucher)
        elif index == 4:
            at(5, 16, 0, self.carol_cancels_voucher)
        elif index == 5:
            at(10, 18, 0, self.alice_gives_to_bob)
        elif index == 6:
            at(3, 20, 0, self.bob_big_order)
            at(23, 12, 0, self.bob_spends_everything)
        elif index == 7:
            at(7, 10, 0, self.bob_returns_big_order)
        elif index == 9:
            at(9, 9, 30, self.carol_goodwill)
        elif index == 11:
            at(15, 8, 0, self.christmas_gift)

    def shopping(self, index: int, at: Callable[[int, int, int, _Action], None]) -> None:
        """Everyday orders, drawn from the seeded random source in a fixed order."""
        plan = {"alice": (2, 3), "bob": (1, 2), "carol": (1, 2)}
        for member, (low, high) in plan.items():
            if member == "carol" and index == 0:
                continue  # not enrolled yet
            if member == "bob" and index in (6, 7):
                continue  # on holiday: nothing pending when his return comes in
            first_day = 2 if (member == "carol" and index == 1) else (1 if index == 0 else 0)
            for _ in range(self.rng.randint(low, high)):
                day = self.rng.randint(first_day, 27)
                hour, minute = self.rng.randint(9, 20), self.rng.randint(0, 59)
                cents = self.rng.randint(1200, 9500)
                online = self.rng.random() < 0.7

                def order(m: str = member, c: int = cents, o: bool = online) -> None:
                    self.order(m, Decimal(c).scaleb(-2), online=o)

                at(day, hour, minute, order)

    # -- the operations -------------------------------------------------------------------

    def enrol(self, member: str) -> None:
        self.loyalty.enrol(member, attributes={"source": "demo"})
        self.members.append(member)
        result = self.loyalty.earn(member, WELCOME_BONUS, key=f"welcome-{member}",
                                   reason="welcome bonus", activates_at=self.clock.now())
        self.event(member, f"enrolled, welcome bonus +{WELCOME_BONUS} (spendable now, "
                           f"expires {_local(_expiry(result.balance)):%Y-%m-%d})")

    def order(self, member: str, amount: Decimal, *, online: bool) -> uuid.UUID:
        self.order_no += 1
        self.orders += 1
        self.order_total += amount
        points = int(amount)  # 1 point per whole EUR
        channel = "online" if online else "in store"
        now = self.clock.now()
        result = self.loyalty.earn(
            member, points, key=f"order-{self.order_no}",
            reason=f"order {self.order_no} ({channel})",
            metadata={"order_id": self.order_no, "amount": str(amount), "channel": channel},
            # in-store purchases cannot be returned by post: spendable at once
            activates_at=None if online else now,
        )
        if online:
            until = _local(now) + dt.timedelta(days=14)
            note = f"pending until {until:%Y-%m-%d}"
        else:
            note = "spendable now"
        self.event(member, f"order {self.order_no} {amount:>7} EUR {channel:<8} "
                           f"earn +{points} ({note})")
        return result.transaction_id

    def nightly(self) -> None:
        report = self.loyalty.run_due()
        self.nightly_runs += 1
        self.due_month = _add(self.due_month, report)
        self.due_all = _add(self.due_all, report)
        if report.released_holds:
            self.event("job", f"due work released {_count(report.released_holds, 'hold')} "
                              f"({report.released_points} points back to available)")
        if report.expired_lots:
            self.event("job", f"due work expired {_count(report.expired_lots, 'lot')} "
                              f"({report.expired_points} points)")

    def alice_checkout(self) -> None:
        available = self.loyalty.balance("alice").available
        if not available:
            self.event("alice", "checkout: no points to pay with")
            return
        hold = self.loyalty.hold("alice", _share(available, 60), key="checkout-alice-1",
                                 ttl=CHECKOUT_TTL, reason="checkout")
        self.event("alice", f"checkout: holds {hold.points} of {available} points for 15 min "
                            f"(available now {hold.balance.available})")
        self.clock.advance(minutes=5)
        used = _share(hold.points, 80)
        captured = self.loyalty.capture(hold.hold_id, used, key="payment-alice-1",
                                        reason="paid with points")
        self.event("alice", f"payment done: captures {used}, {hold.points - used} go back "
                            f"(available {captured.balance.available})")

    def bob_abandons_checkout(self) -> None:
        available = self.loyalty.balance("bob").available
        if not available:
            self.event("bob", "checkout: no points to pay with")
            return
        hold = self.loyalty.hold("bob", _share(available, 50), key="checkout-bob-1",
                                 ttl=CHECKOUT_TTL, reason="checkout")
        self.abandoned_hold = hold.hold_id
        self.event("bob", f"checkout: holds {hold.points} points for 15 min, then closes "
                          "the browser tab")

    def bob_comes_back(self) -> None:
        if self.abandoned_hold is None:
            return
        try:
            self.loyalty.capture(self.abandoned_hold, key="payment-bob-1")
        except HoldExpired as exc:
            self.event("bob", f"comes back 40 min later: capture refused ({exc.code})")

    def carol_redeems_voucher(self) -> None:
        available = self.loyalty.balance("carol").available
        if not available:
            self.event("carol", "no points for a voucher yet")
            return
        points = _share(available, 50)
        spend = self.loyalty.spend("carol", points, key="voucher-carol-1",
                                   reason="voucher for a mug")
        self.voucher = spend.transaction_id
        self.event("carol", f"redeems {points} points for a voucher "
                            f"(available {spend.balance.available})")

    def carol_cancels_voucher(self) -> None:
        if self.voucher is None:
            return
        result = self.loyalty.reverse(self.voucher, key="voucher-carol-1-cancel",
                                      reason="voucher cancelled")
        self.event("carol", f"cancels the voucher: reversal gives back {result.points} "
                            f"points to their original lots (available "
                            f"{result.balance.available})")

    def alice_gives_to_bob(self) -> None:
        available = self.loyalty.balance("alice").available
        if not available:
            return
        points = _share(available, 30)
        result = self.loyalty.transfer("alice", "bob", points, key="gift-alice-bob",
                                       reason="family pooling")
        self.event("alice", f"transfers {points} points to bob, expiry dates kept "
                            f"(bob available {result.incoming.balance.available})")

    def bob_big_order(self) -> None:
        cents = self.rng.randint(18000, 26000)
        amount = Decimal(cents).scaleb(-2)
        tx_id = self.order("bob", amount, online=True)
        self.big_order = (tx_id, int(amount))

    def bob_spends_everything(self) -> None:
        available = self.loyalty.balance("bob").available
        if not available:
            return
        self.loyalty.spend("bob", available, key="bob-headphones", reason="headphones")
        self.event("bob", f"redeems all {available} available points for headphones")

    def bob_returns_big_order(self) -> None:
        if self.big_order is None:
            return
        earn_id, points = self.big_order
        result = self.loyalty.clawback("bob", points, key="return-bob-big", earn_id=earn_id,
                                       reason="late return of the big order")
        self.event("bob", f"returns the big order after its return window: clawback "
                          f"{points} points, debt now {result.balance.debt}")

    def carol_goodwill(self) -> None:
        result = self.loyalty.adjust("carol", 30, key="goodwill-carol",
                                     reason="goodwill: late delivery")
        self.event("carol", f"customer service adjusts +30 (available "
                            f"{result.balance.available})")

    def christmas_gift(self) -> None:
        result = self.loyalty.bulk_earn({m: 25 for m in self.members}, key="xmas-2026",
                                        reason="Christmas gift")
        self.event("all", f"Christmas gift: bulk earn of 25 points to {result.members} "
                          f"members ({result.points} points, pending 14 days)")

    # -- reports --------------------------------------------------------------------------

    def month_close(self, end: dt.datetime) -> None:
        report = self.due_month
        parts = []
        if report.activated_lots:
            parts.append(f"activated {_count(report.activated_lots, 'lot')} "
                         f"({report.activated_points} points)")
        if report.expired_lots:
            parts.append(f"expired {_count(report.expired_lots, 'lot')} "
                         f"({report.expired_points} points)")
        if report.released_holds:
            parts.append(f"released {_count(report.released_holds, 'hold')} "
                         f"({report.released_points} points)")
        self.say(f"  due work this month: {', '.join(parts) or 'nothing due'}")
        self.due_month = DueWorkReport(at=end)
        self.say(f"  balances on {_stamp(end)}   available  pending  held  debt  total  "
                 "next expiry")
        for member in self.members:
            b = self.loyalty.balance(member)
            self.say(f"    {member:<26}{b.available:>9}{b.pending:>9}{b.held:>6}{b.debt:>6}"
                     f"{b.total:>7}  {_next_expiry(b)}")

    def statement(self, member: str) -> None:
        lines: list[StatementLine] = []
        cursor: str | None = None
        while True:
            page = self.loyalty.statement(member, limit=100, cursor=cursor)
            lines.extend(page.lines)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        self.say()
        self.say(f"== statement of {member} ({len(lines)} transactions, oldest first, "
                 f"{TIME_ZONE} time) " + "=" * 20)
        self.say(f"  {'date':<16}  {'kind':<9} {'points':>7} {'balance':>8}  note")
        for line in reversed(lines):
            note = line.reason or _DEFAULT_NOTES.get(line.kind, "")
            self.say(f"  {_stamp(line.occurred_at)}  {line.kind.value:<9} "
                     f"{_signed(line.points):>7} {line.balance:>8}  {note}")

    def summary(self) -> None:
        balances = [self.loyalty.balance(m) for m in self.members]
        self.say()
        self.say(f"== summary on {_stamp(self.clock.now())} " + "=" * 50)
        self.say(f"  {'member':<8}{'earned':>8}{'spent':>7}{'expired':>9}{'adjusted':>10}"
                 f"{'transferred':>13}{'available':>11}{'pending':>9}{'held':>6}{'debt':>6}")
        for b in balances:
            self.say(f"  {b.member_id:<8}{b.earned:>8}{b.spent:>7}{b.expired:>9}"
                     f"{b.adjusted:>10}{_signed(b.transferred):>13}{b.available:>11}{b.pending:>9}"
                     f"{b.held:>6}{b.debt:>6}")
        outstanding = sum(b.total for b in balances)
        liability = self.program.point_value * outstanding
        self.say(f"  {self.orders} orders worth {self.order_total} EUR; "
                 f"{sum(b.earned for b in balances)} points earned (net of returns), "
                 f"{sum(b.spent for b in balances)} spent, "
                 f"{sum(b.expired for b in balances)} expired")
        self.say(f"  outstanding: {outstanding} points = {liability.amount} {liability.currency} "
                 "of liability at face value")
        d = self.due_all
        self.say(f"  due work: {self.nightly_runs} nightly runs activated "
                 f"{_count(d.activated_lots, 'lot')} ({d.activated_points} points), expired "
                 f"{_count(d.expired_lots, 'lot')} ({d.expired_points} points), released "
                 f"{_count(d.released_holds, 'hold')} ({d.released_points} points)")


_DEFAULT_NOTES = {
    Kind.ACTIVATE: "pending points became spendable",
    Kind.EXPIRE: "points expired",
}


def _add(a: DueWorkReport, b: DueWorkReport) -> DueWorkReport:
    return DueWorkReport(
        at=b.at,
        activated_lots=a.activated_lots + b.activated_lots,
        activated_points=a.activated_points + b.activated_points,
        expired_lots=a.expired_lots + b.expired_lots,
        expired_points=a.expired_points + b.expired_points,
        released_holds=a.released_holds + b.released_holds,
        released_points=a.released_points + b.released_points,
        members=a.members + b.members,
    )


def _signed(n: int) -> str:
    return f"{n:+}" if n else "0"


def _expiry(balance: Balance) -> dt.datetime:
    assert balance.next_expiring_at is not None  # the demo program's points expire
    return balance.next_expiring_at


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _next_expiry(balance: Balance) -> str:
    if balance.next_expiring_at is None:
        return "-"
    return f"{balance.next_expiring_points} on {_local(balance.next_expiring_at):%Y-%m-%d}"


def run_demo(storage: Storage, *, seed: int, out: TextIO, label: str) -> None:
    """Run the demo against ``storage`` (empty), printing to ``out``."""
    logger.info("demo on %s with seed %d", label, seed)
    _Demo(storage, seed=seed, out=out, label=label).run()
