"""The rules' own field checks, number and time texts, and their decimal contexts
(a leaf of the package).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
from collections.abc import Iterator
from decimal import Decimal

from loyaltykit._calendar import Zone, zone
from loyaltykit._errors import InvalidProgram, LoyaltyError, shown
from loyaltykit._orders import (
    check_name,
    parse_decimal,
    with_prefix,
)
from loyaltykit._validate import check_time_zone, invalid

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
MIDNIGHT = dt.time(0, 0)
_MAX_DECIMAL = Decimal(10**12)
_MAX_PLACES = 12
#: The evaluator's decimal context, whatever the caller's.
CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN,
                          traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                 decimal.Overflow])
# wide enough to add any number of outcomes exactly (each is below 10**13 and has at most
# 34 significant digits, so a sum spans well under 100 digits)
EXACT = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN,
                        traps=[decimal.InvalidOperation, decimal.Inexact])


@contextlib.contextmanager
def within(prefix: str) -> Iterator[None]:
    """Prefix the field path of InvalidProgram errors raised inside, and turn stray
    lookup/type errors from malformed dicts into InvalidProgram naming ``prefix``."""
    try:
        yield
    except InvalidProgram as exc:
        raise with_prefix(exc, prefix) from None
    except LoyaltyError as exc:  # e.g. InvalidMoney from a nested value
        raise InvalidProgram(f"{prefix}: {exc.message}", field=prefix,
                             value=dict(exc.details)) from None
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise InvalidProgram(f"{prefix}: malformed ({shown(exc)})", field=prefix,
                             value=None) from None


def check_decimal(value: object, field: str, *, positive: bool = False) -> Decimal:
    """A rule's decimal: not negative (above 0 with ``positive``), at most 10**12 with at
    most 12 decimal places."""
    amount = parse_decimal(value, field, InvalidProgram)
    if amount < ZERO or (positive and amount == ZERO):
        raise invalid(field, "must be greater than 0" if positive else "must not be negative",
                      str(amount))
    if amount > _MAX_DECIMAL or amount.as_tuple().exponent < -_MAX_PLACES:  # type: ignore[operator]
        raise invalid(field, f"must be at most {_MAX_DECIMAL} with at most {_MAX_PLACES} decimal "
                      "places", str(amount))
    return amount


def check_label(value: object, field: str) -> str:
    """A name the shop gave (a tier, channel, store, category, SKU, reward)."""
    return check_name(value, field, InvalidProgram)


def check_labels(value: object, field: str, *, empty: bool = True) -> tuple[str, ...]:
    """A list of names, as a tuple (at least one unless ``empty``)."""
    if not isinstance(value, list | tuple):
        raise invalid(field, "must be a list of names", shown(value))
    if not value and not empty:
        raise invalid(field, "must name at least one", [])
    return tuple(check_label(v, f"{field}[{i}]") for i, v in enumerate(value))


def set_field(obj: object, name: str, value: object) -> None:
    """Set a field of a frozen instance (to its checked, normalised value)."""
    object.__setattr__(obj, name, value)


def num_text(value: Decimal) -> str:
    """Decimal as text for explanations (no exponent for ordinary amounts)."""
    return f"{value:f}" if -10**20 < value < 10**20 else str(value)


def money_text(value: Decimal) -> str:
    """A money amount as text: cents when exact to the cent."""
    quantized = value.quantize(CENT, context=CONTEXT)
    return f"{quantized:f}" if quantized == value else num_text(value)


def points_text(value: Decimal | int) -> str:
    """``"1 point"``, ``"5 points"``."""
    return f"{value} point" if value == 1 else f"{value} points"


def program_zone(name: object) -> Zone:
    """The program's time zone called ``name``; InvalidProgram if there is none (only
    IANA names and UTC, see :func:`~loyaltykit._validate.check_time_zone`)."""
    if type(name) is str:  # a name checked before: every evaluation asks for it
        known = ZONES.get(name)
        if known is not None:
            return known
    try:
        found = zone(check_time_zone(name))
    except (ValueError, TypeError, OSError, KeyError) as exc:
        if isinstance(exc, InvalidProgram):
            raise
        raise invalid("time_zone", "unknown IANA time zone", name) from None
    if len(ZONES) < 1024:
        ZONES[name] = found  # type: ignore[index]
    return found


#: The time zones :func:`program_zone` found, by name (the same zone for a name, in any
#: program; no more than a thousand names are kept).
ZONES: dict[str, Zone] = {}


def parse_date(value: object, field: str) -> dt.date:
    """A date, or its ISO text."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise invalid(field, "must be an ISO date (YYYY-MM-DD)", value) from None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise invalid(field, "must be a date", shown(value))
    return value


def parse_time(value: object, field: str) -> dt.time:
    """A local time of day (no time zone), or its ISO text."""
    if isinstance(value, str):
        try:
            value = dt.time.fromisoformat(value)
        except ValueError:
            raise invalid(field, "must be a time of day (HH:MM)", value) from None
    if not isinstance(value, dt.time):
        raise invalid(field, "must be a time of day", shown(value))
    if value.tzinfo is not None:
        raise invalid(field, "must be a local time without a time zone (the program's is used)",
                      value.isoformat())
    return value


def time_text(value: dt.time) -> str:
    """``"18:00"``, with seconds only when it has them."""
    if value.second or value.microsecond:
        return value.isoformat()
    return value.isoformat(timespec="minutes")
