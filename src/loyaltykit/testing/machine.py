"""A Hypothesis state machine that drives one or more backends through the same ledger.

:class:`LedgerMachine` draws a program with random ledger policies, a points-as-payment
policy and a small reward catalogue, enrols members and then applies random operations
(earn, spend, hold, capture, void, activate, reverse, adjust, clawback, transfer, bulk
earn, orders paid with points and their returns and cancellations, redeeming rewards,
using and cancelling vouchers, due work (which expires vouchers), clock moves,
idempotent replays and key reuse) to a :class:`~loyaltykit.Loyalty` facade per backend.
All facades share one :class:`~loyaltykit.TestClock` and each has its own deterministic
id and code source, so equal behaviour means equal ids, codes, results and rows. After
every step it checks:

* every ledger invariant (:func:`~loyaltykit.testing.invariants.check_invariants`) on
  every backend, and that debt is settled first by new points (invariant (l)); with
  (v) the vouchers agree with the rewards' stock, global and per-member limits and
  their spends, and each reward's ``stock()`` read is its stock less the vouchers that
  hold an item;
* that the backends agree: the same outcome (an equal result, or the same exception
  class), the same balances, statements and vouchers, the same stored rows;
* that a step which raised a :class:`~loyaltykit.LoyaltyError` wrote nothing;
* that a write first posted the due work of the wallets it touched (invariant (j)),
  and that debits and holds took lots in the spend order (invariant (k));
* that the outbox holds one event per transaction, member and order, each once, in
  increasing positions, and the same events on every backend; and the rewards' events
  are the vouchers' stored changes, each once
  (:mod:`~loyaltykit.testing.voucher_events`);
* that replaying a write with its key returns an equal result and writes nothing, and
  that reusing a key for another request raises
  :class:`~loyaltykit.IdempotencyConflict` and writes nothing.

Expected errors (:class:`~loyaltykit.InsufficientPoints`, :class:`~loyaltykit.HoldExpired`,
...) are allowed outcomes as long as every backend raises the same one; a
:class:`~loyaltykit.StorageError` or any non-loyaltykit exception fails the run.

Run it for your backends (this module needs Hypothesis: the ``test`` extra)::

    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test
    from loyaltykit.memory import MemoryStorage
    from loyaltykit.testing.machine import LedgerMachine

    run_state_machine_as_test(LedgerMachine.using(MemoryStorage, my_storage_factory),
                              settings=settings(max_examples=50, deadline=None))
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import attrs
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from loyaltykit._errors import IdempotencyConflict, InvalidInput, LoyaltyError
from loyaltykit._facade import Loyalty
from loyaltykit._orders import Order, OrderLine
from loyaltykit._outbox import EventPolicy
from loyaltykit._payment import PaymentPolicy
from loyaltykit._program import Program
from loyaltykit._rules import EarningPolicy, RateRule
from loyaltykit._services.orders import ORDER_KEY
from loyaltykit._values import Money
from loyaltykit.testing import strategies as lst
from loyaltykit.testing.invariants import (
    check_invariants,
    check_replay,
    describe_difference,
    find_unsettled_debt,
)
from loyaltykit.testing.machine_base import Backend, CounterIds, StorageFactory, normalised
from loyaltykit.testing.machine_rewards import RewardSteps
from loyaltykit.testing.outbox_checks import check_outbox
from loyaltykit.testing.totals import check_machine_totals

__all__ = ["CounterIds", "LedgerMachine", "StorageFactory"]


class LedgerMachine(RewardSteps):
    """Random ledger operations applied alike to every backend of :attr:`factories`.

    Use :meth:`using` to get a machine bound to storage factories; the class itself
    has none. ``backdate`` lets writes carry a business instant in the past.
    """

    # -- set-up ---------------------------------------------------------------------------

    @initialize(
        program=lst.programs(ids=st.just("machine")),
        payments=lst.payment_policies(),
        start=lst.instants(),
        members=st.lists(lst.member_ids(), min_size=2, max_size=3, unique=True),
        data=st.data(),
    )
    def start(self, program: Program, payments: PaymentPolicy, start: dt.datetime,
              members: list[str], data: st.DataObject) -> None:
        """Create one facade per backend for ``program`` (with a points-as-payment
        policy, 1 point per 1.00 of goods and a small reward catalogue whose vouchers
        expire within the clock's moves) and enrol the first members."""
        rewards = data.draw(lst.reward_policies(wallets=program.wallets, around=start),
                            label="rewards")
        notices = EventPolicy(points_expiring_days=30, voucher_expiring_days=3)
        program = attrs.evolve(program, payments=payments, rewards=rewards,
                               earning=EarningPolicy(rules=(RateRule(id="base"),)),
                               events=data.draw(st.sampled_from([None, notices]), "events"))
        self.program = program
        self.clock.set(start)
        self.started = self.clock.now()
        for factory in self.factories:
            storage = factory()
            # the same codes on every backend: a seeded source, not the secure default
            loyalty = Loyalty(program, storage, clock=self.clock, new_id=CounterIds(),
                              randbelow=random.Random(0).randrange)
            self.backends.append(Backend(storage, loyalty))
        self._refresh()
        for member_id in members:
            self._enrol(member_id)

    def _enrol(self, member_id: str, key: str | None = None) -> None:
        position = self.members.index(member_id) if member_id in self.members else None
        attributes = {"n": len(self.members) if position is None else position}

        def call(loyalty: Loyalty) -> Any:
            return loyalty.enrol(member_id, key=key, attributes=attributes)

        if member_id not in self.members:
            self.members.append(member_id)  # read it from now on, enrolled or not
        self._run(f"enrol({member_id!r})", call, key=key or f"enrol:{member_id}")

    def teardown(self) -> None:
        """Release backend resources (engines of SQL storages)."""
        for backend in self.backends:
            dispose = getattr(backend.storage, "dispose", None)
            if callable(dispose):
                dispose()

    # -- rules ----------------------------------------------------------------------------

    @rule(data=st.data())
    def enrol(self, data: st.DataObject) -> None:
        """Enrol a new member (up to ``max_members``) or an enrolled one again."""
        candidates = st.sampled_from(self.members)
        if len(self.members) < self.max_members:
            candidates = st.one_of(lst.member_ids(), candidates)
        member_id = data.draw(candidates, label="member_id")
        if member_id in self.members and data.draw(st.booleans(), label="new key"):
            self._enrol(member_id, key=self._key("re-enrol"))
        else:
            self._enrol(member_id)

    @rule(data=st.data(), points=lst.points(300))
    def earn(self, data: st.DataObject, points: int) -> None:
        """Earn points, pending per policy, or with an explicit activation instant."""
        member_id, wallet, at = self._member(data), self._wallet(data), self._at(data)
        activates_at = None
        if data.draw(st.booleans(), label="explicit activates_at"):
            offset = data.draw(st.integers(-3 * 86400, 60 * 86400), label="activation offset")
            activates_at = (at or self.clock.now()) + dt.timedelta(seconds=offset)
        key = self._key(data.draw(lst.keys(12), label="key"))
        metadata = {"order": self._steps}

        def call(loyalty: Loyalty) -> Any:
            return loyalty.earn(member_id, points, key=key, at=at, wallet=wallet,
                                activates_at=activates_at, reason="order", metadata=metadata)

        self._run(f"earn({member_id!r}, {points}, at={at}, activates_at={activates_at})",
                  call, key=key, at=at)

    @rule(data=st.data())
    def spend(self, data: st.DataObject) -> None:
        """Spend available points."""
        member_id, wallet, at = self._member(data), self._wallet(data), self._at(data)
        points = self._points(data, member_id, wallet)
        key = self._key("spend")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.spend(member_id, points, key=key, at=at, wallet=wallet)

        result = self._run(f"spend({member_id!r}, {points}, at={at})", call, key=key, at=at)
        if result is not None:
            self._check_taken(result.transaction_id, at)

    @rule(data=st.data(), ttl=lst.ttls())
    def hold(self, data: st.DataObject, ttl: dt.timedelta) -> None:
        """Reserve available points for a while."""
        member_id, wallet, at = self._member(data), self._wallet(data), self._at(data)
        points = self._points(data, member_id, wallet)
        key = self._key("hold")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.hold(member_id, points, key=key, ttl=ttl, at=at, wallet=wallet)

        result = self._run(f"hold({member_id!r}, {points}, ttl={ttl}, at={at})", call,
                           key=key, at=at)
        if result is not None:
            self._check_taken(result.transaction_id, at)

    @precondition(lambda self: bool(self.hold_ids))
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        """Capture all or part of a hold (or more than it holds)."""
        hold_id = self._hold(data)
        held = {h.id: h.points for b in self.backends[:1] if b.snapshot is not None
                for w in b.snapshot.wallets.values() for h in w.open_holds}
        most = held.get(hold_id, 300)
        points = data.draw(st.none() | st.integers(1, most) | lst.points(most + 20),
                           label="points")
        key = self._key("capture")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.capture(hold_id, points, key=key)

        self._run(f"capture({hold_id}, {points})", call, key=key)

    @precondition(lambda self: bool(self.hold_ids))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        """Give a hold's points back."""
        hold_id = self._hold(data)
        key = self._key("void")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.void(hold_id, key=key)

        self._run(f"void({hold_id})", call, key=key)

    @precondition(lambda self: bool(self.tx_ids))
    @rule(data=st.data())
    def activate(self, data: st.DataObject) -> None:
        """Activate an earn's pending points early (any transaction: NotPending)."""
        earns_only = bool(self.earn_ids) and data.draw(st.booleans(), label="earns only")
        pool = self.earn_ids if earns_only else self.tx_ids
        tx_id = data.draw(st.sampled_from(pool), label="earn_id")
        key = self._key("activate")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.activate(tx_id, key=key)

        self._run(f"activate({tx_id})", call, key=key)

    @precondition(lambda self: bool(self.tx_ids))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """Reverse any earlier transaction (a debit a return refunded in part, or a
        voucher's spend, is refused alike on every backend)."""
        tx_id = data.draw(st.sampled_from(self.tx_ids), label="transaction_id")
        at = self._at(data)
        key = self._key("reverse")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.reverse(tx_id, key=key, at=at, reason="mistake")

        self._run(f"reverse({tx_id}, at={at})", call, key=key, at=at)

    @rule(data=st.data(), credit=st.booleans())
    def adjust(self, data: st.DataObject, credit: bool) -> None:
        """A manual correction, up or down."""
        member_id, wallet, at = self._member(data), self._wallet(data), self._at(data)
        points = self._points(data, member_id, wallet)
        signed = points if credit else -points
        key = self._key("adjust")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.adjust(member_id, signed, key=key, reason="support", at=at,
                                  wallet=wallet)

        result = self._run(f"adjust({member_id!r}, {signed}, at={at})", call, key=key, at=at)
        if result is not None and signed < 0:
            self._check_taken(result.transaction_id, at)

    @rule(data=st.data())
    def clawback(self, data: st.DataObject) -> None:
        """Claw points back, optionally from a named earn first."""
        member_id, wallet, at = self._member(data), self._wallet(data), self._at(data)
        points = self._points(data, member_id, wallet, high=400)
        earn_id = None
        if bool(self.earn_ids) and data.draw(st.booleans(), label="with earn_id"):
            earn_id = data.draw(st.sampled_from(self.earn_ids), label="earn_id")
        key = self._key("clawback")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.clawback(member_id, points, key=key, at=at, wallet=wallet,
                                    earn_id=earn_id, reason="return")

        self._run(f"clawback({member_id!r}, {points}, earn_id={earn_id}, at={at})", call,
                  key=key, at=at)

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        """Move available points to another member."""
        source = self._member(data, "from")
        target = data.draw(st.sampled_from([m for m in self.members if m != source]),
                           label="to")
        wallet, at = self._wallet(data), self._at(data)
        points = self._points(data, source, wallet)
        key = self._key("transfer")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.transfer(source, target, points, key=key, at=at, wallet=wallet)

        result = self._run(f"transfer({source!r}, {target!r}, {points}, at={at})", call,
                           key=key, at=at)
        if result is not None:
            self._check_taken(result.outgoing.transaction_id, at)

    @rule(data=st.data())
    def bulk_earn(self, data: st.DataObject) -> None:
        """Award points to several members at once."""
        chosen = data.draw(st.lists(st.sampled_from(self.members), min_size=1, unique=True),
                           label="members")
        awards = [(m, data.draw(lst.points(200), label=f"points of {m!r}")) for m in chosen]
        wallet, at = self._wallet(data), self._at(data)
        key = self._key("bulk")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.bulk_earn(awards, key=key, at=at, wallet=wallet, reason="gift")

        self._run(f"bulk_earn({awards}, at={at})", call, key=key, at=at)

    @rule(data=st.data())
    def pay_order(self, data: st.DataObject) -> None:
        """Spend points (or hold and capture them) and record an order paid partly
        with them: refused (nothing written) when they break the payment policy."""
        member_id = self._member(data)
        wallet = self._program.default_wallet
        n = data.draw(st.integers(1, 3), label="lines")
        lines = tuple(OrderLine(
            sku=f"sku{i}", quantity=data.draw(st.integers(1, 3), label="quantity"),
            unit_price=Money(data.draw(st.sampled_from(["0.99", "3.33", "12.50", "40.00"]),
                                       label="price"), "EUR")) for i in range(n))
        order = Order(id=f"o{self._steps}", member_id=member_id, placed_at=self.clock.now(),
                      currency="EUR", lines=lines)
        points = self._points(data, member_id, wallet, high=400)
        try:  # mostly what the quote allows, so that orders paid with points are many
            quote = self.backends[0].loyalty.payments.quote(order)
        except LoyaltyError:
            quote = None
        if quote is not None and quote.usable and data.draw(st.booleans(), label="quoted"):
            steps = data.draw(st.integers(quote.min_points // quote.step,
                                          quote.max_points // quote.step), label="steps")
            points = steps * quote.step
        capture = data.draw(st.booleans(), label="hold and capture")
        key = self._key("pay")
        paid: Any
        if capture:
            def hold(loyalty: Loyalty) -> Any:
                return loyalty.payments.hold(order, points, key=f"{key}:hold")

            held = self._run(f"payments.hold({order.id}, {points})", hold, key=f"{key}:hold")
            if held is None:
                return

            def capture_(loyalty: Loyalty) -> Any:
                return loyalty.payments.capture(held.hold_id, key=f"{key}:capture")

            paid = self._run(f"payments.capture({held.hold_id})", capture_,
                             key=f"{key}:capture")
        else:
            def spend(loyalty: Loyalty) -> Any:
                return loyalty.spend(member_id, points, key=f"{key}:spend")

            paid = self._run(f"spend({member_id!r}, {points})", spend, key=f"{key}:spend")
        if paid is None:
            return
        paid_id = paid.transaction_id

        def call(loyalty: Loyalty) -> Any:
            # not the default "order:<id>" key, which reuse_key may not take for an earn
            return loyalty.record_order(order, key=f"{key}:order", paid_with=[paid_id])

        result = self._run(f"record_order({order.id}, {points} points, {order.lines})", call,
                           key=f"{key}:order")
        if result is not None:
            self.orders[order.id] = {line.id: line.quantity for line in lines}

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def return_order(self, data: st.DataObject) -> None:
        """Return part of an order (or more than is left of it: InvalidReturn)."""
        order_id = data.draw(st.sampled_from(sorted(self.orders)), label="order_id")
        left = self.orders[order_id]
        line_id = data.draw(st.sampled_from(sorted(left)), label="line")
        quantity = data.draw(st.integers(1, max(left[line_id], 1) + 1), label="quantity")
        key = self._key("return")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.record_return(order_id, {line_id: quantity}, key=key)

        if self._run(f"return({order_id}, {line_id}, {quantity})", call, key=key) is not None:
            left[line_id] -= quantity

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data())
    def cancel_order(self, data: st.DataObject) -> None:
        """Cancel an order: what is left of its points payment goes back."""
        order_id = data.draw(st.sampled_from(sorted(self.orders)), label="order_id")
        key = self._key("cancel")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.cancel_order(order_id, key=key)

        if self._run(f"cancel({order_id})", call, key=key) is not None:
            self.orders[order_id] = dict.fromkeys(self.orders[order_id], 0)

    @rule(batch_size=st.integers(1, 5))
    def run_due(self, batch_size: int) -> None:
        """Run due work now; afterwards no wallet is due any more."""
        now = self.clock.now()

        def call(loyalty: Loyalty) -> Any:
            return loyalty.run_due(batch_size=batch_size)

        report = self._run(f"run_due(batch_size={batch_size})", call, everyone=True)
        if report is not None and report.expired_vouchers:
            event(f"run_due: expired vouchers (refunded: {report.refunded_vouchers > 0})")
        for backend in self.backends:
            with backend.storage.unit_of_work(self._program.id) as uow:
                left = uow.ledger.due_accounts(now, after=None, limit=100)
            assert left == [], f"{backend.storage!r} still has due work after run_due: {left}"
            with backend.storage.unit_of_work(self._program.id) as uow:
                due = uow.rewards.due_vouchers(now, 1)
            assert due == [], f"{backend.storage!r} has vouchers to expire after run_due: {due}"

    @precondition(lambda self: bool(self.expiries))
    @rule(data=st.data(), batch_size=st.integers(1, 5))
    def expire_vouchers(self, data: st.DataObject, batch_size: int) -> None:
        """Move the clock to the instant an issued voucher expires (or a little later)
        and run due work: vouchers expire on the dot."""
        expiry = data.draw(st.sampled_from(self.expiries), label="expiry")
        target = expiry + dt.timedelta(seconds=data.draw(st.sampled_from([0, 0, 1, 3600]),
                                                         label="after"))
        if target > self.clock.now():
            self.clock.set(target)
        self.run_due(batch_size)

    @rule(step=lst.clock_steps())
    def advance_clock(self, step: dt.timedelta) -> None:
        """Let time pass (minutes to months)."""
        self.clock.advance(seconds=step.total_seconds())

    @precondition(lambda self: bool(self.writes))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Repeat an earlier successful write with its key: same result, no change."""
        write = data.draw(st.sampled_from(self.writes), label="write")
        for backend, result in zip(self.backends, write.results, strict=True):
            def call(loyalty: Loyalty = backend.loyalty) -> Any:
                return write.call(loyalty)

            check_replay(backend.loyalty, call, self.members, original=result)

    @precondition(lambda self: bool(self.writes))
    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """Use an earlier write's key for a different request: IdempotencyConflict
        (InvalidInput for a ``record_order``'s default ``"order:<id>"`` key, which only
        that default may use)."""
        write = data.draw(st.sampled_from(self.writes), label="write")
        member_id = self._member(data)
        refused: type[LoyaltyError] = (InvalidInput if write.key.startswith(ORDER_KEY)
                                       else IdempotencyConflict)
        for backend in self.backends:
            before = self._read(backend)
            try:
                backend.loyalty.earn(member_id, 1, key=write.key, reason="key reuse probe")
            except refused:
                pass
            else:
                raise AssertionError(f"reusing the key of {write.label} ({write.key!r}) for "
                                     f"another request did not raise {refused.__name__}")
            after = self._read(backend)
            assert before == after, (f"a refused key reuse changed the ledger:\n"
                                     f"{describe_difference(before, after)}")

    # -- after every step -----------------------------------------------------------------

    @invariant()
    def ledger_is_sound_and_backends_agree(self) -> None:
        """Every invariant holds on every backend, and the backends agree."""
        if not self.backends:
            return
        now = self.clock.now()
        for backend in self.backends:
            check_invariants(backend.storage, self._program, self.members, at=now,
                             snapshot=backend.snapshot)
            assert backend.snapshot is not None
            unsettled = find_unsettled_debt(backend.snapshot)
            assert not unsettled, "\n".join(str(v) for v in unsettled)
            self._check_stock(backend)
            check_machine_totals(backend.loyalty, self.members, {
                k: w.transactions for k, w in backend.snapshot.wallets.items()})
        if len(self.backends) < 2:
            return
        reference = self.backends[0]
        assert reference.snapshot is not None
        for other in self.backends[1:]:
            assert other.snapshot is not None
            left, right = normalised(reference.snapshot), normalised(other.snapshot)
            assert left == right, (f"{reference.storage!r} and {other.storage!r} store "
                                   f"different ledgers:\n{describe_difference(left, right)}")
        for member_id in self.members:
            for wallet in self._program.wallets:
                views = [self._views(b.loyalty, member_id, wallet) for b in self.backends]
                for backend, view in zip(self.backends[1:], views[1:], strict=True):
                    assert views[0] == view, (
                        f"{reference.storage!r} and {backend.storage!r} show member "
                        f"{member_id!r} wallet {wallet!r} differently:\n"
                        f"  {views[0]!r}\n  {view!r}")

    @invariant()
    def outbox_records_every_change_once(self) -> None:
        """The outbox holds one ``points.*`` event per transaction stored (so none of a
        refused write, none twice), one ``member.enrolled`` per member enrolled and one
        ``order.recorded`` per order, each with its own id, in increasing positions, no
        subject noticed twice; the rewards' events are the vouchers' changes, each once;
        and every backend holds the same events (their positions aside)."""
        if not self.backends:
            return
        seen: list[list[dict[str, Any]]] = []
        for backend in self.backends:
            snapshot = backend.snapshot
            assert snapshot is not None
            events = backend.loyalty.events.read("machine", limit=10_000)
            assert len(events) < 10_000, "the machine wrote more events than it reads"
            check_outbox(backend.storage, self._program, self.members, self.orders,
                         snapshot, events)
            seen.append([{k: v for k, v in e.to_dict().items() if k != "position"}
                         for e in events])
        for backend, shown in zip(self.backends[1:], seen[1:], strict=True):
            assert seen[0] == shown, (f"{self.backends[0].storage!r} and "
                                      f"{backend.storage!r} hold different events")

    def _views(self, loyalty: Loyalty, member_id: str, wallet: str) -> tuple[Any, ...]:
        """What a shop shows: balance, balance as of the start, statement, lots."""
        try:
            loyalty.member(member_id)
        except LoyaltyError as exc:
            return (type(exc).__name__,)
        statement = loyalty.statement(member_id, wallet=wallet, limit=1000)
        points = tuple((line.kind, line.points, line.balance) for line in statement.lines)
        return (
            loyalty.balance(member_id, wallet=wallet),
            loyalty.balance(member_id, wallet=wallet, as_of=self.started),
            points,
            statement,
            tuple(loyalty.lots(member_id, wallet=wallet)),
            tuple(loyalty.rewards.vouchers(member_id)),
        )
