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

    ``referral_codes`` are inserted (a code issued twice is a DuplicateKey);
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

    def lock_code_count(self) -> int:
        """Return how many codes the program has stored (every member's, expired and
        used-up ones too), holding the program's code lock until the unit of work ends.

        Of concurrent units of work that call this and then insert codes, each counts
        the codes of every one that committed before it, and none can commit codes in
        between: a volume limit checked on the count holds exactly. (Memory and SQLite
        hold one lock for the whole unit of work already; PostgreSQL locks the
        program's row, so issuers of one program queue on it while other writes do
        not.)"""

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
        """Delete the member's identity marks (codes and referrals stay)."""

    def write(self, changes: ReferralChanges) -> None:
        """Insert the codes (a code already issued in the program is a
        :class:`~loyaltykit.DuplicateKey` with ``details["code"]``), insert the new
        referrals (a second referral of a referee is a DuplicateKey) and update the
        others, and keep the identity marks unless already kept."""


class _WithReferrals(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def referrals(self) -> ReferralStore: ...
