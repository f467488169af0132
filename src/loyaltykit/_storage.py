"""The storage port: what a backend must provide, with the edge cases it must keep.

A backend is a :class:`Storage` that opens :class:`UnitOfWork` objects bound to one
program. A unit of work is a transaction: nothing it wrote is visible to others until
:meth:`UnitOfWork.commit`, and leaving its ``with`` block without committing rolls
everything back. The facade (:class:`loyaltykit.Loyalty`) is the only caller in the
library; third-party backends prove themselves with :mod:`loyaltykit.testing`.

Concurrency contract (what the facade relies on):

* :meth:`UnitOfWork.lock_accounts` serialises writers of the same member wallet until
  the unit of work ends (row lock, or a wider lock such as SQLite's database lock).
  Writers of different members must not block each other where the engine allows.
* :meth:`UnitOfWork.write` raises :class:`~loyaltykit.DuplicateKey` when a unique
  rule is broken (idempotency key per program, member id per program, one reversal
  per transaction); the facade then rolls back and retries, finding the winner.
* A backend raises :class:`~loyaltykit.StorageError` subclasses only; driver errors
  are translated at the edge.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from loyaltykit._ledger import ChangeSet
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    IdempotencyRecord,
    Lot,
    Member,
    MemberState,
    OrderRecord,
    ProgramVersion,
    RuleUsage,
    Transaction,
)
from loyaltykit._referrals import Referral, ReferralCode, ReferralMark
from loyaltykit._tiers import TierChange, TierJob, TierNotice, TierState

__all__ = ["Storage", "UnitOfWork"]


class UnitOfWork(Protocol):
    """One storage transaction for one program. Rolls back unless committed."""

    program_id: str

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

    # -- reads --------------------------------------------------------------------------

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """Return the stored record for ``key`` in this program, or None."""

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
        in force at ``at`` (as :meth:`program_version_at`); None if not enrolled.

        With ``lock`` the account rows are locked as :meth:`lock_accounts` locks them
        (until the unit of work ends; the member row itself is not locked), taken in
        wallet order. A backend should fetch it in one round trip: it is on the path of
        every recorded order and event."""

    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        """Return the open lots (remaining > 0 or pending) of these members' wallet."""

    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID]) -> list[Lot]:
        """Return these lots whatever their state; unknown ids are absent."""

    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        """Return the open holds of these members' wallet."""

    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        """Return the hold (any status), or None."""

    def get_transaction(self, transaction_id: uuid.UUID) -> Transaction | None:
        """Return the transaction with its postings and lot movements, or None."""

    def find_reversal(self, transaction_id: uuid.UUID) -> uuid.UUID | None:
        """Return the id of the transaction reversing ``transaction_id``, or None."""

    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """Return up to ``limit`` (member_id, wallet) pairs whose ``next_due_at <= at``,
        ordered by (member_id, wallet) and strictly after ``after`` when given."""

    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        """Return (points, instant) of the soonest expiry among lots with points left."""

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

    # -- programs, orders, rule usage ----------------------------------------------------

    def program_versions(self) -> list[ProgramVersion]:
        """Return every stored version of this program, lowest version first."""

    def program_version_at(self, at: dt.datetime) -> int | None:
        """Return the number of the version in force at ``at``: the highest version
        whose ``effective_from`` is None or at or before ``at``; None if there is none.
        (Only the number: the caller keeps parsed definitions, which never change.)"""

    def get_order(self, order_id: str) -> OrderRecord | None:
        """Return the recorded order (any status), or None."""

    def count_orders(self, member_id: str) -> int:
        """Return how many orders of the member are recorded and not cancelled."""

    def load_orders(self, member_id: str) -> list[OrderRecord]:
        """Return every recorded order of the member, whatever its status, ordered by
        (``placed_at``, ``order_id``)."""

    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        """Return the member's usage rows whose ``rule_id`` is in ``rule_ids`` or whose
        ``group`` is in ``groups``, with ``since <= occurred_at < until`` (a None bound
        is open). Order is unspecified. Empty ``rule_ids`` and ``groups``: every usage
        row of the member (still within the bounds)."""

    # -- tiers --------------------------------------------------------------------------

    def get_tier_state(self, member_id: str) -> TierState | None:
        """Return the member's tier state (None: none kept yet). Called under the
        member's account lock; a SQL backend also locks the row (``FOR UPDATE``)."""

    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        """Return the sum of the member's metric buckets whose period starts in
        ``[start, end)`` (``end`` None: no upper bound); 0 if there are none."""

    def tier_history(self, member_id: str) -> list[TierChange]:
        """Return the member's tier history in the order it was written."""

    def tier_due(self, at: dt.datetime, *, by_anchor: bool) -> list[
            tuple[dt.datetime, dt.date | None]]:
        """Return the distinct evaluation instants at or before ``at`` that tier states
        wait for, oldest first; with ``by_anchor`` as (instant, anchor) pairs (members
        of an anniversary window whose next date depends on their enrolment date),
        else as (instant, None)."""

    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        """Return the member id ending the next batch: the highest of the ``job.limit``
        lowest member ids after ``job.after`` (None: from the first) among the tier
        states waiting for ``job.at`` (and ``job.anchor``; with ``noticed``, only those
        not yet noticed for it); None when there are none."""

    def evaluate_tiers(self, job: TierJob) -> tuple[int, int]:
        """Evaluate, set-based, up to ``job.limit`` tier states (lowest member ids
        first, within ``(job.after, job.upto]``) waiting for ``job.at`` (and
        ``job.anchor`` when given): the metric of
        ``[window_start, at)`` decides as :func:`loyaltykit._tiers.evaluate` does;
        states move to the next window and changes are appended to the history.
        Return how many states were evaluated (0: none left) and how many changed."""

    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        """For tier states waiting for ``job.at`` (and ``job.anchor``) not yet noticed
        for it (within ``(job.after, job.upto]``): record a notice where an evaluation
        with the metric so far would drop the member (:func:`loyaltykit._tiers.would_be`),
        and mark every such state noticed. At most ``job.limit`` states; return how
        many were examined and how many notices were recorded."""

    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        """Return recorded notices created at or after ``since``, oldest first."""

    # -- referrals ----------------------------------------------------------------------

    def get_code(self, code: str) -> ReferralCode | None:
        """Return the issued code (its stored, normalised form), or None."""

    def member_codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's codes, oldest first (by ``created_at``, then code)."""

    def claim_code(self, code: str) -> bool:
        """Count one more use of ``code`` if it has uses left (``max_uses`` None: no
        limit) and return True; return False if it is used up. Written at once, in this
        unit of work: of concurrent units of work claiming the last use, exactly one
        gets True (the others wait for it, then see the code used up)."""

    def get_referral(self, referee_id: str) -> Referral | None:
        """Return the referee's referral (any status), or None."""

    def referrals_of(self, referrer_id: str) -> list[Referral]:
        """Return every referral of the referrer, by ``attributed_at`` then referee."""

    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        """For each instant of ``since``, count the referrer's referrals (any status)
        attributed at or after it (one read for all of them)."""

    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        """Count the referrer's QUALIFIED referrals that paid the referrer (points > 0)
        and qualified in ``[start, end)`` (``start`` None: no lower bound)."""

    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        """Return the identity marks kept for these members."""

    # -- writes -------------------------------------------------------------------------

    def write(self, changes: ChangeSet) -> None:
        """Persist ``changes``: insert transactions (with postings and movements), new
        members, new accounts, new lots, holds and orders and idempotency records;
        update touched lots, holds, orders and accounts; upsert usage rows by
        ``(program_id, source, rule_id)``. Raise DuplicateKey on a unique violation
        (an idempotency key, a member id, an order id inserted twice, a second reversal
        of one transaction); the unit of work must then be rolled back by the caller.
        Tier states are inserted or updated (bumping their ``version``), tier buckets
        added to, tier history appended. Referral codes are inserted (a code already
        issued in the program is a DuplicateKey with ``details["code"]``), referrals
        inserted (a second referral of a referee is a DuplicateKey) or updated, and
        identity marks inserted unless already kept."""


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
