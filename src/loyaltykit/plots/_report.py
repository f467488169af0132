"""One entry point for the command line: the picture of a report by the report's name
(``loyaltykit report NAME --plot FILE``), with the command line's defaults."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._facade import Loyalty
from loyaltykit._periods import Period, PeriodRange, period_ranges, report_periods
from loyaltykit._validate import check_instant
from loyaltykit.plots._data import (
    check_loyalty,
    clv_distribution,
    cohort_retention,
    liability_over_time,
    rfm_segments,
    tiers_over_time,
)
from loyaltykit.plots._draw import check_path, draw
from loyaltykit.plots._figures import ClvDistribution

__all__ = ["CLV_HORIZON_WEEKS", "DEFAULT_PERIODS", "PICTURES", "draw_report"]

#: The report each picture belongs to, and what it shows.
PICTURES = {
    "kpis": "retention by cohort (heat map)",
    "rfm": "RFM segment sizes (bars)",
    "liability": "liability and breakage over time (lines)",
    "clv": "distribution of the expected customer value (histogram)",
    "tiers": "tier distribution over time (stacked bars)",
}
#: Without ``start``, a picture over time shows this many periods up to ``end``.
DEFAULT_PERIODS = 12
#: The CLV picture's horizon: the value expected over the next 52 weeks.
CLV_HORIZON_WEEKS = 52
_TICK = dt.timedelta(microseconds=1)


def _window(loyalty: Loyalty, period: Period | str, as_of: dt.datetime | None,
            start: dt.datetime | None, end: dt.datetime | None
            ) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` with the defaults: ``end`` is ``as_of`` or now; ``start`` the
    beginning of the :data:`DEFAULT_PERIODS`-th period back (the one holding the
    instant before ``end`` counts as the last)."""
    last = (check_instant(end, "end") if end is not None
            else check_instant(as_of, "as_of") if as_of is not None
            else loyalty.clock.now())
    if start is not None:
        return check_instant(start, "start"), last
    tz = loyalty.program.time_zone
    ranges: list[PeriodRange] = report_periods(period, last - _TICK, last, tz)
    first = ranges[0]
    for _ in range(DEFAULT_PERIODS - 1):
        first = period_ranges(first.period, first.start - _TICK, first.start, tz)[0]
    return first.start, last


def _clv(loyalty: Loyalty, as_of: dt.datetime | None, start: dt.datetime | None,
         end: dt.datetime | None, horizon: float) -> ClvDistribution:
    from loyaltykit.analytics import clv, fit_bgnbd, fit_gamma_gamma, summary_from

    until = end if end is not None else as_of
    calibration = summary_from(loyalty, end=until, start=start)
    purchases, value = fit_bgnbd(calibration), fit_gamma_gamma(calibration)
    for model, fit in (("BG/NBD", purchases), ("Gamma-Gamma", value)):
        if not fit.converged:  # its values would be no estimate worth drawing
            raise InvalidInput("the CLV model did not converge on these orders",
                               model=model, customers=fit.customers)
    return clv_distribution(clv(calibration, purchases, value, horizon=horizon))


def draw_report(name: str, loyalty: Loyalty, path: str | os.PathLike[str], *,
                as_of: dt.datetime | None = None, period: Period | str | None = None,
                start: dt.datetime | None = None, end: dt.datetime | None = None,
                wallet: str | None = None, horizon: float = CLV_HORIZON_WEEKS,
                title: str | None = None) -> Path:
    """Draw the picture of report ``name`` (a key of :data:`PICTURES`) to ``path``
    (``.png`` or ``.svg``) and return the path: what ``loyaltykit report NAME --plot
    FILE`` writes.

    - ``"kpis"``: retention by cohort (:func:`cohort_retention`);
    - ``"rfm"``: RFM segment sizes at ``as_of`` (or ``end``; default now);
    - ``"liability"``: liability and breakage of ``wallet`` (default the program's
      default wallet) at each period's end (:func:`liability_over_time`);
    - ``"clv"``: the distribution of the value expected over the next ``horizon``
      weeks (default :data:`CLV_HORIZON_WEEKS`; BG/NBD and Gamma-Gamma fitted on the orders in
      ``[start, end)``, end default ``as_of`` or now; needs ``loyaltykit[analytics]``;
      a model that does not converge on the orders raises
      :class:`~loyaltykit.InvalidInput`);
    - ``"tiers"``: members per tier at each period's end (:func:`tiers_over_time`).

    Pictures over time use calendar ``period``\\ s (default month) overlapping
    ``[start, end)``: ``end`` defaults to ``as_of`` or now, ``start`` to
    :data:`DEFAULT_PERIODS` periods back. ``"totals"`` and unknown names raise
    :class:`~loyaltykit.InvalidInput`, as does a bad path (checked before any report
    is read); the reports' own errors pass through; nothing is written on error.
    """
    if not isinstance(name, str) or name not in PICTURES:
        if name == "totals":
            raise InvalidInput("no picture for totals", report=name,
                               pictures=sorted(PICTURES))
        raise InvalidInput("no picture for this report", report=shown(name),
                           pictures=sorted(PICTURES))
    check_path(path)
    loyalty = check_loyalty(loyalty)
    figures: Any
    if name == "rfm":
        figures = rfm_segments(loyalty, as_of=as_of if as_of is not None else end)
    elif name == "clv":
        figures = _clv(loyalty, as_of, start, end, horizon)
    else:
        which = Period.MONTH if period is None else period
        lo, hi = _window(loyalty, which, as_of, start, end)
        if name == "kpis":
            figures = cohort_retention(loyalty, which, lo, hi)
        elif name == "liability":
            figures = liability_over_time(loyalty, which, lo, hi, wallet=wallet)
        else:
            figures = tiers_over_time(loyalty, which, lo, hi)
    return draw(figures, path, title=title)
