"""The reports' store in SQL (read only).

On PostgreSQL the reports' statements run with JIT compilation off (``SET LOCAL jit =
off``: for the unit of work's transaction or SAVEPOINT only, undone when a read ends).
Their aggregates over joined CTEs are estimated far above what they cost, which
switches JIT on, and compiling took longer than running: at 30,000 members the KPIs'
statement ran 2.3 s, of which 2.4 s of JIT work, and 0.2 s without it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from loyaltykit.sql.report_ledger import SQLLedgerReports
from loyaltykit.sql.report_orders import SQLOrderReports

__all__ = ["SQLReportStore"]


class SQLReportStore(SQLLedgerReports, SQLOrderReports):
    """Program-wide reads of one unit of work's program."""

    _jit_off_in: Any = None

    def _c(self) -> Connection:
        conn = super()._c()
        if conn.dialect.name == "postgresql":
            tx = conn.get_nested_transaction() or conn.get_transaction()
            if tx is not self._jit_off_in:
                conn.exec_driver_sql("SET LOCAL jit = off")
                self._jit_off_in = tx
        return conn
