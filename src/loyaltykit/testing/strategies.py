"""Shared Hypothesis strategies for loyaltykit's tests and for third-party backends.

This module imports :mod:`hypothesis`, which is not a runtime dependency of loyaltykit:
install the ``test`` extra (``pip install loyaltykit[test]``) to use it.

>>> from loyaltykit.testing.strategies import programs
>>> program = programs().example()  # doctest: +SKIP

Identifiers and keys avoid control characters and surrogates: a NUL is refused by
PostgreSQL, and what those characters do to a backend is a question for bad-input
tests, not for the ledger's invariants.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from loyaltykit._orders import Event, EventType, Order, OrderLine
from loyaltykit._payment import PaymentPolicy, ReturnSplit
from loyaltykit._program import (
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    LedgerPolicy,
    PendingPolicy,
    Program,
    SpendOrder,
)
from loyaltykit._rewards import (
    CustomReward,
    FixedDiscount,
    FreeItem,
    PercentDiscount,
    Reward,
    RewardLimit,
    RewardPolicy,
)
from loyaltykit._rules import (
    AllOf,
    AnyOf,
    Attribute,
    Base,
    Cap,
    CapPeriod,
    ChannelIn,
    Condition,
    EarningPolicy,
    EventBonusRule,
    FirstOrder,
    FixedRule,
    LineMatch,
    MinNet,
    MinTenure,
    MultiplierRule,
    Not,
    RateRule,
    Rounding,
    Rule,
    RuleGroup,
    Stacking,
    StampCardRule,
    StoreIn,
    TierIn,
    Window,
)
from loyaltykit._values import MAX_KEY_LENGTH, Money

__all__ = [
    "CATEGORIES",
    "SKUS",
    "TIME_ZONES",
    "caps",
    "clawback_policies",
    "clock_steps",
    "conditions",
    "earning_policies",
    "events",
    "expiry_policies",
    "instants",
    "keys",
    "ledger_policies",
    "line_matches",
    "member_ids",
    "orders",
    "payment_policies",
    "pending_policies",
    "points",
    "program_ids",
    "programs",
    "reward_policies",
    "spend_orders",
    "time_zones",
    "ttls",
    "wallet_sets",
    "windows",
]

#: Time zones with something to trip over: none, DST, half- and quarter-hour offsets,
#: a zone east of the date line.
TIME_ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
)

_TEXT = st.characters(exclude_categories=("Cc", "Cs"))
_WORD = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))


def points(max_value: int = 1_000) -> st.SearchStrategy[int]:
    """Valid point amounts: ints from 1 to ``max_value``."""
    return st.integers(min_value=1, max_value=max_value)


def keys(max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid idempotency keys (non-blank, at most ``max_size`` characters)."""
    size = min(max_size, MAX_KEY_LENGTH)
    return st.text(_TEXT, min_size=1, max_size=size).filter(lambda k: bool(k.strip()))


def member_ids(max_size: int = 20) -> st.SearchStrategy[str]:
    """Valid member ids: one to three words joined by single spaces (so never with
    surrounding white space), at most ``max_size`` characters."""
    word = st.text(_WORD, min_size=1, max_size=8)
    return st.lists(word, min_size=1, max_size=3).map(" ".join).map(
        lambda m: m[:max_size].strip() or "m"
    )


def program_ids() -> st.SearchStrategy[str]:
    """Valid program ids (letters, digits and ``_.:-``, 1-64 characters)."""
    return st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)


def time_zones() -> st.SearchStrategy[str]:
    """IANA time zone names from :data:`TIME_ZONES`."""
    return st.sampled_from(TIME_ZONES)


