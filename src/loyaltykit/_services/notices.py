"""The notices' service: due work's "points expiring soon", "voucher expiring" and "tier
will drop" events, each emitted exactly once per subject (DESIGN §8, scenario O2).

A step of due work (:meth:`NoticeService.due`, added to :class:`DueWork` by the
facade) that the program's :class:`~loyaltykit.EventPolicy` switches on notice by
notice. Each notice type runs batch by batch, each batch its own unit of work with a
few statements whatever its size: one keyset-paged read of the candidates from their
capability's store (lots from the ledger, vouchers from the rewards, recorded "will
downgrade" notices from the tiers), one claim of their subjects in the notices' store
(``INSERT .. ON CONFLICT DO NOTHING RETURNING``: the subjects another run claimed are
not returned) and the outbox's insert of the events of the subjects won. A run
repeated, overlapping or running at the same time emits nothing twice; a run that
fails leaves its batch unclaimed for the next.

Candidates already noticed are read again by every run while they stay in the window
(the claim discards them): a read of the window per run, cheap next to a notice per
subject that nothing else would keep.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from loyaltykit._member_keys import ERASED_PREFIX
from loyaltykit._model import Lot
from loyaltykit._notices import (
    POINTS_EXPIRING,
    TIER_WILL_DROP,
    VOUCHER_EXPIRING,
    NoticeClaim,
    days_ahead,
    local_iso,
)
from loyaltykit._outbox import EventDraft
from loyaltykit._pipeline import Work
from loyaltykit._rewards import Voucher
from loyaltykit._services.context import Context
from loyaltykit._services.events import EventService
from loyaltykit._tiers import TierMetric, TierNotice, TierPolicy
from loyaltykit._values import Money

__all__ = ["NoticeService"]

logger = logging.getLogger("loyaltykit")

C = TypeVar("C")
#: One batch of a notice type: (the cursor after it, events appended, full batch).
_Batch = tuple[C | None, int, bool]


class NoticeService:
    """Emits the notices of one program (see the module docstring)."""

    def __init__(self, c: Context) -> None:
        self.c = c
        self.program = c.program

    def due(self, at: dt.datetime, batch_size: int, workers: int) -> dict[str, int]:
        """Due work: emit the notices the program's ``events`` policy asks for, as of
        ``at``, and count the events appended (``*_notices`` of the report)."""
        policy = self.program.events
        if policy is None:
            return {}
        tz = self.program.time_zone
        totals: dict[str, int] = {}
        if policy.points_expiring_days is not None:
            end = days_ahead(at, policy.points_expiring_days, tz)
            totals["points_expiring_notices"] = self._run(
                lambda work, cursor: self._points(work, at, end, cursor, batch_size), at)
        if policy.voucher_expiring_days is not None:
            end = days_ahead(at, policy.voucher_expiring_days, tz)
            totals["voucher_expiring_notices"] = self._run(
                lambda work, cursor: self._vouchers(work, at, end, cursor, batch_size), at)
        tiers = self.program.tiers
        if policy.tier_will_drop and tiers is not None:
            totals["tier_will_drop_notices"] = self._run(
                lambda work, cursor: self._tiers(work, tiers, at, cursor, batch_size), at)
        if any(totals.values()):
            logger.info("notices at %s: %s", at.isoformat(), totals)
        return totals

    def _run(self, batch: Callable[[Work, Any], _Batch[Any]], at: dt.datetime) -> int:
        """Run ``batch`` from the start, each call its own unit of work, until one
        comes back short; return the events appended."""
        cursor: Any = None
        total = 0
        while True:
            step = functools.partial(_call, batch, cursor)
            cursor, emitted, full = self.c.pipeline.batch(at, step, retry=True,
                                                          what="notices")
            total += emitted
            if not full:
                return total

    # -- points expiring ----------------------------------------------------------------------

    def _points(self, work: Work, at: dt.datetime, end: dt.datetime,
                after: tuple[dt.datetime, str, str, uuid.UUID] | None, limit: int
                ) -> _Batch[tuple[dt.datetime, str, str, uuid.UUID]]:
        lots = work.uow.ledger.expiring_lots(at, end, after=after, limit=limit)
        full = len(lots) == limit
        if full:  # a member's lots of one expiry make one event: keep them together
            last = _group(lots[-1])
            whole = [lot for lot in lots if _group(lot) != last]
            lots = whole or lots  # (a group larger than a batch is split)
        if not lots:
            return after, 0, False
        tail = lots[-1]
        cursor = (tail.expires_at or end, tail.member_id, tail.wallet, tail.id)
        by_subject = {str(lot.id): lot for lot in _live(lots)}
        won = self._claim(work, POINTS_EXPIRING, [
            (lot.member_id, subject) for subject, lot in by_subject.items()], at)
        groups: dict[tuple[str, str, dt.datetime], list[Lot]] = {}
        for claim in won:
            lot = by_subject[claim.subject]
            groups.setdefault(_group(lot), []).append(lot)
        tz = self.program.time_zone
        drafts = []
        for (member_id, wallet, expires_at), members_lots in groups.items():
            drafts.append(EventDraft(POINTS_EXPIRING, member_id, at, {
                "wallet": wallet,
                "points": sum(lot.remaining - lot.held for lot in members_lots),
                "expires_at": local_iso(expires_at, tz),
                "lots": [{"lot_id": str(lot.id), "points": lot.remaining - lot.held,
                          "earned_at": local_iso(lot.earned_at, tz)}
                         for lot in members_lots],
            }))
        EventService.append(work, drafts)
        return cursor, len(drafts), full

    # -- vouchers expiring --------------------------------------------------------------------

    def _vouchers(self, work: Work, at: dt.datetime, end: dt.datetime,
                  after: tuple[dt.datetime, uuid.UUID] | None, limit: int
                  ) -> _Batch[tuple[dt.datetime, uuid.UUID]]:
        found = work.uow.rewards.expiring_vouchers(at, end, after=after, limit=limit)
        if not found:
            return after, 0, False
        tail = found[-1]
        cursor = (tail.expires_at or end, tail.id)
        by_subject = {str(v.id): v for v in _live(found)}
        won = self._claim(work, VOUCHER_EXPIRING, [
            (v.member_id, subject) for subject, v in by_subject.items()], at)
        drafts = [self._voucher_draft(work, by_subject[claim.subject], at) for claim in won]
        EventService.append(work, drafts)
        return cursor, len(drafts), len(found) == limit

    def _voucher_draft(self, work: Work, voucher: Voucher, at: dt.datetime) -> EventDraft:
        tz = self.program.time_zone
        catalogue = self.c.version(voucher.version, work.uow).rewards
        reward = catalogue.by_id.get(voucher.reward_id) if catalogue is not None else None
        assert voucher.expires_at is not None  # the read returns expiring vouchers only
        return EventDraft(VOUCHER_EXPIRING, voucher.member_id, at, {
            "voucher_id": str(voucher.id),
            "code": voucher.shown,
            "reward_id": voucher.reward_id,
            "reward_name": None if reward is None else reward.name,
            "wallet": voucher.wallet,
            "cost": voucher.cost,
            "issued_at": local_iso(voucher.issued_at, tz),
            "expires_at": local_iso(voucher.expires_at, tz),
        })

    # -- tier will drop -----------------------------------------------------------------------

    def _tiers(self, work: Work, policy: TierPolicy, at: dt.datetime,
               after: tuple[dt.datetime, str] | None, limit: int
               ) -> _Batch[tuple[dt.datetime, str]]:
        found = work.uow.tiers.upcoming_tier_notices(at, cursor=after, limit=limit)
        if not found:
            return after, 0, False
        cursor = (found[-1].evaluation_at, found[-1].member_id)
        by_claim = {(n.member_id, n.evaluation_at.isoformat()): n for n in _live(found)}
        won = self._claim(work, TIER_WILL_DROP, list(by_claim), at)
        drafts = [self._tier_draft(policy, by_claim[(c.member_id, c.subject)], at)
                  for c in won]
        EventService.append(work, drafts)
        return cursor, len(drafts), len(found) == limit

    def _tier_draft(self, policy: TierPolicy, notice: TierNotice, at: dt.datetime
                    ) -> EventDraft:
        currency = self.program.currency

        def shown(units: int) -> int | str:
            value = policy.units_as(units, currency)
            return str(value.amount) if isinstance(value, Money) else value

        return EventDraft(TIER_WILL_DROP, notice.member_id, at, {
            "tier": notice.tier,
            "would_be": notice.would_be,
            "evaluation_at": local_iso(notice.evaluation_at, self.program.time_zone),
            "metric": policy.metric.value,
            "value": shown(notice.metric),
            "needed": shown(notice.needed),
            "currency": currency if policy.metric is TierMetric.SPEND else None,
        })

    # -- claims -------------------------------------------------------------------------------

    @staticmethod
    def _claim(work: Work, type_: str, subjects: Sequence[tuple[str, str]],
               at: dt.datetime) -> list[NoticeClaim]:
        """Claim ``(member_id, subject)`` pairs of ``type_``; return those won."""
        if not subjects:
            return []
        return work.uow.notices.claim([NoticeClaim(type_, m, s) for m, s in subjects], at)


def _call(batch: Callable[[Work, Any], _Batch[Any]], cursor: Any, work: Work
          ) -> _Batch[Any]:
    return batch(work, cursor)


def _group(lot: Lot) -> tuple[str, str, dt.datetime]:
    """The lots of one ``points.expiring`` event: one member, wallet and expiry."""
    assert lot.expires_at is not None  # the read returns expiring lots only
    return lot.member_id, lot.wallet, lot.expires_at


R = TypeVar("R", Lot, Voucher, TierNotice)


def _live(rows: Sequence[R]) -> list[R]:
    """``rows`` without those of erased members (nobody to tell)."""
    return [r for r in rows if not r.member_id.startswith(ERASED_PREFIX)]
