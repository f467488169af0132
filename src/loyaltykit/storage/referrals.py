"""The referrals' store: codes, referrals and identity marks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import attrs

from loyaltykit._referrals import Referral, ReferralCode, ReferralMark

__all__ = ["ReferralChanges", "ReferralStore"]


@attrs.define
class ReferralChanges:
    """What one unit of work writes to the referrals' store.

    ``referral_codes`` are inserted (a code issued twice is a DuplicateKey; each is
    counted by :meth:`ReferralStore.reserve_codes` in the same unit of work first);
    ``referrals`` holds the final state of every touched referral (referee ids in
    ``new_referrals`` are inserted, the others updated); ``referral_marks`` are kept
    (one already kept is left as it is).
    """

    referral_codes: list[ReferralCode] = attrs.field(factory=list)
    referrals: dict[str, Referral] = attrs.field(factory=dict)
    new_referrals: set[str] = attrs.field(factory=set)
    referral_marks: list[ReferralMark] = attrs.field(factory=list)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.referral_codes or self.referrals or self.referral_marks)

    def write_to(self, uow: _WithReferrals) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.referrals.write(self)


class ReferralStore(Protocol):
    """Referral codes, referrals and identity marks inside one unit of work."""

    def get_code(self, code: str) -> ReferralCode | None:
        """Return the issued code (its stored, normalised form), or None."""

    def member_codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's codes, oldest first (by ``created_at``, then code)."""

    def count_codes(self) -> int:
        """Return how many codes the program has issued: the counter that
        :meth:`reserve_codes` keeps (every member's codes, expired, used-up and erased
        members' ones too; 0 before the first). Kept, not counted: its cost does not grow
        with the codes stored."""

    def reserve_codes(self, n: int, planned: int) -> bool:
        """Count ``n`` (>= 1) more codes against the program's plan: if the codes issued
        so far plus ``n`` stay within ``planned``, add ``n`` to the program's counter and
        return True; else change nothing and return False.

        Written at once, in this unit of work, and held until it ends (the counter
        row's lock, taken by the guarded increment itself: nothing is scanned under
        it). Of concurrent units of work that reserve, each sees the count that every
        one committed before it left, so as many succeed as the plan has room for and
        the others get False. Every code that :meth:`write` inserts is reserved in the
        same unit of work first, so the counter equals the codes stored."""

    def claim_code(self, code: str) -> bool:
        """Count one more use of ``code`` if it has uses left (``max_uses`` None: no
        limit) and return True; return False if it is used up. Written at once, in this
        unit of work: of concurrent units of work claiming the last use, exactly one
        gets True (the others wait for it, then see the code used up)."""

    def get_referral(self, referee_id: str) -> Referral | None:
        """Return the referee's referral (any status), or None."""

    def referrals_of(self, referrer_id: str) -> list[Referral]:
        """Return every referral of the referrer, by ``attributed_at`` then referee."""

    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        """For each instant of ``since``, count the referrer's referrals (any status)
        attributed at or after it (one read for all of them)."""

    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        """Count the referrer's QUALIFIED referrals that paid the referrer (points > 0)
        and qualified in ``[start, end)`` (``start`` None: no lower bound)."""

    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        """Return the identity marks kept for these members."""

    def erase(self, member_id: str) -> None:
        """Delete the member's identity marks (codes and referrals stay, and so does
        the program's count of codes issued)."""

    def write(self, changes: ReferralChanges) -> None:
        """Insert the codes (a code already issued in the program is a
        :class:`~loyaltykit.DuplicateKey` with ``details["code"]``), insert the new
        referrals (a second referral of a referee is a DuplicateKey) and update the
        others, and keep the identity marks unless already kept."""


class _WithReferrals(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def referrals(self) -> ReferralStore: ...
