"""The rewards' store in SQL: vouchers and reward counters."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit._errors import SerializationFailure, StorageError
from loyaltykit._rewards import Voucher, VoucherStatus
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store, claimed_by, upserts_for
from loyaltykit.sql.schema import reward_counters, vouchers
from loyaltykit.storage.rewards import RewardChanges

__all__ = ["SQLRewardStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_r: sa.BindParameter[str] = sa.bindparam("r")
_TS_TYPE = vouchers.c.issued_at.type
_BIG = sa.BigInteger()
#: stands for "no bound" in the guarded take (no stock or limit reaches it)
_NO_BOUND = 2**62
_ISSUED = VoucherStatus.ISSUED.value

_code: sa.BindParameter[str] = sa.bindparam("code")
# the voucher found by its code through the member that claimed it (lk_lookups)
_SEL_CODE: sa.Executable = sa.select(vouchers).where(
    vouchers.c.program_id == _p, vouchers.c.code == _code,
    vouchers.c.member_id == claimed_by("voucher", _code, _p))
_SEL_MEMBER: sa.Executable = (
    sa.select(vouchers)
    .where(vouchers.c.program_id == _p, vouchers.c.member_id == _m)
    .order_by(vouchers.c.issued_at, vouchers.c.id))
_counted = sa.and_(vouchers.c.program_id == _p, vouchers.c.member_id == _m,
                   vouchers.c.reward_id == _r,
                   vouchers.c.status != VoucherStatus.CANCELLED.value,
                   vouchers.c.issued_at < sa.bindparam("end", type_=_TS_TYPE))
_COUNT: sa.Executable = sa.select(sa.func.count()).where(_counted)
_COUNT_SINCE: sa.Executable = sa.select(sa.func.count()).where(
    _counted, vouchers.c.issued_at >= sa.bindparam("start", type_=_TS_TYPE))
_SEL_COUNTERS: sa.Executable = sa.select(reward_counters.c.held, reward_counters.c.redeemed).where(
    reward_counters.c.program_id == _p, reward_counters.c.reward_id == _r)
# the condition is re-checked on the row as it stands once a concurrent take commits
# (PostgreSQL's READ COMMITTED re-evaluates it; SQLite has one writer): never oversold
_TAKE: sa.Executable = (
    reward_counters.update()
    .where(reward_counters.c.program_id == _p, reward_counters.c.reward_id == _r,
           reward_counters.c.held < sa.bindparam("stock", type_=_BIG),
           reward_counters.c.redeemed < sa.bindparam("limit", type_=_BIG))
    .values(held=reward_counters.c.held + 1, redeemed=reward_counters.c.redeemed + 1)
    .execution_options(preserve_rowcount=True))
_RELEASE: sa.Executable = (
    reward_counters.update()
    .where(reward_counters.c.program_id == _p, reward_counters.c.reward_id == _r,
           reward_counters.c.held >= sa.bindparam("h", type_=_BIG),
           reward_counters.c.redeemed >= sa.bindparam("n", type_=_BIG))
    .values(held=reward_counters.c.held - sa.bindparam("h", type_=_BIG),
            redeemed=reward_counters.c.redeemed - sa.bindparam("n", type_=_BIG))
    .execution_options(preserve_rowcount=True))
_SEL_DUE: sa.Executable = (
    sa.select(vouchers)
    .where(vouchers.c.program_id == _p, vouchers.c.status == _ISSUED,
           vouchers.c.expires_at <= sa.bindparam("at", type_=_TS_TYPE))
    .order_by(vouchers.c.expires_at, vouchers.c.id)
    .limit(sa.bindparam("limit")))
_SEL_EXPIRING = (
    sa.select(vouchers)
    .where(vouchers.c.program_id == _p, vouchers.c.status == _ISSUED,
           vouchers.c.expires_at > sa.bindparam("start", type_=_TS_TYPE),
           vouchers.c.expires_at <= sa.bindparam("end", type_=_TS_TYPE))
    .order_by(vouchers.c.expires_at, vouchers.c.id)
    .limit(sa.bindparam("limit")))
_SEL_EXPIRING_AFTER = _SEL_EXPIRING.where(
    sa.tuple_(vouchers.c.expires_at, vouchers.c.id)
    > sa.tuple_(sa.bindparam("a_at", type_=_TS_TYPE),
                sa.bindparam("a_id", type_=vouchers.c.id.type)))
_INS = vouchers.insert()
# every change of a voucher starts from issued: one that is not any more changed
# concurrently, and the rowcount tells
_UPD: sa.Update = (
    vouchers.update()
    .where(vouchers.c.program_id == sa.bindparam("k_program_id"),
           vouchers.c.id == sa.bindparam("k_id"),
           vouchers.c.member_id == sa.bindparam("k_member_id"), vouchers.c.status == _ISSUED))


def _voucher(row: Any) -> Voucher:
    return Voucher(
        id=row.id, program_id=row.program_id, code=row.code, shown=row.shown,
        member_id=row.member_id, reward_id=row.reward_id, version=row.version,
        wallet=row.wallet, cost=row.cost, transaction_id=row.transaction_id,
        status=VoucherStatus(row.status), issued_at=row.issued_at, expires_at=row.expires_at,
        used_at=row.used_at, order_id=row.order_id, cancelled_at=row.cancelled_at,
        expired_at=row.expired_at, refund_id=row.refund_id)


def _changed(v: Voucher) -> dict[str, Any]:
    return {"status": v.status.value, "used_at": v.used_at, "order_id": v.order_id,
            "cancelled_at": v.cancelled_at, "expired_at": v.expired_at,
            "refund_id": v.refund_id}


class SQLRewardStore(Store):
    """Vouchers and reward counters of one program."""

    @translated
    def get_voucher(self, code: str) -> Voucher | None:
        """Return the voucher with this code, or None."""
        row = self._c().execute(_SEL_CODE, {"p": self.program_id, "code": code}).first()
        return None if row is None else _voucher(row)

    @translated
    def member_vouchers(self, member_id: str) -> list[Voucher]:
        """Return the member's vouchers, oldest first."""
        rows = self._c().execute(_SEL_MEMBER, {"p": self.program_id, "m": member_id})
        return [_voucher(row) for row in rows]

    @translated
    def count_redeemed(self, member_id: str, reward_id: str, start: dt.datetime | None,
                       end: dt.datetime) -> int:
        """Count the member's vouchers of the reward not cancelled, issued in
        ``[start, end)``."""
        params: dict[str, Any] = {"p": self.program_id, "m": member_id, "r": reward_id,
                                  "end": end}
        if start is None:
            return int(self._c().scalar(_COUNT, params) or 0)
        params["start"] = start
        return int(self._c().scalar(_COUNT_SINCE, params) or 0)

    @translated
    def counters(self, reward_id: str) -> tuple[int, int]:
        """Return the reward's ``(held, redeemed)``."""
        row = self._c().execute(_SEL_COUNTERS, {"p": self.program_id, "r": reward_id}).first()
        return (0, 0) if row is None else (int(row.held), int(row.redeemed))

    @translated
    def take(self, reward_id: str, stock: int | None, global_limit: int | None) -> bool:
        """One guarded UPDATE; on a reward's first redemption its row is created first
        (``INSERT .. ON CONFLICT DO NOTHING``: a concurrent first one waits for the
        other's insert to commit) and the UPDATE run again."""
        if (stock is not None and stock <= 0) or (global_limit is not None
                                                  and global_limit <= 0):
            return False
        conn = self._c()
        params = {"p": self.program_id, "r": reward_id,
                  "stock": _NO_BOUND if stock is None else stock,
                  "limit": _NO_BOUND if global_limit is None else global_limit}
        if conn.execute(_TAKE, params).rowcount == 1:
            return True
        conn.execute(upserts_for(conn).reward_counter, {"p": self.program_id, "r": reward_id})
        return bool(conn.execute(_TAKE, params).rowcount == 1)

    @translated
    def release(self, reward_id: str, held: int, redeemed: int) -> None:
        """Subtract from the reward's counters (one UPDATE)."""
        result = self._c().execute(_RELEASE, {"p": self.program_id, "r": reward_id,
                                              "h": held, "n": redeemed})
        if result.rowcount != 1:
            raise StorageError("release of more than the reward's counters hold",
                               reward_id=reward_id)

    @translated
    def due_vouchers(self, at: dt.datetime, limit: int) -> list[Voucher]:
        """Return up to ``limit`` issued vouchers expired at ``at``, soonest first."""
        rows = self._c().execute(_SEL_DUE, {"p": self.program_id, "at": at, "limit": limit})
        return [_voucher(row) for row in rows]

    @translated
    def expiring_vouchers(self, start: dt.datetime, end: dt.datetime, *,
                          after: tuple[dt.datetime, uuid.UUID] | None, limit: int
                          ) -> list[Voucher]:
        """Return up to ``limit`` issued vouchers expiring in ``(start, end]``, soonest
        first, after ``after``."""
        params: dict[str, Any] = {"p": self.program_id, "start": start, "end": end,
                                  "limit": limit}
        stmt = _SEL_EXPIRING
        if after is not None:
            stmt = _SEL_EXPIRING_AFTER
            params["a_at"], params["a_id"] = after
        return [_voucher(row) for row in self._c().execute(stmt, params)]

    @translated
    def write(self, changes: RewardChanges) -> None:
        """Insert the new vouchers (a code already issued is DuplicateKey with
        ``details["code"]``) and update the others where still issued."""
        conn = self._c()
        created = changes.new_vouchers
        rows = [{"program_id": v.program_id, "id": v.id, "code": v.code, "shown": v.shown,
                 "member_id": v.member_id, "reward_id": v.reward_id, "version": v.version,
                 "wallet": v.wallet, "cost": v.cost, "transaction_id": v.transaction_id,
                 "issued_at": v.issued_at, "expires_at": v.expires_at, **_changed(v)}
                for i, v in changes.vouchers.items() if i in created]
        if rows:
            # the code is the program's one (lk_lookups), then the member's voucher
            self._claim(conn, "voucher", [(r["code"], r["member_id"]) for r in rows],
                        "voucher code already issued", "code")
            self._insert(conn, _INS, rows, "voucher code already issued", "code",
                         only="code")
        touched = [{"k_program_id": self.program_id, "k_id": v.id,
                    "k_member_id": v.member_id, **_changed(v)}
                   for i, v in sorted(changes.vouchers.items()) if i not in created]
        if touched:
            self._guarded(conn, touched)

    @staticmethod
    def _guarded(conn: Connection, rows: list[dict[str, Any]]) -> None:
        result = conn.execute(_UPD, rows)
        if result.rowcount != len(rows):
            raise SerializationFailure("a voucher changed concurrently",
                                       found=result.rowcount, expected=len(rows))
