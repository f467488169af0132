"""The figures behind each picture: plain, immutable results with the JSON form of every
public result (docs/json.md), computed without matplotlib.

A leaf of :mod:`loyaltykit.plots`: it knows the reports' records, nothing of drawing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from loyaltykit._json import JsonForm
from loyaltykit._periods import Period, PeriodRange
from loyaltykit._values import Money

__all__ = [
    "ClvDistribution",
    "CohortRetention",
    "CohortRow",
    "LiabilityAt",
    "LiabilityOverTime",
    "RfmSegments",
    "SegmentSize",
    "TiersAt",
    "TiersOverTime",
]


@attrs.frozen
class CohortRow(JsonForm):
    """One cohort of :class:`CohortRetention`: the ``members`` whose first order that
    counts was placed in ``cohort``, and, for each period since then that the range
    covers (0 = the cohort's own period), how many of them placed at least one order
    in it (``active``) and which share of the cohort that is (``retention``, exact
    Decimals; None for a cohort without members)."""

    cohort: PeriodRange
    members: int
    active: tuple[int, ...]
    retention: tuple[Decimal | None, ...]


@attrs.frozen
class CohortRetention(JsonForm):
    """Retention by cohort (:func:`~loyaltykit.plots.cohort_retention`): one row per
    ``period`` of the range in time order (``periods``), each cohort observed for as
    many periods as the range has left after its own (a triangle)."""

    period: Period
    time_zone: str
    periods: tuple[PeriodRange, ...]
    cohorts: tuple[CohortRow, ...]

    @property
    def grid(self) -> list[list[Decimal | None]]:
        """The heat map's cells: one row per cohort, one column per period since the
        first order (as many as ``periods``), None where the range does not reach or
        the cohort has no members."""
        width = len(self.periods)
        return [[*row.retention, *[None] * (width - len(row.retention))]
                for row in self.cohorts]


@attrs.frozen
class SegmentSize(JsonForm):
    """How many members an RFM segment holds, and their share of all scored members
    (exact; None when no member was scored). ``segment`` None: no segment matched."""

    segment: str | None
    members: int
    share: Decimal | None


@attrs.frozen
class RfmSegments(JsonForm):
    """RFM segment sizes at ``as_of`` (:func:`~loyaltykit.plots.rfm_segments`): every
    segment of the table in its order, zeros included, then the members no segment
    matched (only if there are any). ``members`` is every scored member."""

    as_of: dt.datetime
    members: int
    segments: tuple[SegmentSize, ...]


@attrs.frozen
class LiabilityAt(JsonForm):
    """The liability and breakage of one period, read at ``as_of``: the period's last
    instant (everything before its end), the range's last instant if the range ends
    within the period, or now for the period now running.

    ``points``, ``face_value``, ``expected_redemption``, ``basis`` and ``liability``
    are those of :meth:`loyalty.reports.liability <loyaltykit.Liability>`;
    ``breakage_rate`` that of ``loyalty.reports.breakage`` (None without a closed
    cohort)."""

    period: PeriodRange
    as_of: dt.datetime
    points: int
    face_value: Money
    expected_redemption: Decimal
    basis: str
    liability: Money
    breakage_rate: Decimal | None


@attrs.frozen
class LiabilityOverTime(JsonForm):
    """Liability and breakage of ``wallet`` at the end of each ``period`` of a range
    (:func:`~loyaltykit.plots.liability_over_time`), in time order."""

    period: Period
    wallet: str
    currency: str
    rows: tuple[LiabilityAt, ...]


@attrs.frozen
class TiersAt(JsonForm):
    """Members per tier at the end of one period (``as_of``, as for
    :class:`LiabilityAt`), aligned with :attr:`TiersOverTime.tiers`."""

    period: PeriodRange
    as_of: dt.datetime
    members: tuple[int, ...]
    total: int


@attrs.frozen
class TiersOverTime(JsonForm):
    """The tier distribution at the end of each ``period`` of a range
    (:func:`~loyaltykit.plots.tiers_over_time`). ``tiers`` names the columns as
    ``loyalty.reports.tiers`` lists them: the program's tiers in ladder order, None
    (members without a tier), then tiers no longer in the program that the history
    still names."""

    period: Period
    tiers: tuple[str | None, ...]
    rows: tuple[TiersAt, ...]


@attrs.frozen
class ClvDistribution(JsonForm):
    """A histogram of expected customer values (:func:`~loyaltykit.plots.clv_distribution`).

    ``counts[i]`` values fall in ``[edges[i], edges[i + 1])``, the last bin closed on
    the right too (equal-width bins from the smallest value to the largest, as
    ``numpy.histogram`` makes them). ``horizon``, ``unit`` and ``currency`` describe the
    values when known (from :class:`~loyaltykit.analytics.CustomerValues`)."""

    values: tuple[float, ...]
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    horizon: float | None = None
    unit: str | None = None
    currency: str | None = None
