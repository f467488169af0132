"""Orders and events: what earning rules turn into points.

An :class:`Order` is what a member bought (lines, shipping, channel, store) at an
instant; an :class:`Event` is something a member did (signed up, had a birthday, wrote
a review, visited a shop...). Both are immutable values that validate on construction:
a bad field raises :class:`~loyaltykit.InvalidOrder` / :class:`~loyaltykit.InvalidEvent`
naming it (``lines[2].quantity``), money in another currency raises
:class:`~loyaltykit.CurrencyMismatch` and a naive datetime
:class:`~loyaltykit.NaiveDatetime`. Both round-trip through JSON-compatible dicts
(amounts as decimal strings, instants in ISO 8601).

Returns never edit an order: :meth:`Order.after_returns` derives the order *as it
stands* from the order as placed and the total quantities returned so far, so the
result depends only on those totals, never on how the returns were split.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import operator
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import attrs

from loyaltykit._errors import (
    CurrencyMismatch,
    InvalidEvent,
    InvalidInput,
    InvalidOrder,
    InvalidReturn,
    LoyaltyError,
    shown,
)
from loyaltykit._json import JsonForm
from loyaltykit._validate import (
    CURRENCIES,
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_MONEY,
    MAX_MONEY_PLACES,
    check_instant,
    check_text,
    text_problem,
)
from loyaltykit._values import Money, json_bytes

__all__ = ["Event", "EventType", "Order", "OrderLine"]

#: Most lines one order may have.
MAX_LINES = 1000
#: Largest quantity of one line.
MAX_QUANTITY = 1_000_000_000
#: Largest unit price, discount or shipping amount.
MAX_AMOUNT = Decimal(10**12)
_MAX_ID = 128
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
_ZERO = Decimal(0)
#: Decimal arithmetic of the library, independent of the caller's thread context.
_CTX = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN,
                       traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                              decimal.Overflow])
#: A returned line's discount share is kept to the finest a money amount may be.
_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)


class EventType:
    """The event types loyaltykit knows by name. Any other identifier matching
    ``^[a-z][a-z0-9_]{0,63}$`` is a custom event type."""

    SIGN_UP = "sign_up"
    BIRTHDAY = "birthday"
    #: A membership anniversary (tenure); combine with :class:`~loyaltykit.MinTenure`.
    ANNIVERSARY = "anniversary"
    REVIEW = "review"
    VISIT = "visit"


def is_event_type(value: object) -> bool:
    """True if ``value`` is a valid event type name (built-in or custom)."""
    return isinstance(value, str) and _EVENT_TYPE.match(value) is not None


# -- helpers ------------------------------------------------------------------------------


def _raise(error: type[LoyaltyError], field: str, message: str, value: object) -> NoReturn:
    raise error(f"{field}: {message}", field=field, value=value)


def with_prefix(exc: LoyaltyError, prefix: str) -> LoyaltyError:
    """Return a copy of ``exc`` whose field path starts with ``prefix`` (for errors
    raised by a part that does not know where it sits in the whole)."""
    details = dict(exc.details)
    field = details.get("field")
    message = exc.message
    if isinstance(field, str):
        if message.startswith(f"{field}: "):
            message = message[len(field) + 2:]
        if field.startswith("["):
            field = f"{prefix}{field}"
        else:
            field = f"{prefix}.{field}" if field else prefix
        details["field"] = field
        message = f"{field}: {message}"
    else:
        details["field"] = prefix
        message = f"{prefix}: {message}"
    return type(exc)(message, **details)


def check_name(value: object, field: str, error: type[InvalidInput]) -> str:
    """Return ``value`` if it is a usable id (1-128 characters, no surrounding blanks,
    no control or bidirectional control characters or unpaired surrogates)."""
    if not isinstance(value, str):
        _raise(error, field, "must be a str", value)
    if not value or len(value) > _MAX_ID or value != value.strip():
        _raise(error, field, f"must be 1-{_MAX_ID} characters without surrounding blanks",
               value)
    return check_text(value, field, ident=True, error=error)


def json_value(value: object, field: str, error: type[LoyaltyError], depth: int = 0) -> Any:
    """Return a plain JSON-compatible copy of ``value`` (tuples become lists), or raise
    ``error`` naming ``field``. Floats are allowed here (attributes are free data) but
    must be finite. ``depth`` counts from 0 and metadata's levels from 1 (the mapping
    itself is level 1): at most :data:`MAX_JSON_DEPTH` levels, as metadata."""
    if depth >= MAX_JSON_DEPTH:
        _raise(error, field, "is nested too deeply", None)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            _raise(error, field, f"must not hold {problem}", value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            _raise(error, field, "must not be NaN or infinite", shown(value))
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                _raise(error, field, "keys must be str", shown(key))
            problem = text_problem(key)
            if problem is not None:
                _raise(error, field, f"keys must not hold {problem}", shown(key))
            out[key] = json_value(item, f"{field}.{key}", error, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [json_value(item, f"{field}[{i}]", error, depth + 1)
                for i, item in enumerate(value)]
    _raise(error, field, "must be JSON-compatible (None, bool, int, float, str, list, dict)",
           shown(value))


def _attributes(value: Mapping[str, Any], error: type[LoyaltyError]) -> Any:
    """An order's or event's ``attributes`` as plain JSON, no larger than a member's
    (:data:`~loyaltykit._validate.MAX_METADATA_BYTES` as JSON)."""
    data = json_value(value, "attributes", error)
    size = len(json_bytes(data))
    if size > MAX_METADATA_BYTES:
        _raise(error, "attributes", f"larger than {MAX_METADATA_BYTES} bytes as JSON", size)
    return data


def _money(value: object, field: str, currency: str | None) -> Money:
    """Build Money from a decimal string/int/Decimal in ``currency`` for from_dict."""
    if isinstance(value, Mapping):  # {"amount": ..., "currency": ...} is accepted too
        amount, currency = value.get("amount"), value.get("currency", currency)
    else:
        amount = value
    if currency is None:
        _raise(InvalidOrder, field, "needs a currency", None)
    try:
        return Money(amount, currency)
    except LoyaltyError as exc:
        _raise(InvalidOrder, field, exc.message, shown(value))


def _keys(data: object, known: frozenset[str], required: tuple[str, ...],
          error: type[LoyaltyError], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        _raise(error, where, "must be a dict", shown(data))
    for key in data:
        if key not in known:
            _raise(error, str(key), f"unknown field (known: {sorted(known)})", None)
    for key in required:
        if key not in data:
            _raise(error, key, "is required", None)
    return data


def _instant(value: object, field: str, error: type[InvalidInput]) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            _raise(error, field, "must be an ISO 8601 datetime with offset", value)
    return check_instant(value, field, error=error)


def _currency(value: object) -> str:
    if not isinstance(value, str) or value not in CURRENCIES:
        _raise(InvalidOrder, "currency", "must be an ISO 4217 currency code (such as EUR)",
               value)
    return value


# -- order lines ----------------------------------------------------------------------------


@attrs.frozen
class OrderLine(JsonForm):
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price`` each.

    ``discount`` is the total discount on the line (a member price, a coupon share);
    it must lie between zero and the line's gross amount. ``line_id`` identifies the
    line in returns and defaults to the SKU; it must be unique within an order.

    >>> line = OrderLine(sku="beans", quantity=2, unit_price=Money("12.50", "EUR"),
    ...                  discount=Money("1.00", "EUR"))
    >>> line.id, line.net
    ('beans', Decimal('24.00'))
    """

    sku: str
    quantity: int
    unit_price: Money
    category: str | None = None
    discount: Money | None = None
    line_id: str | None = None
    _net: Decimal = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        check_name(self.sku, "sku", InvalidOrder)
        q = self.quantity
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= MAX_QUANTITY:
            _raise(InvalidOrder, "quantity", f"must be an int from 1 to {MAX_QUANTITY}", q)
        if not isinstance(self.unit_price, Money):
            _raise(InvalidOrder, "unit_price", "must be Money", shown(self.unit_price))
        if not _ZERO <= self.unit_price.amount <= MAX_AMOUNT:
            _raise(InvalidOrder, "unit_price", f"must be between 0 and {MAX_AMOUNT}",
                   str(self.unit_price.amount))
        if self.category is not None:
            check_name(self.category, "category", InvalidOrder)
        if self.line_id is not None:
            check_name(self.line_id, "line_id", InvalidOrder)
        gross = _CTX.multiply(self.unit_price.amount, q)
        if gross >= MAX_MONEY:
            _raise(InvalidOrder, "quantity", f"quantity times unit price must be below "
                   f"{MAX_MONEY} (the largest money amount)", q)
        net = gross
        if self.discount is not None:
            d = self.discount
            if not isinstance(d, Money):
                _raise(InvalidOrder, "discount", "must be Money", shown(d))
            if d.currency != self.unit_price.currency:
                raise CurrencyMismatch(
                    "discount: must be in the currency of the unit price", field="discount",
                    value=d.currency, expected=self.unit_price.currency)
            if d.amount < _ZERO or d.amount > gross:
                _raise(InvalidOrder, "discount",
                       f"must be between 0 and the line's gross amount {gross}",
                       str(d.amount))
            net = _CTX.subtract(gross, d.amount)
        object.__setattr__(self, "_net", net)

    @property
    def id(self) -> str:
        """The line's id in returns: ``line_id``, or the SKU."""
        return self.line_id if self.line_id is not None else self.sku

    @property
    def net(self) -> Decimal:
        """Quantity times unit price, less the discount."""
        return self._net

    @property
    def currency(self) -> str:
        """The currency of the line's prices."""
        return self.unit_price.currency

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (amounts as decimal strings)."""
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "unit_price": str(self.unit_price.amount),
            "currency": self.unit_price.currency,
            "category": self.category,
            "discount": str(self.discount.amount) if self.discount is not None else None,
            "line_id": self.line_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, currency: str | None = None) -> OrderLine:
        """Inverse of :meth:`to_dict`. ``currency`` is used when the dict names none
        (lines inside :meth:`Order.to_dict` output). Bad fields raise InvalidOrder."""
        data = _keys(data, _LINE_KEYS, ("sku", "quantity", "unit_price"), InvalidOrder, "line")
        currency = data.get("currency", currency)
        price = _money(data["unit_price"], "unit_price", currency)
        raw_discount = data.get("discount")
        discount = (None if raw_discount is None
                    else _money(raw_discount, "discount", price.currency))
        return cls(
            sku=data["sku"], quantity=data["quantity"], unit_price=price,
            category=data.get("category"), discount=discount, line_id=data.get("line_id"),
        )


_LINE_KEYS = frozenset({"sku", "quantity", "unit_price", "currency", "category", "discount",
                        "line_id"})

#: A line's net amount, as :attr:`OrderLine.net` gives it, read without the property's
#: call (the rules' fast path reads every line's, order after order).
line_net = operator.attrgetter("_net")


# -- orders ---------------------------------------------------------------------------------


def _lines(value: tuple[OrderLine, ...] | list[OrderLine]) -> tuple[OrderLine, ...]:
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen
class Order(JsonForm):
    """An order a member placed: lines, shipping, channel and store, at an instant.

    ``placed_at`` must be timezone-aware; it is kept in UTC. Every amount must be in
    the order's ``currency`` (else :class:`~loyaltykit.CurrencyMismatch`). Line ids
    must be unique; at most 1000 lines. ``attributes`` holds JSON-compatible data that
    :class:`~loyaltykit.Attribute` conditions can test (``scope="order"``).
    """

    id: str
    member_id: str
    placed_at: dt.datetime
    currency: str
    lines: tuple[OrderLine, ...] = attrs.field(converter=_lines)
    shipping: Money | None = None
    channel: str | None = None
    store: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    _net_goods: Decimal = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        check_name(self.id, "id", InvalidOrder)
        check_name(self.member_id, "member_id", InvalidOrder)
        object.__setattr__(self, "placed_at",
                           check_instant(self.placed_at, "placed_at", error=InvalidOrder))
        _currency(self.currency)
        if not isinstance(self.lines, tuple):
            _raise(InvalidOrder, "lines", "must be a tuple of OrderLine", shown(self.lines))
        if len(self.lines) > MAX_LINES:
            _raise(InvalidOrder, "lines", f"at most {MAX_LINES} lines", len(self.lines))
        seen: set[str] = set()
        total = _ZERO
        for i, line in enumerate(self.lines):
            if not isinstance(line, OrderLine):
                _raise(InvalidOrder, f"lines[{i}]", "must be an OrderLine", shown(line))
            if line.unit_price.currency != self.currency:
                raise CurrencyMismatch(
                    f"lines[{i}].unit_price: must be in the order's currency",
                    field=f"lines[{i}].unit_price", value=line.unit_price.currency,
                    expected=self.currency)
            if line.id in seen:
                _raise(InvalidOrder, f"lines[{i}].line_id", "line ids must be unique "
                       "within an order (set line_id when a SKU appears twice)", line.id)
            seen.add(line.id)
            total = _CTX.add(total, line.net)
        if total >= MAX_MONEY:
            _raise(InvalidOrder, "lines", f"the lines' net amounts add up to {MAX_MONEY} "
                   "or more (the largest money amount)", str(total))
        if self.shipping is not None:
            if not isinstance(self.shipping, Money):
                _raise(InvalidOrder, "shipping", "must be Money", shown(self.shipping))
            if self.shipping.currency != self.currency:
                raise CurrencyMismatch("shipping: must be in the order's currency",
                                       field="shipping", value=self.shipping.currency,
                                       expected=self.currency)
            if not _ZERO <= self.shipping.amount <= MAX_AMOUNT:
                _raise(InvalidOrder, "shipping", f"must be between 0 and {MAX_AMOUNT}",
                       str(self.shipping.amount))
        for name in ("channel", "store"):
            value = getattr(self, name)
            if value is not None:
                check_name(value, name, InvalidOrder)
        if not isinstance(self.attributes, Mapping):
            _raise(InvalidOrder, "attributes", "must be a mapping", shown(self.attributes))
        object.__setattr__(self, "attributes",
                           _attributes(self.attributes, InvalidOrder))
        object.__setattr__(self, "_net_goods", total)

    @property
    def net_goods(self) -> Decimal:
        """The sum of the lines' net amounts (shipping excluded)."""
        return self._net_goods

    def after_returns(self, returned: Mapping[str, int]) -> Order:
        """Return the order as it stands once ``returned`` (line id -> total quantity
        returned so far) has come back.

        Quantities shrink; a line's discount shrinks in proportion
        (``discount * remaining / bought``, computed from this order as placed), so the
        result depends only on the totals. Fully returned lines are dropped; when
        nothing is left, ``lines`` is empty and shipping is refunded (zero).
        Unknown line ids, quantities that are not positive ints and more than was
        bought raise :class:`~loyaltykit.InvalidReturn`.
        """
        if not isinstance(returned, Mapping):
            raise InvalidReturn("returned must map line ids to quantities",
                                returned=shown(returned))
        by_id = {line.id: line for line in self.lines}
        for line_id, qty in returned.items():
            line = by_id.get(line_id) if isinstance(line_id, str) else None
            if line is None:
                raise InvalidReturn("the order has no such line", order_id=self.id,
                                    line_id=line_id, lines=sorted(by_id))
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                raise InvalidReturn("a returned quantity must be a positive int",
                                    order_id=self.id, line_id=line_id, quantity=qty)
            if qty > line.quantity:
                raise InvalidReturn("more returned than was bought", order_id=self.id,
                                    line_id=line_id, quantity=qty, bought=line.quantity)
        if not returned:
            return self
        kept: list[OrderLine] = []
        for line in self.lines:
            back = returned.get(line.id, 0)
            if back == 0:
                kept.append(line)
                continue
            left = line.quantity - back
            if left == 0:
                continue
            discount = line.discount
            if discount is not None:
                share = _CTX.divide(_CTX.multiply(discount.amount, left), line.quantity)
                places = share.as_tuple().exponent
                if isinstance(places, int) and places < -MAX_MONEY_PLACES:
                    share = share.quantize(_FINEST, context=_CTX)
                discount = Money(share, discount.currency)
            kept.append(attrs.evolve(line, quantity=left, discount=discount))
        shipping = self.shipping
        if not kept and shipping is not None:
            shipping = Money(_ZERO, self.currency)
        return attrs.evolve(self, lines=tuple(kept), shipping=shipping)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict: amounts as decimal strings, ``placed_at`` in
        ISO 8601 (UTC)."""
        return {
            "id": self.id,
            "member_id": self.member_id,
            "placed_at": self.placed_at.isoformat(),
            "currency": self.currency,
            "lines": [_line_dict(line) for line in self.lines],
            "shipping": str(self.shipping.amount) if self.shipping is not None else None,
            "channel": self.channel,
            "store": self.store,
            # most orders have none: no walk (the order checked them when made)
            "attributes": (json_value(self.attributes, "attributes", InvalidOrder)
                           if self.attributes else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        """Inverse of :meth:`to_dict`; bad fields raise InvalidOrder (or
        CurrencyMismatch / NaiveDatetime) naming the field, e.g. ``lines[2].quantity``."""
        data = _keys(data, _ORDER_KEYS, ("id", "member_id", "placed_at", "currency", "lines"),
                     InvalidOrder, "order")
        currency = _currency(data["currency"])
        raw_lines = data["lines"]
        if not isinstance(raw_lines, list | tuple):
            _raise(InvalidOrder, "lines", "must be a list of lines", shown(raw_lines))
        if len(raw_lines) > MAX_LINES:
            _raise(InvalidOrder, "lines", f"at most {MAX_LINES} lines", len(raw_lines))
        lines = []
        for i, raw in enumerate(raw_lines):
            if not isinstance(raw, Mapping):
                _raise(InvalidOrder, f"lines[{i}]", "must be a dict", shown(raw))
            try:
                lines.append(OrderLine.from_dict(raw, currency=currency))
            except (InvalidOrder, CurrencyMismatch) as exc:
                raise with_prefix(exc, f"lines[{i}]") from None
        shipping = data.get("shipping")
        return cls(
            id=data["id"], member_id=data["member_id"],
            placed_at=_instant(data["placed_at"], "placed_at", InvalidOrder),
            currency=currency, lines=tuple(lines),
            shipping=None if shipping is None else _money(shipping, "shipping", currency),
            channel=data.get("channel"), store=data.get("store"),
            attributes=data.get("attributes") or {},
        )


def _line_dict(line: OrderLine) -> dict[str, Any]:
    data = line.to_dict()
    del data["currency"]  # the order's
    return data


_ORDER_KEYS = frozenset({"id", "member_id", "placed_at", "currency", "lines", "shipping",
                         "channel", "store", "attributes"})


# -- events ---------------------------------------------------------------------------------


@attrs.frozen
class Event(JsonForm):
    """Something a member did that bonus rules can reward: ``type`` is one of
    :class:`EventType` or a custom identifier (``^[a-z][a-z0-9_]{0,63}$``).

    ``occurred_at`` must be timezone-aware (kept in UTC); ``attributes`` holds
    JSON-compatible data for :class:`~loyaltykit.Attribute` conditions
    (``scope="event"``).
    """

    id: str
    type: str
    member_id: str
    occurred_at: dt.datetime
    attributes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        check_name(self.id, "id", InvalidEvent)
        if not is_event_type(self.type):
            _raise(InvalidEvent, "type", "must be a lower-case identifier "
                   "(sign_up, birthday, anniversary, review, visit or a custom one)",
                   self.type)
        check_name(self.member_id, "member_id", InvalidEvent)
        object.__setattr__(self, "occurred_at",
                           check_instant(self.occurred_at, "occurred_at", error=InvalidEvent))
        if not isinstance(self.attributes, Mapping):
            _raise(InvalidEvent, "attributes", "must be a mapping", shown(self.attributes))
        object.__setattr__(self, "attributes",
                           _attributes(self.attributes, InvalidEvent))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (``occurred_at`` in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "type": self.type,
            "member_id": self.member_id,
            "occurred_at": self.occurred_at.isoformat(),
            "attributes": json_value(self.attributes, "attributes", InvalidEvent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Inverse of :meth:`to_dict`; bad fields raise InvalidEvent naming the field."""
        data = _keys(data, _EVENT_KEYS, ("id", "type", "member_id", "occurred_at"),
                     InvalidEvent, "event")
        return cls(
            id=data["id"], type=data["type"], member_id=data["member_id"],
            occurred_at=_instant(data["occurred_at"], "occurred_at", InvalidEvent),
            attributes=data.get("attributes") or {},
        )


_EVENT_KEYS = frozenset({"id", "type", "member_id", "occurred_at", "attributes"})


def parse_decimal(value: object, field: str,
                  error: type[LoyaltyError] = InvalidInput) -> Decimal:
    """Return ``value`` as a finite Decimal (from Decimal, int or a decimal string)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        _raise(error, field, "must be a Decimal, an int or a decimal string "
               "(never a float: write \"1.25\")", shown(value))
    try:
        amount = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        _raise(error, field, "not a decimal number", value)
    if not amount.is_finite():
        _raise(error, field, "must be finite", str(amount))
    return amount


def check_order(currency: str, order: object) -> Order:
    """``order`` if it is an :class:`Order` with lines in ``currency`` (the program's),
    else :class:`~loyaltykit.InvalidOrder` / :class:`~loyaltykit.CurrencyMismatch`."""
    if not isinstance(order, Order):
        raise InvalidOrder("order must be an Order", field="order", value=shown(order))
    if not order.lines:
        raise InvalidOrder("an order needs at least one line", field="lines", value=[])
    if order.currency != currency:
        raise CurrencyMismatch("the order is not in the program's currency",
                               field="currency", value=order.currency, expected=currency)
    return order
