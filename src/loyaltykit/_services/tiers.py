"""The tiers' service: tier status, history and progress, manual tiers, evaluations.

Tiers react to what other capabilities write by subscribing to their domain events:
a new member starts on the base tier (:class:`~loyaltykit._events.MemberEnrolled`);
points posted (:class:`~loyaltykit._events.PointsPosted`) or orders recorded and
returned (:class:`~loyaltykit._events.OrderRecorded`,
:class:`~loyaltykit._events.OrderReturned`) add to the metric. The activity of one
write is gathered and applied once, just before commit: the member's due evaluations
first, then the metric's bucket, then an upgrade or a revert. Due work evaluates the
windows that ended, set-based, batch by batch.

Every line appended to a member's tier history is also raised as a
:class:`~loyaltykit._tiers.TierChanged` domain event in the same unit of work (the
outbox records it as ``tier.changed``: :mod:`loyaltykit._services.tier_events`).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import cast

import attrs

from loyaltykit._calendar import local_date
from loyaltykit._collector import collector_paused
from loyaltykit._errors import InvalidInput, InvalidProgram, MemberNotFound, StorageError, shown
from loyaltykit._events import (
    MemberEnrolled,
    OrderRecorded,
    OrderReturned,
    PointsPosted,
)
from loyaltykit._model import Account, Member
from loyaltykit._pipeline import EventBus, Work
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._services.preload import member_reads
from loyaltykit._services.tier_events import TierEvents
from loyaltykit._tiers import (
    TierChange,
    TierChanged,
    TierJob,
    TierMetric,
    TierNotice,
    TierPolicy,
    TierProgress,
    TierState,
    TierStatus,
    WindowKind,
    catch_up,
    job_for,
    new_state,
    on_activity,
    spend_units,
    would_be,
)
from loyaltykit._validate import check_instant, check_member_id, check_reason
from loyaltykit._values import check_key
from loyaltykit.storage import TierChanges, UnitOfWork
from loyaltykit.storage.tier_due_set import TierOutboxStore

__all__ = ["TierService"]

_instant = operator.itemgetter(0)  # of an act: (business instant, delta)


@attrs.define
class _Pending:
    """What one write did that tiers must follow, gathered until just before commit."""

    members: list[Member] = attrs.field(factory=list)
    #: metric deltas by member: (business instant, delta), in the order they came
    acts: dict[str, list[tuple[dt.datetime, int]]] = attrs.field(factory=dict)
    #: tier states as stored, by member, once read in this write (pricing reads a
    #: member's state; the step before commit needs the same row)
    read: dict[str, TierState | None] = attrs.field(factory=dict)


class TierService:
    """Tiers of one program (see the module docstring); ``loyalty.tiers``."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        # what due work's evaluations hand a store that records their events itself
        self._events = TierEvents(c.program)
        policy = c.program.tiers
        # read per write (a history import steps a member's state per order): once here
        self._names = [t.name for t in policy.tiers] if policy is not None else []
        self._wallet = (policy.wallet or c.program.default_wallet) if policy is not None else ""

    def subscribe(self, bus: EventBus) -> None:
        """Follow enrolments and the metric's activity (a program without tiers: none)."""
        policy = self.program.tiers
        if policy is None:
            return
        bus.subscribe(MemberEnrolled, self._on_enrolled)
        if policy.metric is TierMetric.POINTS:
            bus.subscribe(PointsPosted, self._on_posted)
        else:
            bus.subscribe(OrderRecorded, self._on_order)
            bus.subscribe(OrderReturned, self._on_return)

    # -- subscribers ------------------------------------------------------------------------

    @staticmethod
    def _pending(work: Work) -> _Pending:
        found = work.scratch.get("tiers")
        if found is None:
            found = work.scratch["tiers"] = _Pending()
        return cast(_Pending, found)  # (only this service keeps anything under "tiers")

    def _act(self, work: Work, member_id: str, at: dt.datetime, delta: int) -> None:
        if delta:
            acts = self._pending(work).acts
            found = acts.get(member_id)
            if found is None:
                acts[member_id] = [(at, delta)]
                work.before_commit(self, self._step)  # (once: the first act registers it)
            else:
                found.append((at, delta))

    def _on_enrolled(self, work: Work, event: MemberEnrolled) -> None:
        members = self._pending(work).members
        if not members:  # (the first: a history import enrols a batch's members at once)
            work.before_commit(self, self._step)
        members.append(event.member)

    def _on_posted(self, work: Work, event: PointsPosted) -> None:
        tx = event.transaction
        if tx.wallet == self._wallet:
            self._act(work, tx.member_id, tx.occurred_at, -tx.amount(Account.ISSUED))

    def _units(self, units: int, orders: int) -> int:
        return units if self._tiers().metric is TierMetric.SPEND else orders

    def _on_order(self, work: Work, event: OrderRecorded) -> None:
        self._act(work, event.record.member_id, event.record.placed_at,
                  self._units(spend_units(event.order.net_goods), 1))

    def _on_return(self, work: Work, event: OrderReturned) -> None:
        units = spend_units(event.after.net_goods) - spend_units(event.before.net_goods)
        self._act(work, event.record.member_id, event.at,
                  self._units(units, -1 if event.cancelled else 0))

    def tier_of(self, uow: UnitOfWork, member_id: str, at: dt.datetime,
                work: Work | None) -> tuple[str, Decimal | None]:
        """(tier name, earn multiplier) of the member at ``at``, for pricing (the stored
        state is kept in ``work`` for the step before commit)."""
        policy = self._tiers()
        reads = member_reads(work.scratch, member_id) if work is not None else None
        if reads is not None and reads.tiers:  # a batch's reads (per order of an import)
            assert work is not None
            state = self._pending(work).read[member_id] = reads.tier_state
            due = state.next_evaluation if state is not None else None
            if state is not None and due is not None and due <= at:  # evaluations first
                state, _ = catch_up(policy, state, at, self.program.time_zone,
                                    reads.tier_metric)
        else:
            state, _ = self._tier_state(
                uow, member_id, at, self._pending(work).read if work is not None else None)
        tier = policy.tiers[state.rank if state is not None else 0]
        return tier.name, tier.benefits.earn_multiplier

    def _tiers(self) -> TierPolicy:
        policy = self.program.tiers
        if policy is None:
            raise InvalidInput("the program has no tiers", program_id=self.program.id)
        return policy

    def _anchor(self, enrolled_at: dt.datetime) -> dt.date:
        return local_date(enrolled_at, self.program.time_zone)

    def _evaluation_changes(
        self, member_id: str,
        evaluations: Iterable[tuple[dt.datetime, int, int, int, TierState]],
        recorded_at: dt.datetime | None,
    ) -> list[TierChange]:
        """History lines of the evaluations :func:`catch_up` applied."""
        tiers = self._tiers().tiers
        return [TierChange(member_id=member_id, at=when, from_tier=tiers[before].name,
                           to_tier=tiers[after].name, reason="evaluation", metric=value,
                           recorded_at=recorded_at)
                for when, before, after, value, _ in evaluations]

    @staticmethod
    def _changed(work: Work, changes: TierChanges, change: TierChange, state: TierState
                 ) -> None:
        """Append ``change`` (which left the member in ``state``) to the history and
        raise it."""
        changes.tier_history.append(change)
        work.publish(TierChanged.of(change, state))

    def _caught_up(self, work: Work, changes: TierChanges, member_id: str,
                   evaluations: list[tuple[dt.datetime, int, int, int, TierState]]) -> None:
        """Append and raise the changes of the evaluations :func:`catch_up` applied."""
        lines = self._evaluation_changes(member_id, evaluations, work.recorded_at)
        for line, evaluation in zip(lines, evaluations, strict=True):
            self._changed(work, changes, line, evaluation[4])

    def _step(self, work: Work) -> None:
        """Keep tier states up to date with what this write did: new members start on
        the base tier; activity that changes the metric is added to its period's
        bucket after the member's due evaluations, then upgrades or reverts."""
        policy = self._tiers()
        pending = self._pending(work)
        # taken, so activity gathered after this step (a later hook's) is not counted twice
        members, acts = pending.members, pending.acts
        pending.members, pending.acts = [], {}
        uow = work.uow
        changes = work.part(TierChanges)
        tz = self.program.time_zone
        names = self._names
        window = policy.window
        states, created = changes.tier_states, changes.new_tier_states
        for member in members:
            member_id, enrolled_at = member.member_id, member.enrolled_at
            states[member_id] = new_state(policy, member_id, enrolled_at, tz,
                                          self._anchor(enrolled_at))
            created.add(member_id)
        for member_id, items in acts.items():
            if len(items) > 1:
                items.sort(key=_instant)
            state = changes.tier_states.get(member_id)
            stored = state is None
            if state is None:
                if member_id in pending.read:
                    state = pending.read[member_id]
                else:
                    state = uow.tiers.get_tier_state(member_id)
                if state is None:  # enrolled before the program had tiers
                    found = uow.ledger.get_member(member_id)
                    assert found is not None  # the ledger step found its accounts
                    state = new_state(policy, member_id, items[0][0], tz,
                                      self._anchor(found.enrolled_at))
                    changes.new_tier_states.add(member_id)
                    stored = False
            added: dict[dt.datetime, int] = {}  # this write's buckets of the member
            reads = member_reads(work.scratch, member_id)
            read_metric = (reads.tier_metric if reads is not None and reads.tiers
                           else functools.partial(uow.tiers.tier_metric, member_id))

            def metric_of(start: dt.datetime, end: dt.datetime | None,
                          stored: bool = stored, added: dict[dt.datetime, int] = added,
                          read_metric: Callable[[dt.datetime, dt.datetime | None], int]
                          = read_metric) -> int:
                value = read_metric(start, end) if stored else 0
                for p, v in added.items():  # (mostly one: no generator to sum)
                    if start <= p and (end is None or p < end):
                        value += v
                return value

            for at, delta in items:
                due = state.next_evaluation
                if due is not None and due <= at:  # evaluations due first (none: no call)
                    state, evaluations = catch_up(policy, state, at, tz, metric_of)
                    if evaluations:
                        self._caught_up(work, changes, member_id, evaluations)
                period = window.period_start(at, tz, state.anchor)
                added[period] = added.get(period, 0) + delta
                if period < state.window_start:
                    continue  # dated in a window already evaluated: counted there only
                value = metric_of(state.window_start, state.next_evaluation)
                if policy.qualified(value) == state.rank:
                    continue  # neither an upgrade nor a revert (most orders)
                before = state.rank
                state, reason = on_activity(policy, state, value, at, tz)
                if reason is not None:
                    self._changed(work, changes, TierChange(
                        member_id=member_id, at=at, from_tier=names[before],
                        to_tier=names[state.rank], reason=reason, metric=value,
                        recorded_at=work.recorded_at), state)
            buckets = changes.tier_buckets
            for period, delta in added.items():
                key = (member_id, period)
                buckets[key] = buckets.get(key, 0) + delta
            changes.tier_states[member_id] = state

    def _tier_state(self, uow: UnitOfWork, member_id: str, at: dt.datetime,
                    tier_read: dict[str, TierState | None] | None = None,
                    ) -> tuple[TierState | None,
                               list[tuple[dt.datetime, int, int, int, TierState]]]:
        """The member's tier state with the evaluations due by ``at`` applied (not
        written), and those evaluations' changes. The stored state is kept in
        ``tier_read`` when given."""
        policy = self._tiers()
        state = uow.tiers.get_tier_state(member_id)
        metric = functools.partial(uow.tiers.tier_metric, member_id)
        if tier_read is not None:
            tier_read[member_id] = state
        if state is None:
            return None, []
        return catch_up(policy, state, at, self.program.time_zone, metric)

    def _read_tier(self, member_id: str) -> tuple[TierPolicy, dt.datetime, TierState,
                                                  list[TierChange], int]:
        """One read of the member's tier as of now: the policy, now, the state (due
        evaluations applied; a member without one is on the base tier), the history
        (with those evaluations) and the metric of the current window."""
        member_id = check_member_id(member_id)
        policy = self._tiers()
        now = self.c.now()
        with self.c.read() as uow:
            member = uow.ledger.get_member(member_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            state, virtual = self._tier_state(uow, member_id, now)
            history = uow.tiers.tier_history(member_id)
            if state is None:  # enrolled before the program had tiers, nothing since
                state, value = new_state(policy, member_id, now, self.program.time_zone,
                                         self._anchor(member.enrolled_at)), 0
            else:
                value = uow.tiers.tier_metric(member_id, state.window_start, state.next_evaluation)
        history += self._evaluation_changes(member_id, virtual, None)
        return policy, now, state, history, value

    def status(self, member_id: str) -> TierStatus:
        """The member's tier now, with its benefits and how it is held.

        Evaluations due by now count even before due work has written them."""
        policy, now, state, history, _ = self._read_tier(member_id)
        tier = policy.tiers[state.rank]
        since = next((c.at for c in reversed(history) if c.to_tier == tier.name), None)
        manual = (state.manual if state.manual is not None
                  and (state.manual_until is None or now < state.manual_until) else None)
        return TierStatus(
            member_id=member_id, tier=tier.name, benefits=tier.benefits, since=since,
            protected_until=state.protected_until, next_evaluation=state.next_evaluation,
            lifetime_floor=policy.tiers[state.floor].name if state.floor else None,
            manual=policy.tiers[manual].name if manual is not None else None,
            manual_until=state.manual_until if manual is not None else None)

    def as_of(self, member_id: str, at: dt.datetime) -> str:
        """The name of the tier the member held at the instant ``at`` (business
        time), from its tier history."""
        when = self.c.instant(at)
        policy, _, _, history, _ = self._read_tier(member_id)
        held = policy.tiers[0].name
        for change in sorted(history, key=lambda c: c.at):
            if change.at <= when:
                held = change.to_tier
        return held

    def history(self, member_id: str) -> list[TierChange]:
        """Every change of the member's tier, oldest first, with its reason (evaluations
        due by now included)."""
        return self._read_tier(member_id)[3]

    def progress(self, member_id: str) -> TierProgress:
        """What the member still needs, and by when, to reach the next tier; and what
        keeps the current one at the next evaluation."""
        policy, _, state, _, value = self._read_tier(member_id)
        currency = self.program.currency
        rank = state.rank
        thresholds = policy.thresholds
        nxt = rank + 1 if rank + 1 < len(policy.tiers) else None
        keeps = state.next_evaluation is None or would_be(policy, state, value) >= rank
        return TierProgress(
            member_id=member_id, tier=policy.tiers[rank].name,
            next_tier=policy.tiers[nxt].name if nxt is not None else None,
            metric=policy.units_as(value, currency),
            needed=(policy.units_as(max(thresholds[nxt] - value, 0), currency)
                    if nxt is not None else None),
            deadline=state.next_evaluation, window_start=state.window_start,
            keeps_tier=keeps,
            needed_to_keep=policy.units_as(max(thresholds[rank] - value, 0), currency))

    def assign(
        self,
        member_id: str,
        tier: str,
        *,
        key: str,
        reason: str,
        until: dt.datetime | None = None,
        at: dt.datetime | None = None,
    ) -> TierStatus:
        """Put the member on ``tier`` by hand (a reason is required), until ``until``
        (None: for good). While the assignment holds, no evaluation or revert takes
        the member below it; reaching a higher tier still upgrades. Assigning again
        replaces the assignment. An assignment below a lifetime tier the member has
        reached leaves the member on the lifetime tier."""
        member_id = check_member_id(member_id)
        policy = self._tiers()
        if not isinstance(tier, str):
            raise InvalidInput("tier must be a tier name", tier=shown(tier))
        try:
            rank = policy.rank(tier)
        except InvalidProgram:
            raise InvalidInput("no such tier", tier=tier,
                               tiers=[t.name for t in policy.tiers]) from None
        key = check_key(key)
        reason = check_reason(reason, required=True)
        when = self.c.instant(at)
        end = None
        if until is not None:
            end = check_instant(until, "until")
            if end <= when:
                raise InvalidInput("until must be later than the assignment",
                                   until=end.isoformat(), at=when.isoformat())
        request = self.c.request("assign_tier", at, when, member_id=member_id, tier=tier,
                                reason=reason, until=end.isoformat() if end else None)
        names = [t.name for t in policy.tiers]

        def apply(work: Work) -> TierStatus:
            uow, ledger, changes = work.uow, work.ledger, work.part(TierChanges)
            wallet = policy.wallet or self.program.default_wallet
            self._ledger.books(uow, ledger, wallet, [member_id], need_lots=False)
            state, evaluations = self._tier_state(uow, member_id, when)
            if state is None:
                member = uow.ledger.get_member(member_id)
                assert member is not None
                state = new_state(policy, member_id, when, self.program.time_zone,
                                  self._anchor(member.enrolled_at))
                changes.new_tier_states.add(member_id)
            self._caught_up(work, changes, member_id, evaluations)
            held = max(rank, state.floor)  # never below a lifetime tier reached
            line = TierChange(
                member_id=member_id, at=when, from_tier=names[state.rank],
                to_tier=names[held], reason="manual", metric=0, note=reason,
                recorded_at=work.recorded_at)
            state = attrs.evolve(state, rank=held, manual=rank, manual_until=end,
                                 manual_reason=reason, attained_at=when)
            self._changed(work, changes, line, state)
            changes.tier_states[member_id] = state
            return TierStatus(
                member_id=member_id, tier=names[held], benefits=policy.tiers[held].benefits,
                since=when, protected_until=state.protected_until,
                next_evaluation=state.next_evaluation,
                lifetime_floor=names[state.floor] if state.floor else None,
                manual=tier, manual_until=end)

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def notices(self, *, since: dt.datetime | None = None,
                limit: int = 1000) -> list[TierNotice]:
        """"Will downgrade" notices recorded by due work (created at or after
        ``since``), oldest first: send them, then ask again with a later ``since``."""
        self._tiers()
        if since is not None:
            since = check_instant(since, "since")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidInput("limit must be an int in 1..100000", limit=limit)
        with self.c.read() as uow:
            return uow.tiers.tier_notices(since=since, limit=limit)

    def due(self, when: dt.datetime, batch_size: int, workers: int = 1) -> dict[str, int]:
        """Evaluate every tier window ended by ``when`` and record downgrade notices
        for evaluations within ``notice_days``: set-based, batch by batch, each batch
        its own unit of work (so it resumes, and a second run finds nothing); with
        ``workers`` > 1, the batches' member ranges are read first and run at once."""
        policy = self.program.tiers
        if policy is None or policy.window.kind is WindowKind.LIFETIME:
            return {}
        tz = self.program.time_zone
        by_anchor = policy.window.kind is WindowKind.ANNIVERSARY_YEAR
        totals = {"tier_evaluations": 0, "tier_changes": 0, "tier_notices": 0}
        parallel = workers > 1 and self.c.storage.concurrent

        def count(done: int, changed: int, notices: bool) -> None:
            if notices:
                totals["tier_notices"] += changed
            else:
                totals["tier_evaluations"] += done
                totals["tier_changes"] += changed

        def run(at: dt.datetime, anchor: dt.date | None, *, notices: bool) -> None:
            job = job_for(policy, tz, at, anchor, self.c.now(), batch_size)
            if parallel:  # (a state a concurrent write left waiting: the next round)
                jobs = [attrs.evolve(job, after=after, upto=upto)
                        for after, upto in self._ranges(job, notices)]
                with ThreadPoolExecutor(workers, thread_name_prefix="loyaltykit-due") as pool:
                    for done, changed in pool.map(
                            lambda j: self._batch(j, notices=notices), jobs):
                        count(done, changed, notices)
                return
            while True:  # batch by batch until one comes back short
                done, changed = self._batch(job, notices=notices)
                count(done, changed, notices)
                if done < batch_size:
                    return

        while True:  # an evaluation moves states to the next one, which may be due too
            with self.c.read() as uow:
                due = uow.tiers.tier_due(when, by_anchor=by_anchor)
            if not due:
                break
            before = totals["tier_evaluations"]
            for at, anchor in due:
                run(at, anchor, notices=False)
            if totals["tier_evaluations"] == before:  # a store that moved nothing: stop
                raise StorageError("tier due work evaluated none of the states due",
                                   due=[str(at) for at, _ in due])
        if policy.notice_days:
            horizon = when + dt.timedelta(days=policy.notice_days)
            with self.c.read() as uow:
                upcoming = uow.tiers.tier_due(horizon, by_anchor=by_anchor)
            for at, anchor in upcoming:
                run(at, anchor, notices=True)
        return totals

    def _ranges(self, job: TierJob, notices: bool) -> list[tuple[str | None, str]]:
        """The member-id ranges ``(after, upto]`` of the batches of ``job``, in order."""
        ranges: list[tuple[str | None, str]] = []
        after: str | None = None
        with self.c.read() as uow:
            while (end := uow.tiers.tier_batch_end(attrs.evolve(job, after=after),
                                             noticed=notices)) is not None:
                if after is not None and end <= after:
                    raise StorageError("tier_batch_end did not move past its start",
                                       after=after, end=end)
                ranges.append((after, end))
                after = end
        return ranges

    @collector_paused()  # a batch's states and events live until it writes
    def _batch(self, job: TierJob, *, notices: bool) -> tuple[int, int]:
        def apply(work: Work) -> tuple[int, int]:
            store = work.uow.tiers
            if notices:
                return store.record_tier_notices(job)
            # where the outbox is TierChanged's only subscriber (the facade maps it),
            # a store that can appends its events itself, with no object per member
            # (most of a due batch's Python was raising and mapping one TierChanged
            # per member); any other subscriber gets every change raised, as before
            if self.c.bus.only_recorded(TierChanged) and isinstance(store, TierOutboxStore):
                outbox = self._events.outbox(job, work, self.c.new_ids)
                if outbox is not None:
                    found = store.evaluate_tiers_recorded(job, outbox)
                    if found is not None:
                        return found
            done, changed = store.evaluate_tiers(job)
            for event in changed:  # the changes the batch appended to the history
                work.publish(event)
            return done, len(changed)

        return self.c.pipeline.batch(job.at, apply, retry=True, what="tier due work")
