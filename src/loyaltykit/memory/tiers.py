"""The in-memory tiers store: tier states, metric buckets, history and notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from loyaltykit._copy import evolve
from loyaltykit._errors import DuplicateKey
from loyaltykit._tiers import (
    TierChange,
    TierChanged,
    TierJob,
    TierNotice,
    TierState,
    WindowKind,
    evaluate,
    would_be,
)
from loyaltykit.memory import due_events
from loyaltykit.memory.outbox import KeptEvent, KeptEvents, MemoryOutboxStore, micros
from loyaltykit.memory.sorted_index import IndexedTable
from loyaltykit.memory.tables import JSONText, KeptSet, MemberKeys, Tables, UndoLog
from loyaltykit.storage.tier_due_set import TierOutbox
from loyaltykit.storage.tiers import TierChanges

__all__ = ["MemoryTierStore", "TierTables"]

_UNSEEN = "\x00unseen"  # (no instant's text)


def _due_key(key: tuple[str, str], state: TierState
             ) -> tuple[str, dt.datetime, str] | None:
    """A tier state's place in the due index: (program, next evaluation, member)."""
    if state.next_evaluation is None:
        return None
    return (key[0], state.next_evaluation, key[1])


def _notice_key(key: tuple[str, str, dt.datetime], notice: TierNotice
                ) -> tuple[str, dt.datetime, str]:
    return (key[0], key[2], key[1])


class TierTables:
    def __init__(self) -> None:
        # indexed by (program, next evaluation, member): a due batch finds its states
        # without looking at the others
        self.tier_states: IndexedTable[tuple[str, str], TierState] = IndexedTable(_due_key)
        # (program_id, member_id, period_start) -> metric units
        self.tier_buckets: dict[tuple[str, str, dt.datetime], int] = {}
        self.member_buckets: dict[tuple[str, str], KeptSet[dt.datetime]] = {}
        self.tier_history: dict[tuple[str, str], list[TierChange]] = {}
        # (program_id, member_id, evaluation instant) -> notice; indexed by (program,
        # evaluation instant, member) for the notices' due work
        self.tier_notices: IndexedTable[tuple[str, str, dt.datetime], TierNotice] = \
            IndexedTable(_notice_key)


