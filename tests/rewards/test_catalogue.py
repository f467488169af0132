"""Rewards: the catalogue as data (construction, bad fields named, round trips through
dict and TOML, garbage definitions) and the pure calendar decisions the service takes
on it (availability, per-member periods across DST, voucher expiry)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import _fuzz
from loyaltykit import (
    CapPeriod,
    CodeSpec,
    CustomReward,
    FixedDiscount,
    FreeItem,
    InvalidProgram,
    Money,
    PercentDiscount,
    Program,
    Reward,
    RewardLimit,
    RewardPolicy,
    Tier,
    TierPolicy,
)
from loyaltykit._rewards import (
    Availability,
    availability,
    period_bounds,
    rolling_count,
    voucher_expires_at,
)
from loyaltykit._validate import MAX_INSTANT

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def coffee(**changes: Any) -> Reward:
    """Scenario V's ``coffee``."""
    fields: dict[str, Any] = {
        "id": "coffee", "name": "Coffee voucher", "cost": 500,
        "kind": FixedDiscount(Money("5.00", "EUR")), "stock": 2,
        "per_member": RewardLimit(1, CapPeriod.MONTH),
        "starts_at": berlin(2026, 4, 1), "ends_at": berlin(2026, 5, 1), "valid_days": 30,
    }
    return Reward(**{**fields, **changes})


MUG = Reward("mug", "Mug", 1200, FreeItem("mug"), tiers=frozenset({"gold"}))


def program(rewards: RewardPolicy | None = None, **changes: Any) -> Program:
    """Scenario V's program (Europe/Berlin, EUR) with its catalogue and a gold tier."""
    fields: dict[str, Any] = {
        "id": "V", "time_zone": "Europe/Berlin", "currency": "EUR",
        "point_value": Money("0.01", "EUR"),
        "tiers": TierPolicy(tiers=(Tier("member", 0), Tier("gold", 5000))),
        "rewards": rewards if rewards is not None else RewardPolicy(catalogue=(coffee(), MUG)),
    }
    return Program(**{**fields, **changes})


# -- construction and round trips ----------------------------------------------------------


def test_scenario_v_catalogue_is_built_and_read_by_id() -> None:
    policy = program().rewards
    assert policy is not None
    assert ["coffee", "mug"] == sorted(policy.by_id)
    assert policy.by_id["coffee"].starts_at == dt.datetime(2026, 3, 31, 22, tzinfo=UTC)
    assert frozenset({"gold"}) == policy.by_id["mug"].tiers
    assert policy.code == CodeSpec()


def test_every_kind_and_option_round_trips_through_the_program_dict() -> None:
    rewards = RewardPolicy(catalogue=(
        coffee(),
        MUG,
        Reward("pct", "10% off", 800, PercentDiscount(Decimal("12.5")), global_limit=100,
               per_member=RewardLimit(2, CapPeriod.ROLLING, days=7),
               valid_until=berlin(2026, 12, 31), refund_on_expiry=True),
        Reward("vip", "Backstage", 9000, CustomReward({"event": "launch", "seats": [1, 2]}),
               stock=0, per_member=RewardLimit(1)),
    ), wallet="points", code=CodeSpec(length=12, prefix="R"))
    p = program(rewards)
    data = json.loads(json.dumps(p.to_dict()))  # JSON-compatible
    assert p == Program.from_dict(data)
    assert rewards == RewardPolicy.from_dict(rewards.to_dict())
    for reward in rewards.catalogue:
        assert reward == Reward.from_dict(reward.to_dict())


def test_a_program_without_rewards_still_loads_from_an_older_definition() -> None:
    p = Program(id="V", time_zone="Europe/Berlin", currency="EUR",
                point_value=Money("0.01", "EUR"))
    assert p.rewards is None
    data = p.to_dict()
    assert data["rewards"] is None
    del data["rewards"]  # stored before rewards existed
    assert Program.from_dict(data).rewards is None


