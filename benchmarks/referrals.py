#!/usr/bin/env python
"""Benchmark referrals: issuing codes, and attributing and qualifying referees, against
the ledger's plain writes.

Run as a plain script::

    python benchmarks/referrals.py [--backend sqlite|postgresql ...] [--codes N]
        [--referees M] [--per-referrer K] [--rounds R] [--quick]

Scenario R's referral policy (500 points to the referrer, 250 to the referee, pending
until the order's 14-day return window closes; a qualifying order of at least 20.00 EUR
within 30 days; at most 10 paid referrals per referrer a year), Europe/Berlin, a
:class:`~loyaltykit.TestClock`, and the default fraud checks. Measured in one run, side
by side in the same database, in alternating blocks of 10 (A B, B A, ...) so both sides
see the same machine:

* ``issue_code``: ``Loyalty.issue_code`` per member (one unit of work that inserts the
  code; the storage's primary key keeps codes distinct and a taken code is drawn
  again) for ``--codes`` members enrolled beforehand (untimed), against a *baseline*
  of ``Loyalty.earn`` of 1 point per member (one write each) for as many other
  enrolled members. ``ratio`` = issue_code time / earn time. ``draws_per_code`` counts
  the codes drawn per code issued (1.0 unless a drawn code was taken).
* ``attribution``: for ``--referees`` new members, ``Loyalty.enrol`` with a referral
  code followed by ``Loyalty.record_order`` of one 25.00 EUR order, which qualifies
  the referral and pays both pending rewards, against a *baseline* of the same
  ``enrol`` (without a code) and ``record_order`` of the same order. The referees of a
  round are spread round-robin over ``referees / --per-referrer`` referrers (each
  enrolled with one code beforehand, untimed), and the clock moves on by a minute per
  pair on both sides (more if a referrer's turns would come closer than 13 minutes
  apart), so neither the velocity check (5 an hour, 20 a day per referrer) nor the cap
  (10 a year) holds a referral back: the run fails unless every referral ended
  ``QUALIFIED`` with both rewards paid and no reasons. ``ratio`` = referral pair time
  / plain pair time.

The sizes are what is timed per side, split evenly over ``--rounds`` rounds, with one
warm-up round of the same size first. Figures are medians over rounds, a ratio the
median of the per-round ratios. No targets are set: the ratios show what a code and a
referral cost on top of the plainest write. ``--profile FILE`` writes a cProfile of
the referral side's timed calls (read it with ``python -m pstats FILE``).

For ``postgresql`` the server is ``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``,
else a throwaway server started from the machine's binaries (``tests/_postgres.py``);
on a given server this run's rows are deleted again at the end. ``--quick`` is a smoke
run with tiny sizes (its figures mean little). The last line of output is one JSON
object holding every figure printed.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from _shared import ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    CapPeriod,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    ReferralCap,
    ReferralPolicy,
    ReferralReward,
    ReferralStatus,
    TestClock,
)
from loyaltykit.sql import SQLStorage  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
START = dt.datetime(2026, 3, 2, 10, tzinfo=BERLIN)
#: A referrer's referrals at least this far apart: at most 4 earlier ones in any hour,
#: so the default velocity check (5 an hour) never flags one
SPACING_MINUTES = 13
REWARD = ReferralReward(referrer=500, referee=250)
CAP = 10
PRICE = Money("25.00", "EUR")

FULL = {"codes": 2_000, "referees": 1_000, "per_referrer": 5, "rounds": 5, "block": 10}
QUICK = {"codes": 40, "referees": 20, "per_referrer": 5, "rounds": 2, "block": 5}


def program(program_id: str) -> Program:
    policy = ReferralPolicy(reward=REWARD, min_net=Money("20.00", "EUR"),
                            qualify_within_days=30, return_window_days=14,
                            cap=ReferralCap(CAP, CapPeriod.YEAR))
    return Program(id=program_id, time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"), referrals=policy)


class CountingDraws:
    """``secrets.randbelow``, counting its calls (one per symbol of a drawn code)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, n: int) -> int:
        self.calls += 1
        return secrets.randbelow(n)


def order_of(member_id: str, order_id: str, clock: TestClock) -> Order:
    return Order(id=order_id, member_id=member_id, placed_at=clock.now(), currency="EUR",
                 lines=(OrderLine(sku="x", quantity=1, unit_price=PRICE),))


