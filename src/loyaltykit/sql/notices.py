"""The notices' store in SQL: one ``lk_notices`` row per claimed subject, claimed with
one ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` per batch.

On PostgreSQL a claim of a subject another transaction has claimed but not committed
waits for it: if it commits, the conflict leaves the row alone and nothing is returned
(the subject is the other's); if it rolls back, this claim inserts it. So two runs of
due work at once never both emit a notice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from loyaltykit._notices import NoticeClaim
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store, chunks, supported_dialect
from loyaltykit.sql.schema import notices

__all__ = ["SQLNoticeStore"]

n = notices.c
_CLAIM = {
    name: insert(notices).on_conflict_do_nothing(
        index_elements=["program_id", "type", "member_id", "subject"])
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_SEL_CLAIMED: sa.Executable = sa.select(n.subject).where(
    n.program_id == sa.bindparam("p"), n.type == sa.bindparam("t"),
    n.member_id == sa.bindparam("m")).order_by(n.subject)


class SQLNoticeStore(Store):
    """The claimed notices of one program."""

    @translated
    def claim(self, claims: Sequence[NoticeClaim], at: dt.datetime) -> list[NoticeClaim]:
        """Insert the claims not recorded yet (one statement per chunk of rows) and
        return those inserted, in the order given."""
        conn = self._c()
        unique = list(dict.fromkeys(claims))
        won: set[tuple[str, str, str]] = set()
        stmt = _CLAIM[supported_dialect(conn)]
        for chunk in chunks(unique):
            rows: list[dict[str, Any]] = [
                {"program_id": self.program_id, "type": c.type, "member_id": c.member_id,
                 "subject": c.subject, "emitted_at": at} for c in chunk]
            returning = stmt.values(rows).returning(n.type, n.member_id, n.subject)
            won.update((r[0], r[1], r[2]) for r in conn.execute(returning))
        return [c for c in unique if (c.type, c.member_id, c.subject) in won]

    @translated
    def claimed(self, type: str, member_id: str) -> list[str]:
        """The subjects of the member's claimed notices of ``type``, sorted."""
        params = {"p": self.program_id, "t": type, "m": member_id}
        return list(self._c().execute(_SEL_CLAIMED, params).scalars())
