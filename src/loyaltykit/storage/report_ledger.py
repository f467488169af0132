"""The reports' reads over the ledger, tiers and members (program-wide, read only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

__all__ = ["CohortSums", "FlowSums", "LedgerReportReads", "MemberFact", "TierTally"]

#: ``(start, end)`` UTC bounds of consecutive reporting periods (each ``end`` is the
#: next ``start``), as :func:`loyaltykit._periods.period_ranges` gives them.
Bounds = Sequence[tuple[dt.datetime, dt.datetime]]


@attrs.frozen
class FlowSums:
    """The sums of one wallet (and period: its index in the bounds given, -1 for none)
    by :data:`loyaltykit._reports_ledger.FLOW_NAMES`, each posting counted as
    :func:`loyaltykit._reports_ledger.flow_of` counts it."""

    wallet: str
    period: int
    sums: Mapping[str, int]


@attrs.frozen
class MemberFact:
    """A member as the reports read it: its key, enrolment, tier rank (None: no tier
    state) and the instant of its last activity (None: none)."""

    member_id: str
    enrolled_at: dt.datetime
    rank: int | None
    last_active_at: dt.datetime | None


@attrs.frozen
class TierTally:
    """Members by the tier they held at an instant: ``tier`` is the ``to_tier`` of
    their last history line by then (None: none by then), ``has_state`` whether they
    have a tier state (a member with a state and no line held the base tier)."""

    tier: str | None
    has_state: bool
    members: int


@attrs.frozen
class CohortSums:
    """The lots of one month (``month``: its index in the bounds given) earned by an
    earn or a positive adjustment: their amounts, the points expiries took from them
    (an expiry, or a release returning held points to a lot past its expiry) and the
    points left in them at the instant asked, and how many lots."""

    month: int
    issued: int
    expired: int
    remaining: int
    lots: int


class LedgerReportReads(Protocol):
    """Set-based aggregates over members, accounts, postings, lots and tier states of
    the unit of work's program: one statement per read, never one per member.
    Member ids here are member keys (the service shows shop ids)."""

    def ledger_flows(self, *, as_of: dt.datetime | None, periods: Bounds | None,
                     wallet: str | None) -> list[FlowSums]:
        """The sums per wallet of the postings of transactions that occurred at or
        before ``as_of`` (None: all), or with ``periods`` per wallet and period of the
        transactions that occurred in one of them (``period`` its index). Only the
        wallet ``wallet`` if given. Wallets (and periods) with no posting are absent."""

    def wallet_members(self, as_of: dt.datetime | None) -> dict[str, int]:
        """Per wallet, the members with an account in it enrolled by ``as_of``
        (None: all)."""

    def member_facts(self, *, rank: int | None, active_since: dt.datetime | None,
                     inactive_since: dt.datetime | None,
                     after: tuple[dt.datetime, str] | None, limit: int | None,
                     activity: Sequence[str]) -> list[MemberFact]:
        """Members in ``(enrolled_at, member_id)`` order (member ids compared by their
        code points), strictly after ``after``, at most ``limit`` (None: all): with
        tier rank ``rank`` if given; with activity (a transaction of a kind in
        ``activity``, any wallet) at or after ``active_since``; with none at or after
        ``inactive_since``."""

    def count_members(self, *, rank: int | None, active_since: dt.datetime | None,
                      inactive_since: dt.datetime | None, activity: Sequence[str]) -> int:
        """How many members :meth:`member_facts` would list in all."""

    def tier_ranks(self) -> dict[int | None, int]:
        """Members per stored tier rank now (None: members with no tier state)."""

    def tiers_as_of(self, at: dt.datetime) -> list[TierTally]:
        """Members enrolled by ``at`` by the last tier history line by then (ties in
        time: the last written)."""

    def first_lot_at(self, wallet: str, as_of: dt.datetime) -> dt.datetime | None:
        """The earliest ``earned_at`` of the wallet's lots earned at or before
        ``as_of`` (None: none)."""

    def lot_cohorts(self, wallet: str, months: Bounds, as_of: dt.datetime
                    ) -> list[CohortSums]:
        """The wallet's lots earned (at or before ``as_of``) by an earn or a positive
        adjustment, per month of ``months``, as of ``as_of`` (movements of
        transactions that occurred by then). Months with no lot are absent."""
