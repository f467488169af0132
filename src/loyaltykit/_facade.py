"""The facade: one call per use case, bound to a program, a storage and a clock.

:class:`Loyalty` only wires: it checks the program version against the stored ones
(only reads: :mod:`loyaltykit._services.registration` stores it, at ``register()`` or
before the first write), builds the capability services on one shared
:class:`~loyaltykit._services.context.Context` (program, storage, clock, write
pipeline, event bus), subscribes them to each other's domain events, and exposes their
calls. :meth:`Loyalty.bind` builds the same wiring on another storage (a request's
connection) without checking the program again. The everyday ledger and order calls are flat
(``loyalty.earn(...)``); tiers and referrals live behind ``loyalty.tiers`` and
``loyalty.referrals``.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

import attrs

from loyaltykit._clock import Clock, SystemClock
from loyaltykit._errors import InvalidInput, shown
from loyaltykit._program import Program
from loyaltykit._referrals import FraudCheck
from loyaltykit._services.context import Context
from loyaltykit._services.due import DueWork
from loyaltykit._services.events import EventService
from loyaltykit._services.ledger import LedgerService
from loyaltykit._services.ledger_reads import LedgerReads
from loyaltykit._services.notices import NoticeService
from loyaltykit._services.order_import import OrderImport
from loyaltykit._services.orders import OrderService
from loyaltykit._services.payments import PaymentService
from loyaltykit._services.privacy import PrivacyService
from loyaltykit._services.referral_events import ReferralChanged, ReferralEvents
from loyaltykit._services.referrals import ReferralService
from loyaltykit._services.registration import Registration
from loyaltykit._services.reports import ReportService
from loyaltykit._services.reward_events import map_reward_events
from loyaltykit._services.rewards import RewardService
from loyaltykit._services.tier_events import TierEvents
from loyaltykit._services.tiers import TierService
from loyaltykit._tiers import TierChanged
from loyaltykit._values import check_aware
from loyaltykit._values import new_id as _new_id
from loyaltykit.storage import Storage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["Loyalty"]

#: The most retries a facade may be told to make of a conflicting write.
MAX_RETRIES = 100

P = ParamSpec("P")
R = TypeVar("R")


class _Delegate(Generic[P, R]):
    """A facade method that hands off to the same-named method of a service.

    On the class it is the service's function (for ``help()`` and ``inspect``); on an
    instance, the bound method of the instance's service."""

    def __init__(self, service: str, function: Callable[Concatenate[Any, P], R]) -> None:
        self._service = service
        self._function = function
        self.__doc__ = function.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Callable[Concatenate[Any, P], R]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Callable[P, R]: ...
    def __get__(self, instance: object | None, owner: type
                ) -> Callable[Concatenate[Any, P], R] | Callable[P, R]:
        if instance is None:
            return self._function
        method: Callable[P, R] = getattr(getattr(instance, self._service),
                                         self._function.__name__)
        return method


def _to(service: str, function: Callable[Concatenate[Any, P], R]) -> _Delegate[P, R]:
    return _Delegate(service, function)


