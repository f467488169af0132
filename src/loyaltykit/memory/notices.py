"""The in-memory notices' store: one entry per claimed subject."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from loyaltykit._notices import NoticeClaim
from loyaltykit.memory.tables import Tables, UndoLog

__all__ = ["MemoryNoticeStore", "NoticeTables"]


class NoticeTables:
    def __init__(self) -> None:
        # (program_id, type, member_id, subject) -> emitted at
        self.notices: dict[tuple[str, str, str, str], dt.datetime] = {}


class MemoryNoticeStore:
    """The claimed notices of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(NoticeTables)

    def claim(self, claims: Sequence[NoticeClaim], at: dt.datetime) -> list[NoticeClaim]:
        program_id, table = self._uow.program_id, self._t.notices
        won = []
        for claim in claims:
            key = (program_id, claim.type, claim.member_id, claim.subject)
            if key not in table:
                self._uow.put(table, key, at)
                won.append(claim)
        return won

    def claimed(self, type: str, member_id: str) -> list[str]:
        program_id = self._uow.program_id
        return sorted(s for (p, t, m, s) in self._t.notices
                      if (p, t, m) == (program_id, type, member_id))
