"""Usage rows: which ones an evaluation needs, and which ones it leaves behind."""

from __future__ import annotations

import datetime as dt

import attrs

from loyaltykit._calendar import Zone, calendar_period
from loyaltykit._model import RuleUsage
from loyaltykit._rules.enums import CapPeriod
from loyaltykit._rules.fields import (
    ZERO,
    program_zone,
)
from loyaltykit._rules.policy import (
    EarningPolicy,
    plan_of,
)
from loyaltykit._rules.results import Evaluation
from loyaltykit._rules.rules import StampCardRule
from loyaltykit._rules.scopes import Cap
from loyaltykit._values import check_aware, to_utc


@attrs.frozen
class UsageQuery:
    """Usage rows an evaluation needs: rows of ``rule_ids`` or of ``groups`` with
    ``since <= occurred_at < until`` (None: open)."""

    rule_ids: tuple[str, ...]
    groups: tuple[str, ...]
    since: dt.datetime | None
    until: dt.datetime | None


def _range(cap: Cap, at: dt.datetime, local: dt.datetime, zone: Zone
           ) -> tuple[dt.datetime | None, dt.datetime | None]:
    if cap.period is CapPeriod.LIFETIME:
        return None, None
    if cap.period is CapPeriod.ROLLING:
        span = dt.timedelta(days=cap.days or 0)
        return at - span, at + span
    return calendar_period(cap.period.value, local.date(), zone)


def stamp_card_ids(policy: EarningPolicy, *, event_type: str | None = None
                   ) -> tuple[str, ...]:
    """Ids of the stamp cards an order (or, with ``event_type``, such an event) can
    stamp: pass their lifetime stamp counts as ``stamps`` to the evaluators instead of
    loading every usage row of theirs."""
    plan = plan_of(policy)
    rules = plan.order_rules if event_type is None else plan.event_rules.get(event_type, ())
    return tuple(c.id for c in rules if c.kind == StampCardRule.type)


def usage_queries(policy: EarningPolicy, time_zone: str, at: dt.datetime, *,
                  event_type: str | None = None, stamp_counts: bool = False
                  ) -> list[UsageQuery]:
    """Say which usage rows :func:`evaluate_order` (or, with ``event_type``,
    :func:`evaluate_event`) needs for a source at ``at``: rows of capped rules and
    groups in the periods containing ``at`` (rolling caps: ``[at − N days, at + N
    days)``), lifetime caps and stamp cards over all time. Empty when nothing the
    source can touch is tracked. Several queries may return the same row; the
    evaluator counts it once. With ``stamp_counts`` the caller passes stamp cards'
    lifetime counts to the evaluator (``stamps=``), so their rows are not asked for."""
    plan = plan_of(policy)
    rules = plan.order_rules if event_type is None else plan.event_rules.get(event_type, ())
    if not rules or not plan.tracked:
        return []
    at = to_utc(check_aware(at, name="at"))
    zone = program_zone(time_zone)
    local = at.astimezone(zone)
    wanted: dict[tuple[dt.datetime | None, dt.datetime | None],
                 tuple[dict[str, None], dict[str, None]]] = {}
    for c in rules:
        if not c.tracked:
            continue
        if c.kind == StampCardRule.type and not stamp_counts:
            wanted.setdefault((None, None), ({}, {}))[0][c.id] = None
        for cap in c.caps:
            if cap.period is not CapPeriod.ORDER:
                wanted.setdefault(_range(cap, at, local, zone), ({}, {}))[0][c.id] = None
        if c.group is not None:
            for cap in c.group_caps:
                if cap.period is not CapPeriod.ORDER:
                    wanted.setdefault(_range(cap, at, local, zone), ({}, {}))[1][c.group] = None
    return [UsageQuery(tuple(ids), tuple(groups), since, until)
            for (since, until), (ids, groups) in wanted.items()]


def usage_rows(evaluation: Evaluation, *, program_id: str, member_id: str, source: str,
               occurred_at: dt.datetime, previous: Evaluation | None = None
               ) -> list[RuleUsage]:
    """Return the usage rows to upsert for ``evaluation`` of ``source``
    (``"order:<id>"`` / ``"event:<id>"``): one per tracked rule that gave points or
    stamps, plus, for a re-evaluation, one per tracked rule that had a row from
    ``previous`` (so its row is overwritten, possibly with 0)."""
    occurred_at = to_utc(check_aware(occurred_at, name="occurred_at"))
    before = set()
    if previous is not None:
        before = {o.rule_id for o in previous.outcomes
                  if o.tracked and (o.points != ZERO or o.stamps)}
    return [
        RuleUsage(program_id, member_id, source, o.rule_id, o.group, occurred_at,
                  o.points, o.stamps)
        for o in evaluation.outcomes
        if o.tracked and (o.points != ZERO or o.stamps or o.rule_id in before)
    ]
