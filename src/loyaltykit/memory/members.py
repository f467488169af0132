"""The in-memory members' keys: the shop's member ids mapped to member keys."""

from __future__ import annotations

from collections.abc import Sequence

from loyaltykit._errors import DuplicateKey
from loyaltykit.memory.tables import MemberKeys, Tables, UndoLog
from loyaltykit.storage.members import Erasure, MemberKeyChanges

__all__ = ["MemberKeyTables", "MemoryMemberKeyStore"]


class MemberKeyTables:
    def __init__(self) -> None:
        # program -> shop id -> key (one dict per program, not a key tuple per member)
        self.keys: dict[str, dict[str, str]] = {}
        self.ids: dict[tuple[str, str], str] = {}  # (program, key) -> shop id
        self.erasures: dict[tuple[str, str], Erasure] = {}


class MemoryMemberKeyStore:
    """The member keys of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(MemberKeyTables)
        self._keys = tables.of(MemberKeys)

    def keys_of(self, member_ids: Sequence[str]) -> dict[str, str]:
        keys = self._t.keys.get(self._uow.program_id, {})
        return {m: keys[m] for m in member_ids if m in keys}

    def ids_of(self, keys: Sequence[str]) -> dict[str, str]:
        program_id, ids = self._uow.program_id, self._t.ids
        return {k: ids[(program_id, k)] for k in keys if (program_id, k) in ids}

    def get_erasure(self, member_key: str) -> Erasure | None:
        return self._t.erasures.get((self._uow.program_id, member_key))

    def write(self, changes: MemberKeyChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        keys = t.keys.get(program_id, {})
        for member_id, key in changes.added.items():
            if member_id in keys or (program_id, key) in t.ids:
                raise DuplicateKey("member already enrolled", member_id=member_id)
        seen = set()
        for erasure in changes.erasures:
            k = (program_id, erasure.member_key)
            if k in t.erasures or k in seen:
                raise DuplicateKey("member already erased", member_key=erasure.member_key)
            seen.add(k)
        if changes.added and program_id not in t.keys:
            uow.put(t.keys, program_id, keys)
        for member_id, key in changes.added.items():
            uow.put(keys, member_id, key)
            uow.put(t.ids, self._keys.shared((program_id, key)), member_id)
        for erasure in changes.erasures:
            shop_id = t.ids.get((program_id, erasure.member_key))
            if shop_id is not None:
                uow.drop(keys, shop_id)
                uow.drop(t.ids, (program_id, erasure.member_key))
            uow.put(t.erasures, (program_id, erasure.member_key), erasure)
