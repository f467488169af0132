#!/usr/bin/env python
"""Benchmark the earning rules: pure evaluation speed, and recording an order end to end
against the ledger's plain earn.

Run as a plain script::

    python benchmarks/rules.py [--backend memory|sqlite|postgresql ...] [--quick]

The program has 10 rules (a base rate, five multipliers by category, SKU, tier and
channel, a capped weekend bonus, a big-basket bonus, a happy-hour bonus and a coffee
stamp card); every order has 5 lines. Measured in one run, side by side:

* ``evaluate``: :func:`loyaltykit.evaluate_order` calls per second on one core (target
  >= 50,000), against a *baseline* that computes the very same points for the same
  orders with hand-written Decimal code for this one program (no rules engine):
  ``ratio`` = engine time / hand-written time shows what the data-driven engine costs.
  The engine builds an evaluation's outcomes (each rule's points and text) when they
  are first read, which this loop never does: ``with_outcomes_per_s`` is the same
  evaluations with their outcomes read (what ``record_order``, which stores them, pays).
* ``record_order`` per backend and program (``ten_rules`` above, and ``one_rate``: 1
  point per euro, nothing capped or counted): ``Loyalty.record_order`` (evaluation,
  caps and stamp card usage, the order row, the earn) against ``Loyalty.earn`` of the
  same points for the same members, in alternating blocks of 10 so both see the same
  machine. ``ratio`` = record_order time / earn time (target <= 1.3).

For ``postgresql`` the server is ``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``,
else a throwaway server started from the machine's binaries (``tests/_postgres.py``).
Figures are medians over rounds (one warm-up round first). ``--quick`` is a smoke run
with tiny sizes (its figures mean little). The last line of output is one JSON object
holding every figure printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _shared import ledger_helpers

from loyaltykit import (
    Cap,
    CapPeriod,
    ChannelIn,
    EarningPolicy,
    FixedRule,
    LineMatch,
    Loyalty,
    MemberContext,
    MinNet,
    Money,
    MultiplierRule,
    Order,
    OrderLine,
    Program,
    RateRule,
    StampCardRule,
    TierIn,
    Window,
    evaluate_order,
)

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
EVALUATE_TARGET = 50_000
RECORD_TARGET = 1.3

FULL = {"orders": 2_000, "rounds": 7, "record_ops": 300, "block": 10}
QUICK = {"orders": 200, "rounds": 2, "record_ops": 20, "block": 10}


def earning() -> EarningPolicy:
    """The benchmark's 10-rule program."""
    weekend = Window(weekdays=(6, 7))
    return EarningPolicy(rules=(
        RateRule(id="base", description="1 point per 1.00 EUR"),
        MultiplierRule(id="beans", factor=Decimal(2), match=LineMatch(categories=("beans",))),
        MultiplierRule(id="tea", factor=Decimal("1.5"), match=LineMatch(categories=("tea",))),
        MultiplierRule(id="no-gift-cards", factor=Decimal(0),
                       match=LineMatch(skus=("gift-card",))),
        MultiplierRule(id="gold", factor=Decimal("1.25"), condition=TierIn(("gold",))),
        MultiplierRule(id="app", factor=Decimal("1.1"), condition=ChannelIn(("app",))),
        FixedRule(id="weekend", points=50, condition=MinNet(Decimal("30.00")), window=weekend,
                  caps=(Cap(500, CapPeriod.MONTH),)),
        FixedRule(id="big-basket", points=20, condition=MinNet(Decimal("100.00"))),
        FixedRule(id="happy-hour", points=10,
                  window=Window(weekdays=(1, 2, 3, 4, 5), hours=((dt.time(14), dt.time(17)),))),
        StampCardRule(id="coffee-card", every=10, points=30, counts="items",
                      match=LineMatch(categories=("coffee",))),
    ))


CATALOGUE = [
    ("beans-1kg", "beans", "12.50"), ("green-tea", "tea", "6.90"), ("mug", "mugs", "9.99"),
    ("gift-card", "gifts", "25.00"), ("espresso", "coffee", "2.40"),
    ("grinder", "machines", "79.00"), ("filter", "accessories", "4.35"),
]


