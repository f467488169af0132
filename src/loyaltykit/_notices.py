"""Notices: the events due work emits ahead of something that will happen to a member
("your 100 points expire on 1 February", "your voucher expires", "you will drop to
silver"), each exactly once per subject (DESIGN §8, scenario O2).

A notice is *claimed* before it is emitted: the notices' store keeps one row per
``(type, member, subject)`` (:class:`NoticeClaim`), inserted with the event in the same
unit of work, so a second run of due work (or one running at the same time) finds the
subject claimed and emits nothing. The subjects:

* ``points.expiring``: a lot (its id); the lots of one member, wallet and expiry
  claimed in one batch make one event;
* ``voucher.expiring``: a voucher (its id);
* ``tier.will_drop``: an evaluation instant (the member's next evaluation), so the
  next cycle can notice again.

Nothing here reads a clock or storage.
"""

from __future__ import annotations

import datetime as dt

import attrs

from loyaltykit._calendar import in_zone

__all__ = ["NOTICE_TYPES", "POINTS_EXPIRING", "TIER_WILL_DROP", "VOUCHER_EXPIRING",
           "NoticeClaim", "days_ahead", "local_iso"]

POINTS_EXPIRING = "points.expiring"
VOUCHER_EXPIRING = "voucher.expiring"
TIER_WILL_DROP = "tier.will_drop"
#: Every notice's event type.
NOTICE_TYPES = (POINTS_EXPIRING, VOUCHER_EXPIRING, TIER_WILL_DROP)


@attrs.frozen
class NoticeClaim:
    """One notice to claim: its event ``type``, the member (the shop's id above the
    stores, the member key in them) and the ``subject`` it is about (text, unique per
    type and member: a lot id, a voucher id, an evaluation instant)."""

    type: str
    member_id: str
    subject: str


def days_ahead(at: dt.datetime, days: int, time_zone: str) -> dt.datetime:
    """The instant (UTC) ``days`` calendar days after ``at`` on the wall clock of
    ``time_zone``: 30 days after 1 March 00:30 Berlin is 31 March 00:30 Berlin, 23
    hours fewer than 30 x 24 hours across the change to summer time."""
    moved = in_zone(at, time_zone).add(days=days).in_timezone("UTC")
    return dt.datetime(moved.year, moved.month, moved.day, moved.hour, moved.minute,
                       moved.second, moved.microsecond, tzinfo=dt.UTC)


def local_iso(at: dt.datetime, time_zone: str) -> str:
    """``at`` as ISO 8601 on the wall clock of ``time_zone``, with its offset (how a
    notice names the instant it warns of: ``2027-02-01T00:00:00+01:00``)."""
    return in_zone(at, time_zone).isoformat()