def test_the_catalogue_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('''
id = "V"
time_zone = "Europe/Berlin"
currency = "EUR"
point_value = { amount = "0.01", currency = "EUR" }

[tiers]
tiers = [{ name = "member", threshold = 0 }, { name = "gold", threshold = 5000 }]

[rewards]
wallet = "points"

[[rewards.catalogue]]
id = "coffee"
name = "Coffee voucher"
cost = 500
kind = { type = "fixed_discount", amount = "5.00", currency = "EUR" }
stock = 2
per_member = { count = 1, period = "month" }
starts_at = 2026-04-01T00:00:00+02:00
ends_at = 2026-05-01T00:00:00+02:00
valid_days = 30

[[rewards.catalogue]]
id = "mug"
name = "Mug"
cost = 1200
kind = { type = "free_item", sku = "mug" }
tiers = ["gold"]
''')
    loaded = Program.from_file(path)
    assert loaded == program(RewardPolicy(catalogue=(coffee(), MUG), wallet="points"))


def test_a_naive_toml_datetime_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('''
id = "V"
time_zone = "Europe/Berlin"
currency = "EUR"
point_value = { amount = "0.01", currency = "EUR" }

[[rewards.catalogue]]
id = "coffee"
name = "Coffee"
cost = 500
kind = { type = "percent_discount", percent = "10" }
starts_at = 2026-04-01T00:00:00
''')
    with pytest.raises(InvalidProgram) as caught:
        Program.from_file(path)
    assert "rewards.catalogue[coffee].starts_at" == caught.value.details["field"]


# -- bad definitions: every field named -----------------------------------------------------

Change = Callable[[dict[str, Any]], object]


