"""A member's earning counters, kept on the member's default-wallet account row.

Pricing an order or event needs what the member's earlier sources gave: lifetime stamp
counts of stamp cards, what capped rules and groups gave in the cap's period, and
whether any order is recorded yet (first-order conditions). Reading those from a usage
log on every order costs a query and an insert into an indexed table; instead the
facade keeps them here, on the one row every write of the member already locks and
updates (DESIGN §4 "caps per member per period").

* ``stamps``: lifetime stamps per stamp card;
* ``used``: lifetime positive points per ``(rule, group)`` of every tracked rule (what
  a lifetime cap counts);
* ``entries``: the usage rows of rules and groups with a calendar or rolling cap
  (``keep_rules`` / ``keep_groups``) whose instant is at or after ``since`` (None: all
  of them since the member enrolled); older ones are dropped once they are further than
  the program's longest cap period behind the newest source. They are stored last,
  after ``oldest`` (their earliest instant), and kept as text until an order needs
  them: one that adds or drops none (most orders) neither parses nor re-encodes
  them, so an order's cost does not grow with the entries a member's caps keep;
* ``orders``: recorded orders not cancelled.

The log these are derived from stays where it was: every order row keeps its
breakdown (tracked outcomes included) and events keep usage rows, so the counters can
always be rebuilt (:meth:`Activity.rebuild`) when a source is dated before ``since``,
when a new program version caps a rule not kept yet, or for rows written before the
counters existed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, overload

import attrs
import orjson

from ._copy import evolve
from ._model import OrderRecord, OrderStatus, RuleUsage
from ._rules import Cap, CapPeriod, EarningPolicy, Evaluation, UsageQuery, usage_rows

__all__ = ["Activity", "Retention", "order_usage", "retention"]

_ZERO = Decimal(0)
_UTC = dt.UTC
#: the instant of the rows standing for what dropped entries gave: before any period
EARLIER = dt.datetime(1, 1, 2, tzinfo=_UTC)

_SPAN_DAYS = {
    CapPeriod.DAY: 2,
    CapPeriod.WEEK: 8,
    CapPeriod.MONTH: 32,
    CapPeriod.QUARTER: 93,
    CapPeriod.YEAR: 367,
}
# sources arrive roughly in time order, not exactly: keep a week more than a period
_MARGIN = dt.timedelta(days=7)


@attrs.frozen
class Retention:
    """Which usage a program's caps look back on: the rules and groups with a calendar
    or rolling cap, and how far behind the newest source their rows are still kept."""

    rules: frozenset[str]
    groups: frozenset[str]
    horizon: dt.timedelta


def retention(policy: EarningPolicy) -> Retention:
    """The :class:`Retention` a policy's caps need."""
    def windowed(caps: Iterable[Cap]) -> int:
        return max((_span(cap.period, cap.days) for cap in caps), default=0)

    rules = {rule.id: windowed(rule.caps) for rule in policy.rules}
    groups = {group.name: windowed(group.caps) for group in policy.groups}
    days = max([0, *rules.values(), *groups.values()])
    return Retention(frozenset(r for r, span in rules.items() if span),
                     frozenset(g for g, span in groups.items() if span),
                     dt.timedelta(days=days) + _MARGIN if days else dt.timedelta(0))


def _span(period: CapPeriod, days: int | None) -> int:
    if period is CapPeriod.ROLLING:
        return 2 * (days or 0) + 1  # a rolling window looks N days either side
    return _SPAN_DAYS.get(period, 0)  # per order and lifetime caps keep no rows


def order_usage(record: OrderRecord) -> list[RuleUsage]:
    """The usage rows an order's stored breakdown stands for: one per tracked rule that
    gave points or stamps (what :func:`usage_rows` gives for that breakdown)."""
    return usage_rows(Evaluation.from_dict(dict(record.evaluation)),
                      program_id=record.program_id, member_id=record.member_id,
                      source=f"order:{record.order_id}", occurred_at=record.placed_at)


def _add(totals: dict[Any, Any], key: Any, delta: Any) -> None:
    value = totals.get(key, 0) + delta
    if value:
        totals[key] = value
    else:
        totals.pop(key, None)


#: an entry as stored: (source, rule, group, instant as UTC ISO text, points as decimal
#: text, stamps). Instants are kept as text: UTC ISO strings order as their instants
#: do, so the horizon needs no parsing, and most orders never read an entry's numbers
Entry = tuple[str, str, str | None, str, str, int]


def _utc_text(at: dt.datetime) -> str:
    return (at if at.utcoffset() == _NO_OFFSET else at.astimezone(_UTC)).isoformat()


