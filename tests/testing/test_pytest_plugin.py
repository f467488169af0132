"""The pytest plugin, as a shop's suite meets it: a real pytest run in a subprocess on
a shop test file that uses only the plugin's fixtures (loaded through the installed
``pytest11`` entry point, no conftest), on memory and SQLite."""

from __future__ import annotations

import pytest
from tests.package.test_docs import REPO_ROOT, parse_blocks

pytest_plugins = ["pytester"]

SHOP_TESTS = '''
import datetime as dt

import pytest

from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage
from loyaltykit.testing import assert_invariants


@pytest.fixture(params=["loyalty", "loyalty_sqlite"])
def shop(request):
    return request.getfixturevalue(request.param)


def test_the_defaults(loyalty_program, loyalty_clock, loyalty, loyalty_sqlite):
    assert dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc) == loyalty_clock.now()
    assert ("shop", "UTC", "EUR") == (loyalty_program.id, loyalty_program.time_zone,
                                      loyalty_program.currency)
    assert "UTC" == loyalty_clock.time_zone
    assert isinstance(loyalty.storage, MemoryStorage)
    assert isinstance(loyalty_sqlite.storage, SQLStorage)
    for facade in (loyalty, loyalty_sqlite):
        assert loyalty_program is facade.program
        assert loyalty_clock is facade.clock


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_an_empty_ledger(shop, run):
    # on a storage shared between tests the second run would find alice
    assert () == shop.reports.members().members
    shop.enrol("alice")
    shop.earn("alice", 10, key=f"order-{run}")
    assert 10 == shop.balance("alice").available


def test_a_checkout_keeps_the_ledger_sound(shop):
    shop.enrol("alice")
    shop.earn("alice", 500, key="order-1")
    hold = shop.hold("alice", 200, key="checkout-2", ttl=dt.timedelta(minutes=15))
    shop.capture(hold.hold_id, key="capture-2")
    shop.spend("alice", 50, key="order-3")
    assert 250 == shop.balance("alice").available
    assert_invariants(shop)
'''

SHOP_TIME_TRAVEL = '''
import datetime as dt

import pytest

from loyaltykit import ExpiryPolicy, LedgerPolicy, Money, Program
from loyaltykit.testing import assert_invariants


@pytest.fixture
def loyalty_program():  # the shop's own program: points expire after 12 months
    return Program(id="cafe", time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"),
                   ledger=LedgerPolicy(expiry=ExpiryPolicy(months=12)))


@pytest.fixture(params=["loyalty", "loyalty_sqlite"])
def shop(request):
    return request.getfixturevalue(request.param)


def test_the_clock_counts_months_in_the_programs_time_zone(loyalty_clock):
    assert "Europe/Berlin" == loyalty_clock.time_zone


def test_points_expire_after_twelve_months(shop, loyalty_clock, loyalty_time_travel):
    shop.enrol("alice")
    shop.earn("alice", 100, key="order-1")
    # the clock alone: balance() shows the ledger as last written
    loyalty_clock.advance(months=12)
    assert 100 == shop.balance("alice").available
    # travel runs the due work: the points expired exactly 12 months after the earn
    now = loyalty_time_travel(seconds=1)
    assert dt.datetime(2027, 1, 15, 12, 0, 1, tzinfo=dt.timezone.utc) == now
    balance = shop.balance("alice")
    assert (0, 100) == (balance.available, balance.expired)
    assert_invariants(shop)


def test_travel_runs_the_due_work_of_both_facades(loyalty, loyalty_sqlite,
                                                  loyalty_time_travel):
    for facade in (loyalty, loyalty_sqlite):
        facade.enrol("bob")
        facade.earn("bob", 40, key="order-1")
    loyalty_time_travel(months=13)
    assert 0 == loyalty.balance("bob").available
    assert 0 == loyalty_sqlite.balance("bob").available
'''


BROKEN_FLOW = '''
import sqlalchemy as sa

from loyaltykit.testing import assert_invariants


def test_flow(loyalty_sqlite):
    # a shop's flow that corrupts the ledger (a running total changed behind the
    # library's back): assert_invariants fails the test and names the invariant
    loyalty_sqlite.enrol("alice")
    loyalty_sqlite.earn("alice", 100, key="order-1")
    assert_invariants(loyalty_sqlite)
    with loyalty_sqlite.storage.unit_of_work("shop") as uow:
        uow.connection().execute(sa.text("UPDATE lk_accounts SET available = 90"))
        uow.commit()
    assert_invariants(loyalty_sqlite)
'''


def docs_shop_file() -> str:
    """The first python block of docs/testing.md: a shop's test file."""
    page = (REPO_ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    first = next(b for b in parse_blocks(page) if b.runnable)
    assert "def test_points_expire_after_a_year" in first.source
    return first.source


def test_a_shops_suite_gets_the_fixtures_with_no_conftest(pytester: pytest.Pytester):
    # one subprocess for all the shop's files (starting one costs seconds)
    pytester.makepyfile(test_shop=SHOP_TESTS, test_shop_time=SHOP_TIME_TRAVEL,
                        test_cafe=docs_shop_file(), test_broken=BROKEN_FLOW)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*plugins:*loyaltykit*"])
    # 7 + 4 + 4 (the docs page's file) pass; the corrupted ledger fails its test
    result.assert_outcomes(passed=15, failed=1)
    result.stdout.fnmatch_lines([
        "*test_broken.py::test_flow FAILED*",
        "*AssertionError: * ledger invariant violation(s) in program 'shop':*",
        "*invariant (b) running totals equal the sum of postings: member 'alice' "
        "wallet 'points' stores available=90 but its postings sum to 100*",
    ], consecutive=False)
    assert "test_cafe.py::test_points_expire_after_a_year[loyalty_sqlite] PASSED" \
        in result.stdout.str()


def test_the_fixtures_come_from_the_plugin(pytester: pytest.Pytester):
    # without the plugin the same file finds no fixture: nothing else provides them
    pytester.makepyfile(test_shop=SHOP_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:loyaltykit")
    result.assert_outcomes(errors=7)
    result.stdout.fnmatch_lines(["*fixture 'loyalty*' not found*"])
