"""An example to read and run: fourteen months of a small shop's points program.

``loyaltykit demo`` (also ``python -m loyaltykit demo``) runs this module on an embedded
SQLite file; ``loyaltykit demo --detail`` adds the month-by-month log and a member's
statement. It uses only loyaltykit's public API, so every call below is one a shop's
own code can make.

What it shows: members enrol and order (``loyalty.record_order`` prices each order
with the program's earning rule, 1 point per EUR; its points stay pending for the
14-day return window, and the till activates an in-store order's points at once),
a nightly job runs due work, points pay for part of a checkout, an abandoned
checkout's hold times out, a voucher is redeemed and cancelled, points are
transferred, a late return (``loyalty.record_return``) leaves debt that later orders
settle, lots expire, and the program's reports (liability, totals) sum it up.
A :class:`~loyaltykit.TestClock` drives the fourteen months, so they run in seconds.
They end in the past (March 2026), so the commands the demo suggests at its end,
``loyaltykit report kpis`` over the story's quarters and ``loyaltykit due --at`` the
first night of the month after it, have something to show on its file.

Read it top-down, in the order the story happens:

1. :func:`demo_program`: the program (currency, time zone, earning rule, expiry,
   pending, spend order).
2. :class:`Story`: the members' months: the scripted moments (:meth:`Story.moments`)
   and the everyday orders drawn from a seeded random source (:meth:`Story.shopping`).
3. :meth:`Story.nightly`: the nightly job, ``loyalty.run_due()`` at 03:00 every day.
4. :func:`print_summary` and :func:`print_detail`: the report, from the program's
   reports (``loyalty.reports.liability()``, ``loyalty.reports.totals()``), the
   balances and the statements.
5. The command around it (:mod:`loyaltykit.cli.demo`): open the SQLite file, play,
   report, and say where everything is and which commands to try on the file.

The output is the same for the same seed (ids are random and never printed), so it
doubles as a smoke test of a backend. The docs: ``docs/quickstart.md``,
``docs/ledger.md`` and ``docs/reports.md`` in the source tree (the project's
Documentation link on PyPI).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TextIO
from zoneinfo import ZoneInfo

from loyaltykit import (
    Balance,
    Base,
    ClawbackPolicy,
    DueWorkReport,
    EarningPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    HoldExpired,
    Kind,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    PendingPolicy,
    Program,
    RateRule,
    SpendOrder,
    StatementLine,
    TestClock,
)
from loyaltykit.storage import Storage

__all__ = [
    "MEMBERS",
    "Story",
    "demo_program",
    "play",
    "print_detail",
    "print_summary",
]

#: The members, in the order they enrol.
MEMBERS = ("alice", "bob", "carol")

TIME_ZONE = "Europe/Berlin"
LOCAL = ZoneInfo(TIME_ZONE)
#: The story's first day. Its fourteen months end in the past (2026-03-06), so
#: ``loyaltykit due --at`` (which refuses instants in the future) can run after them.
START = dt.datetime(2025, 1, 6, tzinfo=LOCAL)
MONTHS = 14
#: Where the story ends (``MONTHS`` after ``START``): the clock's last instant.
END = dt.datetime(2026, 3, 6, tzinfo=LOCAL)
#: When the demo's suggested ``loyaltykit due --at`` runs: the first nightly job of the
#: month after the story, when its last orders' pending points have activated and the
#: lots earned in March 2025 expire.
DUE_AT = dt.datetime(2026, 4, 1, 3, 0, tzinfo=LOCAL)
NIGHTLY = dt.time(3, 0)
CHECKOUT_TTL = dt.timedelta(minutes=15)
WELCOME_BONUS = 50


# =========================================================================================
# 1. The program
# =========================================================================================


def demo_program() -> Program:
    """The demo shop's program: EUR, Berlin time; an order earns 1 point per whole EUR
    of goods (its total rounded down), a point is worth 0.01 EUR; points expire 12
    months after they are earned, at the end of the month; an order's points stay
    pending for the 14-day return window (the policy is the program's, for every
    order: the till activates an in-store order's points at once); spends use the
    soonest-expiring points first; a return larger than the balance leaves debt."""
    return Program(
        id="demo-shop",
        time_zone=TIME_ZONE,
        currency="EUR",
        point_value=Money("0.01", "EUR"),
        earning=EarningPolicy(rules=(
            RateRule(id="base", description="1 point per 1.00 EUR of goods",
                     points=Decimal(1), per=Decimal("1.00"), base=Base.NET_GOODS),
        )),
        ledger=LedgerPolicy(
            expiry=ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH),
            pending=PendingPolicy(days=14),
            spend_order=SpendOrder.SOONEST_EXPIRING,
            clawback=ClawbackPolicy.DEBT,
        ),
    )


# =========================================================================================
# 2. The members' months (and 3. the nightly job)
# =========================================================================================

_Action = Callable[[], None]
_At = Callable[[int, int, int, _Action], None]


class Story:
    """Fourteen months of the demo shop on ``storage`` (empty), played by :meth:`play`.

    Each month, the scripted moments and the everyday orders are put in time order,
    with the nightly job at 03:00 every day, and played on a :class:`~loyaltykit.TestClock`.
    What happens is written to :attr:`log` (the detail) and, for the scripted
    moments, to :attr:`highlights` (the summary).
    """

    def __init__(self, storage: Storage, *, seed: int) -> None:
        self.program = demo_program()
        self.clock = TestClock(START)
        #: The facade: one program, one storage, one clock. Its first write stores the
        #: program's definition, so ``loyaltykit due`` and ``report`` can load it later.
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self.rng = random.Random(seed)
        self.seed = seed
        self.members: list[str] = []
        #: The month-by-month log: one line per event, month headers, month closes.
        self.log: list[str] = []
        #: One line per scripted moment, for the summary.
        self.highlights: list[str] = []
        self.order_no = 1000
        self.orders = 0
        self.order_total = Decimal(0)
        self.nightly_runs = 0
        self.due_month = DueWorkReport(at=START)
        self.due_all = DueWorkReport(at=START)
        #: The orders returned and their worth (``loyaltykit report kpis`` counts the
        #: orders kept: ``orders - returned``, ``order_total - returned_total``).
        self.returned = 0
        self.returned_total = Decimal(0)
        self.big_order: tuple[str, Decimal] | None = None
        self.voucher: tuple[uuid.UUID, int] | None = None
        self.abandoned_hold: tuple[uuid.UUID, int] | None = None

    # -- the timeline ---------------------------------------------------------------------

    def play(self) -> None:
        """Play the fourteen months, one after the other."""
        for index in range(MONTHS):
            self.month(index, _add_months(START, index), _add_months(START, index + 1))

    def month(self, index: int, start: dt.datetime, end: dt.datetime) -> None:
        """Play one month: collect its events, then run them in time order."""
        self.log.append("")
        self.log.append(f"== month {index + 1}: {start:%Y-%m-%d} .. "
                        f"{end - dt.timedelta(days=1):%Y-%m-%d} " + "=" * 40)
        events: list[tuple[dt.datetime, int, _Action]] = []

        def at(day: int, hour: int, minute: int, action: _Action) -> None:
            when = (start + dt.timedelta(days=day)).replace(hour=hour, minute=minute)
            events.append((when, len(events), action))

        self.moments(index, at)
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

    def moments(self, index: int, at: _At) -> None:
        """The scripted moments of month ``index`` (0-based); amounts follow the
        balances the seed produced."""
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

    def shopping(self, index: int, at: _At) -> None:
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

    # -- what members do ------------------------------------------------------------------

    def enrol(self, member: str) -> None:
        """Enrol ``member`` and give the welcome bonus, spendable at once."""
        self.loyalty.enrol(member, attributes={"source": "demo"})
        self.members.append(member)
        result = self.loyalty.earn(member, WELCOME_BONUS, key=f"welcome-{member}",
                                   reason="welcome bonus", activates_at=self.clock.now())
        self.event(member, f"enrolled, welcome bonus +{WELCOME_BONUS} (spendable now, "
                           f"expires {_local(_expiry(result.balance)):%Y-%m-%d})")

    def order(self, member: str, amount: Decimal, *, online: bool) -> str:
        """An order of one basket, recorded with ``record_order``: the program's rule
        prices it (1 point per whole EUR) and its points are pending for 14 days; an
        in-store order's points the till activates at once (no parcel to send back).
        Returns the order's id (the shop's order number)."""
        self.order_no += 1
        self.orders += 1
        self.order_total += amount
        order_id = str(self.order_no)
        channel = "online" if online else "store"
        now = self.clock.now()
        result = self.loyalty.record_order(Order(
            id=order_id, member_id=member, placed_at=now, currency=self.program.currency,
            lines=(OrderLine(sku="basket", quantity=1, category="goods",
                             unit_price=Money(amount, self.program.currency)),),
            channel=channel,
        ))
        note = f"pending until {_local(now) + dt.timedelta(days=14):%Y-%m-%d}"
        if result.transaction is not None and not online:
            self.loyalty.activate(result.transaction.transaction_id, key=f"till-{order_id}",
                                  reason="in-store purchase: activated at the till")
            note = "activated at the till"
        where = "online" if online else "in store"
        self.event(member, f"order {order_id} {amount:>7} EUR {where:<8} "
                           f"earn +{result.points} ({note})")
        return order_id

    def alice_checkout(self) -> None:
        """Points pay for part of a checkout: hold, then capture less than held."""
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
        self.highlight(f"alice pays {used} points at checkout (held {hold.points}, "
                       f"{hold.points - used} go back)")

    def bob_abandons_checkout(self) -> None:
        """A hold nobody captures: the nightly job releases it after its 15 minutes."""
        available = self.loyalty.balance("bob").available
        if not available:
            self.event("bob", "checkout: no points to pay with")
            return
        hold = self.loyalty.hold("bob", _share(available, 50), key="checkout-bob-1",
                                 ttl=CHECKOUT_TTL, reason="checkout")
        self.abandoned_hold = (hold.hold_id, hold.points)
        self.event("bob", f"checkout: holds {hold.points} points for 15 min, then closes "
                          "the browser tab")

    def bob_comes_back(self) -> None:
        """Capturing the expired hold is refused with a typed error."""
        if self.abandoned_hold is None:
            return
        hold_id, points = self.abandoned_hold
        try:
            self.loyalty.capture(hold_id, key="payment-bob-1")
        except HoldExpired as exc:
            self.event("bob", f"comes back 40 min later: capture refused ({exc.code})")
            self.highlight(f"bob abandons a checkout; the nightly job releases its hold "
                           f"of {points} points")

    def carol_redeems_voucher(self) -> None:
        """A spend: about half of carol's available points for a voucher."""
        available = self.loyalty.balance("carol").available
        if not available:
            self.event("carol", "no points for a voucher yet")
            return
        points = _share(available, 50)
        spend = self.loyalty.spend("carol", points, key="voucher-carol-1",
                                   reason="voucher for a mug")
        self.voucher = (spend.transaction_id, points)
        self.event("carol", f"redeems {points} points for a voucher "
                            f"(available {spend.balance.available})")

    def carol_cancels_voucher(self) -> None:
        """A reversal: the spend's exact opposite, restoring the lots it consumed."""
        if self.voucher is None:
            return
        spend_id, points = self.voucher
        result = self.loyalty.reverse(spend_id, key="voucher-carol-1-cancel",
                                      reason="voucher cancelled")
        self.event("carol", f"cancels the voucher: reversal gives back {result.points} "
                            f"points to their original lots (available "
                            f"{result.balance.available})")
        self.highlight(f"carol cancels a {points}-point voucher: the reversal restores "
                       "the lots it used")

    def alice_gives_to_bob(self) -> None:
        """A transfer between members; the points keep their expiry dates."""
        available = self.loyalty.balance("alice").available
        if not available:
            return
        points = _share(available, 30)
        result = self.loyalty.transfer("alice", "bob", points, key="gift-alice-bob",
                                       reason="family pooling")
        self.event("alice", f"transfers {points} points to bob, expiry dates kept "
                            f"(bob available {result.incoming.balance.available})")
        self.highlight(f"alice transfers {points} points to bob, expiry dates kept")

    def bob_big_order(self) -> None:
        """A large online order, returned late next month."""
        cents = self.rng.randint(18000, 26000)
        amount = Decimal(cents).scaleb(-2)
        self.big_order = (self.order("bob", amount, online=True), amount)

    def bob_spends_everything(self) -> None:
        """Bob redeems every available point, the big order's included."""
        available = self.loyalty.balance("bob").available
        if not available:
            return
        self.loyalty.spend("bob", available, key="bob-headphones", reason="headphones")
        self.event("bob", f"redeems all {available} available points for headphones")
        self.highlight(f"bob redeems all {available} available points for headphones")

    def bob_returns_big_order(self) -> None:
        """A return, recorded with ``record_return``: the order is priced again with the
        rules it was placed under and the difference clawed back; more than the balance,
        so the rest becomes debt (the program's clawback policy)."""
        if self.big_order is None:
            return
        order_id, amount = self.big_order
        result = self.loyalty.record_return(order_id, {"basket": 1}, key="return-bob-big",
                                            reason="late return of the big order")
        self.returned += 1
        self.returned_total += amount
        debt = self.loyalty.balance("bob").debt
        self.event("bob", f"returns the big order after its return window: clawback "
                          f"{result.clawed_back} points, debt now {debt}")
        self.highlight(f"bob returns a big order late: {result.clawed_back} points clawed "
                       f"back, {debt} of them as debt")

    def carol_goodwill(self) -> None:
        """A manual adjustment, with its reason."""
        result = self.loyalty.adjust("carol", 30, key="goodwill-carol",
                                     reason="goodwill: late delivery")
        self.event("carol", f"customer service adjusts +30 (available "
                            f"{result.balance.available})")
        self.highlight("customer service gives carol 30 goodwill points (late delivery)")

    def christmas_gift(self) -> None:
        """One bulk earn for every member, all or nothing."""
        year = _local(self.clock.now()).year
        result = self.loyalty.bulk_earn({m: 25 for m in self.members}, key=f"xmas-{year}",
                                        reason="Christmas gift")
        self.event("all", f"Christmas gift: bulk earn of 25 points to {result.members} "
                          f"members ({result.points} points, pending 14 days)")
        self.highlight(f"Christmas gift: one bulk earn of 25 points to each of the "
                       f"{result.members} members")

    # -- 3. the nightly job ---------------------------------------------------------------

    def nightly(self) -> None:
        """Due work, as a shop's cron job runs it (``loyaltykit due``): activate matured
        pending points, expire lots, release stale holds."""
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

    # -- the log --------------------------------------------------------------------------

    def event(self, member: str, text: str) -> None:
        """Log one event at the clock's time."""
        self.log.append(f"  {_stamp(self.clock.now())}  {member:<6} {text}")

    def highlight(self, text: str) -> None:
        """Note a scripted moment for the summary, dated by the clock."""
        self.highlights.append(f"  {_local(self.clock.now()):%Y-%m-%d}  {text}")

    def month_close(self, end: dt.datetime) -> None:
        """Log what due work did this month and the balances at its end."""
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
        self.log.append(f"  due work this month: {', '.join(parts) or 'nothing due'}")
        self.due_month = DueWorkReport(at=end)
        self.log.append(f"  balances on {_stamp(end)}   available  pending  held  debt  "
                        "total  next expiry")
        for member in self.members:
            b = self.loyalty.balance(member)
            self.log.append(f"    {member:<26}{b.available:>9}{b.pending:>9}{b.held:>6}"
                            f"{b.debt:>6}{b.total:>7}  {_next_expiry(b)}")


