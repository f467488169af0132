"""The memory backend's compact JSON text: any text comes back exactly as given, and the
JSON loyaltykit writes is kept deflated (a fraction of its length)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import attrs
from hypothesis import given
from hypothesis import strategies as st

from loyaltykit._model import (
    Account,
    Kind,
    LotMovement,
    OrderRecord,
    OrderStatus,
    Posting,
    Transaction,
)
from loyaltykit.memory.compact import pack, unpack
from loyaltykit.memory.ledger_rows import KeptTx
from loyaltykit.memory.order_rows import KeptOrder
from loyaltykit.memory.tables import JSONText

EVENT = {
    "transaction_id": "0190a2f1-7c1e-7d43-9a55-3c1b7f0e2a11", "kind": "earn",
    "wallet": "points", "points": 57, "changes": {"available": 57},
    "balance": {"available": 310, "pending": 0, "held": 0, "debt": 0, "total": 310},
    "lots": [{"lot_id": "0190a2f1-7c1e-7d44-8b02-77c1d0e3f4a5", "points": 57,
              "pending": False, "activates_at": None, "expires_at": None}],
    "reason": "order A-1093", "metadata": {"order_id": "A-1093"},
}


@given(st.text())
def test_any_text_comes_back(text: str) -> None:
    assert unpack(pack(text)) == text


@given(st.dictionaries(st.text(), st.one_of(st.none(), st.booleans(), st.integers(),
                                            st.text())))
def test_json_text_reads_back_its_value_and_compares_by_it(value: dict[str, object]) -> None:
    kept = JSONText.of(value)
    assert kept.value() == value
    assert kept.text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    again = JSONText.of(dict(value))
    assert kept == again and hash(kept) == hash(again)


def test_a_points_event_is_kept_in_a_fraction_of_its_text() -> None:
    text = JSONText.of(EVENT).text
    packed = pack(text)
    assert isinstance(packed, bytes)
    assert len(packed) * 3 < len(text)


def test_json_text_is_one_object_its_packed_bytes() -> None:
    """A kept value is its packed bytes (no wrapper object around them) with a
    Mapping's face: a short text as it is, a long one deflated."""
    kept, short = JSONText.of(EVENT), JSONText.of({"a": [1]})
    assert isinstance(kept, bytes) and isinstance(short, bytes)
    assert len(kept) * 3 < len(kept.text)
    assert b'\x00{"a":[1]}' == bytes(short)
    assert (57, True, False) == (kept["points"], "kind" in kept, "nope" in kept)
    assert json.loads(json.dumps(EVENT)) == dict(kept) == kept
    assert {"a": [1]} == short and short != {"a": [2]} and not JSONText.of({})


_TEXTS = st.one_of(st.none(), st.text())
_JSON = st.dictionaries(st.text(), st.one_of(st.none(), st.integers(), st.text()))


@given(order=_JSON, evaluation=_JSON, recorded=st.one_of(st.none(), _JSON), result=_TEXTS,
       fingerprint=st.one_of(_TEXTS, st.binary(min_size=32, max_size=32).map(bytes.hex)),
       refunded=st.booleans())
def test_a_kept_order_reads_back_as_recorded(
        order: dict[str, object], evaluation: dict[str, object],
        recorded: dict[str, object] | None, result: str | None, fingerprint: str | None,
        refunded: bool) -> None:
    """Whatever its texts (a digest or any fingerprint, none, a result or none, a
    recorded evaluation or none), a kept order reads back as the record given, and
    two keeps of it compare equal."""
    at = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    earn = uuid.uuid4()
    record = OrderRecord(
        program_id="p", order_id="o1", member_id="ana", placed_at=at, version=1,
        order=order, returned={"l1": 1}, status=OrderStatus.OPEN, points=5,
        evaluation=evaluation, earn_id=earn, payments=(earn,), created_at=at,
        updated_at=at, recorded_evaluation=recorded, fingerprint=fingerprint,
        result=result, refunded={earn: 3} if refunded else {})
    kept = KeptOrder.of(record)
    assert record == kept.read()
    assert kept == KeptOrder.of(record) and kept.order_value() == order
    assert kept != KeptOrder.of(attrs.evolve(record, result=(result or "") + "x"))


@given(moves=st.integers(0, 3), key=_TEXTS, reason=st.text(), metadata=_JSON)
def test_a_kept_transaction_reads_back_as_written(
        moves: int, key: str | None, reason: str, metadata: dict[str, object]) -> None:
    """Whatever its movements (none, one: kept as its lot and delta, several) and texts
    (a key or none, any reason, any metadata), a kept transaction reads back as the
    transaction written."""
    at = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    tx = Transaction(
        id=uuid.uuid4(), program_id="p", member_id="ana", wallet="points", kind=Kind.EARN,
        occurred_at=at, recorded_at=at,
        postings=(Posting(Account.ISSUED, -5), Posting(Account.AVAILABLE, 5)),
        movements=tuple(LotMovement(uuid.uuid4(), 5 - n) for n in range(moves)),
        idempotency_key=key, reason=reason, metadata=metadata)
    kept = KeptTx.of(tx, tx.postings)
    assert tx == kept.read()
    assert (tx.movements, tx.idempotency_key, tx.reason) == (
        kept.movements, kept.idempotency_key, kept.reason)
    assert type(kept.read().metadata) is dict and metadata == kept.metadata
