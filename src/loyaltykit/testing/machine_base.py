"""The plumbing of :class:`~loyaltykit.testing.machine.LedgerMachine`: its backends,
how a write is applied to each and compared, and what rules draw from.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Self

import attrs
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
)

from loyaltykit._clock import TestClock
from loyaltykit._errors import IdempotencyConflict, LoyaltyError, StorageError
from loyaltykit._facade import Loyalty
from loyaltykit._model import Kind
from loyaltykit._program import Program
from loyaltykit._results import HoldResult, Redemption, TransactionResult, TransferResult
from loyaltykit._rewards import VoucherStatus
from loyaltykit.storage import Storage
from loyaltykit.testing import strategies as lst
from loyaltykit.testing.invariants import (
    LedgerSnapshot,
    describe_difference,
    find_due_work,
    find_spend_order_violations,
    read_ledger,
)

__all__ = ["Backend", "CounterIds", "MachineBase", "StorageFactory", "normalised"]

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
class Backend:
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


def normalised(snapshot: LedgerSnapshot) -> LedgerSnapshot:
    """Drop what backends may legitimately store differently (the row version)."""
    wallets = {
        key: attrs.evolve(
            w, state=attrs.evolve(w.state, version=0) if w.state is not None else None
        )
        for key, w in snapshot.wallets.items()
    }
    return attrs.evolve(snapshot, wallets=wallets)


class MachineBase(RuleBasedStateMachine):
    """What every rule of the ledger machine shares: the backends (one facade each, one
    clock), the ids rules pick from, and :meth:`_run`, which applies a write to every
    backend and checks that they agree. Rules live in the subclasses."""

    #: Storage factories, one backend each; the first is the reference.
    factories: ClassVar[tuple[StorageFactory, ...]] = ()
    #: Whether writes may be backdated (``at`` earlier than the clock's now).
    backdate: ClassVar[bool] = True
    #: Most members a run enrols.
    max_members: ClassVar[int] = 4

    @classmethod
    def using(cls, *factories: StorageFactory, backdate: bool = True) -> type[Self]:
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
        self.backends: list[Backend] = []
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

    def _read(self, backend: Backend) -> LedgerSnapshot:
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