def play(storage: Storage, *, seed: int = 1) -> Story:
    """Play the demo's fourteen months on ``storage`` (empty) and return the story:
    its facade (``story.loyalty``), log and highlights."""
    story = Story(storage, seed=seed)
    story.play()
    return story


# =========================================================================================
# 4. The report
# =========================================================================================


def print_summary(story: Story, out: TextIO) -> None:
    """What happened, the members' balances, the program's liability and totals."""
    loyalty, now = story.loyalty, story.clock.now()
    balances = [loyalty.balance(m) for m in story.members]
    say = _printer(out)
    say()
    say(f"What happened, {START:%Y-%m-%d} .. {_local(now) - dt.timedelta(days=1):%Y-%m-%d}")
    say(f"  {len(story.members)} members, {story.orders} orders ({story.returned} returned): "
        f"{story.order_total - story.returned_total} EUR kept, "
        f"{sum(b.earned for b in balances)} points earned net, "
        f"{sum(b.spent for b in balances)} spent")
    for line in story.highlights:
        say(line)
    d = story.due_all
    say(f"  due work every night ({story.nightly_runs} runs): "
        f"{_count(d.activated_lots, 'lot')} activated, {d.expired_lots} expired "
        f"({d.expired_points} points), {_count(d.released_holds, 'hold')} released")

    say()
    say(f"Balances on {_stamp(now)} (loyalty.balance)")
    say(f"  {'member':<8}{'earned':>8}{'spent':>7}{'expired':>9}{'adjusted':>10}"
        f"{'transferred':>13}{'available':>11}{'pending':>9}{'held':>6}{'debt':>6}")
    for b in balances:
        say(f"  {b.member_id:<8}{b.earned:>8}{b.spent:>7}{b.expired:>9}{b.adjusted:>10}"
            f"{_signed(b.transferred):>13}{b.available:>11}{b.pending:>9}{b.held:>6}"
            f"{b.debt:>6}")

    liability = loyalty.reports.liability()
    say()
    say("The program's liability and totals (loyalty.reports)")
    say(f"  {liability.points} points outstanding: {liability.available} available, "
        f"{liability.pending} pending, {liability.held} held (debt {liability.debt}, "
        "not netted)")
    say(f"  liability {_money(liability.liability)} = face value "
        f"{_money(liability.face_value)} x {liability.expected_redemption:.1%} expected "
        f"redemption ({_BASIS[liability.basis]})")
    for totals in loyalty.reports.totals():
        say(f"  issued {totals.issued} = redeemed {totals.redeemed} + expired "
            f"{totals.expired} + written off {totals.written_off} + outstanding "
            f"{totals.outstanding}")


