"""Privacy (DESIGN §11): what erasing a member returns and the export's format name.

The export is written in the JSON form of every record (:mod:`loyaltykit._json`).

The shop's member id is stored once, mapped to a member key that every other row
carries (:mod:`loyaltykit._member_keys`); erasing a member deletes that mapping and
whatever else identifies the person (attributes, identity marks, the requests kept for
idempotent replays), and leaves its ledger, orders, tiers and referrals under the key,
so every total and report stays as it was.
"""

from __future__ import annotations

import datetime as dt
import json

import attrs

from loyaltykit._json import JsonForm

__all__ = ["EXPORT_FORMAT", "ErasureResult", "json_spellings"]

#: The ``format`` of :meth:`~loyaltykit._services.privacy.PrivacyService.export`'s document.
EXPORT_FORMAT = "loyaltykit.member-export/1"


@attrs.frozen
class ErasureResult(JsonForm):
    """What :meth:`loyalty.privacy.erase <loyaltykit._services.privacy.PrivacyService.erase>`
    did. ``erased`` is False when there was no such member (never enrolled, or erased
    already: erasing again changes nothing). ``erased_as`` is the name the member's
    rows go by from now on (``"erased:<member key>"``, nothing that identifies the
    person): reports, due work and reversals show it where the shop's id was."""

    member_id: str
    erased: bool
    erased_as: str | None = None
    erased_at: dt.datetime | None = None


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
