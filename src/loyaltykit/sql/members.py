"""The members' keys in SQL: ``lk_member_ids`` (the shop's id -> member key) and
``lk_erasures``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from loyaltykit.sql._errors import translated
from loyaltykit.sql._pg_probes import key_sets, probed
from loyaltykit.sql._shared import Store, chunks
from loyaltykit.sql.schema import erasures, member_ids
from loyaltykit.storage.members import Erasure, MemberKeyChanges

__all__ = ["SQLMemberKeyStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)

_sel_keys = sa.select(member_ids.c.external_id, member_ids.c.member_id).where(
    member_ids.c.program_id == _p)
_SEL_KEYS: sa.Executable = _sel_keys.where(member_ids.c.external_id.in_(_ids))
# PostgreSQL: the shop ids as one JSON array, each probed by its key whatever the
# statistics (:mod:`loyaltykit.sql._pg_probes`: a history import looks a batch's
# members up in a program growing by the batch)
_SEL_KEYS_PG: sa.Executable = probed(_sel_keys, member_ids.c.external_id)
_SEL_IDS: sa.Executable = sa.select(member_ids.c.member_id, member_ids.c.external_id).where(
    member_ids.c.program_id == _p, member_ids.c.member_id.in_(_ids))
# PostgreSQL takes the keys as one parameter: a reader of a thousand events of a
# thousand members sends one statement, not two of 500 parameters each (a fifth of
# the outbox's read time went into building and parsing them). The parameter is the
# keys' JSON array text, not a text[]: the driver dumps a list element by element in
# Python (a tenth of a read's time), one string it sends as it is
_KEYS_GIVEN = sa.func.jsonb_array_elements_text(
    sa.cast(sa.bindparam("ids", type_=sa.Text()), JSONB)).table_valued("value").alias("k")
# joined to the given keys, each found by the (program_id, member_id) key: with
# ``member_id = ANY(array(...))`` the planner filtered every member of the program
_SEL_IDS_PG: sa.Executable = sa.select(member_ids.c.member_id, member_ids.c.external_id
                                       ).select_from(_KEYS_GIVEN.join(member_ids, sa.and_(
                                           member_ids.c.program_id == _p,
                                           member_ids.c.member_id == _KEYS_GIVEN.c.value)))
# SQLite likewise takes them as one JSON array (json_each), each probed by the
# (program_id, member_id) key: as two IN lists of 500 parameters, SQLAlchemy rendered
# each statement's parameters anew, and due work looks up every due member's key
# twice (its ledger batch, its tier batch): a twentieth of a due run's CPU time
_SEL_IDS_SQLITE: sa.Executable = sa.text(
    "SELECT m.member_id, m.external_id FROM json_each(:ids) AS k"
    " CROSS JOIN lk_member_ids AS m ON m.program_id = :p AND m.member_id = k.value")
_SEL_ERASURE: sa.Executable = sa.select(erasures.c.member_id, erasures.c.erased_at).where(
    erasures.c.program_id == _p, erasures.c.member_id == sa.bindparam("k"))
_INS_ID = member_ids.insert()
_DEL_ID = member_ids.delete().where(member_ids.c.program_id == _p,
                                    member_ids.c.member_id == sa.bindparam("k"))
# the mapping of an erased key found by the shop id it is placed by (one node)
_DEL_NAMED_ID = member_ids.delete().where(member_ids.c.program_id == _p,
                                          member_ids.c.external_id == sa.bindparam("e"),
                                          member_ids.c.member_id == sa.bindparam("k"))
_INS_ERASURE = erasures.insert()


class SQLMemberKeyStore(Store):
    """The member keys of one program."""

    @translated
    def keys_of(self, member_ids: Sequence[str]) -> dict[str, str]:
        """Return shop id -> member key for those of ``member_ids`` that are mapped."""
        conn, found = self._c(), dict[str, str]()
        for pg, named in key_sets(conn, sorted(set(member_ids))):
            found.update((r[0], r[1]) for r in conn.execute(
                _SEL_KEYS_PG if pg else _SEL_KEYS, {"p": self.program_id, **named}).all())
        return found

    @translated
    def ids_of(self, keys: Sequence[str]) -> dict[str, str]:
        """Return member key -> shop id for those of ``keys`` still mapped."""
        conn = self._c()
        dialect = conn.dialect.name
        # one JSON array bound on PostgreSQL and (more than one key) on SQLite
        if dialect == "postgresql" or (len(keys) > 1 and dialect == "sqlite"):
            rows = conn.execute(_SEL_IDS_PG if dialect == "postgresql" else _SEL_IDS_SQLITE,
                                {"p": self.program_id,
                                 "ids": orjson.dumps(sorted(set(keys))).decode()})
            return {r[0]: r[1] for r in rows}
        return self._pairs(_SEL_IDS, keys)

    def _pairs(self, stmt: sa.Executable, values: Sequence[str]) -> dict[str, str]:
        """The (looked-up value -> found value) rows of ``stmt`` for ``values``."""
        found: dict[str, str] = {}
        conn = self._c()
        for part in chunks(sorted(set(values))):
            found.update((r[0], r[1]) for r in conn.execute(
                stmt, {"p": self.program_id, "ids": part}).all())
        return found

    @translated
    def get_erasure(self, member_key: str) -> Erasure | None:
        """Return the erasure record of ``member_key``, or None."""
        row = self._c().execute(_SEL_ERASURE, {"p": self.program_id, "k": member_key}).first()
        return None if row is None else Erasure(*row)

    @translated
    def write(self, changes: MemberKeyChanges) -> None:
        """Insert the new mappings (a shop id mapped already: DuplicateKey with
        ``details["member_id"]``), delete the erased keys' mappings and keep their
        records (a key erased twice: DuplicateKey with ``details["member_key"]``)."""
        conn = self._c()
        if changes.added:
            self._insert(conn, _INS_ID, [
                {"program_id": self.program_id, "external_id": m, "member_id": k}
                for m, k in changes.added.items()], "member already enrolled", "member_id")
        if changes.erasures:
            named = changes.erased_ids
            by_id = [{"p": self.program_id, "k": e.member_key, "e": named[e.member_key]}
                     for e in changes.erasures if e.member_key in named]
            by_key = [{"p": self.program_id, "k": e.member_key}
                      for e in changes.erasures if e.member_key not in named]
            if by_id:
                conn.execute(_DEL_NAMED_ID, by_id)
            if by_key:
                conn.execute(_DEL_ID, by_key)
            self._insert(conn, _INS_ERASURE, [
                {"program_id": self.program_id, "member_id": e.member_key,
                 "erased_at": e.erased_at} for e in changes.erasures],
                "member already erased", "member_id")
