"""Reports over orders: KPIs per period, RFM, order facts for CLV (DESIGN §9).

Only orders that count are read: not cancelled and not returned in full, each for its
net goods now (the lines' net amounts after the returns so far, shipping excluded).
Rows about a member show the shop's member id; an erased member's orders still count,
under its erased name ``"erased:<key>"``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence

from loyaltykit._calendar import zone
from loyaltykit._errors import InvalidInput
from loyaltykit._member_keys import shop_ids
from loyaltykit._periods import Period, period_ranges, report_periods
from loyaltykit._reports_ledger import PointsPeriod
from loyaltykit._reports_orders import (
    DEFAULT_RFM_SEGMENTS,
    PeriodKpis,
    Purchase,
    RfmRow,
    RfmSegment,
    ranked_scores,
    segment_grid,
)
from loyaltykit._services.context import Context
from loyaltykit._validate import check_instant
from loyaltykit._values import Money, stored_money
from loyaltykit.storage.report_orders import PurchaseCursor

__all__ = ["OrderReports"]

#: Counted orders read per statement by :meth:`OrderReports.purchases`.
PURCHASES_PAGE = 1000



def _range(start: object, end: object) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Optional ``[start, end)`` bounds, checked (aware instants; start before end)."""
    lo = None if start is None else check_instant(start, "start")
    hi = None if end is None else check_instant(end, "end")
    if lo is not None and hi is not None and hi < lo:
        raise InvalidInput("end is before start", start=lo.isoformat(), end=hi.isoformat())
    return lo, hi