class MemoryTierStore:
    """The tier states and their history of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._tables = tables  # (a due evaluation appends its events to the outbox's)
        self._t = tables.of(TierTables)
        self._keys = tables.of(MemberKeys)

    def get_tier_state(self, member_id: str) -> TierState | None:
        return self._t.tier_states.get((self._uow.program_id, member_id))

    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        t, program_id = self._t, self._uow.program_id
        return sum(t.tier_buckets[(program_id, member_id, period)]
                   for period in t.member_buckets.get((program_id, member_id), ())
                   if start <= period and (end is None or period < end))

    def get_tier_states(self, member_ids: Sequence[str]) -> dict[str, TierState]:
        program_id = self._uow.program_id
        found = {}
        for member_id in member_ids:
            state = self._t.tier_states.get((program_id, member_id))
            if state is not None:
                found[member_id] = state
        return found

    def tier_buckets(self, member_ids: Sequence[str]) -> dict[str, dict[dt.datetime, int]]:
        t, program_id = self._t, self._uow.program_id
        found = {}
        for member_id in member_ids:
            periods = t.member_buckets.get((program_id, member_id))
            if periods:
                found[member_id] = {p: t.tier_buckets[(program_id, member_id, p)]
                                    for p in periods}
        return found

    def tier_history(self, member_id: str) -> list[TierChange]:
        return list(self._t.tier_history.get((self._uow.program_id, member_id), ()))

    def tier_due(self, at: dt.datetime, *, by_anchor: bool) -> list[
            tuple[dt.datetime, dt.date | None]]:
        program_id, states = self._uow.program_id, self._t.tier_states
        found: set[tuple[dt.datetime, dt.date | None]] = set()
        for p, due, member_id in states.index.after((program_id,)):
            if p != program_id or due > at:
                break
            found.add((due, states[(p, member_id)].anchor if by_anchor else None))
        return sorted(found, key=lambda pair: (pair[0], pair[1] or dt.date.min))

    def _waiting(self, job: TierJob, *, noticed: bool) -> list[TierState]:
        """The states of ``job``'s batch: read from the due index, from ``job.after``
        on, so a batch looks at its own states only (and those of other anchors due at
        the same instant, or noticed already)."""
        by_anchor = job.policy.window.kind is WindowKind.ANNIVERSARY_YEAR
        program_id, states = self._uow.program_id, self._t.tier_states
        low = (program_id, job.at) if job.after is None else (program_id, job.at, job.after)
        waiting: list[TierState] = []
        for p, due, member_id in states.index.after(low):
            if p != program_id or due != job.at or len(waiting) >= job.limit \
                    or (job.upto is not None and member_id > job.upto):
                break
            s = states[(p, member_id)]
            if (not by_anchor or s.anchor == job.anchor) \
                    and (not noticed or s.noticed_for != job.at):
                waiting.append(s)
        return waiting

    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        waiting = self._waiting(attrs.evolve(job, upto=None), noticed=noticed)
        return waiting[-1].member_id if waiting else None

    def evaluate_tiers(self, job: TierJob) -> tuple[int, list[TierChanged]]:
        done, moved = self._evaluate(job)
        return done, [TierChanged.of(change, state) for change, state, _ in moved]

    def evaluate_tiers_recorded(self, job: TierJob, outbox: TierOutbox
                                ) -> tuple[int, int] | None:
        done, moved = self._evaluate(job)
        if moved:  # each line's tier.changed, kept as the outbox's write keeps it
            at = job.at
            # the type's code, the write's instant and the evaluation's worked out once
            make, occurred = KeptEvents(outbox.type, outbox.version, outbox.recorded_at), \
                micros(at)
            payloads = due_events.TierPayloads(outbox)
            texts: dict[dt.datetime | None, str | None] = {None: None}
            kept: list[tuple[str, KeptEvent]] = []
            for id_, (change, state, before) in zip(outbox.new_ids(len(moved)), moved,
                                                    strict=True):
                protected = state.protected_until
                if protected is not None and protected <= at:
                    protected = None  # run out: protects nothing (TierChanged.of)
                text = texts.get(protected, _UNSEEN)
                if text is _UNSEEN:
                    assert protected is not None
                    text = texts[protected] = protected.astimezone(dt.UTC).isoformat()
                change_of = (before, state.rank, change.metric, text)
                data = payloads.packed(*change_of)
                payload = (JSONText.of(payloads.payload(*change_of)) if data is None
                           else JSONText.packed(data))
                member_id = change.member_id
                kept.append((member_id, make(id_, member_id.encode(), occurred, payload)))
            MemoryOutboxStore(self._uow, self._tables).append_kept(kept)
        return done, len(moved)

    def _evaluate(self, job: TierJob
                  ) -> tuple[int, list[tuple[TierChange, TierState, int]]]:
        """Evaluate the batch of ``job`` (:func:`loyaltykit._tiers.evaluate` with the
        job's calendar, worked out once for the batch as the SQL store's is, and one
        copy of each state): write the states and the history lines; return how many
        states were evaluated and each line with the state after it and the rank
        before it."""
        policy = job.policy
        names = [t.name for t in policy.tiers]
        at, program_id, tz = job.at, self._uow.program_id, job.time_zone
        waiting = self._waiting(job, noticed=False)
        # one undo-log entry per table for the batch, not one per member
        states: list[tuple[tuple[str, str], TierState]] = []
        history: list[tuple[tuple[str, str], TierChange]] = []
        moved: list[tuple[TierChange, TierState, int]] = []
        metric = self.tier_metric
        for state in waiting:
            value = metric(state.member_id, state.window_start, at)
            after, reason = evaluate(policy, state, value, tz, job=job,
                                     version=state.version + 1)
            key = (program_id, state.member_id)
            states.append((key, after))
            if reason is not None:
                change = TierChange(
                    member_id=state.member_id, at=at, from_tier=names[state.rank],
                    to_tier=names[after.rank], reason=reason, metric=value,
                    recorded_at=job.recorded_at)
                history.append((key, change))
                moved.append((change, after, state.rank))
        self._uow.put_many(self._t.tier_states, states)
        self._uow.append_many(self._t.tier_history, history)
        return len(waiting), moved

    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        policy = job.policy
        names = [t.name for t in policy.tiers]
        thresholds = policy.thresholds
        waiting = self._waiting(job, noticed=True)
        # one undo-log entry per table for the batch, one copy per state
        notices: list[tuple[tuple[str, str, dt.datetime], TierNotice]] = []
        states: list[tuple[tuple[str, str], TierState]] = []
        for state in waiting:
            value = self.tier_metric(state.member_id, state.window_start, job.at)
            rank = would_be(policy, state, value)
            key = (self._uow.program_id, state.member_id)
            if rank < state.rank:
                notices.append(((*key, job.at), TierNotice(
                    member_id=state.member_id, evaluation_at=job.at,
                    tier=names[state.rank], would_be=names[rank], metric=value,
                    needed=thresholds[state.rank] - value, created_at=job.recorded_at)))
            states.append((key, evolve(state, noticed_for=job.at,
                                       version=state.version + 1)))
        self._uow.put_many(self._t.tier_notices, notices)
        self._uow.put_many(self._t.tier_states, states)
        return len(waiting), len(notices)

    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        found = [n for (program_id, _, _), n in self._t.tier_notices.items()
                 if program_id == self._uow.program_id
                 and (since is None or n.created_at >= since)]
        found.sort(key=lambda n: (n.created_at, n.evaluation_at, n.member_id))
        return found[:limit]

    def upcoming_tier_notices(self, after: dt.datetime, *,
                              cursor: tuple[dt.datetime, str] | None, limit: int
                              ) -> list[TierNotice]:
        program_id, notices = self._uow.program_id, self._t.tier_notices
        low = (program_id, after) if cursor is None or cursor[0] < after \
            else (program_id, *cursor)
        found: list[TierNotice] = []
        for p, at, member_id in notices.index.after(low):
            if p != program_id or len(found) >= limit:
                break
            if at > after:
                found.append(notices[(p, member_id, at)])
        return found

    def write(self, changes: TierChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        for member_id in changes.new_tier_states:
            if (program_id, member_id) in t.tier_states:
                raise DuplicateKey("tier state already kept", member_id=member_id)
        for member_id, tier_state in changes.tier_states.items():
            key = self._keys.shared((program_id, member_id))
            old_state = t.tier_states.get(key)
            version = 0 if old_state is None else old_state.version + 1
            # the key names the member (the state's own member_id is not read)
            uow.put(t.tier_states, key, attrs.evolve(
                tier_state, member_id=member_id,
                version=version + changes.rewrites.get(member_id, 0)))
        for (member_id, period), amount in changes.tier_buckets.items():
            bucket = (program_id, member_id, period)
            uow.put(t.tier_buckets, bucket, t.tier_buckets.get(bucket, 0) + amount)
            uow.track(t.member_buckets, self._keys.shared((program_id, member_id)), period,
                      True)
        for change in changes.tier_history:
            uow.append(t.tier_history, self._keys.shared((program_id, change.member_id)),
                       change)
