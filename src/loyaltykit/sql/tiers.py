"""The tiers' store in SQL: tier states, metric buckets, history and notices, and the
set-based tier evaluation (:func:`_tier_sql`), the one part of the backend whose SQL
differs between PostgreSQL and SQLite beyond an upsert."""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from loyaltykit._errors import StorageError
from loyaltykit._tiers import (
    Downgrade,
    TierChange,
    TierChanged,
    TierJob,
    TierNotice,
    TierPolicy,
    TierState,
    WindowKind,
)
from loyaltykit._values import new_id
from loyaltykit.sql import tier_events
from loyaltykit.sql._batch_cache import batch_cache
from loyaltykit.sql._errors import translated
from loyaltykit.sql._many import execute_rows
from loyaltykit.sql._pg_probes import key_sets, probed
from loyaltykit.sql._shared import Store, supported_dialect, upserts_for
from loyaltykit.sql.schema import tier_buckets, tier_history, tier_notices, tier_states
from loyaltykit.storage.tier_due_set import TierOutbox
from loyaltykit.storage.tiers import TierChanges

__all__ = ["SQLTierStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")

_TIER_STATE_COLS = (  # the fields of TierState, in order
    tier_states.c.member_id,
    tier_states.c.rank,
    tier_states.c.attained_at,
    tier_states.c.protected_until,
    tier_states.c.window_start,
    tier_states.c.next_evaluation,
    tier_states.c.carried,
    tier_states.c.carried_until,
    tier_states.c.carried_floor,
    tier_states.c.floor,
    tier_states.c.anchor,
    tier_states.c.manual,
    tier_states.c.manual_until,
    tier_states.c.manual_reason,
    tier_states.c.noticed_for,
    tier_states.c.version,
)
_READ_TIER_STATE = sa.select(*_TIER_STATE_COLS).where(
    tier_states.c.program_id == _p, tier_states.c.member_id == _m)
_SEL_TIER_STATE: sa.Executable = _READ_TIER_STATE.with_for_update()
_ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_READ_TIER_STATES = sa.select(*_TIER_STATE_COLS).where(
    tier_states.c.program_id == _p, tier_states.c.member_id.in_(_ids)
).order_by(tier_states.c.member_id)
_SEL_TIER_STATES: sa.Executable = _READ_TIER_STATES.with_for_update()
_tier_buckets = sa.select(
    tier_buckets.c.member_id, tier_buckets.c.period_start, tier_buckets.c.value
).where(tier_buckets.c.program_id == _p)
_SEL_TIER_BUCKETS: sa.Executable = _tier_buckets.where(tier_buckets.c.member_id.in_(_ids))
# PostgreSQL: the members as one JSON array, each probed by its key whatever the
# statistics (:mod:`loyaltykit.sql._pg_probes`), the states locked in member order
_tier_states = sa.select(*_TIER_STATE_COLS).where(tier_states.c.program_id == _p)
_READ_TIER_STATES_PG: sa.Executable = probed(_tier_states, tier_states.c.member_id)
_SEL_TIER_STATES_PG: sa.Executable = probed(_tier_states.with_for_update(),
                                            tier_states.c.member_id)
_SEL_TIER_BUCKETS_PG: sa.Executable = probed(_tier_buckets, tier_buckets.c.member_id)
_INS_TIER_STATE = tier_states.insert()
# the version counts writes of the row: one more than stored, whatever the caller read
_UPD_TIER_STATE = (
    tier_states.update()
    .where(tier_states.c.program_id == sa.bindparam("k_program_id"),
           tier_states.c.member_id == sa.bindparam("k_member_id"))
    .values(version=tier_states.c.version + 1)
)
# the same for a state written by several merged writes (a history import's batch)
_UPD_TIER_STATE_REWRITTEN = _UPD_TIER_STATE.values(
    version=tier_states.c.version + 1 + sa.bindparam("k_rewrites", type_=sa.Integer()))

_TS_TYPE = tier_states.c.window_start.type
_tier_metric = (
    sa.select(sa.func.coalesce(sa.func.sum(tier_buckets.c.value), 0))
    .where(tier_buckets.c.program_id == _p, tier_buckets.c.member_id == _m,
           tier_buckets.c.period_start >= sa.bindparam("start", type_=_TS_TYPE))
)
_SEL_TIER_METRIC_FROM: sa.Executable = _tier_metric
_SEL_TIER_METRIC: sa.Executable = _tier_metric.where(
    tier_buckets.c.period_start < sa.bindparam("end", type_=_TS_TYPE))

_SEL_TIER_HISTORY: sa.Executable = (
    sa.select(tier_history.c.member_id, tier_history.c.at, tier_history.c.from_tier,
              tier_history.c.to_tier, tier_history.c.reason, tier_history.c.metric,
              tier_history.c.note, tier_history.c.recorded_at)
    .where(tier_history.c.program_id == _p, tier_history.c.member_id == _m)
    .order_by(tier_history.c.id)
)
_INS_TIER_HISTORY = tier_history.insert()