def _reward(data: dict[str, Any], i: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = data["rewards"]["catalogue"][i]
    return entry


BAD: list[tuple[Change, str]] = [
    (lambda d: _reward(d).update(cost=0), "rewards.catalogue[coffee].cost"),
    (lambda d: _reward(d).update(cost=10**16), "rewards.catalogue[coffee].cost"),
    (lambda d: _reward(d).update(cost="500"), "rewards.catalogue[coffee].cost"),
    (lambda d: _reward(d).update(cost=True), "rewards.catalogue[coffee].cost"),
    (lambda d: _reward(d).update(name=""), "rewards.catalogue[coffee].name"),
    (lambda d: _reward(d).update(name="   "), "rewards.catalogue[coffee].name"),
    (lambda d: _reward(d).update(name="a\x00b"), "rewards.catalogue[coffee].name"),
    (lambda d: _reward(d).update(name="x" * 201), "rewards.catalogue[coffee].name"),
    (lambda d: _reward(d).update(id="1coffee"), "rewards.catalogue[0].id"),
    (lambda d: _reward(d, 1).update(id="coffee"), "rewards.catalogue[coffee].id"),
    (lambda d: _reward(d).pop("cost"), "rewards.catalogue[coffee].cost"),
    (lambda d: _reward(d).update(colour="red"), "rewards.catalogue[coffee].colour"),
    (lambda d: _reward(d).update(stock=-1), "rewards.catalogue[coffee].stock"),
    (lambda d: _reward(d).update(global_limit=0), "rewards.catalogue[coffee].global_limit"),
    (lambda d: _reward(d).update(starts_at="yesterday"), "rewards.catalogue[coffee].starts_at"),
    (lambda d: _reward(d).update(starts_at="2026-04-01T00:00:00"),
     "rewards.catalogue[coffee].starts_at"),
    (lambda d: _reward(d).update(ends_at="0001-01-01T00:00:00+00:00"),
     "rewards.catalogue[coffee].ends_at"),
    (lambda d: _reward(d).update(ends_at="2026-03-01T00:00:00+01:00"),
     "rewards.catalogue[coffee].ends_at"),
    (lambda d: _reward(d).update(tiers="gold"), "rewards.catalogue[coffee].tiers"),
    (lambda d: _reward(d).update(tiers=["Gold"]), "rewards.catalogue[coffee].tiers"),
    (lambda d: _reward(d).update(tiers=["platinum"]), "rewards.catalogue[coffee].tiers"),
    (lambda d: _reward(d).update(valid_days=0), "rewards.catalogue[coffee].valid_days"),
    (lambda d: _reward(d).update(valid_until="2026-06-01T00:00:00+02:00"),
     "rewards.catalogue[coffee].valid_until"),
    (lambda d: _reward(d).update(refund_on_expiry="yes"),
     "rewards.catalogue[coffee].refund_on_expiry"),
    (lambda d: _reward(d)["per_member"].update(count=0),
     "rewards.catalogue[coffee].per_member.count"),
    (lambda d: _reward(d)["per_member"].update(period="order"),
     "rewards.catalogue[coffee].per_member.period"),
    (lambda d: _reward(d)["per_member"].update(period="fortnight"),
     "rewards.catalogue[coffee].per_member.period"),
    (lambda d: _reward(d)["per_member"].update(period="rolling"),
     "rewards.catalogue[coffee].per_member.days"),
    (lambda d: _reward(d)["per_member"].update(days=3),
     "rewards.catalogue[coffee].per_member.days"),
    (lambda d: _reward(d)["per_member"].update(often=3),
     "rewards.catalogue[coffee].per_member.often"),
    (lambda d: _reward(d).update(per_member=5), "rewards.catalogue[coffee].per_member"),
    (lambda d: _reward(d)["kind"].update(type="voucher"), "rewards.catalogue[coffee].kind.type"),
    (lambda d: _reward(d).update(kind="fixed_discount"), "rewards.catalogue[coffee].kind"),
    (lambda d: _reward(d)["kind"].update(amount="0"), "rewards.catalogue[coffee].kind.amount"),
    (lambda d: _reward(d)["kind"].update(amount="-5"), "rewards.catalogue[coffee].kind.amount"),
    (lambda d: _reward(d)["kind"].update(amount=5.0), "rewards.catalogue[coffee].kind.amount"),
    (lambda d: _reward(d)["kind"].update(currency="USD"),
     "rewards.catalogue[coffee].kind.amount"),
    (lambda d: _reward(d)["kind"].update(currency="EURO"),
     "rewards.catalogue[coffee].kind.amount"),
    (lambda d: _reward(d)["kind"].pop("currency"), "rewards.catalogue[coffee].kind.currency"),
    (lambda d: _reward(d).update(kind={"type": "percent_discount", "percent": "0"}),
     "rewards.catalogue[coffee].kind.percent"),
    (lambda d: _reward(d).update(kind={"type": "percent_discount", "percent": "100.01"}),
     "rewards.catalogue[coffee].kind.percent"),
    (lambda d: _reward(d).update(kind={"type": "percent_discount", "percent": 12.5}),
     "rewards.catalogue[coffee].kind.percent"),
    (lambda d: _reward(d).update(kind={"type": "percent_discount", "percent": "NaN"}),
     "rewards.catalogue[coffee].kind.percent"),
    (lambda d: _reward(d).update(kind={"type": "free_item", "sku": " mug"}),
     "rewards.catalogue[coffee].kind.sku"),
    (lambda d: _reward(d).update(kind={"type": "free_item", "sku": "m\x01g"}),
     "rewards.catalogue[coffee].kind.sku"),
    (lambda d: _reward(d).update(kind={"type": "free_item", "sku": "mug", "quantity": 0}),
     "rewards.catalogue[coffee].kind.quantity"),
    (lambda d: _reward(d).update(kind={"type": "custom", "payload": [1]}),
     "rewards.catalogue[coffee].kind.payload"),
    (lambda d: _reward(d).update(kind={"type": "custom", "payload": {"a": "\ud800"}}),
     "rewards.catalogue[coffee].kind.payload"),
    (lambda d: _reward(d).update(kind={"type": "custom", "payload": {"a": "x" * 20_000}}),
     "rewards.catalogue[coffee].kind.payload"),
    (lambda d: _reward(d).update(kind={"type": "custom", "payload": _fuzz.nested_dict(40)}),
     "rewards.catalogue[coffee].kind.payload"),
    (lambda d: d["rewards"]["catalogue"].append(3), "rewards.catalogue[2]"),
    (lambda d: d["rewards"].update(catalogue={"coffee": {}}), "rewards.catalogue"),
    (lambda d: d["rewards"].update(wallet="miles"), "rewards.wallet"),
    (lambda d: d["rewards"].update(wallet="Miles"), "rewards.wallet"),
    (lambda d: d["rewards"].update(code={"length": 2}), "rewards.code.length"),
    (lambda d: d["rewards"].update(code={"size": 2}), "rewards.code.size"),
    (lambda d: d["rewards"].update(payment={}), "rewards.payment"),
    (lambda d: d.update(rewards=[]), "rewards"),
    (lambda d: d.update(tiers=None), "rewards.catalogue[mug].tiers"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_a_bad_catalogue_is_refused_naming_the_field(change: Change, field: str) -> None:
    data = program().to_dict()
    change(data)
    with pytest.raises(InvalidProgram) as caught:
        Program.from_dict(data)
    assert field == caught.value.details["field"], caught.value
    assert str(caught.value).startswith(f"invalid_program: {field}")


@pytest.mark.parametrize(("build", "field"), [
    (lambda: coffee(cost=-1), "rewards.catalogue[coffee].cost"),
    (lambda: coffee(name=5), "rewards.catalogue[coffee].name"),
    (lambda: coffee(id=""), "rewards.catalogue.id"),
    (lambda: coffee(kind="5 EUR"), "rewards.catalogue[coffee].kind"),
    (lambda: coffee(starts_at=dt.datetime(2026, 4, 1)), "rewards.catalogue[coffee].starts_at"),
    (lambda: coffee(ends_at=berlin(2026, 4, 1)), "rewards.catalogue[coffee].ends_at"),
    (lambda: coffee(tiers={"gold": 1}), "rewards.catalogue[coffee].tiers"),
    (lambda: coffee(tiers=5), "rewards.catalogue[coffee].tiers"),
    (lambda: coffee(per_member=1), "rewards.catalogue[coffee].per_member"),
    (lambda: coffee(valid_until=berlin(2026, 6, 1)), "rewards.catalogue[coffee].valid_until"),
    (lambda: FixedDiscount("5.00"), "rewards.kind.amount"),
    (lambda: FixedDiscount(Money(0, "EUR")), "rewards.kind.amount"),
    (lambda: PercentDiscount(Decimal("-1")), "rewards.kind.percent"),
    (lambda: PercentDiscount(1.5), "rewards.kind.percent"),
    (lambda: FreeItem("mug", quantity=True), "rewards.kind.quantity"),
    (lambda: FreeItem(""), "rewards.kind.sku"),
    (lambda: CustomReward({1: 2}), "rewards.kind.payload"),
    (lambda: RewardLimit(1, CapPeriod.ORDER), "rewards.per_member.period"),
    (lambda: RewardLimit(1, "month"), "rewards.per_member.period"),
    (lambda: RewardLimit(1, CapPeriod.ROLLING, days=3661), "rewards.per_member.days"),
    (lambda: RewardPolicy(catalogue=(coffee(), coffee())), "rewards.catalogue[coffee].id"),
    (lambda: RewardPolicy(catalogue=(MUG, "coffee")), "rewards.catalogue[1]"),
    (lambda: RewardPolicy(catalogue=coffee()), "rewards.catalogue"),
    (lambda: RewardPolicy(code="short"), "rewards.code"),
    (lambda: program(RewardPolicy(catalogue=(coffee(kind=FixedDiscount(Money(5, "USD"))),))),
     "rewards.catalogue[coffee].kind.amount"),
    (lambda: program(RewardPolicy(wallet="miles")), "rewards.wallet"),
    (lambda: program(tiers=None), "rewards.catalogue[mug].tiers"),
    (lambda: program(rewards="coffee"), "rewards"),
])
def test_bad_values_in_python_are_refused_naming_the_field(build: Callable[[], object],
                                                          field: str) -> None:
    with pytest.raises(InvalidProgram) as caught:
        build()
    assert field == caught.value.details["field"], caught.value
    assert isinstance(caught.value, ValueError)


def test_a_list_catalogue_and_list_tiers_are_taken_as_given() -> None:
    policy = RewardPolicy(catalogue=[MUG])  # type: ignore[arg-type]
    assert (MUG,) == policy.catalogue
    assert frozenset({"gold"}) == coffee(tiers=["gold", "gold"]).tiers
    assert Decimal("12.5") == PercentDiscount("12.5").percent  # type: ignore[arg-type]


# -- round trip property -------------------------------------------------------------------

IDS = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.-]{0,20}\Z")
INSTANTS = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1),
                        timezones=st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York")]))
KINDS = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2).map(
        lambda a: FixedDiscount(Money(a, "EUR"))),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal(100), places=3).map(
        PercentDiscount),
    st.builds(FreeItem, IDS, st.integers(1, 10_000)),
    st.dictionaries(st.text(max_size=5).filter(lambda t: "\x00" not in t),
                    st.one_of(st.integers(), st.booleans(), st.text(max_size=5).filter(
                        lambda t: "\x00" not in t and not any(
                            "\ud800" <= c <= "\udfff" for c in t))),
                    max_size=3).filter(lambda d: not any(
                        "\ud800" <= c <= "\udfff" for k in d for c in k)).map(CustomReward),
)
LIMITS = st.one_of(
    st.none(),
    st.builds(RewardLimit, st.integers(1, 100),
              st.sampled_from([CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH,
                               CapPeriod.QUARTER, CapPeriod.YEAR, CapPeriod.LIFETIME])),
    st.builds(RewardLimit, st.integers(1, 100), st.just(CapPeriod.ROLLING),
              st.integers(1, 3660)),
)


