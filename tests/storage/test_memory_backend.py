"""The memory backend's own shape: due work reads the rows that are due (through the
tables' sorted indexes), not every row per batch; what it keeps is one immutable copy
of each JSON value, which neither the caller's nor a reader's changes reach.

The behaviour (the same answers as SQL) is the contract suite's; these tests count
rows read, which only this backend can show.
"""

from __future__ import annotations

import datetime as dt
import uuid
from array import array
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyaltykit import (
    EarningPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    QualificationWindow,
    RateRule,
    TestClock,
    Tier,
    TierPolicy,
    WindowKind,
)
from loyaltykit._model import AccountState
from loyaltykit.memory import MemoryStorage, outbox
from loyaltykit.memory.keys import KeyTables
from loyaltykit.memory.ledger import DueAccounts, LedgerTables
from loyaltykit.memory.orders import OrderTables
from loyaltykit.memory.outbox import OutboxTables
from loyaltykit.memory.sorted_index import IndexedTable, SortedKeys
from loyaltykit.memory.tables import SMALL_SET, JSONText
from loyaltykit.memory.tiers import TierTables, _due_key
from loyaltykit.storage.ledger import LedgerChanges

BERLIN = ZoneInfo("Europe/Berlin")


class Reads:
    """Counts the rows read from a table, however they are read."""

    read = 0

    def __getitem__(self, key: Any) -> Any:
        self.read += 1
        return super().__getitem__(key)  # type: ignore[misc]

    def get(self, key: Any, default: Any = None) -> Any:
        self.read += 1
        return super().get(key, default)  # type: ignore[misc]

    def items(self) -> Iterator[tuple[Any, Any]]:
        for item in super().items():  # type: ignore[misc]
            self.read += 1
            yield item

    def values(self) -> Iterator[Any]:
        for value in super().values():  # type: ignore[misc]
            self.read += 1
            yield value


class Counting(Reads, IndexedTable[Any, Any]):
    """A tier-states table that counts the rows read from it."""

    def __init__(self) -> None:
        super().__init__(_due_key)


class CountingAccounts(Reads, DueAccounts):
    """An accounts table that counts the rows read from it."""


def test_tier_due_work_reads_the_due_states_only() -> None:
    """400 members with anniversary windows, 10 per enrolment day: the evaluation of
    the first day's 10, in batches of 3, reads about those 10 states (a scan per
    batch read 400 each time)."""
    storage = MemoryStorage()
    counting = Counting()
    storage._tables.of(TierTables).tier_states = counting
    clock = TestClock(dt.datetime(2025, 3, 1, 12, tzinfo=BERLIN))
    loyalty = Loyalty(Program(
        id="p", time_zone="Europe/Berlin", currency="EUR", point_value=Money("0.01", "EUR"),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 500)),
                         window=QualificationWindow(WindowKind.ANNIVERSARY_YEAR),
                         notice_days=0)),
        storage, clock=clock)
    for day in range(40):
        clock.set(dt.datetime(2025, 3, 1, 12, tzinfo=BERLIN) + dt.timedelta(days=day))
        for n in range(10):
            loyalty.enrol(f"m{day:02d}-{n}")
    assert 400 == len(counting)
    clock.set(dt.datetime(2026, 3, 1, 6, tzinfo=BERLIN))
    counting.read = 0
    report = loyalty.run_due(batch_size=3)
    assert 10 == report.tier_evaluations
    assert counting.read <= 4 * 10, counting.read


def seed_due_accounts(storage: MemoryStorage, at: dt.datetime) -> None:
    """1,000 accounts of program "p", m0000 to m0999: every 33rd (30 of them) fell due an
    hour before ``at``, the others (m{i}) fall due i + 1 hours after it."""
    with storage.unit_of_work("p") as uow:
        uow.ledger.write(LedgerChanges(accounts={
            (f"m{i:04d}", "points"): AccountState(
                f"m{i:04d}", "points",
                next_due_at=at + dt.timedelta(hours=-1 if i % 33 == 0 else i + 1))
            for i in range(1_000)}))
        uow.commit()


