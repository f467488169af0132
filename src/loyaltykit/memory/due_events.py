"""Due work's outbox payloads in fixed layouts, for the in-memory outbox: a due
transaction's event (a hold released, a lot activated or expired: ``points.released``,
``points.activated``, ``points.expired``) and a tier change's (``tier.changed``, as a
tier evaluation writes one for each member it moves).

A nightly run of due work writes a few such events per member, each with the same
fields (a transaction's id, kind, wallet and points, the changes and the balance, its
reason and metadata; a change's tiers, reason, instants, figures and benefits).
Encoding each as JSON and deflating it (:class:`~loyaltykit.memory.tables.JSONText`)
was most of the memory backend's due work (~15 us an event); :func:`pack` puts the
fields in one :mod:`struct` record instead (ids as their 16 bytes, ints as 4 bytes,
the texts of a handful of values as a one-byte code, other texts as UTF-8), and
:func:`unpack` builds the payload back only when a consumer reads the event.

Same result as the JSON text, always: a payload is packed only when it is exactly of
one of these shapes (those keys in that order, ints that are ints, ids in their
canonical text, ...) so that :func:`unpack` gives back the very dict a JSON
round trip would; any other payload is left to JSON (:func:`pack` returns None).
Other kinds of points events keep JSON: an order's earn names its lots, and the
history import's memory is measured on them (the deflated JSON of such short payloads
is smaller than a layout; for due work the speed matters more; a tier change's is
about the size of its deflated JSON).
"""

from __future__ import annotations

import binascii
import struct
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loyaltykit.storage.tier_due_set import TierOutbox

__all__ = ["MARK", "MARKS", "TierPayloads", "pack", "points_codes", "points_format",
           "unpack"]

#: the first byte of a packed payload (JSONText's own first bytes are 0 and 1): a
#: points event's (:data:`_KEYS`), a tier change's (:data:`_TIER_KEYS`)
MARK, TIER_MARK = 2, 3
MARKS = frozenset((MARK, TIER_MARK))

_KEYS = ("transaction_id", "kind", "wallet", "points", "changes", "balance", "reason",
         "metadata")
_BALANCE = ("available", "pending", "held", "debt", "total")
#: the kinds of due work's transactions, by code (the others keep JSON: see above)
_KINDS = ("release", "activate", "expire")
_KIND_CODES = {k: i for i, k in enumerate(_KINDS)}
#: the most entries of a table of codes (:class:`_Codes`): a code is one byte
_MOST_CODES = 255

#: mark, transaction id, kind, wallet, changes' keys, metadata's keys, reason's length,
#: points, the balance's five values; then the changes' values ("i" each), the reason
#: (UTF-8) and the metadata's values
_HEAD = struct.Struct("<B16sBBBBHi5i")


