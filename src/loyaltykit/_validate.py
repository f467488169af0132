"""Validation shared by the whole library: a leaf below every other module.

Two families, each with one contract:

* **Program definitions** (rules, tiers, referrals, codes, the program itself).

:func:`invalid` *builds* the :class:`~loyaltykit.InvalidProgram` naming
the bad field (``"referrals.cap.days: ..."``) and the caller raises it (``raise
invalid(...) from None`` where the cause is noise); the ``check_*`` helpers raise it
themselves and return the checked value.
* **Arguments of public calls** (member and order ids, reasons, metadata, ids, and
  the options of components a caller builds, such as fraud checks):
  ``check_member_id``, ``check_reason``, ``check_json``, ``check_id``, ``check_count``
  and ``check_instance`` raise :class:`~loyaltykit.InvalidInput` naming the parameter
  and return the value in the form the services use.

Both families share the rules of what valid input is (docs/errors.md, "What valid
input is"): the supported instants (:func:`check_instant`), the characters ids, keys
and free text may hold (:func:`text_problem`, :func:`check_text`), IANA time zones
(:func:`check_time_zone`), ISO 4217 currencies (:data:`CURRENCIES`) and the
largest and finest money amounts (:func:`check_amount`).

Nothing here imports the domain modules.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import importlib.resources
import json
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from loyaltykit._errors import InvalidInput, InvalidMoney, InvalidProgram, NaiveDatetime, shown

__all__ = [
    "CURRENCIES",
    "MAX_INSTANT",
    "MAX_JSON_DEPTH",
    "MAX_MEMBER_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_MONEY",
    "MAX_MONEY_PLACES",
    "MAX_REASON_LENGTH",
    "MIN_INSTANT",
    "MONEY_CONTEXT",
    "NAME",
    "check_amount",
    "check_bool",
    "check_consumer",
    "check_count",
    "check_currency",
    "check_decimal",
    "check_enum",
    "check_id",
    "check_ident",
    "check_instance",
    "check_instant",
    "check_int",
    "check_json",
    "check_keys",
    "check_member_id",
    "check_reason",
    "check_reward_id",
    "check_text",
    "check_time_zone",
    "check_tuple",
    "field_name",
    "invalid",
    "plain_text",
    "storable_text",
    "text_problem",
]

T = TypeVar("T")

#: A lower-case name of up to 32 characters (wallets, tiers). ``\Z``, not ``$``: a
#: ``$`` also matches before a trailing newline.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")


def invalid(field: str, message: str, value: object) -> InvalidProgram:
    """The error for a bad ``field`` of a program definition (the message starts with
    the field's path; an empty path names the whole part being read)."""
    return InvalidProgram(f"{field}: {message}" if field else message, field=field,
                          value=value)


def field_name(key: object) -> str:
    """A mapping's key as the name of a field in an error: the text itself (cut to 64
    characters), or the shortened ``repr`` of a key that is not text. Never raises, so
    an unknown key of any type is reported, not tripped over."""
    if isinstance(key, str):
        return key if len(key) <= 64 else f"{key[:61]}..."
    return shown(key)


def check_int(value: object, field: str, low: int, high: int) -> int:
    """``value`` if it is an int (never a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(field, f"must be an int from {low} to {high}", value)
    return value


def check_bool(value: object, field: str) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise invalid(field, "must be a bool", value)
    return value


def check_decimal(value: object, field: str, low: Decimal, high: Decimal) -> Decimal:
    """``value`` as a Decimal if it is a finite decimal (a Decimal, an int or a decimal
    string; never a float or a bool: a float is not exact) from ``low`` to ``high``."""
    number: Decimal | None = None
    if isinstance(value, Decimal | str) or (isinstance(value, int)
                                            and not isinstance(value, bool)):
        try:
            number = Decimal(value)
        except (ArithmeticError, ValueError):
            number = None
    if number is None or not number.is_finite() or not low <= number <= high:
        raise invalid(field, f"must be a decimal from {low} to {high} (a string or int, not "
                      "a float)", shown(value))
    return number


def check_ident(value: object, field: str) -> str:
    """``value`` if it is an identifier: a letter, then up to 63 letters, digits, _.-"""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise invalid(field, "must be an identifier: a letter, then up to 63 letters, "
                      "digits and _.-", value)
    return value


def check_enum(cls: type[enum.Enum], value: object, field: str) -> Any:
    """The member of ``cls`` that ``value`` is or whose value it is."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except Exception:  # ValueError, TypeError; a hostile value's own error too
        raise invalid(field, f"must be one of {[m.value for m in cls]}",
                      shown(value)) from None


def check_tuple(value: object, field: str) -> tuple[Any, ...]:
    """``value`` as a tuple (a list is copied into one)."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise invalid(field, "must be a tuple", shown(value))


def check_keys(data: object, known: frozenset[str], required: tuple[str, ...] = ()
               ) -> Mapping[str, Any]:
    """``data`` if it is a mapping with only ``known`` keys and every ``required`` one."""
    if not isinstance(data, Mapping):
        raise invalid("", "must be a dict", shown(data))
    for key in data:
        if key not in known:
            raise invalid(field_name(key), f"unknown field (known: {sorted(known)})", None)
    for key in required:
        if key not in data:
            raise invalid(key, "is required", None)
    return data


# -- arguments of public calls ------------------------------------------------------

MAX_MEMBER_ID_LENGTH = 128
MAX_REASON_LENGTH = 500
MAX_METADATA_BYTES = 16_384
#: How deep ``attributes`` and ``metadata`` may nest (the mapping itself is level 1).
MAX_JSON_DEPTH = 32


def check_member_id(value: object, name: str = "member_id") -> str:
    """A shop's id (of a member, an order...): 1-128 characters, no surrounding spaces,
    none of the characters :func:`text_problem` refuses in an id."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str", **{name: value})
    if not value or value != value.strip() or len(value) > MAX_MEMBER_ID_LENGTH:
        raise InvalidInput(
            f"{name} must be 1-{MAX_MEMBER_ID_LENGTH} characters without surrounding spaces",
            **{name: value},
        )
    return check_text(value, name, ident=True)


_CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")


def check_consumer(value: object) -> str:
    """A consumer's name (of the outbox): 1-64 letters, digits and ``_.:-``, starting
    with a letter or digit (like a program id)."""
    if not isinstance(value, str) or not _CONSUMER.match(value):
        raise InvalidInput("consumer must be 1-64 letters, digits and _.:- starting with a "
                           "letter or digit", consumer=shown(value))
    return value


def check_reward_id(value: object) -> str:
    """A reward id as a call names it: a str of 1-64 characters (an unknown one is the
    service's :class:`~loyaltykit.RewardNotFound`)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidInput("reward_id must be a str of 1-64 characters",
                           reward_id=shown(value))
    return value


def check_reason(value: object, *, required: bool = False) -> str:
    """A reason of at most 500 characters (not blank when ``required``), free text
    without NUL or unpaired surrogates."""
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise InvalidInput(f"reason must be a str of at most {MAX_REASON_LENGTH} characters",
                           reason=value)
    if required and not value.strip():
        raise InvalidInput("a reason is required", reason=value)
    return check_text(value, "reason")


def plain_text(value: object, max_length: int) -> str | None:
    """``value`` as a plain str if it is text of at most ``max_length`` characters that
    every backend stores as it is (no NUL, no lone surrogate: it encodes as UTF-8), else
    None. A str subclass is read as the str it holds, never through its own methods (a
    hostile ``__len__`` cannot hide a long text)."""
    if not isinstance(value, str):
        return None
    text = str.__str__(value)  # an exact str, whatever the subclass overrides
    if len(text) > max_length or "\x00" in text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def storable_text(text: str, max_length: int) -> str:
    """``text`` (one the library built, such as a ``repr``) made storable on every
    backend: each NUL and lone surrogate written as its escape (``\\x00``,
    ``\\ud800``), then cut to ``max_length`` characters."""
    text = str.__str__(text).replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= max_length else f"{text[:max_length - 3]}..."


def check_count(value: object, name: str, low: int, high: int) -> int:
    """``value`` if it is an int (never a bool) from ``low`` to ``high``: an option of a
    call or of a component the caller builds (a fraud check's limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an int from {low} to {high}", field=name,
                           value=shown(value))
    return value


