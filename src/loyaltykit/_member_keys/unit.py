"""The storage wrapper and its units of work, handing the services translating
stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import TracebackType
from typing import Self

from loyaltykit._copy import cached
from loyaltykit._member_keys.names import ERASED_PREFIX, UNKNOWN, Names, random_key
from loyaltykit._member_keys.stores import (
    KeyedKeyStore,
    KeyedLedgerStore,
    KeyedNoticeStore,
    KeyedOrderStore,
    KeyedOutboxStore,
    KeyedReferralStore,
    KeyedRewardStore,
    KeyedTierStore,
)
from loyaltykit._model import ProgramVersion
from loyaltykit.storage import (
    KeyStore,
    LedgerStore,
    MemberKeyStore,
    NoticeStore,
    OrderStore,
    OutboxStore,
    ProgramStore,
    ReferralStore,
    ReportStore,
    RewardStore,
    Storage,
    TierStore,
    UnitOfWork,
    read_unit_of_work,
)
from loyaltykit.storage.members import Erasure, MemberKeyChanges

__all__ = ["KeyedStorage", "KeyedUnitOfWork"]


class KeyedStorage:
    """A storage whose units of work translate shop ids to member keys (see the
    package's docstring); everything else is the wrapped storage's."""

    def __init__(self, inner: Storage, *, raw: bool = False,
                 new_key: Callable[[], str] = random_key) -> None:
        self.inner = inner
        self._raw = raw
        self._new_key = new_key

    @property
    def concurrent(self) -> bool:
        """The wrapped storage's :attr:`~loyaltykit.storage.Storage.concurrent`."""
        return self.inner.concurrent

    def unit_of_work(self, program_id: str) -> KeyedUnitOfWork:
        """A unit of work of the wrapped storage, translating."""
        return KeyedUnitOfWork(self.inner.unit_of_work(program_id), raw=self._raw,
                               new_key=self._new_key)

    def read_unit_of_work(self, program_id: str) -> KeyedUnitOfWork:
        """A unit of work of the wrapped storage that only reads (an ordinary one where
        the storage has none), translating."""
        return KeyedUnitOfWork(read_unit_of_work(self.inner, program_id), raw=self._raw,
                               new_key=self._new_key)

    def register_program(self, version: ProgramVersion) -> None:
        """Register a program version in the wrapped storage."""
        self.inner.register_program(version)

    def __repr__(self) -> str:
        return f"KeyedStorage({self.inner!r})"


class KeyedUnitOfWork:
    """A unit of work whose stores take and give the shop's member ids."""

    def __init__(self, inner: UnitOfWork, *, raw: bool = False,
                 new_key: Callable[[], str] = random_key) -> None:
        self.inner = inner
        self.program_id = inner.program_id
        self._raw = raw
        self._new_key = new_key

    def __enter__(self) -> Self:
        self.inner.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        """Commit the wrapped unit of work."""
        self.inner.commit()

    @cached
    def names(self) -> Names:
        """The shop ids and keys met in this unit of work."""
        return Names(self.inner.members, raw=self._raw, new_key=self._new_key)

    @property
    def programs(self) -> ProgramStore:
        """The wrapped program store (nothing to translate)."""
        return self.inner.programs

    @property
    def members(self) -> MemberKeyStore:
        """The wrapped members' keys (they speak keys: see :attr:`names`)."""
        return self.inner.members

    @cached
    def keys(self) -> KeyStore:
        """Idempotency records, translated."""
        return KeyedKeyStore(self.inner.keys, self.names)

    @cached
    def ledger(self) -> LedgerStore:
        """The ledger, translated."""
        return KeyedLedgerStore(self.inner.ledger, self.names, self.inner.members)

    @cached
    def orders(self) -> OrderStore:
        """Orders and rule usage, translated."""
        return KeyedOrderStore(self.inner.orders, self.names)

    @cached
    def tiers(self) -> TierStore:
        """Tier states, history and notices, translated."""
        return KeyedTierStore(self.inner.tiers, self.names)

    @cached
    def referrals(self) -> ReferralStore:
        """Codes, referrals and marks, translated."""
        return KeyedReferralStore(self.inner.referrals, self.names)

    @cached
    def rewards(self) -> RewardStore:
        """Vouchers and reward counters, translated."""
        return KeyedRewardStore(self.inner.rewards, self.names)

    @cached
    def outbox(self) -> OutboxStore:
        """Events, translated (their member and the members their payload names)."""
        return KeyedOutboxStore(self.inner.outbox, self.names)

    @cached
    def notices(self) -> NoticeStore:
        """Claimed notices, translated."""
        return KeyedNoticeStore(self.inner.notices, self.names)

    @property
    def reports(self) -> ReportStore:
        """Program-wide reads, as stored: rows name member keys, which the reports'
        service shows as shop ids (one batch lookup per page)."""
        return self.inner.reports

    def erase(self, member_id: str, at: dt.datetime) -> str | None:
        """Erase a member: each store removes what identifies it, then its shop id's
        mapping goes and the erasure is recorded. Return its key (None: not mapped).

        An erased name (``"erased:<key>"``) of a recorded erasure is swept again (what
        a write that raced the erasure may have kept) and None returned."""
        key = self.names.key(member_id)
        if key.startswith(UNKNOWN):
            return None
        erased = member_id.startswith(ERASED_PREFIX)
        if erased and self.inner.members.get_erasure(key) is None:
            return None
        name = ERASED_PREFIX + key
        self.inner.keys.erase(key)
        self.inner.ledger.erase(key)
        # the other members' transfers with this one, and the results kept for them
        transfers = self.inner.ledger.rename_counterpart(key, name)
        if not erased and transfers:
            self.inner.keys.rename(transfers, member_id, name)
        self.inner.orders.erase(key, name)
        self.inner.referrals.erase(key)
        if erased:
            return None
        self.inner.members.write(MemberKeyChanges(erasures=[Erasure(key, at)],
                                                  erased_ids={key: member_id}))
        self.names.erased(member_id, key)
        return key

