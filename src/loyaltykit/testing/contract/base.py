"""What every part of the storage contract shares: the backend hooks and the helpers.

:class:`ContractPart` is the base of each capability's part (ledger, orders, tiers,
referrals): a subclass says how to make a fresh, empty storage (:meth:`make_storage`) and
the ``storage`` fixture hands one to every test. :class:`Shop` and the functions here
(wall-clock instants, programs, ledger snapshots and checks) are the helpers the parts
and the library's own tests build their worlds with.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pendulum
import pytest

from loyaltykit import (
    Balance,
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    Kind,
    LedgerPolicy,
    Lot,
    Loyalty,
    Member,
    MemberNotFound,
    Money,
    PendingPolicy,
    Program,
    SpendOrder,
    StatementLine,
    Storage,
    TestClock,
    Transaction,
)
from loyaltykit.storage import AccountState, IdempotencyRecord, ProgramVersion
from loyaltykit.testing.changes import ChangeSet

__all__ = [
    "BERLIN",
    "HOLD_TTL",
    "L_EXPIRY",
    "MINUTE",
    "ContractPart",
    "LoyaltyFactory",
    "Shop",
    "berlin",
    "check_ledger",
    "id_source",
    "kinds",
    "ledger_snapshot",
    "lot_of",
    "make_program",
    "moves",
    "statement_lines",
    "utc",
]

BERLIN = pendulum.timezone("Europe/Berlin")
#: One minute: a step of the test clock.
MINUTE = dt.timedelta(minutes=1)
#: The time to live of the contract's holds.
HOLD_TTL = dt.timedelta(minutes=15)


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


#: What builds a contract's facades: ``(program, storage, **options) -> Loyalty``, the
#: signature of :class:`~loyaltykit.Loyalty` (see :meth:`ContractPart.make_loyalty`).
LoyaltyFactory = Callable[..., Loyalty]


class Shop:
    """A facade over ``storage`` with a :class:`TestClock`, plus small test helpers.

    ``factory`` builds the facade (default :class:`~loyaltykit.Loyalty`); the contract
    parts pass their :meth:`ContractPart.make_loyalty` (see :meth:`ContractPart.shop`).
    """

    def __init__(
        self,
        storage: Storage,
        program: Program | None = None,
        *,
        start: dt.datetime | None = None,
        factory: LoyaltyFactory = Loyalty,
    ) -> None:
        self.program = program or make_program()
        self.clock = TestClock(start or berlin(2026, 1, 1, 9))
        self.loyalty = factory(self.program, storage, clock=self.clock)
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


def id_source(side: int, example: int) -> Callable[[], uuid.UUID]:
    """An id source for one side of a comparison: ids 1, 2, 3... with the side and
    the example in the top bits (so two programs of one storage draw the same
    sequence, and no example meets another's ids)."""
    numbers = itertools.count(1)
    return lambda: uuid.UUID(int=(side << 96) | (example << 80) | next(numbers))


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
            for line in lines:
                tx = loyalty.transaction(line.transaction_id)
                assert 0 == sum(p.amount for p in tx.postings), tx
                assert (member_id, wallet) == (tx.member_id, tx.wallet)
                assert tx.points == line.points
                assert running == line.balance, (line, lines)
                running -= line.points
            assert 0 == running, lines
            assert balance.total == (
                balance.earned - balance.spent - balance.expired + balance.adjusted
                + balance.transferred
            ), balance
            as_of = loyalty.balance(member_id, wallet=wallet, as_of=now)
            for name in ("available", "pending", "held", "debt", "total", "earned",
                         "spent", "expired", "adjusted", "transferred"):
                assert getattr(balance, name) == getattr(as_of, name), (name, balance, as_of)


def kinds(lines: Sequence[StatementLine]) -> list[Kind]:
    """The kinds of statement lines, in order."""
    return [line.kind for line in lines]


class ContractPart:
    """The base of every part of the storage contract: how a test gets its storage.

    Subclasses implement :meth:`make_storage` (and optionally
    :meth:`dispose_storage`); name the subclass ``Test...`` so pytest collects it.
    See :mod:`loyaltykit.testing.contract`.
    """

    #: A fresh directory for the current test (set before :meth:`make_storage`).
    tmp_path: Path

    def make_storage(self) -> Storage:
        """Return a fresh, empty storage with its schema in place."""
        raise NotImplementedError("a contract subclass must implement make_storage")

    def dispose_storage(self, storage: Storage) -> None:
        """Release what :meth:`make_storage` acquired (default: nothing)."""

    def make_loyalty(self, program: Program, storage: Storage, **options: Any) -> Loyalty:
        """The facade the contract drives: every part builds its facades here, with the
        arguments of :class:`~loyaltykit.Loyalty` (``clock=``, ``secret=``, ``new_id=``,
        ...) on the storage of the test. Default: ``Loyalty(program, storage,
        **options)``; override it to run the contract through another facade (one that
        looks like :class:`~loyaltykit.Loyalty` to the caller, on the same data as
        ``storage``), e.g. :class:`loyaltykit.testing.contract.asynchronous.AsyncFacade`.
        """
        return Loyalty(program, storage, **options)

    def shop(self, storage: Storage, program: Program | None = None, *,
             start: dt.datetime | None = None) -> Shop:
        """A :class:`Shop` whose facade comes from :meth:`make_loyalty`."""
        return Shop(storage, program, start=start, factory=self.make_loyalty)

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        """A fresh storage from :meth:`make_storage`, disposed after the test."""
        self.tmp_path = tmp_path
        storage = self.make_storage()
        try:
            yield storage
        finally:
            self.dispose_storage(storage)

    def _holding(self, storage: Storage) -> tuple[Shop, uuid.UUID]:
        """A shop where member m earned 100 points and holds 60 of them (the hold's id)."""
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        result = shop.loyalty.hold("m", 60, key="cart", ttl=HOLD_TTL)
        return shop, result.hold_id

    def _enrolment(self, member_id: str, key: str) -> ChangeSet:
        """A change set enrolling ``member_id`` in program shop, keyed ``key``."""
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
        """Register version 1 of a :func:`make_program` program."""
        storage.register_program(ProgramVersion(
            program_id, 1, None, make_program(program_id).to_dict(), utc(2026, 1, 1)))
