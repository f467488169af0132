"""A batch's reads taken at once: what a member's first write of the batch reads.

The history import (:mod:`loyaltykit._services.order_import`) writes many members'
orders in one unit of work. Instead of each order reading its member, accounts, tier
state and tier metric buckets on its own (a statement each), it reads them for the
whole batch in one statement per kind (:meth:`BatchReads.read`) and hands each order
the reads of its member (:meth:`BatchReads.take`, kept under :data:`PRELOAD` in the
write's ``work.scratch``), where the order service and the tiers capability find them
(:func:`member_reads`) in place of their own reads.

Such reads stand for storage only until the member's changes are written: a member's
reads are handed out once (its first order in the batch; its later orders read
storage, after the flush that wrote the first one's changes), and the import drops
the reads of every member whose changes a flush wrote (a referrer rewarded by
another member's order) with :meth:`BatchReads.drop`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import attrs

from loyaltykit._model import AccountState, Member, MemberState
from loyaltykit._tiers import TierState
from loyaltykit.storage import UnitOfWork

__all__ = ["PRELOAD", "BatchReads", "MemberReads", "member_reads"]

#: The key of a write's :class:`MemberReads` in ``work.scratch``.
PRELOAD = "preload"


@attrs.frozen
class MemberReads:
    """One member's reads, as storage had them when the batch began."""

    member_id: str
    member: Member | None
    accounts: Mapping[str, AccountState]
    #: (version, effective_from) of every stored version of the program
    versions: tuple[tuple[int, dt.datetime | None], ...]
    #: False: the tier reads were not taken (read storage)
    tiers: bool
    tier_state: TierState | None
    buckets: Mapping[dt.datetime, int]

    def member_state(self, wallets: Sequence[str], at: dt.datetime) -> MemberState | None:
        """What :meth:`~loyaltykit.storage.LedgerStore.load_member` would return."""
        if self.member is None:
            return None
        in_force = [n for n, since in self.versions if since is None or since <= at]
        return MemberState(self.member,
                           {w: s for w, s in self.accounts.items() if w in wallets},
                           max(in_force) if in_force else None)

    def tier_metric(self, start: dt.datetime, end: dt.datetime | None) -> int:
        """What :meth:`~loyaltykit.storage.TierStore.tier_metric` would return."""
        return sum(v for p, v in self.buckets.items()
                   if start <= p and (end is None or p < end))


class BatchReads:
    """The reads of a batch's members, handed out once per member."""

    def __init__(self, reads: dict[str, MemberReads]) -> None:
        self._reads = reads

    @classmethod
    def read(cls, uow: UnitOfWork, member_ids: Sequence[str], wallets: Sequence[str], *,
             tiers: bool) -> BatchReads:
        """Read the members, their ``wallets``' accounts (locked) and, with ``tiers``,
        their tier states (locked) and metric buckets: a statement or so per kind."""
        ids = list(dict.fromkeys(member_ids))
        versions = tuple((v.version, v.effective_from)
                         for v in uow.programs.program_versions())
        found = uow.ledger.load_members(ids, wallets)
        states = uow.tiers.get_tier_states(ids) if tiers else {}
        buckets = uow.tiers.tier_buckets(ids) if tiers else {}
        reads = {}
        for member_id in ids:
            member, accounts = found.get(member_id, (None, {}))
            reads[member_id] = MemberReads(
                member_id=member_id, member=member, accounts=accounts, versions=versions,
                tiers=tiers, tier_state=states.get(member_id),
                buckets=buckets.get(member_id, {}))
        return cls(reads)

    def take(self, member_id: str) -> MemberReads | None:
        """The member's reads, if they still stand for storage (then never again)."""
        return self._reads.pop(member_id, None)

    def drop(self, member_ids: Iterable[str]) -> None:
        """Forget these members' reads (their changes are being written)."""
        for member_id in member_ids:
            self._reads.pop(member_id, None)


def member_reads(scratch: Mapping[str, object], member_id: str) -> MemberReads | None:
    """The reads handed to a write (its ``work.scratch``) for ``member_id``, if any."""
    found = scratch.get(PRELOAD)
    if isinstance(found, MemberReads) and found.member_id == member_id:
        return found
    return None
