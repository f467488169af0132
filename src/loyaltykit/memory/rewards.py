"""The in-memory rewards store: vouchers and reward counters."""

from __future__ import annotations

import datetime as dt
import uuid

from loyaltykit._errors import DuplicateKey, SerializationFailure, StorageError
from loyaltykit._rewards import Voucher, VoucherStatus
from loyaltykit.memory.sorted_index import IndexedTable
from loyaltykit.memory.tables import KeptSet, Tables, UndoLog
from loyaltykit.storage.rewards import RewardChanges

__all__ = ["MemoryRewardStore", "RewardTables"]


def _expiring_key(key: tuple[str, uuid.UUID], voucher: Voucher
                  ) -> tuple[str, dt.datetime, uuid.UUID] | None:
    """An issued voucher's place in the expiry index: (program, expires at, id)."""
    if voucher.status is not VoucherStatus.ISSUED or voucher.expires_at is None:
        return None
    return (key[0], voucher.expires_at, key[1])


class RewardTables:
    def __init__(self) -> None:
        # indexed by expiry (issued vouchers with one): due work reads it in that order
        self.vouchers: IndexedTable[tuple[str, uuid.UUID], Voucher] = IndexedTable(
            _expiring_key)
        # (program_id, code) -> voucher id: the unique rule on codes
        self.codes: dict[tuple[str, str], uuid.UUID] = {}
        # (program_id, member_id) -> voucher ids
        self.member_vouchers: dict[tuple[str, str], KeptSet[uuid.UUID]] = {}
        # (program_id, reward_id) -> (held, redeemed)
        self.counters: dict[tuple[str, str], tuple[int, int]] = {}


class MemoryRewardStore:
    """The vouchers and reward counters of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(RewardTables)

    def get_voucher(self, code: str) -> Voucher | None:
        program_id = self._uow.program_id
        found = self._t.codes.get((program_id, code))
        return None if found is None else self._t.vouchers[(program_id, found)]

    def member_vouchers(self, member_id: str) -> list[Voucher]:
        program_id = self._uow.program_id
        found = [self._t.vouchers[(program_id, i)]
                 for i in self._t.member_vouchers.get((program_id, member_id), ())]
        return sorted(found, key=lambda v: (v.issued_at, v.id))

    def count_redeemed(self, member_id: str, reward_id: str, start: dt.datetime | None,
                       end: dt.datetime) -> int:
        return sum(1 for v in self.member_vouchers(member_id)
                   if v.reward_id == reward_id and v.status is not VoucherStatus.CANCELLED
                   and v.issued_at < end and (start is None or v.issued_at >= start))

    def counters(self, reward_id: str) -> tuple[int, int]:
        return self._t.counters.get((self._uow.program_id, reward_id), (0, 0))

    def take(self, reward_id: str, stock: int | None, global_limit: int | None) -> bool:
        # the storage's one lock, held for the whole unit of work, guards the counter
        held, redeemed = self.counters(reward_id)
        if (stock is not None and held >= stock) \
                or (global_limit is not None and redeemed >= global_limit):
            return False
        self._uow.put(self._t.counters, (self._uow.program_id, reward_id),
                      (held + 1, redeemed + 1))
        return True

    def release(self, reward_id: str, held: int, redeemed: int) -> None:
        key = (self._uow.program_id, reward_id)
        now_held, now_redeemed = self.counters(reward_id)
        if key not in self._t.counters or now_held < held or now_redeemed < redeemed:
            raise StorageError("release of more than the reward's counters hold",
                               reward_id=reward_id)
        self._uow.put(self._t.counters, key, (now_held - held, now_redeemed - redeemed))

    def due_vouchers(self, at: dt.datetime, limit: int) -> list[Voucher]:
        program_id, vouchers = self._uow.program_id, self._t.vouchers
        due: list[Voucher] = []
        for p, expires_at, voucher_id in vouchers.index.after((program_id,)):
            if p != program_id or expires_at > at or len(due) >= limit:
                break
            due.append(vouchers[(p, voucher_id)])
        return due

    def expiring_vouchers(self, start: dt.datetime, end: dt.datetime, *,
                          after: tuple[dt.datetime, uuid.UUID] | None, limit: int
                          ) -> list[Voucher]:
        program_id, vouchers = self._uow.program_id, self._t.vouchers
        found: list[Voucher] = []
        for p, expires_at, voucher_id in vouchers.index.after(
                (program_id, start) if after is None else (program_id, *after)):
            if p != program_id or expires_at > end or len(found) >= limit:
                break
            if expires_at > start:
                found.append(vouchers[(p, voucher_id)])
        return found

    def write(self, changes: RewardChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        seen: set[str] = set()
        for voucher_id in changes.new_vouchers:
            voucher = changes.vouchers[voucher_id]
            if (program_id, voucher.code) in t.codes or voucher.code in seen:
                raise DuplicateKey("voucher code already issued", code=voucher.code)
            if (program_id, voucher_id) in t.vouchers:
                raise DuplicateKey("voucher id already stored", voucher_id=str(voucher_id))
            seen.add(voucher.code)
        for voucher_id in changes.vouchers:
            if voucher_id in changes.new_vouchers:
                continue
            stored = t.vouchers.get((program_id, voucher_id))
            if stored is None:
                raise StorageError("update of vouchers found 0 of 1 rows")
            if stored.status is not VoucherStatus.ISSUED:
                raise SerializationFailure("the voucher changed concurrently",
                                           voucher_id=str(voucher_id))
        for voucher_id, voucher in changes.vouchers.items():
            uow.put(t.vouchers, (program_id, voucher_id), voucher)
            if voucher_id in changes.new_vouchers:
                uow.put(t.codes, (program_id, voucher.code), voucher_id)
                uow.track(t.member_vouchers, (program_id, voucher.member_id), voucher_id,
                          True)
