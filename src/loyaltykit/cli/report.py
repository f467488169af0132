"""``loyaltykit report liability|kpis|rfm|clv|tiers|totals``: the program's reports
(``loyalty.reports``, docs/reports.md) as a table, JSON (each result's JSON form) or
CSV, and ``--plot FILE`` to draw one (the ``plot`` extra).

``clv`` fits BG/NBD and Gamma-Gamma (the ``analytics`` extra) over the program's
orders up to ``--as-of`` and lists the members of highest expected value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from loyaltykit import Loyalty, LoyaltyError, Period
from loyaltykit._json import to_data
from loyaltykit.cli._connect import CliError, connect, parse_instant
from loyaltykit.cli._output import FORMATS, flat, write

__all__ = ["PICTURES", "REPORTS", "add_parser", "run"]

#: The reports, with what ``--help`` says of each.
REPORTS = {
    "liability": "what the outstanding points are worth (face value x expected redemption)",
    "kpis": "active, new and repeat members, orders, revenue, retention per period",
    "rfm": "recency, frequency, monetary scores and segment of each buying member",
    "clv": "predicted customer lifetime value (BG/NBD + Gamma-Gamma; the analytics extra)",
    "tiers": "members per tier",
    "totals": "issued, redeemed, expired, outstanding points per wallet",
}

#: The reports ``--plot`` draws, and what it draws of each (loyaltykit.plots).
PICTURES = {
    "kpis": "retention by cohort as a heat map",
    "rfm": "the RFM segments' sizes",
    "liability": "liability and breakage over time",
    "clv": "the CLV distribution",
    "tiers": "the tier distribution over time",
}


#: The reports read over calendar periods (kpis), or drawn over them (liability, tiers).
_OVER_TIME = ("kpis", "liability", "tiers")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``report`` and its reports to the command line."""
    report = commands.add_parser(
        "report", parents=[common], help="program-wide reports (table, JSON, CSV, plot)",
        description="Program-wide reports, read only.",
    )
    kinds = report.add_subparsers(dest="report", metavar="REPORT", required=True)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--format", choices=FORMATS, default="table",
                         help="table (default), json (the result's JSON form) or csv")
    options.add_argument("--as-of", metavar="INSTANT",
                         help="as of this ISO 8601 instant with offset (default: now)")
    for name, text in REPORTS.items():
        parser = kinds.add_parser(name, parents=[common, options], help=text,
                                  description=text[0].upper() + text[1:] + ".")
        if name in PICTURES:
            parser.add_argument("--plot", metavar="FILE",
                                help=f"also draw {PICTURES[name]} to FILE (.png or .svg; "
                                     "pip install 'loyaltykit[plot]')")
        if name in ("liability", "kpis", "totals"):
            parser.add_argument("--wallet", metavar="NAME",
                                help="the wallet (default: the program's first; totals: all)")
        if name in _OVER_TIME:
            # kpis: the report's periods; liability, tiers: the periods of its picture
            what = "" if name == "kpis" else " of the --plot picture"
            parser.add_argument("--period", choices=[p.value for p in Period],
                                default="month",
                                help=f"calendar period{what} (default: month)")
            parser.add_argument("--start", metavar="INSTANT",
                                help=f"first period's instant{what} "
                                     "(default: a year before --end)")
            parser.add_argument("--end", metavar="INSTANT",
                                help=f"end of the range{what} (default: --as-of, else now)")
        if name in ("rfm", "clv"):
            parser.add_argument("--limit", type=int, default=None, metavar="N",
                                help="only the first N members (by id; default all)"
                                if name == "rfm" else
                                "the N members of highest expected value (default 20)")
        if name == "clv":
            parser.add_argument("--horizon", type=float, default=52.0, metavar="WEEKS",
                                help="the horizon of the prediction in weeks (default 52)")
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the report ``args.report`` (and draw it with ``--plot``)."""
    as_of = None if args.as_of is None else parse_instant(args.as_of, "--as-of")
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise CliError("--limit must be at least 1", status=2)
    with connect(args) as loyalty:
        data, rows, title = _REPORTS[args.report](loyalty, args, as_of)
        write(args.format, data, rows, title=title,
              columns=list(rows[0]) if rows else _COLUMNS[args.report])
        if getattr(args, "plot", None):
            _plot(args.report, loyalty, _plot_options(args, as_of), args.plot)
    return 0


def _plot_options(args: argparse.Namespace, as_of: dt.datetime | None) -> dict[str, Any]:
    """The command's options a picture takes: ``as_of``, and for the pictures over
    time (kpis, liability, tiers) ``period``, ``start`` and ``end`` (None: the
    picture's default), for liability ``wallet``, for clv ``horizon``."""
    options: dict[str, Any] = {"as_of": as_of}
    if args.report in _OVER_TIME:
        options["period"] = args.period
        options["start"] = None if args.start is None else parse_instant(args.start,
                                                                         "--start")
        options["end"] = None if args.end is None else parse_instant(args.end, "--end")
    if args.report == "liability":
        options["wallet"] = args.wallet
    if args.report == "clv":
        options["horizon"] = args.horizon
    return options


def _plot(name: str, loyalty: Loyalty, options: dict[str, Any], path: str) -> None:
    """Draw report ``name`` to ``path`` with ``loyaltykit.plots.draw_report`` (the
    ``plot`` extra), given the command's ``options`` (:func:`_plot_options`)."""
    import importlib

    try:
        plots: Any = importlib.import_module("loyaltykit.plots")
    except ImportError as exc:  # no loyaltykit.plots, or no matplotlib behind it
        raise CliError("drawing needs matplotlib: pip install 'loyaltykit[plot]'") from exc
    written = plots.draw_report(name, loyalty, path, **options)
    print(f"loyaltykit: drew {name} to {written}", file=sys.stderr)


def _money(value: Any) -> str | None:
    """Money as ``12.30 EUR`` in a table cell: an amount with more than two decimals
    (an average, a ratio's money) is shown rounded half up to cents; the JSON and CSV
    forms keep it exact."""
    if value is None:
        return None
    amount = value.amount
    if -amount.as_tuple().exponent > 2:
        amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{amount} {value.currency}"


def _rate(value: Any) -> str | None:
    return None if value is None else f"{value:.4f}"


def _liability(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
               ) -> tuple[Any, list[dict[str, Any]], str]:
    result = loyalty.reports.liability(as_of=as_of, wallet=args.wallet)
    rows = [{"field": k, "value": v} for k, v in (
        ("wallet", result.wallet), ("as_of", result.as_of.isoformat()),
        ("points", result.points), ("available", result.available),
        ("pending", result.pending), ("held", result.held), ("debt", result.debt),
        ("point_value", _money(result.point_value)), ("face_value", _money(result.face_value)),
        ("expected_redemption", _rate(result.expected_redemption)),
        ("basis", result.basis), ("liability", _money(result.liability)))]
    if args.format == "csv":
        return result.to_dict(), [flat(result.to_dict())], ""
    return result.to_dict(), rows, f"liability of {result.wallet}"


def _kpis(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
          ) -> tuple[Any, list[dict[str, Any]], str]:
    end = (parse_instant(args.end, "--end") if args.end is not None
           else as_of if as_of is not None else loyalty.clock.now())
    start = (parse_instant(args.start, "--start") if args.start is not None
             else end - dt.timedelta(days=365))
    found = loyalty.reports.kpis(args.period, start, end, wallet=args.wallet)
    data = []
    rows = []
    for k in found:
        derived = {
            "average_order_value": k.average_order_value,
            "orders_per_active_member": k.orders_per_active_member,
            "repeat_purchase_rate": k.repeat_purchase_rate,
            "retention_rate": k.retention_rate, "churn_rate": k.churn_rate,
            "redemption_rate": k.redemption_rate,
        }
        data.append({"label": k.period.label, **k.to_dict(), **to_data(derived)})
        rows.append({
            "period": k.period.label, "active": k.active_members, "new": k.new_members,
            "repeat": k.repeat_members, "orders": k.orders,
            "revenue": _money(k.revenue) if args.format == "table" else k.revenue.amount,
            "aov": (_money(k.average_order_value) if args.format == "table"
                    else None if k.average_order_value is None
                    else k.average_order_value.amount),
            "retention": _rate(k.retention_rate), "churn": _rate(k.churn_rate),
            "issued": k.points_issued, "redeemed": k.points_redeemed,
            "redemption": _rate(k.redemption_rate),
        })
    return data, rows, f"KPIs per {args.period}"


def _rfm(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
         ) -> tuple[Any, list[dict[str, Any]], str]:
    found = loyalty.reports.rfm(as_of=as_of)
    if args.limit is not None:
        found = found[:args.limit]
    rows = [{"member": r.member_id, "last_order": r.last_order_at.date().isoformat(),
             "recency_days": r.recency_days, "frequency": r.frequency,
             "monetary": _money(r.monetary) if args.format == "table" else r.monetary.amount,
             "r": r.r, "f": r.f, "m": r.m, "segment": r.segment} for r in found]
    return to_data(found), rows, "RFM"


def _clv(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
         ) -> tuple[Any, list[dict[str, Any]], str]:
    try:
        from loyaltykit import analytics
    except ImportError as exc:  # AnalyticsUnavailable
        raise CliError("clv needs numpy and scipy: pip install 'loyaltykit[analytics]'"
                       ) from exc
    end = as_of if as_of is not None else loyalty.clock.now()
    try:
        summary = analytics.summary_from(loyalty, end=end)
        values = analytics.clv(summary, analytics.fit_bgnbd(summary),
                               analytics.fit_gamma_gamma(summary), horizon=args.horizon)
    except LoyaltyError as exc:
        raise CliError(f"clv: the models cannot be fitted to the orders: {exc}") from exc
    ranked = sorted(values.rows(), key=lambda v: (-v.expected_value, v.member_id))
    ranked = ranked[:args.limit if args.limit is not None else 20]
    rows = [{"member": v.member_id, "expected_purchases": v.expected_purchases,
             "probability_alive": v.probability_alive,
             "expected_average_value": v.expected_average_value,
             "expected_value": v.expected_value,
             "historical": (_money(v.historical) if args.format == "table"
                            else None if v.historical is None else v.historical.amount)}
            for v in ranked]
    data = {"end": end, "horizon_weeks": args.horizon, "members": len(values),
            "top": ranked}
    return to_data(data), rows, f"CLV over {args.horizon:g} weeks (top {len(ranked)})"


def _tiers(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
           ) -> tuple[Any, list[dict[str, Any]], str]:
    found = loyalty.reports.tiers(as_of=as_of)
    rows = [{"tier": t.tier if t.tier is not None else "(none)", "members": t.members}
            for t in found.tiers]
    return found.to_dict(), rows, f"members per tier ({found.total} in all)"


def _totals(loyalty: Loyalty, args: argparse.Namespace, as_of: dt.datetime | None
            ) -> tuple[Any, list[dict[str, Any]], str]:
    found = loyalty.reports.totals(as_of=as_of, wallet=args.wallet)
    rows = [{k: v for k, v in t.to_dict().items() if k != "as_of"} for t in found]
    return to_data(found), rows, "totals per wallet"


#: The columns of each report's table when it has no rows.
_COLUMNS = {
    "liability": ["field", "value"],
    "kpis": ["period", "active", "new", "repeat", "orders", "revenue", "aov", "retention",
             "churn", "issued", "redeemed", "redemption"],
    "rfm": ["member", "last_order", "recency_days", "frequency", "monetary", "r", "f", "m",
            "segment"],
    "clv": ["member", "expected_purchases", "probability_alive", "expected_average_value",
            "expected_value", "historical"],
    "tiers": ["tier", "members"],
    "totals": ["wallet", "members", "issued", "redeemed", "expired", "written_off",
               "available", "pending", "held", "debt", "outstanding"],
}

_REPORTS = {"liability": _liability, "kpis": _kpis, "rfm": _rfm, "clv": _clv,
            "tiers": _tiers, "totals": _totals}
