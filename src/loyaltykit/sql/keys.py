"""The program's own stores in SQL: idempotency records and program versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from loyaltykit._model import IdempotencyRecord, ProgramVersion
from loyaltykit._privacy import json_spellings
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store, chunks
from loyaltykit.sql.schema import idempotency_keys, program_versions

__all__ = ["SQLKeyStore", "SQLProgramStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_at = sa.bindparam("at", type_=program_versions.c.effective_from.type)

_SEL_KEY: sa.Executable = sa.select(
    idempotency_keys.c.key,
    idempotency_keys.c.fingerprint,
    idempotency_keys.c.result,
    idempotency_keys.c.created_at,
    idempotency_keys.c.member_id,
).where(idempotency_keys.c.program_id == _p, idempotency_keys.c.key == sa.bindparam("k"))
_INS_KEY = idempotency_keys.insert()
_DEL_MEMBER_KEYS = idempotency_keys.delete().where(
    idempotency_keys.c.program_id == _p, idempotency_keys.c.member_id == sa.bindparam("m"))

_RENAME = idempotency_keys.update().where(
    idempotency_keys.c.program_id == _p, idempotency_keys.c.key.in_(
        sa.bindparam("keys", expanding=True))
).values(result=sa.func.replace(idempotency_keys.c.result, sa.bindparam("old", type_=sa.Text()),
                                sa.bindparam("new", type_=sa.Text())))

_VERSION_COLS = (
    program_versions.c.program_id,
    program_versions.c.version,
    program_versions.c.effective_from,
    program_versions.c.definition,
    program_versions.c.created_at,
)
_SEL_VERSIONS: sa.Executable = (
    sa.select(*_VERSION_COLS)
    .where(program_versions.c.program_id == _p)
    .order_by(program_versions.c.version)
)
_SEL_VERSION_AT: sa.Executable = (
    sa.select(program_versions.c.version)
    .where(
        program_versions.c.program_id == _p,
        sa.or_(program_versions.c.effective_from.is_(None),
               program_versions.c.effective_from <= _at),
    )
    .order_by(program_versions.c.version.desc())
    .limit(1)
)


def _version(row: Sequence[Any]) -> ProgramVersion:
    return ProgramVersion(*row)


class SQLKeyStore(Store):
    """Idempotency records of one program (the ``lk_idempotency_keys`` table)."""

    @translated
    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """Return the stored record for ``key`` in this program, or None."""
        row = self._c().execute(_SEL_KEY, {"p": self.program_id, "k": key}).first()
        return None if row is None else IdempotencyRecord(*row)

    @translated
    def erase(self, member_id: str) -> None:
        """Delete the records of the member's requests."""
        self._c().execute(_DEL_MEMBER_KEYS, {"p": self.program_id, "m": member_id})

    @translated
    def rename(self, keys: Sequence[str], old: str, new: str) -> None:
        """One UPDATE per JSON spelling of ``old`` (Unicode escaped or not)."""
        conn = self._c()
        for before, after in json_spellings(old, new):
            for part in chunks(list(keys)):
                conn.execute(_RENAME, {"p": self.program_id, "keys": part, "old": before,
                                       "new": after})

    @translated
    def write(self, records: Sequence[IdempotencyRecord]) -> None:
        """Insert these records (one executemany); a key already stored raises
        DuplicateKey with ``details["key"]``."""
        if records:
            self._insert(self._c(), _INS_KEY, [
                {"program_id": self.program_id, "key": r.key, "member_id": r.member_id,
                 "fingerprint": r.fingerprint, "result": r.result, "created_at": r.created_at}
                for r in records
            ], "idempotency key already used", "key")


class SQLProgramStore(Store):
    """The stored versions of one program (the ``lk_program_versions`` table)."""

    @translated
    def program_versions(self) -> list[ProgramVersion]:
        """Return every stored version of this program, lowest version first."""
        rows = self._c().execute(_SEL_VERSIONS, {"p": self.program_id})
        return [_version(row) for row in rows]

    @translated
    def program_version_at(self, at: dt.datetime) -> int | None:
        """Return the number of the highest version whose ``effective_from`` is None or
        at or before ``at``; None if there is none."""
        number = self._c().execute(_SEL_VERSION_AT, {"p": self.program_id, "at": at}).scalar()
        return None if number is None else int(number)
