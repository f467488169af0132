"""Shop ids and member keys, both ways: what one unit of work has met, and the
batch lookup program-wide reads use."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import attrs

from loyaltykit._copy import copy_with
from loyaltykit.storage import MemberKeyStore

__all__ = ["ERASED_PREFIX", "UNKNOWN", "Names", "random_key", "shop_ids"]

#: How an erased member is named: this prefix and its member key.
ERASED_PREFIX = "erased:"

#: A shop id with no key reads as this prefix and the id: no row has it.
UNKNOWN = "?"
_ID_FIELDS = ("member_id", "referrer_id", "referee_id")
_fields: dict[type, tuple[str, ...]] = {}

R = TypeVar("R")
_set = object.__setattr__


def _id_fields(cls: type) -> tuple[str, ...]:
    found = _fields.get(cls)
    if found is None:
        names = attrs.fields_dict(cls)
        found = _fields[cls] = tuple(f for f in _ID_FIELDS if f in names)
    return found


def shop_ids(members: MemberKeyStore, keys: Sequence[str]) -> dict[str, str]:
    """Member key -> shop id for ``keys``, in one batch (what program-wide reads show);
    a key whose member was erased shows as its placeholder (``erased:<key>``)."""
    unique = list(dict.fromkeys(keys))
    found = members.ids_of(unique) if unique else {}
    return {k: found.get(k) or ERASED_PREFIX + k for k in unique}


def random_key() -> str:
    """A new member key from no id source (random, 32 hex digits)."""
    return uuid.uuid4().hex


class Names:
    """The shop ids and member keys one unit of work has met, both ways."""

    def __init__(self, members: MemberKeyStore, *, raw: bool = False,
                 new_key: Callable[[], str] = random_key) -> None:
        self._members = members
        self._new_key = new_key
        # raw: an id with no key is its own key (rows a test wrote straight to the stores)
        self._raw = raw
        self._key: dict[str, str] = {}
        self._id: dict[str, str] = {}
        #: shop id -> key drawn in this unit of work (written with the member's row)
        self.added: dict[str, str] = {}

    # -- shop ids -> keys -----------------------------------------------------------------

    def resolve(self, member_ids: Iterable[str]) -> None:
        """Look up the keys of these shop ids (or erased names) not met yet."""
        missing = [m for m in member_ids if m not in self._key]
        if not missing:
            return
        lookup = []
        for m in missing:
            if m.startswith(ERASED_PREFIX):
                key = m[len(ERASED_PREFIX):]
                self._key[m] = key
                self._id.setdefault(key, m)
            else:
                lookup.append(m)
        if lookup:
            found = self._members.keys_of(lookup)
            for m in lookup:
                mapped = found.get(m)
                if mapped is None:
                    self._key[m] = UNKNOWN + m
                else:
                    self._key[m] = mapped
                    self._id[mapped] = m

    def key(self, member_id: str) -> str:
        """The key to read a shop id by (one no row has if it has none; with ``raw``,
        the id itself)."""
        key = self._key.get(member_id)
        if key is None:
            self.resolve((member_id,))
            key = self._key[member_id]
        if self._raw and key.startswith(UNKNOWN):
            return member_id
        return key

    def keys(self, member_ids: Sequence[str]) -> list[str]:
        """The keys to read these shop ids by, in order."""
        self.resolve(member_ids)
        return [self.key(m) for m in member_ids]

    def write_key(self, member_id: str) -> str:
        """The key to write for a shop id: its key, or a new one (the member's row must
        be written in this unit of work)."""
        key = self._key.get(member_id)
        if key is None:
            self.resolve((member_id,))
            key = self._key[member_id]
        if key.startswith(UNKNOWN):
            key = self._new_key()
            self._key[member_id] = key
            self._id[key] = member_id
            self.added[member_id] = key
        return key

    def write_keys(self, member_ids: Iterable[str]) -> dict[str, str]:
        """:meth:`write_key` of each of these shop ids (new keys drawn in the order the
        ids first come), the ones not met yet looked up in one go."""
        ids = list(dict.fromkeys(member_ids))
        self.resolve(ids)
        # a member met already is its key as it is (a batch's writes name thousands,
        # each store once): write_key only for one that has none yet
        known = self._key
        out = {}
        for m in ids:
            key = known[m]
            out[m] = self.write_key(m) if key.startswith(UNKNOWN) else key
        return out

    # -- keys -> shop ids -----------------------------------------------------------------

    def learn(self, keys: Iterable[str]) -> None:
        """Look up the shop ids of these keys not met yet."""
        missing = list({k for k in keys if k not in self._id})
        if not missing:
            return
        found = self._members.ids_of(missing)
        for key in missing:
            member_id = found.get(key)
            if member_id is None and self._raw and self._members.get_erasure(key) is None:
                self._id[key] = key
            elif member_id is None:
                self._id[key] = ERASED_PREFIX + key
            else:
                self._id[key] = member_id
                self._key.setdefault(member_id, key)

    def id(self, key: str) -> str:
        """The shop id of a key (its erased name if it has none any more)."""
        member_id = self._id.get(key)
        if member_id is None:
            self.learn((key,))
            member_id = self._id[key]
        return member_id

    def erased(self, member_id: str, key: str) -> None:
        """Forget the shop id of an erased key."""
        self._key.pop(member_id, None)
        self._id[key] = ERASED_PREFIX + key
        self._key[ERASED_PREFIX + key] = key

    # -- rows -----------------------------------------------------------------------------

    # (rows are copied without running their validators again: a stored row is taken as
    # it is, even one a buggy backend broke, for the invariant checks must see it)

    def stored(self, row: R) -> R:
        """``row`` with its member fields as keys (drawn for a new member)."""
        fields = _id_fields(type(row))
        if len(fields) == 1:  # most rows name one member: no loop, no dict built first
            value = getattr(row, fields[0])
            return row if value is None else copy_with(row, {fields[0]: self.write_key(value)})
        changes = {}
        for name in fields:
            value = getattr(row, name)
            if value is not None:
                changes[name] = self.write_key(value)
        return copy_with(row, changes) if changes else row

    def shown(self, rows: Sequence[R], *, fresh: bool = False) -> list[R]:
        """``rows`` with their member fields as shop ids. With ``fresh`` the rows were
        built for this read and are shared with nothing (a SQL store's reads): they are
        given their names in place instead of copied (a copy of a lot costs more than
        building it; a spend reads the member's account and every open lot)."""
        if not rows:
            return []
        fields = _id_fields(type(rows[0]))
        if len(fields) == 1:  # most rows name one member (a write loads a member's lots)
            name = fields[0]
            values = [getattr(r, name) for r in rows]
            self.learn(set(values).difference((None,)))
            ids = self._id
            if fresh:
                for row, v in zip(rows, values, strict=True):
                    if v is not None:
                        _set(row, name, ids[v])
                return list(rows)
            return [row if v is None else copy_with(row, {name: ids[v]})
                    for row, v in zip(rows, values, strict=True)]
        self.learn(getattr(r, f) for r in rows for f in fields
                   if getattr(r, f) is not None)
        out = []
        for row in rows:
            changes = {f: self._id[v] for f in fields if (v := getattr(row, f)) is not None}
            out.append(copy_with(row, changes) if changes else row)
        return out

    def one(self, row: R | None) -> R | None:
        """``row`` (or None) with its member fields as shop ids."""
        return None if row is None else self.shown([row])[0]