def test_ledger_due_batches_read_the_due_accounts_once() -> None:
    """1,000 accounts, 30 of them due: reading them in batches of 4 (each batch's
    accounts then fall due later, as due work leaves them) reads each due account about
    once; the accounts' sorted due list is made once per run."""
    storage = MemoryStorage()
    accounts = storage._tables.of(LedgerTables).accounts = CountingAccounts()
    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    seed_due_accounts(storage, at)
    accounts.read = 0
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        with storage.unit_of_work("p") as uow:
            due = uow.ledger.due_accounts(at, after=after, limit=4)
            uow.ledger.write(LedgerChanges(accounts={
                (m, w): AccountState(m, w, next_due_at=at + dt.timedelta(days=9))
                for m, w in due}))
            uow.commit()
        if not due:
            break
        seen += due
        after = due[-1]
    assert [(f"m{i:04d}", "points") for i in range(0, 1_000, 33)] == seen
    # each due account: read by the due read, and twice by its write
    assert accounts.read <= 3 * len(seen) + 10, accounts.read


class CountingKeys(SortedKeys):
    """A due index that counts the reads of it (each a sort of the due list)."""

    scans = 0

    def after(self, low: Any) -> Iterator[Any]:
        self.scans += 1
        return super().after(low)


def test_ranged_due_reads_sort_the_due_accounts_once() -> None:
    """Due work by ranges (due_bounds, then due_between batch by batch, as run_due
    reads them): the due list is sorted once for the run, and each due account is read
    about once by the bounds and once by its range, not again by the range before."""
    storage = MemoryStorage()
    accounts = storage._tables.of(LedgerTables).accounts = CountingAccounts()
    index = accounts.index = CountingKeys()
    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    seed_due_accounts(storage, at)
    accounts.read = 0
    with storage.unit_of_work("p") as uow:
        ends = uow.ledger.due_bounds(at, 4)
    assert 8 == len(ends)
    seen: list[tuple[str, str]] = []
    for after, upto in zip([None, *ends], ends, strict=False):
        cursor = after
        while True:
            with storage.unit_of_work("p") as uow:
                due, cursor = uow.ledger.due_between(at, after=cursor, upto=upto, limit=4)
                uow.ledger.write(LedgerChanges(accounts={
                    (m, w): AccountState(m, w, next_due_at=at + dt.timedelta(days=9))
                    for m, w in due}))
                uow.commit()
            seen += due
            if cursor is None:
                break
    assert [(f"m{i:04d}", "points") for i in range(0, 1_000, 33)] == seen
    assert 1 == index.scans
    # each due account: read by the bounds, by its range's read and twice by its write
    assert accounts.read <= 4 * len(seen) + 10, accounts.read


def test_a_rolled_back_unit_of_work_restores_the_due_index() -> None:
    """The undo log writes the table back item by item, and the index with it."""
    storage = MemoryStorage()
    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    with storage.unit_of_work("p") as uow:
        uow.ledger.write(LedgerChanges(accounts={
            ("a", "points"): AccountState("a", "points", next_due_at=at)}))
        uow.commit()
    with storage.unit_of_work("p") as uow:
        assert [("a", "points")] == uow.ledger.due_accounts(at, after=None, limit=9)
        uow.ledger.write(LedgerChanges(accounts={
            ("a", "points"): AccountState("a", "points"),
            ("b", "points"): AccountState("b", "points", next_due_at=at)}))
        assert [("b", "points")] == uow.ledger.due_accounts(at, after=None, limit=9)
    accounts = storage._tables.of(LedgerTables).accounts
    assert [("p", at, "a", "points")] == list(accounts.index)
    with storage.unit_of_work("p") as uow:
        assert [("a", "points")] == uow.ledger.due_accounts(at, after=None, limit=9)


def test_batch_writes_are_undone_as_one_and_restore_every_row() -> None:
    """put_many and append_many (a batch of due work's rows) are undone like a put and
    an append per row: new keys dropped, old values and the index restored, lists
    shortened, also when a key comes twice in one batch or a row fails midway."""
    storage = MemoryStorage()
    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    tables = storage._tables.of(LedgerTables)
    with storage.unit_of_work("p") as uow:
        uow.ledger.write(LedgerChanges(accounts={
            ("a", "points"): AccountState("a", "points", next_due_at=at)}))
        uow.put_many(tables.member_transactions, [(("p", "points", "a"), [])])
        uow.commit()
    before_accounts = dict(tables.accounts)
    before_index = list(tables.accounts.index)
    with storage.unit_of_work("p") as uow:
        uow.put_many(tables.accounts, [
            (("p", "points", "a"), AccountState("a", "points")),
            (("p", "points", "b"), AccountState("b", "points", next_due_at=at)),
            (("p", "points", "a"), AccountState("a", "points", version=2))])
        uow.append_many(tables.member_transactions, [
            (("p", "points", "a"), 1), (("p", "points", "c"), 2), (("p", "points", "c"), 3)])
        assert [("p", at, "b", "points")] == list(tables.accounts.index)
        assert [2, 3] == tables.member_transactions[("p", "points", "c")]
        with pytest.raises(TypeError):  # a row that cannot be written stops the batch
            uow.put_many(tables.accounts, [
                (("p", "points", "d"), AccountState("d", "points")), (["unhashable"], None)])
    assert before_accounts == dict(tables.accounts)
    assert before_index == list(tables.accounts.index)
    assert {("p", "points", "a"): []} == tables.member_transactions


