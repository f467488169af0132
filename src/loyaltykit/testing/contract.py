"""The storage contract: one test suite every storage backend must pass.

The suite drives the public facade (:class:`loyaltykit.Loyalty` with a
:class:`loyaltykit.TestClock`) through every rule of the points ledger (DESIGN §3) and
checks the ledger's invariants on the way, plus direct checks of the storage port (a
unit of work rolls back unless committed, unique rules raise
:class:`~loyaltykit.DuplicateKey`, programs are isolated, program versions, recorded
orders and earning-rule usage are stored and read back exactly).

Use it to test a backend, the library's own or yours: subclass
:class:`StorageContract` in a module pytest collects and say how to make a fresh,
empty storage::

    from loyaltykit.testing.contract import StorageContract

    class TestMyBackend(StorageContract):
        def make_storage(self):
            return MyStorage.connect(...)

        def dispose_storage(self, storage):  # optional: release connections, files
            storage.close()

pytest collects the ``test_*`` methods on your subclass; the base class itself is
not collected (its name does not start with ``Test``). ``make_storage`` is called
once per test; ``self.tmp_path`` is then a fresh temporary directory for files of
that test. To build the storage from your own fixtures instead, override the
``storage`` fixture in the subclass.

For pytest's detailed assertion messages from the shipped checks, register the
package for assertion rewriting in your ``conftest.py`` before anything imports it::

    pytest.register_assert_rewrite("loyaltykit.testing")

This module imports pytest (it is a test helper; install the ``test`` extra).
Importing :mod:`loyaltykit` itself never imports pytest.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import attrs
import pytest

from loyaltykit import (
    Account,
    AccountState,
    AlreadyReversed,
    Balance,
    ChangeSet,
    ClawbackPolicy,
    DuplicateKey,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    HoldStatus,
    IdempotencyConflict,
    IdempotencyRecord,
    InsufficientPoints,
    InvalidInput,
    Kind,
    LedgerPolicy,
    Lot,
    Loyalty,
    Member,
    MemberAlreadyEnrolled,
    MemberNotFound,
    MemberState,
    Money,
    NotPending,
    NotReversible,
    PendingPolicy,
    Program,
    SpendOrder,
    StatementLine,
    Storage,
    TestClock,
    Transaction,
    TransactionNotFound,
    UnknownWallet,
)
from loyaltykit._model import OrderRecord, OrderStatus, ProgramVersion, RuleUsage
from loyaltykit.testing.referrals import ReferralContract
from loyaltykit.testing.tiers import TierContract

__all__ = [
    "BERLIN",
    "Shop",
    "StorageContract",
    "berlin",
    "check_ledger",
    "ledger_snapshot",
    "make_program",
    "statement_lines",
    "utc",
]

BERLIN = ZoneInfo("Europe/Berlin")
_MINUTE = dt.timedelta(minutes=1)
_TTL = dt.timedelta(minutes=15)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
    microsecond: int = 0,
) -> dt.datetime:
    """An aware datetime on the wall clock of Europe/Berlin."""
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=BERLIN)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
    microsecond: int = 0,
) -> dt.datetime:
    """An aware datetime in UTC."""
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=dt.UTC)


def make_program(
    program_id: str = "shop",
    *,
    wallets: tuple[str, ...] = ("points",),
    expiry: ExpiryPolicy | None = None,
    pending: PendingPolicy | None = None,
    spend_order: SpendOrder = SpendOrder.SOONEST_EXPIRING,
    clawback: ClawbackPolicy = ClawbackPolicy.DEBT,
) -> Program:
    """A program in Europe/Berlin and EUR with the given ledger policies."""
    return Program(
        id=program_id,
        time_zone="Europe/Berlin",
        currency="EUR",
        point_value=Money("0.01", "EUR"),
        wallets=wallets,
        ledger=LedgerPolicy(
            expiry=expiry or ExpiryPolicy(),
            pending=pending or PendingPolicy(),
            spend_order=spend_order,
            clawback=clawback,
        ),
    )


#: The program of SCENARIOS.md section L: 12 months after earn, rounded up to the month.
L_EXPIRY = ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH)


class Shop:
    """A facade over ``storage`` with a :class:`TestClock`, plus small test helpers."""

    def __init__(
        self,
        storage: Storage,
        program: Program | None = None,
        *,
        start: dt.datetime | None = None,
    ) -> None:
        self.program = program or make_program()
        self.clock = TestClock(start or berlin(2026, 1, 1, 9))
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self._keys = itertools.count(1)

    def key(self, prefix: str = "k") -> str:
        """A fresh idempotency key."""
        return f"{prefix}-{next(self._keys)}"

    def go(self, *parts: int) -> dt.datetime:
        """Set the clock to a Berlin wall-clock instant and return it (in UTC)."""
        return self.clock.set(berlin(*parts))

    def later(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock forward by ``delta``."""
        return self.clock.set(self.clock.now() + delta)

    def enrol(self, *member_ids: str) -> None:
        for member_id in member_ids:
            self.loyalty.enrol(member_id)

    def earn(self, member_id: str, points: int, **kwargs: Any) -> uuid.UUID:
        """Earn and return the id of the new lot."""
        result = self.loyalty.earn(member_id, points, key=self.key("earn"), **kwargs)
        return lot_of(self.loyalty.transaction(result.transaction_id))

    def balance(self, member_id: str, **kwargs: Any) -> Balance:
        return self.loyalty.balance(member_id, **kwargs)

    def remaining(self, member_id: str, wallet: str | None = None) -> dict[uuid.UUID, int]:
        """Open lots of the member: lot id -> remaining points."""
        return {lot.id: lot.remaining for lot in self.loyalty.lots(member_id, wallet=wallet)}

    def lot(self, member_id: str, lot_id: uuid.UUID) -> Lot:
        for lot in self.loyalty.lots(member_id):
            if lot.id == lot_id:
                return lot
        raise AssertionError(f"lot {lot_id} is not open")

    def check(self, *member_ids: str) -> None:
        """Assert the ledger invariants for these members (pass every enrolled one)."""
        from loyaltykit.testing.invariants import check_invariants

        check_ledger(self.loyalty, member_ids)
        check_invariants(self.loyalty.storage, self.program, member_ids, at=self.clock.now())

    def snapshot(self, *member_ids: str) -> object:
        return ledger_snapshot(self.loyalty, member_ids)


def lot_of(tx: Transaction) -> uuid.UUID:
    """The single lot a crediting transaction created."""
    credited = [m.lot_id for m in tx.movements if m.delta > 0]
    assert 1 == len(credited), tx
    return credited[0]


def moves(tx: Transaction) -> dict[uuid.UUID, int]:
    """A transaction's lot movements as lot id -> delta."""
    return {m.lot_id: m.delta for m in tx.movements}


def statement_lines(
    loyalty: Loyalty, member_id: str, *, wallet: str | None = None, limit: int = 50
) -> list[StatementLine]:
    """Every statement line of the member, newest first, following cursors."""
    lines: list[StatementLine] = []
    cursor = None
    while True:
        page = loyalty.statement(member_id, wallet=wallet, limit=limit, cursor=cursor)
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines
        cursor = page.next_cursor


def ledger_snapshot(
    loyalty: Loyalty, member_ids: Sequence[str], *, wallets: Sequence[str] | None = None
) -> dict[tuple[str, str], object]:
    """Everything the facade shows of these members: balances, full statements, open
    lots and every transaction of the statements. Equal snapshots before and after a
    call mean the call wrote nothing visible."""
    out: dict[tuple[str, str], object] = {}
    for member_id in member_ids:
        for wallet in wallets or loyalty.program.wallets:
            try:
                balance = loyalty.balance(member_id, wallet=wallet)
            except MemberNotFound:
                out[(member_id, wallet)] = None
                continue
            lines = statement_lines(loyalty, member_id, wallet=wallet)
            out[(member_id, wallet)] = (
                balance,
                lines,
                loyalty.lots(member_id, wallet=wallet),
                [loyalty.transaction(line.transaction_id) for line in lines],
            )
    return out


def check_ledger(
    loyalty: Loyalty, member_ids: Sequence[str], *, wallets: Sequence[str] | None = None
) -> None:
    """Assert the ledger invariants of DESIGN §3 for these members, via the facade.

    Postings of every transaction sum to zero; each member's total equals its lots'
    remaining minus debt; no lot is out of bounds; available >= 0 unless the policy
    allows negative balances; held equals the held points of the lots; the statement's
    running balance ends at the total; the balance as of now agrees with the stored
    running totals; lifetime figures add up to the total.
    """
    negative_ok = loyalty.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE
    now = loyalty.clock.now()
    for member_id in member_ids:
        for wallet in wallets or loyalty.program.wallets:
            balance = loyalty.balance(member_id, wallet=wallet)
            lots = loyalty.lots(member_id, wallet=wallet)
            for lot in lots:
                assert 0 <= lot.held <= lot.remaining <= lot.amount, lot
                assert (member_id, wallet) == (lot.member_id, lot.wallet), lot
            assert balance.debt >= 0, balance
            if not negative_ok:
                assert balance.available >= 0, balance
            assert sum(lot.remaining for lot in lots) - balance.debt == balance.total, (
                balance, lots)
            assert sum(lot.held for lot in lots) == balance.held, (balance, lots)
            assert sum(lot.remaining for lot in lots if lot.pending) == balance.pending
            raw_available = balance.available + (balance.debt if negative_ok else 0)
            assert sum(lot.remaining - lot.held for lot in lots if not lot.pending) == (
                raw_available)
            assert balance.available + balance.pending + balance.held - (
                0 if negative_ok else balance.debt) == balance.total
            lines = statement_lines(loyalty, member_id, wallet=wallet, limit=7)
            running = balance.total
            written_off = 0
            for line in lines:
                tx = loyalty.transaction(line.transaction_id)
                assert 0 == sum(p.amount for p in tx.postings), tx
                assert (member_id, wallet) == (tx.member_id, tx.wallet)
                assert tx.points == line.points
                assert running == line.balance, (line, lines)
                running -= line.points
                written_off -= tx.amount(Account.CLAWBACK_SHORTFALL)
            assert 0 == running, lines
            assert balance.total == (
                balance.earned - balance.spent - balance.expired + balance.adjusted
                + balance.transferred + written_off
            ), balance
            as_of = loyalty.balance(member_id, wallet=wallet, as_of=now)
            for name in ("available", "pending", "held", "debt", "total", "earned",
                         "spent", "expired", "adjusted", "transferred"):
                assert getattr(balance, name) == getattr(as_of, name), (name, balance, as_of)


def _kinds(lines: Sequence[StatementLine]) -> list[Kind]:
    return [line.kind for line in lines]