def check_instance(value: object, kind: type[T], name: str) -> T:
    """``value`` if it is a ``kind`` (an enum member, a policy...); else InvalidInput
    naming ``name``."""
    if not isinstance(value, kind):
        raise InvalidInput(f"{name} must be a {kind.__name__}", field=name, value=shown(value))
    return value


def check_json(value: object, name: str) -> dict[str, Any]:
    """A JSON-compatible mapping with str keys of at most 16 KiB (None: empty)."""
    if value is None:
        return {}
    if isinstance(value, Mapping) and not value:  # what the checks below give it, at once
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{name} must be a mapping with str keys", **{name: shown(value)})
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidInput(f"{name} nests deeper than {MAX_JSON_DEPTH} levels",
                           **{name: shown(value)})
    problem = _json_text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{name} holds text with {problem}", **{name: shown(value)})
    try:
        text = json.dumps(dict(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{name} must be JSON-compatible: {exc}", **{name: shown(value)}
        ) from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{name} larger than {MAX_METADATA_BYTES} bytes", size=len(text))
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _depth(value: object) -> int:
    """How deep ``value``'s mappings and lists nest (counted without recursion, so a
    hostile depth cannot exhaust the stack); stops counting past the limit."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_JSON_DEPTH:
            return level
        deepest = max(deepest, level)
        if isinstance(item, Mapping):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _json_text_problem(value: object) -> str | None:
    """What is wrong with the first key or string in ``value`` (a mapping or list
    nested at most :data:`MAX_JSON_DEPTH` deep) that free text may not hold; None if
    nothing is. Walked without recursion."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return problem
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def check_id(value: object, name: str) -> uuid.UUID:
    """A UUID, or its text."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a UUID", **{name: value})


# -- text ---------------------------------------------------------------------------

#: What no text may hold: NUL (PostgreSQL refuses it in text and JSON) and unpaired
#: surrogates (not encodable as UTF-8).
_REFUSED_IN_TEXT = re.compile("[\x00\ud800-\udfff]")
#: What an id or a key may not hold besides: the other C0 controls and DEL, and the
#: bidirectional overrides and isolates that make an id read as another in a log.
_REFUSED_IN_ID = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def text_problem(value: str, *, ident: bool = False) -> str | None:
    """Say what ``value`` holds that text may not (None: nothing). Free text may not
    hold NUL or an unpaired surrogate; an id or key (``ident``) not a control
    character (U+0000-U+001F, U+007F) or a bidirectional override or isolate
    (U+202A-U+202E, U+2066-U+2069) either."""
    found = (_REFUSED_IN_ID if ident else _REFUSED_IN_TEXT).search(value)
    if found is None:
        return None
    char = ord(found.group())
    if 0xD800 <= char <= 0xDFFF:
        kind = "an unpaired surrogate"
    elif char in (0x00, 0x7F) or char < 0x20:
        kind = "a control character"
    else:
        kind = "a bidirectional control character"
    return f"{kind} (U+{char:04X} at index {found.start()})"


def check_text(value: str, name: str, *, ident: bool = False,
               error: type[InvalidInput] = InvalidInput) -> str:
    """``value`` if :func:`text_problem` finds nothing in it, else ``error`` naming
    ``name`` (an :class:`~loyaltykit.InvalidInput` keyed by the parameter's name;
    a subclass such as :class:`~loyaltykit.InvalidOrder` with ``field``)."""
    problem = text_problem(value, ident=ident)
    if problem is None:
        return value
    message = f"must not hold {problem}"
    if error is InvalidInput:
        raise InvalidInput(f"{name} {message}", **{name: value})
    raise error(f"{name}: {message}", field=name, value=value)


# -- instants -----------------------------------------------------------------------

#: The earliest instant the library accepts (inclusive).
MIN_INSTANT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
#: The first instant past the range the library accepts (exclusive). Far enough from
#: year 9999 that anything derived from an accepted instant (an expiry up to
#: 100,000 days after a pending period of as long, tier protection for 100 periods)
#: stays a valid datetime, and both databases store every one of them exactly.
MAX_INSTANT = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
# a day either side of the range: no wall-clock time outside them is in it, and no
# time inside them can overflow when its offset is taken off
_WALL_LOW = dt.datetime(1899, 12, 31)
_WALL_HIGH = dt.datetime(9000, 1, 2)
_RANGE = "from 1900-01-01T00:00:00Z up to (not including) 9000-01-01T00:00:00Z"


def check_instant(value: object, name: str = "at", *,
                  error: type[InvalidInput] = InvalidInput) -> dt.datetime:
    """``value`` in UTC (a plain :class:`datetime.datetime`, microseconds kept) if it
    is a timezone-aware datetime in the supported range (:data:`MIN_INSTANT` to
    :data:`MAX_INSTANT`). Not a datetime, or naive:
    :class:`~loyaltykit.NaiveDatetime`; outside the range: ``error`` naming ``name``
    (keyed by it for :class:`~loyaltykit.InvalidInput`; with ``field`` for a
    subclass such as :class:`~loyaltykit.InvalidOrder`). Never raises OverflowError."""
    if (type(value) is dt.datetime and value.tzinfo is dt.UTC and not value.fold
            and MIN_INSTANT <= value < MAX_INSTANT):
        return value  # already what is returned (every clock read and most arguments)
    if not isinstance(value, dt.datetime):
        raise NaiveDatetime(f"{name} must be a datetime", **{name: shown(value)})
    try:
        offset = value.utcoffset()
    except Exception:  # a tzinfo that cannot tell its offset is no time zone
        raise NaiveDatetime(f"{name} has a time zone that gives no offset",
                            **{name: shown(value)}) from None
    if value.tzinfo is None or offset is None:
        raise NaiveDatetime(f"{name} must be timezone-aware",
                            **{name: value.replace(tzinfo=None).isoformat()})
    wall = dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                       value.second, value.microsecond)
    utc = (wall - offset).replace(tzinfo=dt.UTC) if _WALL_LOW < wall < _WALL_HIGH else None
    if utc is None or not MIN_INSTANT <= utc < MAX_INSTANT:
        message = f"must be {_RANGE}"
        text = f"{wall.isoformat()}{_offset_text(offset)}"
        if error is InvalidInput:
            raise InvalidInput(f"{name} {message}", **{name: text})
        raise error(f"{name}: {message}", field=name, value=text)
    return utc


def _offset_text(offset: dt.timedelta) -> str:
    """``+01:00`` for an offset (as :meth:`datetime.isoformat` writes it)."""
    sign = "-" if offset < dt.timedelta(0) else "+"
    seconds = abs(offset)
    hours, rest = divmod(seconds, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    text = f"{sign}{hours:02d}:{minutes:02d}"
    return text if not rest else f"{text}:{rest.seconds:02d}"


# -- time zones ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    """The IANA time zone names (the list the ``tzdata`` package ships, so the same
    on every host), with UTC; without ``Factory`` (a placeholder, "zone not set")."""
    try:
        text = importlib.resources.files("tzdata").joinpath("zones").read_text("utf-8")
        names = frozenset(text.split())
    except (ImportError, OSError):  # pragma: no cover - pendulum requires tzdata
        names = frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}
    return (names | {"UTC"}) - {"Factory"}


def check_time_zone(value: object, field: str = "time_zone") -> str:
    """``value`` if it is an IANA time zone name (``Europe/Berlin``) or ``UTC`` (in
    any case); a
    name that means something else on another host (``localtime``), a POSIX rule or
    an offset raises :class:`~loyaltykit.InvalidProgram` naming ``field``."""
    if not isinstance(value, str):
        raise invalid(field, "must be an IANA time zone name", shown(value))
    if value not in _zone_names() and value.upper() != "UTC":  # ("utc": as pendulum reads it)
        raise invalid(field, "unknown IANA time zone (give a name such as "
                      "'Europe/Berlin', or 'UTC')", value)
    return value


# -- money --------------------------------------------------------------------------

def _with_unit(unit: int | None, codes: str) -> dict[str, int | None]:
    return dict.fromkeys(codes.split(), unit)


#: The ISO 4217 currencies (list one as published on 2026-01-01, and the codes
#: withdrawn since 2023 so that existing programs still load), each with its minor
#: unit: how many decimals it is usually written with (None: not applicable, as for
#: gold or the testing code XTS).
CURRENCIES: Mapping[str, int | None] = {
    **_with_unit(2, (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
        "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP "
        "ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR "
        "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP "
        "MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
        "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL "
        "THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER "
        "ZAR ZMW ZWG ZWL")),
    **_with_unit(0, "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"),
    **_with_unit(3, "BHD IQD JOD KWD LYD OMR TND"),
    **_with_unit(4, "CLF UYW"),
    **_with_unit(None, "XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX"),
}

#: Money amounts lie strictly between ``-MAX_MONEY`` and ``MAX_MONEY`` (at most 15
#: digits before the decimal point) ...
MAX_MONEY = Decimal(10**15)
#: ... and have at most this many digits after it.
MAX_MONEY_PLACES = 18
#: The arithmetic of money amounts, whatever the caller's thread context: exact for
#: any sum of amounts in range, and an error (never a silent infinity) beyond it.
MONEY_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN,
                                Emax=999_999, Emin=-999_999,
                                traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                       decimal.Overflow])
_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)
_UNIT = Decimal(1)


def check_currency(value: object) -> str:
    """``value`` if it is an ISO 4217 alphabetic code (:data:`CURRENCIES`), else
    :class:`~loyaltykit.InvalidMoney`."""
    if not isinstance(value, str) or value not in CURRENCIES:
        raise InvalidMoney("currency must be an ISO 4217 currency code (such as EUR)",
                           currency=shown(value) if not isinstance(value, str) else value)
    return value


def check_amount(value: Decimal) -> Decimal:
    """``value`` if it is a finite Decimal below :data:`MAX_MONEY` in magnitude with
    at most :data:`MAX_MONEY_PLACES` decimals (zeros beyond them are dropped; an
    amount written with a positive exponent, ``1E+3``, is written out), else
    :class:`~loyaltykit.InvalidMoney`. Never raises a :mod:`decimal` error."""
    if not value.is_finite():
        raise InvalidMoney("money amounts must be finite", value=str(value))
    if value.adjusted() >= 15 and value:  # cheap: no arithmetic on huge exponents
        raise InvalidMoney(f"money amounts must lie between -{MAX_MONEY} and {MAX_MONEY} "
                           "(at most 15 digits before the point)", value=_short(value))
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent > 0:
        return value.quantize(_UNIT, context=MONEY_CONTEXT) if value else Decimal(0)
    if exponent < -MAX_MONEY_PLACES:
        if not value:
            return Decimal(0)
        digits = value.as_tuple().digits
        # digits beyond the 18th decimal must all be zeros
        extra = -MAX_MONEY_PLACES - exponent
        if len(digits) < extra or any(digits[-extra:]):
            raise InvalidMoney(f"money amounts have at most {MAX_MONEY_PLACES} digits after "
                               "the point", value=_short(value))
        return value.quantize(_FINEST, context=MONEY_CONTEXT)
    return value


def _short(value: Decimal) -> str:
    """A Decimal as text for an error's details (scientific when long)."""
    text = str(value)
    return text if len(text) <= 60 else f"{value:.6E}"