def test_sorted_keys_keep_order_across_buckets() -> None:
    keys = SortedKeys()
    for i in reversed(range(3_000)):
        keys.add((i % 7, i))
    keys.add((0, 0))  # there already
    for i in range(0, 3_000, 2):
        keys.discard((i % 7, i))
    keys.discard((9, 9))  # not there
    expected = sorted((i % 7, i) for i in range(1, 3_000, 2))
    assert (expected, len(expected)) == (list(keys), len(keys))
    assert expected[expected.index((3, 1501)) + 1:] == list(keys.after((3, 1501)))
    assert [] == list(keys.after((7,)))


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(1, 700)),
                max_size=60))
@settings(max_examples=200, deadline=None)
def test_sorted_keys_equal_a_sorted_set_under_runs_of_neighbours(
        runs: list[tuple[bool, int, int]]) -> None:
    # add() and discard() try the place after their last one first (runs of neighbouring
    # keys, as due work writes them): any order of runs gives what a sorted set would
    keys = SortedKeys()
    model: set[tuple[int, int]] = set()
    for adding, group, size in runs:
        for n in range(size):
            # odd sizes: a run of neighbours, ascending; even: strides across the group
            key = (group, n if size % 2 else n * 3 % (size + 1))
            if adding:
                keys.add(key)
                model.add(key)
            else:
                keys.discard(key)
                model.discard(key)
    assert (sorted(model), len(model)) == (list(keys), len(keys))
    assert all(len(items) <= 1024 for items in keys._lists)
    assert keys._maxes == [items[-1] for items in keys._lists]


def test_an_indexed_table_is_written_by_item_only() -> None:
    table: IndexedTable[str, int] = IndexedTable(lambda k, v: (v, k) if v else None)
    table["a"], table["b"], table["c"] = 2, 0, 1
    table["a"] = 3
    assert [(1, "c"), (3, "a")] == list(table.index)
    assert 1 == table.pop("c")
    del table["a"]
    assert ([], {"b": 0}) == (list(table.index), dict(table))
    with pytest.raises(TypeError):
        table.update({"d": 1})


def test_orders_are_kept_once_and_no_reader_changes_them() -> None:
    """The order's JSON fields are kept as their text: what the caller passed, and
    what a read gave back, may be changed without changing what is stored."""
    storage = MemoryStorage()
    clock = TestClock(dt.datetime(2026, 5, 1, 12, tzinfo=BERLIN))
    loyalty = Loyalty(Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                              point_value=Money("0.01", "EUR")), storage, clock=clock)
    loyalty.enrol("ana")
    attributes: dict[str, Any] = {"tags": ["a"]}
    loyalty.record_order(Order(id="o1", member_id="ana", placed_at=clock.now(),
                               currency="EUR", attributes=attributes,
                               lines=(OrderLine(sku="s", quantity=1,
                                                unit_price=Money(Decimal(10), "EUR")),)))
    attributes["tags"].append("b")
    with storage.unit_of_work("p") as uow:
        read = uow.orders.get_order("o1")
        assert read is not None and isinstance(read.order, dict)
        assert ["a"] == read.order["attributes"]["tags"]  # a list, as SQL gives it back
        read.order["attributes"]["tags"].append("c")
        read.evaluation["points"] = 99
    with storage.unit_of_work("p") as uow:
        again = uow.orders.get_order("o1")
        assert again is not None
        assert (["a"], 0) == (again.order["attributes"]["tags"], again.evaluation["points"])
    stored = next(iter(storage._tables.of(OrderTables).orders["p"].values()))
    assert isinstance(stored.packed, bytes)  # text, not a tree of dicts
    assert not any(isinstance(getattr(stored, name), dict) for name in stored.__slots__)


