"""Reports over orders: KPIs per period, RFM, order facts for CLV (DESIGN §9).

Only orders that count are read: not cancelled and not returned in full, each for its
net goods now (the lines' net amounts after the returns so far, shipping excluded).
Rows about a member show the shop's member id; an erased member's orders still count,
under its erased name ``"erased:<key>"``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from loyaltykit._errors import InvalidInput
from loyaltykit._member_keys import ERASED_PREFIX
from loyaltykit._reports_orders import Purchase
from loyaltykit._services.context import Context
from loyaltykit._validate import check_instant
from loyaltykit._values import Money
from loyaltykit.storage import UnitOfWork
from loyaltykit.storage.report_orders import PurchaseCursor

__all__ = ["OrderReports"]

#: Counted orders read per statement by :meth:`OrderReports.purchases`.
PURCHASES_PAGE = 1000


def _shop_ids(uow: UnitOfWork, keys: Sequence[str]) -> dict[str, str]:
    """Member key -> shop id (the erased name for a key that has none any more)."""
    unique = list(dict.fromkeys(keys))
    found = uow.members.ids_of(unique) if unique else {}
    return {k: found.get(k, ERASED_PREFIX + k) for k in unique}


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
                ids = _shop_ids(uow, [o.member_id for o in page])
            for o in page:
                yield Purchase(member_id=ids[o.member_id], order_id=o.order_id,
                               placed_at=o.placed_at, amount=Money(o.net, o.currency))
            if len(page) < PURCHASES_PAGE:
                return
            last = page[-1]
            after = (last.member_id, last.placed_at, last.order_id)