_NO_OFFSET = dt.timedelta(0)
_ENTRIES_KEY = ',"entries":'


def _entry(row: RuleUsage) -> Entry:
    return (row.source, row.rule_id, row.group, _utc_text(row.occurred_at), str(row.points),
            row.stamps)


class _Entries:
    """The kept entries: their stored JSON text, parsed on first use (and the text
    written on first use when they were built in memory). An order that adds or drops
    no entry (most orders) neither parses nor re-encodes them, so what an order costs
    does not grow with how many entries a member's caps keep."""

    __slots__ = ("_items", "_text", "oldest")

    def __init__(self, items: Sequence[Entry] | None = None, text: str | None = None,
                 oldest: str | None = None) -> None:
        self._items = items
        self._text = text
        if oldest is None and items:
            oldest = min(e[3] for e in items)
        #: the earliest instant (UTC ISO text) of the entries; None if there are none
        self.oldest = oldest

    @property
    def items(self) -> Sequence[Entry]:
        if self._items is None:
            self._items = orjson.loads(self._text or "[]")
            if self.oldest is None and self._items:
                self.oldest = min(e[3] for e in self._items)
        return self._items

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = orjson.dumps(self._items or []).decode()
        return self._text

    def earliest(self) -> str:
        """The earliest instant (UTC ISO text) of the entries; "~" (after every
        instant) if there are none."""
        if self.oldest is None and self:
            self.items  # noqa: B018 - parsing finds it
        return self.oldest or "~"

    def __bool__(self) -> bool:
        if self._items is not None:
            return bool(self._items)
        return self._text not in (None, "[]")


_NONE = _Entries(())

#: Counters by their stored form (as :meth:`Activity.dump` gave it or
#: :meth:`Activity.load` parsed it), for :meth:`Activity.load` to hand back unparsed: a
#: new member's counters (every enrolment stores the same text) and a member's counters
#: read again by its next order of a history import's batch. Counters are immutable
#: values, so one object stands for its text wherever it is read; the memo is emptied
#: when it holds :data:`_MAX_DUMPED` (a bound, no policy).
_DUMPED: dict[str, Activity] = {}
_MAX_DUMPED = 8192
#: :meth:`Activity.fresh_text` by retention
_FRESH: dict[Retention, str] = {}


def _remember(text: str, activity: Activity) -> None:
    """Keep ``activity`` as the counters ``text`` stands for."""
    if len(_DUMPED) >= _MAX_DUMPED:
        _DUMPED.clear()
    _DUMPED[text] = activity


class _Rows(Sequence[RuleUsage]):
    """Usage rows built on first use: an evaluation reads them only when a capped rule
    gives something, so most orders never pay for turning entries into rows."""

    __slots__ = ("_activity", "_built", "_member_id", "_program_id")

    def __init__(self, activity: Activity, program_id: str, member_id: str) -> None:
        self._activity = activity
        self._program_id = program_id
        self._member_id = member_id
        self._built: list[RuleUsage] | None = None

    def _rows(self) -> list[RuleUsage]:
        if self._built is None:
            self._built = self._activity._build_rows(self._program_id, self._member_id)
        return self._built

    def __len__(self) -> int:
        return len(self._rows())

    def __iter__(self) -> Iterator[RuleUsage]:
        return iter(self._rows())

    @overload
    def __getitem__(self, index: int) -> RuleUsage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RuleUsage]: ...

    def __getitem__(self, index: int | slice) -> RuleUsage | Sequence[RuleUsage]:
        return self._rows()[index]


