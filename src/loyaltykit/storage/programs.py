"""The program's own store: idempotency records and program versions.

Both belong to no one capability: the write pipeline checks and keeps idempotency
records for every write, and every service reads the program version in force.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from loyaltykit._model import IdempotencyRecord, ProgramVersion

__all__ = ["KeyStore", "ProgramStore"]


class KeyStore(Protocol):
    """Idempotency records of one program."""

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """Return the stored record for ``key`` in this program, or None."""

    def erase(self, member_id: str) -> None:
        """Delete the records of the member's requests (their results and fingerprints
        were made from what the shop sent about the member)."""

    def rename(self, keys: Sequence[str], old: str, new: str) -> None:
        """In the results kept for these idempotency keys, write the JSON string
        ``new`` where the JSON string ``old`` is (another member's request that named
        an erased member: its replay shows the erased name)."""

    def write(self, records: Sequence[IdempotencyRecord]) -> None:
        """Insert these records; a key already stored raises
        :class:`~loyaltykit.DuplicateKey` with ``details["key"]``."""


class ProgramStore(Protocol):
    """The stored versions of one program (registered by :meth:`Storage.register_program
    <loyaltykit.storage.Storage.register_program>`)."""

    def program_versions(self) -> list[ProgramVersion]:
        """Return every stored version of this program, lowest version first."""

    def program_version_at(self, at: dt.datetime) -> int | None:
        """Return the number of the version in force at ``at``: the highest version
        whose ``effective_from`` is None or at or before ``at``; None if there is none.
        (Only the number: the caller keeps parsed definitions, which never change.)"""
