"""Reports over orders: KPIs per period, RFM, order facts for CLV (DESIGN §9)."""

from __future__ import annotations

from loyaltykit._services.context import Context

__all__ = ["OrderReports"]


class OrderReports:
    """The orders' part of :class:`~loyaltykit._services.reports.ReportService`."""

    c: Context
