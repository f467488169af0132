#!/usr/bin/env python
"""Benchmark loyaltykit.analytics: BG/NBD and Gamma-Gamma on CDNOW, against ``lifetimes``
on the same summary in the same run, and BG/NBD on a million drawn customers.

Run as a plain script (needs ``loyaltykit[analytics]``)::

    python benchmarks/analytics.py [--quick] [--with-lifetimes]

Measured in one run:

* ``bgnbd``, ``gamma_gamma``: the fits on the CDNOW sample (tests/data/cdnow: the
  summary built from CDNOW_sample.txt's purchases, calibration to 1997-09-30), their
  parameters (checked against the published figures: BG/NBD within 0.001 and -9582.4
  within 0.1, Gamma-Gamma within 0.01) and ``fit_s``, the median of the rounds' wall
  times.
* ``lifetimes_bgnbd_fit_s``: ``lifetimes.BetaGeoFitter().fit`` on the very same summary
  (written to a CSV file), median over the same number of rounds, timed in a
  subprocess: with this interpreter when ``lifetimes`` imports here, else (with
  ``--with-lifetimes``) in a virtual environment of its own (``--lifetimes-venv``,
  default ``$TMPDIR/loyaltykit-bench-lifetimes``, created on first use with pins under
  which lifetimes 0.11.3 imports: numpy<2, pandas<2.1, scipy<1.12). ``lifetimes`` is
  never a dependency of loyaltykit. Otherwise null. ``bgnbd_vs_lifetimes`` = our fit_s /
  theirs (target <= 1).
* ``synthetic_1m``: 1,000,000 customers drawn from BG/NBD (r 0.25, alpha 4, a 0.8,
  b 2.5; each observed 26 to 78 weeks, on whole days; seeded) in a fresh subprocess,
  then fitted: ``fit_s`` (target <= 10), the subprocess's ``peak_rss_mib`` (draw and
  fit; target <= 1024) and ``max_rel_error`` of the four parameters (target <= 0.02).
* ``reports_100k``: ``benchmarks/reports.py`` run in the same process (totals + KPIs +
  RFM over 100,000 members with history on PostgreSQL against hand-written SQL
  aggregates; target ratio <= 2; ``--url`` or ``LOYALTYKIT_BENCH_POSTGRESQL_URL``, else
  a throwaway server). Seeding takes a few minutes; ``--no-reports`` skips it (null),
  and a ``--quick`` run skips it unless ``--reports`` is given (then 2,000 members).

``--quick`` is a smoke run (20,000 drawn customers, 2 rounds; its figures mean little).
The last line of output is one JSON object holding every figure printed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from _shared import load_script

from loyaltykit import Money, Purchase
from loyaltykit.analytics import Summary, fit_bgnbd, fit_gamma_gamma, simulate, summary

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "cdnow"
DEFAULT_VENV = Path(tempfile.gettempdir()) / "loyaltykit-bench-lifetimes"
#: Pins under which lifetimes 0.11.3 (2020) imports and fits on Python 3.11.
LIFETIMES_PINS = ["lifetimes==0.11.3", "numpy<2", "pandas<2.1", "scipy<1.12"]

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOGLIK = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
SYNTHETIC_TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TARGET_FIT_S = 10.0
TARGET_RSS_MIB = 1024.0
TARGET_REL_ERROR = 0.02

FULL = {"synthetic": 1_000_000, "rounds": 7}
QUICK = {"synthetic": 20_000, "rounds": 2}


def cdnow_summary() -> Summary:
    """CDNOW_sample.txt's purchases, summarised to the end of 1997-09-30 (UTC days)."""
    purchases = []
    for i, line in enumerate((DATA / "CDNOW_sample.txt").read_text().splitlines()):
        _, member, day, _, value = line.split()
        placed = dt.datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=dt.UTC)
        purchases.append(Purchase(member, str(i), placed, Money(value, "USD")))
    return summary(purchases, end=dt.datetime(1997, 10, 1, tzinfo=dt.UTC), time_zone="UTC")


def timed(fn: Callable[[], Any], rounds: int) -> tuple[Any, float]:
    """The last result and the median wall time of ``rounds`` calls (after a warm-up)."""
    result = fn()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


# -- lifetimes, in its own interpreter ------------------------------------------------------