def _rate_program() -> tuple[MemoryStorage, Loyalty, TestClock]:
    """A memory store and a program earning one point per cent (rule ``rate``)."""
    storage = MemoryStorage()
    clock = TestClock(dt.datetime(2026, 5, 1, 12, tzinfo=BERLIN))
    loyalty = Loyalty(Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                              point_value=Money("0.01", "EUR"),
                              earning=EarningPolicy(rules=(RateRule(id="rate"),))),
                      storage, clock=clock)
    return storage, loyalty, clock


def test_earns_of_the_same_points_share_their_postings() -> None:
    """Two orders worth the same points post the same pair of amounts: the stored
    transactions keep one tuple of postings between them, not a copy each."""
    storage, loyalty, clock = _rate_program()
    for n, member_id in enumerate(("ana", "ben")):
        loyalty.enrol(member_id)
        loyalty.record_order(Order(id=f"o{n}", member_id=member_id, placed_at=clock.now(),
                                   currency="EUR",
                                   lines=(OrderLine(sku="s", quantity=1,
                                                    unit_price=Money(Decimal(17), "EUR")),)))
    first, second = storage._tables.of(LedgerTables).transactions.values()
    assert first.member_id != second.member_id
    assert first.postings == second.postings
    assert first.postings is second.postings


def test_an_index_keeps_a_list_while_small_and_a_rollback_restores_it() -> None:
    """A per-member index is a list (a set per member took a hash table each) until it
    holds more than SMALL_SET items, then a set; the undo log puts back exactly what
    was there, a removed item at its place."""
    storage = MemoryStorage()
    index: dict[str, Any] = {}
    with storage.unit_of_work("p") as uow:
        uow.track(index, "k", "closed", False)  # nothing open: no entry
        assert {} == index
        for item in "abc":
            uow.track(index, "k", item, True)
        uow.track(index, "k", "a", True)  # there already
        uow.commit()
    assert {"k": ["a", "b", "c"]} == index
    with storage.unit_of_work("p") as uow:
        uow.track(index, "k", "b", False)
        uow.track(index, "k", "d", True)
        assert ["a", "c", "d"] == index["k"]
    assert {"k": ["a", "b", "c"]} == index  # rolled back: b at its place again
    grown = [str(n) for n in range(SMALL_SET + 1)]
    with storage.unit_of_work("p") as uow:
        for item in grown:
            uow.track(index, "k", item, True)
        assert {"a", "b", "c", *grown} == index["k"]
        uow.track(index, "k", "a", False)
        assert isinstance(index["k"], set) and "a" not in index["k"]
    assert {"k": ["a", "b", "c"]} == index


def _ana_with_an_order() -> tuple[MemoryStorage, Loyalty, TestClock]:
    """A memory store with one member, ``ana``, and her order ``o1`` of 17 EUR."""
    storage, loyalty, clock = _rate_program()
    loyalty.enrol("ana")
    loyalty.record_order(Order(id="o1", member_id="ana", placed_at=clock.now(),
                               currency="EUR",
                               lines=(OrderLine(sku="s", quantity=1,
                                                unit_price=Money(Decimal(17), "EUR")),)))
    return storage, loyalty, clock


def test_fingerprints_and_results_are_kept_compact_and_read_back_as_text() -> None:
    """An order's and an enrolment's key records keep their fingerprint as the digest's
    32 bytes and their result deflated; a read gives both back as the text written."""
    storage, loyalty, clock = _ana_with_an_order()
    kept = storage._tables.of(OrderTables).orders["p"]["o1"]
    key = storage._tables.of(KeyTables).keys["p"]["enrol:ana"]
    assert isinstance(key.fingerprint, bytes) and 32 == len(key.fingerprint)
    assert isinstance(key.result, bytes)
    assert "ana" in repr(key) and "o1" in repr(kept)  # a stored row shows what it names
    with storage.unit_of_work("p") as uow:
        read, record = uow.orders.get_order("o1"), uow.keys.get_idempotency("enrol:ana")
    assert read is not None and record is not None and read.fingerprint is not None
    assert key.fingerprint.hex() == record.fingerprint
    # the order's digest is kept as its 32 bytes, its texts deflated, in one object
    assert bytes.fromhex(read.fingerprint) in kept.packed
    assert read.result is not None and read.result.encode() not in kept.packed
    assert isinstance(read.result, str) and '"v":2' in read.result
    assert '"member_id":"ana"' in record.result
    assert loyalty.record_order(Order(  # the replay reads them: the same result
        id="o1", member_id="ana", placed_at=clock.now(), currency="EUR",
        lines=(OrderLine(sku="s", quantity=1, unit_price=Money(Decimal(17), "EUR")),))
    ).points == 17


