"""The in-memory referrals store: codes, referrals and identity marks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from loyaltykit._errors import DuplicateKey, StorageError
from loyaltykit._referrals import Referral, ReferralCode, ReferralMark, ReferralStatus
from loyaltykit.memory.tables import KeptSet, Tables, UndoLog
from loyaltykit.storage.referrals import ReferralChanges

__all__ = ["MemoryReferralStore", "ReferralTables"]


class ReferralTables:
    def __init__(self) -> None:
        self.codes: dict[tuple[str, str], ReferralCode] = {}
        self.member_codes: dict[tuple[str, str], KeptSet[str]] = {}
        # program_id -> how many codes it has issued (reserve_codes keeps it)
        self.code_counts: dict[str, int] = {}
        self.referrals: dict[tuple[str, str], Referral] = {}
        # (program_id, referrer_id) -> referee ids
        self.referees: dict[tuple[str, str], KeptSet[str]] = {}
        self.marks: dict[tuple[str, str], KeptSet[tuple[str, str]]] = {}


class MemoryReferralStore:
    """The referral codes, referrals and identity marks of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(ReferralTables)

    def get_code(self, code: str) -> ReferralCode | None:
        return self._t.codes.get((self._uow.program_id, code))

    def member_codes(self, member_id: str) -> list[ReferralCode]:
        program_id = self._uow.program_id
        found = [self._t.codes[(program_id, c)]
                 for c in self._t.member_codes.get((program_id, member_id), ())]
        return sorted(found, key=lambda c: (c.created_at, c.code))

    def count_codes(self) -> int:
        return self._t.code_counts.get(self._uow.program_id, 0)

    def reserve_codes(self, n: int, planned: int) -> bool:
        # the storage's one lock, held for the whole unit of work, guards the counter
        issued = self.count_codes()
        if issued + n > planned:
            return False
        self._uow.put(self._t.code_counts, self._uow.program_id, issued + n)
        return True

    def claim_code(self, code: str) -> bool:
        program_id = self._uow.program_id
        found = self._t.codes.get((program_id, code))
        if found is None:
            raise StorageError("claim of an unknown code", code=code)
        if found.max_uses is not None and found.uses >= found.max_uses:
            return False
        self._uow.put(self._t.codes, (program_id, code),
                       attrs.evolve(found, uses=found.uses + 1))
        return True

    def get_referral(self, referee_id: str) -> Referral | None:
        return self._t.referrals.get((self._uow.program_id, referee_id))

    def referrals_of(self, referrer_id: str) -> list[Referral]:
        program_id = self._uow.program_id
        found = [self._t.referrals[(program_id, r)]
                 for r in self._t.referees.get((program_id, referrer_id), ())]
        return sorted(found, key=lambda r: (r.attributed_at, r.referee_id))

    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        found = self.referrals_of(referrer_id)
        return [sum(1 for r in found if r.attributed_at >= s) for s in since]

    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        return sum(1 for r in self.referrals_of(referrer_id)
                   if r.status is ReferralStatus.QUALIFIED and r.referrer_points > 0
                   and r.qualified_at is not None and r.qualified_at < end
                   and (start is None or r.qualified_at >= start))

    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        program_id = self._uow.program_id
        out = []
        for member_id in sorted(set(member_ids)):
            for kind, digest in sorted(self._t.marks.get((program_id, member_id), ())):
                out.append(ReferralMark(program_id, member_id, kind, digest))
        return out

    def erase(self, member_id: str) -> None:
        self._uow.drop(self._t.marks, (self._uow.program_id, member_id))

    def write(self, changes: ReferralChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        seen_codes: set[str] = set()
        for code in changes.referral_codes:
            if (program_id, code.code) in t.codes or code.code in seen_codes:
                raise DuplicateKey("code already issued", code=code.code)
            seen_codes.add(code.code)
        for referee_id in changes.new_referrals:
            if (program_id, referee_id) in t.referrals:
                raise DuplicateKey("member already referred", referee_id=referee_id)
        for referee_id in changes.referrals:
            if referee_id not in changes.new_referrals \
                    and (program_id, referee_id) not in t.referrals:
                raise StorageError("update of referrals found 0 of 1 rows")
        for code in changes.referral_codes:
            uow.put(t.codes, (program_id, code.code), code)
            uow.track(t.member_codes, (program_id, code.member_id), code.code, True)
        for referee_id, referral in changes.referrals.items():
            uow.put(t.referrals, (program_id, referee_id), referral)
            uow.track(t.referees, (program_id, referral.referrer_id), referee_id, True)
        for mark in changes.referral_marks:
            uow.track(t.marks, (program_id, mark.member_id), (mark.kind, mark.digest), True)