def instants(
    min_value: dt.datetime = dt.datetime(2020, 1, 1),
    max_value: dt.datetime = dt.datetime(2035, 12, 31),
) -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware UTC instants between two naive bounds (microsecond precision)."""
    return st.datetimes(min_value=min_value, max_value=max_value, timezones=st.just(dt.UTC))


def spend_orders() -> st.SearchStrategy[SpendOrder]:
    """Any :class:`~loyaltykit.SpendOrder`."""
    return st.sampled_from(SpendOrder)


def clawback_policies() -> st.SearchStrategy[ClawbackPolicy]:
    """Any :class:`~loyaltykit.ClawbackPolicy`."""
    return st.sampled_from(ClawbackPolicy)


def expiry_policies() -> st.SearchStrategy[ExpiryPolicy]:
    """Expiry policies: never, after N days, or after N months; any rounding and start.

    Short periods are drawn often, so that lots expire within a test's clock moves
    (and while held)."""
    rounding = st.sampled_from(ExpiryRounding)
    start = st.sampled_from(ExpiryStart)
    return st.one_of(
        st.just(ExpiryPolicy()),
        st.builds(ExpiryPolicy, days=st.integers(0, 14) | st.integers(0, 400),
                  round_up_to=rounding, counted_from=start),
        st.builds(ExpiryPolicy, months=st.integers(0, 36), round_up_to=rounding,
                  counted_from=start),
    )


def pending_policies() -> st.SearchStrategy[PendingPolicy]:
    """Pending policies: none (half of the time), N days, or manual activation."""
    return st.one_of(
        st.just(PendingPolicy()),
        st.just(PendingPolicy()),
        st.builds(PendingPolicy, days=st.integers(1, 60)),
        st.just(PendingPolicy(manual=True)),
    )


def ledger_policies() -> st.SearchStrategy[LedgerPolicy]:
    """Ledger policies combining every expiry, pending, spend-order and clawback choice."""
    return st.builds(
        LedgerPolicy,
        expiry=expiry_policies(),
        pending=pending_policies(),
        spend_order=spend_orders(),
        clawback=clawback_policies(),
    )


def wallet_sets() -> st.SearchStrategy[tuple[str, ...]]:
    """Wallet tuples: the default single wallet, or two wallets."""
    return st.sampled_from([("points",), ("points", "credits")])


def programs(
    *,
    ids: st.SearchStrategy[str] | None = None,
    wallets: st.SearchStrategy[tuple[str, ...]] | None = None,
) -> st.SearchStrategy[Program]:
    """Valid programs with random ledger policies and time zone."""
    return st.builds(
        Program,
        id=ids if ids is not None else program_ids(),
        time_zone=time_zones(),
        currency=st.just("EUR"),
        point_value=st.just(Money("0.01", "EUR")),
        wallets=wallets if wallets is not None else wallet_sets(),
        ledger=ledger_policies(),
    )


def payment_policies() -> st.SearchStrategy[PaymentPolicy]:
    """Valid points-as-payment policies in EUR (conversions, minimums, shares, steps,
    return splits)."""
    return st.builds(
        PaymentPolicy,
        points=st.integers(1, 200),
        money=st.sampled_from(["0.01", "0.05", "0.10", "1.00", "2.50"]).map(
            lambda a: Money(a, "EUR")),
        min_points=st.integers(0, 300),
        max_share=st.sampled_from(["0.1", "0.25", "0.5", "0.9", "1"]).map(Decimal),
        step=st.sampled_from([1, 5, 10, 50, 100]),
        earn_on_points_paid=st.booleans(),
        returns=st.sampled_from(ReturnSplit),
    )


_REWARD_KINDS = (
    FixedDiscount(Money("5.00", "EUR")),
    PercentDiscount(Decimal(10)),
    FreeItem("sku-a"),
    CustomReward({"gift": "mug"}),
)


def _reward_limits() -> st.SearchStrategy[RewardLimit]:
    def build(period: CapPeriod) -> st.SearchStrategy[RewardLimit]:
        days = st.integers(1, 10) if period is CapPeriod.ROLLING else st.none()
        return st.builds(RewardLimit, count=st.integers(1, 2), period=st.just(period),
                         days=days)

    periods = [p for p in CapPeriod if p is not CapPeriod.ORDER]
    return st.sampled_from(periods).flatmap(build)


@st.composite
def _reward(draw: st.DrawFn, reward_id: str, around: dt.datetime | None,
            tiers: tuple[str, ...]) -> Reward:
    fields: dict[str, Any] = {
        "cost": draw(st.integers(1, 150)),
        "kind": draw(st.sampled_from(_REWARD_KINDS)),
        "stock": draw(st.none() | st.integers(0, 4)),
        "global_limit": draw(st.none() | st.integers(1, 5)),
        "per_member": draw(st.none() | _reward_limits()),
        "refund_on_expiry": draw(st.booleans()),
    }
    validity = draw(st.sampled_from(("days", "days", "until", "none") if around is not None
                                    else ("days", "days", "none")))
    if validity == "days":
        fields["valid_days"] = draw(st.integers(1, 10))
    elif validity == "until":
        assert around is not None
        fields["valid_until"] = around + dt.timedelta(hours=draw(st.integers(1, 72)))
    if around is not None and draw(st.integers(0, 3)) == 0:
        starts = around + dt.timedelta(hours=draw(st.integers(-48, 48)))
        fields["starts_at"] = draw(st.none() | st.just(starts))
        fields["ends_at"] = starts + dt.timedelta(days=draw(st.integers(1, 60)))
    if bool(tiers) and draw(st.booleans()):
        fields["tiers"] = frozenset(draw(st.lists(st.sampled_from(tiers), min_size=1,
                                                  unique=True)))
    return Reward(id=reward_id, name=f"Reward {reward_id}", **fields)


@st.composite
def reward_policies(
    draw: st.DrawFn,
    *,
    wallets: tuple[str, ...] = ("points",),
    around: dt.datetime | None = None,
    tiers: tuple[str, ...] = (),
    max_rewards: int = 3,
) -> RewardPolicy:
    """Small reward catalogues for ledger tests: 1 to ``max_rewards`` rewards ``r0``,
    ``r1``... with small costs, maybe a small stock, a global limit and a per-member
    limit (any calendar period, rolling days or lifetime), vouchers valid a few days
    (or, with ``around``, until a few hours after it, or for ever), sometimes refunded
    on expiry; with ``around``, sometimes a redemption window near it; with ``tiers``,
    sometimes restricted to some of them. Redemptions debit one of ``wallets`` (or the
    program's first)."""
    count = draw(st.integers(1, max_rewards))
    catalogue = tuple(draw(_reward(f"r{i}", around, tiers)) for i in range(count))
    return RewardPolicy(catalogue=catalogue, wallet=draw(st.none() | st.sampled_from(wallets)))


def clock_steps() -> st.SearchStrategy[dt.timedelta]:
    """How far to move a test clock: minutes, hours, days, or months."""
    return st.one_of(
        st.integers(1, 59).map(lambda n: dt.timedelta(minutes=n)),
        st.integers(1, 23).map(lambda n: dt.timedelta(hours=n)),
        st.integers(1, 40).map(lambda n: dt.timedelta(days=n)),
        st.integers(1, 14).map(lambda n: dt.timedelta(days=30 * n + 1)),
    )


def ttls() -> st.SearchStrategy[dt.timedelta]:
    """Hold time-to-live values from a minute to a month."""
    return st.one_of(
        st.integers(1, 120).map(lambda n: dt.timedelta(minutes=n)),
        st.integers(1, 30).map(lambda n: dt.timedelta(days=n)),
    )


# -- earning rules and orders ---------------------------------------------------------------

#: Categories and SKUs that generated orders and rules share, so rules match lines.
CATEGORIES = ("beans", "mug", "tea", "coffee")
SKUS = ("sku-a", "sku-b", "sku-c", "sku-d", "sku-e", "sku-f")
_TIERS = ("silver", "gold")
_CHANNELS = ("web", "app", "shop")
_EVENT_TYPES = (EventType.SIGN_UP, EventType.BIRTHDAY, EventType.VISIT, "custom_thing")


def _amounts(max_value: int = 200) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=0, max_value=max_value, places=2, allow_nan=False,
                       allow_infinity=False)


