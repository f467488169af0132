"""The async facade (:class:`AsyncLoyalty`): each call runs the sync facade in
SQLAlchemy's greenlet bridge, so its queries go through the async driver and never block
the event loop.

A call's retries of a conflicting write do not sleep the loop's thread either: inside
the call the pipeline's backoff (:mod:`loyaltykit._waiting`) raises :class:`_RetryOutside`;
on an engine the call then waits with :func:`asyncio.sleep` and runs again (its writes
carry idempotency keys, so a write that committed before the conflict is replayed, not
written twice); on the caller's connection the conflict is the caller's transaction's,
and raises :class:`~loyaltykit.SerializationFailure` for the caller to retry it.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from loyaltykit._clock import Clock, SystemClock
from loyaltykit._errors import InvalidInput, RetryLimitExceeded, SerializationFailure, shown
from loyaltykit._facade import Loyalty, _check_wiring
from loyaltykit._program import Program
from loyaltykit._referrals import FraudCheck
from loyaltykit._services.events import EventService
from loyaltykit._values import new_id as _new_id
from loyaltykit._waiting import WAITER, delay
from loyaltykit.sql import SQLStorage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


__all__ = ["AsyncEvents", "AsyncLoyalty", "create_async_engine"]

P = ParamSpec("P")
R = TypeVar("R")


class _RetryOutside(BaseException):
    """Raised by the backoff inside a call: leave the greenlet, wait on the loop, retry.
    A BaseException, so no ``except Exception`` on the way swallows it."""

    def __init__(self, attempt: int) -> None:
        super().__init__(attempt)
        self.attempt = attempt


def _retry_outside(attempt: int) -> None:
    raise _RetryOutside(attempt)


def create_async_engine(url: str, **engine_kwargs: Any) -> AsyncEngine:
    """Like :func:`sqlalchemy.ext.asyncio.create_async_engine`, plus loyaltykit's SQLite
    settings for ``sqlite+aiosqlite`` URLs (WAL, foreign keys, a busy timeout and
    ``BEGIN IMMEDIATE``: see :func:`loyaltykit.sql.create_engine`)."""
    from sqlalchemy.ext.asyncio import create_async_engine as create

    from loyaltykit.sql.engine import configure_sqlite

    engine = create(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine.sync_engine)
    return engine


class _Runs(Protocol):
    async def run(self, call: Callable[[Loyalty], R]) -> R: ...


def _via(function: Callable[Concatenate[Any, P], R], part: str | None = None
         ) -> Callable[Concatenate[_Runs, P], Coroutine[Any, Any, R]]:
    """An async method that runs the facade's (or its ``part``'s) same-named call."""
    name = function.__name__

    async def call(self: _Runs, /, *args: P.args, **kwargs: P.kwargs) -> R:
        def on(loyalty: Loyalty) -> R:
            target = loyalty if part is None else getattr(loyalty, part)
            result: R = getattr(target, name)(*args, **kwargs)
            return result
        return await self.run(on)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = function.__doc__
    # help() and inspect show the sync call's parameters
    call.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return call


class AsyncEvents:
    """The outbox of an :class:`AsyncLoyalty` (``await shop.events.read("mailer")``)."""

    def __init__(self, shop: AsyncLoyalty) -> None:
        self._shop = shop

    async def run(self, call: Callable[[Loyalty], R]) -> R:
        """The shop's :meth:`AsyncLoyalty.run`."""
        return await self._shop.run(call)

    read = _via(EventService.read, "events")
    ack = _via(EventService.ack, "events")


