"""The reports' reads over recorded orders (program-wide, read only)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["OrderReportReads"]


class OrderReportReads(Protocol):
    """Set-based aggregates over the unit of work's program's orders: one statement
    per read, never one per member. Member ids here are member keys (the service shows
    shop ids)."""
