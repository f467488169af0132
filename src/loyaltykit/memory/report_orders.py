"""In-memory reports over orders (the SQL reads' twin)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal

from loyaltykit._model import OrderStatus
from loyaltykit._reports_orders import counted_net
from loyaltykit._validate import MONEY_CONTEXT
from loyaltykit.memory.order_rows import KeptOrder
from loyaltykit.memory.orders import OrderTables
from loyaltykit.memory.tables import Tables, UndoLog, plain
from loyaltykit.storage.report_orders import (
    CountedOrder,
    MemberOrderTotals,
    PeriodOrderTotals,
    PurchaseCursor,
)

__all__ = ["MemoryOrderReports"]

_ZERO = Decimal(0)


class CountedNets:
    """What each stored order counts for, worked out once per stored record (the SQL
    backends keep it in ``lk_orders.net_amount``): (program, order id) -> (the record
    it was worked out from, its net or None, its currency)."""

    def __init__(self) -> None:
        self.nets: dict[tuple[str, str], tuple[object, Decimal | None, str]] = {}


class MemoryOrderReports:
    """:class:`~loyaltykit.storage.report_orders.OrderReportReads` in memory."""

    _uow: UndoLog
    _tables: Tables

    def _counted(self) -> Iterator[CountedOrder]:
        for o, net, currency in self._counted_records():
            yield CountedOrder(o.member_id, o.order_id, o.placed_at, currency, net)

    def _counted_records(self) -> Iterator[tuple[KeptOrder, Decimal, str]]:
        program_id = self._uow.program_id
        nets = self._tables.of(CountedNets).nets
        for order_id, o in self._tables.of(OrderTables).orders.get(program_id, {}).items():
            key = (program_id, order_id)
            known = nets.get(key)
            if known is not None and known[0] is o:
                _, net, currency = known
            else:  # a new record (orders are replaced, never changed in place)
                order = o.order_value()  # (the kept text, decoded once)
                net = counted_net(order, plain(o.returned),
                                  o.status is OrderStatus.CANCELLED)
                currency = str(order["currency"])
                nets[key] = (o, net, currency)
            if net is not None:
                yield o, net, currency

    def counted_orders(self, start: dt.datetime | None, end: dt.datetime | None,
                       after: PurchaseCursor | None, limit: int) -> list[CountedOrder]:
        found = [o for o in self._counted()
                 if (start is None or o.placed_at >= start)
                 and (end is None or o.placed_at < end)
                 and (after is None or (o.member_id, o.placed_at, o.order_id) > after)]
        found.sort(key=lambda o: (o.member_id, o.placed_at, o.order_id))
        return found[:limit]

    def period_order_totals(
        self, bounds: Sequence[tuple[dt.datetime, dt.datetime]],
    ) -> list[PeriodOrderTotals]:
        first: dict[str, dt.datetime] = {}
        # period index -> member -> (orders, net)
        per: dict[int, dict[str, tuple[int, Decimal]]] = {}
        points: dict[int, int] = {}
        for o, amount, _ in self._counted_records():
            if o.member_id not in first or o.placed_at < first[o.member_id]:
                first[o.member_id] = o.placed_at
            for index, (lo, hi) in enumerate(bounds):
                if lo <= o.placed_at < hi:
                    members = per.setdefault(index, {})
                    n, net = members.get(o.member_id, (0, _ZERO))
                    members[o.member_id] = (n + 1, MONEY_CONTEXT.add(net, amount))
                    points[index] = points.get(index, 0) + o.points
                    break
        out = []
        for index in sorted(per):
            members = per[index]
            before = per.get(index - 1, {})
            net = _ZERO
            for _, amount in members.values():
                net = MONEY_CONTEXT.add(net, amount)
            out.append(PeriodOrderTotals(
                period=index,
                active=len(members),
                repeat=sum(1 for n, _ in members.values() if n >= 2),
                new=sum(1 for m in members if first[m] >= bounds[index][0]),
                retained=sum(1 for m in members if m in before),
                orders=sum(n for n, _ in members.values()),
                net=net,
                points=points[index],
            ))
        return out

    def member_order_totals(self, until: dt.datetime) -> list[MemberOrderTotals]:
        totals: dict[str, MemberOrderTotals] = {}
        for o in self._counted():
            if o.placed_at > until:
                continue
            seen = totals.get(o.member_id)
            totals[o.member_id] = (
                MemberOrderTotals(o.member_id, 1, o.net, o.placed_at) if seen is None
                else MemberOrderTotals(o.member_id, seen.orders + 1,
                                       MONEY_CONTEXT.add(seen.net, o.net),
                                       max(seen.last_at, o.placed_at)))
        return list(totals.values())
