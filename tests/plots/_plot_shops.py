"""Small known shops for the pictures' tests: each builds one scenario through the facade
on a given storage, so the figures behind a picture can be computed by hand (the
numbers are in each test) and compared on every backend."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loyaltykit import (
    ExpiryPolicy,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
)

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def berlin(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=BERLIN)


class Shop:
    """A facade on a TestClock, and a helper to record one-line orders."""

    def __init__(self, program: Program, storage: Storage, now: dt.datetime) -> None:
        self.clock = TestClock(now)
        self.loyalty = Loyalty(program, storage, clock=self.clock)
        self._ids = itertools.count(1)
        self._members: set[str] = set()

    def member(self, member_id: str) -> None:
        if member_id not in self._members:
            self.loyalty.enrol(member_id)
            self._members.add(member_id)

    def order(self, member_id: str, placed_at: dt.datetime, amount: str = "20.00") -> str:
        self.member(member_id)
        order_id = f"o{next(self._ids)}"
        self.loyalty.record_order(Order(
            id=order_id, member_id=member_id, currency="EUR", placed_at=placed_at,
            lines=(OrderLine(line_id="l", sku="tea", quantity=1,
                             unit_price=Money(amount, "EUR")),)))
        return order_id


def plain_program(program_id: str = "plots") -> Program:
    return Program(id=program_id, time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"))


def cohort_shop(storage: Storage) -> Shop:
    """Orders of January to April 2026 (Berlin), now 1 May 2026.

    - ann 10 Jan, 20 Jan, 5 Mar; ben 15 Jan, 1 Feb; hal 5 Jan    -> January cohort of 3
    - cy 10 Feb, 10 Mar, 2 Apr                                   -> February cohort of 1
    - dee 20 Dec 2025 and 5 Feb: first order before the range    -> no cohort
    - fay 20 Feb (cancelled, does not count), 15 Mar             -> March cohort of 1
    - gus 25 Jan, returned in full (does not count)              -> no cohort
    - eve 31 Mar 22:30 UTC = 1 Apr 00:30 in Berlin               -> April cohort of 1
    """
    shop = Shop(plain_program("cohorts"), storage, berlin(2026, 5, 1, 0))
    for member, day in [("ann", (1, 10)), ("ann", (1, 20)), ("ann", (3, 5)),
                        ("ben", (1, 15)), ("ben", (2, 1)), ("hal", (1, 5)),
                        ("cy", (2, 10)), ("cy", (3, 10)), ("cy", (4, 2)),
                        ("dee", (2, 5)), ("fay", (3, 15))]:
        shop.order(member, berlin(2026, *day))
    shop.order("dee", berlin(2025, 12, 20))
    cancelled = shop.order("fay", berlin(2026, 2, 20))
    shop.loyalty.cancel_order(cancelled, at=berlin(2026, 2, 21))
    returned = shop.order("gus", berlin(2026, 1, 25))
    shop.loyalty.record_return(returned, {"l": 1}, key="return-gus", at=berlin(2026, 1, 27))
    shop.order("eve", dt.datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    return shop


def rfm_shop(storage: Storage) -> Shop:
    """Scenario A4 of docs/reports.md, as of 1 July 2026 00:00 in Berlin: scores
    a (5, 5, 5), b (3, 2, 2), c (2, 4, 4), d (1, 1, 1), e (4, 3, 3)."""
    shop = Shop(plain_program("rfm"), storage, berlin(2026, 7, 1, 0))
    a4 = {"a": (dt.date(2026, 6, 28), 12, "1250.00"), "e": (dt.date(2026, 6, 20), 5, "410.00"),
          "b": (dt.date(2026, 6, 1), 3, "90.00"), "c": (dt.date(2026, 3, 15), 8, "640.00"),
          "d": (dt.date(2025, 12, 24), 1, "35.00")}
    for member, (last, n, spend) in a4.items():
        for i in range(n - 1):
            day = last - dt.timedelta(days=n - 1 - i)
            shop.order(member, berlin(day.year, day.month, day.day), "10.00")
        total = int(spend.split(".")[0]) - 10 * (n - 1)
        shop.order(member, berlin(last.year, last.month, last.day), f"{total}.00")
    return shop


def liability_shop(storage: Storage) -> Shop:
    """Points worth 0.01 EUR expiring 2 months after they are earned; now 20 April 2026.

    - 10 Jan: ann earns 1,000 (expires 10 Mar); 5 Feb: ben earns 3,000 (expires 5 Apr)
    - 20 Feb: ann spends 400; 20 Mar: ben spends 1,000
    - 12 Mar: due work expires ann's 600; 6 Apr: ben's 2,000
    - 15 Apr: cy earns 2,000
    """
    program = Program(id="liability", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      ledger=LedgerPolicy(expiry=ExpiryPolicy(months=2)))
    shop = Shop(program, storage, berlin(2026, 1, 10))
    loyalty, clock = shop.loyalty, shop.clock
    for member in ("ann", "ben", "cy"):
        shop.member(member)
    loyalty.earn("ann", 1_000, key="ann-earn")
    clock.set(berlin(2026, 2, 5))
    loyalty.earn("ben", 3_000, key="ben-earn")
    clock.set(berlin(2026, 2, 20))
    loyalty.spend("ann", 400, key="ann-spend")
    clock.set(berlin(2026, 3, 12))
    loyalty.run_due()
    clock.set(berlin(2026, 3, 20))
    loyalty.spend("ben", 1_000, key="ben-spend")
    clock.set(berlin(2026, 4, 6))
    loyalty.run_due()
    clock.set(berlin(2026, 4, 15))
    loyalty.earn("cy", 2_000, key="cy-earn")
    clock.set(berlin(2026, 4, 20))
    return shop


def tier_shop(storage: Storage) -> Shop:
    """Tiers member (0), silver (500 points), gold (2,000); now 20 March 2026.

    - 10 Jan: ann and bob enrol; ann earns 800 (silver)
    - 5 Feb: cy enrols; bob earns 600 (silver); ann earns 1,500 (2,300: gold)
    - 3 Mar: dee enrols
    """
    program = Program(id="tiers", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 500),
                                              Tier("gold", 2_000))))
    shop = Shop(program, storage, berlin(2026, 1, 10))
    loyalty, clock = shop.loyalty, shop.clock
    shop.member("ann")
    shop.member("bob")
    loyalty.earn("ann", 800, key="ann-1")
    clock.set(berlin(2026, 2, 5))
    shop.member("cy")
    loyalty.earn("bob", 600, key="bob-1")
    loyalty.earn("ann", 1_500, key="ann-2")
    clock.set(berlin(2026, 3, 3))
    shop.member("dee")
    clock.set(berlin(2026, 3, 20))
    return shop


#: The backends the data functions are checked on (PostgreSQL: the session's server,
#: ``slow`` like every backend-parametrised run there, see conftest.BACKEND_PARAMS).
BACKENDS = [pytest.param(name, marks=pytest.mark.slow) if name == "postgresql" else name
            for name in ("memory", "sqlite", "postgresql")]


@contextlib.contextmanager
def storage_on(backend: str, directory: Path) -> Iterator[Storage]:
    """A fresh, empty storage of ``backend``, disposed of afterwards."""
    from conftest import make_storage_factory

    factory, cleanups = make_storage_factory(backend, directory)
    try:
        yield factory()
    finally:
        for cleanup in cleanups:
            cleanup()
