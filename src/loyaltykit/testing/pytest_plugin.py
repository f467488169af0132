"""The pytest plugin for shops' test suites: loyaltykit fixtures with no conftest.

pytest loads it on its own once loyaltykit is installed (the ``pytest11`` entry point
``loyaltykit``); ``-p no:loyaltykit`` turns it off. Every fixture is function-scoped
and named ``loyalty_...`` (or ``loyalty``), so it does not collide with a shop's own:

``loyalty_program``
    The :class:`~loyaltykit.Program` the facades run: by default
    :func:`default_program` (id ``"shop"``, time zone ``UTC``, EUR, a point worth
    EUR 0.01, points never expire). Override it in the shop's ``conftest.py`` or test
    module to test the shop's own program.
``loyalty_clock``
    A :class:`~loyaltykit.TestClock` at :data:`LOYALTY_CLOCK_START`
    (2026-01-15 12:00 UTC) counting ``advance(months=...)`` in the program's time
    zone; every facade of the plugin reads it.
``loyalty``
    A :class:`~loyaltykit.Loyalty` on a new in-memory storage.
``loyalty_sqlite``
    A :class:`~loyaltykit.Loyalty` on :class:`~loyaltykit.sql.SQLStorage` over a new
    SQLite file, migrated to the newest schema (a copy of one migrated once per
    session); its engine is disposed after the test.
``loyalty_time_travel``
    A function ``travel(months=0, days=0, hours=0, minutes=0, seconds=0)`` that
    advances ``loyalty_clock`` (as :meth:`TestClock.advance
    <loyaltykit.TestClock.advance>`) and then runs the due work (expiries, pending
    activations, stale holds, tier evaluations) of every facade the plugin built for
    the test, so balances read afterwards are current; it returns the new instant.

After a test's own flows, :func:`loyaltykit.testing.assert_invariants` checks the
ledger. See ``docs/testing.md``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from loyaltykit import Loyalty, Program, TestClock

__all__ = ["LOYALTY_CLOCK_START", "default_program"]

#: Where ``loyalty_clock`` starts: 2026-01-15 12:00 UTC (mid-month, mid-day, so a
#: month's clamping and a day's edge in the program's time zone are a step away).
LOYALTY_CLOCK_START = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)


def default_program() -> Program:
    """The program ``loyalty_program`` gives unless a shop overrides it: id
    ``"shop"``, time zone ``UTC``, currency EUR, a point worth EUR 0.01, one wallet
    ``"points"``, points that never expire, no tiers, referrals or rewards."""
    from loyaltykit import Money, Program

    return Program(id="shop", time_zone="UTC", currency="EUR",
                   point_value=Money("0.01", "EUR"))


@pytest.fixture
def loyalty_program() -> Program:
    """The program the ``loyalty`` fixtures run (override it to test your own);
    by default :func:`default_program`."""
    return default_program()


@pytest.fixture
def loyalty_clock(loyalty_program: Program) -> TestClock:
    """A test clock at :data:`LOYALTY_CLOCK_START` (2026-01-15 12:00 UTC) that
    counts ``advance(months=...)`` in ``loyalty_program``'s time zone."""
    from loyaltykit import TestClock

    return TestClock(LOYALTY_CLOCK_START, time_zone=loyalty_program.time_zone)


@pytest.fixture
def _loyalty_built() -> list[Loyalty]:
    """The facades the plugin built for the current test (``loyalty_time_travel``
    runs their due work)."""
    return []


@pytest.fixture
def loyalty(loyalty_program: Program, loyalty_clock: TestClock,
            _loyalty_built: list[Loyalty]) -> Loyalty:
    """A facade of ``loyalty_program`` on a new in-memory storage, on
    ``loyalty_clock``."""
    from loyaltykit import Loyalty
    from loyaltykit.memory import MemoryStorage

    facade = Loyalty(loyalty_program, MemoryStorage(), clock=loyalty_clock)
    _loyalty_built.append(facade)
    return facade


@pytest.fixture(scope="session")
def _loyalty_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest schema, once per session (running the
    migrations takes far longer than copying a file)."""
    from loyaltykit.sql import SQLStorage

    path = tmp_path_factory.mktemp("loyalty_sqlite_template") / "loyalty.sqlite"
    storage = SQLStorage.from_url(f"sqlite:///{path}")
    try:
        storage.upgrade()
    finally:
        storage.dispose()  # the last connection closed: the WAL is folded into the file
    return path


@pytest.fixture
def loyalty_sqlite(loyalty_program: Program, loyalty_clock: TestClock,
                   _loyalty_built: list[Loyalty], _loyalty_sqlite_template: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loyalty]:
    """A facade of ``loyalty_program`` on a new, migrated SQLite database (a file of
    its own), on ``loyalty_clock``; the engine is disposed after the test."""
    from loyaltykit import Loyalty
    from loyaltykit.sql import SQLStorage

    path = tmp_path_factory.mktemp("loyalty_sqlite") / "loyalty.sqlite"
    shutil.copyfile(_loyalty_sqlite_template, path)
    storage = SQLStorage.from_url(f"sqlite:///{path}")
    try:
        facade = Loyalty(loyalty_program, storage, clock=loyalty_clock)
        _loyalty_built.append(facade)
        yield facade
    finally:
        storage.dispose()


#: What ``loyalty_time_travel`` gives: advance the clock, run due work, return now.
TimeTravel = Callable[..., dt.datetime]


@pytest.fixture
def loyalty_time_travel(loyalty_clock: TestClock,
                        _loyalty_built: list[Loyalty]) -> TimeTravel:
    """A function ``travel(*, months=0, days=0, hours=0, minutes=0, seconds=0)``:
    advance ``loyalty_clock`` (months first, on the program's calendar; see
    :meth:`TestClock.advance <loyaltykit.TestClock.advance>`), then run the due work
    of every facade the plugin built for this test (``loyalty``, ``loyalty_sqlite``)
    up to the new instant, and return it. A facade the test built itself on
    ``loyalty_clock`` needs its own ``run_due()`` call."""

    def travel(*, months: int = 0, days: float = 0, hours: float = 0, minutes: float = 0,
               seconds: float = 0) -> dt.datetime:
        now = loyalty_clock.advance(months=months, days=days, hours=hours,
                                    minutes=minutes, seconds=seconds)
        for facade in _loyalty_built:
            facade.run_due(now)
        return now

    return travel
