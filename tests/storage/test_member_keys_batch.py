"""A batch's writes name each member once per store: the member-key layer maps a
member it has met already straight to its key (no ``write_key`` call per member,
none per idempotency record), and draws keys for new members in the order they first
come, as one ``write_key`` call per row would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from loyaltykit._member_keys.names import Names
from loyaltykit._member_keys.stores import KeyedKeyStore
from loyaltykit._model import IdempotencyRecord
from loyaltykit.storage.members import Erasure, MemberKeyChanges

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


class _Members:
    """Member keys of a few shop ids (what ``lk_member_ids`` would hold)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    def keys_of(self, member_ids: Sequence[str]) -> dict[str, str]:
        return {m: self.keys[m] for m in member_ids if m in self.keys}

    def ids_of(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: m for m, k in self.keys.items() if k in keys}

    def get_erasure(self, member_key: str) -> Erasure | None:
        return None

    def write(self, changes: MemberKeyChanges) -> None:
        raise AssertionError("not written here")


class _Records:
    def __init__(self) -> None:
        self.written: list[IdempotencyRecord] = []

    def write(self, records: Sequence[IdempotencyRecord]) -> None:
        self.written.extend(records)


def _names(monkeypatch: pytest.MonkeyPatch) -> tuple[Names, list[str]]:
    drawn = iter(f"new{i}" for i in range(100))
    names = Names(_Members({"a": "ka", "b": "kb"}), new_key=lambda: next(drawn))
    calls: list[str] = []
    real = names.write_key

    def counting(member_id: str) -> str:
        calls.append(member_id)
        return real(member_id)

    monkeypatch.setattr(names, "write_key", counting)
    return names, calls


def test_write_keys_map_known_members_without_a_call_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    names, calls = _names(monkeypatch)
    keys = names.write_keys(["b", "x", "a", "b", "y", "x", "erased:kz"])
    assert keys == {"b": "kb", "x": "new0", "a": "ka", "y": "new1", "erased:kz": "kz"}
    assert calls == ["x", "y"]  # only the members with no key yet
    assert names.added == {"x": "new0", "y": "new1"}
    calls.clear()
    assert names.write_keys(["y", "a", "x"]) == {"y": "new1", "a": "ka", "x": "new0"}
    assert calls == []  # drawn keys are met ones now


def test_idempotency_records_are_keyed_once_per_member(
        monkeypatch: pytest.MonkeyPatch) -> None:
    names, calls = _names(monkeypatch)
    inner = _Records()
    records = [IdempotencyRecord(f"k{i}", "f", "r", T0, member)
               for i, member in enumerate(["a", "x", None, "a", "x", "b"])]
    KeyedKeyStore(inner, names).write(records)  # type: ignore[arg-type]
    assert [r.member_id for r in inner.written] == ["ka", "new0", None, "ka", "new0", "kb"]
    assert [r.key for r in inner.written] == [r.key for r in records]
    assert inner.written[2] is records[2]  # no member: written as it is
    assert calls == ["x"]
