"""Every public result and record has a JSON form (issue 24, "JSON-ready results").

Every attrs class of ``loyaltykit.__all__``, ``loyaltykit.analytics.__all__`` and
``loyaltykit.plots.__all__`` is a
:class:`loyaltykit._json.JsonForm`: ``to_dict()`` gives plain data that
:func:`json.dumps` writes without a custom encoder, ``to_json()`` that text. The
instances checked are everything the documentation's examples leave behind (each
page run as ``tests/package/test_docs.py`` runs it), plus, built here, the few types
no page keeps in a variable: a new public type needs an example here or in the docs,
or :func:`test_every_public_type_has_an_example` fails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import types
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.package.test_docs import FRESH_INTERPRETER, find_docs, parse_blocks
from tests.package.test_public_api import _modules_after

import loyaltykit
import loyaltykit.analytics
import loyaltykit.plots
from loyaltykit import (
    AnyOf,
    Attribute,
    Balance,
    ChannelIn,
    CustomReward,
    Cycle,
    EarningPolicy,
    Event,
    Identity,
    Loyalty,
    MemberNotFound,
    MinTenure,
    Money,
    Not,
    Order,
    OrderLine,
    Outcome,
    PercentDiscount,
    Program,
    RateRule,
    ReferralCase,
    SameEmail,
    SameFingerprint,
    Source,
    StoreIn,
    TestClock,
    Tier,
    TierPolicy,
    Velocity,
)
from loyaltykit._json import JsonForm, to_data
from loyaltykit.memory import MemoryStorage

PUBLIC = sorted(
    {value for module in (loyaltykit, loyaltykit.analytics, loyaltykit.plots)
     for name in module.__all__
     if isinstance(value := getattr(module, name), type) and attrs.has(value)},
    key=lambda cls: cls.__name__)

T0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def _walk(value: Any, found: dict[type, list[Any]], seen: set[int]) -> None:
    """Collect the public attrs instances in ``value`` (nested ones too), a few a type."""
    if id(value) in seen:
        return
    seen.add(id(value))
    cls = type(value)
    if attrs.has(cls):
        if cls in PUBLIC_SET and len(found[cls]) < 3:
            found[cls].append(value)
        for field in attrs.fields(cls):
            _walk(getattr(value, field.name), found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, found, seen)


PUBLIC_SET = frozenset(PUBLIC)


def _from_docs(directory: Path) -> Iterator[Any]:
    """What every page's examples leave in their namespace (run in ``directory``)."""
    for doc in find_docs():
        text = doc.read_text(encoding="utf-8")
        blocks = [b for b in parse_blocks(text) if b.runnable]
        # a page that sets process-wide state once (Django's settings) runs only in a
        # fresh interpreter: the docs' test runs it there
        if not blocks or FRESH_INTERPRETER in text.splitlines():
            continue
        name = "_loyaltykit_json_" + re.sub(r"\W", "_", doc.name)
        module = types.ModuleType(name)
        module.__file__ = str(doc)
        sys.modules[name] = module
        try:
            for block in blocks:
                exec(compile("\n" * (block.line - 1) + block.source, str(doc), "exec"),
                     module.__dict__)
            yield from list(module.__dict__.values())
        finally:
            del sys.modules[name]


