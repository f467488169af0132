"""A recorded order as the in-memory orders store keeps it: :class:`KeptOrder`.

An order row's texts (the order as placed, its evaluation, the evaluation as first
recorded, the idempotency result) repeat each other: the order's id, member, amounts
and instants appear in two or three of them. Kept as separate JSON texts (each deflated
alone) with the fingerprint's bytes, they took five objects and ~400 bytes an order;
deflated together, after the fingerprint's 32 bytes, in one bytes object, ~235. A read
(:meth:`KeptOrder.read`) inflates the one text and gives the record as the SQL backend
gives it back: its JSON fields fresh dicts, its fingerprint and result as text.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from loyaltykit._model import OrderRecord, OrderStatus
from loyaltykit.memory.compact import pack, pack_digest, unpack
from loyaltykit.memory.tables import JSONText, json_text

__all__ = ["KeptOrder"]

#: the lengths (characters) of the texts kept together: the order, its evaluation, the
#: recorded evaluation, the result and the fingerprint (-1: None; the fingerprint -2:
#: a digest, kept as its 32 bytes before the texts), then whether they are deflated
_HEAD = struct.Struct("<iiiiiB")
_NONE = -1
_DIGEST = -2
_DIGEST_SIZE = 32

#: no refunds (most orders): one immutable mapping shared by them all, where each kept
#: an empty dict of its own
_NO_REFUNDS: Mapping[Any, int] = MappingProxyType({})


class KeptOrder:
    """A recorded order as kept: the fields that reads filter and sort on as they are,
    the texts in one packed bytes object (see the module docstring). Immutable: a
    changed order is a new row."""

    __slots__ = ("created_at", "earn_id", "member_id", "order_id", "packed", "payments",
                 "placed_at", "points", "program_id", "refunded", "returned", "status",
                 "updated_at", "version")

    program_id: str
    order_id: str
    member_id: str
    placed_at: dt.datetime
    version: int
    returned: JSONText
    status: OrderStatus
    points: int
    earn_id: uuid.UUID | None
    payments: tuple[uuid.UUID, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    refunded: Mapping[uuid.UUID, int]
    packed: bytes

    @classmethod
    def of(cls, order: OrderRecord) -> KeptOrder:
        """``order`` as kept; :class:`~loyaltykit.StorageError` if a JSON field is no
        JSON (checked before anything is kept)."""
        kept = object.__new__(cls)
        texts = [json_text(order.order), json_text(order.evaluation)]
        lengths = [len(texts[0]), len(texts[1])]
        for text in (None if order.recorded_evaluation is None
                     else json_text(order.recorded_evaluation), order.result):
            lengths.append(_NONE if text is None else len(text))
            if text is not None:
                texts.append(text)
        digest = pack_digest(order.fingerprint)
        prefix = b""
        if isinstance(digest, bytes) and len(digest) == _DIGEST_SIZE:
            lengths.append(_DIGEST)
            prefix = digest
        elif order.fingerprint is None:
            lengths.append(_NONE)
        else:
            lengths.append(len(order.fingerprint))
            texts.append(order.fingerprint)
        body = pack("".join(texts))
        deflated = isinstance(body, bytes)
        data = body if isinstance(body, bytes) else body.encode()
        setattr_ = object.__setattr__
        setattr_(kept, "packed", _HEAD.pack(*lengths, deflated) + prefix + data)
        for name in ("program_id", "order_id", "member_id", "placed_at", "version",
                     "status", "points", "earn_id", "created_at", "updated_at"):
            setattr_(kept, name, getattr(order, name))
        setattr_(kept, "returned", JSONText.of(order.returned))
        setattr_(kept, "payments", tuple(order.payments))
        setattr_(kept, "refunded", dict(order.refunded) if order.refunded else _NO_REFUNDS)
        return kept

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a kept order is immutable ({name})")

    def _texts(self) -> tuple[str, str, str | None, str | None, str | None]:
        """The order, evaluation, recorded evaluation, result and fingerprint texts."""
        packed = self.packed
        *lengths, deflated = _HEAD.unpack_from(packed)
        start = _HEAD.size
        fingerprint: str | None = None
        if lengths[4] == _DIGEST:
            fingerprint = packed[start:start + _DIGEST_SIZE].hex()
            start += _DIGEST_SIZE
        data = packed[start:]
        text = unpack(data) if deflated else data.decode()
        found: list[str | None] = []
        at = 0
        for length in lengths:
            if length < 0:
                found.append(None)
            else:
                found.append(text[at:at + length])
                at += length
        if lengths[4] == _DIGEST:
            found[4] = fingerprint
        order, evaluation, recorded, result, kept_fingerprint = found
        assert order is not None and evaluation is not None
        return order, evaluation, recorded, result, kept_fingerprint

    def order_value(self) -> dict[str, Any]:
        """The order as placed, a fresh dict (as the SQL backend's JSON column reads)."""
        return _value(self._texts()[0])

    def read(self) -> OrderRecord:
        """The kept order as the SQL backend gives it back: its JSON fields fresh, its
        fingerprint and result as text."""
        order, evaluation, recorded, result, fingerprint = self._texts()
        return OrderRecord(
            program_id=self.program_id, order_id=self.order_id, member_id=self.member_id,
            placed_at=self.placed_at, version=self.version,
            order=_value(order), returned=self.returned.value(),
            status=self.status, points=self.points,
            evaluation=_value(evaluation), earn_id=self.earn_id,
            payments=self.payments, created_at=self.created_at, updated_at=self.updated_at,
            recorded_evaluation=None if recorded is None
            else _value(recorded),
            fingerprint=fingerprint, result=result, refunded=dict(self.refunded))

    def _row(self) -> tuple[Any, ...]:
        return (*(getattr(self, name) for name in self.__slots__ if name != "refunded"),
                dict(self.refunded))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeptOrder):
            return NotImplemented
        return self._row() == other._row()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # as the SQL backend's row shows: every column, as text
        return repr(self.read())


def _value(text: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(text)
    return found