def test_transaction_texts_are_kept_in_one_bytes_object_and_read_as_given() -> None:
    """A transaction's key, reason and metadata are kept together as one bytes object;
    a read gives the metadata as a fresh dict."""
    storage, _, _ = _ana_with_an_order()
    kept, = storage._tables.of(LedgerTables).transactions.values()
    assert isinstance(kept.texts, bytes)
    assert not {"idempotency_key", "reason", "metadata"} & set(kept.__slots__)
    assert b"order:o1" in kept.texts and b'{"order_id":"o1"}' in kept.texts
    assert ("order:o1", "order o1") == (kept.idempotency_key, kept.reason)
    with storage.unit_of_work("p") as uow:
        read = uow.ledger.get_transaction(kept.id)
        assert read is not None and {"order_id": "o1"} == read.metadata
        assert type(read.metadata) is dict
        read.metadata["order_id"] = "changed"  # a fresh dict: the store keeps its own
        again = uow.ledger.get_transaction(kept.id)
        assert again is not None and {"order_id": "o1"} == again.metadata


def test_a_members_rows_share_one_key_tuple_across_tables() -> None:
    storage = MemoryStorage()
    clock = TestClock(dt.datetime(2026, 5, 1, 12, tzinfo=BERLIN))
    loyalty = Loyalty(Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                              point_value=Money("0.01", "EUR"),
                              earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                              tiers=TierPolicy(tiers=(Tier("base", 0), Tier("gold", 10)))),
                      storage, clock=clock)
    loyalty.enrol("ana")
    loyalty.record_order(Order(id="o1", member_id="ana", placed_at=clock.now(),
                               currency="EUR",
                               lines=(OrderLine(sku="s", quantity=1,
                                                unit_price=Money(Decimal(17), "EUR")),)))
    member_key, = (m for _, m in storage._tables.of(LedgerTables).members)
    found: dict[int, list[str]] = {}
    for kind, tables in storage._tables._by_kind.items():
        for name, table in vars(tables).items():
            if isinstance(table, dict):
                for key in table:
                    if key == ("p", member_key) or key == ("p", "points", member_key):
                        found.setdefault(id(key), []).append(f"{kind.__name__}.{name}")
    assert 2 == len(found), found  # one (program, member), one (program, wallet, member)
    assert 6 <= max(len(names) for names in found.values())


def test_an_event_is_kept_as_one_bytes_object_in_its_programs_list() -> None:
    storage = MemoryStorage()
    clock = TestClock(dt.datetime(2026, 5, 1, 12, tzinfo=BERLIN))
    loyalty = Loyalty(Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                              point_value=Money("0.01", "EUR")), storage, clock=clock)
    loyalty.enrol("ana", attributes={"language": "de"})
    tables = storage._tables.of(OutboxTables)
    kept, = tables.events["p"]
    assert type(kept).__mro__[1] is bytes
    seqs, = tables.by_member.values()
    assert isinstance(seqs, array) and [1] == list(seqs)
    with storage.unit_of_work("p") as uow:
        event, = uow.outbox.read(0, None, 10)
    assert (event.id, event.type, event.member_id) == (kept.id, kept.type, kept.member_id)
    assert (event.occurred_at, event.recorded_at) == (clock.now(), clock.now())
    assert dt.UTC == event.occurred_at.tzinfo == event.recorded_at.tzinfo
    assert b"member.enrolled" not in kept  # its type is a number (a handful of types)
    assert {"language": "de"} == event.payload["attributes"]
    assert "language" in repr(kept) and str(event.id) in repr(kept)


def test_an_event_keeps_its_type_inline_once_the_types_are_numbered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "_TYPES", ["t"] * outbox._NAMED)
    monkeypatch.setattr(outbox, "_TYPE_CODES", {})
    at = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    kept = outbox.KeptEvent.of(uuid.uuid4(), "shop.späť", 3, "ana", at, at,
                               JSONText.of({"n": 1}))
    assert "shop.späť".encode() in kept
    event = kept.read(7)
    assert ("shop.späť", 3, "ana", at, {"n": 1}) == (
        event.type, event.version, event.member_id, event.occurred_at, event.payload)
