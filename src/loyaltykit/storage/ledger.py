"""The ledger's store: members, accounts, lots, holds and transactions.

:class:`LedgerStore` is what the ledger service reads through; :class:`LedgerChanges` is
what one unit of work writes to it (built by :class:`loyaltykit._ledger.Ledger`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Protocol

import attrs

from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    Lot,
    Member,
    MemberState,
    Transaction,
)
from loyaltykit.storage.ledger_due import DueChanges

__all__ = ["LedgerChanges", "LedgerStore"]


@attrs.define
class LedgerChanges:
    """What one unit of work writes to the ledger's store, in one go.

    ``lots`` and ``holds`` hold the final state of every touched row; ids in
    ``new_lots`` / ``new_holds`` are inserted, the others updated. ``accounts`` holds
    the final running totals of every touched member wallet (keys in ``new_accounts``
    are inserted). ``members`` are inserted.
    """

    transactions: list[Transaction] = attrs.field(factory=list)
    lots: dict[uuid.UUID, Lot] = attrs.field(factory=dict)
    new_lots: set[uuid.UUID] = attrs.field(factory=set)
    holds: dict[uuid.UUID, Hold] = attrs.field(factory=dict)
    new_holds: set[uuid.UUID] = attrs.field(factory=set)
    accounts: dict[tuple[str, str], AccountState] = attrs.field(factory=dict)
    new_accounts: set[tuple[str, str]] = attrs.field(factory=set)
    members: list[Member] = attrs.field(factory=list)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.transactions or self.members or self.accounts or self.lots
                    or self.holds)

    def write_to(self, uow: _WithLedger) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.ledger.write(self)


class LedgerStore(Protocol):
    """The ledger's tables, read and written inside one unit of work."""

    def get_member(self, member_id: str) -> Member | None:
        """Return the member, or None if not enrolled."""

    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        """Lock and return the running totals of these members' ``wallet``.

        Locks are held until the unit of work ends; ids that are not enrolled are
        simply absent from the result. Locks are taken in member-id order so two
        units of work locking overlapping sets cannot deadlock.
        """

    def get_account(self, wallet: str, member_id: str) -> AccountState | None:
        """Return the running totals without locking, or None if not enrolled."""

    def load_member(
        self, member_id: str, wallets: Sequence[str], at: dt.datetime, *, lock: bool
    ) -> MemberState | None:
        """Return the member, the running totals of each of its ``wallets`` that has an
        account (wallets without one are absent) and the number of the program version
        in force at ``at`` (as :meth:`ProgramStore.program_version_at
        <loyaltykit.storage.ProgramStore.program_version_at>`); None if not enrolled.

        With ``lock`` the account rows are locked as :meth:`lock_accounts` locks them
        (until the unit of work ends; the member row itself is not locked), taken in
        wallet order. A backend should fetch it in one round trip: it is on the path of
        every recorded order and event."""

    def load_members(self, member_ids: Sequence[str], wallets: Sequence[str]
                     ) -> dict[str, tuple[Member, dict[str, AccountState]]]:
        """Return, for each of these members that is enrolled, the member and the
        running totals of each of its ``wallets`` that has an account, locked as
        :meth:`lock_accounts` locks them: what :meth:`load_member` reads, for many
        members at once (a batch's reads; the version in force is the caller's). A
        backend should take a statement or two per kind, not one per member."""

    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        """Return the open lots (remaining > 0 or pending) of these members' wallet."""

    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID], *,
                        member_id: str) -> list[Lot]:
        """Return these lots of ``member_id`` whatever their state; unknown ids and
        other members' lots are absent. A lot is always read by its member: a
        distributed engine routes the read to the member's node (a caller with several
        members' lots reads them member by member)."""

    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        """Return the open holds of these members' wallet."""

    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        """Return the hold (any status), or None."""

    def get_transaction(self, transaction_id: uuid.UUID, *,
                        member_id: str | None = None) -> Transaction | None:
        """Return the transaction with its postings and lot movements, or None. With
        ``member_id``, None unless it is that member's (routed by the member, as
        :meth:`load_lots_by_id`)."""

    def find_reversal(self, transaction_id: uuid.UUID, *,
                      member_id: str | None = None) -> uuid.UUID | None:
        """Return the id of the transaction reversing ``transaction_id``, or None. With
        ``member_id`` (the reversed transaction's member, whose the reversal is too),
        only among that member's transactions (routed by the member)."""

    def find_refunds(self, wallet: str, member_id: str,
                     transaction_id: uuid.UUID) -> list[uuid.UUID]:
        """Return the ids of the member's ``refund`` transactions that give back part
        of ``transaction_id`` (``metadata["refunds_id"]``), oldest first."""

    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """Return up to ``limit`` (member_id, wallet) pairs whose ``next_due_at <= at``,
        ordered by (member_id, wallet) and strictly after ``after`` when given."""

    def due_bounds(self, at: dt.datetime, every: int) -> list[tuple[str, str]]:
        """Cut the accounts whose ``next_due_at <= at``, in (member_id, wallet) order,
        into ranges of ``every``: return the last key of each range (every
        ``every``-th key, and the last key), in order; empty if nothing is due. The keys
        are cursors for :meth:`due_between` (stored member keys: they pass the facade's
        member-id mapping unchanged). One statement over the due accounts."""

    def due_between(
        self, at: dt.datetime, *, after: tuple[str, str] | None, upto: tuple[str, str],
        limit: int,
    ) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
        """Return up to ``limit`` (member_id, wallet) pairs whose ``next_due_at <= at``
        in the key range ``(after, upto]`` (cursors from :meth:`due_bounds`; ``after``
        None: from the first), ordered by (member_id, wallet), and the cursor to go on
        from (the last pair's key) if ``limit`` were found, else None."""

    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        """Return (points, instant) of the soonest expiry among lots with points left."""

    def expiring_lots(
        self, start: dt.datetime, end: dt.datetime, *,
        after: tuple[dt.datetime, str, str, uuid.UUID] | None, limit: int
    ) -> list[Lot]:
        """Return up to ``limit`` lots of any member and wallet that are active (not
        pending), have points left that no hold reserves (``remaining > held``) and
        expire in ``(start, end]``, ordered by (expires_at, member_id, wallet, id) and
        strictly after ``after`` in that order when given (each member's lots of one
        expiry come together; "points expiring soon" notices)."""

    def sums_as_of(self, wallet: str, member_id: str, at: dt.datetime) -> dict[Account, int]:
        """Return the signed sum per account of the member's postings with
        ``occurred_at <= at`` (accounts with no postings may be absent)."""

    def lots_as_of(
        self, wallet: str, member_id: str, at: dt.datetime
    ) -> list[tuple[Lot, int]]:
        """Return (lot, remaining as of ``at``) for lots whose movements up to ``at``
        leave points in them."""

    def statement(
        self,
        wallet: str,
        member_id: str,
        *,
        limit: int,
        before: tuple[dt.datetime, uuid.UUID] | None,
    ) -> tuple[list[Transaction], int]:
        """Return up to ``limit`` transactions newest first (by occurred_at, then id),
        strictly before ``before`` when given, and the member's total points
        (sum of member-account postings) through the first transaction returned
        (0 if none)."""

    def erase(self, member_id: str) -> None:
        """Empty the member's ``attributes`` (its row and ledger stay)."""

    def rename_counterpart(self, member_id: str, name: str) -> list[str]:
        """Where the other halves of the member's transfers name it as their
        counterpart (``metadata["counterpart_member_id"]``), write ``name`` instead (in
        one batch, whatever their number), and return the idempotency keys of those
        transfers (a transfer's two halves share one)."""

    def write(self, changes: LedgerChanges) -> None:
        """Persist ``changes``: insert transactions (with postings and movements), new
        members, new accounts, new lots and holds; update touched lots, holds and
        accounts. Raise :class:`~loyaltykit.DuplicateKey` on a unique violation (a
        member id enrolled twice, a second reversal of one transaction); the unit of
        work must then be rolled back by the caller."""

    def write_due(self, changes: DueChanges) -> None:
        """Persist a batch of set-based due work: insert its transactions, postings
        and lot movements, update the lots, holds (released) and accounts it names;
        one multi-row statement per table. What is written equals what :meth:`write`
        writes for the same transactions built one by one."""


class _WithLedger(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def ledger(self) -> LedgerStore: ...
