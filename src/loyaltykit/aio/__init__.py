"""The async facade: loyaltykit on SQLAlchemy's asyncio engines.

:class:`AsyncLoyalty` runs the calls of a :class:`~loyaltykit.Loyalty` from async code,
on an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (each call its own transactions, as
the sync facade on an engine) or inside the caller's
:class:`~sqlalchemy.ext.asyncio.AsyncConnection` (committed or rolled back with the
caller's rows). Drivers: ``sqlite+aiosqlite://`` and ``postgresql+psycopg_async://``
(``pip install 'loyaltykit[async]'``); make SQLite engines with
:func:`create_async_engine`, which installs loyaltykit's SQLite settings.
"""

from __future__ import annotations

from loyaltykit.aio._facade import AsyncEvents, AsyncLoyalty, create_async_engine

__all__ = ["AsyncEvents", "AsyncLoyalty", "create_async_engine"]
