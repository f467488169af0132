"""In-memory reports over the ledger, tiers and members (the SQL reads' twin)."""

from __future__ import annotations

from loyaltykit.memory.tables import Tables, UndoLog

__all__ = ["MemoryLedgerReports"]


class MemoryLedgerReports:
    """:class:`~loyaltykit.storage.report_ledger.LedgerReportReads` in memory."""

    _uow: UndoLog
    _tables: Tables
