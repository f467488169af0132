"""Reports over orders in SQL: set-based aggregates."""

from __future__ import annotations

from loyaltykit.sql._shared import Store

__all__ = ["SQLOrderReports"]


class SQLOrderReports(Store):
    """:class:`~loyaltykit.storage.report_orders.OrderReportReads` in SQL."""