@st.composite
def rewards(draw: st.DrawFn, rid: str) -> Reward:
    start = draw(st.none() | INSTANTS)
    end = draw(st.none() | INSTANTS)
    if start is not None and end is not None and end <= start:
        start, end = None, end
    validity = draw(st.sampled_from(["none", "days", "until"]))
    return Reward(
        id=rid, name=draw(st.text(st.characters(blacklist_categories=("Cs",),
                                                blacklist_characters="\x00"),
                                  min_size=1, max_size=30).filter(str.strip)),
        cost=draw(st.integers(1, 10**15)), kind=draw(KINDS),
        stock=draw(st.none() | st.integers(0, 10**12)), starts_at=start, ends_at=end,
        tiers=draw(st.frozensets(st.sampled_from(["member", "gold"]))),
        per_member=draw(LIMITS), global_limit=draw(st.none() | st.integers(1, 10**12)),
        valid_days=draw(st.integers(1, 3660)) if validity == "days" else None,
        valid_until=draw(INSTANTS) if validity == "until" else None,
        refund_on_expiry=draw(st.booleans()),
    )


@st.composite
def policies(draw: st.DrawFn) -> RewardPolicy:
    ids = draw(st.lists(IDS, max_size=4, unique=True))
    return RewardPolicy(catalogue=tuple(draw(rewards(i)) for i in ids),
                        wallet=draw(st.sampled_from([None, "points"])))


