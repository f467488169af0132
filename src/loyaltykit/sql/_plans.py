"""A bounded cache of what a multi-row write works out once per statement (its plan):
shared by :mod:`loyaltykit.sql._many` (SQLite) and :mod:`loyaltykit.sql._many_pg`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import sqlalchemy as sa

__all__ = ["MAX_PLANS", "Plans"]

#: Plans kept (statements are module constants; a bound keeps a leak impossible).
MAX_PLANS = 512

P = TypeVar("P")


class Plans(Generic[P]):
    """Plans by (statement, dialect, parameter keys), each made once by ``make``
    (None: the statement has no plan). The statement is kept with its plan, so the
    ``id`` in the key stays its own."""

    def __init__(self, make: Callable[[sa.Dialect, sa.Executable, tuple[str, ...]], P | None]
                 ) -> None:
        self._make = make
        self._plans: dict[tuple[int, str, tuple[str, ...]],
                          tuple[sa.Executable, P | None]] = {}
        self._lock = threading.Lock()

    def of(self, dialect: sa.Dialect, stmt: sa.Executable, keys: tuple[str, ...]) -> P | None:
        """The plan of ``stmt`` for rows with ``keys`` on ``dialect``."""
        cache_key = (id(stmt), dialect.name, keys)
        found = self._plans.get(cache_key)
        if found is not None and found[0] is stmt:
            return found[1]
        plan = self._make(dialect, stmt, keys)
        with self._lock:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[cache_key] = (stmt, plan)
        return plan

