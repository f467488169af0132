"""The members' keys: the shop's member id, kept once (DESIGN §11).

Every other row carries an internal **member key** in its ``member_id`` column (and
``referrer_id`` / ``referee_id``), never the shop's id: a key is drawn at enrolment
and never changes (it is what a distributed database spreads rows by, DESIGN §10).
This store keeps the one mapping from the shop's id to the key, and the record of each
erasure. Erasing a member deletes its mapping: the shop's id then appears nowhere, while
the member's ledger stays, under its key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import attrs

__all__ = ["Erasure", "MemberKeyChanges", "MemberKeyStore"]


@attrs.frozen
class Erasure:
    """The record of one erased member: its key and when it was erased (nothing that
    identifies the person)."""

    member_key: str
    erased_at: dt.datetime


@attrs.define
class MemberKeyChanges:
    """What one unit of work writes to the members' keys.

    ``added`` maps new shop ids to their keys (inserted; a shop id mapped already is a
    :class:`~loyaltykit.DuplicateKey` with ``details["member_id"]``); each of
    ``erasures`` deletes its key's mapping and keeps the record (a key erased twice is
    a DuplicateKey with ``details["member_key"]``). ``erased_ids`` names the shop id
    of an erased key where the writer knows it (member key -> shop id; the facade
    always does): a backend that places the mapping by the shop id (a distributed
    engine) deletes it there, on one node; the shop id is not kept.
    """

    added: dict[str, str] = attrs.field(factory=dict)
    erasures: list[Erasure] = attrs.field(factory=list)
    erased_ids: dict[str, str] = attrs.field(factory=dict)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.added or self.erasures)


class MemberKeyStore(Protocol):
    """The mapping from shop ids to member keys, inside one unit of work."""

    def keys_of(self, member_ids: Sequence[str]) -> dict[str, str]:
        """Return shop id -> member key for those of ``member_ids`` that are mapped."""

    def ids_of(self, keys: Sequence[str]) -> dict[str, str]:
        """Return member key -> shop id for those of ``keys`` still mapped (an erased
        member's key is absent)."""

    def get_erasure(self, member_key: str) -> Erasure | None:
        """Return the erasure record of ``member_key``, or None."""

    def write(self, changes: MemberKeyChanges) -> None:
        """Insert the new mappings (after the members' rows: a key must be an enrolled
        member's), then delete the erased keys' mappings and insert their records."""
