"""The storage port: what a backend provides, store by store, for backend authors.

A backend is a :class:`Storage` that opens :class:`UnitOfWork` objects bound to one
program. A unit of work is a transaction: nothing it wrote is visible to others until
:meth:`UnitOfWork.commit`, and leaving its ``with`` block without committing rolls
everything back. It carries one store per capability, each a Protocol with its own
reads and one ``write`` of its own change part:

============  =====================  ===================  ==========================
attribute     store                  change part          what it keeps
============  =====================  ===================  ==========================
``keys``      :class:`KeyStore`      idempotency records  one record per key
``programs``  :class:`ProgramStore`  (read only)          program versions
``ledger``    :class:`LedgerStore`   :class:`LedgerChanges`   members, accounts, lots,
                                                          holds, transactions
``orders``    :class:`OrderStore`    :class:`OrderChanges`    orders, rule usage
``tiers``     :class:`TierStore`     :class:`TierChanges`     tier states, history
``referrals`` :class:`ReferralStore` :class:`ReferralChanges` codes, referrals, marks
``rewards``   :class:`RewardStore`   :class:`RewardChanges`   vouchers, reward counters
``members``   :class:`MemberKeyStore` :class:`MemberKeyChanges` shop ids -> member keys,
                                                          erasures
``outbox``    :class:`OutboxStore`   :class:`OutboxChanges`   events, consumers'
                                                          positions
``notices``   :class:`NoticeStore`   (claims, at once)    notices emitted, one per
                                                          subject
``reports``   :class:`ReportStore`   (read only)          program-wide aggregates
============  =====================  ===================  ==========================

Member keys (DESIGN §11): the shop's member id is stored once, in the ``members``
store, mapped to an internal member key drawn at enrolment; every other store's rows
carry the key (in their ``member_id``, ``referrer_id`` and ``referee_id`` fields). The
library translates between the two above the stores, so a backend stores what it is
given and never sees a shop id outside the ``members`` store. Each store that keeps
something about a member beyond the key has an ``erase(member_id)`` that removes it.

The write pipeline (the only writer in the library) collects the change parts a use
case and its subscribers produced and writes them in one unit of work: the key's
record first, then the ledger's part, then the others in the order they were first
touched; then it commits. Third-party backends prove themselves with
:mod:`loyaltykit.testing` (one contract part per store).

Concurrency contract (what the services rely on):

* :meth:`LedgerStore.lock_accounts` serialises writers of the same member wallet until
  the unit of work ends (row lock, or a wider lock such as SQLite's database lock).
  Writers of different members must not block each other where the engine allows.
* A store's ``write`` raises :class:`~loyaltykit.DuplicateKey` when a unique rule is
  broken (idempotency key per program, member id per program, order id per program,
  one reversal per transaction, one referral per referee, one code per program, one
  voucher code per program); the
  pipeline then rolls back and retries, finding the winner.
* :meth:`RewardStore.take` counts a redemption against a reward's stock and global
  limit with one guarded write, so concurrent redemptions never take more than there
  is (the row it writes is held until the unit of work ends).
* :meth:`OutboxStore.read` never returns an event after one that may still commit
  with a lower position (a reader must not skip it), and appending an event takes no
  lock that a writer of another member needs (no counter row, no table lock).
* A backend raises :class:`~loyaltykit.StorageError` subclasses only; driver errors
  are translated at the edge.

Reads: a backend may also offer ``read_unit_of_work(program_id)`` (see
:class:`ReadingStorage`), a unit of work that only reads, which the facade's reads
(balances, statements, orders, quotes, reports, tiers, referrals, rewards, events) use
through :func:`read_unit_of_work`. It must refuse every write with
:class:`~loyaltykit.ReadOnlyViolation` and may read alongside writers (SQLite: a
deferred ``BEGIN`` that takes no write lock). A backend without it is read through
ordinary units of work, never committed.

Imports: a backend may also name the history import's batch size it writes best
(``import_batch_size``, see :class:`BatchingStorage`), which ``record_orders`` takes
when the caller gives none; a backend without it gets the import's own default.

Long runs: due work and the history import run their units of work inside
``storage.long_run()`` where a backend has it (see :class:`LongRunStorage`,
:func:`long_run`), a hint that many units of work follow (SQLite: fewer WAL
checkpoints).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Protocol, Self, cast

from loyaltykit._errors import (
    DuplicateKey,
    ReadOnlyViolation,
    SerializationFailure,
    StorageError,
)
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
    MemberState,
    OrderRecord,
    OrderStatus,
    Posting,
    ProgramVersion,
    RuleUsage,
    Transaction,
)
from loyaltykit._referrals import Referral, ReferralCode, ReferralMark, ReferralStatus
from loyaltykit._tiers import TierChange, TierJob, TierNotice, TierState
from loyaltykit.storage.ledger import LedgerChanges, LedgerStore
from loyaltykit.storage.ledger_due import DueChanges
from loyaltykit.storage.members import Erasure, MemberKeyChanges, MemberKeyStore
from loyaltykit.storage.notices import NoticeStore
from loyaltykit.storage.orders import OrderChanges, OrderStore
from loyaltykit.storage.outbox import EventWaiter, OutboxChanges, OutboxStore
from loyaltykit.storage.programs import KeyStore, ProgramStore
from loyaltykit.storage.referrals import ReferralChanges, ReferralStore
from loyaltykit.storage.reports import ReportStore
from loyaltykit.storage.rewards import RewardChanges, RewardStore
from loyaltykit.storage.tiers import TierChanges, TierStore

__all__ = [
    "Account",
    "AccountState",
    "BatchingStorage",
    "ChangePart",
    "DueChanges",
    "DuplicateKey",
    "Erasure",
    "EventWaiter",
    "Hold",
    "HoldAllocation",
    "HoldStatus",
    "IdempotencyRecord",
    "KeyStore",
    "Kind",
    "LedgerChanges",
    "LedgerStore",
    "LongRunStorage",
    "Lot",
    "LotMovement",
    "Member",
    "MemberKeyChanges",
    "MemberKeyStore",
    "MemberState",
    "NoticeStore",
    "OrderChanges",
    "OrderRecord",
    "OrderStatus",
    "OrderStore",
    "OutboxChanges",
    "OutboxStore",
    "Posting",
    "ProgramStore",
    "ProgramVersion",
    "ReadOnlyViolation",
    "ReadingStorage",
    "Referral",
    "ReferralChanges",
    "ReferralCode",
    "ReferralMark",
    "ReferralStatus",
    "ReferralStore",
    "ReportStore",
    "RewardChanges",
    "RewardStore",
    "RuleUsage",
    "SerializationFailure",
    "Storage",
    "StorageError",
    "TierChange",
    "TierChanges",
    "TierJob",
    "TierNotice",
    "TierState",
    "TierStore",
    "Transaction",
    "UnitOfWork",
    "long_run",
    "read_unit_of_work",
]


class UnitOfWork(Protocol):
    """One storage transaction for one program, with one store per capability.
    Rolls back unless committed."""

    program_id: str

    @property
    def keys(self) -> KeyStore:
        """Idempotency records."""

    @property
    def programs(self) -> ProgramStore:
        """Stored program versions."""

    @property
    def ledger(self) -> LedgerStore:
        """Members, accounts, lots, holds and transactions."""

    @property
    def orders(self) -> OrderStore:
        """Recorded orders and rule usage."""

    @property
    def tiers(self) -> TierStore:
        """Tier states, metric buckets, history and notices."""

    @property
    def referrals(self) -> ReferralStore:
        """Referral codes, referrals and identity marks."""

    @property
    def rewards(self) -> RewardStore:
        """Vouchers and reward counters."""

    @property
    def members(self) -> MemberKeyStore:
        """The shop's member ids mapped to member keys, and erasure records."""

    @property
    def outbox(self) -> OutboxStore:
        """Events (the outbox) and the consumers' positions."""

    @property
    def notices(self) -> NoticeStore:
        """The notices due work has emitted (one per subject)."""

    @property
    def reports(self) -> ReportStore:
        """Program-wide reads for reports (read only)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back if :meth:`commit` was not called; always release the connection."""

    def commit(self) -> None:
        """Make every write of this unit of work durable and visible at once."""