def make_orders(n: int, member_ids: Sequence[str], start: dt.datetime) -> list[Order]:
    """``n`` 5-line orders spread over a few weeks, channels web / app."""
    orders = []
    for i in range(n):
        lines = []
        for j in range(5):
            sku, category, price = CATALOGUE[(i + 3 * j) % len(CATALOGUE)]
            lines.append(OrderLine(sku=sku, category=category, quantity=1 + (i + j) % 3,
                                   unit_price=Money(price, "EUR"), line_id=f"l{j}"))
        orders.append(Order(
            id=f"o-{uuid.uuid4().hex[:16]}", member_id=member_ids[i % len(member_ids)],
            placed_at=start + dt.timedelta(minutes=37 * i), currency="EUR",
            lines=tuple(lines), shipping=Money("4.90", "EUR"),
            channel="app" if i % 3 == 0 else "web",
        ))
    return orders


# -- the hand-written baseline: the same program, coded by hand -------------------------

_FACTORS = {"beans": Decimal(2), "tea": Decimal("1.5")}


def by_hand(order: Order, tier: str | None, stamps_before: int) -> int:
    """The points of the benchmark program for ``order``, coded directly (no caps
    reached: the benchmark's members never exceed the weekend cap)."""
    local = order.placed_at.astimezone(BERLIN)
    total = Decimal(0)
    net = Decimal(0)
    coffee = 0
    for line in order.lines:
        amount = line.unit_price.amount * line.quantity
        if line.discount is not None:
            amount -= line.discount.amount
        net += amount
        factor = _FACTORS.get(line.category or "", Decimal(1))
        if line.sku == "gift-card":
            factor *= 0
        if tier == "gold":
            factor *= Decimal("1.25")
        if order.channel == "app":
            factor *= Decimal("1.1")
        total += amount * factor
        if line.category == "coffee":
            coffee += line.quantity
    if local.isoweekday() >= 6 and net >= Decimal("30.00"):
        total += 50
    if net >= Decimal("100.00"):
        total += 20
    if local.isoweekday() <= 5 and dt.time(14) <= local.time() < dt.time(17):
        total += 10
    total += 30 * ((stamps_before + coffee) // 10 - stamps_before // 10)
    return int(total.to_integral_value(rounding=ROUND_FLOOR))


def bench_evaluate(sizes: dict[str, int]) -> dict[str, Any]:
    policy = earning()
    start = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)
    orders = make_orders(sizes["orders"], ["m"], start)
    member = MemberContext(member_id="m", enrolled_at=start - dt.timedelta(days=400),
                           tier="gold")
    # the two agree on every order (else the ratio would compare different work)
    for order in orders:
        expected = by_hand(order, "gold", 0)
        got = evaluate_order(policy, "Europe/Berlin", order, member).points
        if expected != got:
            raise SystemExit(f"baseline disagrees on {order.id}: {expected} != {got}")
    engine_rates: list[float] = []
    hand_rates: list[float] = []
    read_rates: list[float] = []
    ratios: list[float] = []
    for r in range(-1, sizes["rounds"]):
        gc.collect()
        t0 = time.perf_counter()
        for order in orders:
            evaluate_order(policy, "Europe/Berlin", order, member)
        t1 = time.perf_counter()
        for order in orders:
            by_hand(order, "gold", 0)
        t2 = time.perf_counter()
        for order in orders:
            evaluate_order(policy, "Europe/Berlin", order, member).outcomes  # noqa: B018
        t3 = time.perf_counter()
        if r < 0:
            continue
        engine_rates.append(len(orders) / (t1 - t0))
        hand_rates.append(len(orders) / (t2 - t1))
        read_rates.append(len(orders) / (t3 - t2))
        ratios.append((t1 - t0) / (t2 - t1))
    rate = statistics.median(engine_rates)
    return {
        "rules": len(policy.rules), "lines_per_order": 5, "orders": len(orders),
        "evaluations_per_s": rate, "us_per_evaluation": 1e6 / rate,
        "hand_written_per_s": statistics.median(hand_rates),
        "with_outcomes_per_s": statistics.median(read_rates),
        "ratio": statistics.median(ratios),
        "target_min_per_s": EVALUATE_TARGET, "pass": rate >= EVALUATE_TARGET,
    }


