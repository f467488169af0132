"""The reports' store: program-wide reads for :attr:`loyaltykit.Loyalty.reports`.

Read only (it has no change part): every read is one set-based statement over the
other capabilities' tables, and the memory backend answers exactly as the SQL ones.
It is split by what it reads: :class:`LedgerReportReads` (members, accounts,
postings, lots, tiers) and :class:`OrderReportReads` (orders).
"""

from __future__ import annotations

from typing import Protocol

from loyaltykit.storage.report_ledger import LedgerReportReads
from loyaltykit.storage.report_orders import OrderReportReads

__all__ = ["LedgerReportReads", "OrderReportReads", "ReportStore"]


class ReportStore(LedgerReportReads, OrderReportReads, Protocol):
    """Program-wide reads for reports (read only)."""
