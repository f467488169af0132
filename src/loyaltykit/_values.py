"""Small value types and validators shared by the whole library.

Points are plain ``int`` values; :class:`Money` is a ``Decimal`` with an ISO 4217
currency. Datetimes must be timezone-aware. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
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
    InvalidInput,
    InvalidMoney,
    InvalidPoints,
    NaiveDatetime,
    shown,
)
from loyaltykit._json import JsonForm
from loyaltykit._validate import (
    MAX_MONEY,
    MAX_MONEY_PLACES,
    MONEY_CONTEXT,
    check_amount,
    check_currency,
    text_problem,
)

_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)
#: No money amount times an int this large is a money amount (and converting a huge
#: int to a Decimal is slow): such a factor is refused before any arithmetic.
_MAX_FACTOR = 10 ** (15 + MAX_MONEY_PLACES)

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_POINTS",
    "MAX_TOTAL",
    "Money",
    "check_aware",
    "check_key",
    "check_points",
    "json_bytes",
    "new_id",
    "stored_money",
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
#: Largest magnitude of a member wallet's totals (balance, debt, lifetime earned,
#: adjusted, transferred): a write that would pass it is refused.
MAX_TOTAL = 10**18
#: Longest idempotency key accepted, in characters.
MAX_KEY_LENGTH = 200

#: The longest decimal string :class:`Money` reads (15 digits, a point, 18 digits, a
#: sign and some zeros or an exponent to spare).
_MAX_AMOUNT_TEXT = 100


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise InvalidMoney("money amounts must be Decimal, int or str, never float", value=value)
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        if abs(value) >= MAX_MONEY:  # before converting: an int may have any size
            raise InvalidMoney(f"money amounts must lie between -{MAX_MONEY} and "
                               f"{MAX_MONEY}", value=shown(value))
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            if len(value) > _MAX_AMOUNT_TEXT:
                raise InvalidOperation
            amount = Decimal(value)
        except InvalidOperation:
            raise InvalidMoney(f"not a decimal number of at most {_MAX_AMOUNT_TEXT} "
                               "characters", value=shown(value)) from None
    else:
        raise InvalidMoney("money amounts must be Decimal, int or str", value=shown(value))
    return check_amount(amount)


def _check_currency(_: object, __: object, value: str) -> None:
    check_currency(value)


@attrs.frozen
class Money(JsonForm):
    """An exact amount of money in one currency.

    >>> Money("12.50", "EUR")
    Money(amount=Decimal('12.50'), currency='EUR')
    >>> Money("12.50", "EUR") + Money("0.49", "EUR")
    Money(amount=Decimal('12.99'), currency='EUR')

    Adding, subtracting or comparing amounts in different currencies raises
    :class:`~loyaltykit.CurrencyMismatch`.

    ``amount`` accepts ``Decimal``, ``int`` or a decimal string; floats, NaN and
    infinities are refused with :class:`~loyaltykit.InvalidMoney`, and so are
    amounts of 10**15 or more in magnitude or with more than 18 decimals. ``currency``
    is an ISO 4217 code (``EUR``). Arithmetic is exact; a result out of range raises
    :class:`~loyaltykit.InvalidMoney` (a product is rounded half to even to 18
    decimals), whatever the thread's :mod:`decimal` context.
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
        return Money(MONEY_CONTEXT.add(self.amount, self._same(other).amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(MONEY_CONTEXT.subtract(self.amount, self._same(other).amount),
                     self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            raise InvalidMoney("money can only be multiplied by int or Decimal",
                               value=shown(factor))
        try:
            if isinstance(factor, int) and abs(factor) >= _MAX_FACTOR:
                raise decimal.Overflow  # only zero survives such a factor; refuse it too
            product = MONEY_CONTEXT.multiply(self.amount, factor)
            places = product.as_tuple().exponent
            if isinstance(places, int) and places < -MAX_MONEY_PLACES:
                product = product.quantize(_FINEST, context=MONEY_CONTEXT)
        except ArithmeticError:  # a factor out of any range (decimal errors included)
            raise InvalidMoney("the product is not a money amount", amount=str(self.amount),
                               factor=shown(factor)) from None
        return Money(product, self.currency)

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


#: What :func:`stored_money` builds unchecked: below any money amount's bound.
_MAX_STORED = Decimal(10**15)


def stored_money(amount: Decimal, currency: str) -> Money:
    """A :class:`Money` of an amount and currency the library checked before storing
    them and reads back (a report's per-member figures), built without checking them
    again: a tenth of the cost of a report's row. Never for values from outside. A sum
    beyond what Money holds is still refused (:class:`~loyaltykit.InvalidMoney`)."""
    if not -_MAX_STORED < amount < _MAX_STORED:
        return Money(amount, currency)
    money = object.__new__(Money)
    object.__setattr__(money, "amount", amount)
    object.__setattr__(money, "currency", currency)
    return money


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
    """Convert an aware datetime to a plain ``datetime`` in UTC (microsecond precision).

    Arguments are checked with :func:`~loyaltykit._validate.check_instant` (which also
    converts); this converts instants the library derives from them, which stay far
    from the ends of the calendar. Should one not, the error is still typed."""
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidInput("the instant lies outside the calendar",
                           instant=shown(value)) from None
    return dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
        tzinfo=dt.UTC,
    )


def check_key(value: object) -> str:
    """Return ``value`` if it is a usable idempotency key: 1..200 characters, not
    blank, and none that an id may not hold (control and bidirectional control
    characters, unpaired surrogates)."""
    if not isinstance(value, str):
        raise InvalidIdempotencyKey("idempotency key must be a str", key=value)
    if not value or not value.strip():
        raise InvalidIdempotencyKey("idempotency key must not be empty", key=value)
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"idempotency key longer than {MAX_KEY_LENGTH} characters", length=len(value)
        )
    problem = text_problem(value, ident=True)
    if problem is not None:
        raise InvalidIdempotencyKey(f"idempotency key must not hold {problem}", key=value)
    return value


#: ``uuid.SafeUUID.unknown``, looked up once (an Enum member read through its class is a
#: Python property call: 6% of a due run's time on the memory backend, drawing its ids)
_UNKNOWN = uuid.SafeUUID.unknown


class _UUID7:
    """Time-ordered UUIDs (RFC 9562 version 7) with a per-process monotonic counter.

    Ids sort by creation time even within one millisecond, so a statement ordered by
    id shows writes in the order they were recorded. Their random bits are taken from
    ``os.urandom`` a few kilobytes at a time (two system calls per id were a quarter of
    an id's cost, and a history import draws five ids an order); a forked child drops
    the bytes it inherited, so no two processes draw the same ones.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._random = b""
        self._at = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_random)

    def _forget_random(self) -> None:
        self._lock = threading.Lock()
        self._random, self._at = b"", 0

    def __call__(self) -> uuid.UUID:
        with self._lock:
            at = self._at
            if at + _ID_RANDOM > len(self._random):
                self._random, at = os.urandom(_RANDOM_BUFFER), 0
            self._at = at + _ID_RANDOM
            drawn = int.from_bytes(self._random[at:at + _ID_RANDOM], "big")
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = (drawn >> 64) & 0x3FF
            self._last_ms = ms
            counter = self._counter
        rand_b = drawn & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        # what uuid.UUID(int=value) builds, without re-checking a value made in range
        # here (its checks were a third of an id's cost, and an earn draws three)
        made: uuid.UUID = _new_uuid(uuid.UUID)
        _set(made, "int", value)
        _set(made, "is_safe", _UNKNOWN)
        return made

    def many(self, n: int) -> list[uuid.UUID]:
        """``n`` new ids, as ``n`` calls would draw them one after the other (the
        clock read once: they share a millisecond and count up in it), under one
        taking of the lock: set-based due work draws two ids a transaction."""
        made: list[uuid.UUID] = []
        for value in self._values(n):
            one = _new_uuid(uuid.UUID)
            _set(one, "int", value)
            _set(one, "is_safe", _UNKNOWN)
            made.append(one)
        return made

    def many_hex(self, n: int) -> bytes:
        """The ids :meth:`many` would draw, as their hex digits (32 ASCII bytes an id,
        as a SQL store keeps them) one after the other: for a statement that cuts each
        id out of one bound value, without a UUID object per id (two thirds of an id's
        cost) or a text per id.

        Built a column at a time rather than an id at a time: the high halves (time,
        version, counter) are consecutive integers within a millisecond, and the low
        halves are random bytes whose first byte of each gets the variant bits by one
        table lookup over every id at once."""
        if n <= 0:
            return b""
        with self._lock:
            now = time.time_ns() // 1_000_000
            last, counter = self._last_ms, self._counter
            if now <= last:  # the same (or an earlier) millisecond: count on from last
                ms, counter = last, counter + 1
            else:  # a new millisecond: its counter starts at a random 10-bit value
                ms, counter = now, int.from_bytes(os.urandom(2), "big") & 0x3FF
            highs: list[bytes] = []
            left = n
            while left:
                if counter > 0xFFF:  # the counter of a millisecond ran over
                    ms, counter = ms + 1, 0
                run = min(left, 0x1000 - counter)
                first = (ms & ((1 << 48) - 1)) << 16 | 0x7 << 12 | counter
                highs += [v.to_bytes(8, "big") for v in range(first, first + run)]
                counter += run
                left -= run
            self._last_ms, self._counter = ms, counter - 1
        low = bytearray(os.urandom(8 * n))
        low[0::8] = low[0::8].translate(_VARIANT)
        high = b"".join(highs)
        made = bytearray(16 * n)
        for k in range(8):  # interleave: an id's 8 high bytes, then its 8 low bytes
            made[k::16] = high[k::8]
            made[8 + k::16] = low[k::8]
        return made.hex().encode()

    def _values(self, n: int) -> list[int]:
        """The 128-bit values of ``n`` new ids (see :meth:`many`)."""
        made: list[int] = []
        if n <= 0:
            return made
        with self._lock:
            now = time.time_ns() // 1_000_000
            last, counter = self._last_ms, self._counter
            buf, at = self._random, self._at
            for _ in range(n):
                if at + _ID_RANDOM > len(buf):
                    buf, at = os.urandom(_RANDOM_BUFFER), 0
                drawn = int.from_bytes(buf[at:at + _ID_RANDOM], "big")
                at += _ID_RANDOM
                ms = now
                if ms <= last:
                    ms = last
                    counter += 1
                    if counter > 0xFFF:
                        ms += 1
                        counter = 0
                else:
                    counter = (drawn >> 64) & 0x3FF
                last = ms
                made.append((ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64
                            | 0b10 << 62 | drawn & ((1 << 62) - 1))
            self._last_ms, self._counter = last, counter
            self._random, self._at = buf, at
        return made


#: random bytes an id takes: 2 for a new millisecond's counter start, 8 for the rest
_ID_RANDOM = 10
#: random bytes read at a time (a multiple of an id's)
_RANDOM_BUFFER = 4090
#: a byte with its top two bits set to the RFC 9562 variant (0b10)
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


_new_uuid = object.__new__
_set = object.__setattr__


new_id = _UUID7()
"""Return a new time-ordered UUID (version 7). Thread-safe."""


class IdSource(Protocol):
    """Anything that returns a fresh unique UUID when called."""

    def __call__(self) -> uuid.UUID: ...
