"""Field validators shared by every part of a program definition (rules, tiers,
referrals, codes, the program itself): a leaf below them all.

One contract: :func:`invalid` *builds* the :class:`~loyaltykit.InvalidProgram` naming
the bad field (``"referrals.cap.days: ..."``) and the caller raises it (``raise
invalid(...) from None`` where the cause is noise); the ``check_*`` helpers raise it
themselves and return the checked value. Nothing here imports the domain modules.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

from loyaltykit._errors import InvalidProgram

__all__ = [
    "NAME",
    "check_bool",
    "check_enum",
    "check_ident",
    "check_int",
    "check_keys",
    "check_tuple",
    "invalid",
]

#: A lower-case name of up to 32 characters (wallets, tiers).
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def invalid(field: str, message: str, value: object) -> InvalidProgram:
    """The error for a bad ``field`` of a program definition (the message starts with
    the field's path; an empty path names the whole part being read)."""
    return InvalidProgram(f"{field}: {message}" if field else message, field=field,
                          value=value)


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
    except (ValueError, TypeError):
        raise invalid(field, f"must be one of {[m.value for m in cls]}",
                      repr(value)) from None


def check_tuple(value: object, field: str) -> tuple[Any, ...]:
    """``value`` as a tuple (a list is copied into one)."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise invalid(field, "must be a tuple", repr(value))


def check_keys(data: object, known: frozenset[str], required: tuple[str, ...] = ()
               ) -> Mapping[str, Any]:
    """``data`` if it is a mapping with only ``known`` keys and every ``required`` one."""
    if not isinstance(data, Mapping):
        raise invalid("", "must be a dict", repr(data))
    for key in data:
        if key not in known:
            raise invalid(str(key), f"unknown field (known: {sorted(known)})", None)
    for key in required:
        if key not in data:
            raise invalid(key, "is required", None)
    return data
