"""The ledger's records: members, accounts, postings, transactions, lots and holds.

These are immutable values. Storage backends persist them and hand them back; the
domain (:mod:`loyaltykit._ledger`) derives new ones from old ones.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from loyaltykit._copy import evolve
from loyaltykit._json import JsonForm

__all__ = [
    "MEMBER_ACCOUNTS",
    "SYSTEM_ACCOUNTS",
    "Account",
    "AccountState",
    "Hold",
    "HoldAllocation",
    "HoldStatus",
    "IdempotencyRecord",
    "Kind",
    "Lot",
    "LotMovement",
    "Member",
    "MemberState",
    "OrderRecord",
    "OrderStatus",
    "Posting",
    "ProgramVersion",
    "RuleUsage",
    "Transaction",
]


class Kind(enum.Enum):
    """What a ledger transaction does."""

    EARN = "earn"
    SPEND = "spend"
    EXPIRE = "expire"
    ACTIVATE = "activate"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REVERSE = "reverse"
    ADJUST = "adjust"
    TRANSFER = "transfer"
    CLAWBACK = "clawback"
    #: gives part of a spend or capture back to the lots it took (a partial return of
    #: an order paid with points); ``metadata["refunds_id"]`` names the debit
    REFUND = "refund"

    # members are singletons compared by identity: hashed by it too, at C speed (Enum's
    # own __hash__ is a Python call, and the ledger keys dicts and sets by these)
    __hash__ = object.__hash__


class Account(enum.Enum):
    """A ledger account. Member accounts are credit-normal buckets of one member's
    points; system accounts are the program's counterparts, derived by summing
    postings (never a hot row)."""

    # member accounts
    AVAILABLE = "available"
    PENDING = "pending"
    HELD = "held"
    DEBT = "debt"
    # system accounts
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    ADJUSTMENTS = "adjustments"
    TRANSFERS = "transfers"
    CLAWBACK_SHORTFALL = "clawback_shortfall"

    # members are singletons compared by identity: hashed by it too, at C speed (Enum's
    # own __hash__ is a Python call, and the ledger keys dicts and sets by these)
    __hash__ = object.__hash__

    @property
    def is_member(self) -> bool:
        """True for the member's own buckets (available, pending, held, debt)."""
        return self in MEMBER_ACCOUNTS


MEMBER_ACCOUNTS = frozenset({Account.AVAILABLE, Account.PENDING, Account.HELD, Account.DEBT})
SYSTEM_ACCOUNTS = frozenset(set(Account) - MEMBER_ACCOUNTS)
_ACCOUNT_NAMES = tuple((a, a.value) for a in Account)
# an account's value by dict lookup (Enum's ``.value`` is a descriptor call in Python)
_ACCOUNT_NAME = dict(_ACCOUNT_NAMES)


@attrs.frozen
class Posting(JsonForm):
    """One leg of a transaction: a signed amount on an account (credit positive)."""

    account: Account
    amount: int


@attrs.frozen
class LotMovement(JsonForm):
    """The change a transaction made to one lot's remaining points."""

    lot_id: uuid.UUID
    delta: int


@attrs.frozen
class Transaction(JsonForm):
    """An immutable, balanced ledger transaction of one member in one wallet.

    ``postings`` sum to zero; ``movements`` record which lots it credited or consumed,
    so a reversal restores exactly those lots. ``occurred_at`` is business time,
    ``recorded_at`` the time of writing.
    """

    id: uuid.UUID
    program_id: str
    member_id: str
    wallet: str
    kind: Kind
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    postings: tuple[Posting, ...]
    movements: tuple[LotMovement, ...] = ()
    idempotency_key: str | None = None
    reason: str = ""
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    reverses_id: uuid.UUID | None = None

    def __attrs_post_init__(self) -> None:
        total = sum(p.amount for p in self.postings)
        if total != 0:  # a bug in the domain, never a user error
            raise AssertionError(f"postings of {self.kind.value} do not sum to zero: {self}")

    @property
    def points(self) -> int:
        """Net change of the member's total points (available + pending + held - debt)."""
        return sum(p.amount for p in self.postings if p.account in MEMBER_ACCOUNTS)

    def amount(self, account: Account) -> int:
        """Sum of this transaction's postings on ``account``."""
        return sum(p.amount for p in self.postings if p.account is account)


