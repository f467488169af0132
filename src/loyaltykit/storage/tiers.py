"""The tiers' store: tier states, metric buckets, history and notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import attrs

from loyaltykit._tiers import TierChange, TierChanged, TierJob, TierNotice, TierState

__all__ = ["TierChanges", "TierStore"]


@attrs.define
class TierChanges:
    """What one unit of work writes to the tiers' store.

    ``tier_states`` holds the final tier state of every touched member (ids in
    ``new_tier_states`` are inserted); ``tier_buckets`` amounts are added to the
    member's metric bucket of that period (created at 0 when missing);
    ``tier_history`` lines are appended. ``rewrites`` counts, per member, the writes of
    its tier state merged into this one beyond the first (a history import's batch):
    the stored version counts them too, as if each had been written.

    A state is written for the member of its key in ``tier_states``: a store does not
    read the state's own ``member_id`` (the member-key layer hands the store states
    under their members' keys without copying each to put the key in it).
    """

    tier_states: dict[str, TierState] = attrs.field(factory=dict)
    new_tier_states: set[str] = attrs.field(factory=set)
    tier_buckets: dict[tuple[str, dt.datetime], int] = attrs.field(factory=dict)
    tier_history: list[TierChange] = attrs.field(factory=list)
    rewrites: dict[str, int] = attrs.field(factory=dict)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.tier_states or self.tier_buckets or self.tier_history)

    def write_to(self, uow: _WithTiers) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.tiers.write(self)


class TierStore(Protocol):
    """Tier states and their history, read and written inside one unit of work."""

    def get_tier_state(self, member_id: str) -> TierState | None:
        """Return the member's tier state (None: none kept yet). Called under the
        member's account lock; a SQL backend also locks the row (``FOR UPDATE``)."""

    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        """Return the sum of the member's metric buckets whose period starts in
        ``[start, end)`` (``end`` None: no upper bound); 0 if there are none."""

    def get_tier_states(self, member_ids: Sequence[str]) -> dict[str, TierState]:
        """Return the tier states kept for these members (absent: none kept), locked as
        :meth:`get_tier_state` locks them: a batch's reads, in one go."""

    def tier_buckets(self, member_ids: Sequence[str]) -> dict[str, dict[dt.datetime, int]]:
        """Return these members' metric buckets, period start -> value (a member
        without any is absent), for :meth:`tier_metric`'s sums over many members."""

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

    def evaluate_tiers(self, job: TierJob) -> tuple[int, list[TierChanged]]:
        """Evaluate, set-based, up to ``job.limit`` tier states (lowest member ids
        first, within ``(job.after, job.upto]``) waiting for ``job.at`` (and
        ``job.anchor`` when given): the metric of
        ``[window_start, at)`` decides as :func:`loyaltykit._tiers.evaluate` does;
        states move to the next window and changes are appended to the history.
        Return how many states were evaluated (0: none left) and the changes: each
        history line appended (its ``recorded_at`` is ``job.recorded_at``) with the
        state's ``protected_until`` after it and its next evaluation (``job.next_at``),
        in any order (the caller raises them as events)."""

    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        """For tier states waiting for ``job.at`` (and ``job.anchor``) not yet noticed
        for it (within ``(job.after, job.upto]``): record a notice where an evaluation
        with the metric so far would drop the member (:func:`loyaltykit._tiers.would_be`),
        and mark every such state noticed. At most ``job.limit`` states; return how
        many were examined and how many notices were recorded."""

    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        """Return recorded notices created at or after ``since``, oldest first."""

    def upcoming_tier_notices(self, after: dt.datetime, *,
                              cursor: tuple[dt.datetime, str] | None, limit: int
                              ) -> list[TierNotice]:
        """Return up to ``limit`` recorded notices of evaluations later than ``after``,
        by (evaluation_at, member_id), strictly after ``cursor`` in that order when
        given ("tier will drop" events)."""

    def write(self, changes: TierChanges) -> None:
        """Insert the new tier states (version 0; a member that has one already is a
        :class:`~loyaltykit.DuplicateKey` with ``details["member_id"]``), update the
        others (bumping their ``version``), add to the metric buckets (created at 0)
        and append the history lines."""


class _WithTiers(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def tiers(self) -> TierStore: ...
