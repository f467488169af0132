"""A blocking stand-in for the async facade, so sync test code (the storage contract,
a shop's own tests) can drive :class:`~loyaltykit.aio.AsyncLoyalty` as if it were a
:class:`~loyaltykit.Loyalty`.

:class:`EventLoopThread` runs an event loop in a daemon thread; :class:`BlockingLoyalty`
turns each call ``x.name(*args, **kwargs)`` (and ``x.part.name(...)`` for the parts:
``tiers``, ``referrals``, ``privacy``, ``rewards``, ``payments``, ``events``,
``reports``) into ``await shop.run(lambda loyalty: loyalty.name(*args, **kwargs))`` on
that loop, and waits for it::

    loop = EventLoopThread()
    shop = AsyncLoyalty(program, create_async_engine("sqlite+aiosqlite:///shop.db"),
                        clock=clock)
    loyalty = BlockingLoyalty(shop, loop)
    loyalty.enrol("alice")
    loyalty.tiers.status("alice")
    ...
    loop.close()

Every call is a real call of the async facade: its queries go through the async driver
in SQLAlchemy's greenlet bridge, its conflicting writes wait with ``asyncio.sleep``. A
call's exception is raised unchanged (the same object) to the caller. Calls from several
threads run concurrently on the one loop, as concurrent requests of an async app do.

Lazy results (iterators: ``events.follow``, ``reports.purchases``) stay lazy: each step
(``next()``) runs as a call of its own, so ``follow`` still acknowledges a batch when the
next event is asked for. A step that waits (``follow`` with nothing to read) blocks the
loop's thread for that wait, which :class:`~loyaltykit.aio.AsyncLoyalty` warns against in
an app; here it only delays the stand-in's other calls.

This module imports no pytest; it needs the ``async`` extra.
"""

from __future__ import annotations

import asyncio
import threading
import typing
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from loyaltykit._clock import Clock
from loyaltykit._errors import SerializationFailure
from loyaltykit._facade import Loyalty
from loyaltykit._program import Program
from loyaltykit.storage import Storage

if TYPE_CHECKING:
    from loyaltykit.aio import AsyncLoyalty

__all__ = ["BlockingLoyalty", "EventLoopThread"]

R = TypeVar("R")

#: the facade's parts (``loyalty.tiers`` ...), by name: their classes
_PARTS: dict[str, type] = {
    name: kind for name, kind in typing.get_type_hints(Loyalty).items()
    if not name.startswith("_") and isinstance(kind, type)}

_END = object()


class EventLoopThread:
    """An asyncio event loop running in a daemon thread of its own, until :meth:`close`."""

    def __init__(self, name: str = "loyaltykit-async") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (to schedule on it from other threads)."""
        return self._loop

    def run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        """Run ``coroutine`` on the loop, wait for it and return its result (or raise its
        exception). Not from the loop's own thread: that would wait for ever."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("EventLoopThread.run called from its own loop's thread "
                               "(a callback of a call calling the facade again)")
        if self._closed:
            coroutine.close()
            raise RuntimeError("the event loop thread is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Finish the loop's async generators, stop the loop and its thread (idempotent)."""
        if self._closed:
            return
        self.run(self._loop.shutdown_asyncgens())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class BlockingLoyalty:
    """What looks like a :class:`~loyaltykit.Loyalty` to sync code and runs every call
    through ``shop`` (an :class:`~loyaltykit.aio.AsyncLoyalty`) on ``loop``.

    Building it runs a first (empty) call, so the program is checked against the stored
    versions now, as the sync constructor does (a refused program raises here).
    :attr:`program` and :attr:`clock` are the async facade's; :attr:`storage` is
    ``storage`` if given (a sync storage on the same database, for checks that read the
    storage directly; the calls never use it). :meth:`bind` is not offered: bind the
    async facade to an ``AsyncConnection`` (:meth:`AsyncLoyalty.bind`) and wrap that.
    """

    def __init__(self, shop: AsyncLoyalty, loop: EventLoopThread, *,
                 storage: Storage | None = None) -> None:
        self._shop = shop
        self._loop = loop
        self._storage = storage
        self.run(lambda loyalty: None)

    @property
    def program(self) -> Program:
        """The program the async facade runs (the version in force for new writes)."""
        program: Program = self.run(lambda loyalty: loyalty.program)
        return program

    @property
    def clock(self) -> Clock:
        """The async facade's clock."""
        return self._shop.clock

    @property
    def storage(self) -> Storage:
        """The sync storage given when built (same database as the async facade's)."""
        if self._storage is None:
            raise AttributeError("this BlockingLoyalty was built without a sync storage")
        return self._storage

    @property
    def shop(self) -> AsyncLoyalty:
        """The async facade every call runs through."""
        return self._shop

    def run(self, call: Callable[[Loyalty], R]) -> R:
        """``await shop.run(call)`` on the loop; an iterator it returns is stepped lazily,
        each step a call of its own (see the module docstring)."""
        result = self._loop.run(self._shop.run(call))
        if isinstance(result, Iterator):
            steps: Iterator[Any] = _Steps(self, result)
            return typing.cast(R, steps)
        return result

    def bind(self, storage: object) -> Loyalty:
        """Not offered (see the class docstring)."""
        raise NotImplementedError(
            "BlockingLoyalty runs on its AsyncLoyalty's engine: bind the AsyncLoyalty to "
            "an AsyncConnection and wrap that instead")

    def register(self) -> None:
        """Store this version of the program now (:meth:`Loyalty.register`)."""
        self._loop.run(self._shop.register())

    def __getattr__(self, name: str) -> Any:
        if name in _PARTS:
            return _Part(self, name, _PARTS[name])
        if not name.startswith("_") and callable(getattr(Loyalty, name, None)):
            return _call(self, None, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"BlockingLoyalty({self._shop!r})"


class _Part:
    """A part of the facade (``loyalty.tiers``): its calls run as the facade's do."""

    def __init__(self, owner: BlockingLoyalty, name: str, kind: type) -> None:
        self._owner = owner
        self._name = name
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and callable(getattr(self._kind, name, None)):
            return _call(self._owner, self._name, name)
        part = self._name
        return self._owner.run(lambda loyalty: getattr(getattr(loyalty, part), name))

    def __repr__(self) -> str:
        return f"<{self._name} of {self._owner!r}>"


def _call(owner: BlockingLoyalty, part: str | None, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        def on(loyalty: Loyalty) -> Any:
            target = loyalty if part is None else getattr(loyalty, part)
            return getattr(target, name)(*args, **kwargs)
        return owner.run(on)

    call.__name__ = call.__qualname__ = name
    return call


class _Steps(Iterator[Any]):
    """An iterator of the sync facade, each ``next()`` run as a call of the async one."""

    def __init__(self, owner: BlockingLoyalty, inner: Iterator[Any]) -> None:
        self._owner = owner
        self._inner = inner

    def __next__(self) -> Any:
        attempts = 0
        inner = self._inner

        def step(loyalty: Loyalty) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # a step that conflicted is not run again: its iterator ended with the
                # conflict (the facade runs a conflicting call again, from its start)
                raise SerializationFailure(
                    "a step of an iterator conflicted with a concurrent write: start it "
                    "again")
            return next(inner, _END)  # (StopIteration may not leave a coroutine)

        value = self._owner._loop.run(self._owner._shop.run(step))
        if value is _END:
            raise StopIteration
        return value

    def close(self) -> None:
        """Close the underlying iterator (runs its cleanup) as a call of its own."""
        close = getattr(self._inner, "close", None)
        if callable(close):
            self._owner._loop.run(self._owner._shop.run(lambda loyalty: close()))
