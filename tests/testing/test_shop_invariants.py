"""``loyaltykit.testing.assert_invariants``: passes after normal flows, fails with a
readable message on a ledger broken behind the library's back (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from loyaltykit import (
    ExpiryPolicy,
    InvalidInput,
    LedgerPolicy,
    Loyalty,
    Money,
    NaiveDatetime,
    Program,
    TestClock,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage
from loyaltykit.testing import assert_invariants
from loyaltykit.testing.assertions import all_member_ids

START = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
PROGRAM = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                  point_value=Money("0.01", "EUR"),
                  ledger=LedgerPolicy(expiry=ExpiryPolicy(months=12)))


def flows(loyalty: Loyalty, clock: TestClock) -> None:
    """Everyday flows: earn, a checkout hold captured, a spend reversed, an erasure,
    expiry by due work."""
    for member in ("alice", "bob", "carol"):
        loyalty.enrol(member)
        loyalty.earn(member, 300, key=f"welcome-{member}")
    hold = loyalty.hold("alice", 120, key="checkout-1", ttl=dt.timedelta(minutes=15))
    loyalty.capture(hold.hold_id, key="capture-1")
    spent = loyalty.spend("bob", 50, key="order-2")
    loyalty.reverse(spent.transaction_id, key="return-2")
    loyalty.privacy.erase("carol")
    clock.advance(months=6)
    loyalty.earn("bob", 10, key="late-bob")
    clock.advance(months=7)
    loyalty.run_due()


@pytest.fixture
def clock() -> TestClock:
    return TestClock(START, time_zone=PROGRAM.time_zone)


@pytest.fixture
def on_sql(engine, clock) -> Loyalty:
    return Loyalty(PROGRAM, SQLStorage(engine), clock=clock)


def test_passes_after_normal_flows_in_memory(clock):
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=clock)
    flows(loyalty, clock)
    ids = all_member_ids(loyalty)
    assert ["alice", "bob"] == ids[:2]
    assert 3 == len(ids) and ids[2].startswith("erased:")
    assert_invariants(loyalty)
    assert_invariants(loyalty, ["alice"], at=clock.now())


def test_passes_after_normal_flows_on_sql(on_sql, clock):
    flows(on_sql, clock)
    assert 0 == on_sql.balance("alice").available  # expired after 12 months
    assert_invariants(on_sql)
    assert_invariants(on_sql, at=clock.now())


def test_lists_members_page_by_page(clock, monkeypatch):
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=clock)
    for n in range(5):
        loyalty.enrol(f"m{n}")
    monkeypatch.setattr("loyaltykit.testing.assertions._PAGE", 2)
    assert [f"m{n}" for n in range(5)] == all_member_ids(loyalty)


@pytest.mark.parametrize(("tamper", "expected"), [
    ("UPDATE lk_accounts SET available = available + 5",
     "invariant (b) running totals equal the sum of postings: member 'alice' wallet "
     "'points' stores available=235 but its postings sum to 230"),
    ("UPDATE lk_lots SET remaining = remaining - 1 WHERE remaining > 0",
     "invariant (d) lots stay within"),
    ("DELETE FROM lk_postings WHERE transaction_id IN "
     "(SELECT id FROM lk_transactions WHERE kind = 'spend')",
     "invariant (h) program-wide postings sum to zero"),
])
def test_fails_on_a_ledger_changed_behind_the_librarys_back(on_sql, engine, tamper,
                                                           expected):
    on_sql.enrol("alice")
    on_sql.earn("alice", 300, key="welcome")
    on_sql.spend("alice", 70, key="order-1")
    assert_invariants(on_sql)
    with engine.begin() as conn:
        conn.execute(sa.text(tamper))
    with pytest.raises(AssertionError, match="ledger invariant violation") as caught:
        assert_invariants(on_sql)
    assert "in program 'shop':\n" in str(caught.value)
    assert expected in str(caught.value)


def test_fails_on_a_posting_removed_behind_the_librarys_back(on_sql, engine):
    # one leg of the spend gone: the library cannot even read the transaction back
    on_sql.enrol("alice")
    on_sql.earn("alice", 300, key="welcome")
    on_sql.spend("alice", 70, key="order-1")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lk_postings WHERE account = 'redeemed'"))
    with pytest.raises(AssertionError, match=r"the ledger of program 'shop' cannot be read "
                                             r"back: postings of spend do not sum to zero"):
        assert_invariants(on_sql)


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((None,), {}, InvalidInput, "loyalty must be a Loyalty"),
    ((MemoryStorage(),), {}, InvalidInput, "loyalty must be a Loyalty"),
    ((), {"member_ids": "alice"}, InvalidInput, "member_ids must be an iterable"),
    ((), {"member_ids": 3}, InvalidInput, "member_ids must be an iterable"),
    ((), {"member_ids": ["alice", ""]}, InvalidInput, "non-empty strs"),
    ((), {"member_ids": [1]}, InvalidInput, "non-empty strs"),
    ((), {"at": dt.datetime(2026, 1, 1)}, NaiveDatetime, "at"),
    ((), {"at": "2026-01-01"}, NaiveDatetime, "at"),
])
def test_bad_arguments_are_typed_errors(clock, args, kwargs, error, match):
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=clock)
    with pytest.raises(error, match=match):
        assert_invariants(*(args or (loyalty,)), **kwargs)
