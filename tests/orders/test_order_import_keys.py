"""The member-key layer on a history import into SQL: the stores look each row's
member key up as they build their rows (``write_keyed``), so the layer copies no row
of the ledger, the orders or the outbox to swap its member for its key (it copied
every one: some 40,000 copies per batch of 5000 orders); the tier store reads each
state's member from its key, so the layer copies no tier state either. The rows keep the keys, not
the shop's ids, as before; that the results equal recording one by one is in the
shipped contract (OrderImportContract)."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.orders.test_order_import_sql import T0, _orders, _program

from loyaltykit import Loyalty, TestClock
from loyaltykit._member_keys import names as names_module
from loyaltykit._member_keys import stores as stores_module
from loyaltykit.sql import SQLStorage, create_engine


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """The rows the member-key layer copies while writing, by type (its reads copy
    what a non-fresh read returns: not counted)."""
    seen: collections.Counter[str] = collections.Counter()
    writing = [0]
    for module in (names_module, stores_module):
        original = module.copy_with

        def counting(row: Any, changes: Any, original: Any = original) -> Any:
            if writing[0]:
                seen[type(row).__name__] += 1
            return original(row, changes)

        monkeypatch.setattr(module, "copy_with", counting)
    for store in (stores_module.KeyedLedgerStore, stores_module.KeyedOrderStore,
                  stores_module.KeyedOutboxStore, stores_module.KeyedTierStore):
        write = store.write

        def counted(self: Any, changes: Any, write: Any = write) -> None:
            writing[0] += 1
            try:
                write(self, changes)
            finally:
                writing[0] -= 1

        monkeypatch.setattr(store, "write", counted)
    yield seen


def test_an_sql_import_copies_no_ledger_order_event_or_tier_row(
        tmp_path: Path, copies: collections.Counter[str]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keys.sqlite")
    try:
        storage = SQLStorage(engine)
        storage.create_schema()
        loyalty = Loyalty(_program(), storage, clock=TestClock(T0.replace(year=2027)))
        loyalty.record_orders(_orders(0, 10, 10), enrol=True)  # 10 members known
        copies.clear()
        # 20 members (10 known, 10 enrolled now), two orders each
        result = loyalty.record_orders(_orders(10, 40, 20), enrol=True)
        assert (result.recorded, result.enrolled) == (40, 10)
        # only the history lines are copied: one per tier change, not one per order
        assert set(copies) <= {"TierChange"}
        with engine.connect() as conn:
            keys = dict(conn.execute(sa.text(
                "SELECT external_id, member_id FROM lk_member_ids")).all())
            assert len(keys) == 20
            for table in ("lk_members", "lk_accounts", "lk_transactions", "lk_postings",
                          "lk_lots", "lk_lot_movements", "lk_orders", "lk_outbox",
                          "lk_tier_states", "lk_tier_buckets"):
                stored = set(conn.scalars(sa.text(f"SELECT member_id FROM {table}")))
                assert stored == set(keys.values()), table  # keys, never a shop id
            docs = conn.execute(sa.text('SELECT member_id, "order" FROM lk_orders')).all()
            # the document names its member as its row does (when it names one)
            assert all(json.loads(doc).get("member_id", key) == key for key, doc in docs)
    finally:
        engine.dispose()