@given(policies())
def test_any_catalogue_round_trips_through_json_and_the_program(policy: RewardPolicy) -> None:
    p = program(policy)
    assert p == Program.from_dict(json.loads(json.dumps(p.to_dict())))
    assert policy == RewardPolicy.from_dict(policy.to_dict())


# -- garbage definitions: InvalidProgram only ----------------------------------------------

GARBAGE = st.sampled_from([None, True, -1, 0, 7, 1.5, "x", "", "1E+999", "NaN", [], {}, [1],
                           ["x"], {"type": "x"}, {"a": 1}, "2026-13-01", "25:00", 10**30,
                           "\x00", "\ud800", "order", "rolling", "gold", "fixed_discount",
                           "2026-04-01T00:00:00", "2026-04-01T00:00:00+02:00"])


@pytest.mark.slow
@given(policies(), st.data())
def test_garbage_catalogues_raise_invalid_program_only(policy: RewardPolicy,
                                                       data: st.DataObject) -> None:
    mangled = _fuzz.mangle({"rewards": policy.to_dict()}, data, GARBAGE)
    base = program(RewardPolicy()).to_dict()
    if isinstance(mangled, dict) and set(mangled) == {"rewards"}:
        base.update(mangled)
    else:
        base["rewards"] = mangled
    try:
        loaded = Program.from_dict(base)
    except InvalidProgram as exc:
        assert isinstance(exc.details["field"], str)
        assert exc.details["field"].startswith("rewards"), exc
        return
    assert loaded == Program.from_dict(loaded.to_dict())