class OrderReports:
    """The orders' part of :class:`~loyaltykit._services.reports.ReportService`."""

    c: Context
    #: the ledger's points per period (:meth:`LedgerReports.points`), for the KPIs'
    #: redemption rate; the service wires it
    _ledger_points: Callable[..., list[PointsPeriod]]

    def purchases(self, *, start: dt.datetime | None = None,
                  end: dt.datetime | None = None) -> Iterator[Purchase]:
        """Every order that counts placed in ``[start, end)`` (None: unbounded), as a
        :class:`~loyaltykit.Purchase` (the member's shop id, the order id, when it was
        placed and its net goods now), ordered by member (each member's purchases come
        together; members in the order of their stored keys), then ``placed_at``, then
        order id (by code point).

        Cancelled orders and orders returned in full are left out; an erased member's
        orders are kept under its erased name (``"erased:<key>"``). The orders are read
        in pages of :data:`PURCHASES_PAGE` (one statement each, each resuming after the
        last order read), so the stream never holds every order; each page reads the
        orders as stored when it is read. The bounds are checked now (aware instants,
        ``end`` not before ``start``: :class:`~loyaltykit.InvalidInput`, or
        :class:`~loyaltykit.NaiveDatetime`), the orders when iterated.
        """
        lo, hi = _range(start, end)
        return self._purchases(lo, hi)

    def _purchases(self, start: dt.datetime | None,
                   end: dt.datetime | None) -> Iterator[Purchase]:
        after: PurchaseCursor | None = None
        while True:
            with self.c.read() as uow:
                page = uow.reports.counted_orders(start, end, after, PURCHASES_PAGE)
                ids = shop_ids(uow.members, [o.member_id for o in page])
            for o in page:
                yield Purchase(member_id=ids[o.member_id], order_id=o.order_id,
                               placed_at=o.placed_at, amount=Money(o.net, o.currency))
            if len(page) < PURCHASES_PAGE:
                return
            last = page[-1]
            after = (last.member_id, last.placed_at, last.order_id)

    def kpis(self, period: Period | str, start: dt.datetime, end: dt.datetime, *,
             wallet: str | None = None) -> list[PeriodKpis]:
        """The KPIs of each calendar ``period`` in the program's time zone overlapping
        ``[start, end)`` (whole periods, in time order; empty when ``end == start``):
        active, new and repeat members, orders, revenue, average order value, orders
        per active member, repeat purchase rate, retention and churn against the period
        before (the first period is compared with the one before it too), and the
        points issued and redeemed in ``wallet`` (default: the program's first) with
        the redemption rate. See :class:`~loyaltykit.PeriodKpis`.

        Orders count as they stand now (a return or cancellation made later removes
        them from every period). One statement over the orders (grouped by the periods'
        UTC bounds) and the ledger's points per period. A period that is not a
        :class:`~loyaltykit.Period`, ``end`` before ``start`` or more than
        :data:`~loyaltykit._periods.MAX_PERIODS` periods raise
        :class:`~loyaltykit.InvalidInput`; naive instants
        :class:`~loyaltykit.NaiveDatetime`.
        """
        ranges = report_periods(period, start, end, self.c.program.time_zone)
        if not ranges:
            return []
        first = ranges[0]
        before = period_ranges(first.period, first.start - dt.timedelta(microseconds=1),
                               first.start, self.c.program.time_zone)[0]
        bounds = [(r.start, r.end) for r in (before, *ranges)]
        points = {row.start: (row.issued, row.redeemed) for row in self._ledger_points(
            period, start, end, wallet=self.c.program.wallet(wallet))}
        with self.c.read() as uow:
            totals = {t.period: t for t in uow.reports.period_order_totals(bounds)}
        currency = self.c.program.currency
        out = []
        for i, r in enumerate(ranges, start=1):
            t, previous = totals.get(i), totals.get(i - 1)
            issued, redeemed = points.get(r.start, (0, 0))
            out.append(PeriodKpis(
                period=r,
                active_members=0 if t is None else t.active,
                new_members=0 if t is None else t.new,
                repeat_members=0 if t is None else t.repeat,
                orders=0 if t is None else t.orders,
                revenue=Money(0 if t is None else t.net, currency),
                previous_active_members=0 if previous is None else previous.active,
                retained_members=0 if t is None else t.retained,
                points_issued=issued,
                points_redeemed=redeemed,
            ))
        return out

    def rfm(self, *, as_of: dt.datetime | None = None,
            segments: Sequence[RfmSegment] = DEFAULT_RFM_SEGMENTS) -> list[RfmRow]:
        """Recency, frequency and monetary value of every member with at least one
        order that counts placed at or before ``as_of`` (default: now), scored 1..5 and
        named by the first matching segment of ``segments`` (default:
        :data:`~loyaltykit.DEFAULT_RFM_SEGMENTS`); one row per member, by member id.

        Recency is the whole calendar days in the program's time zone from the last
        order's local date to ``as_of``'s; frequency the orders; monetary their net
        goods now (orders count as they stand now: a later return or cancellation is
        taken into account). Scores are ranks among these members with the tie rule of
        :func:`~loyaltykit.rfm_scores` (tied values share the lower score). An erased
        member keeps its row under its erased name (``"erased:<key>"``): leaving it
        out would change the others' ranks. One statement (COUNT, SUM, MAX grouped by
        member). ``as_of`` later than now raises :class:`~loyaltykit.InvalidInput`,
        and so do segments that are not :class:`~loyaltykit.RfmSegment` values.
        """
        when = self.c.instant(as_of, "as_of")
        grid = segment_grid(segments)
        with self.c.read() as uow:
            totals = uow.reports.member_order_totals(when)
            ids = shop_ids(uow.members, [t.member_id for t in totals])
        tz = zone(self.c.program.time_zone)
        today = when.astimezone(tz).date()
        days = [(today - t.last_at.astimezone(tz).date()).days for t in totals]
        r = ranked_scores(days, False)
        f = ranked_scores([t.orders for t in totals], True)
        m = ranked_scores([t.net for t in totals], True)
        currency = self.c.program.currency
        rows = [RfmRow(member_id=ids[t.member_id], last_order_at=t.last_at,
                       recency_days=days[i], frequency=t.orders,
                       monetary=stored_money(t.net, currency), r=r[i], f=f[i], m=m[i],
                       segment=grid[r[i], f[i], m[i]])
                for i, t in enumerate(totals)]
        rows.sort(key=lambda row: row.member_id)
        return rows
