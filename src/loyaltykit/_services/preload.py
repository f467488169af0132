"""A batch's reads taken at once, kept current: what a member's writes of the batch read.

The history import (:mod:`loyaltykit._services.order_import`) writes many members'
orders in one unit of work. Instead of each order reading its member, accounts, tier
state and tier metric buckets on its own (a statement each), it reads them for the
whole batch in one statement per kind (:meth:`BatchReads.read`) and hands each order
the reads of its member (:meth:`BatchReads.take`, kept under :data:`PRELOAD` in the
write's ``work.scratch``), where the order service and the tiers capability find them
(:func:`member_reads`) in place of their own reads.

After a member's write the import puts back its reads as storage will have them once
that write's changes are written (:meth:`BatchReads.advance`: the final states of its
accounts and tier state, its buckets added up, as the stores write them), so the
member's next order of the batch reads them without its changes being written first.
Reads that a write changed for another member (a referrer rewarded by a member's
order) are dropped: that member's next write reads storage. A write that reads storage
for a member with changes not yet written has them written first (:class:`ReadGuard`),
so it reads what it would have read one write at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import attrs

from loyaltykit._copy import evolve
from loyaltykit._model import AccountState, Member, MemberState
from loyaltykit._tiers import TierState
from loyaltykit.storage import LedgerChanges, TierChanges, UnitOfWork

__all__ = ["PRELOAD", "BatchReads", "MemberReads", "ReadGuard", "member_reads"]

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
        version = None
        for number, since in self.versions:
            if (since is None or since <= at) and (version is None or number > version):
                version = number
        accounts = self.accounts
        if any(w not in wallets for w in accounts):
            accounts = {w: s for w, s in accounts.items() if w in wallets}
        # (else the reads' own accounts, shared: neither is changed in place)
        return MemberState(self.member, accounts, version)

    def tier_metric(self, start: dt.datetime, end: dt.datetime | None) -> int:
        """What :meth:`~loyaltykit.storage.TierStore.tier_metric` would return."""
        return sum(v for p, v in self.buckets.items()
                   if start <= p and (end is None or p < end))

    def after(self, ledger: LedgerChanges, tiers: TierChanges | None) -> MemberReads | None:
        """These reads once a write's changes (``ledger``, ``tiers``) are written, as
        the stores write them: accounts and tier state replaced by their final states
        (a tier state's version counts its writes: one more than stored), amounts
        added to the buckets. None if the write inserted the member or its tier state
        (then the member's next write reads storage, after its changes are
        written)."""
        member_id = self.member_id
        if any(m.member_id == member_id for m in ledger.members):
            return None
        accounts = dict(self.accounts)
        for (owner, wallet), account in ledger.accounts.items():
            if owner == member_id:
                accounts[wallet] = account
        tier_state, buckets = self.tier_state, self.buckets
        if tiers is not None and self.tiers:
            state = tiers.tier_states.get(member_id)
            if state is not None:
                if member_id in tiers.new_tier_states or self.tier_state is None:
                    return None
                tier_state = evolve(state, version=self.tier_state.version + 1)
            added = [(p, v) for (owner, p), v in tiers.tier_buckets.items()
                     if owner == member_id]
            if added:
                buckets = dict(buckets)
                for period, value in added:
                    buckets[period] = buckets.get(period, 0) + value
        return evolve(self, accounts=accounts, tier_state=tier_state, buckets=buckets)


class BatchReads:
    """The reads of a batch's members, handed to each member's writes in turn, kept current."""

    def __init__(self, reads: dict[str, MemberReads]) -> None:
        self._reads = reads

    @classmethod
    def read(cls, uow: UnitOfWork, member_ids: Sequence[str], wallets: Sequence[str], *,
             tiers: bool, inserted: LedgerChanges | None = None,
             inserted_tiers: TierChanges | None = None) -> BatchReads:
        """Read the members, their ``wallets``' accounts (locked) and, with ``tiers``,
        their tier states (locked) and metric buckets: a statement or so per kind.

        The members that ``inserted`` (changes not written yet: the batch's enrolments)
        inserts are not read: their reads are taken from those changes (and the tier
        states and buckets of ``inserted_tiers``), as storage will have them once
        written; a member's inserted rows are written in its orders' statements."""
        ids = list(dict.fromkeys(member_ids))
        versions = tuple((v.version, v.effective_from)
                         for v in uow.programs.program_versions())
        found: dict[str, tuple[Member, dict[str, AccountState]]] = {}
        states: dict[str, TierState] = {}
        buckets: dict[str, dict[dt.datetime, int]] = {}
        if inserted is not None and inserted.members:
            found, states, buckets = _inserted(ids, wallets, inserted,
                                               inserted_tiers if tiers else None)
        stored = [m for m in ids if m not in found] if found else ids
        if stored:
            found.update(uow.ledger.load_members(stored, wallets))
            if tiers:
                states.update(uow.tiers.get_tier_states(stored))
                buckets.update(uow.tiers.tier_buckets(stored))
        reads = {}
        for member_id in ids:
            member, accounts = found.get(member_id, (None, {}))
            reads[member_id] = MemberReads(
                member_id=member_id, member=member, accounts=accounts, versions=versions,
                tiers=tiers, tier_state=states.get(member_id),
                buckets=buckets.get(member_id, {}))
        return cls(reads)

    def take(self, member_id: str) -> MemberReads | None:
        """The member's reads, if they stand for storage, taken out until the write
        that reads them puts them back (:meth:`advance`, or :meth:`put` if it wrote
        nothing)."""
        return self._reads.pop(member_id, None)

    def put(self, reads: MemberReads) -> None:
        """Put back reads taken by a write that changed nothing (refused)."""
        self._reads[reads.member_id] = reads

    def advance(self, member_id: str, taken: MemberReads | None, ledger: LedgerChanges,
                tiers: TierChanges | None) -> None:
        """Keep the reads current after a write of ``member_id`` (which took ``taken``)
        with these changes: the member's reads as they will be written
        (:meth:`MemberReads.after`), and the reads of any other member it changed
        dropped."""
        # (most writes change their own member only: nothing to drop, no set to build)
        reads = self._reads
        for owner, _ in ledger.accounts:
            if owner != member_id:
                reads.pop(owner, None)
        for member in ledger.members:
            if member.member_id != member_id:
                reads.pop(member.member_id, None)
        if tiers is not None:
            for owner in tiers.tier_states:
                if owner != member_id:
                    reads.pop(owner, None)
            for owner, _ in tiers.tier_buckets:
                if owner != member_id:
                    reads.pop(owner, None)
        after = taken.after(ledger, tiers) if taken is not None else None
        if after is not None:
            self._reads[member_id] = after

    def drop(self, member_ids: Iterable[str]) -> None:
        """Forget these members' reads (they read storage from here)."""
        for member_id in member_ids:
            self._reads.pop(member_id, None)


def _inserted(member_ids: Sequence[str], wallets: Sequence[str], ledger: LedgerChanges,
              tiers: TierChanges | None
              ) -> tuple[dict[str, tuple[Member, dict[str, AccountState]]],
                         dict[str, TierState], dict[str, dict[dt.datetime, int]]]:
    """The reads of the members of ``member_ids`` that ``ledger`` inserts, from the
    changes: member, ``wallets``' accounts; with ``tiers``, the tier states it inserts
    and the buckets it adds (what :meth:`BatchReads.read` would read once written)."""
    wanted = set(member_ids)
    members = {m.member_id: m for m in ledger.members if m.member_id in wanted}
    accounts: dict[str, dict[str, AccountState]] = {m: {} for m in members}
    in_wallets = set(wallets)
    for (member_id, wallet), state in ledger.accounts.items():
        if member_id in members and wallet in in_wallets:
            accounts[member_id][wallet] = state
    found = {m: (member, accounts[m]) for m, member in members.items()}
    states: dict[str, TierState] = {}
    buckets: dict[str, dict[dt.datetime, int]] = {}
    if tiers is not None:
        states = {m: s for m, s in tiers.tier_states.items()
                  if m in members and m in tiers.new_tier_states}
        for (member_id, period), value in tiers.tier_buckets.items():
            if member_id in members:
                found_buckets = buckets.setdefault(member_id, {})
                found_buckets[period] = found_buckets.get(period, 0) + value
    return found, states, buckets


#: The unit of work's stores (what :class:`ReadGuard` guards).
_STORES = frozenset({"keys", "programs", "ledger", "orders", "tiers", "referrals", "rewards",
                     "members", "outbox", "notices", "reports"})


class ReadGuard:
    """A unit of work whose stores call ``before_read()`` ahead of any call (a read,
    as a write's steps only read): a batch's writes read through it, so a read of
    storage first writes the changes it must see (see the module docstring)."""

    def __init__(self, uow: UnitOfWork, before_read: Callable[[], object]) -> None:
        self._uow = uow
        self._before_read = before_read
        self._stores: dict[str, _GuardedStore] = {}

    @property
    def unit_of_work(self) -> UnitOfWork:
        """This guard as the unit of work it stands for."""
        return cast(UnitOfWork, self)

    def __getattr__(self, name: str) -> Any:
        found = self._stores.get(name)
        if found is not None:
            return found
        value = getattr(self._uow, name)
        if name in _STORES:
            found = self._stores[name] = _GuardedStore(value, self._before_read)
            return found
        return value


class _GuardedStore:
    """A store whose methods call ``before_read()`` first."""

    def __init__(self, store: object, before_read: Callable[[], object]) -> None:
        self._store = store
        self._before_read = before_read

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value
        before_read = self._before_read

        def call(*args: Any, **kwargs: Any) -> Any:
            before_read()
            return value(*args, **kwargs)

        return call


def member_reads(scratch: Mapping[str, object], member_id: str) -> MemberReads | None:
    """The reads handed to a write (its ``work.scratch``) for ``member_id``, if any."""
    found = scratch.get(PRELOAD)
    if isinstance(found, MemberReads) and found.member_id == member_id:
        return found
    return None
