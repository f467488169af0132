"""The facade: one call per use case, bound to a program, a storage and a clock.

:class:`Loyalty` only wires: it registers the program version, builds the capability
services on one shared :class:`~loyaltykit._services.context.Context` (program,
storage, clock, write pipeline, event bus), subscribes them to each other's domain
events, and exposes their calls. The everyday ledger and order calls are flat
(``loyalty.earn(...)``); tiers and referrals live behind ``loyalty.tiers`` and
``loyalty.referrals``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from loyaltykit._clock import Clock, SystemClock
from loyaltykit._codes import CodeSpec, accepts_checks_of
from loyaltykit._errors import InvalidInput, ProgramVersionConflict, shown
from loyaltykit._model import ProgramVersion
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
from loyaltykit._services.reports import ReportService
from loyaltykit._services.reward_events import map_reward_events
from loyaltykit._services.rewards import RewardService
from loyaltykit._services.tier_events import TierEvents
from loyaltykit._services.tiers import TierService
from loyaltykit._tiers import TierChanged
from loyaltykit._values import check_aware
from loyaltykit._values import new_id as _new_id
from loyaltykit.storage import Storage

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
        _check_wiring(storage, clock, new_id, max_retries, randbelow)
        self._c = c = Context(program, storage, clock if clock is not None else SystemClock(),
                              new_id=new_id, max_retries=max_retries)
        self._ledger = LedgerService(
            c, lambda code, identity: self.referrals.enrolment_extras(code, identity))
        self._reads = LedgerReads(c, self._ledger)
        self._orders = OrderService(c, self._ledger)
        self._import = OrderImport(c, self._ledger, self._orders)
        self._due = DueWork(c, self._ledger)
        self.tiers = TierService(c, self._ledger)
        self.referrals = ReferralService(c, self._ledger, secret=secret,
                                         fraud_checks=fraud_checks, randbelow=randbelow)
        self.privacy = PrivacyService(c, self._ledger)
        self.rewards = RewardService(c, self._ledger, randbelow=randbelow)
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
            self._due.add(self.tiers.due)
        # whatever this version's catalogue: vouchers of an earlier one may still be out
        self._due.add(self.rewards.due)
        self._due.add(self.events.due)
        self._due.add(NoticeService(c).due)
        self._register(c)

    def _register(self, c: Context) -> None:
        """Store this version of the program unless it is stored already, after checking
        it against every stored version: a refused version writes nothing."""
        program = self.program
        with c.read() as uow:
            stored = uow.programs.program_versions()
            issued = uow.referrals.count_codes()
        _check_version(program, stored)
        if issued:
            _check_code_checks(program, stored)
        if any(v.version == program.version for v in stored):
            return
        c.storage.register_program(ProgramVersion(
            program.id, program.version, program.effective_from, program.to_dict(), c.now()))
        # another facade may have stored this version first, with another definition
        # (then ours was not written): compare with what is stored now
        with c.read() as uow:
            _check_version(program, uow.programs.program_versions())

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


def _check_wiring(storage: object, clock: object, new_id: object, max_retries: object,
                  randbelow: object) -> None:
    """Refuse what cannot be a storage, a clock or a source of ids, before any use."""
    if isinstance(storage, type) or not all(
            callable(getattr(storage, name, None))
            for name in ("unit_of_work", "register_program")):
        raise InvalidInput("storage must be a Storage (MemoryStorage, SQLStorage, ...)",
                           storage=shown(storage))
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


def _check_version(program: Program, stored: Sequence[ProgramVersion]) -> None:
    """Refuse ``program`` if its version is stored with another definition, or if it
    changes what every version of a program must keep."""
    definition = program.to_dict()
    for version in stored:
        if version.version == program.version and not _same(version, program):
            raise ProgramVersionConflict(
                "this version of the program is stored with another definition; "
                "give the changed program a new version",
                program_id=program.id, version=program.version)
        for name in ("time_zone", "currency", "wallets"):
            if version.definition.get(name) != definition[name]:
                raise ProgramVersionConflict(
                    f"versions of a program must keep its {name}",
                    program_id=program.id, version=version.version, field=name,
                    stored=version.definition.get(name), given=definition[name])


def _check_code_checks(program: Program, stored: Sequence[ProgramVersion]) -> None:
    """Refuse ``program`` if its code spec would refuse the check character of codes an
    earlier version issues (the caller found codes issued)."""
    if program.referrals is None:
        return
    spec = program.referrals.code
    for version in stored:
        raw = version.definition.get("referrals")
        if version.version >= program.version:
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("code", {}), dict):
            continue
        try:
            earlier = CodeSpec.from_dict(dict(raw.get("code", {})))
        except InvalidInput:  # pragma: no cover - every stored version was a valid program
            continue
        if not accepts_checks_of(spec, earlier):
            raise ProgramVersionConflict(
                f"codes are issued and version {version.version} issues them with the "
                f"{earlier.issues_with} check character: keep accepting it with code.check_scheme "
                f"'{earlier.issues_with}' or 'damm32+mod37'",
                program_id=program.id, version=version.version, field="code.check_scheme",
                stored=earlier.check_scheme, given=spec.check_scheme)


def _same(stored: ProgramVersion, program: Program) -> bool:
    # compared as programs, not dicts: a definition stored by an older release lacks
    # fields that now have defaults
    try:
        return Program.from_dict(dict(stored.definition)) == program
    except InvalidInput:
        return False
