"""Reports over the ledger, tiers and members in SQL: set-based aggregates."""

from __future__ import annotations

from loyaltykit.sql._shared import Store

__all__ = ["SQLLedgerReports"]


class SQLLedgerReports(Store):
    """:class:`~loyaltykit.storage.report_ledger.LedgerReportReads` in SQL."""