def one_rate() -> EarningPolicy:
    """The plainest program: 1 point per 1.00 EUR, nothing capped or counted."""
    return EarningPolicy(rules=(RateRule(id="base", description="1 point per 1.00 EUR"),))


PROGRAMS = {"ten_rules": earning, "one_rate": one_rate}


def bench_record(helpers: Any, backend: str, url: str | None,
                 sizes: dict[str, int], rules: str) -> dict[str, Any]:
    with helpers.open_backend(backend, url) as (storage, _engine, database, _owned):
        program = Program(id=f"rules-{uuid.uuid4().hex[:12]}", time_zone="Europe/Berlin",
                          currency="EUR", point_value=Money("0.01", "EUR"),
                          earning=PROGRAMS[rules]())
        loyalty = Loyalty(program, storage)
        now = dt.datetime.now(dt.UTC)
        ops = sizes["record_ops"]

        def prepare(label: str) -> Any:
            def make(tag: str) -> tuple[list[Order], list[int], str]:
                members = [f"{label}-{tag}-{j}" for j in range(10)]
                for m in members:
                    loyalty.enrol(m, at=now - dt.timedelta(days=30))
                orders = make_orders(ops, members, now - dt.timedelta(days=20))
                # the earn side awards what the order side will: the same points
                points = [max(1, by_hand(o, None, 0)) for o in orders]
                return orders, points, tag
            return make

        def record(state: tuple[list[Order], list[int], str], i: int) -> None:
            loyalty.record_order(state[0][i])

        def earn(state: tuple[list[Order], list[int], str], i: int) -> None:
            order = state[0][i]
            loyalty.earn(order.member_id, state[1][i], key=f"earn:{order.id}",
                         at=order.placed_at, reason=f"order {order.id}",
                         metadata={"order_id": order.id})

        summary = helpers.interleaved((prepare("rec"), record), (prepare("earn"), earn),
                                      ops, sizes["block"], sizes["rounds"])
        ratio = summary["ratio"]
        return {
            "database": database, "program": rules, "record_order_per_s": summary["a"],
            "earn_per_s": summary["b"], "ratio": ratio,
            "extra_us_per_order": 1e6 / summary["a"] - 1e6 / summary["b"],
            "target_max_ratio": RECORD_TARGET, "pass": ratio <= RECORD_TARGET,
            "rounds": summary["ratios"],
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append",
                        choices=("memory", "sqlite", "postgresql"),
                        help="record_order backends (repeatable; default sqlite and "
                             "postgresql)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url", help="PostgreSQL URL (else a throwaway server)")
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    backends = args.backend or ["sqlite", "postgresql"]
    helpers = ledger_helpers()
    results: dict[str, Any] = {
        "quick": args.quick,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "sizes": sizes, "evaluate": None, "record_order": {},
    }
    started = time.perf_counter()
    if not args.skip_evaluate:
        ev = results["evaluate"] = bench_evaluate(sizes)
        print(f"evaluate: {ev['evaluations_per_s']:,.0f} orders/s "
              f"({ev['us_per_evaluation']:.1f} us each; target >= {EVALUATE_TARGET:,}) "
              f"-> {'PASS' if ev['pass'] else 'FAIL'}; hand-written "
              f"{ev['hand_written_per_s']:,.0f}/s, ratio {ev['ratio']:.2f}; with outcomes "
              f"read {ev['with_outcomes_per_s']:,.0f}/s")
    for backend in backends:
        for rules in PROGRAMS:
            rec = bench_record(helpers, backend, args.url, sizes, rules)
            results["record_order"][f"{backend}/{rules}"] = rec
            print(f"record_order ({rules}) on {rec['database']}: "
                  f"{rec['record_order_per_s']:,.0f}/s vs earn {rec['earn_per_s']:,.0f}/s, "
                  f"ratio {rec['ratio']:.2f} (target <= {RECORD_TARGET}) -> "
                  f"{'PASS' if rec['pass'] else 'FAIL'}; "
                  f"+{rec['extra_us_per_order']:.0f} us per order")
    results["seconds"] = time.perf_counter() - started
    print(json.dumps(results, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
