"""The in-memory reports' store (read only)."""

from __future__ import annotations

from loyaltykit.memory.report_ledger import MemoryLedgerReports
from loyaltykit.memory.report_orders import MemoryOrderReports
from loyaltykit.memory.tables import Tables, UndoLog

__all__ = ["MemoryReportStore"]


class MemoryReportStore(MemoryLedgerReports, MemoryOrderReports):
    """Program-wide reads of one unit of work's program, over the other stores' tables."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._tables = tables
