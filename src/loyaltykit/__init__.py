"""loyaltykit: a double-entry points ledger for loyalty and referral programs.

Start with :class:`Loyalty`, the facade bound to a :class:`Program`, a storage
(:class:`loyaltykit.memory.MemoryStorage`, or :class:`loyaltykit.sql.SQLStorage` for
SQLite and PostgreSQL) and a :class:`Clock`.
"""

import logging as _logging

from loyaltykit._clock import Clock, SystemClock, TestClock
from loyaltykit._errors import (
    AlreadyReversed,
    Conflict,
    CurrencyMismatch,
    DuplicateKey,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidIdempotencyKey,
    InvalidInput,
    InvalidMoney,
    InvalidPoints,
    InvalidProgram,
    LoyaltyError,
    MemberAlreadyEnrolled,
    MemberNotFound,
    NaiveDatetime,
    NotFound,
    NotPending,
    NotReversible,
    RetryLimitExceeded,
    SerializationFailure,
    StorageError,
    TransactionNotFound,
    UnknownWallet,
)
from loyaltykit._ledger import ChangeSet
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    HoldAllocation,
    HoldStatus,
    IdempotencyRecord,
    Kind,
    Lot,
    LotMovement,
    Member,
    Posting,
    Transaction,
)
from loyaltykit._program import (
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    LedgerPolicy,
    PendingPolicy,
    Program,
    SpendOrder,
)
from loyaltykit._results import (
    Balance,
    BulkEarnResult,
    DueWorkReport,
    HoldResult,
    StatementLine,
    StatementPage,
    TransactionResult,
    TransferResult,
)
from loyaltykit._service import Loyalty
from loyaltykit._storage import Storage, UnitOfWork
from loyaltykit._values import Money

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountState",
    "AlreadyReversed",
    "Balance",
    "BulkEarnResult",
    "ChangeSet",
    "ClawbackPolicy",
    "Clock",
    "Conflict",
    "CurrencyMismatch",
    "DueWorkReport",
    "DuplicateKey",
    "ExpiryPolicy",
    "ExpiryRounding",
    "ExpiryStart",
    "Hold",
    "HoldAllocation",
    "HoldExpired",
    "HoldNotFound",
    "HoldNotOpen",
    "HoldResult",
    "HoldStatus",
    "IdempotencyConflict",
    "IdempotencyRecord",
    "InsufficientPoints",
    "InvalidIdempotencyKey",
    "InvalidInput",
    "InvalidMoney",
    "InvalidPoints",
    "InvalidProgram",
    "Kind",
    "LedgerPolicy",
    "Lot",
    "LotMovement",
    "Loyalty",
    "LoyaltyError",
    "Member",
    "MemberAlreadyEnrolled",
    "MemberNotFound",
    "Money",
    "NaiveDatetime",
    "NotFound",
    "NotPending",
    "NotReversible",
    "PendingPolicy",
    "Posting",
    "Program",
    "RetryLimitExceeded",
    "SerializationFailure",
    "SpendOrder",
    "StatementLine",
    "StatementPage",
    "Storage",
    "StorageError",
    "SystemClock",
    "TestClock",
    "Transaction",
    "TransactionNotFound",
    "TransactionResult",
    "TransferResult",
    "UnitOfWork",
    "UnknownWallet",
]

_logging.getLogger("loyaltykit").addHandler(_logging.NullHandler())
