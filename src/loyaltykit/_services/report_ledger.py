"""Reports over the ledger, tiers and members: members, counts, totals per wallet,
tier distribution, points per period, liability and breakage (DESIGN §9)."""

from __future__ import annotations

from loyaltykit._services.context import Context

__all__ = ["LedgerReports"]


class LedgerReports:
    """The ledger's part of :class:`~loyaltykit._services.reports.ReportService`."""

    c: Context
