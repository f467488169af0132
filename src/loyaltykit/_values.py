"""Small value types and validators shared by the whole library.

Points are plain ``int`` values; :class:`Money` is a ``Decimal`` with an ISO 4217
currency. Datetimes must be timezone-aware. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import attrs
import orjson

from loyaltykit._errors import (
    CurrencyMismatch,
    InvalidIdempotencyKey,
    InvalidMoney,
    InvalidPoints,
    NaiveDatetime,
    shown,
)

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_POINTS",
    "Money",
    "check_aware",
    "check_key",
    "check_points",
    "json_bytes",
    "new_id",
    "to_utc",
]

def json_bytes(value: Any, *, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON of ``value`` (UTF-8), written by orjson, several times faster than
    the standard encoder on the documents an order writes. What orjson refuses
    (integers beyond 64 bits, non-string keys, lone surrogates) is written by the
    standard encoder instead, so every value the standard library can write is
    written, and one value always takes the same path. ``default`` turns values
    that are not JSON into JSON (as in :func:`json.dumps`)."""
    try:
        return orjson.dumps(value, default=default,
                            option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, sort_keys=sort_keys, default=default,
                          separators=(",", ":")).encode()


#: Largest number of points a single request may carry (fits a signed 64-bit column).
MAX_POINTS = 10**15
#: Longest idempotency key accepted, in characters.
MAX_KEY_LENGTH = 200

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise InvalidMoney("money amounts must be Decimal, int or str, never float", value=value)
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise InvalidMoney("not a decimal number", value=value) from None
    else:
        raise InvalidMoney("money amounts must be Decimal, int or str", value=value)
    if not amount.is_finite():
        raise InvalidMoney("money amounts must be finite", value=str(amount))
    return amount


def _check_currency(_: object, __: object, value: str) -> None:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise InvalidMoney("currency must be a three-letter ISO 4217 code", currency=value)


@attrs.frozen
class Money:
    """An exact amount of money in one currency.

    >>> Money("12.50", "EUR")
    Money(amount=Decimal('12.50'), currency='EUR')
    >>> Money("12.50", "EUR") + Money("0.49", "EUR")
    Money(amount=Decimal('12.99'), currency='EUR')

    Adding, subtracting or comparing amounts in different currencies raises
    :class:`~loyaltykit.CurrencyMismatch`.

    ``amount`` accepts ``Decimal``, ``int`` or a decimal string; floats, NaN and
    infinities are refused with :class:`~loyaltykit.InvalidMoney`.
    """

    amount: Decimal = attrs.field(converter=_to_decimal)
    currency: str = attrs.field(validator=_check_currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise InvalidMoney("can only combine Money with Money", value=shown(other))
        if other.currency != self.currency:
            raise CurrencyMismatch(
                "cannot combine amounts in different currencies",
                expected=self.currency, actual=other.currency,
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            raise InvalidMoney("money can only be multiplied by int or Decimal",
                               value=shown(factor))
        return Money(self.amount * factor, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-compatible dict (``{"amount": "12.50", "currency": "EUR"}``)."""
        return {"amount": str(self.amount), "currency": self.currency}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Money:
        """Inverse of :meth:`to_dict`; anything else raises :class:`~loyaltykit.InvalidMoney`."""
        if not isinstance(data, Mapping) or set(data) != {"amount", "currency"}:
            raise InvalidMoney("money is a dict of amount and currency", value=shown(data))
        return cls(data["amount"], data["currency"])


def check_points(value: object, *, name: str = "points", allow_zero: bool = False) -> int:
    """Return ``value`` if it is a positive ``int`` points amount, else raise.

    ``bool`` is refused although it is an ``int`` subclass; so are floats and Decimals
    (points are whole numbers by definition, never rounded silently).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPoints(f"{name} must be an int", **{name: value})
    low = 0 if allow_zero else 1
    if value < low or value > MAX_POINTS:
        raise InvalidPoints(
            f"{name} must be between {low} and {MAX_POINTS}", **{name: value}
        )
    return value


def check_aware(value: object, *, name: str = "at") -> dt.datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise NaiveDatetime."""
    if not isinstance(value, dt.datetime):
        raise NaiveDatetime(f"{name} must be a datetime", **{name: value})
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"{name} must be timezone-aware", **{name: value.isoformat()})
    return value


def to_utc(value: dt.datetime) -> dt.datetime:
    """Convert an aware datetime to a plain ``datetime`` in UTC (microsecond precision)."""
    utc = value.astimezone(dt.UTC)
    return dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
        tzinfo=dt.UTC,
    )


def check_key(value: object) -> str:
    """Return ``value`` if it is a usable idempotency key (1..200 characters)."""
    if not isinstance(value, str):
        raise InvalidIdempotencyKey("idempotency key must be a str", key=value)
    if not value or not value.strip():
        raise InvalidIdempotencyKey("idempotency key must not be empty", key=value)
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"idempotency key longer than {MAX_KEY_LENGTH} characters", length=len(value)
        )
    return value


class _UUID7:
    """Time-ordered UUIDs (RFC 9562 version 7) with a per-process monotonic counter.

    Ids sort by creation time even within one millisecond, so a statement ordered by
    id shows writes in the order they were recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            self._last_ms = ms
            counter = self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


new_id = _UUID7()
"""Return a new time-ordered UUID (version 7). Thread-safe."""


class IdSource(Protocol):
    """Anything that returns a fresh unique UUID when called."""

    def __call__(self) -> uuid.UUID: ...
