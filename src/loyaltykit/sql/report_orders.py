"""Reports over orders in SQL: set-based aggregates.

What an order counts for is kept beside it as exact decimal text
(``lk_orders.net_amount``, NULL when it does not count). Sums are exact: PostgreSQL
casts to ``numeric``; SQLite has no decimal type, so an aggregate written in Python
(:class:`_DecimalSum`, registered on the connection) adds the texts as ``Decimal``.
Periods are grouped by their UTC bounds, passed in as a ``VALUES`` list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit._validate import MONEY_CONTEXT
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store
from loyaltykit.sql.schema import orders
from loyaltykit.storage.report_orders import (
    CountedOrder,
    MemberOrderTotals,
    PeriodOrderTotals,
    PurchaseCursor,
)

__all__ = ["SQLOrderReports"]

#: The name of the exact decimal sum registered on SQLite connections.
DECIMAL_SUM = "lk_order_decimal_sum"

_o = orders.c
_TS = _o.placed_at.type
_counts = (_o.program_id == sa.bindparam("p"), _o.net_amount.is_not(None))


class _DecimalSum:
    """SQLite aggregate: the exact sum of decimal texts (NULLs skipped; NULL when
    none), as decimal text."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            amount = Decimal(str(value))
            self.total = amount if self.total is None else MONEY_CONTEXT.add(self.total,
                                                                             amount)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


def _sum(conn: Connection, column: Any) -> Any:
    """The exact sum of a decimal text column (or of such sums) on this connection."""
    if conn.dialect.name == "sqlite":
        _register_sum(conn.connection.driver_connection)
        return getattr(sa.func, DECIMAL_SUM)(column)
    return sa.func.sum(sa.cast(column, sa.Numeric()))


def _register_sum(driver: Any) -> None:
    """Register :class:`_DecimalSum` on a SQLite driver connection: pysqlite's, or
    aiosqlite's (:mod:`loyaltykit.aio`), whose sqlite3 connection lives in a thread of
    its own and has no aggregates in its async API: the registration runs in that
    thread, awaited through SQLAlchemy's greenlet bridge (this runs inside it)."""
    create = getattr(driver, "create_aggregate", None)
    if create is not None:
        create(DECIMAL_SUM, 1, _DecimalSum)
        return
    from sqlalchemy.util import await_only

    inner = driver._conn  # aiosqlite.Connection: the sqlite3 connection it drives
    await_only(driver._execute(inner.create_aggregate, DECIMAL_SUM, 1, _DecimalSum))


def _decimal(value: Any) -> Decimal:
    # PostgreSQL's numeric sums arrive as Decimal; SQLite's as decimal text
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _order_id(conn: Connection) -> Any:
    """Order ids compared by code point (PostgreSQL's own collation may differ)."""
    if conn.dialect.name == "postgresql":
        return sa.collate(_o.order_id, "C")
    return _o.order_id


def _sel_counted(conn: Connection, start: bool, end: bool, after: bool) -> sa.Select[Any]:
    order_id = _order_id(conn)
    stmt = sa.select(_o.member_id, _o.order_id, _o.placed_at, _o.currency,
                     _o.net_amount).where(*_counts)
    if start:
        stmt = stmt.where(_o.placed_at >= sa.bindparam("start", type_=_TS))
    if end:
        stmt = stmt.where(_o.placed_at < sa.bindparam("end", type_=_TS))
    if after:
        a_m: Any = sa.bindparam("a_m")
        a_t: Any = sa.bindparam("a_t", type_=_TS)
        stmt = stmt.where(
            # the index's own range, then the exact position within it
            sa.tuple_(_o.member_id, _o.placed_at) >= sa.tuple_(a_m, a_t),
            sa.tuple_(_o.member_id, _o.placed_at, order_id)
            > sa.tuple_(a_m, a_t, sa.bindparam("a_o")))
    return (stmt.order_by(_o.member_id, _o.placed_at, order_id)
            .limit(sa.bindparam("lim", type_=sa.Integer())))


class SQLOrderReports(Store):
    """:class:`~loyaltykit.storage.report_orders.OrderReportReads` in SQL."""

    @translated
    def counted_orders(self, start: dt.datetime | None, end: dt.datetime | None,
                       after: PurchaseCursor | None, limit: int) -> list[CountedOrder]:
        """One page of counted orders: one statement (a keyset page)."""
        conn = self._c()
        params: dict[str, Any] = {"p": self.program_id, "lim": limit}
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        if after is not None:
            params.update(a_m=after[0], a_t=after[1], a_o=after[2])
        stmt = _sel_counted(conn, start is not None, end is not None, after is not None)
        return [CountedOrder(m, o, at, currency, _decimal(net))
                for m, o, at, currency, net in conn.execute(stmt, params)]

    @translated
    def period_order_totals(
        self, bounds: Sequence[tuple[dt.datetime, dt.datetime]],
    ) -> list[PeriodOrderTotals]:
        """One statement: the counted orders joined to the periods' bounds, grouped by
        period and member, then by period (with the period before, and each member's
        first counted order)."""
        if not bounds:
            return []
        conn = self._c()
        b = sa.values(sa.column("idx", sa.Integer()), sa.column("lo", _TS),
                      sa.column("hi", _TS), name="b").data(
            [(i, lo, hi) for i, (lo, hi) in enumerate(bounds)]).cte("b")
        per = (sa.select(b.c.idx, b.c.lo, _o.member_id, sa.func.count().label("n"),
                         _sum(conn, _o.net_amount).label("net"),
                         sa.func.sum(_o.points).label("pts"))
               .select_from(orders.join(b, sa.and_(_o.placed_at >= b.c.lo,
                                                   _o.placed_at < b.c.hi)))
               .where(*_counts)
               .group_by(b.c.idx, b.c.lo, _o.member_id)
               .cte("per"))
        first = (sa.select(_o.member_id, sa.func.min(_o.placed_at).label("first_at"))
                 .where(*_counts).group_by(_o.member_id).cte("first"))
        before = per.alias("before")
        stmt = (
            sa.select(
                per.c.idx,
                sa.func.count(),
                sa.func.sum(sa.case((per.c.n >= 2, 1), else_=0)),
                sa.func.sum(sa.case((first.c.first_at >= per.c.lo, 1), else_=0)),
                sa.func.count(before.c.member_id),
                sa.func.sum(per.c.n),
                _sum(conn, per.c.net),
                sa.func.sum(per.c.pts),
            )
            .select_from(
                per.join(first, first.c.member_id == per.c.member_id)
                .outerjoin(before, sa.and_(before.c.idx == per.c.idx - 1,
                                           before.c.member_id == per.c.member_id)))
            .group_by(per.c.idx)
            .order_by(per.c.idx)
        )
        return [PeriodOrderTotals(int(i), int(active), int(repeat), int(new), int(kept),
                                  int(n), _decimal(net), int(points))
                for i, active, repeat, new, kept, n, net, points
                in conn.execute(stmt, {"p": self.program_id})]

    @translated
    def member_order_totals(self, until: dt.datetime) -> list[MemberOrderTotals]:
        """One statement: COUNT, SUM and MAX of the counted orders, grouped by member."""
        conn = self._c()
        stmt = (sa.select(_o.member_id, sa.func.count(), _sum(conn, _o.net_amount),
                          sa.func.max(_o.placed_at))
                .where(*_counts, _o.placed_at <= sa.bindparam("until", type_=_TS))
                .group_by(_o.member_id))
        return [MemberOrderTotals(m, int(n), _decimal(net), last)
                for m, n, net, last
                in conn.execute(stmt, {"p": self.program_id, "until": until})]