def caps(*, periods: tuple[CapPeriod, ...] = tuple(CapPeriod)) -> st.SearchStrategy[Cap]:
    """Valid caps over ``periods`` (rolling caps of 1 to 60 days)."""
    def build(period: CapPeriod) -> st.SearchStrategy[Cap]:
        days = st.integers(1, 60) if period is CapPeriod.ROLLING else st.none()
        return st.builds(Cap, points=st.integers(0, 400), period=st.just(period), days=days)

    return st.sampled_from(periods).flatmap(build)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Valid windows: optional dates, weekdays and hour ranges (some ending at 00:00)."""
    dates = sorted(draw(st.lists(st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)),
                                 min_size=2, max_size=2)))
    start = dates[0] if draw(st.booleans()) else None
    end = dates[1] if draw(st.booleans()) else None
    weekdays = tuple(draw(st.lists(st.integers(1, 7), unique=True, max_size=7)))
    hours = []
    for _ in range(draw(st.integers(0, 2))):
        a, b = sorted(draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=2, max_size=2,
                                    unique=True)))
        begin = dt.time(a // 60, a % 60)
        finish = dt.time(0, 0) if draw(st.booleans()) and a else dt.time(b // 60, b % 60)
        hours.append((begin, finish))
    return Window(start=start, end=end, weekdays=weekdays, hours=tuple(hours))


def line_matches() -> st.SearchStrategy[LineMatch]:
    """Line matches over :data:`CATEGORIES` and :data:`SKUS` (sometimes every line)."""
    return st.builds(
        LineMatch,
        categories=st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=2).map(tuple),
        skus=st.lists(st.sampled_from(SKUS), unique=True, max_size=2).map(tuple),
    )


def conditions() -> st.SearchStrategy[Condition]:
    """Valid conditions, nested with AllOf / AnyOf / Not."""
    names = st.sampled_from(("segment", "age", "since"))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 50),
                        st.sampled_from(("vip", "b", "2026-01-01")), _amounts(50))
    attribute = st.one_of(
        st.builds(Attribute, scope=st.sampled_from(("member", "order", "event")), name=names,
                  op=st.sampled_from(("eq", "ne")), value=scalars),
        st.builds(Attribute, scope=st.sampled_from(("member", "order")), name=names,
                  op=st.sampled_from(("in", "not_in")),
                  value=st.lists(scalars, max_size=3).map(tuple)),
        st.builds(Attribute, scope=st.just("member"), name=names,
                  op=st.sampled_from(("gt", "gte", "lt", "lte")),
                  value=st.one_of(st.integers(0, 50), _amounts(50), st.just("2026-01-01"))),
        st.builds(Attribute, scope=st.just("member"), name=names, op=st.just("exists")),
    )
    leaves: st.SearchStrategy[Condition] = st.one_of(
        st.builds(MinNet, amount=_amounts(80)),
        st.just(FirstOrder()),
        st.builds(TierIn, tiers=st.lists(st.sampled_from(_TIERS), min_size=1, max_size=2,
                                         unique=True).map(tuple)),
        st.builds(ChannelIn, channels=st.lists(st.sampled_from(_CHANNELS), min_size=1,
                                               max_size=2, unique=True).map(tuple)),
        st.builds(StoreIn, stores=st.just(("berlin",))),
        st.builds(MinTenure, years=st.integers(0, 3)),
        attribute,
    )

    def extend(inner: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
        parts = st.lists(inner, min_size=1, max_size=3).map(tuple)
        return st.one_of(st.builds(AllOf, conditions=parts), st.builds(AnyOf, conditions=parts),
                         st.builds(Not, condition=inner))

    return st.recursive(leaves, extend, max_leaves=4)


@st.composite
def _rule(draw: st.DrawFn, rule_id: str, groups: tuple[str, ...], kinds: tuple[str, ...],
          with_conditions: bool) -> Rule:
    kind = draw(st.sampled_from(kinds))
    common: dict[str, Any] = {
        "id": rule_id,
        "description": draw(st.sampled_from(("", "a rule"))),
        "priority": draw(st.integers(-2, 2)),
        "exclusive": draw(st.booleans()) and draw(st.booleans()),
        "group": draw(st.none() | st.sampled_from(groups)) if groups else None,
        "window": draw(st.none() | st.none() | windows()),
        "condition": draw(st.none() | conditions()) if with_conditions else None,
        "caps": tuple(draw(st.lists(caps(), max_size=2))),
    }
    match = draw(st.none() | line_matches())
    if kind == "rate":
        return RateRule(**common, points=draw(_amounts(5)),
                        per=draw(st.sampled_from((Decimal(1), Decimal(10), Decimal("0.5")))),
                        base=draw(st.sampled_from(Base)), match=match)
    if kind == "multiplier":
        return MultiplierRule(**common, factor=draw(_amounts(4)), match=match)
    if kind == "fixed":
        return FixedRule(**common, points=draw(st.integers(0, 100)), per_item=draw(st.booleans()),
                         match=match)
    if kind == "stamp_card":
        counts = draw(st.sampled_from(("orders", "items", "events")))
        points = draw(st.integers(0, 50))
        reward = draw(st.none() | st.just("free_coffee")) if points else "free_coffee"
        if counts == "events":
            return StampCardRule(**common, every=draw(st.integers(1, 10)), points=points,
                                 reward=reward, counts=counts,
                                 event=draw(st.sampled_from(_EVENT_TYPES)))
        return StampCardRule(**common, every=draw(st.integers(1, 10)), points=points,
                             reward=reward, counts=counts, match=match)
    return EventBonusRule(**common, event=draw(st.sampled_from(_EVENT_TYPES)),
                          points=draw(st.integers(0, 300)))


_KINDS = ("rate", "multiplier", "fixed", "stamp_card", "event_bonus")


@st.composite
def earning_policies(
    draw: st.DrawFn,
    *,
    max_rules: int = 6,
    kinds: tuple[str, ...] = _KINDS,
    with_conditions: bool = True,
) -> EarningPolicy:
    """Valid earning policies: up to ``max_rules`` rules of ``kinds`` (``"rate"``,
    ``"multiplier"``, ``"fixed"``, ``"stamp_card"``, ``"event_bonus"``) with random
    windows, conditions (unless ``with_conditions=False``), caps and groups, and any
    rounding, stacking and per-order maximum. Rule ids are ``r0``, ``r1``..."""
    group_count = draw(st.integers(0, 2))
    groups = tuple(RuleGroup(f"g{i}", tuple(draw(st.lists(caps(), max_size=2))))
                   for i in range(group_count))
    names = tuple(g.name for g in groups)
    rules = tuple(draw(_rule(f"r{i}", names, kinds, with_conditions))
                  for i in range(draw(st.integers(0, max_rules))))
    return EarningPolicy(
        rules=rules, groups=groups, rounding=draw(st.sampled_from(Rounding)),
        stacking=draw(st.sampled_from(Stacking)),
        max_points_per_order=draw(st.none() | st.none() | st.integers(0, 1000)),
    )


@st.composite
def _line(draw: st.DrawFn, sku: str, currency: str) -> OrderLine:
    quantity = draw(st.integers(1, 6))
    price = draw(_amounts(60))
    gross = price * quantity
    discount = None
    if draw(st.booleans()) and gross:
        share = draw(st.integers(0, 100))
        discount = Money((gross * share / 100).quantize(Decimal("0.01"), rounding="ROUND_FLOOR"),
                         currency)
    return OrderLine(sku=sku, quantity=quantity, unit_price=Money(price, currency),
                     category=draw(st.none() | st.sampled_from(CATEGORIES)), discount=discount)


@st.composite
def orders(
    draw: st.DrawFn,
    *,
    member_id: str = "m",
    currency: str = "EUR",
    placed_at: st.SearchStrategy[dt.datetime] | None = None,
    max_lines: int = 5,
    min_lines: int = 1,
) -> Order:
    """Valid orders of ``member_id``: ``min_lines``..``max_lines`` lines with distinct
    SKUs from :data:`SKUS`, random quantities, prices, discounts and categories, maybe
    shipping, a channel, a store and a ``segment`` attribute."""
    skus = draw(st.lists(st.sampled_from(SKUS), unique=True, min_size=min_lines,
                         max_size=min(max_lines, len(SKUS))))
    return Order(
        id=f"o-{draw(st.integers(0, 10**9))}",
        member_id=member_id,
        placed_at=draw(placed_at if placed_at is not None else instants()),
        currency=currency,
        lines=tuple(draw(_line(sku, currency)) for sku in skus),
        shipping=draw(st.none() | _amounts(10).map(lambda a: Money(a, currency))),
        channel=draw(st.none() | st.sampled_from(_CHANNELS)),
        store=draw(st.none() | st.just("berlin")),
        attributes=draw(st.sampled_from(({}, {"segment": "vip"}, {"age": 30}))),
    )


@st.composite
def events(
    draw: st.DrawFn,
    *,
    member_id: str = "m",
    occurred_at: st.SearchStrategy[dt.datetime] | None = None,
) -> Event:
    """Valid events of ``member_id``: sign-ups, birthdays, visits or a custom type."""
    return Event(
        id=f"e-{draw(st.integers(0, 10**9))}",
        type=draw(st.sampled_from(_EVENT_TYPES)),
        member_id=member_id,
        occurred_at=draw(occurred_at if occurred_at is not None else instants()),
        attributes=draw(st.sampled_from(({}, {"segment": "vip"}))),
    )
