"""In-memory reports over orders (the SQL reads' twin)."""

from __future__ import annotations

from loyaltykit.memory.tables import Tables, UndoLog

__all__ = ["MemoryOrderReports"]


class MemoryOrderReports:
    """:class:`~loyaltykit.storage.report_orders.OrderReportReads` in memory."""

    _uow: UndoLog
    _tables: Tables
