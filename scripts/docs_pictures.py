"""Draw the pictures of the CDNOW walkthrough (docs/walkthrough.md) from the real data.

The repository's CDNOW sample (tests/data/cdnow/CDNOW_sample.txt: 6,919 purchases of
2,357 customers of an online music store, January 1997 to June 1998) is replayed day
by day into a program on MemoryStorage, and every picture of :mod:`loyaltykit.plots`
is drawn from it into ``docs/img/cdnow-*.png`` (generated, not committed)::

    python scripts/docs_pictures.py [OUT_DIR]

The sample has orders only, so the program around them is chosen here, as a shop
would run it (docs/walkthrough.md says the same):

- 1 point per dollar of each order (``RateRule``), a point worth one cent, lots
  expiring 12 months after they were earned;
- after each order, a member holding at least 100 points redeems them in hundreds (a
  one-dollar voucher per 100 points): members who come back redeem, one-time buyers'
  points expire, and that is the breakage the liability picture shows;
- tiers on the points earned over the last 12 whole months: member, silver from 100
  points, gold from 300, evaluated at every month start with no grace period.

Needs ``loyaltykit[plot,analytics]``. Run time: 11-12 s of CPU (most of it the
replay; about 30 s wall on a busy 2-core CI machine). :func:`generate` is what the docs
build calls; as an MkDocs hook (``hooks: [scripts/docs_pictures.py]`` in mkdocs.yml),
:func:`on_pre_build` draws them into the docs' ``img/`` before the site's files are
collected, unless they are newer than the data, this script and loyaltykit.plots.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from loyaltykit import (
    EarningPolicy,
    ExpiryPolicy,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Period,
    Program,
    QualificationWindow,
    RateRule,
    TestClock,
    Tier,
    TierPolicy,
    WindowKind,
)
from loyaltykit.memory import MemoryStorage

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"
OUT = REPO / "docs" / "img"
NEW_YORK = ZoneInfo("America/New_York")
#: The replay's clock ends here: the day after the sample's last purchase month.
END = dt.datetime(1998, 7, 1, tzinfo=NEW_YORK)
#: Where the walkthrough's CLV calibration ends (the published 39 weeks).
CALIBRATION_END = dt.datetime(1997, 10, 1, tzinfo=NEW_YORK)
#: Points redeemed at once (one dollar's voucher).
VOUCHER = 100
#: The pictures, in the page's order (docs/walkthrough.md).
NAMES = ("cdnow-retention.png", "cdnow-rfm.png", "cdnow-clv.png", "cdnow-liability.png",
         "cdnow-tiers.png")

PROGRAM = Program(
    id="cdnow", time_zone="America/New_York", currency="USD",
    point_value=Money("0.01", "USD"),
    earning=EarningPolicy(rules=(RateRule(id="dollar", points=Decimal(1), per=Decimal(1)),)),
    ledger=LedgerPolicy(expiry=ExpiryPolicy(months=12)),
    tiers=TierPolicy(
        tiers=(Tier("member", 0), Tier("silver", 100), Tier("gold", 300)),
        window=QualificationWindow(WindowKind.ROLLING_MONTHS, months=12),
        grace_periods=0,
    ),
)


def replay(data: Path = DATA) -> Loyalty:
    """The CDNOW sample as a program's history: each line one order at noon New York
    time, replayed in time order, with due work (expiries, tier evaluations) at every
    month start and the redemptions described in the module's doc."""
    by_day: dict[dt.date, list[tuple[str, str]]] = defaultdict(list)
    for line in data.read_text().splitlines():
        _, member, date, _, dollars = line.split()
        by_day[dt.datetime.strptime(date, "%Y%m%d").date()].append((member, dollars))
    clock = TestClock(dt.datetime(1997, 1, 1, tzinfo=NEW_YORK))
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=clock)
    members: set[str] = set()
    month = None
    n = 0
    for day in sorted(by_day):
        if (day.year, day.month) != month:
            month = (day.year, day.month)
            clock.set(dt.datetime(day.year, day.month, 1, tzinfo=NEW_YORK))
            loyalty.run_due()
        placed = dt.datetime(day.year, day.month, day.day, 12, tzinfo=NEW_YORK)
        clock.set(placed)
        for member, dollars in by_day[day]:
            n += 1
            if member not in members:
                loyalty.enrol(member)
                members.add(member)
            loyalty.record_order(Order(str(n), member, placed, "USD",
                                       (OrderLine("cds", 1, Money(dollars, "USD")),)))
            # the order's write posted the member's due expiries: what is left is real
            available = loyalty.balance(member).available
            if available >= VOUCHER:
                loyalty.spend(member, available // VOUCHER * VOUCHER, key=f"voucher-{n}")
    clock.set(END)
    loyalty.run_due()
    return loyalty


def generate(out_dir: Path, cdnow: Loyalty | None = None) -> list[Path]:
    """Replay the sample (unless ``cdnow`` is its :func:`replay` already) and draw
    every picture of the walkthrough into ``out_dir`` (created if missing) as
    ``cdnow-*.png``; the paths written, in the page's order (:data:`NAMES`)."""
    from loyaltykit.analytics import clv, fit_bgnbd, fit_gamma_gamma, summary_from
    from loyaltykit.plots import (
        clv_distribution,
        cohort_retention,
        draw,
        liability_over_time,
        rfm_segments,
        tiers_over_time,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    if cdnow is None:
        cdnow = replay()
    first = dt.datetime(1997, 1, 1, tzinfo=NEW_YORK)
    calibration = summary_from(cdnow, end=CALIBRATION_END)
    values = clv(calibration, fit_bgnbd(calibration), fit_gamma_gamma(calibration),
                 horizon=39)
    pictures: list[tuple[Any, str]] = [
        (cohort_retention(cdnow, Period.MONTH, first, END),
         "CDNOW: retention by cohort (first purchase month, 1997-98)"),
        (rfm_segments(cdnow, as_of=END), "CDNOW: RFM segments on 1 July 1998"),
        (clv_distribution(values, bins=40),
         "CDNOW: value expected over the 39 weeks after September 1997"),
        (liability_over_time(cdnow, Period.MONTH, first, END),
         "CDNOW: points liability and breakage, month by month"),
        (tiers_over_time(cdnow, Period.MONTH, first, END),
         "CDNOW: members per tier at each month's end"),
    ]
    return [draw(figures, out_dir / name, title=title, size=(9.0, 5.5))
            for name, (figures, title) in zip(NAMES, pictures, strict=True)]


def _fresh(out_dir: Path) -> bool:
    """True when every picture is newer than everything it is drawn from."""
    sources = [DATA, Path(__file__), *(REPO / "src" / "loyaltykit" / "plots").glob("*.py")]
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    pictures = [out_dir / name for name in NAMES]
    return all(p.exists() and p.stat().st_mtime > newest for p in pictures)


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """The MkDocs hook: draw the pictures into ``<docs_dir>/img`` unless they are
    fresh (so ``mkdocs serve`` does not redraw them on every change)."""
    out_dir = Path(config["docs_dir"]) / "img"
    if not _fresh(out_dir):
        generate(out_dir)


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the pictures into OUT_DIR (default docs/img)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for path in generate(args.out_dir):
        print(path)
    print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
