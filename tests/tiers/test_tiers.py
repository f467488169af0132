"""Tiers: the ladder as data, bad definitions, and properties of the tier history
(the backends' shared checks are in loyaltykit.testing.contract.tiers, run by
test_tiers_contract.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltykit import (
    Benefits,
    Downgrade,
    InvalidInput,
    InvalidProgram,
    Loyalty,
    Money,
    Program,
    QualificationWindow,
    Storage,
    TestClock,
    Tier,
    TierMetric,
    TierMultiplierRule,
    TierPolicy,
    WindowKind,
)
from loyaltykit._calendar import in_zone, local_date
from loyaltykit._values import to_utc
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.tiers import _berlin, replay_tiers, tier_program


def test_a_program_with_tiers_round_trips_and_loads_from_toml(tmp_path: Path) -> None:
    program = tier_program(window=QualificationWindow(WindowKind.ROLLING_MONTHS, months=6),
                           downgrade=Downgrade.RECOMPUTE, lifetime_gold=True)
    assert program == Program.from_dict(program.to_dict())
    path = tmp_path / "r.toml"
    path.write_text('''
id = "R"
time_zone = "Europe/Berlin"
currency = "EUR"
point_value = { amount = "0.01", currency = "EUR" }

[tiers]
metric = "spend"
window = { kind = "anniversary_year" }
grace_periods = 0

[[tiers.tiers]]
name = "member"
threshold = { amount = "0", currency = "EUR" }

[[tiers.tiers]]
name = "gold"
threshold = { amount = "1000.00", currency = "EUR" }
benefits = { discount_percent = "5", free_shipping = true, custom = { lounge = true } }
''')
    loaded = Program.from_file(path)
    assert loaded.tiers is not None
    assert TierMetric.SPEND is loaded.tiers.metric
    assert WindowKind.ANNIVERSARY_YEAR is loaded.tiers.window.kind
    gold = loaded.tiers.tiers[1]
    assert (Decimal(5), True, {"lounge": True}) == (
        gold.benefits.discount_percent, gold.benefits.free_shipping, gold.benefits.custom)
    assert (0, 1000 * 10_000) == loaded.tiers.thresholds


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["tiers"]["tiers"][0].update(threshold=5), "tiers.member.threshold"),
    (lambda d: d["tiers"]["tiers"][2].update(threshold=400), "tiers.gold.threshold"),
    (lambda d: d["tiers"]["tiers"][1].update(name="Silver"), "tiers.tiers.name"),
    (lambda d: d["tiers"].update(metric="balance"), "tiers.metric"),
    (lambda d: d["tiers"].update(window={"kind": "rolling_months"}), "tiers.window.months"),
    (lambda d: d["tiers"].update(window={"kind": "calendar_year", "months": 3}),
     "tiers.window.months"),
    (lambda d: d["tiers"].update(grace_periods=-1), "tiers.grace_periods"),
    (lambda d: d["tiers"].update(wallet="miles"), "tiers.wallet"),
    (lambda d: d["tiers"].update(metric="spend"), "tiers.member.threshold"),
    (lambda d: d["tiers"]["tiers"][1]["benefits"].update(earn_multiplier=1.5),
     "tiers.benefits.earn_multiplier"),
    (lambda d: d["tiers"]["tiers"][1]["benefits"].update(discount_percent="101"),
     "tiers.benefits.discount_percent"),
    (lambda d: d["tiers"].update(levels=[]), "tiers.levels"),
])
def test_a_bad_ladder_is_refused_naming_the_field(change: object, field: str) -> None:
    data = tier_program().to_dict()
    change(data)  # type: ignore[operator]
    with pytest.raises(InvalidProgram) as caught:
        Program.from_dict(data)
    assert field == caught.value.details["field"]
    assert isinstance(caught.value, ValueError)


def test_spend_thresholds_must_be_in_the_programs_currency() -> None:
    with pytest.raises(InvalidProgram, match="program's currency"):
        Program(id="p", time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"),
                tiers=TierPolicy(metric=TierMetric.SPEND, tiers=(
                    Tier("a", Money(0, "EUR")), Tier("b", Money(10, "USD")))))


def test_bad_tier_calls_raise_typed_errors_and_write_nothing() -> None:
    clock = TestClock(_berlin(2026, 1, 10, 9))
    loyalty = Loyalty(tier_program(), MemoryStorage(), clock=clock)
    loyalty.enrol("m")
    with pytest.raises(InvalidInput):
        loyalty.tiers.assign("m", "platinum", key="a", reason="x")
    with pytest.raises(InvalidInput):
        loyalty.tiers.assign("m", "gold", key="a", reason=" ")
    with pytest.raises(InvalidInput):
        loyalty.tiers.assign("m", "gold", key="a", reason="x", until=_berlin(2026, 1, 1))
    with pytest.raises(InvalidInput):
        loyalty.tiers.assign("m", "gold", key="a", reason="x",
                            until=dt.datetime(2027, 1, 1))  # naive
    assert "member" == loyalty.tiers.status("m").tier
    assert [] == loyalty.tiers.history("m")
    plain = Loyalty(Program(id="plain", time_zone="UTC", currency="EUR",
                            point_value=Money("0.01", "EUR")), MemoryStorage(), clock=clock)
    with pytest.raises(InvalidInput, match="no tiers"):
        plain.tiers.status("m")


def test_the_tier_multiplier_rule_reads_the_tier_at_the_orders_instant() -> None:
    from loyaltykit import EarningPolicy, Order, OrderLine, RateRule

    base = tier_program()
    assert base.tiers is not None
    program = Program(
        id="R", time_zone="Europe/Berlin", currency="EUR", point_value=Money("0.01", "EUR"),
        earning=EarningPolicy(rules=(RateRule(id="base", points=Decimal(1), per=Decimal(1)),
                                     TierMultiplierRule(id="tier"))),
        tiers=base.tiers)
    clock = TestClock(_berlin(2026, 1, 10, 9))
    loyalty = Loyalty(program, MemoryStorage(), clock=clock)
    loyalty.enrol("m")

    def order(order_id: str, euros: str) -> int:
        return loyalty.record_order(Order(
            id=order_id, member_id="m", placed_at=clock.now(), currency="EUR",
            lines=(OrderLine(sku="x", quantity=1, unit_price=Money(euros, "EUR")),))).points

    assert 2000 == order("o1", "2000")  # member: x1
    assert "gold" == loyalty.tiers.status("m").tier
    result = loyalty.record_order(Order(
        id="o2", member_id="m", placed_at=clock.now(), currency="EUR",
        lines=(OrderLine(sku="x", quantity=1, unit_price=Money("100", "EUR")),)))
    assert 200 == result.points  # gold: x2
    assert "x2 (tier gold) on 100 points = +100" == result.evaluation.outcome("tier").explanation
    assert Benefits(earn_multiplier=Decimal(2),
                    free_shipping=True) == loyalty.tiers.status("m").benefits


# -- properties ------------------------------------------------------------------------------

_DAYS = st.integers(min_value=1, max_value=240)
_STEP = st.one_of(
    st.tuples(st.just("earn"), _DAYS, st.integers(min_value=1, max_value=3000)),
    st.tuples(st.just("reverse"), _DAYS, st.just(0)),
    st.tuples(st.just("due"), _DAYS, st.just(0)),
    st.tuples(st.just("manual"), _DAYS, st.integers(min_value=0, max_value=2)),
)


@given(steps=st.lists(_STEP, min_size=1, max_size=25),
       downgrade=st.sampled_from(list(Downgrade)),
       lifetime=st.booleans(), grace=st.integers(min_value=0, max_value=2))
def test_tier_history_is_a_pure_function_of_what_happened(
    steps: list[tuple[str, int, int]], downgrade: Downgrade, lifetime: bool, grace: int
) -> None:
    program = tier_program(downgrade=downgrade, lifetime_gold=lifetime, grace_periods=grace)
    policy = program.tiers
    assert policy is not None
    clock = TestClock(_berlin(2026, 1, 10, 9))
    loyalty = Loyalty(program, MemoryStorage(), clock=clock)
    loyalty.enrol("m")
    enrolled = clock.now()
    happened: list[tuple[str, dt.datetime, int]] = []
    earns: list[tuple[str, int]] = []
    manual: list[tuple[int, dt.datetime | None]] = []
    for i, (kind, days, amount) in enumerate(steps):
        clock.set(clock.now() + dt.timedelta(days=days))
        now = clock.now()
        if kind == "earn":
            earns.append((str(loyalty.earn("m", amount, key=f"e{i}").transaction_id), amount))
            happened.append(("activity", now, amount))
        elif kind == "reverse" and earns:
            tx, amount = earns.pop()
            loyalty.reverse(tx, key=f"r{i}")
            happened.append(("activity", now, -amount))
        elif kind == "reverse":  # nothing to reverse: only time passed, which the
            happened.append(("due", now, 0))  # status read below catches up on
        elif kind == "due":
            loyalty.run_due()
            happened.append(("due", now, 0))
        elif kind == "manual":
            until = now + dt.timedelta(days=200)
            loyalty.tiers.assign("m", policy.tiers[amount].name, key=f"m{i}", reason="test",
                                until=until)
            manual.append((amount, until))
        status = loyalty.tiers.status("m")
        rank = policy.rank(status.tier)
        # never below a lifetime tier reached, nor a manual assignment that holds
        if status.lifetime_floor is not None:
            assert rank >= policy.rank(status.lifetime_floor)
        if manual and manual[-1][1] is not None and now < manual[-1][1]:
            assert rank >= manual[-1][0]
    history = loyalty.tiers.history("m")
    for change in history:
        if change.reason == "evaluation" and downgrade is Downgrade.ONE_LEVEL:
            assert policy.rank(change.from_tier) - policy.rank(change.to_tier) <= 1
    if not manual:  # the replay models activity and due work (manual: see the contract)
        assert replay_tiers(program, "m", enrolled, happened) == [
            (c.at, c.from_tier, c.to_tier, c.reason) for c in history]


# the supported instants end at 9000-01-01T00:00Z (docs/errors.md): outside them every
# tier call refuses with InvalidInput naming the parameter, and writes nothing
_OUTSIDE = [dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-1))),
            dt.datetime(9000, 1, 1, tzinfo=dt.UTC)]


@pytest.mark.parametrize("at", _OUTSIDE, ids=[a.isoformat() for a in _OUTSIDE])
def test_tier_calls_refuse_instants_outside_the_range(storage: Storage, at: dt.datetime
                                                      ) -> None:
    loyalty = Loyalty(tier_program(), storage, clock=TestClock(_berlin(2026, 1, 10, 9)))
    loyalty.enrol("m")
    for name, call in [
        ("until", lambda: loyalty.tiers.assign("m", "gold", key="a", reason="x", until=at)),
        ("at", lambda: loyalty.tiers.assign("m", "gold", key="a", reason="x", at=at)),
        ("since", lambda: loyalty.tiers.notices(since=at)),
        ("at", lambda: loyalty.tiers.as_of("m", at)),
    ]:
        with pytest.raises(InvalidInput) as info:
            call()
        assert InvalidInput is type(info.value)
        assert name in info.value.message and "9000-01-01" in info.value.message
    assert "member" == loyalty.tiers.status("m").tier
    assert [] == loyalty.tiers.history("m")


@pytest.mark.parametrize("kind", list(WindowKind))
def test_tier_windows_and_grace_from_the_last_instant_never_overflow(
        storage: Storage, kind: WindowKind) -> None:
    # the longest grace (100 periods) and notice (366 days) from the last supported
    # instant: every window end, protection and notice stays a valid instant
    last = dt.datetime(9000, 1, 1, tzinfo=dt.UTC) - dt.timedelta(microseconds=1)
    months = 120 if kind is WindowKind.ROLLING_MONTHS else None
    window = QualificationWindow(kind, months=months)
    program = tier_program(window=window, grace_periods=100, notice_days=366)
    clock = TestClock(last - dt.timedelta(days=400))
    loyalty = Loyalty(program, storage, clock=clock)
    loyalty.enrol("m")
    loyalty.earn("m", 2500, key="gold")
    assert "gold" == loyalty.tiers.status("m").tier
    clock.set(last)
    loyalty.run_due()
    status = loyalty.tiers.status("m")
    assert "gold" == status.tier
    if kind is not WindowKind.LIFETIME:
        assert status.protected_until is not None and status.protected_until.year > 9000
    assert "gold" == loyalty.tiers.progress("m").tier
    loyalty.tiers.assign("m", "silver", key="a", reason="x", at=last - dt.timedelta(days=1),
                         until=last)
    assert "silver" == loyalty.tiers.status("m").tier


#: zones whose clocks change at or near midnight, and one that changes by whole days
CALENDAR_ZONES = ("UTC", "America/New_York", "America/Santiago", "America/Havana",
                  "Asia/Beirut", "Pacific/Apia", "Australia/Lord_Howe")


@given(at=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2040, 1, 1),
                       timezones=st.just(dt.UTC)),
       hours=st.lists(st.integers(0, 24 * 400), max_size=8),
       time_zone=st.sampled_from(CALENDAR_ZONES),
       window=st.sampled_from([QualificationWindow(WindowKind.CALENDAR_YEAR),
                               QualificationWindow(WindowKind.ROLLING_MONTHS, months=3)]))
def test_a_windows_period_starts_where_the_calendar_says(
        at: dt.datetime, hours: list[int], time_zone: str, window: QualificationWindow
) -> None:
    # period_start works the start out once per local year or month (start_of's cache):
    # every instant of that year or month, and of the next ones, gets the calendar's answer
    unit = "year" if window.kind is WindowKind.CALENDAR_YEAR else "month"
    for instant in [at, *(at + dt.timedelta(hours=h) for h in hours)]:
        expected = to_utc(in_zone(instant, time_zone).start_of(unit))
        assert expected == window.period_start(instant, time_zone, None)
        assert in_zone(instant, time_zone).date() == local_date(instant, time_zone)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=6, unique=True),
       st.integers(-10, 6000))
def test_qualified_is_the_highest_tier_whose_threshold_the_value_reaches(
        raised: list[int], value: int) -> None:
    thresholds = [0, *sorted(t + 1 for t in raised)]
    policy = TierPolicy(tiers=tuple(Tier(f"t{i}", t) for i, t in enumerate(thresholds)))
    assert max(i for i, t in enumerate(thresholds) if value >= t or i == 0) \
        == policy.qualified(value)
    # worked out once per policy: a history import asks for every order
    assert policy.thresholds is policy.thresholds


def test_the_period_of_instants_in_the_last_period_found_is_not_worked_out_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import loyaltykit._tier_windows as tiers_module

    calls: list[dt.datetime] = []
    start_of = tiers_module.start_of

    def counted(at: dt.datetime, time_zone: str, unit: str) -> dt.datetime:
        calls.append(at)
        return start_of(at, time_zone, unit)

    monkeypatch.setattr(tiers_module, "start_of", counted)
    monkeypatch.setattr(tiers_module, "_last_period", {}, raising=False)
    for kind, months in ((WindowKind.CALENDAR_YEAR, None), (WindowKind.ROLLING_MONTHS, 3)):
        window = QualificationWindow(kind, months=months)
        unit = "year" if kind is WindowKind.CALENDAR_YEAR else "month"
        calls.clear()
        # a day's orders for two months across a year end, in Berlin
        instants = [_berlin(2025, 12, 1) + dt.timedelta(hours=7 * i) for i in range(200)]
        found = [window.period_start(at, "Europe/Berlin", None) for at in instants]
        assert found == [to_utc(in_zone(at, "Europe/Berlin").start_of(unit))
                         for at in instants]
        assert len(calls) == 2  # once per period met, not once per instant