@attrs.frozen
class Activity:
    """A member's earning counters (see the module docstring). ``stored`` holds the
    entries in their stored form (:data:`Entry`), parsed on first use;
    :meth:`entries` gives them as rows."""

    since: dt.datetime | None = None
    newest: dt.datetime | None = None
    orders: int = 0
    stamps: Mapping[str, int] = attrs.field(factory=dict)
    used: Mapping[tuple[str, str | None], Decimal] = attrs.field(factory=dict)
    keep_rules: frozenset[str] = frozenset()
    keep_groups: frozenset[str] = frozenset()
    stored: _Entries = attrs.field(default=_NONE, eq=False)

    @classmethod
    def fresh(cls, kept: Retention) -> Activity:
        """The counters of a member with nothing recorded yet."""
        return cls(keep_rules=kept.rules, keep_groups=kept.groups)

    def entries(self, program_id: str, member_id: str) -> list[RuleUsage]:
        """The kept entries as usage rows of the member."""
        return [RuleUsage(program_id, member_id, source, rule, group,
                          dt.datetime.fromisoformat(at), Decimal(points), stamps)
                for source, rule, group, at, points, stamps in self.stored.items]

    # -- stored form ----------------------------------------------------------------------

    @classmethod
    def load(cls, text: str | None) -> Activity | None:
        """Parse the stored form (None: nothing stored, the counters must be rebuilt).
        The entries, stored last, are kept as text until they are needed. Counters
        dumped lately are not parsed again (see :data:`_DUMPED`)."""
        if text is None:
            return None
        known = _DUMPED.get(text)
        if known is not None:
            return known
        loaded = cls.parse(text)
        _remember(text, loaded)
        return loaded

    @classmethod
    def parse(cls, text: str) -> Activity:
        """The counters of the stored form ``text``, parsed (what :meth:`load` does
        for a text it does not know); the entries are kept as text until needed."""
        # "entries" is the last key and its array holds no objects, so its last
        # occurrence as a key holding an array is the top-level one
        cut = text.rfind(_ENTRIES_KEY)
        if cut >= 0 and text.startswith("[", cut + len(_ENTRIES_KEY)):
            data = orjson.loads(text[:cut] + "}")
            entries = _Entries(text=text[cut + len(_ENTRIES_KEY):-1],
                               oldest=data.get("oldest"))
        else:
            data = orjson.loads(text)
            entries = _Entries(data.get("entries") or ())
        since = data.get("since")
        newest = data.get("newest")
        return cls(
            since=None if since is None else dt.datetime.fromisoformat(since),
            newest=None if newest is None else dt.datetime.fromisoformat(newest),
            orders=int(data.get("orders", 0)),
            stamps={str(k): int(v) for k, v in data.get("stamps", {}).items()},
            used={(rule, group): Decimal(points)
                  for rule, group, points in data.get("used", ())},
            keep_rules=frozenset(data.get("keep_rules", ())),
            keep_groups=frozenset(data.get("keep_groups", ())),
            stored=entries,
        )

    @classmethod
    def fresh_text(cls, kept: Retention) -> str:
        """The stored form of :meth:`fresh` counters (a new member's): made once per
        retention (a history import enrols thousands of members a batch)."""
        text = _FRESH.get(kept)
        if text is None:
            text = _FRESH[kept] = cls.fresh(kept).dump()
        return text

    def dump(self) -> str:
        """The stored form: compact JSON (orjson: it holds only ids, instants, small
        counts and decimal strings), exact decimals as strings; the entries last
        (with the earliest instant among them as ``oldest``), their text reused when
        they did not change."""
        data: dict[str, Any] = {"v": 1}
        if self.since is not None:
            data["since"] = self.since.isoformat()
        if self.newest is not None:
            data["newest"] = self.newest.isoformat()
        if self.orders:
            data["orders"] = self.orders
        if self.stamps:
            data["stamps"] = dict(sorted(self.stamps.items()))
        if self.used:
            data["used"] = [[rule, group, str(points)] for (rule, group), points
                            in sorted(self.used.items(), key=lambda kv: (kv[0][0],
                                                                         kv[0][1] or ""))]
        if self.keep_rules:
            data["keep_rules"] = sorted(self.keep_rules)
        if self.keep_groups:
            data["keep_groups"] = sorted(self.keep_groups)
        head = orjson.dumps(data).decode()
        if self.stored:
            oldest = orjson.dumps(self.stored.earliest()).decode()
            head = f'{head[:-1]},"oldest":{oldest}{_ENTRIES_KEY}{self.stored.text}}}'
        _remember(head, self)
        return head

    # -- reading --------------------------------------------------------------------------

    def covers(self, queries: Iterable[UsageQuery], kept: Retention) -> bool:
        """Whether these counters answer ``queries`` exactly: every windowed query asks
        for rules and groups whose rows are kept, from ``since`` on; and the program's
        windowed rules are all kept (else their rows from now on would be lost)."""
        if not (kept.rules <= self.keep_rules and kept.groups <= self.keep_groups):
            return False
        for q in queries:
            if q.since is None:
                continue  # lifetime: the totals answer it
            if self.since is not None and q.since < self.since:
                return False
            if not (set(q.rule_ids) <= self.keep_rules and set(q.groups) <= self.keep_groups):
                return False
        return True

    def rows(self, program_id: str, member_id: str) -> Sequence[RuleUsage]:
        """Usage rows for the evaluator: the kept entries, plus one row per rule and
        group dated :data:`EARLIER` for what its other rows gave (lifetime caps count
        it, no period contains it). Built on first use."""
        return _Rows(self, program_id, member_id)

    def _build_rows(self, program_id: str, member_id: str) -> list[RuleUsage]:
        rows = self.entries(program_id, member_id)
        if not self.used:
            return rows
        in_entries: dict[tuple[str, str | None], Decimal] = {}
        for e in rows:
            if e.points > _ZERO:
                in_entries[(e.rule_id, e.group)] = (
                    in_entries.get((e.rule_id, e.group), _ZERO) + e.points)
        for (rule, group), total in self.used.items():
            rest = total - in_entries.get((rule, group), _ZERO)
            if rest > _ZERO:
                rows.append(RuleUsage(program_id, member_id, f"~earlier:{rule}:{group or ''}",
                                      rule, group, EARLIER, rest, 0))
        return rows

    def stamp_counts(self, card_ids: Sequence[str]) -> dict[str, int]:
        """Lifetime stamps of these stamp cards."""
        return {card: self.stamps.get(card, 0) for card in card_ids}

    # -- writing --------------------------------------------------------------------------

    def record(self, source: str, at: dt.datetime, old: Sequence[RuleUsage],
               new: Sequence[RuleUsage], *, orders: int = 0,
               horizon: dt.timedelta | None = None) -> Activity:
        """Return the counters after ``source`` (dated ``at``) went from usage rows
        ``old`` to ``new`` (a new source: no ``old``), ``orders`` added to the order
        count; entries further than ``horizon`` behind the newest source are dropped."""
        used = dict(self.used)
        stamps = dict(self.stamps)
        for sign, rows in ((-1, old), (1, new)):
            for row in rows:
                if row.points > _ZERO:
                    _add(used, (row.rule_id, row.group), sign * row.points)
                if row.stamps:
                    _add(stamps, row.rule_id, sign * row.stamps)
        stored = self.stored
        entries: list[Entry] | None = None  # None: the entries did not change
        if old:  # a source recorded before: its entries are replaced
            entries = [e for e in stored.items if e[0] != source]
        if self.since is None or at >= self.since:
            added = [_entry(r) for r in new if (r.points != _ZERO or r.stamps) and (
                r.rule_id in self.keep_rules or r.group in self.keep_groups)]
            if added:
                entries = [*(stored.items if entries is None else entries), *added]
        newest = at if self.newest is None else max(self.newest, at)
        since = self.since
        # (no entries: none to drop, and no cutoff's text to make: most members keep none)
        if horizon is not None and (entries if entries is not None else stored):
            cutoff = newest - horizon
            text = _utc_text(cutoff)
            # unchanged entries: their earliest instant tells without parsing them
            if (any(e[3] < text for e in entries) if entries is not None
                    else stored.earliest() < text):
                entries = [e for e in (stored.items if entries is None else entries)
                           if e[3] >= text]
                since = cutoff if since is None else max(since, cutoff)
        if entries is not None:
            stored = _Entries(entries)
        return evolve(self, since=since, newest=newest, orders=self.orders + orders,
                      stamps=stamps, used=used, stored=stored)

    @classmethod
    def rebuild(cls, log: Iterable[RuleUsage], orders: Iterable[OrderRecord],
                kept: Retention, *, since: dt.datetime | None) -> Activity:
        """Counters from the member's whole log: its orders' breakdowns and the usage
        rows of its events, keeping entries of ``kept``'s rules and groups at or after
        ``since`` (None: all of them)."""
        rows: dict[tuple[str, str], RuleUsage] = {}
        count = 0
        for record in orders:
            if record.status is OrderStatus.OPEN:
                count += 1
            for row in order_usage(record):
                rows[(row.source, row.rule_id)] = row
        for row in log:
            if not row.source.startswith("order:"):
                rows[(row.source, row.rule_id)] = row
        used: dict[tuple[str, str | None], Decimal] = {}
        stamps: dict[str, int] = {}
        entries = []
        newest = None
        for row in sorted(rows.values(), key=lambda r: (r.occurred_at, r.source, r.rule_id)):
            if row.points > _ZERO:
                _add(used, (row.rule_id, row.group), row.points)
            if row.stamps:
                _add(stamps, row.rule_id, row.stamps)
            if (row.points != _ZERO or row.stamps) and (
                    row.rule_id in kept.rules or row.group in kept.groups) and (
                    since is None or row.occurred_at >= since):
                entries.append(row)
            newest = row.occurred_at if newest is None else max(newest, row.occurred_at)
        return cls(since=since, newest=newest, orders=count, stamps=stamps, used=used,
                   keep_rules=kept.rules, keep_groups=kept.groups,
                   stored=_Entries([_entry(e) for e in entries]))

    def widened(self, kept: Retention) -> Retention:
        """``kept`` plus the rules and groups these counters already keep (so a rebuild
        for one version does not drop what another version's caps need)."""
        return Retention(kept.rules | self.keep_rules, kept.groups | self.keep_groups,
                         kept.horizon)
