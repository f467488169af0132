"""The storage contract through the async facade (:class:`~loyaltykit.aio.AsyncLoyalty`).

Mix :class:`AsyncFacade` in before a backend and a part (or :class:`StorageContract`):
the backend's :meth:`~ContractPart.make_storage` still makes the test's (sync) storage,
which the contract's direct checks read and write, while every facade the contract
builds (:meth:`~ContractPart.make_loyalty`) is an :class:`~loyaltykit.aio.AsyncLoyalty`
on an async engine to the same database, driven through
:class:`~loyaltykit.testing.async_facade.BlockingLoyalty` on an event loop in a thread
of its own (one per test)::

    from loyaltykit.testing.contract import StorageContract
    from loyaltykit.testing.contract.asynchronous import AsyncFacade

    class TestMyBackendAsync(AsyncFacade, StorageContract):
        def make_storage(self):
            return SQLStorage.from_url(MY_URL)      # the sync URL of the database

        def async_url(self, storage):               # optional: the default maps
            return MY_ASYNC_URL                     # sqlite -> sqlite+aiosqlite,
                                                    # postgresql -> postgresql+psycopg_async

Needs the ``async`` extra (SQLAlchemy's asyncio engines and the async driver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from loyaltykit import Loyalty, Program, Storage
from loyaltykit.testing.contract.base import ContractPart

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from loyaltykit.testing.async_facade import EventLoopThread

    _Mixin = ContractPart
else:
    # a mixin, not a part: it must come before the backend's hooks in a subclass's MRO
    # (a ContractPart base would put ContractPart's make_storage before the backend's)
    _Mixin = object

__all__ = ["AsyncFacade"]

#: sync driver names -> their async drivers (SQLAlchemy dialect+driver)
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg_async",
    "postgresql+psycopg": "postgresql+psycopg_async",
}


class AsyncFacade(_Mixin):
    """Run the contract's facades as :class:`~loyaltykit.aio.AsyncLoyalty` on an async
    engine to the test storage's database (see the module docstring).

    Mix it in first: ``class TestX(AsyncFacade, MyBackend, StorageContract)``. The
    facades of a test all run on the database of the first storage one is built on;
    another storage (a wrapper around the test's, which a facade on an async engine
    could not honour) is refused with :class:`TypeError`. The contract's tests whose
    subject is such a wrapper build the sync :class:`~loyaltykit.Loyalty` themselves.
    """

    _async_storage: Storage | None = None
    _async_loop: EventLoopThread | None = None
    _async_engine: AsyncEngine | None = None

    def async_url(self, storage: Storage) -> str:
        """The URL of ``storage``'s database for an async engine. Default: the URL of a
        :class:`~loyaltykit.sql.SQLStorage`'s engine with its driver made async
        (``sqlite+aiosqlite``, ``postgresql+psycopg_async``); override it for others."""
        engine = getattr(storage, "engine", None)
        url = getattr(engine, "url", None)
        if url is None:
            raise TypeError(f"no URL to derive an async one from: {storage!r} has no "
                            "engine; override async_url()")
        driver = _ASYNC_DRIVERS.get(url.drivername)
        if driver is None:
            raise TypeError(f"no async driver known for {url.drivername!r}; override "
                            "async_url()")
        text: str = url.set(drivername=driver).render_as_string(hide_password=False)
        return text

    def make_async_engine(self, storage: Storage) -> AsyncEngine:
        """The async engine the test's facades share (disposed after the test).
        Default: :func:`loyaltykit.aio.create_async_engine` on :meth:`async_url`."""
        from loyaltykit.aio import create_async_engine

        return create_async_engine(self.async_url(storage))

    def make_loyalty(self, program: Program, storage: Storage, **options: Any) -> Loyalty:
        """An :class:`~loyaltykit.aio.AsyncLoyalty` of ``program`` with ``options`` on
        the test's async engine, behind a :class:`BlockingLoyalty` (which checks the
        program now, as :class:`~loyaltykit.Loyalty` does)."""
        from loyaltykit.aio import AsyncLoyalty
        from loyaltykit.testing.async_facade import BlockingLoyalty, EventLoopThread

        if self._async_storage is None:
            self._async_storage = storage
        elif storage is not self._async_storage:
            raise TypeError(
                f"the async facade runs on the test storage's database, not on {storage!r}"
                ": build the sync Loyalty for a test of a wrapped storage")
        if self._async_loop is None:
            self._async_loop = EventLoopThread()
        if self._async_engine is None:
            self._async_engine = self.make_async_engine(storage)
        shop = AsyncLoyalty(program, self._async_engine, **options)
        return cast(Loyalty, BlockingLoyalty(shop, self._async_loop, storage=storage))

    def dispose_storage(self, storage: Storage) -> None:
        """Dispose the async engine on its loop, stop the loop, then the backend's own."""
        loop, engine = self._async_loop, self._async_engine
        self._async_loop = self._async_engine = self._async_storage = None
        try:
            if loop is not None:
                try:
                    if engine is not None:
                        loop.run(engine.dispose())
                finally:
                    loop.close()
        finally:
            super().dispose_storage(storage)