def print_detail(story: Story, out: TextIO, *, statement_of: str = "bob") -> None:
    """The month-by-month log, then one member's statement."""
    say = _printer(out)
    say()
    say("Detail: the month-by-month log " + "=" * 50)
    for text in story.log:
        say(text)
    lines = list(_statement(story.loyalty, statement_of))
    say()
    say(f"== statement of {statement_of} ({len(lines)} transactions, oldest first, "
        f"{TIME_ZONE} time) " + "=" * 20)
    say(f"  {'date':<16}  {'kind':<9} {'points':>7} {'balance':>8}  note")
    for line in reversed(lines):
        note = line.reason or _DEFAULT_NOTES.get(line.kind, "")
        say(f"  {_stamp(line.occurred_at)}  {line.kind.value:<9} "
            f"{_signed(line.points):>7} {line.balance:>8}  {note}")


def _statement(loyalty: Loyalty, member: str) -> Iterator[StatementLine]:
    """Every line of the member's statement, newest first, page after page."""
    cursor: str | None = None
    while True:
        page = loyalty.statement(member, limit=100, cursor=cursor)
        yield from page.lines
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


_BASIS = {
    "breakage": "1 - breakage",
    "given": "given",
    "face_value": "no closed cohort yet",
}

_DEFAULT_NOTES = {
    Kind.ACTIVATE: "pending points became spendable",
    Kind.EXPIRE: "points expired",
}


# -- small helpers ----------------------------------------------------------------------


def _printer(out: TextIO) -> Callable[..., None]:
    def say(text: str = "") -> None:
        print(text, file=out)

    return say


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


def _money(money: Money) -> str:
    return f"{money.amount} {money.currency}"


def _expiry(balance: Balance) -> dt.datetime:
    assert balance.next_expiring_at is not None  # the demo program's points expire
    return balance.next_expiring_at


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _next_expiry(balance: Balance) -> str:
    if balance.next_expiring_at is None:
        return "-"
    return f"{balance.next_expiring_points} on {_local(balance.next_expiring_at):%Y-%m-%d}"
