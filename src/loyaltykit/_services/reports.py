"""The reports' service: read-only, program-wide reads (DESIGN §9).

``loyalty.reports`` answers from one set-based read per report through the reports'
store (:class:`~loyaltykit.storage.ReportStore`); it never writes. Instants default to
the clock's now; periods are calendar periods in the program's time zone
(:class:`~loyaltykit.Period`). Rows about one member show the shop's member id.
"""

from __future__ import annotations

from loyaltykit._services.context import Context
from loyaltykit._services.report_ledger import LedgerReports
from loyaltykit._services.report_orders import OrderReports
from loyaltykit._services.report_revenue import RevenueReports

__all__ = ["ReportService"]


class ReportService(LedgerReports, OrderReports, RevenueReports):
    """Program-wide reports: ``loyalty.reports`` (read only)."""

    def __init__(self, c: Context) -> None:
        self.c = c
        self._ledger_points = self.points
        self._ledger_totals = self.totals
        self._ledger_breakage = self.breakage

    def __repr__(self) -> str:
        return f"ReportService(program_id={self.c.program.id!r})"
