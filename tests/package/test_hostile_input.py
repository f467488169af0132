"""Hostile values the public-surface fuzz (test_fuzz_public.py) found escaping, one test
each: values whose ``repr``, ``==`` or ``hash`` raise or recurse, dicts that are not
dicts, paths that are not paths, clocks that are not clocks, and the arguments of the
pure evaluation functions. Each gets a typed error, also the fitting builtin."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest

import _fuzz
from loyaltykit import (
    Attribute,
    Campaign,
    Cap,
    CapPeriod,
    EarningPolicy,
    Event,
    ExpiryPolicy,
    Identity,
    InvalidInput,
    InvalidMoney,
    InvalidProgram,
    LedgerPolicy,
    Loyalty,
    LoyaltyError,
    MemberContext,
    Money,
    NaiveDatetime,
    Order,
    OrderLine,
    Program,
    RateRule,
    ReferralCap,
    ReferralReward,
    StampCardRule,
    TestClock,
    Tier,
    TierPolicy,
    UnknownWallet,
    Velocity,
    default_checks,
    evaluate_event,
    evaluate_order,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine

START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
PROGRAM = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                  point_value=Money("0.01", "EUR"))
EVIL = _fuzz.Evil()
DEEP = _fuzz.nested_dict(_fuzz.DEEP)


def _any(value: object) -> Any:
    """Pass a deliberately ill-typed value past the type checker."""
    return value


def refused(error: type[LoyaltyError], call: Callable[[], object]) -> LoyaltyError:
    """``call`` raises ``error`` (a ValueError), whose text can be built."""
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, ValueError)
    str(info.value)
    repr(info.value)
    return info.value


# -- an error's details never run a value's repr unguarded ------------------------------
# (each raised RuntimeError from Evil.__repr__ or RecursionError from the deep dict, in
# the caller's repr() while building the error, before the error could shorten it)

@pytest.mark.parametrize("bad", [EVIL, DEEP], ids=["evil", "deep"])
@pytest.mark.parametrize(("error", "call"), [
    (InvalidProgram, lambda bad: RateRule(id="r", window=bad)),
    (InvalidProgram, lambda bad: EarningPolicy(rules=(bad,))),
    (InvalidProgram, lambda bad: Tier("gold", 100, benefits=bad)),
    (InvalidProgram, lambda bad: Program(id="p", time_zone="UTC", currency="EUR",
                                         point_value=Money("0.01", "EUR"), tiers=bad)),
    (InvalidInput, lambda bad: Order(id="o", member_id="m", placed_at=START,
                                     currency="EUR", lines=bad)),
    (InvalidInput, lambda bad: OrderLine(sku="s", quantity=1, unit_price=bad)),
    (InvalidMoney, lambda bad: Money("1", "EUR") + bad),
    (InvalidInput, lambda bad: Loyalty(bad, MemoryStorage())),
    (InvalidInput, lambda bad: Loyalty(PROGRAM, bad)),
    (InvalidInput, lambda bad: SQLStorage(bad)),
], ids=["rule", "policy", "tier", "program", "order", "line", "money", "facade-program",
        "facade-storage", "sql-storage"])
def test_error_details_never_fail_on_the_value(error: type[LoyaltyError],
                                               call: Callable[[object], object],
                                               bad: object) -> None:
    refused(error, lambda: call(bad))


def test_identity_that_cannot_be_shown_is_refused() -> None:
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=TestClock(START))
    for bad in (EVIL, DEEP):
        refused(InvalidInput, lambda bad=bad: loyalty.enrol("m", identity=bad))


# -- choices are compared only once the value is of the right type ----------------------
# (each raised RuntimeError from Evil.__eq__ / __hash__, or RecursionError from the
# enum's own message about the deep dict)

_CHOICES: list[Callable[[object], object]] = [
    lambda bad: Cap(points=5, period=bad),
    lambda bad: RateRule(id="r", base=bad),
    lambda bad: EarningPolicy(rounding=bad),
    lambda bad: LedgerPolicy.from_dict({"spend_order": bad}),
]
_COMPARED: list[Callable[[object], object]] = [
    lambda bad: Attribute(scope=bad, name="vip", op="eq", value=True),
    lambda bad: Attribute(scope="member", name="vip", op=bad, value=True),
    lambda bad: StampCardRule(id="s", every=3, points=1, counts=bad),
]


@pytest.mark.parametrize(("call", "bad"), [
    *[(call, bad) for call in _CHOICES for bad in (EVIL, DEEP)],
    *[(call, EVIL) for call in _COMPARED],
], ids=[*[f"{name}-{bad}" for name in ("cap-period", "rule-base", "rounding", "spend-order")
          for bad in ("evil", "deep")], "attribute-scope", "attribute-op", "stamp-counts"])
def test_choices_refuse_values_that_cannot_be_compared(call: Callable[[object], object],
                                                       bad: object) -> None:
    refused(InvalidProgram, lambda: call(bad))


def test_a_wallet_that_cannot_be_compared_is_unknown() -> None:
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=TestClock(START))
    loyalty.enrol("m")
    refused(UnknownWallet, lambda: PROGRAM.wallet(_any(EVIL)))
    refused(UnknownWallet, lambda: loyalty.earn("m", 5, key="k", wallet=_any(EVIL)))
    assert 0 == loyalty.balance("m").available


# -- the parts' from_dict take dicts, and only the fields they know ---------------------

@pytest.mark.parametrize("parse", [
    ExpiryPolicy.from_dict, LedgerPolicy.from_dict, ReferralReward.from_dict,
    ReferralCap.from_dict, Campaign.from_dict,
], ids=["expiry", "ledger", "reward", "cap", "campaign"])
@pytest.mark.parametrize("data", [None, "days", ["days"], 5, {"unknown": 1}, {1: 2}])
def test_part_definitions_must_be_dicts_of_known_fields(parse: Callable[[Any], object],
                                                        data: object) -> None:
    refused(InvalidProgram, lambda: parse(data))


@pytest.mark.parametrize("data", [{"name": "spring", "starts_at": "noon",
                                   "ends_at": "2026-04-01T00:00:00+00:00",
                                   "reward": {"referrer": 1}},
                                  {"name": "spring", "starts_at": "2026-03-01T00:00:00+00:00",
                                   "ends_at": "2026-04-01T00:00:00+00:00",
                                   "reward": {"referrer": 1}, "sources": ["press"]}])
def test_part_definitions_name_the_bad_field(data: dict[str, Any]) -> None:
    refused(InvalidProgram, lambda: Campaign.from_dict(data))


@pytest.mark.parametrize("data", [None, "1.00 EUR", {"amount": "1.00"}, {}, [1, "EUR"],
                                  {"amount": "1", "currency": "EUR", "extra": 1}])
def test_money_from_dict_takes_amount_and_currency(data: object) -> None:
    refused(InvalidMoney, lambda: Money.from_dict(_any(data)))


# -- a program file's path --------------------------------------------------------------

@pytest.mark.parametrize("path", [None, 5, "a\x00b.json", "a\ud800.json"])
def test_a_program_file_needs_a_usable_path(path: object) -> None:
    error = refused(InvalidProgram, lambda: Program.from_file(_any(path)))
    assert "file" == error.details["field"]


# -- the test clock moves by finite amounts, within the datetimes Python holds ----------

@pytest.mark.parametrize("amount", ["1", None, True, math.nan, math.inf, 10**12, -(10**12),
                                    dt.timedelta(days=1)])
def test_the_test_clock_moves_by_finite_amounts(amount: object) -> None:
    clock = TestClock(START)
    refused(InvalidInput, lambda: clock.advance(days=_any(amount)))
    assert START == clock.now()


# -- engines: a URL and options SQLAlchemy can use --------------------------------------

@pytest.mark.parametrize(("url", "options"), [
    (None, {}), (5, {}), (EVIL, {}), ("not a url", {}), ("nosuchdb://x", {}),
    ("sqlite://", {"bogus": 1}), ("sqlite://", {"poolclass": object}),
], ids=["none", "int", "evil", "unparsable", "unknown-dialect", "unknown-option",
        "bad-poolclass"])
def test_engines_refuse_unusable_urls_and_options(url: object, options: dict[str, Any]
                                                  ) -> None:
    refused(InvalidInput, lambda: create_engine(_any(url), **options))
    refused(InvalidInput, lambda: SQLStorage.from_url(_any(url), **options))


def test_an_unusable_url_keeps_its_password_hidden() -> None:
    error = refused(InvalidInput, lambda: create_engine("nosuchdb://user:s3cret@host/db"))
    assert "s3cret" not in str(error)


# -- clocks and fraud checks of the facade ---------------------------------------------

def test_a_clock_must_tell_an_aware_instant() -> None:
    # a datetime has a now() too, telling a naive instant
    refused(NaiveDatetime, lambda: Loyalty(PROGRAM, MemoryStorage(), clock=_any(START)))
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=TestClock(START))
    for bad in (0, None, "now", START, TestClock, EVIL):
        with pytest.raises(InvalidInput):
            loyalty.clock = _any(bad)
    assert START == loyalty.clock.now()


@pytest.mark.parametrize("checks", [[Velocity], {}], ids=["a-class", "empty-dict"])
def test_fraud_checks_are_callables_that_judge(checks: object) -> None:
    refused(InvalidInput, lambda: Loyalty(PROGRAM, MemoryStorage(), fraud_checks=_any(checks)))


# -- the pure evaluation functions and their member context ----------------------------

MEMBER = MemberContext(member_id="m", enrolled_at=START)
ORDER = Order(id="o", member_id="m", placed_at=START, currency="EUR",
              lines=(OrderLine(sku="s", quantity=1, unit_price=Money("10", "EUR")),))
EVENT = Event(id="e", type="birthday", member_id="m", occurred_at=START)


@pytest.mark.parametrize("changes", [
    {"member_id": None}, {"member_id": ""}, {"attributes": "vip"}, {"attributes": {1: 2}},
    {"attributes": DEEP}, {"tier": 5}, {"tier": "Not A Tier"}, {"first_order": "yes"},
    {"first_order": None},
], ids=lambda c: f"{next(iter(c))}={_fuzz_name(next(iter(c.values())))}")
def test_a_member_context_is_checked(changes: dict[str, Any]) -> None:
    refused(InvalidInput, lambda: MemberContext(
        **{"member_id": "m", "enrolled_at": START, **changes}))


def _fuzz_name(value: object) -> str:
    return "deep" if value is DEEP else repr(value)[:20]


@pytest.mark.parametrize("evaluate", [
    lambda member=MEMBER, **kw: evaluate_order(EarningPolicy(), "UTC", ORDER, member, **kw),
    lambda member=MEMBER, **kw: evaluate_event(EarningPolicy(), "UTC", EVENT, member, **kw),
], ids=["order", "event"])
@pytest.mark.parametrize("changes", [
    {"member": None}, {"member": {"member_id": "m"}}, {"usage": None}, {"usage": "rows"},
    {"usage": [None]}, {"version": "1"}, {"version": 0}, {"version": True},
    {"stamps": ["card"]}, {"stamps": {1: 2}},
], ids=lambda c: f"{next(iter(c))}={next(iter(c.values()))!r}")
def test_evaluations_check_their_arguments(evaluate: Callable[..., object],
                                           changes: dict[str, Any]) -> None:
    refused(InvalidInput, lambda: evaluate(**changes))


@pytest.mark.parametrize("previous", ["evaluation", {"points": 1}, 5])
def test_a_previous_evaluation_must_be_one(previous: object) -> None:
    refused(InvalidInput, lambda: evaluate_order(EarningPolicy(), "UTC", ORDER, MEMBER,
                                                 previous=_any(previous)))


def test_default_checks_need_a_referral_policy() -> None:
    refused(InvalidInput, lambda: default_checks(_any(None)))


# -- tier ladders -----------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [-1, 10**15 + 1, 2**63])
def test_a_tier_threshold_is_in_range_on_its_own(threshold: int) -> None:
    refused(InvalidProgram, lambda: Tier("gold", threshold))


@pytest.mark.parametrize("wallet", [5, "", "Points", EVIL, DEEP])
def test_a_tier_wallet_is_a_wallet_name(wallet: object) -> None:
    refused(InvalidProgram, lambda: TierPolicy(tiers=(Tier("member", 0),),
                                               wallet=_any(wallet)))


def test_identity_values_still_work() -> None:
    # the controls: valid values of the same calls pass
    assert "alice@example.com" == Identity(email="alice@example.com").email
    assert CapPeriod.DAY == Cap(points=5, period=CapPeriod.DAY).period
    assert 2 == len(Campaign.from_dict(Campaign(
        "spring", START, START + dt.timedelta(days=1), ReferralReward(1, 1)).to_dict()
    ).to_dict()["reward"])