@attrs.frozen
class Lot(JsonForm):
    """Points from one credit (an earn, a positive adjustment, an incoming transfer).

    ``remaining`` includes ``held`` points reserved by open holds. A pending lot is
    visible but not spendable until it activates; ``activates_at`` is None for a lot
    that waits for an explicit activation (or is already active).
    """

    id: uuid.UUID
    program_id: str
    member_id: str
    wallet: str
    transaction_id: uuid.UUID
    amount: int
    remaining: int
    held: int
    earned_at: dt.datetime
    activates_at: dt.datetime | None
    expires_at: dt.datetime | None
    pending: bool

    def expired_at(self, at: dt.datetime) -> bool:
        """True if the lot's expiry instant is at or before ``at``."""
        return self.expires_at is not None and self.expires_at <= at

    def spendable(self, at: dt.datetime) -> int:
        """Points of this lot that a spend or hold at ``at`` may use."""
        if self.pending or self.expired_at(at):
            return 0
        return self.remaining - self.held


class HoldStatus(enum.Enum):
    """The life cycle of a hold."""

    OPEN = "open"
    CAPTURED = "captured"
    VOIDED = "voided"
    RELEASED = "released"

    # members are singletons compared by identity: hashed by it too, at C speed (Enum's
    # own __hash__ is a Python call, and the ledger keys dicts and sets by these)
    __hash__ = object.__hash__


@attrs.frozen
class HoldAllocation(JsonForm):
    """Points of one lot reserved by a hold."""

    lot_id: uuid.UUID
    points: int


@attrs.frozen
class Hold(JsonForm):
    """A reservation of available points for a checkout, with a time-to-live."""

    id: uuid.UUID
    program_id: str
    member_id: str
    wallet: str
    points: int
    status: HoldStatus
    created_at: dt.datetime
    expires_at: dt.datetime
    transaction_id: uuid.UUID
    allocations: tuple[HoldAllocation, ...]
    captured: int = 0
    resolved_by: uuid.UUID | None = None


@attrs.frozen
class Member(JsonForm):
    """A member enrolled in a program."""

    program_id: str
    member_id: str
    enrolled_at: dt.datetime
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class AccountState:
    """The stored running totals of one member's wallet (a snapshot of its postings).

    Each field is the signed sum of the postings of this member on the account of the
    same name; ``next_due_at`` is the earliest instant at which due work (activation,
    expiry, hold release) may have something to do for this wallet, or None.
    ``activity`` is opaque JSON text the service keeps on the member's default-wallet
    account (its earning counters); storage keeps it verbatim (None: nothing kept).
    """

    member_id: str
    wallet: str
    available: int = 0
    pending: int = 0
    held: int = 0
    debt: int = 0
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    adjustments: int = 0
    transfers: int = 0
    clawback_shortfall: int = 0
    next_due_at: dt.datetime | None = None
    version: int = 0
    activity: str | None = None

    def apply(self, postings: tuple[Posting, ...]) -> AccountState:
        """Return the state after adding ``postings``."""
        # only the accounts posted to change (iterating the Account enum per
        # transaction was a tenth of a bulk earn's time)
        changes: dict[str, Any] = {}
        for p in postings:
            name = _ACCOUNT_NAME[p.account]
            changes[name] = changes.get(name, getattr(self, name)) + p.amount
        changes["version"] = self.version + 1
        return evolve(self, **changes)

    def sums(self) -> dict[Account, int]:
        """The signed sum per account."""
        return {a: getattr(self, name) for a, name in _ACCOUNT_NAMES}


