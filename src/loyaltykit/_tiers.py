"""Tiers as data and as pure decisions: the ladder, its metric and window, benefits,
and the rules that move a member up (at once) and down (only at evaluation dates).

Nothing here reads a clock or storage. The facade feeds :func:`on_activity` and
:func:`evaluate` a member's :class:`TierState` and the metric of a window; the storage
keeps the state, the metric's period buckets and the history. The SQL backend runs
:func:`evaluate`'s rule as set-based statements; the in-memory backend calls it.

Decisions, in the shop's words:

* **Upgrade** as soon as the metric of the current window reaches a higher threshold.
* **Revert** at once when activity that lowers the metric (a return, a cancelled
  order, a reversed earn) leaves a tier reached since the last evaluation without
  its threshold: the member falls back to what was held at the window's start, or
  whatever the metric still reaches, whichever is higher (scenario T2).
* **Evaluate** at each window end E: a tier the past window still reaches is kept
  (and protected for ``grace_periods`` more periods); a protected tier is kept;
  otherwise the member drops one level (``ONE_LEVEL``, not below what the window
  reaches) or to what the window reaches (``RECOMPUTE``).
* **Floors**: never below a lifetime tier once reached, nor below a manual
  assignment while it holds.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import functools
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from loyaltykit._copy import evolve
from loyaltykit._errors import InvalidProgram, LoyaltyError, shown
from loyaltykit._json import JsonForm
from loyaltykit._tier_windows import QualificationWindow, WindowKind, _enum
from loyaltykit._validate import MONEY_CONTEXT, NAME, field_name, invalid
from loyaltykit._values import Money

__all__ = [
    "Benefits",
    "Downgrade",
    "QualificationWindow",
    "Tier",
    "TierChange",
    "TierChanged",
    "TierMetric",
    "TierNotice",
    "TierPolicy",
    "TierProgress",
    "TierState",
    "TierStatus",
    "WindowKind",
]

#: Spend is kept as an integer count of 1/10000 of the currency unit (exact for every
#: ISO 4217 currency; amounts with more decimals round half to even).
SPEND_SCALE = 10_000
_MAX_TIERS = 20


class TierMetric(enum.Enum):
    """What a tier's threshold counts over the qualification window."""

    #: Qualifying points earned in the policy's wallet: earns (orders, events, bulk
    #: and direct earns) less clawbacks and reversals of earns. Never the balance:
    #: spending points does not cost a member their tier.
    POINTS = "points"
    #: Net goods of recorded orders (after discounts, shipping excluded), less returns.
    SPEND = "spend"
    #: Recorded orders, less cancelled ones.
    ORDERS = "orders"


class Downgrade(enum.Enum):
    """What an evaluation does to a tier the past window no longer reaches (once its
    protection has run out)."""

    #: Drop one level, or to what the window reaches if that is higher.
    ONE_LEVEL = "one_level"
    #: Drop straight to what the window reaches.
    RECOMPUTE = "recompute"


def _decimal(value: Any, field: str, *, low: Decimal, high: Decimal) -> Decimal:
    if isinstance(value, bool | float):
        raise invalid(field, "must be a decimal string or int (not a float)", value)
    try:
        number = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite() or not low <= number <= high:
        raise invalid(field, f"must be a decimal between {low} and {high}", shown(value))
    return number


def _custom(value: Any) -> dict[str, Any]:
    from loyaltykit._orders import json_value

    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise invalid("tiers.benefits.custom", "must be a table with str keys", shown(value))
    checked: dict[str, Any] = json_value(dict(value), "tiers.benefits.custom", InvalidProgram)
    return checked