@given(policies(), st.data())
def test_garbage_in_one_reward_is_named_by_its_path(policy: RewardPolicy,
                                                    data: st.DataObject) -> None:
    # a quicker look than the slow test above, on the reward alone
    entry = coffee().to_dict()
    mangled = _fuzz.mangle(entry, data, GARBAGE)
    try:
        Reward.from_dict(mangled)
    except InvalidProgram as exc:
        assert exc.details["field"].startswith("rewards.catalogue["), exc


# -- decisions: availability, periods, voucher expiry --------------------------------------


def test_the_window_is_in_the_programs_time_zone_scenario_v1_step_4() -> None:
    reward = coffee()
    assert Availability.NOT_YET is availability(reward, dt.datetime(2026, 3, 31, 21, 30,
                                                                      tzinfo=UTC))
    assert Availability.AVAILABLE is availability(reward, dt.datetime(2026, 3, 31, 22, 30,
                                                                        tzinfo=UTC))
    assert Availability.AVAILABLE is availability(reward, berlin(2026, 4, 30, 23, 59))
    assert Availability.ENDED is availability(reward, berlin(2026, 5, 1))
    assert Availability.AVAILABLE is availability(MUG, dt.datetime(1900, 1, 1, tzinfo=UTC))
    until = coffee(starts_at=None, ends_at=None, valid_days=None,
                   valid_until=berlin(2026, 6, 1))
    assert Availability.ENDED is availability(until, berlin(2026, 6, 1))


@pytest.mark.parametrize(("period", "at", "start", "end"), [
    # March 2026 has 31 days; Berlin moves to summer time on Sunday 29 March at 02:00
    (CapPeriod.MONTH, berlin(2026, 3, 29, 12), berlin(2026, 3, 1), berlin(2026, 4, 1)),
    (CapPeriod.DAY, berlin(2026, 3, 29, 12), berlin(2026, 3, 29), berlin(2026, 3, 30)),
    (CapPeriod.WEEK, berlin(2026, 3, 29, 12), berlin(2026, 3, 23), berlin(2026, 3, 30)),
    (CapPeriod.WEEK, berlin(2026, 10, 25, 12), berlin(2026, 10, 19), berlin(2026, 10, 26)),
    (CapPeriod.QUARTER, berlin(2026, 4, 10), berlin(2026, 4, 1), berlin(2026, 7, 1)),
    (CapPeriod.YEAR, berlin(2026, 12, 31, 23, 30), berlin(2026, 1, 1), berlin(2027, 1, 1)),
    # scenario V1 step 4's instants: 23:30 Berlin is still March, 00:30 is April
    (CapPeriod.MONTH, dt.datetime(2026, 3, 31, 21, 30, tzinfo=UTC), berlin(2026, 3, 1),
     berlin(2026, 4, 1)),
    (CapPeriod.MONTH, dt.datetime(2026, 3, 31, 22, 30, tzinfo=UTC), berlin(2026, 4, 1),
     berlin(2026, 5, 1)),
])
def test_calendar_periods_are_local_across_dst(period: CapPeriod, at: dt.datetime,
                                               start: dt.datetime, end: dt.datetime) -> None:
    assert (start, end) == period_bounds(RewardLimit(1, period), at, "Europe/Berlin")


