"""Orders and events as values: validation, dict round trips and returns
(:meth:`Order.after_returns`)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import _fuzz
from loyaltykit._errors import (
    CurrencyMismatch,
    InvalidEvent,
    InvalidOrder,
    InvalidReturn,
    NaiveDatetime,
)
from loyaltykit._orders import Event, EventType, Order, OrderLine
from loyaltykit._values import Money
from loyaltykit.testing.strategies import events, orders

UTC = dt.UTC
AT = dt.datetime(2026, 3, 14, 17, tzinfo=UTC)


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def e1_order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "id": "o1", "member_id": "ann", "placed_at": AT, "currency": "EUR",
        "lines": (
            OrderLine(sku="beans", category="beans", quantity=2, unit_price=eur("12.50")),
            OrderLine(sku="mug", category="mug", quantity=1, unit_price=eur("9.99")),
        ),
        "shipping": eur("4.90"),
    }
    fields.update(changes)
    return Order(**fields)


# -- lines and orders ---------------------------------------------------------------------


def test_line_net_id_and_defaults() -> None:
    line = OrderLine(sku="tea", quantity=3, unit_price=eur("4.20"), discount=eur("1.00"))
    assert "tea" == line.id
    assert Decimal("11.60") == line.net
    named = OrderLine(sku="tea", quantity=1, unit_price=eur("4.20"), line_id="tea-2")
    assert "tea-2" == named.id
    assert Decimal("4.20") == named.net


def test_order_net_goods_excludes_shipping_and_placed_at_is_utc() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    order = e1_order(placed_at=dt.datetime(2026, 3, 14, 18, tzinfo=berlin))
    assert Decimal("34.99") == order.net_goods
    assert dt.datetime(2026, 3, 14, 17, tzinfo=UTC) == order.placed_at
    assert UTC is order.placed_at.tzinfo


def test_order_accepts_a_list_of_lines() -> None:
    order = e1_order(lines=[OrderLine(sku="a", quantity=1, unit_price=eur("1.00"))])
    assert isinstance(order.lines, tuple)


def test_order_dict_shape() -> None:
    order = e1_order(channel="web", attributes={"tags": ("a", "b")})
    assert {
        "id": "o1", "member_id": "ann", "placed_at": "2026-03-14T17:00:00+00:00",
        "currency": "EUR",
        "lines": [
            {"sku": "beans", "quantity": 2, "unit_price": "12.50", "category": "beans",
             "discount": None, "line_id": None},
            {"sku": "mug", "quantity": 1, "unit_price": "9.99", "category": "mug",
             "discount": None, "line_id": None},
        ],
        "shipping": "4.90", "channel": "web", "store": None,
        "attributes": {"tags": ["a", "b"]},
    } == order.to_dict()


@given(orders())
def test_order_round_trips_through_json(order: Order) -> None:
    data = json.loads(json.dumps(order.to_dict()))
    assert order == Order.from_dict(data)


@given(orders(), st.data())
def test_line_round_trips_on_its_own(order: Order, data: st.DataObject) -> None:
    line = data.draw(st.sampled_from(order.lines))
    assert line == OrderLine.from_dict(json.loads(json.dumps(line.to_dict())))


def _line(**changes: Any) -> OrderLine:
    fields: dict[str, Any] = {"sku": "a", "quantity": 1, "unit_price": eur("1.00")}
    fields.update(changes)
    return OrderLine(**fields)


@pytest.mark.parametrize(("changes", "field"), [
    ({"quantity": -1}, "quantity"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"quantity": 1.0}, "quantity"),
    ({"quantity": "2"}, "quantity"),
    ({"unit_price": eur("-0.01")}, "unit_price"),
    ({"unit_price": "1.00"}, "unit_price"),
    ({"discount": eur("1.01")}, "discount"),
    ({"discount": eur("-0.01")}, "discount"),
    ({"sku": ""}, "sku"),
    ({"sku": " a"}, "sku"),
    ({"sku": 7}, "sku"),
    ({"line_id": ""}, "line_id"),
    ({"category": "x" * 200}, "category"),
])
def test_bad_lines_raise_invalid_order(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOrder) as info:
        _line(**changes)
    assert field == info.value.details["field"]


def test_discount_in_another_currency() -> None:
    with pytest.raises(CurrencyMismatch) as info:
        _line(discount=Money("0.10", "USD"))
    assert "discount" == info.value.details["field"]


@pytest.mark.parametrize(("changes", "error", "field"), [
    ({"lines": (_line(unit_price=Money("1.00", "USD")),)}, CurrencyMismatch,
     "lines[0].unit_price"),
    ({"shipping": Money("1.00", "USD")}, CurrencyMismatch, "shipping"),
    ({"shipping": eur("-1.00")}, InvalidOrder, "shipping"),
    ({"lines": (_line(), _line())}, InvalidOrder, "lines[1].line_id"),
    ({"lines": (_line(), _line(line_id="a"))}, InvalidOrder, "lines[1].line_id"),
    ({"lines": ("a",)}, InvalidOrder, "lines[0]"),
    ({"lines": tuple(_line(sku=f"s{i}") for i in range(1001))}, InvalidOrder, "lines"),
    ({"currency": "eur"}, InvalidOrder, "currency"),
    ({"id": ""}, InvalidOrder, "id"),
    ({"id": "x "}, InvalidOrder, "id"),
    ({"member_id": None}, InvalidOrder, "member_id"),
    ({"channel": ""}, InvalidOrder, "channel"),
    ({"attributes": {"x": object()}}, InvalidOrder, "attributes.x"),
    ({"attributes": {"x": float("nan")}}, InvalidOrder, "attributes.x"),
    ({"attributes": {1: "x"}}, InvalidOrder, "attributes"),
    ({"attributes": "x"}, InvalidOrder, "attributes"),
])
def test_bad_orders_raise_the_typed_error(changes: dict[str, Any], error: type[Exception],
                                          field: str) -> None:
    with pytest.raises(error) as info:
        e1_order(**changes)
    assert field == info.value.details["field"]  # type: ignore[attr-defined]


def test_naive_placed_at() -> None:
    with pytest.raises(NaiveDatetime):
        e1_order(placed_at=dt.datetime(2026, 3, 14, 18))
    with pytest.raises(NaiveDatetime):
        e1_order(placed_at="2026-03-14T18:00:00+01:00")


def _order_dict(**changes: Any) -> dict[str, Any]:
    data = e1_order().to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(("data", "error", "field"), [
    ("not a dict", InvalidOrder, "order"),
    ({k: v for k, v in _order_dict().items() if k != "lines"}, InvalidOrder, "lines"),
    ({k: v for k, v in _order_dict().items() if k != "id"}, InvalidOrder, "id"),
    (_order_dict(lines="beans"), InvalidOrder, "lines"),
    (_order_dict(lines=[7]), InvalidOrder, "lines[0]"),
    (_order_dict(lines=[{"sku": "a"}]), InvalidOrder, "lines[0].quantity"),
    (_order_dict(lines=[{"sku": "a", "quantity": -2, "unit_price": "1"}]), InvalidOrder,
     "lines[0].quantity"),
    (_order_dict(lines=[{"sku": "a", "quantity": 1, "unit_price": "abc"}]), InvalidOrder,
     "lines[0].unit_price"),
    (_order_dict(lines=[{"sku": "a", "quantity": 1, "unit_price": 1.5}]), InvalidOrder,
     "lines[0].unit_price"),
    (_order_dict(lines=[{"sku": "a", "quantity": 1, "unit_price": "1", "currency": "USD"}]),
     CurrencyMismatch, "lines[0].unit_price"),
    (_order_dict(lines=[{"sku": "a", "quantity": 1, "unit_price": "1", "colour": "red"}]),
     InvalidOrder, "lines[0].colour"),
    (_order_dict(placed_at="yesterday"), InvalidOrder, "placed_at"),
    (_order_dict(shipping="free"), InvalidOrder, "shipping"),
    (_order_dict(currency=3), InvalidOrder, "currency"),
    (_order_dict(extra=1), InvalidOrder, "extra"),
])
def test_from_dict_names_the_bad_field(data: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as info:
        Order.from_dict(data)
    assert field == info.value.details["field"]  # type: ignore[attr-defined]


def test_from_dict_with_a_naive_instant() -> None:
    with pytest.raises(NaiveDatetime):
        Order.from_dict(_order_dict(placed_at="2026-03-14T18:00:00"))


# -- returns ------------------------------------------------------------------------------


def test_after_returns_reduces_quantities_and_keeps_shipping() -> None:
    order = e1_order()
    left = order.after_returns({"beans": 1})
    assert (1, 1) == tuple(line.quantity for line in left.lines)
    assert Decimal("22.49") == left.net_goods
    assert eur("4.90") == left.shipping
    assert order.placed_at == left.placed_at and order.id == left.id


def test_fully_returned_lines_are_dropped_and_shipping_is_refunded() -> None:
    order = e1_order()
    assert ("mug",) == tuple(line.id for line in order.after_returns({"beans": 2}).lines)
    nothing = order.after_returns({"beans": 2, "mug": 1})
    assert () == nothing.lines
    assert eur("0") == nothing.shipping
    assert Decimal(0) == nothing.net_goods


def test_discount_is_pro_rated_from_the_order_as_placed() -> None:
    order = e1_order(lines=(OrderLine(sku="tea", quantity=4, unit_price=eur("5.00"),
                                      discount=eur("2.00")),))
    assert eur("1.00") == order.after_returns({"tea": 2}).lines[0].discount
    assert eur("0.50") == order.after_returns({"tea": 3}).lines[0].discount
    assert Decimal("4.50") == order.after_returns({"tea": 3}).net_goods


def test_no_returns_is_the_order_itself() -> None:
    order = e1_order()
    assert order == order.after_returns({})


@pytest.mark.parametrize("returned", [
    {"cup": 1},
    {"mug": 2},
    {"mug": 0},
    {"mug": -1},
    {"mug": True},
    {"mug": 1.0},
    {1: 1},
])
def test_bad_returns_raise_invalid_return(returned: dict[Any, Any]) -> None:
    with pytest.raises(InvalidReturn) as info:
        e1_order().after_returns(returned)
    assert info.value.details["line_id"] in returned


def test_returns_must_be_a_mapping() -> None:
    with pytest.raises(InvalidReturn):
        e1_order().after_returns([("mug", 1)])  # type: ignore[arg-type]


@given(orders(), st.data())
def test_after_returns_depends_only_on_the_totals(order: Order, data: st.DataObject) -> None:
    """Any split of returns into steps ends where one return of the totals ends, and
    returning everything leaves an empty order worth nothing."""
    totals = {line.id: data.draw(st.integers(0, line.quantity)) for line in order.lines}
    so_far: dict[str, int] = {}
    step = order
    for line_id, total in totals.items():
        while so_far.get(line_id, 0) < total:
            so_far[line_id] = so_far.get(line_id, 0) + data.draw(
                st.integers(1, total - so_far.get(line_id, 0)))
            step = order.after_returns(so_far)
    wanted = {k: v for k, v in totals.items() if v}
    assert order.after_returns(wanted) == step
    everything = order.after_returns({line.id: line.quantity for line in order.lines})
    assert () == everything.lines
    assert Decimal(0) == everything.net_goods


# -- events -------------------------------------------------------------------------------


def test_event_types() -> None:
    assert ("sign_up", "birthday", "anniversary", "review", "visit") == (
        EventType.SIGN_UP, EventType.BIRTHDAY, EventType.ANNIVERSARY, EventType.REVIEW,
        EventType.VISIT)
    custom = Event(id="e1", type="newsletter_opt_in", member_id="ann", occurred_at=AT)
    assert "newsletter_opt_in" == custom.type


@given(events())
def test_event_round_trips_through_json(event: Event) -> None:
    assert event == Event.from_dict(json.loads(json.dumps(event.to_dict())))


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": "Birthday"}, "type"),
    ({"type": "1st"}, "type"),
    ({"type": ""}, "type"),
    ({"type": None}, "type"),
    ({"id": ""}, "id"),
    ({"member_id": " ann"}, "member_id"),
    ({"attributes": {"x": {1, 2}}}, "attributes.x"),
])
def test_bad_events_raise_invalid_event(changes: dict[str, Any], field: str) -> None:
    fields: dict[str, Any] = {"id": "e1", "type": "birthday", "member_id": "ann",
                              "occurred_at": AT}
    fields.update(changes)
    with pytest.raises(InvalidEvent) as info:
        Event(**fields)
    assert field == info.value.details["field"]


@pytest.mark.parametrize(("data", "field"), [
    ([], "event"),
    ({"id": "e", "type": "visit", "member_id": "m"}, "occurred_at"),
    ({"id": "e", "type": "visit", "member_id": "m", "occurred_at": "soon"}, "occurred_at"),
    ({"id": "e", "type": "visit", "member_id": "m", "occurred_at": AT.isoformat(),
      "kind": "x"}, "kind"),
])
def test_event_from_dict_names_the_bad_field(data: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        Event.from_dict(data)
    assert field == info.value.details["field"]


def test_naive_event() -> None:
    with pytest.raises(NaiveDatetime):
        Event(id="e", type="visit", member_id="m", occurred_at=dt.datetime(2026, 1, 1))


# -- garbage in: typed errors out ---------------------------------------------------------

GARBAGE = st.sampled_from([None, True, -1, 0, 7, 1.5, "x", "", "1E+999", "NaN", [], {}, [1],
                           {"a": 1}, "2026-13-01T00:00:00+00:00", 10**30])


def mangle(data: Any, draw: st.DataObject) -> Any:
    """Replace, delete or add one value anywhere in a JSON-like structure."""
    return _fuzz.mangle(data, draw, GARBAGE)


@given(orders(), st.data())
def test_garbage_orders_raise_typed_errors_only(order: Order, data: st.DataObject) -> None:
    try:
        Order.from_dict(mangle(order.to_dict(), data))
    except (InvalidOrder, CurrencyMismatch) as exc:
        assert isinstance(exc.details["field"], str)
    except NaiveDatetime:
        pass


@given(events(), st.data())
def test_garbage_events_raise_typed_errors_only(event: Event, data: st.DataObject) -> None:
    try:
        Event.from_dict(mangle(event.to_dict(), data))
    except InvalidEvent as exc:
        assert isinstance(exc.details["field"], str)
    except NaiveDatetime:
        pass