@attrs.frozen
class Benefits(JsonForm):
    """What a tier gives, as data that rules and shops read.

    ``earn_multiplier`` is applied by :class:`~loyaltykit.TierMultiplierRule` rules;
    ``discount_percent`` is the member discount a shop applies at checkout;
    ``free_shipping`` and ``extended_returns`` are flags; ``custom`` holds anything
    else the shop reads (JSON values).
    """

    earn_multiplier: Decimal = attrs.field(default=Decimal(1))
    discount_percent: Decimal = attrs.field(default=Decimal(0))
    free_shipping: bool = False
    extended_returns: bool = False
    custom: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "earn_multiplier", _decimal(
            self.earn_multiplier, "tiers.benefits.earn_multiplier",
            low=Decimal(0), high=Decimal(100)))
        object.__setattr__(self, "discount_percent", _decimal(
            self.discount_percent, "tiers.benefits.discount_percent",
            low=Decimal(0), high=Decimal(100)))
        for name in ("free_shipping", "extended_returns"):
            if not isinstance(getattr(self, name), bool):
                raise invalid(f"tiers.benefits.{name}", "must be a bool", getattr(self, name))
        object.__setattr__(self, "custom", _custom(self.custom))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (decimals as strings)."""
        return {"earn_multiplier": str(self.earn_multiplier),
                "discount_percent": str(self.discount_percent),
                "free_shipping": self.free_shipping,
                "extended_returns": self.extended_returns, "custom": dict(self.custom)}

    @classmethod
    def from_dict(cls, data: Any) -> Benefits:
        """Parse :meth:`to_dict` output (or a TOML table)."""
        if not isinstance(data, Mapping):
            raise invalid("tiers.benefits", "must be a table", shown(data))
        known = {"earn_multiplier", "discount_percent", "free_shipping", "extended_returns",
                 "custom"}
        unknown = sorted(set(data) - known, key=field_name)
        if unknown:
            raise invalid(f"tiers.benefits.{field_name(unknown[0])}", "unknown field", None)
        return cls(earn_multiplier=data.get("earn_multiplier", Decimal(1)),
                   discount_percent=data.get("discount_percent", Decimal(0)),
                   free_shipping=data.get("free_shipping", False),
                   extended_returns=data.get("extended_returns", False),
                   custom=data.get("custom", {}))


#: The largest threshold of a tier, in metric units.
_MAX_THRESHOLD = 10**15


@attrs.frozen
class Tier(JsonForm):
    """One rung of the ladder: reached when the metric reaches ``threshold`` (points
    or orders as an int, spend as :class:`~loyaltykit.Money`). A ``lifetime`` tier,
    once reached, is never lost."""

    name: str
    threshold: int | Money
    benefits: Benefits = attrs.field(factory=Benefits)
    lifetime: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise invalid("tiers.tiers.name", "names are lower-case identifiers up to 32 chars",
                          self.name)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | Money):
            raise invalid(f"tiers.{self.name}.threshold", "must be an int (points, orders) or "
                          "Money (spend)", shown(self.threshold))
        if isinstance(self.threshold, int) and not 0 <= self.threshold <= _MAX_THRESHOLD:
            raise invalid(f"tiers.{self.name}.threshold", "must be between 0 and 10**15",
                          shown(self.threshold))
        if not isinstance(self.benefits, Benefits):
            raise invalid(f"tiers.{self.name}.benefits", "must be Benefits", shown(self.benefits))
        if not isinstance(self.lifetime, bool):
            raise invalid(f"tiers.{self.name}.lifetime", "must be a bool", self.lifetime)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        threshold: Any = (self.threshold.to_dict() if isinstance(self.threshold, Money)
                          else self.threshold)
        return {"name": self.name, "threshold": threshold,
                "benefits": self.benefits.to_dict(), "lifetime": self.lifetime}

    @classmethod
    def from_dict(cls, data: Any) -> Tier:
        """Parse :meth:`to_dict` output (or a TOML table)."""
        if not isinstance(data, Mapping):
            raise invalid("tiers.tiers", "each tier must be a table", shown(data))
        unknown = sorted(set(data) - {"name", "threshold", "benefits", "lifetime"}, key=field_name)
        if unknown:
            raise invalid(f"tiers.tiers.{field_name(unknown[0])}", "unknown field", None)
        if "name" not in data or "threshold" not in data:
            raise invalid("tiers.tiers", "each tier needs name and threshold", shown(dict(data)))
        threshold = data["threshold"]
        if isinstance(threshold, Mapping):
            try:
                threshold = Money.from_dict(dict(threshold))
            except (KeyError, TypeError, AttributeError, LoyaltyError):
                raise invalid("tiers.tiers.threshold", "must be an int or {'amount', "
                              "'currency'}", shown(threshold)) from None
        return cls(name=data["name"], threshold=threshold,
                   benefits=Benefits.from_dict(data.get("benefits", {})),
                   lifetime=data.get("lifetime", False))


def spend_units(amount: Decimal) -> int:
    """Spend as the integer the metric keeps (1/10000 of the currency unit)."""
    scaled = MONEY_CONTEXT.multiply(amount, SPEND_SCALE)  # whatever the caller's context
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=MONEY_CONTEXT))


@attrs.frozen
class TierPolicy(JsonForm):
    """A program's tier ladder and how members move on it.

    ``tiers`` go from the base tier (threshold 0: every member holds it) upwards, with
    strictly rising thresholds. ``metric`` is counted over ``window`` (``wallet``:
    the wallet whose points qualify, default the program's first). A tier reached or
    confirmed in a period is kept for ``grace_periods`` more periods (years; months
    for a rolling window). ``notice_days`` before an evaluation that would drop a
    member, due work records a notice.
    """

    tiers: tuple[Tier, ...]
    metric: TierMetric = TierMetric.POINTS
    window: QualificationWindow = attrs.field(factory=QualificationWindow)
    wallet: str | None = None
    grace_periods: int = 1
    downgrade: Downgrade = Downgrade.ONE_LEVEL
    notice_days: int = 30

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.tiers, tuple) or not self.tiers:
            raise invalid("tiers.tiers", "must be a non-empty tuple of Tier", shown(self.tiers))
        if len(self.tiers) > _MAX_TIERS:
            raise invalid("tiers.tiers", f"at most {_MAX_TIERS} tiers", len(self.tiers))
        for tier in self.tiers:
            if not isinstance(tier, Tier):
                raise invalid("tiers.tiers", "must hold Tier values", shown(tier))
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise invalid("tiers.tiers", "tier names must be unique", names)
        if not isinstance(self.metric, TierMetric):
            raise invalid("tiers.metric", "must be a TierMetric", self.metric)
        if not isinstance(self.window, QualificationWindow):
            raise invalid("tiers.window", "must be a QualificationWindow", shown(self.window))
        if not isinstance(self.downgrade, Downgrade):
            raise invalid("tiers.downgrade", "must be a Downgrade", self.downgrade)
        if self.wallet is not None and (not isinstance(self.wallet, str)
                                        or not NAME.match(self.wallet)):
            raise invalid("tiers.wallet", "must be a wallet name or None", shown(self.wallet))
        for name, top in (("grace_periods", 100), ("notice_days", 366)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise invalid(f"tiers.{name}", f"must be an int between 0 and {top}", value)
        spend = self.metric is TierMetric.SPEND
        previous = -1
        for i, tier in enumerate(self.tiers):
            if spend != isinstance(tier.threshold, Money):
                raise invalid(f"tiers.{tier.name}.threshold", "spend thresholds are Money; "
                              "points and orders thresholds are ints", shown(tier.threshold))
            units = self._units(tier.threshold)
            if i == 0 and units != 0:
                raise invalid(f"tiers.{tier.name}.threshold", "the first (base) tier's "
                              "threshold must be 0", shown(tier.threshold))
            if units < 0 or units > _MAX_THRESHOLD:
                raise invalid(f"tiers.{tier.name}.threshold", "must be between 0 and 10**15",
                              shown(tier.threshold))
            if units <= previous:
                raise invalid(f"tiers.{tier.name}.threshold", "thresholds must rise strictly "
                              "up the ladder", shown(tier.threshold))
            previous = units

    @staticmethod
    def _units(threshold: int | Money) -> int:
        if isinstance(threshold, Money):
            return spend_units(threshold.amount)
        return threshold

    # -- reading the ladder ---------------------------------------------------------------

    # worked out once (the policy is frozen): :meth:`qualified` reads them per write
    @functools.cached_property
    def thresholds(self) -> tuple[int, ...]:
        """Each tier's threshold in metric units (spend in 1/10000 of the currency)."""
        return tuple(self._units(t.threshold) for t in self.tiers)

    @functools.cached_property
    def lifetime_ranks(self) -> tuple[int, ...]:
        """The ranks (ladder positions) of the lifetime tiers."""
        return tuple(i for i, t in enumerate(self.tiers) if t.lifetime)

    def rank(self, name: str) -> int:
        """The position of the tier called ``name`` (0: the base tier)."""
        for i, tier in enumerate(self.tiers):
            if tier.name == name:
                return i
        raise invalid("tier", f"no such tier (tiers: {[t.name for t in self.tiers]})", name)

    def qualified(self, value: int) -> int:
        """The rank the metric ``value`` reaches."""
        # thresholds rise strictly: the rank is how many above the base ``value`` reaches
        return bisect.bisect_right(self.thresholds, value) - 1 if value >= 0 else 0

    def units_as(self, units: int, currency: str) -> int | Money:
        """``units`` as an int, or for spend as Money in ``currency``."""
        if self.metric is TierMetric.SPEND:
            return Money(MONEY_CONTEXT.divide(Decimal(units), SPEND_SCALE), currency)
        return units

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {"tiers": [t.to_dict() for t in self.tiers], "metric": self.metric.value,
                "window": self.window.to_dict(), "wallet": self.wallet,
                "grace_periods": self.grace_periods, "downgrade": self.downgrade.value,
                "notice_days": self.notice_days}

    @classmethod
    def from_dict(cls, data: Any) -> TierPolicy:
        """Parse :meth:`to_dict` output (or the ``[tiers]`` table of a TOML file)."""
        if not isinstance(data, Mapping):
            raise invalid("tiers", "must be a table", shown(data))
        known = {"tiers", "metric", "window", "wallet", "grace_periods", "downgrade",
                 "notice_days"}
        unknown = sorted(set(data) - known, key=field_name)
        if unknown:
            raise invalid(f"tiers.{field_name(unknown[0])}",
                          f"unknown field (known: {sorted(known)})", None)
        raw = data.get("tiers")
        if not isinstance(raw, list | tuple):
            raise invalid("tiers.tiers", "must be a list of tiers", shown(raw))
        return cls(tiers=tuple(Tier.from_dict(t) for t in raw),
                   metric=_enum(TierMetric, data.get("metric", "points"), "tiers.metric"),
                   window=QualificationWindow.from_dict(data.get("window", {})),
                   wallet=data.get("wallet"),
                   grace_periods=data.get("grace_periods", 1),
                   downgrade=_enum(Downgrade, data.get("downgrade", "one_level"),
                                   "tiers.downgrade"),
                   notice_days=data.get("notice_days", 30))


# -- state and decisions ------------------------------------------------------------------


@attrs.frozen
class TierState:
    """A member's standing on the ladder, as storage keeps it (one row per member).

    ``window_start`` / ``next_evaluation`` bound the current window (``next_evaluation``
    None: lifetime). ``carried*`` hold the standing at the window's start (what a
    revert falls back to). ``floor`` is the highest lifetime tier reached. ``manual``
    is a manually assigned rank, holding until ``manual_until`` (None: for good).
    ``anchor`` is the member's enrolment date in the program's time zone.
    ``noticed_for`` is the evaluation a downgrade notice was recorded for.
    ``version`` counts writes of the row (the SQL evaluation checks it).
    """

    member_id: str
    rank: int
    attained_at: dt.datetime | None
    protected_until: dt.datetime | None
    window_start: dt.datetime
    next_evaluation: dt.datetime | None
    carried: int
    carried_until: dt.datetime | None
    carried_floor: int
    floor: int
    anchor: dt.date
    manual: int | None = None
    manual_until: dt.datetime | None = None
    manual_reason: str = ""
    noticed_for: dt.datetime | None = None
    version: int = 0


@attrs.frozen
class TierChange(JsonForm):
    """One line of a member's tier history: from, to, when (business time), why.

    ``reason`` is ``"qualified"`` (reached a threshold), ``"reverted"`` (activity
    lowering the metric took a tier reached in the current window away),
    ``"evaluation"`` (window end), ``"manual"`` (assigned, ``note`` says why).
    ``metric`` is the metric value the decision read (metric units).
    """

    member_id: str
    at: dt.datetime
    from_tier: str
    to_tier: str
    reason: str
    metric: int
    note: str = ""
    recorded_at: dt.datetime | None = None


@attrs.frozen
class TierChanged:
    """Domain event: a member's tier changed. ``change`` is the line appended to the
    member's tier history, raised in the unit of work that appends it (by a write, by
    an evaluation a write caught up on, by due work, by a manual assignment); the
    member's state after it is kept ``protected_until`` (None: no protection left) and
    next evaluated at ``next_evaluation`` (None: never, a lifetime window). A member
    starts on the base tier: an enrolment changes nothing and raises none."""

    change: TierChange
    protected_until: dt.datetime | None
    next_evaluation: dt.datetime | None

    @classmethod
    def of(cls, change: TierChange, state: TierState) -> TierChanged:
        """The event of ``change``, which left the member in ``state``."""
        protected = state.protected_until
        if protected is not None and protected <= change.at:
            protected = None  # run out: protects nothing any more
        return cls(change, protected, state.next_evaluation)


@attrs.frozen
class TierStatus(JsonForm):
    """A member's tier now: the tier, its benefits, since when, how it is held."""

    member_id: str
    tier: str
    benefits: Benefits
    since: dt.datetime | None
    protected_until: dt.datetime | None
    next_evaluation: dt.datetime | None
    lifetime_floor: str | None
    manual: str | None
    manual_until: dt.datetime | None


@attrs.frozen
class TierProgress(JsonForm):
    """Progress to the next tier: the metric so far in the current window, what is
    still ``needed`` to reach ``next_tier`` (None at the top) and the ``deadline`` by
    which it must be reached (the window's end; None for a lifetime window), plus
    what is needed to keep the current tier at the next evaluation."""

    member_id: str
    tier: str
    next_tier: str | None
    metric: int | Money
    needed: int | Money | None
    deadline: dt.datetime | None
    window_start: dt.datetime
    keeps_tier: bool
    needed_to_keep: int | Money


@attrs.frozen
class TierNotice(JsonForm):
    """A recorded "will downgrade" notice: at ``evaluation_at`` the member would drop
    from ``tier`` to ``would_be`` unless ``needed`` more is reached before then."""

    member_id: str
    evaluation_at: dt.datetime
    tier: str
    would_be: str
    metric: int
    needed: int
    created_at: dt.datetime


def floors(policy: TierPolicy, state: TierState, at: dt.datetime) -> int:
    """The lowest rank the member may hold at ``at``: its lifetime floor, and a manual
    assignment while it holds."""
    low = state.floor
    if state.manual is not None and (state.manual_until is None or at < state.manual_until):
        low = max(low, state.manual)
    return low


def _lifetime(policy: TierPolicy, floor: int, rank: int) -> int:
    return max([floor, *[r for r in policy.lifetime_ranks if r <= rank]])


def new_state(policy: TierPolicy, member_id: str, at: dt.datetime, time_zone: str,
              anchor: dt.date) -> TierState:
    """The state of a member who starts on the base tier at ``at``."""
    window = policy.window
    period = window.period_start(at, time_zone, anchor)
    return TierState(
        member_id=member_id, rank=0, attained_at=None, protected_until=None,
        window_start=window.window_start(period, time_zone),
        next_evaluation=window.next_period(period, time_zone, anchor),
        carried=0, carried_until=None, carried_floor=0, floor=0, anchor=anchor)


def on_activity(policy: TierPolicy, state: TierState, value: int, at: dt.datetime,
                time_zone: str) -> tuple[TierState, str | None]:
    """Apply the metric ``value`` of the current window after activity at ``at``:
    upgrade if it reaches a higher tier; revert a tier reached in this window that it
    no longer reaches. Returns the new state and the reason of a change (or None)."""
    q = policy.qualified(value)
    if q > state.rank:
        return _raise_to(policy, state, q, at, time_zone), "qualified"
    if q < state.rank:
        # back to the standing at the window's start, then up to what still qualifies
        base = attrs.evolve(state, rank=state.carried, protected_until=state.carried_until,
                            floor=state.carried_floor, attained_at=None)
        if q > base.rank:
            base = _raise_to(policy, base, q, at, time_zone)
        low = floors(policy, base, at)
        if low > base.rank:
            base = attrs.evolve(base, rank=low)
        if base.rank < state.rank:
            return base, "reverted"
    return state, None


def _raise_to(policy: TierPolicy, state: TierState, rank: int, at: dt.datetime,
              time_zone: str) -> TierState:
    protected = state.protected_until
    if state.next_evaluation is not None:
        until = policy.window.after_periods(state.next_evaluation, policy.grace_periods,
                                            time_zone, state.anchor)
        if until is not None and (protected is None or until > protected):
            protected = until
    return attrs.evolve(state, rank=rank, attained_at=at, protected_until=protected,
                        floor=_lifetime(policy, state.floor, rank))


def evaluate(policy: TierPolicy, state: TierState, value: int, time_zone: str, *,
             job: TierJob | None = None, version: int | None = None
             ) -> tuple[TierState, str | None]:
    """Evaluate the window ending at ``state.next_evaluation`` (E), whose metric is
    ``value``; move the state on to the next window. Returns the reason of a change.

    ``job``: the due batch the state is evaluated in (E is ``job.at``), whose calendar
    (protection end, next window) is worked out once for the batch; ``version``: the
    moved state's version (default: the state's)."""
    when = state.next_evaluation
    assert when is not None, "a lifetime window has no evaluations"
    window = policy.window
    q = policy.qualified(value)
    rank = state.rank
    protected = state.protected_until
    attained = state.attained_at
    if q >= rank:
        new = q
        until = (job.protected_until if job is not None else
                 window.after_periods(when, policy.grace_periods, time_zone, state.anchor))
        if until is not None and (protected is None or until > protected):
            protected = until
        if q > rank:
            attained = when
    elif protected is not None and when < protected:
        new = rank
    elif policy.downgrade is Downgrade.ONE_LEVEL:
        new = max(q, rank - 1)
    else:
        new = q
    new = max(new, floors(policy, state, when))
    # a lifetime tier is won by the metric only (not by a manual assignment)
    floor = _lifetime(policy, state.floor, q)
    if new > rank:
        attained = when
    if job is not None:
        nxt, start = job.next_at, job.window_start
    else:
        nxt = window.next_period(when, time_zone, state.anchor)
        start = window.window_start(when, time_zone)
    # (the fast copy: due work evaluates every member whose window ended; TierState
    # has no validator for attrs.evolve's __init__ to run)
    moved = evolve(
        state, rank=new, attained_at=attained, protected_until=protected,
        window_start=start, next_evaluation=nxt, carried=new, carried_until=protected,
        carried_floor=floor, floor=floor,
        version=state.version if version is None else version)
    return moved, ("evaluation" if new != rank else None)


def would_be(policy: TierPolicy, state: TierState, value: int) -> int:
    """The rank an evaluation at ``state.next_evaluation`` would give if the window's
    metric stayed ``value`` (used for "will downgrade" notices)."""
    when = state.next_evaluation
    assert when is not None
    q = policy.qualified(value)
    if q >= state.rank or (state.protected_until is not None and when < state.protected_until):
        return max(q, state.rank)
    new = max(q, state.rank - 1) if policy.downgrade is Downgrade.ONE_LEVEL else q
    return max(new, floors(policy, state, when))


def catch_up(policy: TierPolicy, state: TierState, until: dt.datetime, time_zone: str,
             metric_of: Callable[[dt.datetime, dt.datetime], int],
             ) -> tuple[TierState, list[tuple[dt.datetime, int, int, int, TierState]]]:
    """Run every evaluation due at or before ``until``; ``metric_of(start, end)`` gives
    the metric of ``[start, end)``. Returns the state and, per change, (E, from, to,
    metric, the state after it)."""
    changes = []
    while state.next_evaluation is not None and state.next_evaluation <= until:
        when = state.next_evaluation
        value = metric_of(state.window_start, when)
        before = state.rank
        state, reason = evaluate(policy, state, value, time_zone)
        if reason is not None:
            changes.append((when, before, state.rank, value, state))
    return state, changes


@attrs.frozen
class TierJob:
    """One set-based step of tier due work, for storage: evaluate (or notice) the
    states waiting for the evaluation at ``at`` (with ``anchor``, only members with
    that enrolment date). The facade works out the calendar: ``next_at`` (the next
    evaluation), ``window_start`` (of the window after ``at``), ``protected_until``
    (``grace_periods`` after ``at``). ``limit`` bounds the states per call; ``after``
    / ``upto`` (None: unbounded) restrict it to the member ids in ``(after, upto]``,
    so that several calls on disjoint ranges can run at once."""

    policy: TierPolicy
    time_zone: str
    at: dt.datetime
    anchor: dt.date | None
    next_at: dt.datetime | None
    window_start: dt.datetime
    protected_until: dt.datetime | None
    recorded_at: dt.datetime
    limit: int
    after: str | None = None
    upto: str | None = None


def job_for(policy: TierPolicy, time_zone: str, at: dt.datetime, anchor: dt.date | None,
            recorded_at: dt.datetime, limit: int) -> TierJob:
    """The :class:`TierJob` of the evaluation at ``at``. Without ``anchor`` the window
    must not be an anniversary window (its calendar depends on the member)."""
    window = policy.window
    if anchor is None and window.kind is WindowKind.ANNIVERSARY_YEAR:
        raise ValueError("an anniversary window's job needs the anchor")
    return TierJob(
        policy=policy, time_zone=time_zone, at=at, anchor=anchor,
        next_at=window.next_period(at, time_zone, anchor),
        window_start=window.window_start(at, time_zone),
        protected_until=window.after_periods(at, policy.grace_periods, time_zone, anchor),
        recorded_at=recorded_at, limit=limit)
