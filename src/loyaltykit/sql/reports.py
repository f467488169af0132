"""The reports' store in SQL (read only)."""

from __future__ import annotations

from loyaltykit.sql.report_ledger import SQLLedgerReports
from loyaltykit.sql.report_orders import SQLOrderReports

__all__ = ["SQLReportStore"]


class SQLReportStore(SQLLedgerReports, SQLOrderReports):
    """Program-wide reads of one unit of work's program."""
