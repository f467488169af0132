"""Compact JSON text for the in-memory backend: each stored JSON value deflated alone
against a preset dictionary of the JSON loyaltykit writes.

A stored record's JSON (an order, its evaluation, an outbox event's payload) is a few
hundred bytes of text repeating the same keys, rule descriptions and explanations in
every record. Deflate with a preset dictionary (RFC 1951 with zlib's ``zdict``) sees
those as back references into the dictionary, so a recorded order's event payload of
~940 bytes keeps ~60, and each value still decodes alone (no shared state between
records, nothing to rebuild when one is replaced or dropped). The dictionary only
changes how well a text compresses, never what comes back: any text round-trips.
"""

from __future__ import annotations

import zlib

__all__ = ["Deflated", "pack", "pack_digest", "pack_text", "unpack", "unpack_digest"]

#: deflate's window (2**12 bytes: the dictionary fits, and setting it up stays cheap)
_WBITS = 12
_LEVEL = 6
_MEM_LEVEL = 4
#: texts shorter than this are kept as they are (deflate would not save their overhead)
_SHORTEST = 32

# Samples of what the stores keep, least common first (deflate prefers the nearest of
# equal matches, and the dictionary's end is nearest): an enrolment's result (its key's
# record), a tier change, a return, an order's recorded result, a points event, then an
# order and its evaluation (in the order record and again in its order.recorded event).
_SAMPLES = (
    '{"__type__":"Member","attributes":{"__map__":{}},"enrolled_at":{"__dt__":'
    '"1997-01-01T17:00:00+00:00"},"member_id":"","program_id":""}',
    '{"from":"member","to":"silver","direction":"up","reason":"qualified","note":"",'
    '"changed_at":"1997-01-01T17:00:00+00:00","metric":"points","qualifying":363,'
    '"threshold":200,"protected_until":"1999-01-01T05:00:00+00:00",'
    '"next_evaluation":"1998-01-01T05:00:00+00:00","benefits":{"earn_multiplier":"1",'
    '"discount_percent":"0","free_shipping":false,"extended_returns":false,"custom":{}}}',
    '{"returned":{"lines":{},"shipping":"0.00"},"refunded":{},"clawback":0,'
    '"status":"partially_returned","return_id":"","voided":false}',
    '{"v":2,"order_id":"","tx":["","earn","points",0,"1997-01-01T17:00:00+00:00",[]],'
    '"balance":["1997-01-01T17:00:00+00:00",0,0,0,0,0,0,0,0,0,0,0,null]}',
    '{"enrolled_at":"1997-01-01T17:00:00+00:00","attributes":{}}',
    '{"transaction_id":"01a23d2f-e44d-70c0-ad44-ccbd128f5361","kind":"earn",'
    '"wallet":"points","points":11,"changes":{"available":11},"balance":{"available":11,'
    '"pending":0,"held":0,"debt":0,"total":11},"lots":[{"lot_id":'
    '"01a23d2f-e44e-726e-8b53-2df476cbfa66","points":11,"pending":false,'
    '"activates_at":null,"expires_at":null}],"reason":"order ","metadata":{"order_id":""}}',
    '{"order_id":"","placed_at":"1997-01-01T17:00:00+00:00","points":11,"earn_id":'
    '"01a23d2f-e44d-70c0-ad44-ccbd128f5361","wallet":"points","program_version":1,'
    '"paid_with":[],"order":{"id":"","member_id":"","placed_at":'
    '"1997-01-01T17:00:00+00:00","currency":"USD","lines":[{"sku":"","quantity":1,'
    '"unit_price":"11.77","category":"","discount":null,"line_id":null}],"shipping":null,'
    '"channel":null,"store":null,"attributes":{}},"evaluation":{"points":11,"unrounded":'
    '"11.77","net":"11.77","currency":"USD","outcomes":[{"rule_id":"rate","kind":"rate",'
    '"description":"1 point per 1.00 of net goods","applied":true,"points":"11.77",'
    '"explanation":"1 point per 1.00 USD on 11.77 USD net goods = 11.77"},{"rule_id":'
    '"card","kind":"stamp_card","description":"one stamp per order; every 5: 25 points",'
    '"applied":true,"points":"0","explanation":"1 stamp (0 -> 1, a card of 5): 0 rewards'
    ' = 0 points","stamps":1,"tracked":true}],"rewards":[],"version":1,"context":'
    '{"member":{"member_id":"","enrolled_at":"1997-01-01T17:00:00+00:00","tier":"member",'
    '"first_order":false,"attributes":{},"earn_multiplier":"1"},"stamps_before":'
    '{"card":0}}}}',
)
_DICTIONARY = "".join(_SAMPLES).encode()


#: a deflater and an inflater primed with the dictionary: each value is packed by a copy
#: of one (the same bytes as a fresh one given the dictionary, without hashing the
#: dictionary in again: most of a short value's cost). ``copy`` holds the object's lock.
_DEFLATE = zlib.compressobj(_LEVEL, zlib.DEFLATED, -_WBITS, _MEM_LEVEL,
                            zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
_INFLATE = zlib.decompressobj(-_WBITS, _DICTIONARY)


def pack(text: str) -> bytes | str:
    """``text`` deflated against the dictionary, or ``text`` itself where that is not
    shorter; :func:`unpack` gives ``text`` back."""
    if len(text) < _SHORTEST:
        return text
    deflate = _DEFLATE.copy()
    packed = deflate.compress(text.encode()) + deflate.flush()
    return packed if len(packed) < len(text) else text


def unpack(packed: bytes | str) -> str:
    """The text :func:`pack` was given."""
    if isinstance(packed, str):
        return packed
    inflate = _INFLATE.copy()
    return (inflate.decompress(packed) + inflate.flush()).decode()


class Deflated(bytes):
    """A text deflated by :func:`pack_text`, shown as that text (a stored row's ``repr``
    reads as the SQL backend's: what it names can be searched for)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(unpack(self))


def pack_text(text: str) -> Deflated | str:
    """:func:`pack`, shown as ``text`` (:class:`Deflated`): for a text kept in a field
    that says ``str``, an idempotency record's result."""
    packed = pack(text)
    return packed if isinstance(packed, str) else Deflated(packed)


def pack_digest(digest: str | None) -> bytes | str | None:
    """A hex digest (a request's fingerprint: 64 characters, 113 bytes as a ``str``) as
    its bytes (32, 65 as ``bytes``); a text that is no lowercase hex is kept as it is.
    :func:`unpack_digest` gives ``digest`` back."""
    if digest is None or len(digest) % 2:
        return digest
    try:
        packed = bytes.fromhex(digest)
    except ValueError:
        return digest
    return packed if packed.hex() == digest else digest


def unpack_digest(packed: bytes | str | None) -> str | None:
    """The digest :func:`pack_digest` was given."""
    return packed.hex() if isinstance(packed, bytes) else packed
