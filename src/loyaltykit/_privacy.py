"""Privacy (DESIGN §11): what erasing a member returns, and the export's JSON form.

The shop's member id is stored once, mapped to a member key that every other row
carries (:mod:`loyaltykit._member_keys`); erasing a member deletes that mapping and
whatever else identifies the person (attributes, identity marks, the requests kept for
idempotent replays), and leaves its ledger, orders, tiers and referrals under the key,
so every total and report stays as it was.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["EXPORT_FORMAT", "ErasureResult", "json_spellings", "plain"]

#: The ``format`` of :meth:`~loyaltykit._services.privacy.PrivacyService.export`'s document.
EXPORT_FORMAT = "loyaltykit.member-export/1"


@attrs.frozen
class ErasureResult:
    """What :meth:`loyalty.privacy.erase <loyaltykit._services.privacy.PrivacyService.erase>`
    did. ``erased`` is False when there was no such member (never enrolled, or erased
    already: erasing again changes nothing). ``erased_as`` is the name the member's
    rows go by from now on (``"erased:<member key>"``, nothing that identifies the
    person): reports, due work and reversals show it where the shop's id was."""

    member_id: str
    erased: bool
    erased_as: str | None = None
    erased_at: dt.datetime | None = None


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: attrs classes and mappings as objects, sequences as
    arrays, datetimes as ISO 8601 text, UUIDs and decimals as text, enums as values."""
    if attrs.has(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    return value


def json_spellings(old: str, new: str) -> list[tuple[str, str]]:
    """The texts the JSON string ``old`` may be stored as (with non-ASCII characters
    escaped, as the standard encoder writes, and as they are), each with ``new``
    spelt the same way: what replacing one string by another in stored JSON text
    looks for."""
    found = []
    for ascii_only in (True, False):
        pair = (json.dumps(old, ensure_ascii=ascii_only),
                json.dumps(new, ensure_ascii=ascii_only))
        if pair not in found:
            found.append(pair)
    return found