_due_at = tier_states.c.next_evaluation <= sa.bindparam("at", type_=_TS_TYPE)
_SEL_TIER_DUE: sa.Executable = (
    sa.select(tier_states.c.next_evaluation).distinct()
    .where(tier_states.c.program_id == _p, _due_at)
    .order_by(tier_states.c.next_evaluation)
)
_SEL_TIER_DUE_BY_ANCHOR: sa.Executable = (
    sa.select(tier_states.c.next_evaluation, tier_states.c.anchor).distinct()
    .where(tier_states.c.program_id == _p, _due_at)
    .order_by(tier_states.c.next_evaluation, tier_states.c.anchor)
)

_tier_notices = (
    sa.select(tier_notices.c.member_id, tier_notices.c.evaluation_at, tier_notices.c.tier,
              tier_notices.c.would_be, tier_notices.c.metric, tier_notices.c.needed,
              tier_notices.c.created_at)
    .where(tier_notices.c.program_id == _p)
    .order_by(tier_notices.c.created_at, tier_notices.c.evaluation_at,
              tier_notices.c.member_id)
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_TIER_NOTICES: sa.Executable = _tier_notices
_SEL_TIER_NOTICES_SINCE: sa.Executable = _tier_notices.where(
    tier_notices.c.created_at >= sa.bindparam("since", type_=_TS_TYPE))

_upcoming_key = (tier_notices.c.evaluation_at, tier_notices.c.member_id)
_SEL_UPCOMING = (
    _tier_notices.order_by(None)
    .where(tier_notices.c.evaluation_at > sa.bindparam("after", type_=_TS_TYPE))
    .order_by(*_upcoming_key))
_SEL_UPCOMING_AFTER: sa.Executable = _SEL_UPCOMING.where(
    sa.tuple_(*_upcoming_key) > sa.tuple_(sa.bindparam("c_at", type_=_TS_TYPE),
                                          sa.bindparam("c_m")))

# the parameters of a set-based tier run (a TierJob); "j_" keeps them apart from the
# column names SQLAlchemy reserves in INSERT and UPDATE statements
_j_at = sa.bindparam("j_at", type_=_TS_TYPE)
_j_anchor = sa.bindparam("j_anchor", type_=tier_states.c.anchor.type)
_j_next = sa.bindparam("j_next", type_=_TS_TYPE)
_j_window = sa.bindparam("j_window", type_=_TS_TYPE)
_j_protected = sa.bindparam("j_protected", type_=_TS_TYPE)
_j_recorded = sa.bindparam("j_recorded", type_=_TS_TYPE)
_j_limit = sa.bindparam("j_limit", type_=sa.Integer())
_j_last = sa.bindparam("j_last", type_=tier_states.c.member_id.type)
_j_after = sa.bindparam("j_after", type_=tier_states.c.member_id.type)
_j_upto = sa.bindparam("j_upto", type_=tier_states.c.member_id.type)
#: the history lines' ids, drawn by the library: 32 hex digits each, one after the other
#: (line ``n``, from 1, takes the ``n``-th; see :func:`_line_ids`)
_j_hids = sa.bindparam("j_hids", type_=sa.Text())

# PostgreSQL's JIT compiles the evaluation (its cost estimate is high) for longer than
# the compiled code saves, and the default work_mem spills its sorts to disk: both are
# set for the evaluation statement (SET LOCAL, then back) and nothing else
_TIER_SETTINGS = {"jit": "off", "work_mem": "64MB"}
_SET_TIER_SETTINGS: sa.Executable = sa.select(
    *(sa.func.current_setting(name) for name in _TIER_SETTINGS),
    *(sa.func.set_config(name, sa.bindparam(name, type_=sa.Text()), True)
      for name in _TIER_SETTINGS))
_RESET_TIER_SETTINGS: sa.Executable = sa.select(
    *(sa.func.set_config(name, sa.bindparam(name, type_=sa.Text()), True)
      for name in _TIER_SETTINGS))


class _TierSQL(NamedTuple):
    """The statements of one kind of set-based tier run (see :func:`_tier_sql`)."""

    # PostgreSQL: the whole run; SQLite: the history (notice) INSERT (an evaluation's
    # returns the lines it appended: member, from, to, metric)
    run: sa.Executable
    last: sa.Executable  # the highest member id of the next batch (from :j_after)
    # SQLite: the UPDATE moving the batch's states on (an evaluation's returns each
    # state's member and protected_until)
    apply: sa.Executable | None
    # SQLite, an evaluation: ``run`` and ``apply`` returning nothing (their counts),
    # for a batch whose events the store appends itself
    record: sa.Executable | None = None
    # SQLite, a batch given by its end: how many states it holds (one id a state)
    states: sa.Executable | None = None
    move: sa.Executable | None = None


class _Decision(NamedTuple):
    """What :func:`loyaltykit._tiers.evaluate` (``new_rank``, ``protected_until``,
    ``attained_at``, ``floor``) and :func:`~loyaltykit._tiers.would_be` decide for a
    state, as SQL expressions over its columns and its metric."""

    new_rank: sa.ColumnElement[Any]
    protected_until: sa.ColumnElement[Any]
    attained_at: sa.ColumnElement[Any]
    floor: sa.ColumnElement[Any]
    would_be: sa.ColumnElement[Any]


def _decide(policy: TierPolicy, dialect: str, state: Any,
            metric: sa.ColumnElement[Any]) -> _Decision:
    """The decisions for the tier state whose columns are ``state``'s attributes
    (``rank``, ``attained_at``, ``protected_until``, ``floor``, ``manual``,
    ``manual_until``) and whose window's metric is ``metric`` (a column, not a
    subquery: the expressions repeat it), at ``:j_at``, CASE expressions over the
    policy's thresholds."""
    greatest = sa.func.greatest if dialect == "postgresql" else sa.func.max
    # policy.qualified: the highest rank whose threshold the metric reaches
    q: sa.ColumnElement[Any] = sa.case(
        *((metric >= sa.literal(threshold, sa.BigInteger()), sa.literal(rank))
          for rank, threshold in reversed(list(enumerate(policy.thresholds))) if rank),
        else_=sa.literal(0),
    ) if len(policy.thresholds) > 1 else sa.literal(0)
    # floors(): the lifetime floor, and a manual assignment while it holds
    manual = sa.case(
        (sa.and_(state.manual.is_not(None),
                 sa.or_(state.manual_until.is_(None), _j_at < state.manual_until)),
         state.manual),
        else_=sa.literal(0),
    )
    rank = state.rank
    dropped = greatest(q, rank - 1) if policy.downgrade is Downgrade.ONE_LEVEL else q
    protected = sa.and_(state.protected_until.is_not(None), _j_at < state.protected_until)
    new_rank = greatest(sa.case((q >= rank, q), (protected, rank), else_=dropped),
                        state.floor, manual)
    # a tier the window reaches is protected until grace_periods after :j_at
    until = sa.case(
        (sa.and_(q >= rank, sa.or_(state.protected_until.is_(None),
                                   _j_protected > state.protected_until)), _j_protected),
        else_=state.protected_until,
    )
    # the lifetime floor: the highest lifetime tier the metric reaches (a manual
    # assignment or a protected tier wins none)
    lifetime = [(q >= sa.literal(r), sa.literal(r)) for r in reversed(policy.lifetime_ranks)]
    floor = (greatest(state.floor, sa.case(*lifetime, else_=sa.literal(0))) if lifetime
             else state.floor)
    attained = sa.case((new_rank > rank, _j_at), else_=state.attained_at)
    would_be = sa.case(
        (sa.or_(q >= rank, protected), greatest(q, rank)),
        else_=greatest(dropped, state.floor, manual),
    )
    return _Decision(new_rank, until, attained, floor, would_be)


# the buckets of the ``lk_tier_states`` row in scope within its window, [window_start,
# :j_at), and the metric they sum to
_IN_WINDOW = sa.and_(
    tier_buckets.c.program_id == tier_states.c.program_id,
    tier_buckets.c.member_id == tier_states.c.member_id,
    tier_buckets.c.period_start >= tier_states.c.window_start,
    tier_buckets.c.period_start < _j_at,
)
_METRIC = sa.cast(sa.func.coalesce(sa.func.sum(tier_buckets.c.value), 0), sa.BigInteger())


@functools.cache
def _tier_sql(policy: TierPolicy, dialect: str, notices: bool, after: bool = False,
              upto: bool = False) -> _TierSQL:
    """The statements of ``evaluate_tiers`` (or, with ``notices``, of
    ``record_tier_notices``) for ``policy`` on ``dialect``; with ``after`` / ``upto``,
    for the member ids in ``(:j_after, :j_upto]`` only.

    A batch is the ``:j_limit`` states waiting for the evaluation at ``:j_at`` with the
    lowest member ids (the due index's order); ``last`` finds the highest of them. For
    each, the metric of ``[window_start, :j_at)`` and what
    :func:`loyaltykit._tiers.evaluate` (or :func:`~loyaltykit._tiers.would_be`) decides
    (:func:`_decide`); the states move on (to the next window, or marked noticed), and a
    history line (a notice) is appended for each state whose tier changes (would drop).

    On PostgreSQL that is one statement, ``run``: the batch and its decisions are a
    materialised CTE, the UPDATE a data-modifying CTE returning the decisions of the
    states it moved, and the INSERT reads those. It returns the states picked and the
    lines recorded (notices: one row of counts; an evaluation: the count of states
    picked on each row of the changes, member, from, to, metric and protected_until,
    or on one row of nulls when nothing changed). The UPDATE moves only states still at
    the version read: a member written concurrently keeps its evaluation for the next
    call.

    On SQLite, whose writers are serialised (``BEGIN IMMEDIATE``) so nothing changes a
    state between the statements of one unit of work, the batch is every waiting state
    up to ``:j_last`` (``last``'s answer, or ``:j_upto``): ``run`` appends the lines of
    the batch's changes from the decisions, then ``apply`` moves the states on, each
    row's decision computed in place from its own metric (a correlated row-value
    subquery).
    """
    s = tier_states
    names = [t.name for t in policy.tiers]
    waiting = [s.c.program_id == _p, s.c.next_evaluation == _j_at]
    if policy.window.kind is WindowKind.ANNIVERSARY_YEAR:
        waiting.append(s.c.anchor == _j_anchor)
    if notices:
        waiting.append(sa.or_(s.c.noticed_for.is_(None), s.c.noticed_for != _j_at))
    if after:
        waiting.append(s.c.member_id > _j_after)
    postgres = dialect == "postgresql"
    ranked = sa.select(s.c.member_id).where(*waiting).order_by(s.c.member_id).limit(_j_limit)
    last = sa.select(sa.func.max(ranked.subquery("r").c.member_id))
    if upto and postgres:
        waiting.append(s.c.member_id <= _j_upto)

    # PostgreSQL: the range bounds the buckets (in the join: a state without buckets
    # in its window is evaluated too) and the states the UPDATE joins, so both are
    # read by their primary key's range; with the states' bounds only,
    # the planner hashed every bucket and every state of the table, each batch (a
    # batch's cost then grew with the program: 0.2 s of 0.25 s at 20,000 members)
    in_range: list[sa.ColumnElement[bool]] = []  # the buckets'
    states_in_range: list[sa.ColumnElement[bool]] = []  # the UPDATE's
    for table in (tier_buckets, s) if postgres else ():
        bounds = in_range if table is tier_buckets else states_in_range
        if after:
            bounds.append(table.c.member_id > _j_after)
        if upto:
            bounds.append(table.c.member_id <= _j_upto)
    # the batch with its metrics: the states joined to their window's buckets, grouped
    # by state (a merge join in member order, rather than a lookup per state); OFFSET 0
    # keeps both engines from merging it into the query above
    batch = (
        sa.select(s.c.program_id, s.c.member_id, s.c.version, s.c.rank, s.c.attained_at,
                  s.c.protected_until, s.c.floor, s.c.manual, s.c.manual_until,
                  _METRIC.label("metric"))
        .select_from(s.outerjoin(tier_buckets, sa.and_(_IN_WINDOW, *in_range)))
        .group_by(s.c.program_id, s.c.member_id)  # the key: the other columns follow
    )
    if postgres:
        batch = batch.where(*waiting).order_by(s.c.member_id).limit(_j_limit)
    else:
        batch = batch.where(*waiting, s.c.member_id <= _j_last)
    w = batch.offset(0).subquery("w")
    decided = _decide(policy, dialect, w.c, w.c.metric)
    to = decided.would_be if notices else decided.new_rank
    d_select = sa.select(w.c.program_id, w.c.member_id, w.c.version, w.c.metric,
                         w.c.rank.label("old_rank"), to.label("new_rank"),
                         decided.attained_at.label("attained_at"),
                         decided.protected_until.label("protected_until"),
                         decided.floor.label("floor"))

    def name_of(rank: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case({i: sa.literal(name) for i, name in enumerate(names)}, value=rank)

    def line_id(member_id: Any) -> Any:
        """A line's id: the next of ``:j_hids`` in member order (one line a state)."""
        n = sa.func.row_number().over(order_by=member_id)
        start = sa.cast(n * 32 - 31, sa.Integer())
        return sa.cast(sa.func.substr(_j_hids, start, 32), tier_history.c.id.type)

    def record(m: Any, source: Any) -> Any:
        """The INSERT of the lines (notices) of the decisions ``m`` from ``source``."""
        if notices:
            threshold_of = sa.case(
                {i: sa.literal(t, sa.BigInteger()) for i, t in enumerate(policy.thresholds)},
                value=m.old_rank)
            insert = (postgresql.insert if postgres else sqlite.insert)(tier_notices)
            stmt: Any = insert.from_select(
                ["program_id", "member_id", "evaluation_at", "tier", "would_be", "metric",
                 "needed", "created_at"],
                sa.select(m.program_id, m.member_id, _j_at, name_of(m.old_rank),
                          name_of(m.new_rank), m.metric, threshold_of - m.metric,
                          _j_recorded)
                .select_from(source)
                .where(m.new_rank < m.old_rank))
            return stmt.on_conflict_do_update(
                index_elements=["program_id", "member_id", "evaluation_at"],
                set_={name: insert.excluded[name]
                      for name in ("tier", "would_be", "metric", "needed", "created_at")})
        return tier_history.insert().from_select(
            ["id", "program_id", "member_id", "at", "from_tier", "to_tier", "reason",
             "metric", "note", "recorded_at"],
            sa.select(line_id(m.member_id), m.program_id, m.member_id, _j_at,
                      name_of(m.old_rank),
                      name_of(m.new_rank), sa.literal("evaluation"), m.metric,
                      sa.literal(""), _j_recorded)
            .select_from(source)
            .where(m.new_rank != m.old_rank))

    counted = {"preserve_rowcount": True}
    if postgres:
        d = d_select.cte("d").prefix_with("MATERIALIZED")
        if notices:
            moves: dict[str, Any] = {"noticed_for": _j_at}
        else:
            moves = {"rank": d.c.new_rank, "attained_at": d.c.attained_at,
                     "protected_until": d.c.protected_until, "window_start": _j_window,
                     "next_evaluation": _j_next, "carried": d.c.new_rank,
                     "carried_until": d.c.protected_until, "carried_floor": d.c.floor,
                     "floor": d.c.floor}
        moved = (
            s.update()
            .values(**moves, version=s.c.version + 1)
            .where(s.c.program_id == d.c.program_id, s.c.member_id == d.c.member_id,
                   s.c.version == d.c.version, s.c.program_id == _p, *states_in_range)
            .returning(s.c.program_id, s.c.member_id, d.c.old_rank, d.c.new_rank,
                       d.c.metric, d.c.protected_until)
            .cte("moved")
        )
        table = tier_notices if notices else tier_history
        recorded = record(moved.c, moved).returning(table.c.member_id).cte("recorded")
        picked = sa.select(sa.func.count()).select_from(d).scalar_subquery()
        if notices:
            # the states picked (moved or not: see evaluate_tiers) and the lines recorded
            run = sa.select(
                picked, sa.select(sa.func.count()).select_from(recorded).scalar_subquery(),
            ).add_cte(moved)
            return _TierSQL(run=run, last=last, apply=None)
        # the states picked, on each change the INSERT recorded (one row of nulls: none)
        changed = sa.select(moved.c.member_id, name_of(moved.c.old_rank).label("from_tier"),
                            name_of(moved.c.new_rank).label("to_tier"), moved.c.metric,
                            moved.c.protected_until
                            ).where(moved.c.new_rank != moved.c.old_rank).subquery("c")
        one = sa.select(sa.literal(1).label("one")).subquery("one")
        run = (sa.select(picked, changed.c.member_id, changed.c.from_tier,
                         changed.c.to_tier, changed.c.metric, changed.c.protected_until)
               .select_from(one.outerjoin(changed, sa.true()))
               .add_cte(moved, recorded))
        return _TierSQL(run=run, last=last, apply=None)

    in_batch = (*waiting, s.c.member_id <= _j_last)
    if notices:
        apply = s.update().values(noticed_for=_j_at, version=s.c.version + 1).where(*in_batch)
    else:
        # each row's decision from its own metric, computed once per row
        metric = sa.select(_METRIC).where(_IN_WINDOW).correlate(s).scalar_subquery()
        m = sa.select(metric.label("metric")).offset(0).subquery("m")
        own = _decide(policy, dialect, s.c, m.c.metric)
        decision = sa.select(own.new_rank, own.attained_at, own.protected_until,
                             own.new_rank, own.protected_until, own.floor, own.floor
                             ).select_from(m).correlate(s).scalar_subquery()
        columns = sa.tuple_(s.c.rank, s.c.attained_at, s.c.protected_until, s.c.carried,
                            s.c.carried_until, s.c.carried_floor, s.c.floor)
        move = s.update().values(
            {columns: decision, s.c.window_start: _j_window, s.c.next_evaluation: _j_next,
             s.c.version: s.c.version + 1}).where(*in_batch)
        apply = move.returning(s.c.member_id, s.c.protected_until)
    d_sub = d_select.subquery("d")
    insert = record(d_sub.c, d_sub)
    if notices:
        return _TierSQL(run=insert.execution_options(**counted), last=last, apply=apply)
    h = tier_history.c
    count = sa.select(sa.func.count()).where(*waiting, s.c.member_id <= _j_last)
    return _TierSQL(
        run=insert.returning(h.member_id, h.from_tier, h.to_tier, h.metric
                             ).execution_options(**counted),
        last=last, apply=apply, record=insert.execution_options(**counted),
        move=move.execution_options(**counted), states=count)


#: The columns of a tier state but its member, version (and program id), in
#: TierState's order: a batch's rows are tuples read off the states in one call each
_STATE_FIELDS = ("rank", "attained_at", "protected_until", "window_start",
                 "next_evaluation", "carried", "carried_until", "carried_floor", "floor",
                 "anchor", "manual", "manual_until", "manual_reason", "noticed_for")
_state_values = operator.attrgetter(*_STATE_FIELDS)
_INSERT_STATE_KEYS = ("program_id", "member_id", *_STATE_FIELDS, "version")
_UPDATE_STATE_KEYS = ("k_program_id", "k_member_id", *_STATE_FIELDS)
_REWRITE_STATE_KEYS = (*_UPDATE_STATE_KEYS, "k_rewrites")
_BUCKET_KEYS = ("program_id", "member_id", "period_start", "value")
_HISTORY_KEYS = ("id", "program_id", "member_id", "at", "from_tier", "to_tier", "reason",
                 "metric", "note", "recorded_at")


def _line_ids(n: int) -> str:
    """``n`` new history line ids as one text of their hex digits (see ``:j_hids``).

    A line's id is drawn by the library, a time-ordered UUID like every other id (no
    database sequence: DESIGN §10), here rather than by the caller: a member's lines
    are written under the lock of its tier state, one after the other, so their ids
    keep the order they were written in, which reads sort by."""
    return new_id.many_hex(n).decode()
_history_values = operator.attrgetter("member_id", "at", "from_tier", "to_tier", "reason",
                                      "metric", "note", "recorded_at")


class SQLTierStore(Store):
    """Tier states, metric buckets, history and notices of one program."""

    #: Every tier state a read returns is built for that read and shared with nothing:
    #: the member-key layer names it in place instead of copying it (a history import
    #: reads a batch's states at once).
    fresh_reads = True

    @translated
    def get_tier_state(self, member_id: str) -> TierState | None:
        """Return the member's tier state, locking its row (``SELECT ... FOR UPDATE``;
        SQLite's write lock is already held; a read-only unit of work locks nothing),
        or None if none is kept."""
        stmt = _READ_TIER_STATE if self._uow.read_only else _SEL_TIER_STATE
        row = self._c().execute(stmt, {"p": self.program_id, "m": member_id}).first()
        return None if row is None else TierState(*row)

    @translated
    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        """Return the sum of the member's metric buckets whose period starts in
        ``[start, end)`` (``end`` None: no upper bound); 0 if there are none."""
        params: dict[str, Any] = {"p": self.program_id, "m": member_id, "start": start}
        if end is None:
            value = self._c().scalar(_SEL_TIER_METRIC_FROM, params)
        else:
            params["end"] = end
            value = self._c().scalar(_SEL_TIER_METRIC, params)
        return int(value or 0)

    @translated
    def get_tier_states(self, member_ids: Sequence[str]) -> dict[str, TierState]:
        """One statement per 500 members (one on PostgreSQL), locking the rows in
        member-id order (as :meth:`get_tier_state`)."""
        found = {}
        read_only = self._uow.read_only
        for pg, named in key_sets(self._c(), sorted(set(member_ids))):
            stmt = ((_READ_TIER_STATES_PG if read_only else _SEL_TIER_STATES_PG) if pg
                    else _READ_TIER_STATES if read_only else _SEL_TIER_STATES)
            for row in self._c().execute(stmt, {"p": self.program_id, **named}).all():
                found[row[0]] = TierState(*row)
        return found

    @translated
    def tier_buckets(self, member_ids: Sequence[str]) -> dict[str, dict[dt.datetime, int]]:
        """One statement per 500 members (one on PostgreSQL)."""
        found: dict[str, dict[dt.datetime, int]] = {}
        for pg, named in key_sets(self._c(), sorted(set(member_ids))):
            for member_id, period, value in self._c().execute(
                    _SEL_TIER_BUCKETS_PG if pg else _SEL_TIER_BUCKETS,
                    {"p": self.program_id, **named}).all():
                found.setdefault(member_id, {})[period] = int(value)
        return found

    @translated
    def tier_history(self, member_id: str) -> list[TierChange]:
        """Return the member's tier history in the order it was written."""
        rows = self._c().execute(_SEL_TIER_HISTORY, {"p": self.program_id, "m": member_id})
        return [TierChange(*row) for row in rows]

    @translated
    def tier_due(self, at: dt.datetime, *, by_anchor: bool) -> list[
            tuple[dt.datetime, dt.date | None]]:
        """Return the distinct evaluation instants at or before ``at`` that tier states
        wait for, oldest first; with ``by_anchor`` as (instant, anchor) pairs, else as
        (instant, None)."""
        params = {"p": self.program_id, "at": at}
        if by_anchor:
            rows = self._c().execute(_SEL_TIER_DUE_BY_ANCHOR, params)
            return [(row[0], row[1]) for row in rows]
        return [(row[0], None) for row in self._c().execute(_SEL_TIER_DUE, params)]

    @translated
    def evaluate_tiers(self, job: TierJob) -> tuple[int, list[TierChanged]]:
        """Evaluate, set-based, up to ``job.limit`` tier states waiting for ``job.at``
        (see :func:`_tier_sql`). Return how many states were evaluated and the changes
        of those moved that changed tier. A state written concurrently since it was
        read is left waiting (and counted as evaluated): the next call takes it up."""
        conn = self._c()
        sql = _tier_sql(job.policy, supported_dialect(conn), False, job.after is not None,
                        job.upto is not None)
        params = {**self._tier_params(job), "j_hids": _line_ids(job.limit)}
        # (member, from, to, metric) of each line, and each state's protected_until
        lines: list[tuple[Any, ...]]
        protected: dict[str, dt.datetime | None]
        if sql.apply is None:  # PostgreSQL: one statement, with its settings
            before = conn.execute(_SET_TIER_SETTINGS, _TIER_SETTINGS).one()
            rows = conn.execute(sql.run, params).all()
            # (a failure rolls the settings back with the transaction or savepoint)
            conn.execute(_RESET_TIER_SETTINGS, dict(zip(_TIER_SETTINGS, before, strict=False)))
            done = int(rows[0][0])
            lines = [tuple(r[1:5]) for r in rows if r[1] is not None]
            protected = {r[1]: r[5] for r in rows if r[1] is not None}
        else:
            if not self._batch_end(conn, sql, params, job):
                return 0, []
            lines = [tuple(r) for r in conn.execute(sql.run, params)]
            moved = conn.execute(sql.apply, params).all()
            done = len(moved)
            protected = {str(r[0]): r[1] for r in moved}
        changed = []
        for member_id, from_tier, to_tier, metric in lines:
            change = TierChange(member_id=str(member_id), at=job.at, from_tier=from_tier,
                                to_tier=to_tier, reason="evaluation", metric=int(metric),
                                recorded_at=job.recorded_at)
            until = protected.get(str(member_id))
            changed.append(TierChanged(change, until if until is not None and until > job.at
                                       else None, job.next_at))
        return done, changed

    @translated
    def evaluate_tiers_recorded(self, job: TierJob, outbox: TierOutbox
                                ) -> tuple[int, int] | None:
        """:meth:`evaluate_tiers`, appending the outbox event of each line itself
        (:mod:`loyaltykit.sql.tier_events`): SQLite only (None, nothing written, on
        PostgreSQL)."""
        conn = self._c()
        if supported_dialect(conn) != "sqlite":
            return None
        sql = _tier_sql(job.policy, "sqlite", False, job.after is not None,
                        job.upto is not None)
        assert sql.record is not None and sql.move is not None
        params = {**self._tier_params(job), "j_hids": _line_ids(job.limit)}
        if not self._batch_end(conn, sql, params, job):
            return 0, 0
        # the batch's dirty pages kept in memory until the commit (sql/_batch_cache.py)
        with batch_cache(conn, job.limit):
            lines = conn.execute(sql.record, params).rowcount
            done = conn.execute(sql.move, params).rowcount
            if lines:  # (the states moved on: the events read their protection from them)
                written = tier_events.append_events(conn, self.program_id,
                                                    params["j_hids"], lines, outbox)
                if written != lines:
                    raise StorageError(f"{written} tier.changed events for {lines} lines")
        return done, lines

    @translated
    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        """Record, set-based, "will downgrade" notices for up to ``job.limit`` tier
        states waiting for ``job.at`` not yet noticed for it, and mark them noticed.
        Return how many states were examined and how many notices were recorded."""
        return self._tier_run(job, notices=True)

    @translated
    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        """Return the member id ending the next batch of ``job.limit`` states waiting
        for ``job.at`` after ``job.after`` (one range of the due index); None if none."""
        sql = _tier_sql(job.policy, self._c().dialect.name, noticed, job.after is not None)
        end = self._c().scalar(sql.last, self._tier_params(job))
        return None if end is None else str(end)

    def _tier_params(self, job: TierJob) -> dict[str, Any]:
        return {
            "p": self.program_id, "j_at": job.at, "j_anchor": job.anchor,
            "j_next": job.next_at, "j_window": job.window_start,
            "j_protected": job.protected_until, "j_recorded": job.recorded_at,
            "j_limit": job.limit, "j_after": job.after, "j_upto": job.upto,
        }

    @staticmethod
    def _batch_end(conn: Connection, sql: _TierSQL, params: dict[str, Any], job: TierJob
                   ) -> bool:
        """SQLite: set ``:j_last``, the batch's last member (the job's end, or the
        last of the next ``job.limit`` states); False if there is no batch. A batch
        given by its end may hold more than ``job.limit`` states (planned before
        states entered its range): it gets an id for each."""
        if job.upto is None:
            params["j_last"] = conn.scalar(sql.last, params)
            return params["j_last"] is not None
        params["j_last"] = job.upto
        if sql.states is not None:
            states = int(conn.scalar(sql.states, params) or 0)
            if states > job.limit:
                params["j_hids"] = _line_ids(states)
        return True

    def _tier_run(self, job: TierJob, *, notices: bool) -> tuple[int, int]:
        conn = self._c()
        dialect = supported_dialect(conn)
        sql = _tier_sql(job.policy, dialect, notices, job.after is not None,
                        job.upto is not None)
        params = self._tier_params(job)
        if sql.apply is None:  # PostgreSQL: one statement, with its settings
            before = conn.execute(_SET_TIER_SETTINGS, _TIER_SETTINGS).one()
            picked, recorded = conn.execute(sql.run, params).one()
            # (a failure rolls the settings back with the transaction or savepoint)
            conn.execute(_RESET_TIER_SETTINGS, dict(zip(_TIER_SETTINGS, before, strict=False)))
            return int(picked), int(recorded)
        if not self._batch_end(conn, sql, params, job):
            return 0, 0
        recorded = conn.execute(sql.run, params).rowcount
        assert sql.apply is not None
        return conn.execute(sql.apply, params).rowcount, recorded

    @translated
    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        """Return up to ``limit`` recorded notices created at or after ``since``,
        oldest first (by creation, evaluation instant, member id)."""
        params: dict[str, Any] = {"p": self.program_id, "lim": limit}
        if since is None:
            stmt = _SEL_TIER_NOTICES
        else:
            stmt = _SEL_TIER_NOTICES_SINCE
            params["since"] = since
        return [TierNotice(*row) for row in self._c().execute(stmt, params)]

    @translated
    def upcoming_tier_notices(self, after: dt.datetime, *,
                              cursor: tuple[dt.datetime, str] | None, limit: int
                              ) -> list[TierNotice]:
        """Return up to ``limit`` notices of evaluations after ``after``, by evaluation
        instant and member id, after ``cursor``."""
        params: dict[str, Any] = {"p": self.program_id, "after": after, "lim": limit}
        stmt: sa.Executable = _SEL_UPCOMING
        if cursor is not None:
            stmt = _SEL_UPCOMING_AFTER
            params["c_at"], params["c_m"] = cursor
        return [TierNotice(*row) for row in self._c().execute(stmt, params)]

    @translated
    def write(self, changes: TierChanges) -> None:
        """Insert the new tier states (version 0) and update the others (their stored
        version + 1), add to the metric buckets by upsert and append the history lines.
        A new tier state of a member that has one is DuplicateKey; the caller must then
        roll the unit of work back. Rows are tuples read straight off the changes (a
        history import's batch writes a state and a bucket per member)."""
        conn = self._c()
        program_id = self.program_id
        if changes.tier_states:
            self._write_tier_states(conn, changes)
        if changes.tier_buckets:
            execute_rows(conn, upserts_for(conn).bucket, _BUCKET_KEYS, [
                (program_id, member_id, period, value)
                for (member_id, period), value in changes.tier_buckets.items()
            ])
        if changes.tier_history:
            ids = new_id.many(len(changes.tier_history))
            self._insert_rows(conn, _INS_TIER_HISTORY, _HISTORY_KEYS, [
                (line, program_id, *_history_values(change))
                for line, change in zip(ids, changes.tier_history, strict=True)])

    def _write_tier_states(self, conn: Connection, changes: TierChanges) -> None:
        """Insert the new tier states (version 0; one already kept is DuplicateKey, so
        the facade retries) and update the others (their stored version + 1), each
        version counting the writes merged into this one too (``rewrites``). The
        member of a row is its key in ``tier_states`` (see :class:`TierChanges`)."""
        program_id = self.program_id
        created, rewrites = changes.new_tier_states, changes.rewrites
        inserted: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        again: list[tuple[Any, ...]] = []
        for member_id, state in changes.tier_states.items():
            if member_id in created:
                inserted.append((program_id, member_id, *_state_values(state),
                                 rewrites.get(member_id, 0)))
            elif member_id in rewrites:
                again.append((program_id, member_id, *_state_values(state),
                              rewrites[member_id]))
            else:
                updated.append((program_id, member_id, *_state_values(state)))
        if inserted:
            self._insert_rows(conn, _INS_TIER_STATE, _INSERT_STATE_KEYS, inserted,
                              "tier state already kept", "member_id")
        if again:
            self._update_rows(conn, _UPD_TIER_STATE_REWRITTEN, _REWRITE_STATE_KEYS, again,
                              "tier states")
        if updated:
            self._update_rows(conn, _UPD_TIER_STATE, _UPDATE_STATE_KEYS, updated,
                              "tier states")
