"""Reports over the ledger, tiers and members in SQL: set-based aggregates.

Each read is one statement. Postings are classified in the statement itself (a
``CASE`` per term, the rule of :func:`loyaltykit._reports_ledger.flow_of`), a reversal
joined to the transaction it reverses. Reporting periods and cohort months are
consecutive UTC ranges worked out in Python (SQLite knows no time zones) and passed in
as a ``CASE`` over their bounds, so rows are grouped by the database, never fetched to
be bucketed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from loyaltykit._reports_ledger import FLOW_NAMES
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store
from loyaltykit.sql.schema import (
    accounts,
    lot_movements,
    lots,
    members,
    postings,
    tier_history,
    tier_states,
    transactions,
)
from loyaltykit.storage.report_ledger import (
    Bounds,
    CohortSums,
    FlowSums,
    MemberFact,
    TierTally,
)

__all__ = ["SQLLedgerReports"]

_TS = transactions.c.occurred_at.type
_p = sa.bindparam("p", type_=sa.String())

_tx = transactions
_orig = transactions.alias("orig")
_acct = postings.c.account
_amt = postings.c.amount
_zero = sa.literal(0, sa.BigInteger())
# the kind a posting counts by: a reversal's is the kind of the transaction it reverses
_cls = sa.case((_tx.c.kind == "reverse", sa.func.coalesce(_orig.c.kind, "")),
               else_=_tx.c.kind)
_reverses_adjust = sa.and_(_tx.c.kind == "reverse",
                           sa.func.coalesce(_orig.c.kind, "") == "adjust")
_issued_acct = _acct.in_(["issued", "clawback_shortfall"])
_adj = _acct == "adjustments"


def _sum(*whens: tuple[Any, Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case(*whens, else_=_zero)), 0)


_FLOWS: dict[str, sa.ColumnElement[Any]] = {
    "issued": _sum((sa.and_(_issued_acct, _cls != "clawback"), -_amt),
                   (sa.and_(_adj, _reverses_adjust, _amt > 0), -_amt),
                   (sa.and_(_adj, sa.not_(_reverses_adjust), _amt < 0), -_amt)),
    "written_off": _sum((sa.and_(_issued_acct, _cls == "clawback"), _amt),
                        (sa.and_(_adj, _reverses_adjust, _amt < 0), _amt),
                        (sa.and_(_adj, sa.not_(_reverses_adjust), _amt > 0), _amt)),
    "debt": _sum((_acct == "debt", -_amt)),
    **{name: _sum((_acct == name, _amt))
       for name in ("redeemed", "expired", "available", "pending", "held", "transfers")},
}
_FLOW_COLUMNS = [_FLOWS[name].label(name) for name in FLOW_NAMES]
# joined on the member too (a reversal is its original's member's): colocated tables
# joined on their distribution column, node by node on a distributed engine (DESIGN §10)
_FLOW_FROM = (
    _tx.join(postings, sa.and_(postings.c.transaction_id == _tx.c.id,
                               postings.c.member_id == _tx.c.member_id))
    .outerjoin(_orig, sa.and_(_orig.c.id == _tx.c.reverses_id,
                              _orig.c.member_id == _tx.c.member_id))
)


def _bucket(column: Any, bounds: Bounds) -> sa.ColumnElement[Any]:
    """The index of the range of ``bounds`` (consecutive) holding ``column``."""
    return sa.case(*((column < sa.bindparam(f"e{i}", end, type_=_TS), i)
                     for i, (_, end) in enumerate(bounds)), else_=-1)


def _within(column: Any, bounds: Bounds) -> list[sa.ColumnElement[bool]]:
    return [column >= sa.bindparam("b_start", bounds[0][0], type_=_TS),
            column < sa.bindparam("b_end", bounds[-1][1], type_=_TS)]


_ACTIVITY = (
    sa.select(_tx.c.member_id.label("member_id"),
              sa.func.max(_tx.c.occurred_at).label("last_active_at"))
    .where(_tx.c.program_id == _p,
           _tx.c.kind.in_(sa.bindparam("kinds", expanding=True)))
    .group_by(_tx.c.member_id)
    .subquery("activity")
)


class SQLLedgerReports(Store):
    """:class:`~loyaltykit.storage.report_ledger.LedgerReportReads` in SQL."""

    @translated
    def ledger_flows(self, *, as_of: dt.datetime | None, periods: Bounds | None,
                     wallet: str | None) -> list[FlowSums]:
        where: list[sa.ColumnElement[bool]] = [_tx.c.program_id == _p]
        if wallet is not None:
            where.append(_tx.c.wallet == sa.bindparam("w", wallet))
        if periods is not None:
            if not periods:
                return []
            period: sa.ColumnElement[Any] = _bucket(_tx.c.occurred_at, periods)
            where += _within(_tx.c.occurred_at, periods)
        else:
            period = sa.literal(-1, sa.Integer())
            if as_of is not None:
                where.append(_tx.c.occurred_at <= sa.bindparam("at", as_of, type_=_TS))
        label = period.label("period")
        stmt = (sa.select(_tx.c.wallet, label, *_FLOW_COLUMNS).select_from(_FLOW_FROM)
                .where(*where).group_by(_tx.c.wallet, label))
        rows = self._c().execute(stmt, {"p": self.program_id}).all()
        out = [FlowSums(row[0], int(row[1]), {n: int(v) for n, v in zip(
                   FLOW_NAMES, row[2:], strict=True)}) for row in rows]
        return sorted(out, key=lambda f: (f.wallet, f.period))

    @translated
    def wallet_members(self, as_of: dt.datetime | None) -> dict[str, int]:
        stmt = (sa.select(accounts.c.wallet, sa.func.count())
                .select_from(accounts.join(members, sa.and_(
                    members.c.program_id == accounts.c.program_id,
                    members.c.member_id == accounts.c.member_id)))
                .where(accounts.c.program_id == _p)
                .group_by(accounts.c.wallet))
        if as_of is not None:
            stmt = stmt.where(members.c.enrolled_at <= sa.bindparam("at", as_of, type_=_TS))
        return {w: int(n) for w, n in self._c().execute(stmt, {"p": self.program_id})}

    def _facts_query(self, rank: int | None, active_since: dt.datetime | None,
                     inactive_since: dt.datetime | None) -> sa.Select[Any]:
        last = _ACTIVITY.c.last_active_at
        stmt = (
            sa.select(members.c.member_id, members.c.enrolled_at, tier_states.c.rank, last)
            .select_from(
                members.outerjoin(tier_states, sa.and_(
                    tier_states.c.program_id == members.c.program_id,
                    tier_states.c.member_id == members.c.member_id))
                .outerjoin(_ACTIVITY, _ACTIVITY.c.member_id == members.c.member_id))
            .where(members.c.program_id == _p)
        )
        if rank is not None:
            stmt = stmt.where(tier_states.c.rank == sa.bindparam("rank", rank))
        if active_since is not None:
            stmt = stmt.where(last >= sa.bindparam("since", active_since, type_=_TS))
        if inactive_since is not None:
            stmt = stmt.where(sa.or_(last.is_(None), last < sa.bindparam(
                "inactive", inactive_since, type_=_TS)))
        return stmt

    @translated
    def member_facts(self, *, rank: int | None, active_since: dt.datetime | None,
                     inactive_since: dt.datetime | None,
                     after: tuple[dt.datetime, str] | None, limit: int | None,
                     activity: Sequence[str]) -> list[MemberFact]:
        conn = self._c()
        # member ids compared by code point whatever the database's collation
        key = (members.c.member_id if conn.dialect.name == "sqlite"
               else members.c.member_id.collate("C"))
        stmt = self._facts_query(rank, active_since, inactive_since)
        if after is not None:
            at = sa.bindparam("after_at", after[0], type_=_TS)
            stmt = stmt.where(sa.or_(members.c.enrolled_at > at, sa.and_(
                members.c.enrolled_at == at, key > sa.bindparam("after_id", after[1]))))
        stmt = stmt.order_by(members.c.enrolled_at, key)
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = conn.execute(stmt, {"p": self.program_id, "kinds": list(activity)})
        return [MemberFact(m, at, None if r is None else int(r), last)
                for m, at, r, last in rows]

    @translated
    def count_members(self, *, rank: int | None, active_since: dt.datetime | None,
                      inactive_since: dt.datetime | None, activity: Sequence[str]) -> int:
        inner = self._facts_query(rank, active_since, inactive_since).subquery()
        stmt = sa.select(sa.func.count()).select_from(inner)
        params = {"p": self.program_id, "kinds": list(activity)}
        return int(self._c().execute(stmt, params).scalar_one())

    @translated
    def tier_ranks(self) -> dict[int | None, int]:
        stmt = (
            sa.select(tier_states.c.rank, sa.func.count())
            .select_from(members.outerjoin(tier_states, sa.and_(
                tier_states.c.program_id == members.c.program_id,
                tier_states.c.member_id == members.c.member_id)))
            .where(members.c.program_id == _p)
            .group_by(tier_states.c.rank)
        )
        rows = self._c().execute(stmt, {"p": self.program_id})
        return {None if r is None else int(r): int(n) for r, n in rows}

    @translated
    def tiers_as_of(self, at: dt.datetime) -> list[TierTally]:
        when = sa.bindparam("at", at, type_=_TS)
        ranked = (
            sa.select(
                tier_history.c.member_id, tier_history.c.to_tier,
                sa.func.row_number().over(
                    partition_by=tier_history.c.member_id,
                    order_by=(tier_history.c.at.desc(), tier_history.c.id.desc()),
                ).label("n"))
            .where(tier_history.c.program_id == _p, tier_history.c.at <= when)
            .subquery("ranked")
        )
        latest = sa.select(ranked.c.member_id, ranked.c.to_tier).where(
            ranked.c.n == 1).subquery("latest")
        has_state = sa.case((tier_states.c.member_id.is_(None), 0), else_=1)
        stmt = (
            sa.select(latest.c.to_tier, has_state.label("has_state"), sa.func.count())
            .select_from(
                members.outerjoin(latest, latest.c.member_id == members.c.member_id)
                .outerjoin(tier_states, sa.and_(
                    tier_states.c.program_id == members.c.program_id,
                    tier_states.c.member_id == members.c.member_id)))
            .where(members.c.program_id == _p, members.c.enrolled_at <= when)
            .group_by(latest.c.to_tier, has_state)
        )
        rows = self._c().execute(stmt, {"p": self.program_id})
        return [TierTally(tier, bool(state), int(n)) for tier, state, n in rows]

    @translated
    def first_lot_at(self, wallet: str, as_of: dt.datetime) -> dt.datetime | None:
        stmt = sa.select(sa.func.min(lots.c.earned_at)).where(
            lots.c.program_id == _p, lots.c.wallet == sa.bindparam("w", wallet),
            lots.c.earned_at <= sa.bindparam("at", as_of, type_=_TS))
        found: dt.datetime | None = self._c().execute(
            stmt, {"p": self.program_id}).scalar_one()
        return found

    @translated
    def lot_cohorts(self, wallet: str, months: Bounds, as_of: dt.datetime
                    ) -> list[CohortSums]:
        if not months:
            return []
        at = sa.bindparam("at", as_of, type_=_TS)
        w = sa.bindparam("w", wallet, type_=sa.String())
        delta = lot_movements.c.delta
        moved = (
            sa.select(
                lot_movements.c.member_id.label("member_id"),
                lot_movements.c.lot_id.label("lot_id"),
                sa.func.sum(delta).label("remaining"),
                sa.func.sum(sa.case((_tx.c.kind.in_(["expire", "release"]), -delta),
                                    else_=_zero)).label("expired"))
            .select_from(_tx.join(lot_movements, sa.and_(
                lot_movements.c.transaction_id == _tx.c.id,
                lot_movements.c.member_id == _tx.c.member_id)))
            .where(_tx.c.program_id == _p, _tx.c.wallet == w, _tx.c.occurred_at <= at)
            .group_by(lot_movements.c.member_id, lot_movements.c.lot_id)
            .subquery("moved")
        )
        origin = transactions.alias("origin")
        month = _bucket(lots.c.earned_at, months).label("month")
        stmt = (
            sa.select(month, sa.func.sum(lots.c.amount),
                      sa.func.coalesce(sa.func.sum(moved.c.expired), 0),
                      sa.func.coalesce(sa.func.sum(moved.c.remaining), 0),
                      sa.func.count())
            .select_from(
                # each join on the member too: node by node (see _FLOW_FROM)
                lots.join(origin, sa.and_(origin.c.id == lots.c.transaction_id,
                                          origin.c.member_id == lots.c.member_id))
                .outerjoin(moved, sa.and_(moved.c.lot_id == lots.c.id,
                                          moved.c.member_id == lots.c.member_id)))
            .where(lots.c.program_id == _p, lots.c.wallet == w, lots.c.earned_at <= at,
                   origin.c.kind.in_(["earn", "adjust"]),
                   *_within(lots.c.earned_at, months))
            .group_by(month)
        )
        rows = self._c().execute(stmt, {"p": self.program_id})
        out = [CohortSums(int(m), int(i), int(e), int(r), int(n)) for m, i, e, r, n in rows]
        return sorted(out, key=lambda c: c.month)