class StorageContract(TierContract, ReferralContract):
    """The contract every storage backend must pass. See the module docstring.

    Subclasses implement :meth:`make_storage` (and optionally
    :meth:`dispose_storage`); name the subclass ``Test...`` so pytest collects it.
    """

    #: A fresh directory for the current test (set before :meth:`make_storage`).
    tmp_path: Path

    def make_storage(self) -> Storage:
        """Return a fresh, empty storage with its schema in place."""
        raise NotImplementedError("a StorageContract subclass must implement make_storage")

    def dispose_storage(self, storage: Storage) -> None:
        """Release what :meth:`make_storage` acquired (default: nothing)."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        """A fresh storage from :meth:`make_storage`, disposed after the test."""
        self.tmp_path = tmp_path
        storage = self.make_storage()
        try:
            yield storage
        finally:
            self.dispose_storage(storage)

    # -- enrolment ----------------------------------------------------------------------

    def test_enrol_returns_the_member_with_empty_wallets(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(wallets=("points", "credits")))
        member = shop.loyalty.enrol("alice", attributes={"email": "a@example.com"})
        assert Member("shop", "alice", utc(2026, 1, 1, 8), {"email": "a@example.com"}) == (
            member)
        assert member == shop.loyalty.member("alice")
        for wallet in ("points", "credits"):
            balance = shop.balance("alice", wallet=wallet)
            assert (0, 0, 0, 0, 0) == (balance.available, balance.pending, balance.held,
                                       balance.debt, balance.total)
            assert [] == shop.loyalty.lots("alice", wallet=wallet)
            assert [] == statement_lines(shop.loyalty, "alice", wallet=wallet)

    def test_enrol_twice_with_the_default_key_returns_the_same_member(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage)
        first = shop.loyalty.enrol("alice")
        shop.later(dt.timedelta(hours=1))
        assert first == shop.loyalty.enrol("alice")
        assert first == shop.loyalty.member("alice")

    def test_enrol_with_another_key_raises_member_already_enrolled(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage)
        shop.loyalty.enrol("alice")
        before = shop.snapshot("alice")
        with pytest.raises(MemberAlreadyEnrolled) as info:
            shop.loyalty.enrol("alice", key="signup-2")
        assert "alice" == info.value.details["member_id"]
        assert before == shop.snapshot("alice")

    def test_unknown_member_raises_member_not_found(self, storage: Storage) -> None:
        shop = Shop(storage)
        with pytest.raises(MemberNotFound):
            shop.loyalty.member("ghost")
        with pytest.raises(MemberNotFound):
            shop.loyalty.earn("ghost", 10, key="k")
        with pytest.raises(MemberNotFound):
            shop.balance("ghost")
        assert {("ghost", "points"): None} == shop.snapshot("ghost")

    # -- earn ---------------------------------------------------------------------------

    def test_earn_creates_a_lot_and_balanced_postings(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        result = shop.loyalty.earn("m", 100, key="order-1", reason="order",
                                   metadata={"order_id": "o-1"})
        assert (Kind.EARN, "m", "points", 100, utc(2026, 1, 15, 9)) == (
            result.kind, result.member_id, result.wallet, result.points, result.occurred_at)
        assert (100, 0, 100, 100) == (result.balance.available, result.balance.pending,
                                      result.balance.total, result.balance.earned)
        assert (100, utc(2027, 1, 31, 23)) == (result.balance.next_expiring_points,
                                              result.balance.next_expiring_at)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.ISSUED: -100, Account.AVAILABLE: 100} == {
            p.account: p.amount for p in tx.postings}
        assert ("order", {"order_id": "o-1"}, "order-1") == (
            tx.reason, dict(tx.metadata), tx.idempotency_key)
        [lot] = shop.loyalty.lots("m")
        assert {lot.id: 100} == moves(tx)
        assert (100, 100, 0, utc(2026, 1, 15, 9), None, utc(2027, 1, 31, 23), False,
                tx.id) == (lot.amount, lot.remaining, lot.held, lot.earned_at,
                           lot.activates_at, lot.expires_at, lot.pending,
                           lot.transaction_id)
        shop.check("m")

    # -- spend order ----------------------------------------------------------------------

    def _spend_order_world(
        self, storage: Storage, order: SpendOrder
    ) -> tuple[Shop, list[uuid.UUID]]:
        """Lots L1..L4 of member m: L1 (10) and L2 (20) expire together, L3 (30, a
        transfer in) is newer than both but expires first, L4 (40) is newest."""
        shop = Shop(storage, make_program(expiry=L_EXPIRY, spend_order=order))
        shop.enrol("m", "x")
        shop.go(2026, 1, 15, 10)
        shop.earn("x", 30)  # expires 2027-02-01
        shop.go(2026, 3, 10, 9)
        l1 = shop.earn("m", 10)  # expires 2027-04-01
        shop.go(2026, 3, 20, 9)
        l2 = shop.earn("m", 20)  # expires 2027-04-01
        shop.go(2026, 4, 5, 9)
        transfer = shop.loyalty.transfer("x", "m", 30, key="gift")
        l3 = lot_of(shop.loyalty.transaction(transfer.incoming.transaction_id))
        shop.go(2026, 5, 1, 9)
        l4 = shop.earn("m", 40)  # expires 2027-06-01
        assert utc(2027, 1, 31, 23) == shop.lot("m", l3).expires_at
        shop.go(2026, 6, 1, 12)
        return shop, [l1, l2, l3, l4]

    @pytest.mark.parametrize(
        ("order", "consumed", "left"),
        [
            (SpendOrder.SOONEST_EXPIRING, {2: -30, 0: -10, 1: -5}, {1: 15, 3: 40}),
            (SpendOrder.OLDEST_FIRST, {0: -10, 1: -20, 2: -15}, {2: 15, 3: 40}),
            (SpendOrder.NEWEST_FIRST, {3: -40, 2: -5}, {0: 10, 1: 20, 2: 25}),
        ],
        ids=["soonest_expiring", "oldest_first", "newest_first"],
    )
    def test_spend_consumes_lots_in_the_programs_spend_order(
        self, storage: Storage, order: SpendOrder, consumed: dict[int, int],
        left: dict[int, int],
    ) -> None:
        shop, lots = self._spend_order_world(storage, order)
        result = shop.loyalty.spend("m", 45, key="pay")
        assert (Kind.SPEND, -45, 55, 45) == (result.kind, result.points,
                                             result.balance.available, result.balance.spent)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {lots[i]: d for i, d in consumed.items()} == moves(tx)
        assert {Account.AVAILABLE: -45, Account.REDEEMED: 45} == {
            p.account: p.amount for p in tx.postings}
        assert {lots[i]: n for i, n in left.items()} == shop.remaining("m")
        shop.check("m", "x")

    def test_default_spend_order_is_soonest_expiring(self) -> None:
        assert SpendOrder.SOONEST_EXPIRING == LedgerPolicy().spend_order

    def test_hold_reserves_lots_in_spend_order(self, storage: Storage) -> None:
        shop, lots = self._spend_order_world(storage, SpendOrder.SOONEST_EXPIRING)
        result = shop.loyalty.hold("m", 45, key="cart", ttl=_TTL)
        hold = shop.loyalty.hold_info(result.hold_id)
        assert {lots[2]: 30, lots[0]: 10, lots[1]: 5} == {
            a.lot_id: a.points for a in hold.allocations}
        held = {lot.id: lot.held for lot in shop.loyalty.lots("m")}
        assert {lots[0]: 10, lots[1]: 5, lots[2]: 30, lots[3]: 0} == held
        shop.check("m")

    # -- pending points -------------------------------------------------------------------

    def test_pending_days_policy(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(
            months=12, round_up_to=ExpiryRounding.MONTH, counted_from=ExpiryStart.ACTIVATION,
        ), pending=PendingPolicy(days=14))
        shop = Shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 5, 1, 10)
        result = shop.loyalty.earn("m", 80, key="order")
        assert (0, 80, 80) == (result.balance.available, result.balance.pending,
                               result.balance.total)
        [lot] = shop.loyalty.lots("m")
        assert (True, utc(2026, 5, 15, 8), None) == (lot.pending, lot.activates_at,
                                                    lot.expires_at)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 10, key="cart", ttl=_TTL)
        assert before == shop.snapshot("m")
        shop.go(2026, 5, 15, 10)
        assert 0 == shop.loyalty.run_due(berlin(2026, 5, 15, 9, 59)).activated_lots
        report = shop.loyalty.run_due()
        assert (1, 80) == (report.activated_lots, report.activated_points)
        balance = shop.balance("m")
        assert (80, 0) == (balance.available, balance.pending)
        [lot] = shop.loyalty.lots("m")
        assert (False, None, utc(2027, 5, 31, 22)) == (lot.pending, lot.activates_at,
                                                      lot.expires_at)
        [activation, _earn] = statement_lines(shop.loyalty, "m")
        assert (Kind.ACTIVATE, utc(2026, 5, 15, 8), 0) == (
            activation.kind, activation.occurred_at, activation.points)
        shop.check("m")

    @pytest.mark.parametrize(
        ("counted_from", "while_pending", "after"),
        [
            (ExpiryStart.EARN, utc(2027, 5, 31, 22), utc(2027, 5, 31, 22)),
            (ExpiryStart.ACTIVATION, None, utc(2027, 6, 30, 22)),
        ],
    )
    def test_expiry_counts_from_earn_or_activation(
        self, storage: Storage, counted_from: ExpiryStart, while_pending: dt.datetime | None,
        after: dt.datetime,
    ) -> None:
        program = make_program(expiry=ExpiryPolicy(
            months=12, round_up_to=ExpiryRounding.MONTH, counted_from=counted_from,
        ), pending=PendingPolicy(days=14))
        shop = Shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 5, 25, 10)
        lot_id = shop.earn("m", 10)
        assert while_pending == shop.lot("m", lot_id).expires_at
        shop.go(2026, 6, 8, 10)  # activation instant
        assert 1 == shop.loyalty.run_due().activated_lots
        assert after == shop.lot("m", lot_id).expires_at
        assert after == shop.balance("m").next_expiring_at

    def test_manual_pending_and_activate(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(months=1, counted_from=ExpiryStart.ACTIVATION),
                               pending=PendingPolicy(manual=True))
        shop = Shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 1, 10, 10)
        earn = shop.loyalty.earn("m", 50, key="order")
        [lot] = shop.loyalty.lots("m")
        assert (True, None, None) == (lot.pending, lot.activates_at, lot.expires_at)
        shop.go(2026, 2, 20, 10)
        assert 0 == shop.loyalty.run_due().activated_lots
        assert 50 == shop.balance("m").pending
        result = shop.loyalty.activate(earn.transaction_id, key="window-closed")
        assert (Kind.ACTIVATE, utc(2026, 2, 20, 9)) == (result.kind, result.occurred_at)
        assert (50, 0) == (result.balance.available, result.balance.pending)
        assert utc(2026, 3, 20, 9) == shop.lot("m", lot.id).expires_at
        before = shop.snapshot("m")
        with pytest.raises(NotPending):
            shop.loyalty.activate(earn.transaction_id, key="again")
        assert before == shop.snapshot("m")
        shop.check("m")

    def test_explicit_activates_at(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        now = shop.clock.now()
        later = shop.loyalty.earn("m", 30, key="later", activates_at=now + dt.timedelta(days=3))
        assert (0, 30) == (later.balance.available, later.balance.pending)
        at_once = shop.loyalty.earn("m", 5, key="now", activates_at=now)
        assert (5, 30) == (at_once.balance.available, at_once.balance.pending)
        shop.later(dt.timedelta(days=3))
        report = shop.loyalty.run_due()
        assert (1, 30) == (report.activated_lots, report.activated_points)
        assert (35, 0) == (shop.balance("m").available, shop.balance("m").pending)
        shop.check("m")

    def test_activate_early_then_due_work_has_nothing_to_activate(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 40, key="order")
        shop.later(dt.timedelta(days=2))
        assert 40 == shop.loyalty.activate(earn.transaction_id, key="early").balance.available
        shop.later(dt.timedelta(days=20))
        assert 0 == shop.loyalty.run_due().activated_lots
        assert 40 == shop.balance("m").available
        shop.check("m")

    def test_activate_an_earn_that_is_not_pending_raises_not_pending(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 40, key="order")
        before = shop.snapshot("m")
        with pytest.raises(NotPending):
            shop.loyalty.activate(earn.transaction_id, key="act")
        with pytest.raises(TransactionNotFound):
            shop.loyalty.activate(uuid.uuid4(), key="act2")
        assert before == shop.snapshot("m")

    def test_a_write_activates_matured_points_first(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.later(dt.timedelta(days=15))
        result = shop.loyalty.spend("m", 40, key="pay")
        assert (0, 0, 40) == (result.balance.available, result.balance.pending,
                              result.balance.spent)
        assert [Kind.SPEND, Kind.ACTIVATE, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m"))
        shop.check("m")

    # -- expiry ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("policy", "earned", "expires"),
        [
            (ExpiryPolicy(days=30), (2026, 1, 15, 10), utc(2026, 2, 14, 9)),
            # calendar days in the program's zone: across the switch to summer time
            (ExpiryPolicy(days=1), (2026, 3, 28, 12), utc(2026, 3, 29, 10)),
            (ExpiryPolicy(days=30, round_up_to=ExpiryRounding.DAY), (2026, 1, 15, 10),
             utc(2026, 2, 14, 23)),
            (ExpiryPolicy(months=1), (2026, 1, 31, 10), utc(2026, 2, 28, 9)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH), (2026, 1, 15, 10),
             utc(2027, 1, 31, 23)),
            # 00:30 in Berlin is still the previous month in UTC
            (ExpiryPolicy(months=1, round_up_to=ExpiryRounding.MONTH), (2026, 2, 1, 0, 30),
             utc(2026, 3, 31, 22)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.QUARTER), (2026, 1, 15, 10),
             utc(2027, 3, 31, 22)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.QUARTER), (2026, 11, 20, 10),
             utc(2027, 12, 31, 23)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.YEAR), (2026, 1, 15, 10),
             utc(2027, 12, 31, 23)),
            (ExpiryPolicy(months=6, round_up_to=ExpiryRounding.YEAR), (2026, 3, 1, 10),
             utc(2026, 12, 31, 23)),
        ],
        ids=["days", "days-dst", "day", "months", "month", "month-local", "quarter",
             "quarter-year-end", "year", "year-half"],
    )
    def test_lot_expires_at_the_policys_instant_in_the_programs_zone(
        self, storage: Storage, policy: ExpiryPolicy, earned: tuple[int, ...],
        expires: dt.datetime,
    ) -> None:
        shop = Shop(storage, make_program(expiry=policy), start=berlin(2025, 12, 1))
        shop.enrol("m")
        shop.go(*earned)
        result = shop.loyalty.earn("m", 70, key="order")
        [lot] = shop.loyalty.lots("m")
        assert expires == lot.expires_at
        assert (70, expires) == (result.balance.next_expiring_points,
                                 result.balance.next_expiring_at)
        shop.clock.set(expires)
        assert 0 == shop.loyalty.run_due(expires - dt.timedelta(microseconds=1)).expired_lots
        assert 70 == shop.balance("m").available
        report = shop.loyalty.run_due()
        assert (1, 70, 1) == (report.expired_lots, report.expired_points, report.members)
        balance = shop.balance("m")
        assert (0, 70, 0, None) == (balance.available, balance.expired,
                                    balance.next_expiring_points, balance.next_expiring_at)
        [line, _] = statement_lines(shop.loyalty, "m")
        assert (Kind.EXPIRE, expires, -70) == (line.kind, line.occurred_at, line.points)
        shop.check("m")

    def test_next_expiring_adds_lots_that_expire_together(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="a")
        shop.go(2026, 1, 20, 10)
        same = shop.loyalty.earn("m", 50, key="b")
        assert (150, utc(2027, 1, 31, 23)) == (same.balance.next_expiring_points,
                                              same.balance.next_expiring_at)
        shop.go(2026, 2, 1, 10)
        later = shop.loyalty.earn("m", 5, key="c")
        assert (150, utc(2027, 1, 31, 23)) == (later.balance.next_expiring_points,
                                              later.balance.next_expiring_at)
        spend = shop.loyalty.spend("m", 120, key="pay")
        assert (30, utc(2027, 1, 31, 23)) == (spend.balance.next_expiring_points,
                                             spend.balance.next_expiring_at)
        assert (30, utc(2027, 1, 31, 23)) == (shop.balance("m").next_expiring_points,
                                             shop.balance("m").next_expiring_at)
        shop.check("m")

    def test_points_without_an_expiry_policy_never_expire(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="order")
        shop.go(2099, 1, 1)
        assert 0 == shop.loyalty.run_due().expired_lots
        assert (10, None) == (shop.balance("m").available, shop.loyalty.lots("m")[0].expires_at)

    def test_expiry_takes_what_is_left_of_each_lot(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        first = shop.earn("m", 100)
        shop.later(dt.timedelta(days=1))
        second = shop.earn("m", 50)
        shop.loyalty.spend("m", 30, key="pay")
        shop.later(dt.timedelta(days=30))
        report = shop.loyalty.run_due()
        assert (2, 120) == (report.expired_lots, report.expired_points)
        expiries = [shop.loyalty.transaction(line.transaction_id)
                    for line in statement_lines(shop.loyalty, "m") if line.kind is Kind.EXPIRE]
        assert [{second: -50}, {first: -70}] == [moves(tx) for tx in expiries]
        assert [berlin(2026, 1, 12, 9), berlin(2026, 1, 11, 9)] == [
            tx.occurred_at for tx in expiries]
        assert (0, 120, 30) == (shop.balance("m").available, shop.balance("m").expired,
                                shop.balance("m").spent)
        shop.check("m")

    def test_run_due_is_idempotent(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(days=10), pending=PendingPolicy(days=2))
        shop = Shop(storage, program)
        shop.enrol("a", "b", "c")
        for member in ("a", "b", "c"):
            shop.loyalty.earn(member, 10, key=f"earn-{member}")
        shop.later(dt.timedelta(days=3))
        shop.loyalty.hold("a", 5, key="cart", ttl=_TTL)
        shop.later(dt.timedelta(days=1))
        first = shop.loyalty.run_due(batch_size=1)
        assert (1, 5, 3) == (first.released_holds, first.released_points, first.members)
        before = shop.snapshot("a", "b", "c")
        second = shop.loyalty.run_due(batch_size=1)
        assert (0, 0, 0, 0, 0, 0, 0) == (
            second.activated_lots, second.activated_points, second.expired_lots,
            second.expired_points, second.released_holds, second.released_points,
            second.members)
        assert before == shop.snapshot("a", "b", "c")
        shop.later(dt.timedelta(days=30))
        third = shop.loyalty.run_due(batch_size=2)
        assert (3, 30, 3) == (third.expired_lots, third.expired_points, third.members)
        assert 0 == shop.loyalty.run_due().members
        shop.check("a", "b", "c")

    def test_a_write_first_catches_up_the_members_own_due_work(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="order")
        shop.go(2027, 2, 1, 0, 30)
        # not yet posted: the balance shows the ledger as last written
        assert 100 == shop.balance("m").available
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        assert before == shop.snapshot("m")
        result = shop.loyalty.earn("m", 5, key="order-2")
        assert (5, 100) == (result.balance.available, result.balance.expired)
        [earn, expire, _] = statement_lines(shop.loyalty, "m")
        assert (Kind.EXPIRE, utc(2027, 1, 31, 23), -100) == (
            expire.kind, expire.occurred_at, expire.points)
        assert Kind.EARN == earn.kind
        assert 0 == shop.loyalty.run_due().expired_lots
        shop.check("m")

    # -- holds ----------------------------------------------------------------------------

    def _holding(self, storage: Storage) -> tuple[Shop, uuid.UUID]:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        result = shop.loyalty.hold("m", 60, key="cart", ttl=_TTL)
        return shop, result.hold_id

    def test_hold_reserves_points(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        now = shop.clock.now()
        result = shop.loyalty.hold("m", 60, key="cart", ttl=_TTL, reason="checkout")
        assert (60, now + _TTL, 40, 60, 100) == (
            result.points, result.expires_at, result.balance.available, result.balance.held,
            result.balance.total)
        hold = shop.loyalty.hold_info(result.hold_id)
        assert (HoldStatus.OPEN, 60, now, now + _TTL, result.transaction_id, 0, None) == (
            hold.status, hold.points, hold.created_at, hold.expires_at, hold.transaction_id,
            hold.captured, hold.resolved_by)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert (Kind.HOLD, 0, {Account.AVAILABLE: -60, Account.HELD: 60}) == (
            tx.kind, tx.points, {p.account: p.amount for p in tx.postings})
        shop.check("m")

    def test_held_points_are_not_spendable_twice(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        shop.enrol("n")
        before = shop.snapshot("m", "n")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 50, key="cart-2", ttl=_TTL)
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 41, key="pay")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.adjust("m", -41, key="fix", reason="typo")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.transfer("m", "n", 41, key="gift")
        assert before == shop.snapshot("m", "n")
        assert 0 == shop.loyalty.spend("m", 40, key="pay-40").balance.available
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 1, key="cart-3", ttl=_TTL)
        assert 100 == shop.loyalty.capture(hold_id, key="paid").balance.spent
        shop.check("m", "n")

    def test_capture_all(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.capture(hold_id, key="paid")
        assert (Kind.CAPTURE, -60, 40, 0, 60, 40) == (
            result.kind, result.points, result.balance.available, result.balance.held,
            result.balance.spent, result.balance.total)
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.CAPTURED, 60, result.transaction_id) == (
            hold.status, hold.captured, hold.resolved_by)
        shop.check("m")

    def test_capture_part_returns_the_rest(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.capture(hold_id, 45, key="paid")
        assert (-45, 55, 0, 45) == (result.points, result.balance.available,
                                    result.balance.held, result.balance.spent)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.REDEEMED: 45, Account.AVAILABLE: 15} == {
            p.account: p.amount for p in tx.postings}
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.CAPTURED, 45) == (hold.status, hold.captured)
        assert [55] == [lot.remaining for lot in shop.loyalty.lots("m")]
        shop.check("m")

    def test_capture_more_than_held_is_refused(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.capture(hold_id, 61, key="paid")
        assert before == shop.snapshot("m")
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status

    def test_void_returns_everything(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.void(hold_id, key="abandoned")
        assert (Kind.RELEASE, 0, 100, 0, 0) == (
            result.kind, result.points, result.balance.available, result.balance.held,
            result.balance.spent)
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.VOIDED, 0, result.transaction_id) == (
            hold.status, hold.captured, hold.resolved_by)
        shop.check("m")

    @pytest.mark.parametrize("first", ["capture", "void"])
    @pytest.mark.parametrize("second", ["capture", "void"])
    def test_a_resolved_hold_is_not_open(self, storage: Storage, first: str,
                                         second: str) -> None:
        shop, hold_id = self._holding(storage)
        getattr(shop.loyalty, first)(hold_id, key="first")
        before = shop.snapshot("m")
        with pytest.raises(HoldNotOpen):
            getattr(shop.loyalty, second)(hold_id, key="second")
        assert before == shop.snapshot("m")

    def test_unknown_hold_raises_hold_not_found(self, storage: Storage) -> None:
        shop, _ = self._holding(storage)
        before = shop.snapshot("m")
        for call in (
            lambda: shop.loyalty.capture(uuid.uuid4(), key="a"),
            lambda: shop.loyalty.void(uuid.uuid4(), key="b"),
            lambda: shop.loyalty.hold_info(uuid.uuid4()),
        ):
            with pytest.raises(HoldNotFound):
                call()
        assert before == shop.snapshot("m")

    def test_due_work_releases_a_stale_hold(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        expires = shop.loyalty.hold_info(hold_id).expires_at
        shop.later(_TTL - _MINUTE)
        assert 0 == shop.loyalty.run_due().released_holds
        shop.later(2 * _MINUTE)
        report = shop.loyalty.run_due()
        assert (1, 60) == (report.released_holds, report.released_points)
        hold = shop.loyalty.hold_info(hold_id)
        assert HoldStatus.RELEASED == hold.status
        release = shop.loyalty.transaction(hold.resolved_by or uuid.uuid4())
        assert (Kind.RELEASE, expires) == (release.kind, release.occurred_at)
        assert (100, 0) == (shop.balance("m").available, shop.balance("m").held)
        with pytest.raises(HoldNotOpen):
            shop.loyalty.capture(hold_id, key="late")
        shop.check("m")

    def test_capture_after_the_ttl_raises_hold_expired(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        shop.later(_TTL)  # exactly at the hold's expiry: too late
        before = shop.snapshot("m")
        with pytest.raises(HoldExpired):
            shop.loyalty.capture(hold_id, key="late")
        assert before == shop.snapshot("m")
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status
        # the hold's points are free again for the member's next write
        assert 0 == shop.loyalty.spend("m", 100, key="pay").balance.available
        assert HoldStatus.RELEASED == shop.loyalty.hold_info(hold_id).status
        shop.check("m")

    # a held lot reaching its expiry before the hold resolves: the held points are
    # protected until the hold resolves; what then returns to the lot expires at once

    def _held_past_expiry(self, storage: Storage, *, run_due: bool) -> tuple[Shop, uuid.UUID]:
        shop = Shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")  # expires 2026-01-11 09:00 Berlin
        shop.go(2026, 1, 11, 8, 55)
        hold_id = shop.loyalty.hold("m", 60, key="cart", ttl=_TTL).hold_id
        shop.go(2026, 1, 11, 9, 1)
        if run_due:
            report = shop.loyalty.run_due()
            assert (1, 40) == (report.expired_lots, report.expired_points)
            balance = shop.balance("m")
            assert (0, 60, 40, 60) == (balance.available, balance.held, balance.expired,
                                       balance.total)
            assert [(60, 60)] == [(lot.remaining, lot.held) for lot in shop.loyalty.lots("m")]
            with pytest.raises(InsufficientPoints):
                shop.loyalty.spend("m", 1, key="pay")
        shop.go(2026, 1, 11, 9, 2)
        return shop, hold_id

    @pytest.mark.parametrize("run_due", [True, False])
    def test_capture_of_a_hold_on_an_expired_lot(self, storage: Storage,
                                                 run_due: bool) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=run_due)
        result = shop.loyalty.capture(hold_id, 45, key="paid")
        assert (0, 0, 45, 55, 0) == (
            result.balance.available, result.balance.held, result.balance.spent,
            result.balance.expired, result.balance.total)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.REDEEMED: 45, Account.EXPIRED: 15} == {
            p.account: p.amount for p in tx.postings}
        assert [] == shop.loyalty.lots("m")
        assert [Kind.CAPTURE, Kind.EXPIRE, Kind.HOLD, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m"))
        shop.check("m")

    def test_void_of_a_hold_on_an_expired_lot(self, storage: Storage) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=True)
        result = shop.loyalty.void(hold_id, key="abandoned")
        assert (0, 0, 0, 100, 0) == (
            result.balance.available, result.balance.held, result.balance.spent,
            result.balance.expired, result.balance.total)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in tx.postings}
        assert [] == shop.loyalty.lots("m")
        shop.check("m")

    def test_due_release_of_a_hold_on_an_expired_lot(self, storage: Storage) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=True)
        shop.go(2026, 1, 11, 9, 20)
        report = shop.loyalty.run_due()
        assert (1, 60, 60) == (
            report.released_holds, report.released_points, report.expired_points)
        balance = shop.balance("m")
        assert (0, 0, 0, 100, 0) == (balance.available, balance.held, balance.spent,
                                     balance.expired, balance.total)
        hold = shop.loyalty.hold_info(hold_id)
        release = shop.loyalty.transaction(hold.resolved_by or uuid.uuid4())
        assert (HoldStatus.RELEASED, utc(2026, 1, 11, 8, 10)) == (hold.status,
                                                                  release.occurred_at)
        assert {Account.HELD: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in release.postings}
        assert 0 == shop.loyalty.run_due().members
        shop.check("m")

    # -- reversal -------------------------------------------------------------------------

    def test_reverse_an_earn(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        result = shop.loyalty.reverse(earn.transaction_id, key="undo", reason="mistake")
        assert (Kind.REVERSE, -100, 0, 0) == (result.kind, result.points,
                                              result.balance.available, result.balance.earned)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert (earn.transaction_id, "mistake") == (tx.reverses_id, tx.reason)
        assert [] == shop.loyalty.lots("m")
        [undo, original] = statement_lines(shop.loyalty, "m")
        assert ((Kind.REVERSE, -100, earn.transaction_id), (Kind.EARN, 100, None)) == (
            (undo.kind, undo.points, undo.reverses_id),
            (original.kind, original.points, original.reverses_id))
        shop.check("m")

    def test_reverse_an_earn_already_spent_creates_debt(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        shop.loyalty.spend("m", 70, key="pay")
        result = shop.loyalty.reverse(earn.transaction_id, key="undo")
        assert (0, 70, -70) == (result.balance.available, result.balance.debt,
                                result.balance.total)
        after = shop.loyalty.earn("m", 100, key="order-2")
        assert (30, 0) == (after.balance.available, after.balance.debt)
        shop.check("m")

    def test_reverse_a_spend_restores_the_exact_lots(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.earn("m", 100)
        shop.go(2026, 3, 10, 9)
        shop.earn("m", 50)
        shop.earn("m", 25)
        lots = shop.loyalty.lots("m")
        shop.go(2026, 6, 1, 12)
        spend = shop.loyalty.spend("m", 160, key="pay")
        assert 15 == spend.balance.available
        shop.go(2026, 7, 1, 12)
        result = shop.loyalty.reverse(spend.transaction_id, key="undo")
        assert (160, 175, 0) == (result.points, result.balance.available,
                                 result.balance.spent)
        assert lots == shop.loyalty.lots("m")
        spend_tx = shop.loyalty.transaction(spend.transaction_id)
        undo_tx = shop.loyalty.transaction(result.transaction_id)
        assert {k: -v for k, v in moves(spend_tx).items()} == moves(undo_tx)
        shop.check("m")

    def test_reverse_a_spend_into_an_expired_lot_expires_at_once(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        spend = shop.loyalty.spend("m", 60, key="pay")
        shop.later(dt.timedelta(days=11))
        assert 40 == shop.loyalty.run_due().expired_points
        result = shop.loyalty.reverse(spend.transaction_id, key="undo")
        assert (0, 0, 0, 100) == (result.points, result.balance.available,
                                  result.balance.spent, result.balance.expired)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.REDEEMED: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in tx.postings}
        shop.check("m")

    def test_reverse_a_capture(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        lots = [(lot.id, lot.remaining) for lot in shop.loyalty.lots("m")]
        capture = shop.loyalty.capture(hold_id, 45, key="paid")
        result = shop.loyalty.reverse(capture.transaction_id, key="refund")
        assert (45, 100, 0) == (result.points, result.balance.available, result.balance.spent)
        assert lots == [(lot.id, lot.remaining) for lot in shop.loyalty.lots("m")]
        shop.check("m")

    @pytest.mark.parametrize("points", [25, -25])
    def test_reverse_an_adjustment(self, storage: Storage, points: int) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        adjust = shop.loyalty.adjust("m", points, key="fix", reason="support ticket 7")
        assert (100 + points, points) == (adjust.balance.available, adjust.balance.adjusted)
        result = shop.loyalty.reverse(adjust.transaction_id, key="unfix")
        assert (-points, 100, 0) == (result.points, result.balance.available,
                                     result.balance.adjusted)
        shop.check("m")

    @pytest.mark.parametrize("half", ["outgoing", "incoming"])
    def test_reverse_either_half_of_a_transfer_reverses_both(
        self, storage: Storage, half: str
    ) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 100, key="order")
        lots = shop.loyalty.lots("giver")
        transfer = shop.loyalty.transfer("giver", "taker", 60, key="gift")
        chosen = getattr(transfer, half)
        other = transfer.incoming if half == "outgoing" else transfer.outgoing
        result = shop.loyalty.reverse(chosen.transaction_id, key="undo")
        assert 1 == len(result.related_ids)
        sibling = shop.loyalty.transaction(result.related_ids[0])
        assert (Kind.REVERSE, other.transaction_id) == (sibling.kind, sibling.reverses_id)
        assert (100, 0) == (shop.balance("giver").available, shop.balance("giver").transferred)
        assert (0, 0) == (shop.balance("taker").available, shop.balance("taker").transferred)
        assert lots == shop.loyalty.lots("giver")
        assert [] == shop.loyalty.lots("taker")
        before = shop.snapshot("giver", "taker")
        with pytest.raises(AlreadyReversed):
            shop.loyalty.reverse(other.transaction_id, key="undo-2")
        assert before == shop.snapshot("giver", "taker")
        shop.check("giver", "taker")

    def test_reverse_a_transfer_the_receiver_already_spent(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 100, key="order")
        shop.loyalty.earn("taker", 10, key="order-t")
        transfer = shop.loyalty.transfer("giver", "taker", 60, key="gift")
        shop.loyalty.spend("taker", 50, key="pay")
        shop.loyalty.reverse(transfer.outgoing.transaction_id, key="undo")
        assert (100, 0) == (shop.balance("giver").available, shop.balance("giver").debt)
        taker = shop.balance("taker")
        assert (0, 40, -40, 50) == (taker.available, taker.debt, taker.total, taker.spent)
        shop.check("giver", "taker")

    def test_reverse_an_earn_whose_points_are_held(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        [line] = [line for line in statement_lines(shop.loyalty, "m")
                  if line.kind is Kind.EARN]
        result = shop.loyalty.reverse(line.transaction_id, key="undo")
        assert (0, 60, 60, 0) == (result.balance.available, result.balance.held,
                                  result.balance.debt, result.balance.total)
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status
        capture = shop.loyalty.capture(hold_id, key="paid")
        assert (0, 0, 60, -60) == (capture.balance.available, capture.balance.held,
                                   capture.balance.debt, capture.balance.total)
        shop.check("m")

    def test_reverse_a_clawback(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        claw = shop.loyalty.clawback("m", 30, key="return")
        result = shop.loyalty.reverse(claw.transaction_id, key="undo")
        assert (30, 100, 100) == (result.points, result.balance.available,
                                  result.balance.earned)
        shop.check("m")

    def test_reverse_a_clawback_that_created_debt(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m", "n")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 20) == (claw.balance.available, claw.balance.debt)
        result = shop.loyalty.reverse(claw.transaction_id, key="undo")
        assert (30, 0, 30) == (result.balance.available, result.balance.debt,
                               result.balance.total)
        # debt already settled by a later earn comes back as points
        shop.loyalty.earn("n", 30, key="order-n")
        claw = shop.loyalty.clawback("n", 50, key="return-n")
        assert 15 == shop.loyalty.earn("n", 35, key="order-n2").balance.available
        result = shop.loyalty.reverse(claw.transaction_id, key="undo-n")
        assert (65, 0, 65) == (result.balance.available, result.balance.debt,
                               result.balance.total)
        shop.check("m", "n")

    @pytest.mark.parametrize(
        "kind", [Kind.EXPIRE, Kind.ACTIVATE, Kind.HOLD, Kind.RELEASE, Kind.REVERSE]
    )
    def test_not_reversible(self, storage: Storage, kind: Kind) -> None:
        shop = Shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="expiring")
        shop.later(dt.timedelta(days=11))
        shop.loyalty.run_due()
        shop.loyalty.earn("m", 10, key="pending",
                          activates_at=shop.clock.now() + dt.timedelta(days=1))
        shop.later(dt.timedelta(days=1))
        shop.loyalty.run_due()
        earn = shop.loyalty.earn("m", 10, key="plain")
        shop.loyalty.reverse(earn.transaction_id, key="undo")
        shop.loyalty.earn("m", 10, key="more")
        hold = shop.loyalty.hold("m", 5, key="cart", ttl=_TTL)
        shop.loyalty.void(hold.hold_id, key="abandoned")
        lines = statement_lines(shop.loyalty, "m")
        [target] = [line.transaction_id for line in lines if line.kind is kind]
        before = shop.snapshot("m")
        with pytest.raises(NotReversible) as info:
            shop.loyalty.reverse(target, key="undo-it")
        assert kind.value == info.value.details["kind"]
        assert before == shop.snapshot("m")

    def test_a_transaction_is_reversed_at_most_once(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        first = shop.loyalty.reverse(earn.transaction_id, key="undo")
        before = shop.snapshot("m")
        with pytest.raises(AlreadyReversed):
            shop.loyalty.reverse(earn.transaction_id, key="undo-2")
        with pytest.raises(TransactionNotFound):
            shop.loyalty.reverse(uuid.uuid4(), key="undo-3")
        assert before == shop.snapshot("m")
        assert first == shop.loyalty.reverse(earn.transaction_id, key="undo")

    # -- adjustments ----------------------------------------------------------------------

    def test_adjustments(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        credit = shop.loyalty.adjust("m", 50, key="goodwill", reason="late delivery")
        assert (Kind.ADJUST, 50, 50, 50, 0) == (
            credit.kind, credit.points, credit.balance.available, credit.balance.adjusted,
            credit.balance.earned)
        [lot] = shop.loyalty.lots("m")
        assert (50, utc(2027, 1, 31, 23), False) == (lot.amount, lot.expires_at, lot.pending)
        debit = shop.loyalty.adjust("m", -20, key="fix", reason="double credit")
        assert (-20, 30, 30) == (debit.points, debit.balance.available,
                                 debit.balance.adjusted)
        assert "double credit" == shop.loyalty.transaction(debit.transaction_id).reason
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.adjust("m", -31, key="too-much", reason="oops")
        for reason in ("", "   "):
            with pytest.raises(InvalidInput):
                shop.loyalty.adjust("m", 5, key="no-reason", reason=reason)
        assert before == shop.snapshot("m")
        shop.check("m")

    # -- transfer -------------------------------------------------------------------------

    def test_transfer_keeps_the_source_lots_expiry(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("giver", "taker")
        shop.go(2026, 1, 15, 10)
        shop.earn("giver", 30)
        shop.go(2026, 3, 10, 9)
        shop.earn("giver", 50)
        shop.go(2026, 6, 1, 12)
        result = shop.loyalty.transfer("giver", "taker", 60, key="gift", reason="family")
        assert (Kind.TRANSFER, -60, 20, -60) == (
            result.outgoing.kind, result.outgoing.points, result.outgoing.balance.available,
            result.outgoing.balance.transferred)
        assert (Kind.TRANSFER, 60, 60, 60, 0) == (
            result.incoming.kind, result.incoming.points, result.incoming.balance.available,
            result.incoming.balance.transferred, result.incoming.balance.earned)
        assert ((result.incoming.transaction_id,), (result.outgoing.transaction_id,)) == (
            result.outgoing.related_ids, result.incoming.related_ids)
        received = [(lot.amount, lot.remaining, lot.earned_at, lot.expires_at)
                    for lot in shop.loyalty.lots("taker")]
        assert [(30, 30, utc(2026, 6, 1, 10), utc(2027, 1, 31, 23)),
                (30, 30, utc(2026, 6, 1, 10), utc(2027, 3, 31, 22))] == received
        out_tx = shop.loyalty.transaction(result.outgoing.transaction_id)
        assert str(result.transfer_id) == out_tx.metadata["transfer_id"]
        shop.check("giver", "taker")

    def test_transfer_refusals_write_nothing(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 30, key="order")
        before = shop.snapshot("giver", "taker")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.transfer("giver", "taker", 31, key="gift")
        with pytest.raises(MemberNotFound):
            shop.loyalty.transfer("giver", "ghost", 10, key="gift-2")
        with pytest.raises(InvalidInput):
            shop.loyalty.transfer("giver", "giver", 10, key="gift-3")
        assert before == shop.snapshot("giver", "taker")
        with pytest.raises(MemberNotFound):
            shop.balance("ghost")

    # -- clawback -------------------------------------------------------------------------

    def test_clawback_debt_settled_by_a_later_earn(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (Kind.CLAWBACK, -50, 0, 20, -20, 30 - 50) == (
            claw.kind, claw.points, claw.balance.available, claw.balance.debt,
            claw.balance.total, claw.balance.earned)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 1, key="pay")
        assert before == shop.snapshot("m")
        earn = shop.loyalty.earn("m", 35, key="order-2")
        assert (15, 0, 15) == (earn.balance.available, earn.balance.debt, earn.balance.total)
        lot = shop.lot("m", lot_of(shop.loyalty.transaction(earn.transaction_id)))
        assert (35, 15) == (lot.amount, lot.remaining)
        shop.check("m")

    def test_clawback_debt_settled_by_activation(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        claw = shop.loyalty.clawback("m", 20, key="return")
        assert (0, 20) == (claw.balance.available, claw.balance.debt)
        earn = shop.loyalty.earn("m", 50, key="order")
        assert (0, 50, 20) == (earn.balance.available, earn.balance.pending,
                               earn.balance.debt)
        shop.later(dt.timedelta(days=14))
        assert 1 == shop.loyalty.run_due().activated_lots
        balance = shop.balance("m")
        assert (30, 0, 0, 30) == (balance.available, balance.pending, balance.debt,
                                  balance.total)
        shop.check("m")

    def test_clawback_allow_negative(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(clawback=ClawbackPolicy.ALLOW_NEGATIVE))
        shop.enrol("m")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (-20, 20, -20) == (claw.balance.available, claw.balance.debt,
                                  claw.balance.total)
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 1, key="pay")
        earn = shop.loyalty.earn("m", 35, key="order-2")
        assert (15, 0, 15) == (earn.balance.available, earn.balance.debt, earn.balance.total)
        shop.check("m")

    def test_clawback_pending_only(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.loyalty.earn("m", 30, key="order-2",
                          activates_at=shop.clock.now() + dt.timedelta(days=14))
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (-30, 40, 0, 0, 40) == (
            claw.points, claw.balance.available, claw.balance.pending, claw.balance.debt,
            claw.balance.total)
        tx = shop.loyalty.transaction(claw.transaction_id)
        assert {Account.PENDING: -30, Account.ISSUED: 50,
                Account.CLAWBACK_SHORTFALL: -20} == {p.account: p.amount for p in tx.postings}
        shop.check("m")

    def test_clawback_takes_available_before_pending(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.loyalty.earn("m", 30, key="order-2",
                          activates_at=shop.clock.now() + dt.timedelta(days=14))
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 20, 0) == (claw.balance.available, claw.balance.pending,
                              claw.balance.debt)
        shop.check("m")

    def test_clawback_leaves_held_points_alone(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 60, 10) == (claw.balance.available, claw.balance.held, claw.balance.debt)
        assert -60 == shop.loyalty.capture(hold_id, key="paid").points
        shop.check("m")

    def test_clawback_targets_the_lot_of_an_earn(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(expiry=ExpiryPolicy(days=100)))
        shop.enrol("m", "other")
        first = shop.earn("m", 40)
        shop.later(dt.timedelta(days=1))
        second_earn = shop.loyalty.earn("m", 30, key="order-2")
        second = lot_of(shop.loyalty.transaction(second_earn.transaction_id))
        shop.loyalty.clawback("m", 20, key="return", earn_id=second_earn.transaction_id)
        assert {first: 40, second: 10} == shop.remaining("m")
        shop.loyalty.clawback("m", 25, key="return-2",
                              earn_id=str(second_earn.transaction_id))
        assert {first: 25} == shop.remaining("m")
        other = shop.loyalty.earn("other", 5, key="order-o")
        before = shop.snapshot("m", "other")
        for earn_id in (other.transaction_id, uuid.uuid4()):
            with pytest.raises(TransactionNotFound):
                shop.loyalty.clawback("m", 5, key="return-3", earn_id=earn_id)
        assert before == shop.snapshot("m", "other")
        shop.check("m", "other")

    # -- bulk earn ------------------------------------------------------------------------

    def test_bulk_earn(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("a", "b", "c")
        result = shop.loyalty.bulk_earn({"a": 10, "b": 20, "c": 30}, key="campaign",
                                        reason="spring gift")
        assert (3, 60, shop.clock.now()) == (result.members, result.points,
                                             result.occurred_at)
        assert [10, 20, 30] == [shop.balance(m).available for m in ("a", "b", "c")]
        for member in ("a", "b", "c"):
            [line] = statement_lines(shop.loyalty, member)
            tx = shop.loyalty.transaction(line.transaction_id)
            assert (Kind.EARN, "spring gift", str(result.batch_id)) == (
                tx.kind, tx.reason, tx.metadata["batch_id"])
        pairs = shop.loyalty.bulk_earn([("a", 1), ("c", 2)], key="campaign-2")
        assert (2, 3) == (pairs.members, pairs.points)
        assert [11, 20, 32] == [shop.balance(m).available for m in ("a", "b", "c")]
        shop.check("a", "b", "c")

    def test_bulk_earn_is_all_or_nothing(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("a", "b")
        before = shop.snapshot("a", "b")
        with pytest.raises(MemberNotFound) as info:
            shop.loyalty.bulk_earn([("a", 10), ("ghost", 5), ("b", 3)], key="campaign")
        assert ["ghost"] == list(info.value.details["member_ids"])
        with pytest.raises(InvalidInput):
            shop.loyalty.bulk_earn([("a", 10), ("b", 5), ("a", 3)], key="campaign")
        assert before == shop.snapshot("a", "b")
        # the key was not used up by the failures
        assert 2 == shop.loyalty.bulk_earn({"a": 1, "b": 1}, key="campaign").members

    # -- balance view ---------------------------------------------------------------------

    def _mixed_history(self, storage: Storage) -> Shop:
        shop = Shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m", "n")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="a")  # lot A, expires 2027-02-01
        shop.go(2026, 3, 10, 9)
        shop.loyalty.earn("m", 50, key="b")  # lot B, expires 2027-04-01
        shop.go(2026, 4, 1, 9)
        shop.loyalty.spend("m", 30, key="spend")  # A 70
        shop.go(2026, 4, 2, 9)
        shop.loyalty.adjust("m", 10, key="adjust", reason="goodwill")  # C, 2027-05-01
        shop.go(2026, 4, 3, 9)
        shop.loyalty.transfer("m", "n", 20, key="transfer")  # A 50
        shop.go(2026, 4, 4, 9)
        shop.loyalty.hold("m", 15, key="hold", ttl=dt.timedelta(days=7))  # A held 15
        shop.go(2026, 4, 5, 9)
        shop.loyalty.earn("m", 25, key="d", activates_at=berlin(2026, 5, 1))  # pending D
        return shop

    def test_balance_view_fields(self, storage: Storage) -> None:
        shop = self._mixed_history(storage)
        balance = shop.balance("m")
        assert Balance(
            member_id="m", wallet="points", as_of=utc(2026, 4, 5, 7), available=95,
            pending=25, held=15, debt=0, total=135, earned=175, spent=30, expired=0,
            adjusted=10, transferred=-20, next_expiring_points=50,
            next_expiring_at=utc(2027, 1, 31, 23),
        ) == balance
        shop.check("m", "n")
        shop.go(2027, 2, 1, 0, 30)
        report = shop.loyalty.run_due()
        assert (1, 25, 2, 70, 1, 15, 2) == (
            report.activated_lots, report.activated_points, report.expired_lots,
            report.expired_points, report.released_holds, report.released_points,
            report.members)
        assert 20 == shop.balance("n").expired
        assert Balance(
            member_id="m", wallet="points", as_of=utc(2027, 1, 31, 23, 30), available=85,
            pending=0, held=0, debt=0, total=85, earned=175, spent=30, expired=50,
            adjusted=10, transferred=-20, next_expiring_points=50,
            next_expiring_at=utc(2027, 3, 31, 22),
        ) == shop.balance("m")
        shop.check("m", "n")

    def test_balance_as_of_a_past_instant(self, storage: Storage) -> None:
        shop = self._mixed_history(storage)
        shop.go(2027, 2, 1, 0, 30)
        shop.loyalty.run_due()

        def at(*parts: int) -> Balance:
            return shop.balance("m", as_of=berlin(*parts))

        assert (0, 0, 0, None) == (at(2026, 1, 1).available, at(2026, 1, 1).total,
                                   at(2026, 1, 1).earned, at(2026, 1, 1).next_expiring_at)
        march = at(2026, 3, 31)
        assert (150, 150, 150, 0, 100, utc(2027, 1, 31, 23)) == (
            march.available, march.total, march.earned, march.spent,
            march.next_expiring_points, march.next_expiring_at)
        assert berlin(2026, 3, 31) == march.as_of
        april = at(2026, 4, 2, 12)
        assert (130, 30, 10, 0) == (april.available, april.spent, april.adjusted,
                                    april.transferred)
        held = at(2026, 4, 6)
        assert (95, 25, 15, 135) == (held.available, held.pending, held.held, held.total)
        released = at(2026, 4, 12)
        assert (110, 25, 0) == (released.available, released.pending, released.held)
        activated = at(2026, 5, 2)
        assert (135, 0) == (activated.available, activated.pending)
        expired = at(2027, 2, 1, 0, 0)
        assert (85, 50, 50, utc(2027, 3, 31, 22)) == (
            expired.available, expired.expired, expired.next_expiring_points,
            expired.next_expiring_at)
        just_before = at(2027, 1, 31, 23, 59)
        assert (135, 0) == (just_before.available, just_before.expired)
        with pytest.raises(InvalidInput):
            shop.balance("m", as_of=shop.clock.now() + _MINUTE)

    # -- statement ------------------------------------------------------------------------

    def test_statement_is_newest_first_with_a_running_balance(
        self, storage: Storage
    ) -> None:
        shop = self._mixed_history(storage)
        lines = statement_lines(shop.loyalty, "m")
        assert [Kind.EARN, Kind.HOLD, Kind.TRANSFER, Kind.ADJUST, Kind.SPEND, Kind.EARN,
                Kind.EARN] == _kinds(lines)
        assert [135, 110, 110, 130, 120, 150, 100] == [line.balance for line in lines]
        assert [25, 0, -20, 10, -30, 50, 100] == [line.points for line in lines]
        assert "goodwill" == lines[3].reason
        stamps = [line.occurred_at for line in lines]
        assert sorted(stamps, reverse=True) == stamps

    def test_statement_pages_cover_every_transaction_once(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        expected = set()
        for i in range(23):
            # several transactions share one business instant
            at = berlin(2026, 1, 1, 8) + dt.timedelta(minutes=i // 5)
            expected.add(shop.loyalty.earn("m", i + 1, key=f"e{i}", at=at).transaction_id)
        for limit in (1, 4, 5, 23, 50):
            pages = []
            cursor = None
            while True:
                page = shop.loyalty.statement("m", limit=limit, cursor=cursor)
                assert len(page.lines) <= limit
                pages.append(page)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            lines = [line for page in pages for line in page.lines]
            assert expected == {line.transaction_id for line in lines}
            assert len(expected) == len(lines)
            assert sum(range(1, 24)) == lines[0].balance
            for newer, older in itertools.pairwise(lines):
                assert newer.balance - newer.points == older.balance
                assert (newer.occurred_at, newer.transaction_id) > (
                    older.occurred_at, older.transaction_id)
            assert lines[-1].points == lines[-1].balance

    # -- idempotency ----------------------------------------------------------------------

    def _idempotency_world(self, storage: Storage) -> tuple[Shop, dict[str, Any]]:
        shop = Shop(storage)
        shop.enrol("m", "n")
        earn = shop.loyalty.earn("m", 100, key="e1")
        pending = shop.loyalty.earn("m", 50, key="e2",
                                    activates_at=shop.clock.now() + dt.timedelta(days=3))
        hold = shop.loyalty.hold("m", 20, key="h1", ttl=_TTL)
        hold2 = shop.loyalty.hold("m", 10, key="h2", ttl=_TTL)
        return shop, {"earn": earn.transaction_id, "pending": pending.transaction_id,
                      "hold": hold.hold_id, "hold2": hold2.hold_id}

    _WRITES: ClassVar[dict[str, tuple[Callable[..., Any], Callable[..., Any]]]] = {
        "enrol": (lambda lo, ids, key: lo.enrol("x", key=key),
                  lambda lo, ids, key: lo.enrol("x", key=key, attributes={"vip": True})),
        "earn": (lambda lo, ids, key: lo.earn("m", 5, key=key),
                 lambda lo, ids, key: lo.earn("m", 6, key=key)),
        "spend": (lambda lo, ids, key: lo.spend("m", 5, key=key),
                  lambda lo, ids, key: lo.spend("m", 5, key=key, reason="other")),
        "hold": (lambda lo, ids, key: lo.hold("m", 5, key=key, ttl=_TTL),
                 lambda lo, ids, key: lo.hold("m", 5, key=key, ttl=2 * _TTL)),
        "capture": (lambda lo, ids, key: lo.capture(ids["hold"], 5, key=key),
                    lambda lo, ids, key: lo.capture(ids["hold"], 6, key=key)),
        "void": (lambda lo, ids, key: lo.void(ids["hold"], key=key),
                 lambda lo, ids, key: lo.void(ids["hold2"], key=key)),
        "activate": (lambda lo, ids, key: lo.activate(ids["pending"], key=key),
                     lambda lo, ids, key: lo.activate(ids["earn"], key=key)),
        "reverse": (lambda lo, ids, key: lo.reverse(ids["earn"], key=key),
                    lambda lo, ids, key: lo.reverse(ids["pending"], key=key)),
        "adjust": (lambda lo, ids, key: lo.adjust("m", -5, key=key, reason="fix"),
                   lambda lo, ids, key: lo.adjust("m", 5, key=key, reason="fix")),
        "clawback": (lambda lo, ids, key: lo.clawback("m", 5, key=key),
                     lambda lo, ids, key: lo.clawback("n", 5, key=key)),
        "transfer": (lambda lo, ids, key: lo.transfer("m", "n", 5, key=key),
                     lambda lo, ids, key: lo.transfer("n", "m", 5, key=key)),
        "bulk_earn": (lambda lo, ids, key: lo.bulk_earn({"m": 1, "n": 2}, key=key),
                      lambda lo, ids, key: lo.bulk_earn({"m": 2, "n": 1}, key=key)),
    }

    @pytest.mark.parametrize("op", sorted(_WRITES))
    def test_same_key_same_request_replays_and_writes_nothing(
        self, storage: Storage, op: str
    ) -> None:
        shop, ids = self._idempotency_world(storage)
        write, _ = self._WRITES[op]
        first = write(shop.loyalty, ids, "the-key")
        before = shop.snapshot("m", "n", "x")
        assert first == write(shop.loyalty, ids, "the-key")
        assert before == shop.snapshot("m", "n", "x")
        # a retry later (the business instant defaulting to the clock) is the same request
        shop.later(_MINUTE)
        assert first == write(shop.loyalty, ids, "the-key")
        shop.check("m", "n")

    @pytest.mark.parametrize("op", sorted(_WRITES))
    def test_same_key_different_request_is_a_conflict(self, storage: Storage,
                                                      op: str) -> None:
        shop, ids = self._idempotency_world(storage)
        write, different = self._WRITES[op]
        write(shop.loyalty, ids, "the-key")
        before = shop.snapshot("m", "n", "x")
        with pytest.raises(IdempotencyConflict) as info:
            different(shop.loyalty, ids, "the-key")
        assert "the-key" == info.value.details["key"]
        with pytest.raises(IdempotencyConflict):
            shop.loyalty.earn("n", 1, key="the-key") if op != "earn" else (
                shop.loyalty.spend("m", 1, key="the-key"))
        assert before == shop.snapshot("m", "n", "x")

    def test_same_key_with_an_explicit_instant(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        at = shop.clock.now()
        first = shop.loyalty.earn("m", 10, key="k1", at=at)
        shop.later(_MINUTE)
        assert first == shop.loyalty.earn("m", 10, key="k1", at=at)
        with pytest.raises(IdempotencyConflict):
            shop.loyalty.earn("m", 10, key="k1", at=at + dt.timedelta(seconds=1))
        assert 1 == len(statement_lines(shop.loyalty, "m"))

    def test_a_failed_write_does_not_use_up_its_key(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        shop.loyalty.earn("m", 10, key="order")
        assert 0 == shop.loyalty.spend("m", 10, key="pay").balance.available

    def test_keys_are_scoped_per_program(self, storage: Storage) -> None:
        one = Shop(storage, make_program("one"))
        two = Shop(storage, make_program("two"))
        one.enrol("m")
        two.enrol("m")
        first = one.loyalty.earn("m", 10, key="order-1")
        second = two.loyalty.earn("m", 20, key="order-1")
        assert first.transaction_id != second.transaction_id
        assert (10, 20) == (one.balance("m").available, two.balance("m").available)
        assert first == one.loyalty.earn("m", 10, key="order-1")
        with pytest.raises(IdempotencyConflict):
            one.loyalty.earn("m", 20, key="order-1")
        # programs are isolated: one program cannot see the other's records
        with pytest.raises(TransactionNotFound):
            two.loyalty.transaction(first.transaction_id)
        with pytest.raises(TransactionNotFound):
            two.loyalty.reverse(first.transaction_id, key="undo")
        hold = one.loyalty.hold("m", 5, key="cart", ttl=_TTL)
        with pytest.raises(HoldNotFound):
            two.loyalty.capture(hold.hold_id, key="steal")
        one.enrol("only-in-one")
        with pytest.raises(MemberNotFound):
            two.loyalty.member("only-in-one")
        one.check("m")
        two.check("m")

    # -- wallets --------------------------------------------------------------------------

    def test_wallets_are_independent(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(wallets=("points", "credits")))
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="credit", wallet="credits")
        shop.loyalty.earn("m", 3, key="point")
        assert (3, 10) == (shop.balance("m").available,
                           shop.balance("m", wallet="credits").available)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 5, key="pay")
        assert before == shop.snapshot("m")
        hold = shop.loyalty.hold("m", 5, key="cart", ttl=_TTL, wallet="credits")
        capture = shop.loyalty.capture(hold.hold_id, key="paid")
        assert ("credits", 5, 5) == (capture.wallet, capture.balance.available,
                                     capture.balance.spent)
        assert [13 - 10] == [lot.remaining for lot in shop.loyalty.lots("m")]
        assert [Kind.CAPTURE, Kind.HOLD, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m", wallet="credits"))
        assert [Kind.EARN] == _kinds(statement_lines(shop.loyalty, "m"))
        shop.check("m")

    def test_unknown_wallet(self, storage: Storage) -> None:
        shop = Shop(storage, make_program(wallets=("points", "credits")))
        shop.enrol("m")
        before = shop.snapshot("m")
        with pytest.raises(UnknownWallet) as info:
            shop.loyalty.earn("m", 10, key="k", wallet="miles")
        assert "miles" == info.value.details["wallet"]
        with pytest.raises(UnknownWallet):
            shop.balance("m", wallet="miles")
        assert before == shop.snapshot("m")

    # -- concurrency ----------------------------------------------------------------------

    def test_concurrent_spends_never_overdraw(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        barrier = threading.Barrier(20)

        def spend(i: int) -> bool:
            barrier.wait()
            try:
                shop.loyalty.spend("m", 10, key=f"spend-{i}")
            except InsufficientPoints:
                return False
            return True

        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(spend, range(20)))
        assert (10, 10) == (outcomes.count(True), outcomes.count(False))
        assert (0, 100) == (shop.balance("m").available, shop.balance("m").spent)
        shop.check("m")

    def test_concurrent_writes_with_one_key_write_once(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m")
        barrier = threading.Barrier(20)

        def earn(_: int) -> uuid.UUID:
            barrier.wait()
            return shop.loyalty.earn("m", 10, key="same").transaction_id

        with ThreadPoolExecutor(max_workers=20) as pool:
            ids = set(pool.map(earn, range(20)))
        assert 1 == len(ids)
        assert 10 == shop.balance("m").available
        assert ids == {line.transaction_id for line in statement_lines(shop.loyalty, "m")}
        shop.check("m")

    def test_concurrent_enrolments_and_writes_to_different_members(
        self, storage: Storage
    ) -> None:
        shop = Shop(storage)
        members = [f"m{i}" for i in range(10)]
        barrier = threading.Barrier(20)

        def work(i: int) -> Member:
            member_id = members[i % 10]
            barrier.wait()
            member = shop.loyalty.enrol(member_id)
            shop.loyalty.earn(member_id, 7, key=f"earn-{i}")
            return member

        with ThreadPoolExecutor(max_workers=20) as pool:
            enrolled = list(pool.map(work, range(20)))
        assert 10 == len({m.member_id for m in enrolled})
        assert [14] * 10 == [shop.balance(m).available for m in members]
        shop.check(*members)

    # -- the storage port -----------------------------------------------------------------

    def _enrolment(self, member_id: str, key: str) -> ChangeSet:
        changes = ChangeSet()
        changes.members.append(Member("shop", member_id, utc(2026, 1, 1)))
        changes.accounts[(member_id, "points")] = AccountState(member_id, "points")
        changes.new_accounts.add((member_id, "points"))
        changes.idempotency.append(IdempotencyRecord(
            key=key, fingerprint="f", result="{}", created_at=utc(2026, 1, 1),
            member_id=member_id,
        ))
        return changes

    @staticmethod
    def _register(storage: Storage, program_id: str = "shop") -> None:
        storage.register_program(ProgramVersion(
            program_id, 1, None, make_program(program_id).to_dict(), utc(2026, 1, 1)))

    def test_unit_of_work_rolls_back_unless_committed(self, storage: Storage) -> None:
        self._register(storage)
        with storage.unit_of_work("shop") as uow:
            uow.write(self._enrolment("a", "k-a"))
            assert uow.get_member("a") is not None
        with storage.unit_of_work("shop") as uow:
            assert (None, None, None) == (uow.get_member("a"), uow.get_account("points", "a"),
                                          uow.get_idempotency("k-a"))
        with pytest.raises(RuntimeError, match="boom"), storage.unit_of_work("shop") as uow:
            uow.write(self._enrolment("b", "k-b"))
            raise RuntimeError("boom")
        with storage.unit_of_work("shop") as uow:
            uow.write(self._enrolment("c", "k-c"))
            uow.commit()
        with storage.unit_of_work("shop") as uow:
            assert (None, None) == (uow.get_member("b"), uow.get_idempotency("k-b"))
            assert Member("shop", "c", utc(2026, 1, 1)) == uow.get_member("c")
            assert AccountState("c", "points") == uow.get_account("points", "c")
            record = uow.get_idempotency("k-c")
            assert record is not None
            assert ("k-c", "f", "{}", "c") == (record.key, record.fingerprint, record.result,
                                               record.member_id)
            assert {"c": AccountState("c", "points")} == uow.lock_accounts(
                "points", ["c", "ghost"])

    def test_unique_rules_raise_duplicate_key(self, storage: Storage) -> None:
        self._register(storage)
        with storage.unit_of_work("shop") as uow:
            uow.write(self._enrolment("a", "k-a"))
            uow.commit()
        for changes in (self._enrolment("b", "k-a"), self._enrolment("a", "k-other")):
            with pytest.raises(DuplicateKey), storage.unit_of_work("shop") as uow:
                uow.write(changes)
            with storage.unit_of_work("shop") as uow:
                assert (None, None) == (uow.get_member("b"), uow.get_idempotency("k-other"))
                assert uow.get_member("a") is not None
        # other programs may reuse both the key and the member id
        self._register(storage, "other")
        changes = self._enrolment("a", "k-a")
        changes.members[0] = Member("other", "a", utc(2026, 1, 1))
        with storage.unit_of_work("other") as uow:
            uow.write(changes)
            uow.commit()
        with storage.unit_of_work("other") as uow:
            assert uow.get_member("a") is not None

    def test_a_failure_after_writing_leaves_nothing(self, storage: Storage) -> None:
        shop = Shop(storage)
        shop.enrol("m", "n")
        shop.loyalty.earn("m", 100, key="order")
        before = shop.snapshot("m", "n")
        failing = Shop(_FailingStorage(storage), shop.program, start=shop.clock.now())
        with pytest.raises(_Boom):
            failing.loyalty.transfer("m", "n", 30, key="gift")
        with pytest.raises(_Boom):
            failing.loyalty.enrol("x")
        assert before == shop.snapshot("m", "n")
        with pytest.raises(MemberNotFound):
            shop.loyalty.member("x")
        # the key was not used up
        assert 70 == shop.loyalty.transfer("m", "n", 30, key="gift").outgoing.balance.available
        shop.check("m", "n")

    # -- program versions -------------------------------------------------------------

    @staticmethod
    def _version(
        version: int, effective_from: dt.datetime | None = None, *, program_id: str = "shop",
        label: str = "", created_at: dt.datetime | None = None,
    ) -> ProgramVersion:
        definition = {"id": program_id, "label": label or f"v{version}",
                      "wallets": ["points"], "rules": [{"id": "base", "rate": "1.5"}]}
        return ProgramVersion(program_id, version, effective_from, definition,
                              created_at or utc(2026, 1, 1))

    def test_register_program_keeps_the_first_of_each_version(self, storage: Storage
                                                                 ) -> None:
        first = self._version(1, label="first")
        storage.register_program(first)
        storage.register_program(self._version(1, berlin(2026, 3, 1), label="second",
                                               created_at=utc(2026, 2, 1)))
        second = self._version(2, berlin(2026, 6, 1))
        storage.register_program(second)
        storage.register_program(second)
        storage.register_program(self._version(1, program_id="other"))
        with storage.unit_of_work("shop") as uow:
            assert [first, second] == uow.program_versions()
        with storage.unit_of_work("nowhere") as uow:
            assert ([], None) == (uow.program_versions(), uow.program_version_at(utc(2026, 1, 1)))

    def test_program_versions_come_lowest_first(self, storage: Storage) -> None:
        versions = [self._version(n, utc(2026, n, 1)) for n in (3, 1, 10, 2)]
        for version in versions:
            storage.register_program(version)
        with storage.unit_of_work("shop") as uow:
            assert [1, 2, 3, 10] == [v.version for v in uow.program_versions()]
            assert sorted(versions, key=lambda v: v.version) == uow.program_versions()

    def test_program_version_at(self, storage: Storage) -> None:
        v1 = self._version(1)
        v2 = self._version(2, berlin(2026, 3, 1))
        v3 = self._version(3, berlin(2026, 3, 1))  # the same instant: the higher wins
        v4 = self._version(4, berlin(2026, 6, 1, 12))
        for version in (v4, v2, v1, v3):  # registered out of order
            storage.register_program(version)
        with storage.unit_of_work("shop") as uow:
            at = uow.program_version_at
            assert v1.version == at(berlin(2026, 2, 28, 23, 59, 59, 999999))
            assert v3.version == at(berlin(2026, 3, 1))  # effective_from is inclusive
            assert v3.version == at(utc(2026, 2, 28, 23))  # the same instant in UTC
            assert v3.version == at(berlin(2026, 6, 1, 11, 59))
            assert v4.version == at(berlin(2026, 6, 1, 12))
            assert v4.version == at(utc(2099, 1, 1))

    def test_program_version_at_without_effective_dates(self, storage: Storage) -> None:
        # a version without effective_from is in force from the beginning of time, so
        # it beats every lower version whatever their dates
        storage.register_program(self._version(1, utc(2026, 1, 1)))
        storage.register_program(self._version(2))
        storage.register_program(self._version(3, utc(2026, 6, 1)))
        with storage.unit_of_work("shop") as uow:
            assert 2 == (uow.program_version_at(utc(2000, 1, 1)))
            assert 2 == (uow.program_version_at(utc(2026, 5, 31)))
            assert 3 == (uow.program_version_at(utc(2026, 6, 1)))

    def test_no_version_in_force_yet_is_none(self, storage: Storage) -> None:
        storage.register_program(self._version(1, berlin(2026, 3, 1)))
        with storage.unit_of_work("shop") as uow:
            assert uow.program_version_at(berlin(2026, 2, 28, 23, 59)) is None
            assert 1 == (uow.program_version_at(berlin(2026, 3, 1)))

    def test_concurrent_registrations_never_fail(self, storage: Storage) -> None:
        barrier = threading.Barrier(16)

        def register(i: int) -> None:
            barrier.wait()
            # half race for the same version, half add versions of their own
            number = 1 if i % 2 else i + 2
            storage.register_program(self._version(number, label=f"by-{i}"))

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(register, range(16)))
        with storage.unit_of_work("shop") as uow:
            versions = uow.program_versions()
        assert [1, *range(2, 18, 2)] == [v.version for v in versions]
        assert versions[0].definition["label"] in {f"by-{i}" for i in range(1, 16, 2)}

    # -- orders -----------------------------------------------------------------------

    def _orders_world(self, storage: Storage, *programs: str) -> None:
        """Register ``programs`` (default: shop) and enrol members a and b in each."""
        for program_id in programs or ("shop",):
            self._register(storage, program_id)
            with storage.unit_of_work(program_id) as uow:
                for member_id in ("a", "b"):
                    changes = self._enrolment(member_id, f"k-{member_id}")
                    changes.members[0] = Member(program_id, member_id, utc(2026, 1, 1))
                    uow.write(changes)
                uow.commit()

    @staticmethod
    def _order(order_id: str, member_id: str = "a", *, program_id: str = "shop",
               **changes: Any) -> OrderRecord:
        record = OrderRecord(
            program_id=program_id,
            order_id=order_id,
            member_id=member_id,
            placed_at=berlin(2026, 1, 2, 10, 30),
            version=1,
            order={"id": order_id, "currency": "EUR", "channel": "web",
                   "lines": [{"id": "l1", "sku": "TEA", "quantity": 2, "price": "9.99"},
                             {"id": "l2", "sku": "CUP", "quantity": 1, "price": "4.50"}]},
            returned={},
            status=OrderStatus.OPEN,
            points=24,
            evaluation={"points": 24, "lines": [{"rule_id": "base", "points": "24.48"}]},
            earn_id=uuid.UUID(int=1),
            payments=(),
            created_at=utc(2026, 1, 2, 9, 30),
            updated_at=utc(2026, 1, 2, 9, 30),
        )
        return attrs.evolve(record, **changes)

    def _write_orders(self, storage: Storage, *records: OrderRecord, new: bool = True,
                      program_id: str = "shop") -> None:
        with storage.unit_of_work(program_id) as uow:
            uow.write(ChangeSet(orders={r.order_id: r for r in records},
                                new_orders={r.order_id for r in records} if new else set()))
            uow.commit()

    def test_orders_are_recorded_and_read_back(self, storage: Storage) -> None:
        self._orders_world(storage, "shop", "other")
        o1 = self._order("o1")
        o2 = self._order("o2", "b", earn_id=None, points=0, evaluation={})
        self._write_orders(storage, o1, o2)
        with storage.unit_of_work("shop") as uow:
            assert (o1, o2) == (uow.get_order("o1"), uow.get_order("o2"))
            assert uow.get_order("ghost") is None
        with storage.unit_of_work("other") as uow:  # order ids are per program
            assert uow.get_order("o1") is None

    def test_stored_orders_and_versions_are_not_shared_with_the_caller(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage)
        version = self._version(2)
        storage.register_program(version)
        placed = self._order("o1")
        self._write_orders(storage, placed)
        expected = (self._version(2), self._order("o1"))
        # changing what was written, or what was read, changes nothing stored
        version.definition["rules"].clear()
        placed.order["lines"].clear()
        with storage.unit_of_work("shop") as uow:
            read = (uow.program_versions()[-1], uow.get_order("o1"))
            assert expected == read
            read[0].definition["rules"].clear()
            read[1].evaluation["lines"].clear()
            assert expected == (uow.program_versions()[-1], uow.get_order("o1"))

    def test_an_order_update_changes_what_may_change(self, storage: Storage) -> None:
        self._orders_world(storage)
        placed = self._order("o1")
        self._write_orders(storage, placed)
        payments = (uuid.UUID(int=7), uuid.UUID(int=3), uuid.UUID(int=5))
        returned = attrs.evolve(
            placed, returned={"l1": 1}, points=12, payments=payments, earn_id=uuid.UUID(int=2),
            evaluation={"points": 12, "lines": [{"rule_id": "base", "points": "12.49"}]},
            updated_at=berlin(2026, 1, 9, 18), recorded_evaluation=placed.evaluation,
        )
        self._write_orders(storage, returned, new=False)
        with storage.unit_of_work("shop") as uow:
            assert returned == uow.get_order("o1")
            stored = uow.get_order("o1")
            assert stored is not None
            assert placed.evaluation == stored.evaluation_as_recorded()
        cancelled = attrs.evolve(returned, status=OrderStatus.CANCELLED, points=0,
                                 earn_id=None, returned={"l1": 2, "l2": 1},
                                 updated_at=utc(2026, 1, 10))
        self._write_orders(storage, cancelled, new=False)
        with storage.unit_of_work("shop") as uow:
            assert cancelled == uow.get_order("o1")

    def test_a_duplicate_order_is_duplicate_key_and_writes_nothing(self, storage: Storage
                                                                   ) -> None:
        self._orders_world(storage, "shop", "other")
        original = self._order("o1")
        self._write_orders(storage, original)
        again = self._order("o1", "b", points=99)
        changes = self._enrolment("c", "k-c")
        changes.orders = {"o1": again, "o2": self._order("o2")}
        changes.new_orders = {"o1", "o2"}
        with pytest.raises(DuplicateKey), storage.unit_of_work("shop") as uow:
            uow.write(changes)
        with storage.unit_of_work("shop") as uow:
            assert (None, None) == (uow.get_member("c"), uow.get_idempotency("k-c"))
            assert (original, None) == (uow.get_order("o1"), uow.get_order("o2"))
            assert (1, 0) == (uow.count_orders("a"), uow.count_orders("b"))
        # another program may record an order with the same id
        elsewhere = self._order("o1", program_id="other")
        self._write_orders(storage, elsewhere, program_id="other")
        with storage.unit_of_work("other") as uow:
            assert elsewhere == uow.get_order("o1")

    def test_order_writes_roll_back_unless_committed(self, storage: Storage) -> None:
        self._orders_world(storage)
        with storage.unit_of_work("shop") as uow:
            uow.write(ChangeSet(orders={"o1": self._order("o1")}, new_orders={"o1"}))
            assert 1 == uow.count_orders("a")
        with storage.unit_of_work("shop") as uow:
            assert (None, 0) == (uow.get_order("o1"), uow.count_orders("a"))
        placed = self._order("o1")
        self._write_orders(storage, placed)
        with pytest.raises(RuntimeError, match="boom"), storage.unit_of_work("shop") as uow:
            cancelled = attrs.evolve(placed, status=OrderStatus.CANCELLED, points=0)
            uow.write(ChangeSet(orders={"o1": cancelled}))
            raise RuntimeError("boom")
        with storage.unit_of_work("shop") as uow:
            assert (placed, 1) == (uow.get_order("o1"), uow.count_orders("a"))

    def test_count_orders_ignores_cancelled_orders_and_other_members(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        cancelled = self._order("o3", status=OrderStatus.CANCELLED)
        self._write_orders(storage, self._order("o1"), self._order("o2"), cancelled,
                           self._order("o4", "b"))
        self._write_orders(storage, *(self._order(f"x{i}", program_id="other")
                                      for i in range(3)), program_id="other")
        with storage.unit_of_work("shop") as uow:
            assert (2, 1, 0) == (uow.count_orders("a"), uow.count_orders("b"),
                                 uow.count_orders("ghost"))
        self._write_orders(storage, self._order("o2", status=OrderStatus.CANCELLED),
                           new=False)
        with storage.unit_of_work("shop") as uow:
            assert 1 == uow.count_orders("a")
        with storage.unit_of_work("other") as uow:
            assert 3 == uow.count_orders("a")

    # -- rule usage -------------------------------------------------------------------

    @staticmethod
    def _usage(source: str, rule_id: str, group: str | None, occurred_at: dt.datetime,
               points: str = "1", *, member_id: str = "a", program_id: str = "shop",
               stamps: int = 0) -> RuleUsage:
        return RuleUsage(program_id, member_id, source, rule_id, group, occurred_at,
                         Decimal(points), stamps)

    def _write_usage(self, storage: Storage, *rows: RuleUsage, program_id: str = "shop"
                     ) -> None:
        with storage.unit_of_work(program_id) as uow:
            uow.write(ChangeSet(usage=list(rows)))
            uow.commit()

    def test_usage_is_upserted_by_source_and_rule(self, storage: Storage) -> None:
        self._orders_world(storage)
        first = self._usage("order:o1", "base", None, utc(2026, 1, 2), "24.48")
        bonus = self._usage("order:o1", "bonus", "promo", utc(2026, 1, 2), "10")
        self._write_usage(storage, first, bonus)
        returned = self._usage("order:o1", "base", "weekday", utc(2026, 1, 3), "12.24",
                               stamps=1)
        self._write_usage(storage, returned)
        with storage.unit_of_work("shop") as uow:
            assert [returned, bonus] == _by_source_and_rule(
                uow.load_usage("a", rule_ids=["base", "bonus"]))
            # two rows with one key in one write: the last one wins
            last = attrs.evolve(returned, points=Decimal("3"), stamps=2)
            uow.write(ChangeSet(usage=[attrs.evolve(returned, points=Decimal("7")), last]))
            assert [last] == uow.load_usage("a", rule_ids=["base"])
        with storage.unit_of_work("shop") as uow:  # not committed
            assert [returned] == uow.load_usage("a", rule_ids=["base"])

    def test_load_usage_filters_by_rules_or_groups_and_time(self, storage: Storage) -> None:
        self._orders_world(storage, "shop", "other")
        t0 = berlin(2026, 3, 1, 12)
        day = dt.timedelta(days=1)
        r1 = self._usage("order:1", "base", None, t0)
        r2 = self._usage("order:1", "bonus", "promo", t0 + day)
        r3 = self._usage("order:2", "spring", "promo", t0 + 2 * day)
        r4 = self._usage("event:e1", "birthday", None, t0 + 3 * day, stamps=1)
        theirs = self._usage("order:9", "base", "promo", t0, member_id="b")
        self._write_usage(storage, r1, r2, r3, r4, theirs)
        self._write_usage(storage, self._usage("order:1", "base", "promo", t0,
                                               program_id="other"), program_id="other")

        with storage.unit_of_work("shop") as uow:
            def load(**filters: Any) -> list[RuleUsage]:
                return _by_source_and_rule(uow.load_usage("a", **filters))

            assert [r1] == load(rule_ids=["base"])
            assert [r2, r3] == load(groups=["promo"])
            assert [r4, r1, r2, r3] == load(rule_ids=["base", "birthday"], groups=["promo"])
            assert [r2, r3] == load(rule_ids=["bonus"], groups=["promo"])  # each row once
            assert [r2] == load(groups=["promo"], since=t0 + day, until=t0 + 2 * day)
            assert [r3] == load(groups=["promo"], since=t0 + day + _MINUTE)
            assert [r1] == load(rule_ids=["base", "bonus"], until=t0 + day)
            # the bounds compare instants, whatever their zone
            assert [r2] == load(groups=["promo"], since=(t0 + day).astimezone(dt.UTC),
                                until=(t0 + day + _MINUTE).astimezone(dt.UTC))
            assert [] == load(rule_ids=["ghost"], groups=["nothing"])
            assert [] == load(rule_ids=["base"], since=t0 + day)
            assert [theirs] == _by_source_and_rule(uow.load_usage("b", rule_ids=["base"]))
            assert [] == uow.load_usage("ghost", rule_ids=["base"], groups=["promo"])

    def test_load_usage_without_filters_returns_all_the_members_rows(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        t0 = berlin(2026, 3, 1, 12)
        day = dt.timedelta(days=1)
        r1 = self._usage("order:1", "base", None, t0)
        r2 = self._usage("order:1", "bonus", "promo", t0 + day)
        r3 = self._usage("event:e1", "birthday", None, t0 + 2 * day, stamps=1)
        r4 = self._usage("event:e2", "card", "stamps", t0 + 3 * day, "0", stamps=2)
        theirs = self._usage("event:e9", "base", "promo", t0, member_id="b")
        self._write_usage(storage, r1, r2, r3, r4, theirs)
        self._write_usage(storage, self._usage("event:e1", "base", None, t0,
                                               program_id="other"), program_id="other")
        with storage.unit_of_work("shop") as uow:
            def load(member_id: str = "a", **bounds: Any) -> list[RuleUsage]:
                return _by_source_and_rule(uow.load_usage(member_id, **bounds))

            assert [r3, r4, r1, r2] == load()
            assert [r3, r4, r1, r2] == load(rule_ids=[], groups=[])
            assert [r3, r4, r1, r2] == load(since=t0, until=t0 + 9 * day)
            assert [r3, r4, r2] == load(since=t0 + day)  # since is inclusive
            assert [r1, r2] == load(until=t0 + 2 * day)  # until is exclusive
            assert [r3] == load(since=(t0 + 2 * day).astimezone(dt.UTC),
                                until=(t0 + 2 * day + _MINUTE).astimezone(dt.UTC))
            assert [] == load(since=t0 + 4 * day)
            assert [theirs] == load("b")
            assert [] == load("ghost")
        with storage.unit_of_work("other") as uow:
            assert [("other", "event:e1")] == [
                (row.program_id, row.source) for row in uow.load_usage("a")]

    # -- account activity, members' state and orders --------------------------------

    def _enrol_with(self, storage: Storage, member_id: str, *states: AccountState,
                    program_id: str = "shop", attributes: dict[str, Any] | None = None
                    ) -> None:
        """Enrol ``member_id`` with an account row per state given (committed)."""
        changes = ChangeSet()
        changes.members.append(Member(program_id, member_id, utc(2026, 1, 1),
                                      attributes or {}))
        for state in states:
            changes.accounts[(member_id, state.wallet)] = state
            changes.new_accounts.add((member_id, state.wallet))
        with storage.unit_of_work(program_id) as uow:
            uow.write(changes)
            uow.commit()

    def _update_accounts(self, storage: Storage, *states: AccountState) -> None:
        with storage.unit_of_work("shop") as uow:
            uow.write(ChangeSet(accounts={(s.member_id, s.wallet): s for s in states}))
            uow.commit()

    def test_account_activity_round_trips_through_write(self, storage: Storage) -> None:
        self._register(storage)
        text = '{"orders": 3, "spent": "12.50",  "tags": ["caf\\u00e9", "né"]}'  # kept as is
        a = AccountState("a", "points", available=5, issued=-5, version=1, activity=text)
        b = AccountState("b", "points")
        c = AccountState("c", "points", activity="{}")
        for state in (a, b, c):
            self._enrol_with(storage, state.member_id, state)
        at = utc(2026, 3, 1)

        def read_back(*states: AccountState) -> None:
            with storage.unit_of_work("shop") as uow:
                ids = [state.member_id for state in states]
                assert {s.member_id: s for s in states} == uow.lock_accounts("points", ids)
                for state in states:
                    assert state == uow.get_account("points", state.member_id)
                    assert {state.member_id: state} == uow.lock_accounts(
                        "points", [state.member_id])
                    for lock in (False, True):
                        loaded = uow.load_member(state.member_id, ["points"], at, lock=lock)
                        assert loaded is not None
                        assert {"points": state} == loaded.accounts

        read_back(a, b, c)  # new accounts: inserted with their activity, or None
        assert (text, None) == (a.activity, b.activity)
        # updated accounts: the text is replaced verbatim, None stays None, and an
        # account may gain or lose its text
        a2 = attrs.evolve(a, available=7, issued=-7, version=2,
                          activity='{"orders": 4, "spent": "20.00"}')
        b2 = attrs.evolve(b, available=2, issued=-2, version=1)
        c2 = attrs.evolve(c, version=1, activity=None)
        self._update_accounts(storage, a2, b2, c2)
        read_back(a2, b2, c2)
        b3 = attrs.evolve(b2, version=2, activity='{"orders": 1}')
        self._update_accounts(storage, b3)
        read_back(a2, b3, c2)
        # an update that is not committed changes nothing
        with storage.unit_of_work("shop") as uow:
            uow.write(ChangeSet(accounts={("a", "points"): attrs.evolve(
                a2, version=3, activity="rolled back")}))
            assert "rolled back" == (uow.get_account("points", "a") or a2).activity
        read_back(a2, b3, c2)

    def test_load_member_returns_the_member_its_accounts_and_the_version(
        self, storage: Storage
    ) -> None:
        self._register(storage)  # version 1, in force from the beginning of time
        storage.register_program(ProgramVersion(
            "shop", 2, berlin(2026, 3, 1), make_program().to_dict(), utc(2026, 1, 1)))
        storage.register_program(ProgramVersion(
            "shop", 3, berlin(2026, 9, 1), make_program().to_dict(), utc(2026, 1, 1)))
        points = AccountState("a", "points", available=40, issued=-40, version=2,
                              next_due_at=utc(2026, 4, 1), activity='{"orders": 2}')
        miles = AccountState("a", "miles", available=7, transfers=-7, version=1)
        cash = AccountState("a", "cash", pending=3, issued=-3, version=1)
        self._enrol_with(storage, "a", points, miles, cash, attributes={"tier": "gold"})
        theirs = AccountState("b", "points", available=99, issued=-99, version=1,
                              activity='{"orders": 9}')
        self._enrol_with(storage, "b", theirs)
        member = Member("shop", "a", utc(2026, 1, 1), {"tier": "gold"})
        asked: list[tuple[list[str], dict[str, AccountState]]] = [
            (["points"], {"points": points}),
            (["miles"], {"miles": miles}),
            (["points", "miles"], {"points": points, "miles": miles}),
            (["miles", "points", "points"], {"points": points, "miles": miles}),
            (["points", "ghost"], {"points": points}),
            (["cash", "miles", "points"], {"points": points, "miles": miles, "cash": cash}),
            (["cash", "ghost", "points"], {"points": points, "cash": cash}),
            (["ghost"], {}),  # enrolled, but no account in the wallets asked for
            (["ghost", "void"], {}),
            ([], {}),
        ]
        times = [(berlin(2026, 2, 28, 23, 59), 1), (berlin(2026, 3, 1), 2),
                 (utc(2026, 2, 28, 23), 2), (berlin(2026, 8, 31, 23, 59, 59), 2),
                 (berlin(2026, 9, 1), 3)]
        for lock in (False, True):
            with storage.unit_of_work("shop") as uow:
                for wallets, accounts in asked:
                    for at, version in times:
                        got = uow.load_member("a", wallets, at, lock=lock)
                        assert MemberState(member, accounts, version) == got, (wallets, at)
                state = uow.load_member("b", ["points", "miles"], utc(2026, 3, 2), lock=lock)
                assert MemberState(Member("shop", "b", utc(2026, 1, 1)), {"points": theirs},
                                   2) == state
                assert uow.load_member("ghost", ["points"], utc(2026, 3, 2), lock=lock) is None
                assert uow.load_member("ghost", [], utc(2026, 3, 2), lock=lock) is None
                assert uow.load_member("ghost", ["points", "miles", "cash"],
                                       utc(2026, 3, 2), lock=lock) is None

    def test_load_member_without_a_version_in_force(self, storage: Storage) -> None:
        storage.register_program(ProgramVersion(
            "later", 1, berlin(2026, 6, 1), make_program("later").to_dict(), utc(2026, 1, 1)))
        self._register(storage)  # another program's versions do not count
        state = AccountState("a", "points", activity='{"orders": 0}')
        self._enrol_with(storage, "a", state, program_id="later")
        member = Member("later", "a", utc(2026, 1, 1))
        with storage.unit_of_work("later") as uow:
            for lock in (False, True):
                for wallets, accounts in ((["points"], {"points": state}), (["ghost"], {})):
                    before = uow.load_member("a", wallets, berlin(2026, 5, 31, 23, 59),
                                             lock=lock)
                    assert MemberState(member, accounts, None) == before
                    after = uow.load_member("a", wallets, berlin(2026, 6, 1), lock=lock)
                    assert MemberState(member, accounts, 1) == after
        with storage.unit_of_work("shop") as uow:  # members are per program
            assert uow.load_member("a", ["points"], utc(2026, 7, 1), lock=False) is None

    def test_load_member_with_lock_holds_the_accounts_until_the_end(
        self, storage: Storage
    ) -> None:
        """A second locking read of the same accounts waits for the first unit of work
        and then sees what it wrote (no lost update)."""
        self._register(storage)
        self._enrol_with(storage, "a", AccountState("a", "points"),
                         AccountState("a", "miles"))
        at = utc(2026, 3, 1)
        locked = threading.Event()

        def second() -> tuple[int, int, str | None]:
            assert locked.wait(30)
            with storage.unit_of_work("shop") as uow:
                state = uow.load_member("a", ["miles", "points"], at, lock=True)
                assert state is not None
                seen = (state.accounts["points"].available, state.accounts["miles"].available,
                        state.accounts["points"].activity)
                uow.commit()
            return seen

        with ThreadPoolExecutor(max_workers=1) as pool:
            with storage.unit_of_work("shop") as uow:
                first = uow.load_member("a", ["points", "miles"], at, lock=True)
                assert first is not None
                waiting = pool.submit(second)
                locked.set()
                time.sleep(0.3)  # give the second reader time to reach the lock
                assert not waiting.done()
                uow.write(ChangeSet(accounts={
                    ("a", "points"): attrs.evolve(first.accounts["points"], available=5,
                                                  issued=-5, version=1, activity="{}"),
                    ("a", "miles"): attrs.evolve(first.accounts["miles"], available=2,
                                                 issued=-2, version=1),
                }))
                uow.commit()
            assert (5, 2, "{}") == waiting.result(timeout=30)

    def test_load_orders_returns_the_members_orders_in_time_order(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        # placed_at compares instants: 10:30 in Berlin is 09:30 UTC, before 10:00 UTC
        first = self._order("o9", placed_at=utc(2026, 1, 1, 23))
        berlin_1030 = self._order("o3")
        same_instant = self._order("o2", placed_at=utc(2026, 1, 2, 9, 30))  # o2 < o3
        utc_1000 = self._order("o1", placed_at=utc(2026, 1, 2, 10),
                               status=OrderStatus.CANCELLED, points=0, earn_id=None)
        last = self._order("o0", placed_at=berlin(2026, 2, 1), returned={"l1": 1},
                           payments=(uuid.UUID(int=4), uuid.UUID(int=2)))
        self._write_orders(storage, last, utc_1000, berlin_1030, first, same_instant,
                           self._order("b1", "b", placed_at=utc(2026, 1, 2)))
        self._write_orders(storage, self._order("x1", program_id="other"),
                           program_id="other")
        expected = [first, same_instant, berlin_1030, utc_1000, last]
        with storage.unit_of_work("shop") as uow:
            assert expected == uow.load_orders("a")
            assert ["b1"] == [o.order_id for o in uow.load_orders("b")]
            assert [] == uow.load_orders("ghost")
        # a cancellation changes the status, not the place in the list
        cancelled = attrs.evolve(berlin_1030, status=OrderStatus.CANCELLED, points=0,
                                 updated_at=utc(2026, 1, 5))
        self._write_orders(storage, cancelled, new=False)
        with storage.unit_of_work("shop") as uow:
            assert [first, same_instant, cancelled, utc_1000, last] == uow.load_orders("a")
            uow.write(ChangeSet(orders={"o8": self._order("o8", placed_at=utc(2026, 1, 1))},
                                new_orders={"o8"}))
            assert ["o8", "o9"] == [o.order_id for o in uow.load_orders("a")][:2]
        with storage.unit_of_work("shop") as uow:  # not committed
            assert "o8" not in [o.order_id for o in uow.load_orders("a")]
        with storage.unit_of_work("other") as uow:
            assert ["x1"] == [o.order_id for o in uow.load_orders("a")]

    @pytest.mark.parametrize("points", [
        "74.9875", "0.333333333333333333333333333", "0.10", "-2.50", "1E+3", "0",
        "123456789012345678.000000001",
    ])
    def test_usage_points_round_trip_exactly(self, storage: Storage, points: str) -> None:
        self._orders_world(storage)
        row = self._usage("order:o1", "base", None, utc(2026, 1, 2), points)
        self._write_usage(storage, row)
        with storage.unit_of_work("shop") as uow:
            [stored] = uow.load_usage("a", rule_ids=["base"])
        assert (row, points) == (stored, str(stored.points))
        assert isinstance(stored.points, Decimal)


def _by_source_and_rule(rows: Sequence[RuleUsage]) -> list[RuleUsage]:
    return sorted(rows, key=lambda row: (row.source, row.rule_id))


class _Boom(Exception):
    pass


class _FailingUnitOfWork:
    """Delegates to a real unit of work but fails right after writing."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> _FailingUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def write(self, changes: ChangeSet) -> None:
        self._inner.write(changes)
        raise _Boom("failure after write, before commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FailingStorage:
    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    @property
    def concurrent(self) -> bool:
        return self._inner.concurrent

    def unit_of_work(self, program_id: str) -> Any:
        return _FailingUnitOfWork(self._inner.unit_of_work(program_id))

    def register_program(self, version: ProgramVersion) -> None:
        self._inner.register_program(version)
