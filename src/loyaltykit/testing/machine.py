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
import threading
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from loyaltykit._clock import TestClock
from loyaltykit._errors import IdempotencyConflict, LoyaltyError, StorageError
from loyaltykit._facade import Loyalty
from loyaltykit._model import Kind
from loyaltykit._orders import Order, OrderLine
from loyaltykit._outbox import EventPolicy
from loyaltykit._payment import PaymentPolicy
from loyaltykit._program import Program
from loyaltykit._results import HoldResult, Redemption, TransactionResult, TransferResult
from loyaltykit._rewards import Voucher, VoucherStatus
from loyaltykit._rules import EarningPolicy, RateRule
from loyaltykit._values import Money
from loyaltykit.storage import Storage
from loyaltykit.testing import strategies as lst
from loyaltykit.testing.invariants import (
    LedgerSnapshot,
    check_invariants,
    check_replay,
    describe_difference,
    find_due_work,
    find_spend_order_violations,
    find_unsettled_debt,
    read_ledger,
)
from loyaltykit.testing.outbox_checks import check_outbox
from loyaltykit.testing.totals import check_machine_totals

__all__ = ["CounterIds", "LedgerMachine", "StorageFactory"]

#: Returns a fresh, empty storage each time it is called.
StorageFactory = Callable[[], Storage]

_WriteCall = Callable[[Loyalty], Any]


class CounterIds:
    """A deterministic id source: ``UUID(int=1)``, ``UUID(int=2)``, ...

    Two facades driven through the same operations with their own ``CounterIds``
    generate the same ids, so their results and rows can be compared as they are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __call__(self) -> uuid.UUID:
        """Return the next id."""
        with self._lock:
            self._count += 1
            return uuid.UUID(int=self._count)


@attrs.define
class _Backend:
    storage: Storage
    loyalty: Loyalty
    snapshot: LedgerSnapshot | None = None


@attrs.define
class _Write:
    """A successful keyed write, kept for replay: the call and each backend's result."""

    label: str
    key: str
    call: _WriteCall
    results: list[Any]


@attrs.frozen
class _Outcome:
    value: Any = None
    error: LoyaltyError | None = None


def _normalise(snapshot: LedgerSnapshot) -> LedgerSnapshot:
    """Drop what backends may legitimately store differently (the row version)."""
    wallets = {
        key: attrs.evolve(
            w, state=attrs.evolve(w.state, version=0) if w.state is not None else None
        )
        for key, w in snapshot.wallets.items()
    }
    return attrs.evolve(snapshot, wallets=wallets)


