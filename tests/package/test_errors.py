"""An error's text never fails and stays short, whatever its details hold."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from loyaltykit import (
    Campaign,
    CodeSpec,
    Event,
    InvalidInput,
    InvalidProgram,
    Loyalty,
    LoyaltyError,
    Money,
    Order,
    OrderLine,
    Program,
    ReferralPolicy,
    ReferralReward,
    TestClock,
    TierPolicy,
)
from loyaltykit._codes import normalise_code
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage


class _Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


def test_a_detail_whose_repr_fails_is_named_by_its_type() -> None:
    error = InvalidInput("bad thing", thing=_Broken(), member_id="m")
    assert "invalid_input: bad thing (thing=<_Broken that cannot be shown>, member_id='m')" \
        == str(error)


def test_a_detail_too_deep_to_repr_does_not_crash_the_log_line() -> None:
    error = LoyaltyError("deep", value=_deep(100_000))
    assert "loyalty_error: deep (value=<list that cannot be shown>)" == str(error)


def test_long_details_are_shortened() -> None:
    text = str(InvalidInput("long", value="x" * 10_000))
    assert text.endswith("...)")
    assert len("invalid_input: long (value=") + 200 + 1 == len(text)


# -- every detail is built safely --------------------------------------------------------
# Each call below builds an error whose details show the bad value. They used repr(),
# so a value whose repr raises (or nests too deep) escaped as that error instead of the
# typed one; shown() never raises.

_START = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
_EUR = Money("1.00", "EUR")


def _program(**fields: Any) -> Program:
    return Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"), **fields)


def _loyalty() -> Loyalty:
    loyalty = Loyalty(_program(referrals=ReferralPolicy(reward=ReferralReward(1, 1))),
                      MemoryStorage(), clock=TestClock(_START))
    loyalty.enrol("alice")
    return loyalty


def _order(**fields: Any) -> Order:
    base: dict[str, Any] = {"id": "o1", "member_id": "alice", "placed_at": _START,
                            "currency": "EUR",
                            "lines": (OrderLine(sku="x", quantity=1, unit_price=_EUR),)}
    return Order(**{**base, **fields})


SITES: list[tuple[str, Callable[[Any], object]]] = [
    ("Program.tiers", lambda bad: _program(tiers=bad)),
    ("Program.referrals", lambda bad: _program(referrals=bad)),
    ("Program.from_dict point_value", lambda bad: Program.from_dict(
        {**_program().to_dict(), "point_value": bad})),
    ("TierPolicy.from_dict", lambda bad: TierPolicy.from_dict(bad)),
    ("ReferralPolicy.reward", lambda bad: ReferralPolicy(reward=bad)),
    ("ReferralPolicy.cap", lambda bad: ReferralPolicy(reward=ReferralReward(), cap=bad)),
    ("ReferralPolicy.code", lambda bad: ReferralPolicy(reward=ReferralReward(), code=bad)),
    ("Campaign.starts_at", lambda bad: Campaign("c", bad, _START, ReferralReward())),
    ("CodeSpec.from_dict", lambda bad: CodeSpec.from_dict(bad)),
    ("normalise_code", lambda bad: normalise_code(bad)),
    ("Order.lines", lambda bad: _order(lines=bad)),
    ("OrderLine.unit_price", lambda bad: OrderLine(sku="x", quantity=1, unit_price=bad)),
    ("Order.attributes", lambda bad: _order(attributes=bad)),
    ("Event.attributes", lambda bad: Event(id="e1", type="review", member_id="alice",
                                           occurred_at=_START, attributes=bad)),
    ("Money + x", lambda bad: _EUR + bad),
    ("Money * x", lambda bad: _EUR * bad),
    ("Loyalty program", lambda bad: Loyalty(bad, MemoryStorage())),
    ("Loyalty storage", lambda bad: Loyalty(_program(), bad)),
    ("Loyalty clock", lambda bad: Loyalty(_program(), MemoryStorage(), clock=bad)),
    ("Loyalty fraud_checks", lambda bad: Loyalty(_program(), MemoryStorage(),
                                                 fraud_checks=bad)),
    ("SQLStorage bind", lambda bad: SQLStorage(bad)),
    ("record_order", lambda bad: _loyalty().record_order(bad)),
    ("quote", lambda bad: _loyalty().quote(bad)),
    ("record_event", lambda bad: _loyalty().record_event(bad)),
    ("record_return lines", lambda bad: _loyalty().record_return("o1", bad, key="k")),
    ("bulk_earn awards", lambda bad: _loyalty().bulk_earn(bad, key="k")),
    ("hold ttl", lambda bad: _loyalty().hold("alice", 1, key="k", ttl=bad)),
    ("tiers.assign tier", lambda bad: _loyalty().tiers.assign("alice", bad, key="k",
                                                              reason="r")),
    ("issue_code source", lambda bad: _loyalty().referrals.issue_code("alice", source=bad)),
    ("enrol identity", lambda bad: _loyalty().enrol("bob", identity=bad)),
]


@pytest.mark.parametrize("bad", [_Broken(), _deep(100_000)], ids=["repr raises", "too deep"])
@pytest.mark.parametrize("call", [s[1] for s in SITES], ids=[s[0] for s in SITES])
def test_a_bad_value_whose_repr_fails_still_gets_the_typed_error(
        call: Callable[[Any], object], bad: object) -> None:
    with pytest.raises(LoyaltyError) as raised:
        call(bad)
    assert isinstance(raised.value, ValueError)
    assert raised.value.code in str(raised.value)  # the log line is built


@pytest.mark.parametrize("parse", [
    ReferralPolicy.from_dict, TierPolicy.from_dict, CodeSpec.from_dict,
    lambda data: Program.from_dict({**_program().to_dict(), **data}),
], ids=["ReferralPolicy", "TierPolicy", "CodeSpec", "Program"])
def test_unknown_keys_of_any_type_are_named_not_tripped_over(
        parse: Callable[[Any], object]) -> None:
    # sorting the unknown keys 1 and "zz" to name the first raised TypeError
    with pytest.raises(InvalidProgram) as raised:
        parse({1: 2, "zz": 3})
    assert "unknown field" in raised.value.message
