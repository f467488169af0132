"""The referrals' store in SQL: codes, referrals and identity marks."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit._referrals import (
    Referral,
    ReferralCode,
    ReferralMark,
    ReferralStatus,
    Source,
)
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store, claimed_by, upserts_for
from loyaltykit.sql.schema import code_counters, referral_codes, referral_marks, referrals
from loyaltykit.storage.referrals import ReferralChanges

__all__ = ["SQLReferralStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_TS_TYPE = referrals.c.attributed_at.type

_c_code: sa.BindParameter[str] = sa.bindparam("k_code")
# a code found through the member that claimed it (its owner, lk_lookups): routed to
# the owner's node on a distributed engine
_owner = referral_codes.c.member_id == claimed_by("referral", _c_code, _p)
_SEL_CODE: sa.Executable = sa.select(referral_codes).where(
    referral_codes.c.program_id == _p, referral_codes.c.code == _c_code, _owner)
_SEL_MEMBER_CODES: sa.Executable = (
    sa.select(referral_codes)
    .where(referral_codes.c.program_id == _p, referral_codes.c.member_id == _m)
    .order_by(referral_codes.c.created_at, referral_codes.c.code))
# the condition is re-checked on the row as it stands once a concurrent claim commits
# (PostgreSQL's READ COMMITTED re-evaluates it; SQLite has one writer): never over-used
_CLAIM_CODE: sa.Executable = (
    referral_codes.update()
    .where(referral_codes.c.program_id == _p, referral_codes.c.code == _c_code, _owner,
           sa.or_(referral_codes.c.max_uses.is_(None),
                  referral_codes.c.uses < referral_codes.c.max_uses))
    .values(uses=referral_codes.c.uses + 1))
_COUNT_CODES: sa.Executable = sa.select(code_counters.c.issued).where(
    code_counters.c.program_id == _p)
_INS_CODE = referral_codes.insert()
_SEL_REFERRAL: sa.Executable = sa.select(referrals).where(
    referrals.c.program_id == _p, referrals.c.referee_id == _m)
_SEL_REFERRALS_OF: sa.Executable = (
    sa.select(referrals)
    .where(referrals.c.program_id == _p, referrals.c.referrer_id == _m)
    .order_by(referrals.c.attributed_at, referrals.c.referee_id))


@functools.lru_cache(maxsize=8)
def _count_attributions(bounds: int) -> sa.Executable:
    """One count per bound ``s<i>`` of the referrer's referrals attributed at or after
    it, in one scan of those since the earliest (``s_min``)."""
    at = referrals.c.attributed_at
    counts = [sa.func.coalesce(sa.func.sum(sa.case(
        (at >= sa.bindparam(f"s{i}", type_=_TS_TYPE), 1), else_=0)), 0)
        for i in range(bounds)]
    return sa.select(*counts).where(
        referrals.c.program_id == _p, referrals.c.referrer_id == _m,
        at >= sa.bindparam("s_min", type_=_TS_TYPE))


_paid = sa.and_(referrals.c.program_id == _p, referrals.c.referrer_id == _m,
                referrals.c.status == ReferralStatus.QUALIFIED.value,
                referrals.c.referrer_points > 0,
                referrals.c.qualified_at < sa.bindparam("end", type_=_TS_TYPE))
_COUNT_PAID: sa.Executable = sa.select(sa.func.count()).where(_paid)
_COUNT_PAID_SINCE: sa.Executable = sa.select(sa.func.count()).where(
    _paid, referrals.c.qualified_at >= sa.bindparam("start", type_=_TS_TYPE))
_INS_REFERRAL = referrals.insert()
_DEL_MARKS = referral_marks.delete().where(
    referral_marks.c.program_id == _p, referral_marks.c.member_id == _m)
_UPD_REFERRAL: sa.Update = (
    referrals.update()
    .where(referrals.c.program_id == sa.bindparam("k_program_id"),
           referrals.c.referee_id == sa.bindparam("k_referee_id")))
_SEL_MARKS: sa.Executable = (
    sa.select(referral_marks.c.member_id, referral_marks.c.kind, referral_marks.c.digest)
    .where(referral_marks.c.program_id == _p, referral_marks.c.member_id.in_(_ids))
    .order_by(referral_marks.c.member_id, referral_marks.c.kind, referral_marks.c.digest))


def _code(row: Any) -> ReferralCode:
    return ReferralCode(
        program_id=row.program_id, code=row.code, shown=row.shown, member_id=row.member_id,
        source=Source(row.source), created_at=row.created_at, expires_at=row.expires_at,
        max_uses=row.max_uses, uses=row.uses)


def _referral(row: Any) -> Referral:
    return Referral(
        program_id=row.program_id, referee_id=row.referee_id, referrer_id=row.referrer_id,
        code=row.code, source=Source(row.source), status=ReferralStatus(row.status),
        attributed_at=row.attributed_at, updated_at=row.updated_at,
        reasons=tuple(row.reasons), campaign=row.campaign, order_id=row.order_id,
        qualified_at=row.qualified_at, settles_at=row.settles_at,
        referrer_points=row.referrer_points, referee_points=row.referee_points,
        referrer_tx=row.referrer_tx, referee_tx=row.referee_tx, decided_at=row.decided_at)


def _referral_changes(r: Referral) -> dict[str, Any]:
    return {"status": r.status.value, "updated_at": r.updated_at, "reasons": list(r.reasons),
            "order_id": r.order_id, "qualified_at": r.qualified_at,
            "settles_at": r.settles_at, "referrer_points": r.referrer_points,
            "referee_points": r.referee_points, "referrer_tx": r.referrer_tx,
            "referee_tx": r.referee_tx, "decided_at": r.decided_at}


class SQLReferralStore(Store):
    """Referral codes, referrals and identity marks of one program."""

    @translated
    def get_code(self, code: str) -> ReferralCode | None:
        """Return the issued code, or None."""
        row = self._c().execute(_SEL_CODE, {"p": self.program_id, "k_code": code}).first()
        return None if row is None else _code(row)

    @translated
    def member_codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's codes, oldest first."""
        rows = self._c().execute(_SEL_MEMBER_CODES, {"p": self.program_id, "m": member_id})
        return [_code(row) for row in rows]

    @translated
    def count_codes(self) -> int:
        """Read the program's counter of codes issued (0 without a row)."""
        return int(self._c().scalar(_COUNT_CODES, {"p": self.program_id}) or 0)

    @translated
    def reserve_codes(self, n: int, planned: int) -> bool:
        """Add ``n`` to the program's counter if it stays within ``planned``: one
        guarded upsert (the first code creates the row), which takes the row's lock
        itself and holds it until the unit of work ends; nothing is scanned under it.
        A concurrent reservation holds the row until it commits, and the condition is
        then checked on the row it left (PostgreSQL's READ COMMITTED re-checks it on
        the newest version; SQLite has one writer)."""
        if n > planned:
            return False
        conn = self._c()
        result = conn.execute(upserts_for(conn).code_count,
                              {"p": self.program_id, "n": n, "planned": planned})
        return bool(result.rowcount == 1)

    @translated
    def claim_code(self, code: str) -> bool:
        """Count one more use of ``code`` unless it is used up (one guarded UPDATE)."""
        result = self._c().execute(_CLAIM_CODE, {"p": self.program_id, "k_code": code})
        return bool(result.rowcount == 1)

    @translated
    def get_referral(self, referee_id: str) -> Referral | None:
        """Return the referee's referral, or None."""
        row = self._c().execute(_SEL_REFERRAL, {"p": self.program_id, "m": referee_id}).first()
        return None if row is None else _referral(row)

    @translated
    def referrals_of(self, referrer_id: str) -> list[Referral]:
        """Return the referrer's referrals by attribution."""
        rows = self._c().execute(_SEL_REFERRALS_OF, {"p": self.program_id, "m": referrer_id})
        return [_referral(row) for row in rows]

    @translated
    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        """For each instant of ``since``, count the referrer's referrals attributed at or
        after it: one statement for all."""
        if not since:
            return []
        params: dict[str, Any] = {"p": self.program_id, "m": referrer_id,
                                  "s_min": min(since)}
        params.update({f"s{i}": s for i, s in enumerate(since)})
        row = self._c().execute(_count_attributions(len(since)), params).one()
        return [int(n) for n in row]

    @translated
    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        """Count the referrer's paid referrals that qualified in ``[start, end)``."""
        params: dict[str, Any] = {"p": self.program_id, "m": referrer_id, "end": end}
        if start is None:
            return int(self._c().scalar(_COUNT_PAID, params) or 0)
        params["start"] = start
        return int(self._c().scalar(_COUNT_PAID_SINCE, params) or 0)

    @translated
    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        """Return the identity marks kept for these members."""
        if not member_ids:
            return []
        rows = self._c().execute(_SEL_MARKS, {"p": self.program_id,
                                              "ids": sorted(set(member_ids))})
        return [ReferralMark(self.program_id, m, kind, digest) for m, kind, digest in rows]

    @translated
    def erase(self, member_id: str) -> None:
        """Delete the member's identity marks."""
        self._c().execute(_DEL_MARKS, {"p": self.program_id, "m": member_id})

    @translated
    def write(self, changes: ReferralChanges) -> None:
        """Insert the codes (a code already issued is DuplicateKey with
        ``details["code"]``), insert the new referrals (a second referral of a referee
        is DuplicateKey) and update the others, then keep the identity marks unless
        already kept."""
        conn = self._c()
        program_id = self.program_id
        if changes.referral_codes:
            # each code is the program's one (lk_lookups), then its owner's row
            self._claim(conn, "referral", [(c.code, c.member_id)
                                           for c in changes.referral_codes],
                        "code already issued", "code")
            self._insert(conn, _INS_CODE, [
                {"program_id": program_id, "code": c.code, "shown": c.shown,
                 "member_id": c.member_id, "source": c.source.value,
                 "created_at": c.created_at, "expires_at": c.expires_at,
                 "max_uses": c.max_uses, "uses": c.uses}
                for c in changes.referral_codes
            ], "code already issued", "code")
        if changes.referrals:
            self._write_referrals(conn, changes)
        if changes.referral_marks:
            conn.execute(upserts_for(conn).mark, [
                {"program_id": program_id, "member_id": m.member_id, "kind": m.kind,
                 "digest": m.digest} for m in changes.referral_marks])

    def _write_referrals(self, conn: Connection, changes: ReferralChanges) -> None:
        created = changes.new_referrals
        rows = [{"program_id": r.program_id, "referee_id": r.referee_id,
                 "referrer_id": r.referrer_id, "code": r.code, "source": r.source.value,
                 "attributed_at": r.attributed_at, "campaign": r.campaign,
                 **_referral_changes(r)}
                for referee_id, r in changes.referrals.items() if referee_id in created]
        if rows:
            self._insert(conn, _INS_REFERRAL, rows, "member already referred", "referee_id")
        touched = [{"k_program_id": r.program_id, "k_referee_id": r.referee_id,
                    **_referral_changes(r)}
                   for referee_id, r in changes.referrals.items() if referee_id not in created]
        if touched:
            self._update(conn, _UPD_REFERRAL, touched, "referrals")
