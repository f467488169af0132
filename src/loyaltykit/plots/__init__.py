"""Pictures of the reports: what an analyst would rather look at than read (docs/reports.md
"Pictures").

Each picture comes in two parts:

1. a function computing the **figures** behind it from ``loyalty.reports`` (or
   :mod:`loyaltykit.analytics`): plain, immutable results with the JSON form of every
   result, needing no matplotlib:

   - :func:`cohort_retention`: members by the period of their first order, and the
     share of each cohort ordering again 0, 1, 2... periods later
     (:class:`CohortRetention`, a heat map);
   - :func:`rfm_segments`: members per RFM segment (:class:`RfmSegments`, bars);
   - :func:`liability_over_time`: liability, face value and breakage rate at the end
     of each period (:class:`LiabilityOverTime`, lines on two axes);
   - :func:`clv_distribution`: a histogram of expected customer values
     (:class:`ClvDistribution`);
   - :func:`tiers_over_time`: members per tier at the end of each period
     (:class:`TiersOverTime`, stacked bars);

2. :func:`draw`, which writes any of them to a PNG or SVG file (by the file's
   suffix) with matplotlib: ``pip install 'loyaltykit[plot]'``. matplotlib is imported
   only when a picture is drawn (on an Agg canvas of the picture's own, never pyplot);
   without it :func:`draw` raises :class:`~loyaltykit.PlotsUnavailable`.

:func:`draw_report` draws the picture of a report by its name, as the command line's
``loyaltykit report NAME --plot FILE`` does.

``import loyaltykit`` never imports this package; importing it imports no matplotlib.
"""

from __future__ import annotations

from loyaltykit.plots._data import (
    MAX_BINS,
    clv_distribution,
    cohort_retention,
    liability_over_time,
    rfm_segments,
    tiers_over_time,
)
from loyaltykit.plots._draw import DEFAULT_DPI, DEFAULT_SIZE, FORMATS, draw
from loyaltykit.plots._figures import (
    ClvDistribution,
    CohortRetention,
    CohortRow,
    LiabilityAt,
    LiabilityOverTime,
    RfmSegments,
    SegmentSize,
    TiersAt,
    TiersOverTime,
)
from loyaltykit.plots._report import (
    CLV_HORIZON_WEEKS,
    DEFAULT_PERIODS,
    PICTURES,
    draw_report,
)

__all__ = [
    "CLV_HORIZON_WEEKS",
    "ClvDistribution",
    "CohortRetention",
    "CohortRow",
    "DEFAULT_DPI",
    "DEFAULT_PERIODS",
    "DEFAULT_SIZE",
    "FORMATS",
    "LiabilityAt",
    "LiabilityOverTime",
    "MAX_BINS",
    "PICTURES",
    "RfmSegments",
    "SegmentSize",
    "TiersAt",
    "TiersOverTime",
    "clv_distribution",
    "cohort_retention",
    "draw",
    "draw_report",
    "liability_over_time",
    "rfm_segments",
    "tiers_over_time",
]