@attrs.frozen
class MemberState:
    """What the service reads of a member in one go
    (:meth:`~loyaltykit.storage.LedgerStore.load_member`).

    ``accounts`` maps each wallet asked for that has an account to its running totals;
    ``version`` is the number of the program version in force at the instant asked
    (the rule of :meth:`~loyaltykit.storage.ProgramStore.program_version_at`), None if
    none is in force.
    """

    member: Member
    accounts: Mapping[str, AccountState]
    version: int | None


@attrs.frozen
class IdempotencyRecord:
    """A write's idempotency key, the fingerprint of its request and its result."""

    key: str
    fingerprint: str
    result: str
    created_at: dt.datetime
    member_id: str | None = None


@attrs.frozen
class ProgramVersion:
    """One stored version of a program definition.

    ``definition`` is :meth:`loyaltykit.Program.to_dict` output. The version in force
    at an instant is the highest ``version`` whose ``effective_from`` is at or before
    it (``None``: in force from the beginning of time).
    """

    program_id: str
    version: int
    effective_from: dt.datetime | None
    definition: Mapping[str, Any]
    created_at: dt.datetime


class OrderStatus(enum.Enum):
    """Whether an order still counts (``open``) or was cancelled as a whole."""

    OPEN = "open"
    CANCELLED = "cancelled"


@attrs.frozen
class OrderRecord(JsonForm):
    """A recorded order as storage keeps it.

    ``order`` is the order as placed (:meth:`loyaltykit.Order.to_dict`), ``returned``
    the quantity returned so far per line id, ``version`` the program version whose
    rules priced it, ``evaluation`` the current breakdown
    (:meth:`loyaltykit.Evaluation.to_dict`) and ``points`` the points the order is
    worth now; ``recorded_evaluation`` is the breakdown as first recorded, kept by the
    first return that changed it (None until then: ``evaluation`` is that breakdown).
    ``earn_id`` is the earn transaction (None if it earned nothing);
    ``payments`` are spend/capture transactions that paid for it, reversed when the
    order is cancelled; ``refunded`` the points partial returns gave back of each of
    them so far (payment transaction id -> points; a cancellation gives back the rest).
    ``fingerprint`` and ``result`` are set when the order was
    recorded under its default idempotency key (``"order:<id>"``): the order row is
    then that key's record (the fingerprint of the request, and of the result only what
    the row does not hold: the earn and the balance after it), and no separate
    idempotency record is written.
    """

    program_id: str
    order_id: str
    member_id: str
    placed_at: dt.datetime
    version: int
    order: Mapping[str, Any]
    returned: Mapping[str, int]
    status: OrderStatus
    points: int
    evaluation: Mapping[str, Any]
    earn_id: uuid.UUID | None
    payments: tuple[uuid.UUID, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    recorded_evaluation: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    result: str | None = None
    refunded: Mapping[uuid.UUID, int] = attrs.field(factory=dict)

    #: The fields a return or cancellation may change; the rest never change.
    CHANGING: ClassVar[tuple[str, ...]] = (
        "returned", "status", "points", "evaluation", "earn_id", "payments", "updated_at",
        "recorded_evaluation", "refunded",
    )

    def evaluation_as_recorded(self) -> Mapping[str, Any]:
        """The breakdown the order was recorded with (what replaying the recording
        returns), whatever returns did since."""
        if self.recorded_evaluation is not None:
            return self.recorded_evaluation
        return self.evaluation


@attrs.frozen
class RuleUsage:
    """What one earning rule gave one source (an order or an event) of a member.

    Caps and stamp cards are counted from these rows: ``points`` is the rule's exact
    (unrounded) contribution, ``stamps`` the stamps it added. One row per
    ``(program_id, source, rule_id)``; a re-evaluation (a return) overwrites it.
    ``source`` is ``"order:<order id>"`` or ``"event:<event id>"``.
    """

    program_id: str
    member_id: str
    source: str
    rule_id: str
    group: str | None
    occurred_at: dt.datetime
    points: Decimal
    stamps: int = 0