LIFETIMES_SCRIPT = r"""
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter
data = pd.read_csv(sys.argv[1])
rounds = int(sys.argv[2])
def fit():
    return BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
fitter = fit()
times = []
for _ in range(rounds):
    started = time.perf_counter()
    fitter = fit()
    times.append(time.perf_counter() - started)
import lifetimes
print(json.dumps({"fit_s": statistics.median(times), "version": lifetimes.__version__,
                  **{k: float(v) for k, v in fitter.params_.items()}}))
"""


def lifetimes_python(with_lifetimes: bool, venv: Path) -> str | None:
    """An interpreter that imports lifetimes: this one, else the benchmark's own venv
    (created with ``--with-lifetimes``), else None."""
    probe = subprocess.run([sys.executable, "-c", "import lifetimes"], capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return sys.executable
    python = venv / "bin" / "python"
    if not with_lifetimes:
        return str(python) if python.exists() else None
    if not python.exists():
        print(f"  creating {venv} for lifetimes ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *LIFETIMES_PINS],
                       check=True)
    return str(python)


def lifetimes_fit(data: Summary, rounds: int, python: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "summary.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["frequency", "recency", "T"])
            writer.writerows(zip(data.x.tolist(), data.t_x.tolist(), data.T.tolist(),
                                 strict=True))
        proc = subprocess.run([python, "-c", LIFETIMES_SCRIPT, str(path), str(rounds)],
                              capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        print(f"  lifetimes failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


# -- a million customers, in a fresh process ------------------------------------------------


def synthetic_child(customers: int) -> None:
    """Draw ``customers`` from BG/NBD and fit them; print one JSON line (run in a fresh
    interpreter, so its peak RSS is the draw's and the fit's)."""
    started = time.perf_counter()
    rng = np.random.default_rng(2005)
    ages = rng.integers(26 * 7, 78 * 7 + 1, customers) / 7  # whole days, in weeks
    drawn = simulate(customers, T=ages, seed=1997, **SYNTHETIC_TRUTH)
    draw_s = time.perf_counter() - started
    fit = fit_bgnbd(drawn)
    errors = {k: abs(getattr(fit, k) / v - 1) for k, v in SYNTHETIC_TRUTH.items()}
    print(json.dumps({
        "customers": customers,
        "draw_s": draw_s,
        "fit_s": fit.seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_rel_error": max(errors.values()),
        "converged": fit.converged,
        "truth": SYNTHETIC_TRUTH,
        "fitted": {k: getattr(fit, k) for k in SYNTHETIC_TRUTH},
    }))


def synthetic(customers: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--synthetic-child", str(customers)],
                          capture_output=True, text=True, check=False, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"the synthetic run failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    result["pass"] = (result["fit_s"] <= TARGET_FIT_S
                      and result["peak_rss_mib"] <= TARGET_RSS_MIB
                      and result["max_rel_error"] <= TARGET_REL_ERROR)
    return result


# -- the run -------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    bg, gg, syn = results["bgnbd"], results["gamma_gamma"], results["synthetic_1m"]
    print(f"loyaltykit.analytics benchmark{' (quick)' if results['quick'] else ''}")
    print(f"  BG/NBD on CDNOW: r {bg['r']:.4f} alpha {bg['alpha']:.4f} a {bg['a']:.4f} "
          f"b {bg['b']:.4f} loglik {bg['loglik']:.2f}  fit {bg['fit_s'] * 1000:.1f} ms")
    theirs = results["lifetimes_bgnbd_fit_s"]
    if theirs is None:
        print("  lifetimes: not available (--with-lifetimes)")
    else:
        print(f"  lifetimes BetaGeoFitter on the same summary: fit {theirs * 1000:.1f} ms; "
              f"ours / theirs {results['bgnbd_vs_lifetimes']:.3f}")
    print(f"  Gamma-Gamma on CDNOW: p {gg['p']:.4f} q {gg['q']:.4f} v {gg['v']:.4f}  "
          f"fit {gg['fit_s'] * 1000:.1f} ms")
    print(f"  BG/NBD on {syn['customers']:,} drawn customers: fit {syn['fit_s']:.2f} s, "
          f"peak RSS {syn['peak_rss_mib']:.0f} MiB, max relative error "
          f"{syn['max_rel_error']:.4f}")
    rep = results["reports_100k"]
    if rep is not None:
        print(f"  reports over {rep['members']:,} members on PostgreSQL: {rep['seconds']} s, "
              f"hand-written SQL {rep['hand_sql_seconds']} s, ratio {rep['ratio']} "
              f"(target <= {rep['target_max_ratio']})")
    print(f"  targets passed: {', '.join(results['targets']['passed']) or '-'}; "
          f"missed: {', '.join(results['targets']['missed']) or '-'}")
    print(json.dumps(results, separators=(",", ":"), default=str))


def _reports_benchmark() -> Any:
    """benchmarks/reports.py as a module."""
    return load_script(Path(__file__).resolve().parent / "reports.py",
                       "loyaltykit_benchmark_reports")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--with-lifetimes", action="store_true",
                        help="time lifetimes in its own venv (created on first use)")
    parser.add_argument("--lifetimes-venv", type=Path, default=DEFAULT_VENV,
                        help=f"that venv (default {DEFAULT_VENV})")
    parser.add_argument("--synthetic", type=int, help="drawn customers (default 1,000,000)")
    parser.add_argument("--rounds", type=int, help="timed rounds per fit (default 7)")
    parser.add_argument("--synthetic-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reports", action=argparse.BooleanOptionalAction, default=None,
                        help="run the reports' part (default: yes, except with --quick)")
    parser.add_argument("--reports-members", type=int, help="members (default 100,000)")
    parser.add_argument("--url", help="PostgreSQL for the reports' part")
    args = parser.parse_args(argv)
    if args.synthetic_child:
        synthetic_child(args.synthetic_child)
        return 0
    sizes = dict(QUICK if args.quick else FULL)
    if args.synthetic:
        sizes["synthetic"] = args.synthetic
    if args.rounds:
        sizes["rounds"] = args.rounds
    started = time.perf_counter()
    data = cdnow_summary()
    bg, bg_s = timed(lambda: fit_bgnbd(data), sizes["rounds"])
    gg, gg_s = timed(lambda: fit_gamma_gamma(data), sizes["rounds"])
    python = lifetimes_python(args.with_lifetimes, args.lifetimes_venv)
    theirs = None if python is None else lifetimes_fit(data, sizes["rounds"], python)
    print("  CDNOW done", file=sys.stderr)
    results: dict[str, Any] = {
        "quick": args.quick,
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "scipy": scipy.__version__, "cpus": os.cpu_count(),
                        "lifetimes": None if theirs is None else theirs["version"]},
        "sizes": sizes,
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
                  "loglik": bg.log_likelihood, "converged": bg.converged, "fit_s": bg_s},
        "gamma_gamma": {"p": gg.p, "q": gg.q, "v": gg.v, "customers": gg.customers,
                        "converged": gg.converged, "fit_s": gg_s},
        "lifetimes_bgnbd_fit_s": None if theirs is None else theirs["fit_s"],
        "lifetimes_bgnbd": None if theirs is None else {
            k: theirs[k] for k in ("r", "alpha", "a", "b")},
        "bgnbd_vs_lifetimes": None if theirs is None else bg_s / theirs["fit_s"],
        "synthetic_1m": synthetic(sizes["synthetic"]),
        "reports_100k": None,
    }
    print("  synthetic done", file=sys.stderr)
    if args.reports if args.reports is not None else not args.quick:
        members = args.reports_members or (2_000 if args.quick else 100_000)
        results["reports_100k"] = _reports_benchmark().run(
            args.url, members, 2 if args.quick else 5)
        print("  reports done", file=sys.stderr)
    results["seconds"] = time.perf_counter() - started
    checks: dict[str, bool] = {
        "bgnbd_published": all(abs(getattr(bg, k) - v) <= 0.001
                               for k, v in PUBLISHED_BGNBD.items())
        and abs(bg.log_likelihood - PUBLISHED_LOGLIK) <= 0.1,
        "gamma_gamma_published": all(abs(getattr(gg, k) - v) <= 0.01
                                     for k, v in PUBLISHED_GG.items()),
        "synthetic": results["synthetic_1m"]["pass"],
    }
    if results["reports_100k"] is not None:
        checks["reports_100k"] = results["reports_100k"]["pass"]
    if results["bgnbd_vs_lifetimes"] is not None:
        checks["bgnbd_vs_lifetimes"] = results["bgnbd_vs_lifetimes"] <= 1.0
    results["targets"] = {
        "passed": sorted(k for k, v in checks.items() if v),
        "missed": sorted(k for k, v in checks.items() if not v),
    }
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