class ChangePart(Protocol):
    """One capability's share of what a unit of work writes (e.g. :class:`TierChanges`)."""

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""

    def write_to(self, uow: UnitOfWork) -> None:
        """Hand this part to its store in ``uow`` (``uow.<store>.write(self)``)."""


class Storage(Protocol):
    """A place to keep ledgers: opens units of work and registers programs."""

    @property
    def concurrent(self) -> bool:
        """True when units of work may run at once on several threads, each in its own
        transaction (``Loyalty.run_due(workers=N)`` runs them in parallel only then)."""

    def unit_of_work(self, program_id: str) -> UnitOfWork:
        """Return a new unit of work for ``program_id`` (use it as a context manager)."""

    def register_program(self, version: ProgramVersion) -> None:
        """Store this version of the program unless ``(program_id, version)`` is stored
        already (then leave the stored one as it is; the caller compares). Safe to
        call concurrently: a lost insert race is not an error."""


class ReadingStorage(Storage, Protocol):
    """A :class:`Storage` with units of work that only read (an optional part of the
    port; :class:`~loyaltykit.memory.MemoryStorage` and
    :class:`~loyaltykit.sql.SQLStorage` have it)."""

    def read_unit_of_work(self, program_id: str) -> UnitOfWork:
        """Return a new unit of work for ``program_id`` that only reads: every write
        through it raises :class:`~loyaltykit.ReadOnlyViolation` and writes nothing.
        It is never committed; it may run alongside writers where the engine allows."""


class BatchingStorage(Storage, Protocol):
    """A :class:`Storage` that names the orders per batch (one unit of work, one commit)
    its history import writes best (an optional part of the port;
    :class:`~loyaltykit.sql.SQLStorage` has it)."""

    @property
    def import_batch_size(self) -> int:
        """Orders per batch of ``record_orders`` when the caller gives no
        ``batch_size`` (1 to the import's largest batch)."""


class LongRunStorage(Storage, Protocol):
    """A :class:`Storage` that prepares for a long series of units of work, such as
    due work over every member or a history import (an optional part of the port;
    :class:`~loyaltykit.sql.SQLStorage` has it: on SQLite it checkpoints the WAL
    less often meanwhile and once at the end)."""

    def long_run(self) -> AbstractContextManager[None]:
        """A context manager around the run's units of work; it must not change what
        they write or how durable it is, and runs may overlap (threads)."""


def long_run(storage: Storage) -> AbstractContextManager[None]:
    """``storage.long_run()`` where the backend has it (:class:`LongRunStorage`), else
    a block that changes nothing."""
    opener = getattr(storage, "long_run", None)
    if callable(opener):
        return cast("AbstractContextManager[None]", opener())
    return nullcontext()


def read_unit_of_work(storage: Storage, program_id: str) -> UnitOfWork:
    """A unit of work to read in: ``storage.read_unit_of_work(program_id)`` where the
    backend has it (:class:`ReadingStorage`), else an ordinary one."""
    opener = getattr(storage, "read_unit_of_work", None)
    if callable(opener):
        return cast("UnitOfWork", opener(program_id))
    return storage.unit_of_work(program_id)