class AsyncLoyalty:
    """A :class:`~loyaltykit.Loyalty` for async code, on an ``AsyncEngine`` or the
    caller's ``AsyncConnection``.

    ``await shop.run(lambda loyalty: loyalty.tiers.status("alice"))`` runs any calls of
    the sync facade (``loyalty``) and returns their result; the facade's top-level calls
    are here as coroutines (``await shop.earn("alice", 100, key="order-1")``), and the
    outbox as :attr:`events` (``await shop.events.read("mailer")``). Semantics are the
    sync facade's (see :class:`~loyaltykit.Loyalty`), with these differences:

    * On an ``AsyncEngine`` each call runs as the sync facade on an engine does (each
      write its own transaction, committed when the call returns). A write that
      conflicts with another is retried (at most ``max_retries`` times) after an
      ``asyncio.sleep``, never a sleep of the loop's thread: the whole of the call runs
      again, so every write in it must carry its idempotency key (they all do).
    * On the caller's ``AsyncConnection`` each call joins the caller's transaction
      (SAVEPOINTs; the caller commits or rolls back, loyaltykit's rows with its own). A
      conflicting write raises :class:`~loyaltykit.SerializationFailure`: retry the
      transaction. Calls on one connection must not run concurrently (as with any use
      of one connection).
    * Building checks nothing yet (no I/O in a constructor): the program is checked
      against the stored versions by the first call, or by :meth:`register`.
    * Due work runs on one connection at a time (``workers`` have no effect).
    * ``loyalty.events.follow`` blocks while it waits for events: do not run it
      through :meth:`run` (read and ack in a loop of your own, with ``asyncio.sleep``).
    """

    def __init__(
        self,
        program: Program,
        bind: AsyncEngine | AsyncConnection,
        *,
        clock: Clock | None = None,
        new_id: Callable[[], uuid.UUID] = _new_id,
        max_retries: int = 5,
        secret: bytes | Sequence[bytes] | None = None,
        fraud_checks: Sequence[FraudCheck] | None = None,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

        if not isinstance(program, Program):
            raise InvalidInput("program must be a Program", program=shown(program))
        if not isinstance(bind, AsyncEngine | AsyncConnection):
            raise InvalidInput("bind must be a SQLAlchemy AsyncEngine or AsyncConnection",
                               bind=shown(bind))
        _check_wiring(clock, new_id, max_retries, randbelow)
        self._program = program
        self._bind = bind
        self._max_retries = max_retries
        # resolved here (as Loyalty does), so :attr:`clock` tells the clock calls read
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._options: dict[str, Any] = dict(
            clock=self._clock, new_id=new_id, max_retries=max_retries, secret=secret,
            fraud_checks=fraud_checks, randbelow=randbelow)
        #: the facade built by the first call (checks the program), shared with the
        #: facades bound from this one
        self._shared = _Shared()
        #: the sync facade this one's calls run (built by its first call) and its bind
        self._own: tuple[object, Loyalty] | None = None
        #: the outbox: ``await shop.events.read(consumer)``, ``await shop.events.ack(...)``
        self.events = AsyncEvents(self)

    @property
    def program(self) -> Program:
        """The program this facade runs."""
        return self._program

    @property
    def clock(self) -> Clock:
        """The clock every call reads "now" from (the ``clock`` given, or a
        :class:`~loyaltykit.SystemClock`); shared by the facades bound from this one."""
        return self._clock

    def bind(self, connection: AsyncConnection) -> AsyncLoyalty:
        """A facade of the same program joining ``connection``'s transaction (a
        request's), sharing this one's settings; the program is checked once for all
        the facades bound from one (see :meth:`Loyalty.bind`). Binding runs no query."""
        from sqlalchemy.ext.asyncio import AsyncConnection

        if not isinstance(connection, AsyncConnection):
            raise InvalidInput("connection must be a SQLAlchemy AsyncConnection",
                               connection=shown(connection))
        bound = AsyncLoyalty.__new__(AsyncLoyalty)
        bound.__dict__.update(self.__dict__)
        bound._bind = connection
        bound._own = None
        bound.events = AsyncEvents(bound)
        return bound

    def __repr__(self) -> str:
        return f"AsyncLoyalty(program={self._program.id!r}, bind={self._bind!r})"

    async def run(self, call: Callable[[Loyalty], R]) -> R:
        """Run ``call`` with a sync :class:`~loyaltykit.Loyalty` of this program bound to
        this facade's engine or connection, and return what it returns. On an engine,
        ``call`` may run more than once (a conflicting write): write with keys, and do
        nothing in it but loyaltykit calls."""
        from sqlalchemy.ext.asyncio import AsyncConnection
        from sqlalchemy.util import greenlet_spawn

        bind = self._bind
        if isinstance(bind, AsyncConnection):
            try:
                return await bind.run_sync(self._in_greenlet, call)
            except _RetryOutside:
                raise SerializationFailure(
                    "a write conflicted with a concurrent one inside the caller's "
                    "transaction: roll it back and retry it",
                    program_id=self._program.id) from None
        attempt = 0
        while True:
            try:
                return await greenlet_spawn(self._in_greenlet, bind.sync_engine, call)
            except _RetryOutside:
                pass
            if attempt >= self._max_retries:
                raise RetryLimitExceeded("write kept conflicting", program_id=self._program.id,
                                         attempts=self._max_retries + 1)
            await asyncio.sleep(delay(attempt))
            attempt += 1

    async def register(self) -> None:
        """Store this version of the program now (see :meth:`Loyalty.register`)."""
        await self.run(lambda loyalty: loyalty.register())

    def _in_greenlet(self, bind: Engine | Connection, call: Callable[[Loyalty], R]) -> R:
        # a greenlet has a context of its own: set the waiter here, not before the spawn
        WAITER.set(_retry_outside)
        return call(self._facade(bind))

    def _facade(self, bind: Engine | Connection) -> Loyalty:
        own = self._own
        if own is not None and own[0] is bind:  # this facade's calls reuse their facade
            return own[1]
        shared = self._shared
        template = shared.template
        if template is None:
            # no lock: the check's queries switch to the event loop, and a lock held then
            # would stop every other call on the loop's thread; two first calls at once
            # both check, and the last one's facade is kept
            facade = template = Loyalty(self._program, _storage(bind), **self._options)
            shared.template, shared.bind = template, bind
        elif bind is shared.bind:
            facade = template
        else:
            facade = template.bind(_storage(bind))
        self._own = (bind, facade)
        return facade

    # -- members and points (the ledger) --------------------------------------------------
    enrol = _via(Loyalty.enrol)
    earn = _via(Loyalty.earn)
    spend = _via(Loyalty.spend)
    hold = _via(Loyalty.hold)
    capture = _via(Loyalty.capture)
    void = _via(Loyalty.void)
    activate = _via(Loyalty.activate)
    reverse = _via(Loyalty.reverse)
    adjust = _via(Loyalty.adjust)
    clawback = _via(Loyalty.clawback)
    transfer = _via(Loyalty.transfer)
    bulk_earn = _via(Loyalty.bulk_earn)

    # -- reads ------------------------------------------------------------------------------
    member = _via(Loyalty.member)
    balance = _via(Loyalty.balance)
    statement = _via(Loyalty.statement)
    transaction = _via(Loyalty.transaction)
    hold_info = _via(Loyalty.hold_info)
    lots = _via(Loyalty.lots)

    # -- orders and events ------------------------------------------------------------------
    quote = _via(Loyalty.quote)
    record_order = _via(Loyalty.record_order)
    record_orders = _via(Loyalty.record_orders)
    record_return = _via(Loyalty.record_return)
    cancel_order = _via(Loyalty.cancel_order)
    record_event = _via(Loyalty.record_event)
    order = _via(Loyalty.order)

    # -- due work ---------------------------------------------------------------------------
    run_due = _via(Loyalty.run_due)


class _OneAtATime(SQLStorage):
    """The storage of an async engine's calls: its units of work run one at a time
    (due work's threads could not reach the greenlet bridge)."""

    @property
    def concurrent(self) -> bool:
        """False: no unit of work runs in another thread."""
        return False


class _Shared:
    """The sync facade built by the first call of an async facade or of one bound from
    it (the program checked then), and what it was built on."""

    def __init__(self) -> None:
        self.template: Loyalty | None = None
        self.bind: object = None


def _storage(bind: Engine | Connection) -> SQLStorage:
    from sqlalchemy.engine import Engine

    return _OneAtATime(bind) if isinstance(bind, Engine) else SQLStorage(bind)