class Loyalty:
    """The public API of one program: enrol, earn, spend, hold, orders, balances.

    >>> import datetime as dt
    >>> from loyaltykit import Loyalty, Money, Program, TestClock
    >>> from loyaltykit.memory import MemoryStorage
    >>> program = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
    ...                   point_value=Money("0.01", "EUR"))
    >>> clock = TestClock(dt.datetime(2026, 1, 15, 9, tzinfo=dt.timezone.utc))
    >>> loyalty = Loyalty(program, MemoryStorage(), clock=clock)
    >>> _ = loyalty.enrol("alice")
    >>> loyalty.earn("alice", 100, key="order-1").balance.available
    100

    Every write takes an idempotency ``key`` (unique per program) and optionally the
    business instant ``at`` (default: the clock's now; never later than it). The same
    key with the same request returns the original result and writes nothing; with a
    different request it raises :class:`~loyaltykit.IdempotencyConflict`.

    Tiers are behind :attr:`tiers` (``loyalty.tiers.status(member_id)``), referrals
    behind :attr:`referrals` (``loyalty.referrals.refer(referee_id, code)``), erasure
    and export behind :attr:`privacy` (``loyalty.privacy.erase(member_id)``), rewards
    behind :attr:`rewards` (``loyalty.rewards.redeem(member_id, reward_id, key=...)``),
    points as payment behind :attr:`payments` (``loyalty.payments.quote(order)``), the
    outbox behind :attr:`events` (``loyalty.events.read("mailer")``), program-wide reports
    behind :attr:`reports` (``loyalty.reports.totals()``).
    """

    #: tier status, history, progress, manual tiers and notices
    tiers: TierService
    #: referral codes, attribution, decisions and stats
    referrals: ReferralService
    #: erasure and export of members (DESIGN §11)
    privacy: PrivacyService
    #: redeeming rewards for vouchers; using, cancelling and reading vouchers
    rewards: RewardService
    #: points as payment: a cart's usable points, checkout holds (DESIGN §7)
    payments: PaymentService
    #: the outbox: every change as an event, read by named consumers (DESIGN §8)
    events: EventService
    #: program-wide reports: totals, liability, KPIs, RFM (DESIGN §9; read only)
    reports: ReportService

    def __init__(
        self,
        program: Program,
        storage: Storage,
        *,
        clock: Clock | None = None,
        new_id: Callable[[], uuid.UUID] = _new_id,
        max_retries: int = 5,
        secret: bytes | Sequence[bytes] | None = None,
        fraud_checks: Sequence[FraudCheck] | None = None,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        if not isinstance(program, Program):
            raise InvalidInput("program must be a Program", program=shown(program))
        _check_storage(storage)
        _check_wiring(clock, new_id, max_retries, randbelow)
        self._settings = _Settings(clock if clock is not None else SystemClock(), new_id,
                                   max_retries, secret, fraud_checks, randbelow)
        registration = Registration(program)
        self._wire(program, storage, registration, {})
        self._c.now()  # a clock telling an instant out of range is refused here
        # reads only: a version that conflicts with a stored one is refused here; it is
        # stored by register() or before the first write
        registration.check(storage)

    def _wire(self, program: Program, storage: Storage, registration: Registration,
              versions: dict[int, Program]) -> None:
        """Build the services on one context and subscribe them to each other."""
        s = self._settings
        self._c = c = Context(program, storage, s.clock, new_id=s.new_id,
                              max_retries=s.max_retries, registration=registration,
                              versions=versions)
        self._ledger = LedgerService(
            c, lambda code, identity: self.referrals.enrolment_extras(code, identity))
        self._reads = LedgerReads(c, self._ledger)
        self._orders = OrderService(c, self._ledger)
        self._import = OrderImport(c, self._ledger, self._orders)
        self._due = DueWork(c, self._ledger)
        self.tiers = TierService(c, self._ledger)
        self.referrals = ReferralService(c, self._ledger, secret=s.secret,
                                         fraud_checks=s.fraud_checks, randbelow=s.randbelow)
        self.privacy = PrivacyService(c, self._ledger)
        self.rewards = RewardService(c, self._ledger, randbelow=s.randbelow)
        self.payments = PaymentService(c, self._ledger)
        self.events = EventService(c, self._ledger)
        self.reports = ReportService(c)
        # what reacts to what: subscribers run inside the writer's unit of work; the
        # outbox first, so a change's own event comes before its reactions' events
        self.events.subscribe(c.bus)
        self.events.map(TierChanged, TierEvents(program), c.bus)
        self.events.map(ReferralChanged, ReferralEvents(program), c.bus)
        map_reward_events(self.events)  # reward.redeemed, voucher.used/cancelled/expired
        self.tiers.subscribe(c.bus)
        self.referrals.subscribe(c.bus)
        self.rewards.subscribe(c.bus)
        if program.tiers is not None:
            self._orders.tier_of = self.tiers.tier_of
            self.rewards.tier_of = self.tiers.tier_of
            self._due.add(self.tiers.due, "tiers")
        # whatever this version's catalogue: vouchers of an earlier one may still be out
        self._due.add(self.rewards.due, "rewards")
        self._due.add(self.events.due, "events")
        self._due.add(NoticeService(c).due, "notices")

    def bind(self, storage: Storage | Connection) -> Loyalty:
        """A facade of the same program on ``storage``, typically a request's: a
        SQLAlchemy :class:`~sqlalchemy.engine.Connection` (wrapped in
        :class:`~loyaltykit.sql.SQLStorage`, joining its transaction; ``notify`` as
        this facade's storage has it) or any :class:`~loyaltykit.storage.Storage`.

        The program was checked when this facade was built: binding checks nothing
        again and runs no query; the new facade shares this one's clock, id source,
        retries, referral secret and checks. Bind to the same database this facade was
        built on (another database: build a :class:`Loyalty` for it). Building and
        binding write nothing: the program version is stored by :meth:`register` or
        before the first write (see :meth:`register`), so a facade bound to a read-only
        connection (a replica) reads, and a write there raises
        :class:`~loyaltykit.StorageError` (:class:`~loyaltykit.ReadOnlyViolation`),
        writing nothing.
        """
        if _is_connection(storage):
            from loyaltykit.sql import SQLStorage

            notify = getattr(self.storage, "notify", False)
            storage = SQLStorage(cast("Connection", storage),
                                 notify=notify if isinstance(notify, bool) else False)
        _check_storage(storage)
        bound = Loyalty.__new__(Loyalty)
        bound._settings = self._settings
        bound._wire(self.program, cast("Storage", storage), self._c.registration,
                    self._c.versions)
        return bound

    def register(self) -> None:
        """Store this version of the program now, after checking it against every
        stored version (a refused one raises :class:`~loyaltykit.ProgramVersionConflict`
        and writes nothing); nothing if it is stored already.

        Building a facade only reads (and refuses a conflicting version); without a
        call of ``register()`` the version is stored just before this facade's first
        write, in a unit of work of its own (on a host's connection, inside the host's
        transaction). Reads of a version never stored see an empty program. Call it at
        start-up or deploy (after migrating) so no request pays for it; facades bound
        from this one then know it is stored."""
        self._c.register()

    @property
    def program(self) -> Program:
        """The program this facade runs (its version in force for new writes)."""
        return self._c.program

    @property
    def storage(self) -> Storage:
        """Where the program's ledger is kept."""
        return self._c.storage

    @property
    def clock(self) -> Clock:
        """The clock every call reads "now" from (may be replaced, e.g. in tests)."""
        return self._c.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        _check_clock(clock)
        self._c.clock = clock

    def __repr__(self) -> str:
        return f"Loyalty(program={self.program.id!r}, storage={self.storage!r})"

    # -- members and points (the ledger) --------------------------------------------------
    enrol = _to("_ledger", LedgerService.enrol)
    earn = _to("_ledger", LedgerService.earn)
    spend = _to("_ledger", LedgerService.spend)
    hold = _to("_ledger", LedgerService.hold)
    capture = _to("_ledger", LedgerService.capture)
    void = _to("_ledger", LedgerService.void)
    activate = _to("_ledger", LedgerService.activate)
    reverse = _to("_ledger", LedgerService.reverse)
    adjust = _to("_ledger", LedgerService.adjust)
    clawback = _to("_ledger", LedgerService.clawback)
    transfer = _to("_ledger", LedgerService.transfer)
    bulk_earn = _to("_ledger", LedgerService.bulk_earn)

    # -- reads ------------------------------------------------------------------------------
    member = _to("_reads", LedgerReads.member)
    balance = _to("_reads", LedgerReads.balance)
    statement = _to("_reads", LedgerReads.statement)
    transaction = _to("_reads", LedgerReads.transaction)
    hold_info = _to("_reads", LedgerReads.hold_info)
    lots = _to("_reads", LedgerReads.lots)

    # -- orders and events ------------------------------------------------------------------
    quote = _to("_orders", OrderService.quote)
    record_order = _to("_orders", OrderService.record_order)
    record_orders = _to("_import", OrderImport.record_orders)
    record_return = _to("_orders", OrderService.record_return)
    cancel_order = _to("_orders", OrderService.cancel_order)
    record_event = _to("_orders", OrderService.record_event)
    order = _to("_orders", OrderService.order)

    # -- due work ---------------------------------------------------------------------------
    run_due = _to("_due", DueWork.run_due)


@attrs.frozen
class _Settings:
    """What a facade was built with, shared by the facades bound from it."""

    clock: Clock
    new_id: Callable[[], uuid.UUID]
    max_retries: int
    secret: bytes | Sequence[bytes] | None
    fraud_checks: Sequence[FraudCheck] | None
    randbelow: Callable[[int], int]


def _is_connection(value: object) -> bool:
    """True if ``value`` is a SQLAlchemy connection (SQLAlchemy is not imported for it)."""
    engine = sys.modules.get("sqlalchemy.engine")
    return engine is not None and isinstance(value, engine.Connection)


def _check_storage(storage: object) -> None:
    """Refuse what cannot be a storage, before any use."""
    if isinstance(storage, type) or not all(
            callable(getattr(storage, name, None))
            for name in ("unit_of_work", "register_program")):
        raise InvalidInput("storage must be a Storage (MemoryStorage, SQLStorage, ...)",
                           storage=shown(storage))


def _check_wiring(clock: object, new_id: object, max_retries: object,
                  randbelow: object) -> None:
    """Refuse what cannot be a clock or a source of ids, before any use."""
    if clock is not None:
        _check_clock(clock)
    for name, value in (("new_id", new_id), ("randbelow", randbelow)):
        if not callable(value):
            raise InvalidInput(f"{name} must be callable", **{name: shown(value)})
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) \
            or not 0 <= max_retries <= MAX_RETRIES:
        raise InvalidInput(f"max_retries must be an int in 0..{MAX_RETRIES}",
                           max_retries=shown(max_retries))


def _check_clock(clock: object) -> None:
    """Refuse what cannot be a clock: something without a ``now()`` telling an aware
    datetime (a datetime itself has a ``now``, which tells a naive one)."""
    if isinstance(clock, type) or not callable(getattr(clock, "now", None)):
        raise InvalidInput("clock must be a Clock (SystemClock, TestClock, ...)",
                           clock=shown(clock))
    check_aware(clock.now(), name="clock.now()")  # type: ignore[attr-defined]
