"""How the memory backend keeps set-based due work's rows: each due transaction's
outbox event in a fixed layout (no JSON text, no deflate: ``memory/due_events.py``),
each transaction's row built from its fields (no :class:`~loyaltykit.Transaction`
first). What a reader gets is the contract suite's (set-based == catch_up, outbox
included); these tests pin the structure and the layout's exact round trip.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from loyaltykit import ExpiryPolicy, Loyalty, PendingPolicy, TestClock, Tier, TierPolicy
from loyaltykit.memory import MemoryStorage, due_events, tables
from loyaltykit.memory.ledger_rows import KeptTx
from loyaltykit.memory.tables import JSONText
from loyaltykit.testing.contract import berlin, make_program

MEMBERS = 5


def _due_program(clock: TestClock, members: int = MEMBERS) -> Loyalty:
    """Members with a lot to expire, a pending lot to activate and a stale hold each,
    silver from 2025: at 2027-01-01 every member has three due transactions and drops
    to member (200 points in 2026)."""
    program = attrs.evolve(
        make_program(expiry=ExpiryPolicy(days=365), pending=PendingPolicy(days=10)),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 600)), notice_days=0))
    loyalty = Loyalty(program, MemoryStorage(), clock=clock)
    members = [f"m{i}" for i in range(members)]
    clock.set(berlin(2025, 12, 30, 10))
    for m in members:
        loyalty.enrol(m)
        loyalty.earn(m, 700, key=f"a-{m}", activates_at=clock.now())
    clock.set(berlin(2026, 12, 21, 10))
    for m in members:
        loyalty.earn(m, 200, key=f"b-{m}")
    clock.set(berlin(2026, 12, 21, 10, 5))
    for m in members:
        loyalty.hold(m, 50, key=f"h-{m}", ttl=dt.timedelta(hours=1))
    clock.set(berlin(2027, 1, 1, 1))
    return loyalty


def test_due_events_are_kept_in_the_fixed_layout_without_json(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on main (cdb1281): each due event's payload was JSON-encoded and deflated
    (``tables.pack``, four calls a member here)."""
    clock = TestClock(berlin(2025, 12, 30, 10))
    loyalty = _due_program(clock)
    loyalty.events.ack("test", loyalty.events.read("test", limit=10_000)[-1])
    deflated: list[str] = []
    real_pack = tables.pack

    def counting_pack(text: str) -> Any:
        deflated.append(text)
        return real_pack(text)

    monkeypatch.setattr(tables, "pack", counting_pack)
    report = loyalty.run_due()
    assert (report.released_holds, report.activated_lots, report.expired_lots,
            report.tier_changes) == (MEMBERS, MEMBERS, MEMBERS, MEMBERS)
    assert deflated == []
    events = loyalty.events.read("test", limit=10_000)
    assert sorted(e.type for e in events) == sorted(
        ["points.released", "points.activated", "points.expired", "tier.changed"]
        * MEMBERS)
    for event in events:  # read back as the catch_up path's JSON gives it
        if event.type == "tier.changed":
            assert (event.payload["from"], event.payload["to"]) == ("silver", "member")
        else:
            assert set(event.payload) == {"transaction_id", "kind", "wallet", "points",
                                          "changes", "balance", "reason", "metadata"}