def _by_hand() -> Iterator[Any]:
    """The types no documentation page keeps in a variable."""
    program = Program(id="json", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                      tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 50))))
    loyalty = Loyalty(program, MemoryStorage(), clock=TestClock(T0))
    for member in ("alice", "bob"):
        yield loyalty.enrol(member)
        yield loyalty.earn(member, 100, key=f"earn-{member}")
    yield loyalty.record_order(Order(
        id="o1", member_id="alice", currency="EUR", placed_at=T0 - dt.timedelta(hours=1),
        lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),)))
    yield loyalty.order("o1"), list(loyalty.reports.purchases())
    yield loyalty.tiers.history("alice")
    month = T0.replace(day=1), T0 + dt.timedelta(days=30)
    yield (loyaltykit.plots.liability_over_time(loyalty, "month", *month),
           loyaltykit.plots.tiers_over_time(loyalty, "month", *month))
    yield loyalty.reports.revenue("month", T0.replace(day=1), T0 + dt.timedelta(days=30))
    yield loyalty.bulk_earn({"alice": 5, "bob": 7}, key="bulk")
    yield loyalty.transfer("alice", "bob", 10, key="transfer")
    hold = loyalty.hold("alice", 20, key="hold", ttl=dt.timedelta(minutes=15))
    yield hold, loyalty.hold_info(hold.hold_id)
    yield loyalty.events.ack("api", loyalty.events.read("api")[-1])
    yield loyalty.events.consumers()
    yield AnyOf((ChannelIn(("web",)), Not(StoreIn(("s1",))), MinTenure(years=1),
                 Attribute("member", "vip", "eq", True)))
    yield CustomReward({"gift": "mug"}), PercentDiscount(Decimal("12.5"))
    yield Event(id="e1", type="review", member_id="alice", occurred_at=T0,
                attributes={"stars": 5})
    yield Identity(email="a@example.com", payment="card-1", device="phone-1")
    case = ReferralCase(referrer_id="alice", referee_id="bob", at=T0, source=Source.CUSTOMER,
                        referrer_marks=frozenset({("email", "x")}),
                        referee_marks=frozenset({("email", "x")}),
                        last_hour=1, last_day=2, chain=("bob", "alice"))
    checks = (SameEmail(), SameFingerprint("payment", Outcome.BLOCK), Velocity(1, 2), Cycle())
    yield case, checks, [check(case) for check in checks]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[type, list[Any]]:
    directory = tmp_path_factory.mktemp("json-docs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        found: dict[type, list[Any]] = defaultdict(list)
        seen: set[int] = set()
        for value in [*_from_docs(directory), *_by_hand()]:
            _walk(value, found, seen)
    return found


def test_every_public_type_has_the_json_form() -> None:
    missing = [cls.__name__ for cls in PUBLIC if not issubclass(cls, JsonForm)]
    assert missing == []
    assert len(PUBLIC) > 100  # the collection above really sees the public types


def test_every_public_type_has_an_example(examples: dict[type, list[Any]]) -> None:
    # an abstract base counts as covered by its subclasses' instances
    covered = {base for cls in examples for base in cls.__mro__}
    assert [cls.__name__ for cls in PUBLIC if cls not in covered] == []


_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?P<offset>[+-]\d\d:\d\d)?")


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_to_dict_round_trips_through_json(cls: type, examples: dict[type, list[Any]]) -> None:
    instances = [v for found, values in examples.items() if issubclass(found, cls)
                 for v in values]
    assert instances, f"no example of {cls.__name__}"
    for value in instances:
        data = value.to_dict()
        assert type(data) is dict
        text = json.dumps(data)  # no custom encoder: plain data only
        assert json.loads(text) == data
        assert json.loads(value.to_json()) == data
        # an instant carries its offset (a date has no time part, so is not matched)
        naive = [s for s in _strings(data)
                 if (m := _INSTANT.fullmatch(s)) is not None and m["offset"] is None]
        assert naive == []


def test_the_form_of_a_result() -> None:
    """The documented convention on one nested result: money as amount and currency
    text, UUIDs as text, instants as ISO 8601 with offset, enums as values."""
    program = Program(id="json", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    loyalty = Loyalty(program, MemoryStorage(), clock=TestClock(T0))
    loyalty.enrol("alice")
    result = loyalty.earn("alice", 42, key="k")
    data = result.to_dict()
    assert data["transaction_id"] == str(result.transaction_id)
    assert data["kind"] == "earn"
    assert data["occurred_at"] == "2026-03-02T09:30:00+00:00"
    assert data["related_ids"] == []
    assert data["balance"] == result.balance.to_dict()
    assert data["balance"]["available"] == 42
    assert data["balance"]["next_expiring_at"] is None
    assert loyalty.reports.liability().to_dict()["face_value"] == {"amount": "0.42",
                                                                   "currency": "EUR"}


def test_to_data_convention_on_plain_values() -> None:
    assert to_data({1: Decimal("1.50"), "at": dt.date(2026, 1, 2)}) == {
        "1": "1.50", "at": "2026-01-02"}
    assert to_data(frozenset({"b", "a"})) == ["a", "b"]
    assert to_data(float("nan")) is None
    assert to_data(Money("12.30", "EUR")) == {"amount": "12.30", "currency": "EUR"}
    assert to_data((Source.CUSTOMER, 1.5)) == ["customer", 1.5]
    error = MemberNotFound("member is not enrolled", member_ids=["x"], hostile=object())
    data = to_data(error)
    assert data["code"] == "member_not_found"
    assert data["details"]["member_ids"] == ["x"]
    assert data["details"]["hostile"].startswith("<object")
    json.dumps(data)
    # the offset check above sees a naive instant
    assert _INSTANT.fullmatch("2026-03-02T09:30:00")["offset"] is None
    assert _INSTANT.fullmatch("2026-03-02T09:30:00.5+01:00")["offset"] == "+01:00"


def test_balance_to_dict_is_its_fields() -> None:
    balance = Balance(member_id="m", wallet="points", as_of=T0, available=1, pending=2,
                      held=3, debt=0, total=6, earned=6, spent=0, expired=0, adjusted=0,
                      transferred=0)
    assert balance.to_dict() == {
        "member_id": "m", "wallet": "points", "as_of": "2026-03-02T09:30:00+00:00",
        "available": 1, "pending": 2, "held": 3, "debt": 0, "total": 6, "earned": 6,
        "spent": 0, "expired": 0, "adjusted": 0, "transferred": 0,
        "next_expiring_points": 0, "next_expiring_at": None}


def test_core_import_does_not_import_pydantic() -> None:
    modules = _modules_after("import loyaltykit")
    assert "loyaltykit" in modules
    assert [m for m in modules if m.startswith(("pydantic", "fastapi"))] == []