class _Codes:
    """Values numbered once for the process, each kept as its code (one byte): the
    wallets, the changes' and the metadata's key tuples met (a handful; immutable, so
    sharing them across storages changes nothing a reader sees). Full at
    :data:`_MOST_CODES`: further values are not packed (JSON keeps them)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.codes: dict[Any, int] = {}
        self._lock = threading.Lock()  # two storages' writers may number at once

    def code(self, value: Any) -> int | None:
        code = self.codes.get(value)
        if code is None:
            with self._lock:
                code = self.codes.get(value)
                if code is None and len(self.values) < _MOST_CODES:
                    self.values.append(value)
                    code = self.codes[value] = len(self.values) - 1
        return code


_WALLETS = _Codes()
#: the changes' accounts in their order (the member's accounts only)
_CHANGES = _Codes()
_ACCOUNTS = frozenset(("available", "pending", "held", "debt"))
#: the metadata's (keys, kinds): kind True an id (16 bytes), False a text (its
#: UTF-8's length in a byte, then it)
_METADATA = _Codes()
_CHANGE_VALUES = [struct.Struct("<" + "i" * n) for n in range(len(_ACCOUNTS) + 1)]


def _id_bytes(text: object) -> bytes | None:
    """The 16 bytes of ``text`` if it is an id in canonical text (``str(uuid)``: lower
    case hex, dashes in place), which :func:`_id_text` gives back; else None."""
    if type(text) is not str or len(text) != 36 or text[8] != "-" or text[13] != "-" \
            or text[18] != "-" or text[23] != "-":
        return None
    digits = text.replace("-", "")
    if len(digits) != 32 or digits != digits.lower():
        return None
    try:  # (unhexlify takes hex digits only: no spaces, no sign)
        return binascii.unhexlify(digits)
    except (binascii.Error, ValueError):  # (ValueError: not ASCII)
        return None


def _id_text(data: bytes) -> str:
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def pack(payload: object) -> bytes | None:
    """``payload`` in its fixed layout (first byte one of :data:`MARKS`), or None where
    it is not exactly a due transaction's or a tier change's event payload (see the
    module docstring)."""
    if type(payload) is not dict:
        return None
    keys = tuple(payload)
    if keys == _TIER_KEYS:
        return _pack_tier(payload)
    if keys != _KEYS:
        return None
    tx, kind, wallet, points, changes, balance, reason, metadata = payload.values()
    if type(kind) is not str or type(wallet) is not str or type(changes) is not dict \
            or type(balance) is not dict or tuple(balance) != _BALANCE \
            or type(reason) is not str or type(metadata) is not dict:
        return None
    kind_code = _KIND_CODES.get(kind)
    tx_bytes = _id_bytes(tx)
    accounts = tuple(changes)
    if kind_code is None or tx_bytes is None or not _ACCOUNTS.issuperset(accounts):
        return None
    amounts = tuple(changes.values())
    ints = (points, *balance.values(), *amounts)
    for value in ints:  # (struct takes bools and anything with __index__ as ints)
        if type(value) is not int:
            return None
    parts = []
    kinds = []
    for key, value in metadata.items():
        if type(key) is not str:  # (JSON would give it back as a text)
            return None
        found = _id_bytes(value)
        if found is not None:
            parts.append(found)
            kinds.append(True)
        elif type(value) is str:
            text = value.encode()
            if len(text) > 255:
                return None
            parts.append(bytes((len(text),)) + text)
            kinds.append(False)
        else:
            return None
    reason_bytes = reason.encode()
    wallet_code = _WALLETS.code(wallet)
    changes_code = _CHANGES.code(accounts)
    metadata_code = _METADATA.code((tuple(metadata), tuple(kinds)))
    if wallet_code is None or changes_code is None or metadata_code is None \
            or len(reason_bytes) > 0xFFFF:
        return None
    try:
        return b"".join((
            _HEAD.pack(MARK, tx_bytes, kind_code, wallet_code, changes_code, metadata_code,
                       len(reason_bytes), *ints[:6]),
            _CHANGE_VALUES[len(amounts)].pack(*amounts), reason_bytes, *parts))
    except struct.error:  # an int beyond 32 bits
        return None


def points_codes(kind: str, wallet: str, accounts: tuple[str, ...],
                 metadata: tuple[tuple[str, ...], tuple[bool, ...]]
                 ) -> tuple[int, int, int, int] | None:
    """The codes :func:`pack` writes for a due transaction's payload of this kind,
    wallet, changes' accounts and metadata's (keys, kinds) (see :data:`_METADATA`), for
    a struct of :func:`points_format`; None where :func:`pack` would leave such a
    payload to JSON."""
    kind_code = _KIND_CODES.get(kind)
    if kind_code is None or not _ACCOUNTS.issuperset(accounts):
        return None
    wallet_code = _WALLETS.code(wallet)
    changes_code = _CHANGES.code(accounts)
    metadata_code = _METADATA.code(metadata)
    if wallet_code is None or changes_code is None or metadata_code is None:
        return None
    return kind_code, wallet_code, changes_code, metadata_code


def points_format(amounts: int, reason_size: int, metadata: str) -> str:
    """The :mod:`struct` codes (no byte order) of a due transaction's payload as
    :func:`pack` lays it out, for a struct that lays out more around it (a whole kept
    event: set-based due work builds no payload dict first): its values are the mark
    (:data:`MARK`), the transaction's id (bytes), the four codes (:func:`points_codes`),
    ``reason_size``, the points, the balance's five values, the ``amounts`` changes'
    values, the reason (``reason_size`` bytes) and the metadata's values as ``metadata``
    lays them out (an id ``16s``; a text its length's byte and its UTF-8, e.g. ``9s``)."""
    return f"{_HEAD.format[1:]}{amounts}i{reason_size}s{metadata}"


def unpack(data: bytes) -> dict[str, Any]:
    """The payload :func:`pack` was given (a fresh dict, as its JSON text reads back)."""
    if data[0] == TIER_MARK:
        return _unpack_tier(data)
    (_, tx, kind, wallet, changes_code, metadata_code, reason_size, points, available,
     pending, held, debt, total) = _HEAD.unpack_from(data)
    at = _HEAD.size
    accounts = _CHANGES.values[changes_code]
    shape = _CHANGE_VALUES[len(accounts)]
    amounts = shape.unpack_from(data, at)
    at += shape.size
    reason = data[at:at + reason_size].decode()
    at += reason_size
    keys, kinds = _METADATA.values[metadata_code]
    metadata: dict[str, Any] = {}
    for key, is_id in zip(keys, kinds, strict=True):
        if is_id:
            metadata[key] = _id_text(data[at:at + 16])
            at += 16
        else:
            size = data[at]
            metadata[key] = data[at + 1:at + 1 + size].decode()
            at += 1 + size
    return {"transaction_id": _id_text(tx), "kind": _KINDS[kind],
            "wallet": _WALLETS.values[wallet],
            "points": points, "changes": dict(zip(accounts, amounts, strict=True)),
            "balance": {"available": available, "pending": pending, "held": held,
                        "debt": debt, "total": total},
            "reason": reason, "metadata": metadata}


# -- a tier change's event (``tier.changed``) ------------------------------------------

_TIER_KEYS = ("from", "to", "direction", "reason", "note", "changed_at", "metric",
              "qualifying", "threshold", "protected_until", "next_evaluation", "benefits")
#: mark, from, to, direction, reason, metric, benefits (codes), what is None (bits, in
#: order: changed_at, protected_until, next_evaluation, qualifying, threshold),
#: qualifying, threshold; then the note and the three instants' texts (each its
#: UTF-8's length in a byte, then it: parsing and formatting instants cost more than
#: the rest of the event)
_TIER_HEAD = struct.Struct("<BBBBBBBBii")
#: the tiers' names, directions, reasons and metrics met
_NAMES = _Codes()
#: the benefits met (:func:`_benefits_key`)
_BENEFITS = _Codes()
_SCALARS = (str, int, bool, type(None))


def _benefits_key(benefits: object) -> tuple[Any, ...] | None:
    """A tier's benefits as a hashable value (a dict of scalars, or of flat dicts of
    scalars: a nested dict as a tuple of its items), or None."""
    if type(benefits) is not dict:
        return None
    key = []
    for name, value in benefits.items():
        if type(name) is not str:
            return None
        if type(value) in _SCALARS:
            key.append((name, value))
        elif type(value) is dict:
            items = tuple(value.items())
            for k, v in items:
                if type(k) is not str or type(v) not in _SCALARS:
                    return None
            key.append((name, items))  # (a tuple: no scalar is one)
        else:
            return None
    return tuple(key)


def _pack_tier(payload: dict[str, Any]) -> bytes | None:
    (from_, to, direction, reason, note, changed_at, metric, qualifying, threshold,
     protected, nxt, benefits) = payload.values()
    names = (from_, to, direction, reason, metric)
    for name in names:
        if type(name) is not str:
            return None
    nones = 0
    texts = [note]
    for bit, value in enumerate((changed_at, protected, nxt)):
        if value is None:
            nones |= 1 << bit
            texts.append("")
        else:
            texts.append(value)
    ints = []
    for bit, value in enumerate((qualifying, threshold), 3):
        if value is None:
            nones |= 1 << bit
            ints.append(0)
        elif type(value) is int:  # (spend's figures are money: JSON keeps them)
            ints.append(value)
        else:
            return None
    parts = []
    for text in texts:
        if type(text) is not str:
            return None
        encoded = text.encode()
        if len(encoded) > 255:
            return None
        parts.append(bytes((len(encoded),)) + encoded)
    key = _benefits_key(benefits)
    codes = [_NAMES.code(name) for name in names]
    codes.append(None if key is None else _BENEFITS.code(key))
    if None in codes:
        return None
    try:
        head = _TIER_HEAD.pack(TIER_MARK, *codes, nones, *ints)
    except struct.error:  # an int beyond the layout's
        return None
    return b"".join((head, *parts))


def _unpack_tier(data: bytes) -> dict[str, Any]:
    (_, from_, to, direction, reason, metric, benefits, nones, qualifying,
     threshold) = _TIER_HEAD.unpack_from(data)
    texts = []
    at = _TIER_HEAD.size
    for _ in range(4):
        size = data[at]
        texts.append(data[at + 1:at + 1 + size].decode())
        at += 1 + size
    note, changed_at, protected, nxt = texts
    name = _NAMES.values
    return {
        "from": name[from_], "to": name[to], "direction": name[direction],
        "reason": name[reason], "note": note,
        "changed_at": None if nones & 1 else changed_at,
        "metric": name[metric],
        "qualifying": None if nones & 8 else qualifying,
        "threshold": None if nones & 16 else threshold,
        "protected_until": None if nones & 2 else protected,
        "next_evaluation": None if nones & 4 else nxt,
        "benefits": {k: dict(v) if type(v) is tuple else v
                     for k, v in _BENEFITS.values[benefits]},
    }


class TierPayloads:
    """The ``tier.changed`` payloads of one evaluation's changes (``outbox``: what they
    share), for a store that keeps the events itself: :meth:`payload` is the dict the
    mapper builds, :meth:`packed` what :func:`pack` gives for it, the codes of what
    every change between two ranks shares looked up once (an evaluation moves
    thousands of members between a few pairs of ranks)."""

    def __init__(self, outbox: TierOutbox) -> None:
        self._outbox = outbox
        # (from rank, to rank) -> the head's six codes, or None: not packed
        self._codes: dict[tuple[int, int], tuple[int, ...] | None] = {}
        # an instant's text (None: none) -> its length byte and UTF-8, or None: too long
        self._texts: dict[str | None, bytes | None] = {}

    def payload(self, before: int, after: int, qualifying: int,
                protected: str | None) -> dict[str, Any]:
        """The payload of a change from rank ``before`` to ``after`` whose metric is
        ``qualifying``, the state then protected until ``protected`` (text or None)."""
        outbox = self._outbox
        rung = outbox.ladder[after]
        return {
            "from": outbox.ladder[before].name, "to": rung.name,
            "direction": "up" if after > before else "down" if after < before else "same",
            "reason": "evaluation", "note": "", "changed_at": outbox.changed_at,
            "metric": outbox.metric, "qualifying": qualifying, "threshold": rung.threshold,
            "protected_until": protected, "next_evaluation": outbox.next_evaluation,
            "benefits": dict(rung.benefits)}

    def packed(self, before: int, after: int, qualifying: int,
               protected: str | None) -> bytes | None:
        """``pack(self.payload(...))``, without building the dict."""
        pair = (before, after)
        if pair in self._codes:
            codes = self._codes[pair]
        else:
            codes = self._codes[pair] = self._codes_of(before, after)
        if codes is None:
            return None
        outbox = self._outbox
        changed_at, until, nxt = (self._text(outbox.changed_at), self._text(protected),
                                  self._text(outbox.next_evaluation))
        if changed_at is None or until is None or nxt is None or type(qualifying) is not int:
            return None
        nones = (2 if protected is None else 0) | (4 if outbox.next_evaluation is None
                                                    else 0)
        try:
            head = _TIER_HEAD.pack(TIER_MARK, *codes, nones, qualifying,
                                   outbox.ladder[after].threshold)
        except struct.error:  # an int beyond the layout's
            return None
        return b"".join((head, b"\x00", changed_at, until, nxt))  # (b"\x00": the note, "")

    def _codes_of(self, before: int, after: int) -> tuple[int, ...] | None:
        """The codes :func:`_pack_tier` gives the shared parts of a change from
        ``before`` to ``after`` (numbered in its order), or None where it packs none."""
        sample = self.payload(before, after, 0, None)
        if type(sample["changed_at"]) is not str or type(sample["threshold"]) is not int:
            return None
        names = [sample[k] for k in ("from", "to", "direction", "reason", "metric")]
        if any(type(name) is not str for name in names):
            return None
        codes = [_NAMES.code(name) for name in names]
        key = _benefits_key(sample["benefits"])
        codes.append(None if key is None else _BENEFITS.code(key))
        return None if None in codes else tuple(c for c in codes if c is not None)

    def _text(self, text: str | None) -> bytes | None:
        """``text`` as :func:`_pack_tier` lays it out ("" for None), or None."""
        if text in self._texts:
            return self._texts[text]
        found: bytes | None = None
        if text is None:
            found = b"\x00"
        elif type(text) is str:
            encoded = text.encode()
            if len(encoded) <= 255:
                found = bytes((len(encoded),)) + encoded
        self._texts[text] = found
        return found
