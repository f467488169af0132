"""The in-memory stores of idempotency records and program versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

import attrs

from loyaltykit._errors import DuplicateKey
from loyaltykit._model import IdempotencyRecord, ProgramVersion
from loyaltykit._privacy import json_spellings
from loyaltykit.memory.compact import pack_digest, pack_text, unpack, unpack_digest
from loyaltykit.memory.tables import JSONText, Tables, UndoLog, version_copy, version_stored

__all__ = ["KeyTables", "MemoryKeyStore", "MemoryProgramStore", "ProgramTables"]


class KeyTables:
    def __init__(self) -> None:
        # program_id -> key -> record, as :func:`_kept` keeps it (read through
        # :func:`_read`; one dict per program, not a (program, key) tuple per record)
        self.keys: dict[str, dict[str, IdempotencyRecord]] = {}


def _kept(record: IdempotencyRecord) -> IdempotencyRecord:
    """``record`` as the store keeps it: its fingerprint as the digest's bytes and its
    result deflated (:mod:`.compact`; ``bytes`` where the fields say ``str``: 140 bytes
    of an enrolment's 360, its key and fingerprint among them)."""
    return attrs.evolve(record, fingerprint=cast(str, pack_digest(record.fingerprint)),
                        result=cast(str, pack_text(record.result)))


def _read(record: IdempotencyRecord) -> IdempotencyRecord:
    """The record :func:`_kept` was given."""
    return attrs.evolve(
        record, fingerprint=cast(str, unpack_digest(cast("bytes | str", record.fingerprint))),
        result=unpack(cast("bytes | str", record.result)))


class ProgramTables:
    def __init__(self) -> None:
        self.programs: dict[str, JSONText] = {}
        self.versions: dict[str, dict[int, ProgramVersion]] = {}

    def register(self, version: ProgramVersion) -> None:
        """Keep ``version`` unless ``(program_id, version)`` is kept already; the caller
        holds the storage's lock."""
        stored = version_stored(version)
        self.programs.setdefault(version.program_id, JSONText.of(version.definition))
        self.versions.setdefault(version.program_id, {}).setdefault(version.version, stored)


class MemoryKeyStore:
    """The idempotency records of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(KeyTables)

    def _records(self) -> dict[str, IdempotencyRecord]:
        """The program's records (an empty dict, not kept, if it has none)."""
        return self._t.keys.get(self._uow.program_id, {})

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        found = self._records().get(key)
        return None if found is None else _read(found)

    def erase(self, member_id: str) -> None:
        records = self._records()
        for k in [k for k, r in records.items() if r.member_id == member_id]:
            self._uow.drop(records, k)

    def rename(self, keys: Sequence[str], old: str, new: str) -> None:
        records = self._records()
        spellings = json_spellings(old, new)
        for key in keys:
            kept = records.get(key)
            if kept is None:
                continue
            record = _read(kept)
            result = record.result
            for before, after in spellings:
                result = result.replace(before, after)
            if result != record.result:
                self._uow.put(records, key, _kept(attrs.evolve(record, result=result)))

    def write(self, records: Sequence[IdempotencyRecord]) -> None:
        program_id, kept = self._uow.program_id, self._records()
        for record in records:
            if record.key in kept:
                raise DuplicateKey("idempotency key already used", key=record.key)
        if records and program_id not in self._t.keys:
            self._uow.put(self._t.keys, program_id, kept)
        for record in records:
            self._uow.put(kept, record.key, _kept(record))


class MemoryProgramStore:
    """The stored versions of one unit of work's program (read only)."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(ProgramTables)

    def program_versions(self) -> list[ProgramVersion]:
        versions = self._t.versions.get(self._uow.program_id, {})
        return [version_copy(versions[n]) for n in sorted(versions)]

    def program_version_at(self, at: dt.datetime) -> int | None:
        versions = self._t.versions.get(self._uow.program_id, {})
        in_force = [n for n, v in versions.items()
                    if v.effective_from is None or v.effective_from <= at]
        return max(in_force) if in_force else None