def per_round(total: int, rounds: int) -> int:
    if total < rounds:
        raise SystemExit(f"{total} is fewer than one per round ({rounds} rounds)")
    return total // rounds


def bench_codes(helpers: Any, loyalty: Loyalty, draws: CountingDraws,
                sizes: dict[str, int]) -> dict[str, Any]:
    rounds = sizes["rounds"]
    ops = per_round(sizes["codes"], rounds)
    issued: list[str] = []

    def prepare(label: str) -> Any:
        def make(tag: str) -> tuple[list[str], str]:
            members = [f"{label}-{tag}-{j}" for j in range(ops)]
            for m in members:
                loyalty.enrol(m)
            return members, tag
        return make

    def issue(state: tuple[list[str], str], i: int) -> None:
        issued.append(loyalty.referrals.issue_code(state[0][i]).code)

    def earn(state: tuple[list[str], str], i: int) -> None:
        loyalty.earn(state[0][i], 1, key=f"earn-{state[1]}-{i}")

    calls_before = draws.calls
    summary = helpers.interleaved((prepare("code"), issue), (prepare("earn"), earn), ops,
                                  sizes["block"], rounds)
    # every code issued (warm-up round included) is distinct, as the primary key keeps them
    assert len(issued) == (rounds + 1) * ops, len(issued)
    assert len(set(issued)) == len(issued), "a referral code was issued twice"
    policy = loyalty.program.referrals
    assert policy is not None
    symbols = policy.code.length
    return {
        "codes": ops * rounds, "per_round": ops,
        "codes_per_s": summary["a"], "earn_per_s": summary["b"],
        "ratio": summary["ratio"],
        "extra_us_per_code": 1e6 / summary["a"] - 1e6 / summary["b"],
        "draws_per_code": (draws.calls - calls_before) / symbols / len(issued),
        "rounds": summary["ratios"],
    }


