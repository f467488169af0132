"""Validation shared by the whole library: a leaf below every other module.

Two families, each with one contract:

* **Program definitions** (rules, tiers, referrals, codes, the program itself).

:func:`invalid` *builds* the :class:`~loyaltykit.InvalidProgram` naming
the bad field (``"referrals.cap.days: ..."``) and the caller raises it (``raise
invalid(...) from None`` where the cause is noise); the ``check_*`` helpers raise it
themselves and return the checked value.
* **Arguments of public calls** (member and order ids, reasons, metadata, ids):
  ``check_member_id``, ``check_reason``, ``check_json`` and ``check_id`` raise
  :class:`~loyaltykit.InvalidInput` naming the parameter and return the value in the
  form the services use.

Nothing here imports the domain modules.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from loyaltykit._errors import InvalidInput, InvalidProgram, shown

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_MEMBER_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_REASON_LENGTH",
    "NAME",
    "check_bool",
    "check_enum",
    "check_id",
    "check_ident",
    "check_int",
    "check_json",
    "check_keys",
    "check_member_id",
    "check_reason",
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
            raise invalid(str(key), f"unknown field (known: {sorted(known)})", None)
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
    """A shop's id (of a member, an order...): 1-128 characters, no surrounding spaces."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str", **{name: value})
    if not value or value != value.strip() or len(value) > MAX_MEMBER_ID_LENGTH:
        raise InvalidInput(
            f"{name} must be 1-{MAX_MEMBER_ID_LENGTH} characters without surrounding spaces",
            **{name: value},
        )
    return value


def check_reason(value: object, *, required: bool = False) -> str:
    """A reason of at most 500 characters (not blank when ``required``)."""
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise InvalidInput(f"reason must be a str of at most {MAX_REASON_LENGTH} characters",
                           reason=value)
    if required and not value.strip():
        raise InvalidInput("a reason is required", reason=value)
    return value


def check_json(value: object, name: str) -> dict[str, Any]:
    """A JSON-compatible mapping with str keys of at most 16 KiB (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{name} must be a mapping with str keys", **{name: shown(value)})
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidInput(f"{name} nests deeper than {MAX_JSON_DEPTH} levels",
                           **{name: shown(value)})
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
