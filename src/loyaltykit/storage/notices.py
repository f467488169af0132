"""The notices' store: which notices due work has emitted, one row per subject.

A notice is claimed in the unit of work that appends its event (see
:mod:`loyaltykit._notices`): :meth:`NoticeStore.claim` inserts the rows it is given
unless they are there already and says which it inserted, so each subject's notice is
emitted exactly once, however often (or however concurrently) due work runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from loyaltykit._notices import NoticeClaim

__all__ = ["NoticeStore"]


class NoticeStore(Protocol):
    """The claimed notices of one unit of work's program."""

    def claim(self, claims: Sequence[NoticeClaim], at: dt.datetime) -> list[NoticeClaim]:
        """Record each claim (emitted at ``at``) unless its ``(type, member_id,
        subject)`` is recorded already, and return those recorded now, in the order
        given (a claim given twice counts once). Written at once, in this unit of
        work: a unit of work that rolls back leaves them unclaimed, and a concurrent
        one claiming the same subject waits for it (or loses: never both). A backend
        should do it in one statement per batch (``INSERT .. ON CONFLICT DO NOTHING
        RETURNING``)."""

    def claimed(self, type: str, member_id: str) -> list[str]:
        """The subjects of the member's claimed notices of ``type``, sorted."""