def test_due_transactions_are_kept_without_a_transaction_object(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on main (cdb1281): ``write_due`` built a Transaction per row and kept it
    through ``KeptTx.of``; the row is now built from the due row's fields."""
    clock = TestClock(berlin(2025, 12, 30, 10))
    loyalty = _due_program(clock)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("write_due built a Transaction first")

    monkeypatch.setattr(KeptTx, "of", classmethod(refused))
    loyalty.run_due()
    monkeypatch.undo()
    lines = loyalty.statement("m0", limit=20).lines
    assert sorted(line.kind.value for line in lines) == sorted(
        ["earn", "earn", "hold", "release", "activate", "expire"])
    assert loyalty.balance("m0").available == 900 - 700  # the 700 expired


EXPIRY: dict[str, Any] = {
    "transaction_id": "01a23d2f-e44d-70c0-ad44-ccbd128f5361", "kind": "expire",
    "wallet": "points", "points": -700, "changes": {"available": -700},
    "balance": {"available": 450, "pending": 0, "held": 50, "debt": 0, "total": 500},
    "reason": "", "metadata": {"lot_id": "01a23d2f-e44e-726e-8b53-2df476cbfa66",
                               "earn_id": "01a23d2f-e44e-726e-8b53-2df476cbfa67"}}
RELEASE: dict[str, Any] = {
    **EXPIRY, "kind": "release", "points": 50, "changes": {"held": -50, "available": 50},
    "reason": "hold expired ü", "metadata": {
        "hold_id": "01a23d2f-e44e-726e-8b53-2df476cbfa66", "cause": "released"}}


TIER: dict[str, Any] = {
    "from": "silver", "to": "member", "direction": "down", "reason": "evaluation",
    "note": "", "changed_at": "2026-12-31T23:00:00+00:00", "metric": "points",
    "qualifying": 450, "threshold": 0, "protected_until": None,
    "next_evaluation": "2027-12-31T23:00:00+00:00", "benefits": {
        "earn_multiplier": "1", "discount_percent": "0", "free_shipping": False,
        "extended_returns": False, "custom": {}}}


@pytest.mark.parametrize("payload", [
    EXPIRY, RELEASE, {**EXPIRY, "metadata": {}}, {**EXPIRY, "wallet": "café"}, TIER,
    {**TIER, "note": "é", "qualifying": None, "changed_at": "2026-12-31T23:00:00.5+00:00",
     "protected_until": "2027-12-31T23:00:00+00:00", "next_evaluation": None,
     "benefits": {**TIER["benefits"], "custom": {"lounge": True, "code": "x"}}}])
def test_the_layout_reads_back_what_json_would(payload: dict[str, Any]) -> None:
    packed = due_events.pack(payload)
    assert packed is not None
    kept = JSONText.packed(packed)
    assert kept.value() == json.loads(json.dumps(payload))
    assert list(kept.value()) == list(payload)  # the keys' order too
    assert kept.text == JSONText.of(payload).text


@pytest.mark.parametrize("payload", [
    {**EXPIRY, "points": True},  # a bool is no int in JSON
    {**EXPIRY, "points": 1 << 40},  # beyond the layout's ints
    {**EXPIRY, "transaction_id": "01A23D2F-E44D-70C0-AD44-CCBD128F5361"},  # not canonical
    {**EXPIRY, "transaction_id": "01a23d2f-e44d-70c0-ad44-ccbd128f536 "},
    {**EXPIRY, "kind": "earn"},  # not due work's: JSON (deflated, smaller)
    {**EXPIRY, "balance": {**EXPIRY["balance"], "total": 1.0}},
    {k: EXPIRY[k] for k in reversed(list(EXPIRY))},  # keys in another order
    {**EXPIRY, "metadata": {"x": 1}},
    {**EXPIRY, "metadata": {1: "a"}},  # JSON gives the key back as a text
    {**EXPIRY, "changes": {"expired": 5}},
    {**EXPIRY, "lots": []},
    {**TIER, "qualifying": {"amount": "1.00", "currency": "EUR"}},  # spend: money
    {**TIER, "benefits": {**TIER["benefits"], "custom": {"a": [1]}}},
    {**TIER, "benefits": {**TIER["benefits"], "earn_multiplier": 1.5}},
    {**TIER, "threshold": True},
    {**TIER, "changed_at": 5},
])
def test_anything_else_is_left_to_json(payload: dict[str, Any]) -> None:
    assert due_events.pack(payload) is None


def _store_posts(patch: pytest.MonkeyPatch,
                 change: Callable[[Any], Any] | None = None) -> list[tuple[Any, int]]:
    """Watch the memory store's own ``post_due_set`` (it still runs): each call's answer
    (None: declined) and the undo-log entries it added, in a list filled as due work
    runs; ``change`` makes the request the store is handed from the caller's."""
    from loyaltykit.memory.ledger_due_set import MemoryLedgerDueSet

    real = MemoryLedgerDueSet.post_due_set
    calls: list[tuple[Any, int]] = []

    def watched(self: Any, request: Any) -> Any:
        undo = len(self._uow._undo)
        found = real(self, request if change is None else change(request))
        calls.append((found, len(self._uow._undo) - undo))
        return found

    patch.setattr(MemoryLedgerDueSet, "post_due_set", watched)
    return calls


def _ledger_due_undo_entries(monkeypatch: pytest.MonkeyPatch, members: int) -> list[int]:
    """Run due work over ``members`` plain wallets in one batch with the Python path's
    pieces refused; the undo-log entries each set-based batch added."""
    from loyaltykit._due_bulk import DueBulk
    from loyaltykit._services.ledger import LedgerService

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a plain batch went through the Python path")

    clock = TestClock(berlin(2025, 12, 30, 10))
    loyalty = _due_program(clock, members)
    calls = _store_posts(monkeypatch)
    monkeypatch.setattr(DueBulk, "post", refused)
    monkeypatch.setattr(LedgerService, "books", refused)
    monkeypatch.setattr(KeptTx, "of", classmethod(refused))
    report = loyalty.run_due(batch_size=100)
    monkeypatch.undo()
    assert (report.released_holds, report.activated_lots, report.expired_lots) == (
        members, members, members)
    assert loyalty.balance("m0").available == 900 - 700  # the 700 expired
    assert None not in [found for found, _ in calls], "a plain batch was declined"
    return [added for _, added in calls]


def test_a_plain_batch_is_posted_by_the_memory_store_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on main (2ce8024): the memory store had no post_due_set, so every wallet
    was loaded as a book (LedgerService.books) and posted by DueBulk.post; now the
    store reads its rows in place and writes each table with one undo-log entry per
    batch, as many for 3 wallets as for 9."""
    assert _ledger_due_undo_entries(monkeypatch, 3) == _ledger_due_undo_entries(
        monkeypatch, 9)


def test_a_plain_batch_makes_no_uuid_object_for_an_event_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails on main (77be958), which drew the batch's ids as UUID objects
    (``new_ids``), one per event too, and read each back with ``.bytes``: the store now
    draws them as one bytes object (``new_ids_hex``), packs each event's id from its
    bytes and makes a UUID object for each transaction's id only (its row's key)."""
    def refused(n: int) -> Any:
        raise AssertionError("the batch's ids were drawn as UUID objects")

    clock = TestClock(berlin(2025, 12, 30, 10))
    loyalty = _due_program(clock, 3)
    loyalty.events.ack("t", loyalty.events.read("t", limit=100)[-1])
    calls = _store_posts(monkeypatch, lambda request: attrs.evolve(request, new_ids=refused))
    report = loyalty.run_due()
    assert len(calls) == 1 and calls[0][0] is not None
    assert (report.released_holds, report.activated_lots, report.expired_lots) == (3, 3, 3)
    events = [e for e in loyalty.events.read("t", limit=100) if "transaction_id" in e.payload]
    ids = {str(e.id) for e in events} | {e.payload["transaction_id"] for e in events}
    assert (9, 18) == (len(events), len(ids))  # every id drawn once


def _big_due_events(set_based: bool) -> tuple[Any, list[Any]]:
    """A member whose lot of 2**40 points expires and whose hold of 2**35 goes stale,
    due work run by the store itself or (``set_based`` False) by the Python path; the
    report and the events due work wrote."""
    import itertools
    import uuid

    from loyaltykit._member_keys.stores import KeyedLedgerStore

    numbers = itertools.count(1)
    clock = TestClock(berlin(2026, 1, 1, 10))
    loyalty = Loyalty(make_program(expiry=ExpiryPolicy(days=30)), MemoryStorage(),
                      clock=clock, new_id=lambda: uuid.UUID(int=next(numbers)))
    loyalty.enrol("big")
    loyalty.earn("big", 1 << 40, key="earn")
    clock.set(berlin(2026, 1, 20, 10))
    loyalty.hold("big", 1 << 35, key="hold", ttl=dt.timedelta(hours=1))
    clock.set(berlin(2026, 3, 1, 10))
    seen = loyalty.events.read("t", limit=100)
    loyalty.events.ack("t", seen[-1])
    with pytest.MonkeyPatch.context() as patch:
        calls = _store_posts(patch)
        if not set_based:
            patch.setattr(KeyedLedgerStore, "post_due_set", lambda self, request: None)
        report = loyalty.run_due()
    assert len(calls) == (1 if set_based else 0) and None not in [c[0] for c in calls]
    return report, [(e.id, e.type, e.payload) for e in loyalty.events.read("t", limit=100)]


def test_a_due_event_beyond_the_layout_is_kept_as_json() -> None:
    # points beyond the layout's 32-bit ints: the store keeps the payload as JSON text,
    # the very payload the Python path keeps
    report, events = _big_due_events(True)
    assert (report.released_holds, report.expired_lots) == (1, 1)
    assert [e[2]["points"] for e in events] == [0, -(1 << 40)]
    assert (report, events) == _big_due_events(False)


@pytest.mark.parametrize(("reason", "layout", "metadata"), [
    ("hold expired", 0, {"hold_id": "01a23d2f-e44e-726e-8b53-2df476cbfa66",
                         "cause": "released"}),
    ("", 1, {"lot_id": "01a23d2f-e44e-726e-8b53-2df476cbfa66",
             "earn_id": "01a23d2f-e44e-726e-8b53-2df476cbfa67"})])
def test_due_texts_read_back_as_the_json_texts_would(reason: str, layout: int,
                                                     metadata: dict[str, str]) -> None:
    # the memory store's own due rows keep their metadata's ids as bytes
    import uuid

    from loyaltykit._model import Kind
    from loyaltykit.memory.ledger_rows import due_texts

    at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    fields = (uuid.UUID(int=7), "p", "m", "points", Kind.EXPIRE, at, at, ())
    ids = b"".join(uuid.UUID(v).bytes for k, v in metadata.items() if k != "cause")
    kept = KeptTx.row(*fields, None, 0, due_texts(reason, layout) + ids)
    as_json = KeptTx.due(*fields, None, reason, metadata)
    assert kept.texts != as_json.texts
    assert kept.read() == as_json.read() and kept == as_json
    assert (kept.idempotency_key, kept.reason, dict(kept.metadata), kept._metadata()) == (
        None, reason, metadata, as_json._metadata())
    assert list(kept.read().metadata) == list(metadata)  # the keys' order too


def test_a_batch_with_a_wallet_in_debt_is_left_whole_to_the_python_path() -> None:
    # the store posts a batch only if every wallet is plain: else it writes nothing and
    # draws no id, and the Python path posts the batch (ids in the same order)
    import itertools
    import uuid

    numbers = itertools.count(1)
    clock = TestClock(berlin(2026, 1, 1, 10))
    loyalty = Loyalty(make_program(), MemoryStorage(), clock=clock,
                      new_id=lambda: uuid.UUID(int=next(numbers)))
    later = clock.now() + dt.timedelta(hours=1)
    for m in ("a", "b"):
        loyalty.enrol(m)
    earn = loyalty.earn("b", 10, key="e1")
    loyalty.spend("b", 10, key="s1")
    loyalty.reverse(earn.transaction_id, key="r1")  # b owes 10 points
    for m in ("a", "b"):
        loyalty.earn(m, 20, key=f"p-{m}", activates_at=later)
    clock.set(later + dt.timedelta(hours=1))
    drawn: list[int] = []

    def counted(request: Any) -> Any:  # the ids the store draws from the request
        def new_ids(n: int) -> Any:
            drawn.append(n)
            return request.new_ids(n)

        def new_ids_hex(n: int) -> Any:
            drawn.append(n)
            return request.new_ids_hex(n)

        return attrs.evolve(request, new_ids=new_ids, new_ids_hex=new_ids_hex)

    with pytest.MonkeyPatch.context() as patch:
        calls = _store_posts(patch, counted)
        report = loyalty.run_due(batch_size=10)
    assert (calls, drawn) == ([(None, 0)], [])  # declined: no id drawn, nothing written
    assert report.activated_lots == 2
    assert (loyalty.balance("a").available, loyalty.balance("b").available) == (20, 10)
