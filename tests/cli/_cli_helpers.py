"""The command line's tests: run ``loyaltykit`` as a user does (a subprocess of
``python -m loyaltykit``, or the installed script), and a shop seeded through the
library in the past, so the command line's clock (now) finds work due."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from loyaltykit import (
    EarningPolicy,
    EventPolicy,
    ExpiryPolicy,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit.storage import Storage

BERLIN = ZoneInfo("Europe/Berlin")
#: The installed console script (``[project.scripts]``) next to the interpreter.
SCRIPT = Path(sys.executable).with_name("loyaltykit")


def run(*args: str, url: str | None = None, env: dict[str, str] | None = None,
        script: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``loyaltykit ARGS`` (``--url URL`` first if given) in a subprocess, with no
    LOYALTYKIT_* variable of the caller's environment, plus ``env``."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "loyaltykit"]
    if url is not None:
        command += ["--url", url]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}
    environment.update(env or {})
    return subprocess.run([*command, *args], capture_output=True, text=True,
                          timeout=timeout, env=environment, check=False)


def shop_program(program_id: str = "cli-shop") -> Program:
    """A program with something of everything the commands show: a rate rule, expiry
    after 2 months, tiers, and an outbox that keeps events."""
    return Program(
        id=program_id, time_zone="Europe/Berlin", currency="EUR",
        point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(months=2)),
        earning=EarningPolicy(rules=(RateRule(id="base", points=Decimal(1),
                                              per=Decimal("1.00")),)),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("gold", 300))),
        events=EventPolicy(points_expiring_days=7),
    )


def seed(storage: Storage, program: Program | None = None, members: int = 24) -> Loyalty:
    """Enrol ``members`` members in 2025 and record their orders through the year
    (a known, deterministic pattern: member i orders every (i % 5 + 1) months for
    10 + 7 i euros); points of each order expire two months later, so due work
    finds lots to expire at any later instant. Return the facade (a test clock at
    2025-12-20)."""
    clock = TestClock(dt.datetime(2025, 1, 2, 9, tzinfo=BERLIN))
    loyalty = Loyalty(program or shop_program(), storage, clock=clock)
    ids = [f"m{i:02d}" for i in range(members)]
    for m in ids:
        loyalty.enrol(m)
    orders: list[tuple[dt.datetime, str, int]] = []
    for i, m in enumerate(ids):
        for month in range(1, 13, i % 5 + 1):
            orders.append((dt.datetime(2025, month, 1 + i % 27, 12, tzinfo=BERLIN), m,
                           10 + 7 * i))
    for n, (placed_at, member, euros) in enumerate(sorted(orders)):
        clock.set(placed_at)
        loyalty.record_order(Order(
            id=f"o{n}", member_id=member, placed_at=placed_at, currency="EUR",
            lines=(OrderLine(sku="tea", quantity=1, unit_price=Money(euros, "EUR")),)))
    clock.set(dt.datetime(2025, 12, 20, 9, tzinfo=BERLIN))
    return loyalty
