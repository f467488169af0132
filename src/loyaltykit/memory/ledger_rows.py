"""A ledger transaction as the in-memory ledger store keeps it: :class:`KeptTx`.

A transaction's texts (its idempotency key, its reason, its metadata's JSON) are short
and of one order: ``"order:A-1"``, ``"order A-1"``, ``{"order_id":"A-1"}``. Kept as
three objects (two strings and a JSON text), they took ~200 bytes a transaction; as
one bytes object, ~90. The other fields stay as they are, under the names of
:class:`~loyaltykit.Transaction`, so the store's own reads (balances as of an instant,
statements, reports) read a kept row as they read a transaction; a reader outside the
store gets :meth:`KeptTx.read`, a :class:`~loyaltykit.Transaction` as the SQL backend
gives it back.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from loyaltykit._model import Account, Kind, LotMovement, Posting, Transaction
from loyaltykit.memory.tables import json_text

__all__ = ["KeptTx", "due_texts", "shared_postings"]

#: the byte lengths of the idempotency key (-1: None) and of the reason; the metadata's
#: JSON text follows them (nothing: no metadata)
_HEAD = struct.Struct("<iI")

def _metadata_text(metadata: Mapping[str, Any]) -> str:
    """:func:`~loyaltykit.memory.tables.json_text` of ``metadata``, written out for a
    flat mapping of plain texts (a due transaction's ids: most of the encoder's cost
    was its set-up for so small a value); anything else goes to the encoder."""
    if type(metadata) is dict:
        parts = []
        for key, value in metadata.items():
            # plain: what the encoder writes as it is (no quote, backslash, control)
            if type(key) is not str or type(value) is not str or not key.isprintable() \
                    or not value.isprintable() or '"' in key or '"' in value \
                    or "\\" in key or "\\" in value:
                return json_text(metadata)
            parts.append(f'"{key}":"{value}"')
        return "{" + ",".join(parts) + "}"
    return json_text(metadata)

#: an account by its value, by dict lookup (not the Enum's call)
ACCOUNT_OF = {a.value: a for a in Account}


#: the transactions' postings, each distinct tuple kept once: an order's earn posts the
#: same two amounts as every other order of its points, so the stored transactions share
#: a few thousand tuples instead of keeping one (three objects) each. Postings are
#: immutable values, so sharing them across storages changes nothing a reader sees.
_POSTINGS: dict[tuple[Posting, ...], tuple[Posting, ...]] = {}
_MOST_POSTINGS = 1 << 16  # then the table starts over (it only saves memory)


def shared_postings(postings: tuple[Posting, ...]) -> tuple[Posting, ...]:
    """The kept copy of ``postings`` (see :data:`_POSTINGS`)."""
    shared = _POSTINGS.get(postings)
    if shared is None:
        if len(_POSTINGS) >= _MOST_POSTINGS:
            _POSTINGS.clear()
        shared = _POSTINGS[postings] = postings
    return shared


#: an idempotency key's length that marks a due transaction's texts (no key): its
#: metadata is kept as ids (:func:`due_texts`), not as JSON text
_DUE_IDS = -2
#: the metadata of due texts by the code after the reason: its keys in order, each
#: value an id (None: 16 bytes kept) or a constant text
_DUE_METADATA: tuple[tuple[tuple[str, str | None], ...], ...] = (
    (("hold_id", None), ("cause", "released")), (("lot_id", None), ("earn_id", None)))


def due_texts(reason: str, metadata: int) -> bytes:
    """The head of a due transaction's texts (set-based due work's rows: no idempotency
    key, ``reason``, metadata of the layout ``metadata``: 0 ``{"hold_id": id, "cause":
    "released"}``, 1 ``{"lot_id": id, "earn_id": id}``): its ids' 16 bytes each follow.
    Read back as the metadata's JSON text reads (16 bytes an id, where its text took 36,
    and no text to format when written)."""
    encoded = reason.encode()
    return b"".join((_HEAD.pack(_DUE_IDS, len(encoded)), encoded, bytes((metadata,))))


def _due_metadata(data: bytes) -> dict[str, Any]:
    """The metadata of due texts (``data``: from the layout's code on)."""
    found: dict[str, Any] = {}
    at = 1
    for key, text in _DUE_METADATA[data[0]]:
        if text is None:
            found[key] = str(uuid.UUID(bytes=data[at:at + 16]))
            at += 16
        else:
            found[key] = text
    return found


#: a transaction's slots in field order, each set without attrs' frozen check
_TX_FIELDS = ("id", "program_id", "member_id", "wallet", "kind", "occurred_at", "recorded_at",
              "postings", "movements", "idempotency_key", "reason", "metadata", "reverses_id")
assert _TX_FIELDS == tuple(f.name for f in attrs.fields(Transaction))
_TX_SETTERS = tuple(getattr(Transaction, name).__set__ for name in _TX_FIELDS)


class KeptTx:
    """A transaction as kept (see the module docstring): its texts in one bytes object
    (None: no key, no reason, no metadata), the rest as the transaction has them."""

    __slots__ = ("_delta", "_moved", "id", "kind", "member_id", "occurred_at", "postings",
                 "program_id", "recorded_at", "reverses_id", "texts", "wallet")

    id: uuid.UUID
    program_id: str
    member_id: str
    wallet: str
    kind: Kind
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    postings: tuple[Posting, ...]
    #: one movement (most transactions) as its lot's id and delta, where a tuple and a
    #: LotMovement took ~100 bytes; else the movements' tuple, and ``_delta`` None
    _moved: uuid.UUID | tuple[LotMovement, ...]
    _delta: int | None
    reverses_id: uuid.UUID | None
    texts: bytes | None

    @classmethod
    def of(cls, tx: Transaction, postings: tuple[Posting, ...]) -> KeptTx:
        """``tx`` as kept, with ``postings`` (equal to its own: a shared copy)."""
        kept = object.__new__(cls)
        set_ = object.__setattr__
        set_(kept, "id", tx.id)
        set_(kept, "program_id", tx.program_id)
        set_(kept, "member_id", tx.member_id)
        set_(kept, "wallet", tx.wallet)
        set_(kept, "kind", tx.kind)
        set_(kept, "occurred_at", tx.occurred_at)
        set_(kept, "recorded_at", tx.recorded_at)
        set_(kept, "movements", tx.movements)  # (through its setter)
        set_(kept, "reverses_id", tx.reverses_id)
        set_(kept, "postings", postings)
        texts = None
        if tx.idempotency_key is not None or tx.reason or tx.metadata:
            key = b"" if tx.idempotency_key is None else tx.idempotency_key.encode()
            reason = tx.reason.encode()
            metadata = json_text(tx.metadata).encode() if tx.metadata else b""
            texts = b"".join((_HEAD.pack(-1 if tx.idempotency_key is None else len(key),
                                         len(reason)), key, reason, metadata))
        set_(kept, "texts", texts)
        return kept

    @classmethod
    def due(cls, id_: uuid.UUID, program_id: str, member_id: str, wallet: str, kind: Kind,
            occurred_at: dt.datetime, recorded_at: dt.datetime,
            postings: tuple[Posting, ...], moved: tuple[uuid.UUID, int] | None,
            reason: str, metadata: Mapping[str, Any]) -> KeptTx:
        """A due transaction's row as kept, from its fields (set-based due work's rows:
        no :class:`~loyaltykit.Transaction` built first): no idempotency key, nothing
        reversed, at most one movement (``moved``: its lot's id and delta). The same
        row as :meth:`of` keeps for the same transaction."""
        texts = None
        if reason or metadata:
            encoded = reason.encode()
            texts = b"".join((_HEAD.pack(-1, len(encoded)), encoded,
                              _metadata_text(metadata).encode() if metadata else b""))
        return cls.row(id_, program_id, member_id, wallet, kind, occurred_at, recorded_at,
                       postings, None if moved is None else moved[0],
                       0 if moved is None else moved[1], texts)

    @classmethod
    def row(cls, id_: uuid.UUID, program_id: str, member_id: str, wallet: str, kind: Kind,
            occurred_at: dt.datetime, recorded_at: dt.datetime,
            postings: tuple[Posting, ...], moved: uuid.UUID | None, delta: int,
            texts: bytes | None) -> KeptTx:
        """A due transaction's row from its fields, its texts kept already (None: no
        reason nor metadata; :func:`due_texts`) and the movement as its lot (None: no
        movement) and delta: :meth:`due`'s, and the memory store's own set-based due
        work's (:mod:`loyaltykit.memory.ledger_due_set`), which builds its texts from
        a few constant parts."""
        kept = object.__new__(cls)  # (through the slots: no __setattr__ call each)
        _SET_ID(kept, id_)
        _SET_PROGRAM(kept, program_id)
        _SET_MEMBER(kept, member_id)
        _SET_WALLET(kept, wallet)
        _SET_KIND(kept, kind)
        _SET_OCCURRED(kept, occurred_at)
        _SET_RECORDED(kept, recorded_at)
        if moved is None:
            _SET_MOVED(kept, ())
            _SET_DELTA(kept, None)
        else:
            _SET_MOVED(kept, moved)
            _SET_DELTA(kept, delta)
        _SET_REVERSES(kept, None)
        _SET_POSTINGS(kept, postings)
        _SET_TEXTS(kept, texts)
        return kept

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a kept transaction is immutable ({name})")

    @property
    def movements(self) -> tuple[LotMovement, ...]:
        if self._delta is None:
            assert isinstance(self._moved, tuple)
            return self._moved
        assert isinstance(self._moved, uuid.UUID)
        return (LotMovement(self._moved, self._delta),)

    @movements.setter
    def movements(self, movements: tuple[LotMovement, ...]) -> None:
        # object.__setattr__ reaches here (KeptTx.of; a test storing a broken row)
        if len(movements) == 1:
            object.__setattr__(self, "_moved", movements[0].lot_id)
            object.__setattr__(self, "_delta", movements[0].delta)
        else:
            object.__setattr__(self, "_moved", tuple(movements))
            object.__setattr__(self, "_delta", None)

    @property
    def idempotency_key(self) -> str | None:
        texts = self.texts
        if texts is None:
            return None
        key, _ = _HEAD.unpack_from(texts)
        return None if key < 0 else texts[_HEAD.size:_HEAD.size + key].decode()

    @property
    def reason(self) -> str:
        texts = self.texts
        if texts is None:
            return ""
        key, reason = _HEAD.unpack_from(texts)
        start = _HEAD.size + max(key, 0)
        return texts[start:start + reason].decode()

    def _metadata(self) -> str | None:
        """The metadata's JSON text (None: none)."""
        texts = self.texts
        if texts is None:
            return None
        key, reason = _HEAD.unpack_from(texts)
        start = _HEAD.size + max(key, 0) + reason
        if start >= len(texts):
            return None
        if key == _DUE_IDS:
            return _metadata_text(_due_metadata(texts[start:]))
        return texts[start:].decode()

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The metadata, a fresh dict (for the store's own reads)."""
        texts = self.texts
        if texts is not None and _HEAD.unpack_from(texts)[0] == _DUE_IDS:
            return self.read().metadata
        text = self._metadata()
        found: dict[str, Any] = {} if text is None else json.loads(text)
        return found

    def read(self) -> Transaction:
        """The transaction as a reader gets it: its metadata a fresh dict, as the SQL
        backend's JSON column reads back. A copy of the row as it is, like a SQL read
        (no check of its postings' sum: an invariants check must see a broken row)."""
        key: str | None = None
        reason = ""
        metadata: dict[str, Any] = {}
        texts = self.texts
        if texts is not None:  # decoded in one go (the properties decode a part each)
            key_size, reason_size = _HEAD.unpack_from(texts)
            start = _HEAD.size
            if key_size >= 0:
                key = texts[start:start + key_size].decode()
                start += key_size
            reason = texts[start:start + reason_size].decode()
            start += reason_size
            if start < len(texts):
                metadata = (_due_metadata(texts[start:]) if key_size == _DUE_IDS
                            else json.loads(texts[start:]))
        read = object.__new__(Transaction)
        for set_, value in zip(_TX_SETTERS, (
                self.id, self.program_id, self.member_id, self.wallet, self.kind,
                self.occurred_at, self.recorded_at, self.postings, self.movements, key,
                reason, metadata, self.reverses_id), strict=True):
            set_(read, value)
        return read

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeptTx):
            return NotImplemented
        return self.read() == other.read()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # as the SQL backend's row shows: every column, as text
        return repr(self.read())


(_SET_ID, _SET_PROGRAM, _SET_MEMBER, _SET_WALLET, _SET_KIND, _SET_OCCURRED, _SET_RECORDED,
 _SET_MOVED, _SET_DELTA, _SET_REVERSES, _SET_POSTINGS, _SET_TEXTS) = (
    getattr(KeptTx, name).__set__ for name in (
        "id", "program_id", "member_id", "wallet", "kind", "occurred_at", "recorded_at",
        "_moved", "_delta", "reverses_id", "postings", "texts"))