def test_a_calendar_day_across_dst_is_23_or_25_hours_long() -> None:
    spring = period_bounds(RewardLimit(1, CapPeriod.DAY), berlin(2026, 3, 29, 12),
                           "Europe/Berlin")
    autumn = period_bounds(RewardLimit(1, CapPeriod.DAY), berlin(2026, 10, 25, 12),
                           "Europe/Berlin")
    assert dt.timedelta(hours=23) == spring[1] - spring[0]  # type: ignore[operator]
    assert dt.timedelta(hours=25) == autumn[1] - autumn[0]  # type: ignore[operator]


def test_a_rolling_limit_counts_wall_clock_days_and_excludes_its_first_instant() -> None:
    at = berlin(2026, 4, 2, 10)  # 7 days earlier is 26 March 10:00, before the change
    start, end = period_bounds(RewardLimit(1, CapPeriod.ROLLING, days=7), at,
                               "Europe/Berlin")
    assert berlin(2026, 3, 26, 10) + dt.timedelta(microseconds=1) == start
    assert at + dt.timedelta(microseconds=1) == end
    assert dt.timedelta(days=7, hours=-1) == end - start  # type: ignore[operator]


def test_a_lifetime_limit_counts_everything() -> None:
    # also what was redeemed after the instant (a redemption backdated before others)
    at = berlin(2026, 4, 2, 10)
    assert (None, MAX_INSTANT) == period_bounds(RewardLimit(3), at, "Europe/Berlin")


def test_a_rolling_limit_holds_in_every_window_holding_the_instant() -> None:
    limit = RewardLimit(2, CapPeriod.ROLLING, days=7)
    at = berlin(2026, 4, 10, 10)
    day = dt.timedelta(days=1)
    assert 0 == rolling_count(limit, at, "Europe/Berlin", [])
    # 7 days before on the wall clock is excluded, the instant itself included
    assert 1 == rolling_count(limit, at, "Europe/Berlin", [at - 7 * day, at])
    # later redemptions: the window ending at each that still holds the instant
    assert 2 == rolling_count(limit, at, "Europe/Berlin", [at + 3 * day, at + 6 * day])
    assert 1 == rolling_count(limit, at, "Europe/Berlin", [at + 3 * day, at + 7 * day])
    assert 1 == rolling_count(limit, at, "Europe/Berlin", [at - 6 * day, at + 2 * day])
    # across the DST change (29 March): 7 wall-clock days are 167 hours
    spring = berlin(2026, 3, 26, 10)
    assert 1 == rolling_count(limit, spring, "Europe/Berlin",
                              [berlin(2026, 4, 2, 10) - dt.timedelta(microseconds=1)])
    assert 0 == rolling_count(limit, spring, "Europe/Berlin", [berlin(2026, 4, 2, 10)])


def test_voucher_expiry_scenario_v3_and_across_dst() -> None:
    issued = berlin(2026, 4, 10, 10)
    assert berlin(2026, 5, 10, 10) == voucher_expires_at(coffee(), issued, "Europe/Berlin")
    # issued in winter time, expires in summer time: still 10:00 on the wall clock
    across = voucher_expires_at(coffee(), berlin(2026, 3, 20, 10), "Europe/Berlin")
    assert berlin(2026, 4, 19, 10) == across
    assert dt.datetime(2026, 4, 19, 8, tzinfo=UTC) == across
    assert dt.datetime(2026, 4, 19, 10, tzinfo=UTC) == voucher_expires_at(
        coffee(), dt.datetime(2026, 3, 20, 10, tzinfo=UTC), "UTC")
    until = coffee(valid_days=None, valid_until=berlin(2026, 6, 1))
    assert berlin(2026, 6, 1) == voucher_expires_at(until, issued, "Europe/Berlin")
    assert voucher_expires_at(MUG, issued, "Europe/Berlin") is None