def bench_attribution(helpers: Any, loyalty: Loyalty, clock: TestClock,
                      sizes: dict[str, int]) -> dict[str, Any]:
    rounds = sizes["rounds"]
    ops = per_round(sizes["referees"], rounds)
    referrers = -(-ops // sizes["per_referrer"])
    # the clock's move per pair (both sides): a referrer's turn comes every
    # ``referrers`` pairs of its side
    step = max(1, -(-SPACING_MINUTES // referrers))
    referees: list[str] = []

    def prepare_referred(tag: str) -> tuple[list[str], list[str], str]:
        owners = [f"referrer-{tag}-{j}" for j in range(referrers)]
        shown = []
        for m in owners:
            loyalty.enrol(m)
            shown.append(loyalty.referrals.issue_code(m).shown)
        members = [f"referee-{tag}-{j}" for j in range(ops)]
        referees.extend(members)
        return members, shown, tag

    def prepare_plain(tag: str) -> tuple[list[str], list[str], str]:
        return [f"plain-{tag}-{j}" for j in range(ops)], [], tag

    def referred(state: tuple[list[str], list[str], str], i: int) -> None:
        member, shown = state[0][i], state[1]
        clock.advance(minutes=step)
        loyalty.enrol(member, referral_code=shown[i % len(shown)])
        loyalty.record_order(order_of(member, f"ref-{state[2]}-{i}", clock))

    def plain(state: tuple[list[str], list[str], str], i: int) -> None:
        member = state[0][i]
        clock.advance(minutes=step)
        loyalty.enrol(member)
        loyalty.record_order(order_of(member, f"plain-{state[2]}-{i}", clock))

    summary = helpers.interleaved((prepare_referred, referred), (prepare_plain, plain), ops,
                                  sizes["block"], rounds)
    # every referral (warm-up round included) was attributed, passed the fraud checks
    # and was qualified by its order, paying both sides in full
    assert len(referees) == (rounds + 1) * ops, len(referees)
    held_back = []
    for member in referees:
        r = loyalty.referrals.get(member)
        if (r.status is not ReferralStatus.QUALIFIED or r.reasons
                or (r.referrer_points, r.referee_points) != (REWARD.referrer, REWARD.referee)):
            held_back.append((member, r.status.value, r.reasons))
    assert not held_back, f"{len(held_back)} referrals not qualified in full: {held_back[:3]}"
    return {
        "referees": ops * rounds, "per_round": ops, "referrers_per_round": referrers,
        "qualified": len(referees), "clock_step_minutes": step,
        "pairs_per_s": summary["a"], "plain_pairs_per_s": summary["b"],
        "ratio": summary["ratio"],
        "extra_us_per_pair": 1e6 / summary["a"] - 1e6 / summary["b"],
        "rounds": summary["ratios"],
    }


def cleanup(engine: sa.Engine, program_id: str) -> None:
    """Delete this run's rows (on a server given by URL)."""
    with engine.begin() as conn:
        for table in reversed(SQLStorage.metadata.sorted_tables):
            column = table.c.id if table.name == "lk_programs" else table.c.program_id
            conn.execute(table.delete().where(column == program_id))


def bench(helpers: Any, backend: str, url: str | None, sizes: dict[str, int]
          ) -> dict[str, Any]:
    with helpers.open_backend(backend, url) as (storage, engine, database, owned):
        assert engine is not None
        program_id = f"referrals-{uuid.uuid4().hex[:10]}"
        clock = TestClock(START)
        draws = CountingDraws()
        loyalty = Loyalty(program(program_id), storage, clock=clock, randbelow=draws)
        try:
            codes = bench_codes(helpers, loyalty, draws, sizes)
            attribution = bench_attribution(helpers, loyalty, clock, sizes)
        finally:
            if not owned:
                cleanup(engine, program_id)
        return {"database": database, "issue_code": codes, "attribution": attribution}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"),
                        help="repeatable; default sqlite and postgresql")
    parser.add_argument("--codes", type=int, help="codes issued (timed) per side")
    parser.add_argument("--referees", type=int, help="referees (timed) per side")
    parser.add_argument("--per-referrer", type=int, choices=range(1, CAP + 1),
                        metavar=f"1..{CAP}", help="referees per referrer's code (default 5)")
    parser.add_argument("--rounds", type=int, help="rounds per side, after a warm-up one")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url", help="PostgreSQL URL (else $LOYALTYKIT_BENCH_POSTGRESQL_URL, "
                                      "else a throwaway server)")
    parser.add_argument("--profile", metavar="FILE",
                        help="write a cProfile of the referral side's timed calls to FILE "
                             "(slows that side: ratios are then meaningless)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name in ("codes", "referees", "per_referrer", "rounds"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name.replace('_', '-')} must be positive")
            sizes[name] = value
    helpers = ledger_helpers()
    if args.profile:
        helpers.PROFILER = cProfile.Profile()
    results: dict[str, Any] = {
        "quick": args.quick, "sizes": sizes,
        "environment": {"python": platform.python_version(), "sqlalchemy": sa.__version__,
                        "cpus": os.cpu_count(), "profiled": bool(args.profile)},
        "issue_code": {}, "attribution": {},
    }
    started = time.perf_counter()
    for backend in args.backend or ["sqlite", "postgresql"]:
        r = bench(helpers, backend, args.url, sizes)
        c = results["issue_code"][backend] = {"database": r["database"], **r["issue_code"]}
        a = results["attribution"][backend] = {"database": r["database"], **r["attribution"]}
        print(f"issue_code on {r['database']}: {c['codes']:,} codes at "
              f"{c['codes_per_s']:,.0f}/s vs earn {c['earn_per_s']:,.0f}/s; ratio "
              f"{c['ratio']:.2f} ({c['extra_us_per_code']:+,.0f} us per code; "
              f"{c['draws_per_code']:.3f} draws per code)")
        print(f"attribution on {r['database']}: {a['referees']:,} referees "
              f"({a['referrers_per_round']:,} referrers a round) enrolled with a code and "
              f"qualified by an order at {a['pairs_per_s']:,.0f} pairs/s vs plain enrol + "
              f"order {a['plain_pairs_per_s']:,.0f}/s; ratio {a['ratio']:.2f} "
              f"({a['extra_us_per_pair']:+,.0f} us per pair); all {a['qualified']:,} "
              f"referrals qualified")
    results["seconds"] = time.perf_counter() - started
    if helpers.PROFILER is not None:
        helpers.PROFILER.dump_stats(args.profile)
        print(f"  profile written to {args.profile}", file=sys.stderr)
    print(json.dumps(results, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
