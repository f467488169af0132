"""The reports' reads over the ledger, tiers and members (program-wide, read only)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["LedgerReportReads"]


class LedgerReportReads(Protocol):
    """Set-based aggregates over members, accounts, postings, lots and tier states of
    the unit of work's program: one statement per read, never one per member.
    Member ids here are member keys (the service shows shop ids)."""
