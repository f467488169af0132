"""One evaluation's usage rows and what the caps leave: the state the evaluator and its
fast path (:mod:`loyaltykit._rules.fastpath`) share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from loyaltykit._calendar import Zone, calendar_period
from loyaltykit._model import RuleUsage
from loyaltykit._rules.enums import CapPeriod
from loyaltykit._rules.fields import (
    ZERO,
    num_text,
)
from loyaltykit._rules.policy import Compiled
from loyaltykit._rules.results import RuleOutcome
from loyaltykit._rules.scopes import Cap


class Run:
    """The state of one evaluation: usage, caps' remaining room, previous outcomes."""

    __slots__ = ("at", "by_group", "by_rule", "group_left", "local", "previous", "source",
                 "usage", "zone")

    def __init__(self, at: dt.datetime, zone: Zone, local: dt.datetime,
                 usage: Sequence[RuleUsage], source: str,
                 previous: Mapping[str, RuleOutcome] | None) -> None:
        self.at = at
        self.zone = zone
        self.local = local
        self.previous = previous
        self.group_left: dict[tuple[str, int], Decimal] = {}
        self.usage = usage if previous is None else ()
        self.source = source
        self.by_rule: dict[str, list[RuleUsage]] | None = None
        self.by_group: dict[str, list[RuleUsage]] = {}

    def rows(self, rule_id: str | None = None, group: str | None = None
             ) -> list[RuleUsage] | None:
        """The usage rows of a rule or of a group (indexed on first use)."""
        if self.by_rule is None:
            self.by_rule = {}
            unique: dict[tuple[str, str], RuleUsage] = {}
            for row in self.usage:
                if row.source != self.source:
                    unique[(row.source, row.rule_id)] = row
            for row in unique.values():
                self.by_rule.setdefault(row.rule_id, []).append(row)
                if row.group is not None:
                    self.by_group.setdefault(row.group, []).append(row)
        if rule_id is not None:
            return self.by_rule.get(rule_id)
        return self.by_group.get(group) if group is not None else None

    def used(self, rows: list[RuleUsage] | None, cap: Cap) -> Decimal:
        """What ``rows`` used of ``cap`` in the period(s) containing the instant."""
        if not rows:
            return ZERO
        period = cap.period
        if period is CapPeriod.LIFETIME:
            return sum((r.points for r in rows if r.points > ZERO), ZERO)
        at = self.at
        if period is CapPeriod.ROLLING:
            span = dt.timedelta(days=cap.days or 0)
            near = [(r.occurred_at, r.points) for r in rows
                    if r.points > ZERO and at - span < r.occurred_at < at + span]
            worst = ZERO
            for end in [at, *(u for u, _ in near if u > at)]:
                start = end - span
                total = sum((p for u, p in near if start < u <= end), ZERO)
                worst = max(worst, total)
            return worst
        start, stop = calendar_period(period.value, self.local.date(), self.zone)
        return sum((r.points for r in rows
                    if r.points > ZERO and start <= r.occurred_at < stop), ZERO)

    def limit(self, c: Compiled, uncapped: Decimal) -> tuple[Decimal, str]:
        """Apply the rule's caps (and, re-evaluating, its previous points)."""
        if uncapped <= ZERO:
            return uncapped, ""
        points = uncapped
        note = ""
        previous = self.previous
        if previous is not None:
            before = previous.get(c.id)
            given = before.points if before is not None else ZERO
            if given < points:
                points = max(given, ZERO)
                note = f"; limited to the {num_text(points)} it gave before the return"
        rooms = []
        for cap in c.caps:
            if cap.period is CapPeriod.ORDER:
                rooms.append((cap, Decimal(cap.points)))
            elif previous is None:
                rooms.append((cap, cap.points - self.used(self.rows(c.id), cap)))
        points, note = within_rooms(rooms, points, uncapped, note)
        if c.group_caps:
            group = c.group
            assert group is not None
            keys = []
            for j, cap in enumerate(c.group_caps):
                key = (group, j)
                left_ = self.group_left.get(key)
                if left_ is None:
                    if cap.period is CapPeriod.ORDER:
                        left_ = Decimal(cap.points)
                    elif previous is not None:
                        continue
                    else:
                        left_ = cap.points - self.used(self.rows(group=group), cap)
                keys.append((key, left_))
                if left_ < points:
                    points = max(left_, ZERO)
                    note = (f"; group {group} capped at {cap.describe()}: {num_text(points)} "
                            f"of {num_text(uncapped)}")
            for key, left_ in keys:
                self.group_left[key] = left_ - points
        return points, note


#: The explanations of rules that did not apply, as both evaluators write them.
NOTHING = "nothing left of the order"
NO_LINE = "not applied: no matching line"


def not_applied(c: Compiled, explanation: str) -> RuleOutcome:
    """The outcome of rule ``c`` when it did not apply, saying why."""
    return RuleOutcome(c.id, c.kind, c.text, False, ZERO, ZERO, explanation, c.group, 0,
                       (), c.tracked)


def spread(target: list[Decimal], picked: Sequence[int], amounts: Sequence[Decimal],
           points: Decimal, uncapped: Decimal) -> None:
    """Add a rule's ``amounts`` (its points on the lines ``picked``) to ``target``,
    shared out in proportion when its caps left ``points`` of ``uncapped``."""
    if points == uncapped:
        for i, a in zip(picked, amounts, strict=True):
            target[i] += a
    elif uncapped:
        for i, a in zip(picked, amounts, strict=True):
            target[i] += a * points / uncapped


def signed(value: Decimal) -> str:
    """A multiplier's contribution with its sign: ``+1.50``, ``-2``."""
    return f"+{value!s}" if value >= ZERO else str(value)


def within_rooms(rooms: Iterable[tuple[Cap, Decimal]], points: Decimal, uncapped: Decimal,
                 note: str) -> tuple[Decimal, str]:
    """``points`` cut to each cap's room left (in order; never below zero), and the note
    naming the last cap that cut them (``note`` unchanged if none did)."""
    for cap, left in rooms:
        if left < points:
            points = max(left, ZERO)
            note = f"; capped at {cap.describe()}: {num_text(points)} of {num_text(uncapped)}"
    return points, note