class LedgerMachine(RuleBasedStateMachine):
    """Random ledger operations applied alike to every backend of :attr:`factories`.

    Use :meth:`using` to get a machine bound to storage factories; the class itself
    has none. ``backdate`` lets writes carry a business instant in the past.
    """

    #: Storage factories, one backend each; the first is the reference.
    factories: ClassVar[tuple[StorageFactory, ...]] = ()
    #: Whether writes may be backdated (``at`` earlier than the clock's now).
    backdate: ClassVar[bool] = True
    #: Most members a run enrols.
    max_members: ClassVar[int] = 4

    @classmethod
    def using(cls, *factories: StorageFactory, backdate: bool = True) -> type[LedgerMachine]:
        """Return a subclass driving one backend per factory (the same operations on
        each, compared with each other)."""
        if not factories:
            raise ValueError("LedgerMachine needs at least one storage factory")
        attributes: dict[str, Any] = {"factories": tuple(factories), "backdate": backdate}
        return type(f"{cls.__name__}x{len(factories)}", (cls,), attributes)

    def __init__(self) -> None:
        super().__init__()
        if not self.factories:
            raise TypeError("use LedgerMachine.using(factory, ...) to choose backends")
        self.program: Program | None = None
        self.clock = TestClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        self.started = self.clock.now()
        self.backends: list[_Backend] = []
        self.members: list[str] = []
        self.writes: list[_Write] = []
        self.tx_ids: list[uuid.UUID] = []
        self.earn_ids: list[uuid.UUID] = []
        self.hold_ids: list[uuid.UUID] = []
        self.open_hold_ids: list[uuid.UUID] = []
        #: stored codes of every voucher, and of the issued ones (the reference's)
        self.voucher_codes: list[str] = []
        self.issued_codes: list[str] = []
        self.redeem_keys: list[str] = []
        #: when issued vouchers expire (the reference's)
        self.expiries: list[dt.datetime] = []
        #: orders recorded (paid partly with points or not): id -> line id -> quantity
        self.orders: dict[str, dict[str, int]] = {}
        self._steps = 0

    # -- plumbing -------------------------------------------------------------------------

    def _key(self, suffix: str) -> str:
        self._steps += 1
        return f"{self._steps}:{suffix}"

    @property
    def _program(self) -> Program:
        assert self.program is not None
        return self.program

    def _read(self, backend: _Backend) -> LedgerSnapshot:
        return read_ledger(backend.storage, self._program, self.members)

    def _refresh(self) -> None:
        """Re-read every backend and the ids rules pick from (the reference's)."""
        for backend in self.backends:
            backend.snapshot = self._read(backend)
        reference = self.backends[0].snapshot
        assert reference is not None
        txs = sorted(
            (tx for w in reference.wallets.values() for tx in w.transactions),
            key=lambda tx: tx.id,
        )
        self.tx_ids = [tx.id for tx in txs]
        self.earn_ids = [tx.id for tx in txs if tx.kind is Kind.EARN]
        self.hold_ids = sorted(h for w in reference.wallets.values() for h in w.holds)
        self.open_hold_ids = sorted(h.id for w in reference.wallets.values()
                                    for h in w.open_holds)
        vouchers = list(reference.vouchers.values())
        self.voucher_codes = [v.code for v in vouchers]
        self.issued_codes = [v.code for v in vouchers if v.status is VoucherStatus.ISSUED]
        self.expiries = sorted({v.expires_at for v in vouchers if v.expires_at is not None
                                and v.status is VoucherStatus.ISSUED})

    def _run(
        self,
        label: str,
        call: _WriteCall,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        everyone: bool = False,
    ) -> Any:
        """Apply ``call`` to every backend; check they agree, that errors write nothing
        and that a write posted the due work of the wallets it touched (of every
        wallet if ``everyone``) up to its instant ``at`` (default: now). Returns the
        reference backend's result (None after an error)."""
        instant = at or self.clock.now()
        outcomes: list[_Outcome] = []
        for backend in self.backends:
            try:
                outcomes.append(_Outcome(value=call(backend.loyalty)))
            except StorageError:
                raise
            except LoyaltyError as exc:
                outcomes.append(_Outcome(error=exc))
        kinds = [type(o.error).__name__ if o.error else "ok" for o in outcomes]
        event(f"{label.partition('(')[0]}: {kinds[0]}")
        assert len(set(kinds)) == 1, f"backends disagree on the outcome of {label}: {kinds} " \
                                     f"({[str(o.error) for o in outcomes if o.error]})"
        before = [b.snapshot for b in self.backends]
        self._refresh()
        first = outcomes[0]
        if first.error is not None:
            for backend, old in zip(self.backends, before, strict=True):
                assert old is not None and backend.snapshot is not None
                assert old == backend.snapshot, (
                    f"{label} raised {first.error} but changed the ledger of "
                    f"{backend.storage!r}:\n{describe_difference(old, backend.snapshot)}")
            return None
        for i, o in enumerate(outcomes[1:], start=1):
            assert first.value == o.value, (
                f"backends return different results for {label}:\n"
                f"  {self.backends[0].storage!r}: {first.value!r}\n"
                f"  {self.backends[i].storage!r}: {o.value!r}")
        for backend, old in zip(self.backends, before, strict=True):
            new = backend.snapshot
            assert old is not None and new is not None
            touched = None if everyone else [
                k for k, w in new.wallets.items() if old.wallets.get(k) != w]
            left = find_due_work(new, instant, touched)
            assert not left, f"{label} left due work undone:\n" + "\n".join(
                f"  {v}" for v in left)
        for backend, o in zip(self.backends, outcomes, strict=True):
            self._check_result_balances(label, backend.loyalty, o.value)
        if key is not None:
            self.writes.append(_Write(label, key, call, [o.value for o in outcomes]))
        return first.value

    def _check_result_balances(self, label: str, loyalty: Loyalty, result: Any) -> None:
        """A write's result carries the balance that reading it right after shows."""
        if isinstance(result, TransferResult):
            balances = [result.outgoing.balance, result.incoming.balance]
        elif isinstance(result, TransactionResult | HoldResult | Redemption):
            balances = [result.balance]
        else:
            return
        for shown in balances:
            read = loyalty.balance(shown.member_id, wallet=shown.wallet)
            assert attrs.evolve(read, as_of=shown.as_of) == shown, (
                f"{label} returned a balance that differs from reading it:\n"
                f"  returned: {shown!r}\n  read:     {read!r}")

    def _check_taken(self, transaction_id: uuid.UUID, at: dt.datetime | None) -> None:
        """Invariant (k) for the debit or hold ``transaction_id`` just written."""
        instant = at or self.clock.now()
        for backend in self.backends:
            snapshot = backend.snapshot
            assert snapshot is not None
            for (member_id, wallet), w in snapshot.wallets.items():
                tx = next((t for t in w.transactions if t.id == transaction_id), None)
                if tx is None:
                    continue
                if tx.kind is Kind.HOLD:
                    hold = w.holds.get(uuid.UUID(str(tx.metadata["hold_id"])))
                    taken = [a.lot_id for a in hold.allocations] if hold else []
                else:
                    taken = [m.lot_id for m in tx.movements if m.delta < 0]
                wrong = find_spend_order_violations(snapshot, self._program, member_id,
                                                    wallet, taken, instant)
                assert not wrong, "\n".join(str(v) for v in wrong)

    def _at(self, data: st.DataObject) -> dt.datetime | None:
        """None (the clock's now) or, if backdating is on, an instant since the start."""
        if not self.backdate:
            return None
        now = self.clock.now()
        span = int((now - self.started).total_seconds())
        if span <= 0 or not data.draw(st.booleans(), label="backdated"):
            return None
        back = data.draw(st.integers(0, span), label="seconds back")
        return now - dt.timedelta(seconds=back)

    def _spendable(self, member_id: str, wallet: str) -> int:
        """The points the member can spend now (as the reference backend stores them)."""
        snapshot = self.backends[0].snapshot
        now = self.clock.now()
        if snapshot is None or (member_id, wallet) not in snapshot.wallets:
            return 0
        return sum(lot.spendable(now) for lot in snapshot.wallets[(member_id, wallet)]
                   .lots.values())

    def _points(self, data: st.DataObject, member_id: str, wallet: str, high: int = 300) -> int:
        """Points for a debit: mostly within what the member has, sometimes more."""
        have = self._spendable(member_id, wallet)
        if have > 0 and data.draw(st.integers(0, 3), label="within balance") > 0:
            return data.draw(st.integers(1, have), label="points")
        return data.draw(lst.points(high), label="points")

    def _member(self, data: st.DataObject, label: str = "member") -> str:
        return data.draw(st.sampled_from(self.members), label=label)

    def _hold(self, data: st.DataObject) -> uuid.UUID:
        """Mostly an open hold, sometimes any hold."""
        prefer_open = bool(self.open_hold_ids) and data.draw(st.integers(0, 3),
                                                             label="open hold") > 0
        pool = self.open_hold_ids if prefer_open else self.hold_ids
        return data.draw(st.sampled_from(pool), label="hold_id")

    def _wallet(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self._program.wallets), label="wallet")

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
            self.backends.append(_Backend(storage, loyalty))
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

    @rule(data=st.data())
    def redeem(self, data: st.DataObject) -> None:
        """Redeem a reward: mostly one the member can pay for (or after earning what it
        costs), often again one the member has redeemed before (limits), sometimes one
        not in the catalogue, sometimes under the key of an earlier redemption (its
        replay or an IdempotencyConflict)."""
        policy = self._program.rewards
        assert policy is not None
        wallet = policy.wallet or self._program.default_wallet
        at = self._at(data)
        redeemed = sorted({(v.member_id, v.reward_id, v.issued_at) for v in self._vouchers()})
        if redeemed and data.draw(st.integers(0, 2), label="again") == 0:
            member_id, reward_id, issued_at = data.draw(st.sampled_from(redeemed),
                                                        label="again of")
            if self.backdate and data.draw(st.booleans(), label="just before"):
                # out of order: limits must hold in every period, not only up to `at`
                back = dt.timedelta(seconds=data.draw(st.integers(0, 3 * 86400),
                                                      label="seconds before"))
                at = max(issued_at - back, self.started)
            have = self._spendable(member_id, wallet)
        else:
            member_id = self._member(data)
            have = self._spendable(member_id, wallet)
            ids = [r.id for r in policy.catalogue]
            affordable = [r.id for r in policy.catalogue if r.cost <= have]
            if affordable and data.draw(st.integers(0, 3), label="affordable") > 0:
                ids = affordable
            reward_id = data.draw(st.sampled_from(ids) | st.just("no-such-reward")
                                  if data.draw(st.integers(0, 9), label="unknown") == 0
                                  else st.sampled_from(ids), label="reward_id")
        reward = policy.by_id.get(reward_id)
        if reward is not None and reward.cost > have and data.draw(st.booleans(),
                                                                   label="top up"):
            self._top_up(member_id, wallet, reward.cost - have, at)
        old = bool(self.redeem_keys) and data.draw(st.integers(0, 5), label="old key") == 0
        key = data.draw(st.sampled_from(self.redeem_keys), label="key") if old \
            else self._key("redeem")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.redeem(member_id, reward_id, key=key, at=at)

        label = f"redeem({member_id!r}, {reward_id!r}, at={at}, key={key!r})"
        if old:
            self._under_old_key(label, call, key)
            return
        result = self._run(label, call, key=key, at=at)
        if result is not None:
            self.redeem_keys.append(key)
            self._check_voucher(result.voucher)
            self._check_taken(result.transaction_id, at)

    def _vouchers(self) -> list[Voucher]:
        """Every voucher, as the reference backend stores them."""
        snapshot = self.backends[0].snapshot
        return [] if snapshot is None else list(snapshot.vouchers.values())

    def _top_up(self, member_id: str, wallet: str, points: int, at: dt.datetime | None
                ) -> None:
        """Earn ``points`` available at ``at`` (None: now), so that a redemption then
        can be paid for."""
        key = self._key("top up")
        when = at or self.clock.now()

        def call(loyalty: Loyalty) -> Any:
            return loyalty.earn(member_id, points, key=key, wallet=wallet, at=at,
                                activates_at=when, reason="top up")

        self._run(f"earn({member_id!r}, {points}, top up, at={at})", call, key=key, at=at)

    def _under_old_key(self, label: str, call: _WriteCall, key: str) -> None:
        """Run a write under the key of an earlier one: every backend returns that
        write's result (the same request) or raises IdempotencyConflict (another
        request), alike, and nothing is written."""
        original = next(w for w in self.writes if w.key == key)
        outcomes = []
        for backend, result in zip(self.backends, original.results, strict=True):
            try:
                value = call(backend.loyalty)
            except IdempotencyConflict:
                outcomes.append("conflict")
                continue
            assert value == result, (f"{label} under the key of {original.label} returned "
                                     f"{value!r}, not its result {result!r}")
            outcomes.append("replay")
        event(f"{label.partition('(')[0]} under an old key: {outcomes[0]}")
        assert len(set(outcomes)) == 1, f"backends disagree on {label}: {outcomes}"
        before = [b.snapshot for b in self.backends]
        self._refresh()
        for backend, old in zip(self.backends, before, strict=True):
            assert old is not None and backend.snapshot is not None
            assert old == backend.snapshot, (
                f"{label} under the key of {original.label} changed the ledger of "
                f"{backend.storage!r}:\n{describe_difference(old, backend.snapshot)}")

    def _code(self, data: st.DataObject, issued: bool) -> str:
        """A voucher's code as a customer may type it: mostly an issued one (if
        ``issued``), else any voucher's, sometimes one never issued or malformed."""
        pool = self.issued_codes if issued and self.issued_codes and data.draw(
            st.integers(0, 3), label="issued") > 0 else self.voucher_codes
        if not pool or data.draw(st.integers(0, 15), label="bad code") == 0:
            return data.draw(st.sampled_from(["0000-0000-00", "not a code",
                                              "7K3QD-M9XWP-E"]), label="code")
        code = data.draw(st.sampled_from(pool), label="code")
        spec = self._program.rewards.code if self._program.rewards is not None else None
        assert spec is not None
        style = data.draw(st.sampled_from(("stored", "shown", "lower", "spaced")),
                          label="typed")
        if style == "shown":
            return spec.display(code)
        if style == "lower":
            return spec.display(code).lower()
        if style == "spaced":
            return " ".join(spec.display(code).split("-")).lower()
        return code

    def _check_voucher(self, voucher: Voucher) -> None:
        """A voucher a write returned is the one every backend stored."""
        for backend in self.backends:
            assert backend.snapshot is not None
            stored = backend.snapshot.vouchers.get(voucher.id)
            assert stored == voucher, (f"{backend.storage!r} stored voucher {voucher.id} as "
                                       f"{stored!r}, the write returned {voucher!r}")

    @precondition(lambda self: bool(self.voucher_codes))
    @rule(data=st.data())
    def use_voucher(self, data: st.DataObject) -> None:
        """Use a voucher on an order (typed loosely; used, cancelled, expired, unknown
        and malformed codes are refused)."""
        code, at = self._code(data, issued=True), self._at(data)
        order_id = data.draw(st.sampled_from(sorted(self.orders)) | st.just(f"u{self._steps}")
                             if self.orders else st.just(f"u{self._steps}"), label="order_id")
        key = self._key("use")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.use(code, order_id=order_id, key=key, at=at)

        result = self._run(f"use({code!r}, {order_id!r}, at={at})", call, key=key, at=at)
        if result is not None:
            self._check_voucher(result)

    @precondition(lambda self: bool(self.voucher_codes))
    @rule(data=st.data())
    def cancel_voucher(self, data: st.DataObject) -> None:
        """Cancel a voucher: its points go back, its stock and limits are released
        (a used, cancelled or expired one is refused)."""
        code, at = self._code(data, issued=True), self._at(data)
        key = self._key("cancel voucher")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.cancel(code, key=key, at=at, reason="changed mind")

        result = self._run(f"cancel_voucher({code!r}, at={at})", call, key=key, at=at)
        if result is not None:
            self._check_voucher(result)

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
        """Use an earlier write's key for a different request: IdempotencyConflict."""
        write = data.draw(st.sampled_from(self.writes), label="write")
        member_id = self._member(data)
        for backend in self.backends:
            before = self._read(backend)
            try:
                backend.loyalty.earn(member_id, 1, key=write.key, reason="key reuse probe")
            except IdempotencyConflict:
                pass
            else:
                raise AssertionError(f"reusing the key of {write.label} ({write.key!r}) for "
                                     f"another request did not raise IdempotencyConflict")
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
            left, right = _normalise(reference.snapshot), _normalise(other.snapshot)
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

    def _check_stock(self, backend: _Backend) -> None:
        """Each reward's ``stock()`` read is its stock less the vouchers stored issued
        or used (the ones that hold an item)."""
        policy = self._program.rewards
        if policy is None or backend.snapshot is None:
            return
        vouchers = backend.snapshot.vouchers.values()
        for reward in policy.catalogue:
            holding = sum(1 for v in vouchers if v.reward_id == reward.id
                          and v.status in (VoucherStatus.ISSUED, VoucherStatus.USED))
            expected = None if reward.stock is None else reward.stock - holding
            shown = backend.loyalty.rewards.stock(reward.id)
            assert shown == expected, (f"{backend.storage!r}: stock({reward.id!r}) is "
                                       f"{shown}, {reward.stock} less {holding} vouchers "
                                       f"holding an item is {expected}")

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
