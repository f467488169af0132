"""The reports' reads over recorded orders (program-wide, read only).

Only orders that *count* are read: not cancelled and not returned in full. What an
order counts for is its net goods now (:func:`loyaltykit._reports_orders.counted_net`),
which the orders' store keeps beside each order (``lk_orders.net_amount`` in SQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol

__all__ = ["CountedOrder", "MemberOrderTotals", "OrderReportReads", "PeriodOrderTotals",
           "PurchaseCursor"]


class CountedOrder(NamedTuple):
    """One order that counts: its member key, id, instant (UTC), currency and net."""

    member_id: str
    order_id: str
    placed_at: dt.datetime
    currency: str
    net: Decimal


#: Where a page of counted orders resumes: after (member key, placed_at, order id).
PurchaseCursor = tuple[str, dt.datetime, str]


class PeriodOrderTotals(NamedTuple):
    """The counted orders of one period (``period``: its index in the bounds given): members with
    at least one (``active``), members with at least two (``repeat``), members whose
    first counted order ever is in it (``new``), members also active in the period
    before (period - 1; ``retained``), the orders, their net sum and the points they
    are worth now (``lk_orders.points``)."""

    period: int
    active: int
    repeat: int
    new: int
    retained: int
    orders: int
    net: Decimal
    points: int = 0


class MemberOrderTotals(NamedTuple):
    """A member's counted orders up to an instant: how many, their net sum, the last
    one's instant."""

    member_id: str
    orders: int
    net: Decimal
    last_at: dt.datetime


class OrderReportReads(Protocol):
    """Set-based aggregates over the unit of work's program's orders: one statement
    per read, never one per member. Member ids here are member keys (the service shows
    shop ids)."""

    def counted_orders(self, start: dt.datetime | None, end: dt.datetime | None,
                       after: PurchaseCursor | None, limit: int) -> list[CountedOrder]:
        """Up to ``limit`` counted orders placed in ``[start, end)`` (None: open),
        ordered by (member key, placed_at, order id), the first after ``after`` (None:
        from the first). Member keys compare as the database orders them (the hex keys
        sort alike everywhere); order ids by code point."""

    def period_order_totals(
        self, bounds: Sequence[tuple[dt.datetime, dt.datetime]],
    ) -> list[PeriodOrderTotals]:
        """The counted orders' totals per period ``[lo, hi)`` of ``bounds`` (consecutive
        periods in time order), one row per period with at least one order."""

    def member_order_totals(self, until: dt.datetime) -> list[MemberOrderTotals]:
        """Per member, the counted orders placed at or before ``until``; members with
        none are left out. Any order."""
