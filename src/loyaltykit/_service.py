"""The facade: one call per use case, bound to a program, a storage and a clock.

Every write validates its input before touching storage, opens one unit of work,
checks the idempotency key, locks the member wallet(s) it writes, first posts the
member's own due work (releases, activations, expiries up to the write's instant),
then applies the request and commits. Bad input raises a typed error and writes
nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import pendulum

from loyaltykit._activity import Activity, Retention, retention
from loyaltykit._clock import Clock, SystemClock
from loyaltykit._errors import (
    AlreadyReferred,
    AlreadyReversed,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    CurrencyMismatch,
    DuplicateKey,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyConflict,
    InvalidEvent,
    InvalidInput,
    InvalidOrder,
    InvalidPoints,
    InvalidProgram,
    InvalidReturn,
    LoyaltyError,
    MemberAlreadyEnrolled,
    MemberNotFound,
    NotPending,
    NotReferable,
    OrderAlreadyRecorded,
    OrderCancelled,
    OrderNotFound,
    ProgramVersionConflict,
    ReferralNotFlagged,
    ReferralNotFound,
    RetryLimitExceeded,
    SelfReferral,
    SerializationFailure,
    StorageError,
    TransactionNotFound,
)
from loyaltykit._ledger import Ledger, MemberBook
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Kind,
    Lot,
    Member,
    MemberState,
    OrderRecord,
    OrderStatus,
    ProgramVersion,
    RuleUsage,
    Transaction,
)
from loyaltykit._orders import Event, Order
from loyaltykit._program import ClawbackPolicy, Program, zone
from loyaltykit._referrals import (
    FraudCheck,
    Identity,
    Outcome,
    Referral,
    ReferralCase,
    ReferralCode,
    ReferralMark,
    ReferralPolicy,
    ReferralStatus,
    ReferrerStats,
    Source,
    add_days,
    default_checks,
    judge,
)
from loyaltykit._results import (
    Balance,
    BulkEarnResult,
    DueWorkReport,
    EventResult,
    HoldResult,
    OrderResult,
    ReturnResult,
    StatementLine,
    StatementPage,
    TransactionResult,
    TransferResult,
    decode_order_result,
    decode_result,
    encode_order_result,
    encode_result,
)
from loyaltykit._rules import (
    Evaluation,
    MemberContext,
    UsageQuery,
    evaluate_event,
    evaluate_order,
    stamp_card_ids,
    usage_queries,
    usage_rows,
)
from loyaltykit._storage import Storage, UnitOfWork
from loyaltykit._tiers import (
    TierChange,
    TierJob,
    TierMetric,
    TierNotice,
    TierPolicy,
    TierProgress,
    TierState,
    TierStatus,
    WindowKind,
    catch_up,
    job_for,
    new_state,
    on_activity,
    spend_units,
    would_be,
)
from loyaltykit._values import (
    check_aware,
    check_key,
    check_points,
    json_bytes,
    new_id,
    to_utc,
)

__all__ = ["Loyalty"]

logger = logging.getLogger("loyaltykit")

R = TypeVar("R")

_ORDER_KEY = "order:"  # the prefix of record_order's default keys
MAX_MEMBER_ID_LENGTH = 128
MAX_REASON_LENGTH = 500
MAX_METADATA_BYTES = 16_384
MAX_STATEMENT_PAGE = 1000
#: How many codes :meth:`Loyalty.issue_code` draws before giving up on a crowded keyspace.
MAX_DRAWS = 64


def _check_member_id(value: object, name: str = "member_id") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str", **{name: value})
    if not value or value != value.strip() or len(value) > MAX_MEMBER_ID_LENGTH:
        raise InvalidInput(
            f"{name} must be 1-{MAX_MEMBER_ID_LENGTH} characters without surrounding spaces",
            **{name: value},
        )
    return value


def _check_reason(value: object, *, required: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise InvalidInput(f"reason must be a str of at most {MAX_REASON_LENGTH} characters",
                           reason=value)
    if required and not value.strip():
        raise InvalidInput("a reason is required", reason=value)
    return value


def _check_json(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{name} must be a mapping with str keys", **{name: repr(value)})
    try:
        text = json.dumps(dict(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{name} must be JSON-compatible: {exc}", **{name: repr(value)}
        ) from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{name} larger than {MAX_METADATA_BYTES} bytes", size=len(text))
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _check_id(value: object, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a UUID", **{name: value})


@attrs.frozen
class _Priced:
    """What pricing a source read: the version in force, the member's context, its
    caps' usage rows and stamp counts, its counters and what they keep."""

    program: Program
    context: MemberContext
    usage: Sequence[RuleUsage]
    stamps: dict[str, int]
    activity: Activity
    kept: Retention


def _withdrawn(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[str, ...]:
    left = list(after)
    gone = []
    for reward in before:
        if reward in left:
            left.remove(reward)
        else:
            gone.append(reward)
    return tuple(gone)


def _replay_order(uow: UnitOfWork, text: str) -> OrderResult:
    """Rebuild a stored :class:`OrderResult` from its order's row (the result stored
    with the key holds only what the row does not)."""
    data = json.loads(text)
    order_id = data.get("order_id")
    stored = uow.get_order(order_id) if isinstance(order_id, str) else None
    if stored is None:  # pragma: no cover - written in the key's unit of work
        raise StorageError("the recorded order of an idempotency key is missing",
                           order_id=order_id)
    return decode_order_result(data, stored)


def _fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (keys sorted)."""
    return hashlib.sha256(json_bytes(request, sort_keys=True, default=str)).hexdigest()


class Loyalty:
    """The public API of one program: enrol, earn, spend, hold, reverse, report.

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
    """

    def __init__(
        self,
        program: Program,
        storage: Storage,
        *,
        clock: Clock | None = None,
        new_id: Callable[[], uuid.UUID] = new_id,
        max_retries: int = 5,
        secret: bytes | None = None,
        fraud_checks: Sequence[FraudCheck] | None = None,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        if not isinstance(program, Program):
            raise InvalidInput("program must be a Program", program=repr(program))
        if secret is not None and (not isinstance(secret, bytes) or len(secret) < 16):
            raise InvalidInput("secret must be at least 16 bytes", secret="(hidden)")
        self._secret = secret
        if fraud_checks is None:
            checks: tuple[FraudCheck, ...] = (
                default_checks(program.referrals) if program.referrals is not None else ())
        else:
            checks = tuple(fraud_checks)
            if not all(callable(c) for c in checks):
                raise InvalidInput("fraud checks must be callables returning a Verdict",
                                   fraud_checks=repr(fraud_checks))
        self._fraud_checks = checks
        self._randbelow = randbelow
        self.program = program
        self.storage = storage
        self.clock: Clock = clock or SystemClock()
        self._new_id = new_id
        self._max_retries = max_retries
        self._versions: dict[int, Program] = {program.version: program}
        self._retentions: dict[int, Retention] = {}
        definition = program.to_dict()
        storage.register_program(ProgramVersion(
            program.id, program.version, program.effective_from, definition, self._now()))
        with storage.unit_of_work(program.id) as uow:
            stored = uow.program_versions()
        for version in stored:
            if version.version == program.version and not self._same(version, program):
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

    def __repr__(self) -> str:
        return f"Loyalty(program={self.program.id!r}, storage={self.storage!r})"

    @staticmethod
    def _same(stored: ProgramVersion, program: Program) -> bool:
        # compared as programs, not dicts: a definition stored by an older release
        # lacks fields that now have defaults
        try:
            return Program.from_dict(dict(stored.definition)) == program
        except InvalidInput:
            return False

    # -- plumbing -------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return to_utc(check_aware(self.clock.now(), name="clock.now()"))

    def _instant(self, at: object, name: str = "at") -> dt.datetime:
        now = self._now()
        if at is None:
            return now
        value = to_utc(check_aware(at, name=name))
        if value > now:
            raise InvalidInput(f"{name} is later than the clock's now", **{
                name: value.isoformat(), "now": now.isoformat()})
        return value

    def _write(
        self,
        key: str,
        request: dict[str, Any],
        at: dt.datetime,
        member_id: str | None,
        apply: Callable[[UnitOfWork, Ledger], R],
        *,
        encode: Callable[[R], str] | None = None,
        replay: Callable[[UnitOfWork, str], R] | None = None,
        order_id: str | None = None,
        redraw: bool = False,
    ) -> R:
        """Run ``apply`` in a unit of work under the idempotency ``key``. The result is
        stored for replay with :func:`encode_result`, or with ``encode`` whose
        ``replay`` rebuilds it from the stored text (reading what was left out).

        With ``order_id`` (``key`` is then ``"order:<order_id>"``, the order's default
        key) the order's row is the key's record: ``apply`` records that order, and
        the fingerprint and result go on its row instead of a record of their own.
        Other writes may not use keys starting with ``"order:"``.

        With ``redraw``, a unique violation on a referral code (a drawn code that is
        taken) runs ``apply`` again, which draws another, up to :data:`MAX_DRAWS`
        times; those are not retries of a conflict (no backoff)."""
        if order_id is None and key.startswith(_ORDER_KEY):
            raise InvalidInput("keys starting with 'order:' are kept for record_order's "
                               "default key", key=key)
        fingerprint = _fingerprint(request)
        # An order under its default key is written optimistically, without a read
        # first: its row's unique order id catches a repeat, and only then (or when the
        # order is refused: a repeat replays whatever holds now) is the row looked up,
        # to replay or refuse the request. That switch is not a retry.
        optimistic = order_id is not None
        attempt = draws = 0
        while True:
            try:
                with self.storage.unit_of_work(self.program.id) as uow:
                    if order_id is None:
                        record = uow.get_idempotency(key)
                    elif optimistic:
                        record = None
                    else:
                        record = self._order_key(uow, key, order_id)
                    if record is not None:
                        if record.fingerprint != fingerprint:
                            raise IdempotencyConflict(
                                "idempotency key reused for a different request",
                                key=key, operation=request.get("op"),
                            )
                        if replay is not None:
                            return replay(uow, record.result)
                        replayed: R = decode_result(record.result)
                        return replayed
                    ledger = Ledger(self.program, at=at, recorded_at=self._now(),
                                    new_id=self._new_id, key=key)
                    result = apply(uow, ledger)
                    changes = ledger.finish()
                    if self.program.tiers is not None:
                        self._tier_step(uow, ledger)
                    encoded = encode_result(result) if encode is None else encode(result)
                    if order_id is None:
                        changes.idempotency.append(IdempotencyRecord(
                            key=key, fingerprint=fingerprint, result=encoded,
                            created_at=ledger.recorded_at, member_id=member_id,
                        ))
                    else:
                        changes.orders[order_id] = attrs.evolve(
                            changes.orders[order_id], fingerprint=fingerprint,
                            result=encoded)
                    uow.write(changes)
                    uow.commit()
                    return result
            except SerializationFailure as exc:
                logger.debug("%s on %s, retrying", exc.details.get("sqlstate"), request.get("op"))
                self._backoff(attempt)
            except LoyaltyError as exc:
                if optimistic:  # a repeat (duplicate order id) or a refusal: look it up
                    optimistic = False
                    continue
                if not isinstance(exc, DuplicateKey):
                    raise
                if redraw and "code" in exc.details:
                    draws += 1
                    logger.debug("drawn code %s is taken, drawing another", exc.details["code"])
                    if draws >= MAX_DRAWS:
                        raise RetryLimitExceeded(
                            "every code drawn was taken: the code spec's keyspace is nearly "
                            "used up", key=key, draws=draws) from None
                    continue
                if "order_id" in exc.details and order_id is None:
                    # not a race a retry resolves (with order_id, the retry finds the
                    # order that won and replays it or refuses the request)
                    raise OrderAlreadyRecorded("an order with this id is already recorded",
                                               order_id=exc.details["order_id"]) from None
                logger.debug("unique conflict on %s, retrying", request.get("op"))
            attempt += 1
            if attempt > self._max_retries:
                raise RetryLimitExceeded("write kept conflicting", key=key,
                                         operation=request.get("op"),
                                         attempts=self._max_retries + 1)

    @staticmethod
    def _order_key(uow: UnitOfWork, key: str, order_id: str) -> IdempotencyRecord | None:
        """The record of an order's default key: the order's row, or for an order
        recorded without one there (before migration 0005) the key's own record."""
        found = uow.get_order(order_id)
        if found is None:
            return None
        if found.fingerprint is not None and found.result is not None:
            return IdempotencyRecord(key=key, fingerprint=found.fingerprint,
                                     result=found.result, created_at=found.created_at,
                                     member_id=found.member_id)
        record = uow.get_idempotency(key)
        if record is None:  # recorded under another key
            raise OrderAlreadyRecorded("an order with this id is already recorded",
                                       order_id=order_id)
        return record

    @staticmethod
    def _backoff(attempt: int) -> None:
        # jittered exponential backoff, so retried writers do not collide again in step
        time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))

    def _books(
        self,
        uow: UnitOfWork,
        ledger: Ledger,
        wallet: str,
        member_ids: list[str],
        *,
        need_lots: bool,
        extra_lots: Iterable[uuid.UUID] = (),
        locked: Mapping[str, AccountState] | None = None,
    ) -> dict[str, MemberBook]:
        states = uow.lock_accounts(wallet, member_ids) if locked is None else locked
        missing = [m for m in member_ids if m not in states]
        if missing:
            raise MemberNotFound("member is not enrolled", member_ids=missing[:10],
                                 missing=len(missing))
        books = {m: MemberBook(states[m]) for m in member_ids}
        due = [m for m, s in states.items()
               if s.next_due_at is not None and s.next_due_at <= ledger.at]
        loaded = member_ids if need_lots else due
        if loaded:
            lots = uow.load_lots(wallet, loaded)
            holds = uow.load_open_holds(wallet, loaded)
            for m in loaded:
                books[m].lots = {}
                books[m].holds = {}
            for lot in lots:
                lots_of = books[lot.member_id].lots
                assert lots_of is not None
                lots_of[lot.id] = lot
            extra = [i for i in extra_lots]
            if extra:
                for lot in uow.load_lots_by_id(extra):
                    book = books.get(lot.member_id)
                    if book is not None and book.lots is not None and lot.wallet == wallet:
                        book.lots.setdefault(lot.id, lot)
            for hold in holds:
                holds_of = books[hold.member_id].holds
                assert holds_of is not None
                holds_of[hold.id] = hold
        for book in books.values():
            ledger.add_book(book)
            if book.lots is not None:
                ledger.catch_up(book, ledger.at)
        return books

    def _balance_of(
        self, state: AccountState, as_of: dt.datetime, nxt: tuple[int, dt.datetime] | None
    ) -> Balance:
        return self._balance_from_sums(state.member_id, state.wallet, state.sums(), as_of, nxt)

    def _balance_from_sums(
        self,
        member_id: str,
        wallet: str,
        sums: Mapping[Account, int],
        as_of: dt.datetime,
        nxt: tuple[int, dt.datetime] | None,
    ) -> Balance:
        def s(a: Account) -> int:
            return sums.get(a, 0)

        debt = -s(Account.DEBT)
        available = s(Account.AVAILABLE)
        if self.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE:
            available -= debt
        return Balance(
            member_id=member_id,
            wallet=wallet,
            as_of=as_of,
            available=available,
            pending=s(Account.PENDING),
            held=s(Account.HELD),
            debt=debt,
            total=s(Account.AVAILABLE) + s(Account.PENDING) + s(Account.HELD) - debt,
            earned=-s(Account.ISSUED),
            spent=s(Account.REDEEMED),
            expired=s(Account.EXPIRED),
            adjusted=-s(Account.ADJUSTMENTS),
            transferred=-s(Account.TRANSFERS),
            next_expiring_points=nxt[0] if nxt else 0,
            next_expiring_at=nxt[1] if nxt else None,
        )

    def _next_expiring_after(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook
    ) -> tuple[int, dt.datetime] | None:
        if book.lots is not None:
            lots: Iterable[Lot] = book.lots.values()
        else:
            stored = uow.next_expiring(book.wallet, book.member_id)
            new = [lot for i, lot in ledger.changes.lots.items()
                   if lot.member_id == book.member_id and lot.wallet == book.wallet]
            if stored is not None:
                points, when = stored
                new_at = [lot for lot in new if lot.expires_at is not None and lot.remaining > 0]
                first = min([when, *[lot.expires_at for lot in new_at if lot.expires_at]])
                extra = sum(lot.remaining for lot in new_at if lot.expires_at == first)
                return ((points if when == first else 0) + extra, first)
            lots = new
        live = [lot for lot in lots if lot.expires_at is not None and lot.remaining > 0]
        if not live:
            return None
        first = min(lot.expires_at for lot in live if lot.expires_at is not None)
        return sum(lot.remaining for lot in live if lot.expires_at == first), first

    def _tx_result(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook, tx: Transaction,
        related: tuple[uuid.UUID, ...] = (),
    ) -> TransactionResult:
        balance = self._balance_of(book.state, ledger.at,
                                   self._next_expiring_after(uow, ledger, book))
        return TransactionResult(
            transaction_id=tx.id, kind=tx.kind, member_id=tx.member_id, wallet=tx.wallet,
            points=tx.points, occurred_at=tx.occurred_at, balance=balance,
            related_ids=related,
        )

    def _common(
        self, key: object, wallet: str | None, reason: object, metadata: object, at: object
    ) -> tuple[str, str, str, dict[str, Any], dt.datetime]:
        """Validate the arguments most writes share: key, wallet, reason, metadata, at."""
        return (
            check_key(key),
            self.program.wallet(wallet),
            _check_reason(reason),
            _check_json(metadata, "metadata"),
            self._instant(at),
        )

    @staticmethod
    def _request(op: str, at: object, when: dt.datetime, **fields: Any) -> dict[str, Any]:
        # an ``at`` defaulted from the clock is not part of the request: a retry a second
        # later with the same key is the same request. ``when`` is ``at`` validated.
        request = {"op": op, **fields}
        if at is not None:
            request["at"] = when.isoformat()
        return request

    # -- members --------------------------------------------------------------------------

    def enrol(
        self,
        member_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        attributes: Mapping[str, Any] | None = None,
        referral_code: str | None = None,
        identity: Identity | None = None,
    ) -> Member:
        """Enrol a member (the shop's own customer id) with empty wallets.

        The key defaults to ``"enrol:<member_id>"``, so enrolling the same member twice
        with the same attributes returns the first result. With another key an
        enrolled member raises :class:`~loyaltykit.MemberAlreadyEnrolled`.

        With ``referral_code`` the member is referred in the same unit of work (see
        :meth:`refer` for what is refused; then nothing is written, the enrolment
        included). ``identity`` is kept as keyed hashes for the fraud checks.
        """
        member_id = _check_member_id(member_id)
        key = check_key(key if key is not None else f"enrol:{member_id}")
        attrs_ = _check_json(attributes, "attributes")
        parsed = (self._referral_policy().code.parse(referral_code)
                  if referral_code is not None else None)
        digests = self._digests(identity)
        when = self._instant(at)
        request = self._request("enrol", at, when, member_id=member_id, attributes=attrs_)
        if parsed is not None or digests:
            request["referral"] = [parsed, sorted(digests.items())]

        def apply(uow: UnitOfWork, ledger: Ledger) -> Member:
            if uow.get_member(member_id) is not None:
                if uow.get_idempotency(key) is not None:
                    # a concurrent enrolment with this key committed between our two
                    # reads: retry, and the retry replays its result
                    raise DuplicateKey("enrolment raced", key=key)
                raise MemberAlreadyEnrolled("member is already enrolled", member_id=member_id)
            member = Member(self.program.id, member_id, when, attrs_)
            ledger.changes.members.append(member)
            fresh = Activity.fresh(self._retention(self.program)).dump()
            for wallet in self.program.wallets:
                activity = fresh if wallet == self.program.default_wallet else None
                ledger.add_book(MemberBook(AccountState(member_id, wallet, activity=activity)))
                ledger.changes.new_accounts.add((member_id, wallet))
            if parsed is not None:
                self._attach(uow, ledger, member_id, parsed, when, digests, member=member)
            elif digests:
                ledger.changes.referral_marks.extend(self._marks(member_id, digests))
            return member

        return self._write(key, request, when, member_id, apply)

    # -- points ---------------------------------------------------------------------------

    def earn(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        activates_at: dt.datetime | None = None,
    ) -> TransactionResult:
        """Award ``points`` as a new lot. Pending per the program's policy unless
        ``activates_at`` says when it activates; active points settle debt first."""
        member_id = _check_member_id(member_id)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        activation = None
        if activates_at is not None:
            activation = to_utc(check_aware(activates_at, name="activates_at"))
        request = self._request(
            "earn", at, when, member_id=member_id, points=points, wallet=wallet_, reason=reason,
            metadata=meta, activates_at=activation.isoformat() if activation else None,
        )

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=False)[member_id]
            tx = ledger.earn(book, points, reason=reason, metadata=meta,
                             activates_at=activation,
                             pending=True if activation is not None else None)
            return self._tx_result(uow, ledger, book, tx)

        return self._write(key, request, when, member_id, apply)

    def spend(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Redeem ``points`` from available lots in the program's spend order.

        Raises :class:`~loyaltykit.InsufficientPoints` (writing nothing) when fewer
        points are available."""
        member_id = _check_member_id(member_id)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        request = self._request("spend", at, when, member_id=member_id, points=points,
                                wallet=wallet_, reason=reason, metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=True)[member_id]
            tx = ledger.spend(book, points, reason=reason, metadata=meta)
            return self._tx_result(uow, ledger, book, tx)

        return self._write(key, request, when, member_id, apply)

    def hold(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        ttl: dt.timedelta,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> HoldResult:
        """Reserve ``points`` of available points for ``ttl`` (e.g. during checkout).

        Held points cannot be spent or held again. Capture them with :meth:`capture`,
        give them back with :meth:`void`; an unresolved hold is released by due work
        once ``ttl`` has passed. Held points do not expire while held: if their lot
        passes its expiry meanwhile, they expire when the hold returns them.
        """
        member_id = _check_member_id(member_id)
        points = check_points(points)
        key = check_key(key)
        if not isinstance(ttl, dt.timedelta) or ttl <= dt.timedelta(0):
            raise InvalidInput("ttl must be a positive timedelta", ttl=repr(ttl))
        wallet_ = self.program.wallet(wallet)
        reason = _check_reason(reason)
        meta = _check_json(metadata, "metadata")
        when = self._instant(at)
        request = self._request("hold", at, when, member_id=member_id, points=points,
                                ttl=ttl.total_seconds(), wallet=wallet_, reason=reason,
                                metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> HoldResult:
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=True)[member_id]
            tx, hold = ledger.hold(book, points, ttl=ttl, reason=reason, metadata=meta)
            balance = self._balance_of(book.state, when,
                                       self._next_expiring_after(uow, ledger, book))
            return HoldResult(hold_id=hold.id, transaction_id=tx.id, member_id=member_id,
                              wallet=wallet_, points=points, expires_at=hold.expires_at,
                              balance=balance)

        return self._write(key, request, when, member_id, apply)

    def _resolve(
        self,
        op: str,
        hold_id: uuid.UUID | str,
        capture: int | None,
        key: str,
        at: dt.datetime | None,
        reason: str,
        metadata: Mapping[str, Any] | None,
    ) -> TransactionResult:
        hid = _check_id(hold_id, "hold_id")
        if capture is not None:
            capture = check_points(capture)
        key = check_key(key)
        reason = _check_reason(reason)
        meta = _check_json(metadata, "metadata")
        when = self._instant(at)
        request = self._request(op, at, when, hold_id=str(hid), points=capture, reason=reason,
                                metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            stored = uow.get_hold(hid)
            if stored is None:
                raise HoldNotFound("no such hold", hold_id=str(hid))
            if stored.status is not HoldStatus.OPEN:
                raise HoldNotOpen("the hold is no longer open", hold_id=str(hid),
                                  status=stored.status.value)
            if op == "capture" and stored.expires_at <= when:
                raise HoldExpired("the hold expired before capture", hold_id=str(hid),
                                  expires_at=stored.expires_at.isoformat())
            book = self._books(uow, ledger, stored.wallet, [stored.member_id],
                               need_lots=True)[stored.member_id]
            holds = book.holds or {}
            hold: Hold | None = holds.get(hid)
            if hold is None:  # released by the member's own due work just now
                raise HoldNotOpen("the hold is no longer open", hold_id=str(hid),
                                  status=HoldStatus.RELEASED.value)
            points = hold.points if capture is None else capture
            status = HoldStatus.CAPTURED if op == "capture" else HoldStatus.VOIDED
            tx = ledger.resolve_hold(book, hold, capture=points if op == "capture" else 0,
                                     status=status, reason=reason, metadata=meta)
            return self._tx_result(uow, ledger, book, tx)

        return self._write(key, request, when, None, apply)

    def capture(
        self,
        hold_id: uuid.UUID | str,
        points: int | None = None,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Redeem ``points`` of an open hold (all of it by default); the rest returns
        to available. Raises HoldExpired once the hold's ttl has passed."""
        return self._resolve("capture", hold_id, points, key, at, reason, metadata)

    def void(
        self,
        hold_id: uuid.UUID | str,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Give an open hold's points back to available (checkout abandoned)."""
        return self._resolve("void", hold_id, None, key, at, reason, metadata)

    def activate(
        self,
        earn_id: uuid.UUID | str,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> TransactionResult:
        """Make the pending points of an earn spendable now (e.g. the return window
        closed early). Raises NotPending if nothing of it is pending."""
        tid = _check_id(earn_id, "earn_id")
        key = check_key(key)
        reason = _check_reason(reason)
        when = self._instant(at)
        request = self._request("activate", at, when, earn_id=str(tid), reason=reason)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            original = uow.get_transaction(tid)
            if original is None:
                raise TransactionNotFound("no such transaction", transaction_id=str(tid))
            book = self._books(uow, ledger, original.wallet, [original.member_id],
                               need_lots=True)[original.member_id]
            lots = book.lots or {}
            pending = [lots[m.lot_id] for m in original.movements
                       if m.delta > 0 and m.lot_id in lots and lots[m.lot_id].pending
                       and lots[m.lot_id].remaining > 0]
            if not pending:
                raise NotPending("nothing of this transaction is pending",
                                 transaction_id=str(tid))
            txs = [ledger.activate(book, lot, reason=reason) for lot in pending]
            return self._tx_result(uow, ledger, book, txs[0],
                                   tuple(tx.id for tx in txs[1:]))

        return self._write(key, request, when, None, apply)

    def reverse(
        self,
        transaction_id: uuid.UUID | str,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Post the exact opposite of a transaction, restoring the lots it touched.

        A spend's points return to the very lots they came from, with their original
        expiry (points of a lot already past its expiry expire at once). An earn's
        points are taken back from its lot; what is no longer there is taken under the
        clawback policy. Reversing one half of a transfer reverses both. Expiries,
        activations, holds, releases and reversals are not reversible
        (:class:`~loyaltykit.NotReversible`); a transaction is reversed at most once
        (:class:`~loyaltykit.AlreadyReversed`).
        """
        tid = _check_id(transaction_id, "transaction_id")
        key = check_key(key)
        reason = _check_reason(reason)
        meta = _check_json(metadata, "metadata")
        when = self._instant(at)
        request = self._request("reverse", at, when, transaction_id=str(tid), reason=reason,
                                metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            original = uow.get_transaction(tid)
            if original is None:
                raise TransactionNotFound("no such transaction", transaction_id=str(tid))
            originals = [original]
            if original.kind is Kind.TRANSFER:
                sibling = uow.get_transaction(uuid.UUID(original.metadata["counterpart_id"]))
                if sibling is None:  # pragma: no cover - written atomically with original
                    raise TransactionNotFound("transfer half missing", transaction_id=str(tid))
                originals.append(sibling)
            members = sorted({t.member_id for t in originals})
            books = self._books(
                uow, ledger, original.wallet, members, need_lots=True,
                extra_lots=[m.lot_id for t in originals for m in t.movements],
            )
            # looked for under the members' locks: a reversal committed while this one
            # waited for them must be seen, or its lots would be restored twice
            if uow.find_reversal(tid) is not None:
                raise AlreadyReversed("transaction already reversed", transaction_id=str(tid))
            txs = [ledger.reverse(books[t.member_id], t, reason=reason, metadata=meta)
                   for t in originals]
            return self._tx_result(uow, ledger, books[original.member_id], txs[0],
                                   tuple(tx.id for tx in txs[1:]))

        return self._write(key, request, when, None, apply)

    def adjust(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        reason: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """A manual correction with a required reason: positive ``points`` credit a new
        (active) lot, negative ones debit available points in spend order."""
        member_id = _check_member_id(member_id)
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise InvalidPoints("adjustment points must be a non-zero int", points=points)
        check_points(abs(points))
        key = check_key(key)
        reason = _check_reason(reason, required=True)
        wallet_ = self.program.wallet(wallet)
        meta = _check_json(metadata, "metadata")
        when = self._instant(at)
        request = self._request("adjust", at, when, member_id=member_id, points=points,
                                wallet=wallet_, reason=reason, metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            book = self._books(uow, ledger, wallet_, [member_id],
                               need_lots=points < 0)[member_id]
            tx = ledger.adjust(book, points, reason=reason, metadata=meta)
            return self._tx_result(uow, ledger, book, tx)

        return self._write(key, request, when, member_id, apply)

    def clawback(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        earn_id: uuid.UUID | str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Take back ``points`` (a returned order) under the program's clawback policy.

        With ``earn_id`` the points of that earn's lot are taken first. Under ``DEBT``
        what the member lacks becomes debt settled by later earnings; under
        ``ALLOW_NEGATIVE`` the same, shown as a negative available balance; under
        ``PENDING_ONLY`` only pending points are taken and the rest is written off.
        """
        member_id = _check_member_id(member_id)
        points = check_points(points)
        key = check_key(key)
        wallet_ = self.program.wallet(wallet)
        eid = _check_id(earn_id, "earn_id") if earn_id is not None else None
        reason = _check_reason(reason)
        meta = _check_json(metadata, "metadata")
        when = self._instant(at)
        request = self._request("clawback", at, when, member_id=member_id, points=points,
                                wallet=wallet_, earn_id=str(eid) if eid else None,
                                reason=reason, metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransactionResult:
            first: list[uuid.UUID] = []
            if eid is not None:
                earn = uow.get_transaction(eid)
                if earn is None or earn.member_id != member_id:
                    raise TransactionNotFound("no such earn for this member",
                                              transaction_id=str(eid), member_id=member_id)
                first = [m.lot_id for m in earn.movements if m.delta > 0]
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=True,
                               extra_lots=first)[member_id]
            tx = ledger.clawback(book, points, earn_lots=first, reason=reason, metadata=meta)
            return self._tx_result(uow, ledger, book, tx)

        return self._write(key, request, when, member_id, apply)

    def transfer(
        self,
        from_member_id: str,
        to_member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Move available points from one member to another. The receiver's new lots
        keep the expiry of the lots the points came from."""
        source = _check_member_id(from_member_id, "from_member_id")
        target = _check_member_id(to_member_id, "to_member_id")
        if source == target:
            raise InvalidInput("cannot transfer to the same member", member_id=source)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        request = self._request("transfer", at, when, source=source, target=target, points=points,
                                wallet=wallet_, reason=reason, metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> TransferResult:
            books = self._books(uow, ledger, wallet_, [source, target], need_lots=True)
            out, into = ledger.transfer(books[source], books[target], points, reason=reason,
                                        metadata=meta)
            return TransferResult(
                transfer_id=uuid.UUID(out.metadata["transfer_id"]),
                outgoing=self._tx_result(uow, ledger, books[source], out, (into.id,)),
                incoming=self._tx_result(uow, ledger, books[target], into, (out.id,)),
            )

        return self._write(key, request, when, source, apply)

    def bulk_earn(
        self,
        awards: Mapping[str, int] | Iterable[tuple[str, int]],
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> BulkEarnResult:
        """Award points to many members in one call (a campaign gift), as one set-based
        write: all members get their lot or none does. Unknown members raise
        MemberNotFound naming them, and nothing is written."""
        items = list(awards.items()) if isinstance(awards, Mapping) else list(awards)
        if not items:
            raise InvalidInput("bulk earn needs at least one award")
        members: list[str] = []
        seen: set[str] = set()
        amounts: dict[str, int] = {}
        for item in items:
            if not isinstance(item, tuple) or len(item) != 2:
                raise InvalidInput("each award is a (member_id, points) pair", award=repr(item))
            member_id = _check_member_id(item[0])
            if member_id in seen:
                raise InvalidInput("a member appears twice in a bulk earn", member_id=member_id)
            seen.add(member_id)
            members.append(member_id)
            amounts[member_id] = check_points(item[1])
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        digest = hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()
        request = self._request("bulk_earn", at, when, awards=digest, wallet=wallet_,
                                reason=reason, metadata=meta)

        def apply(uow: UnitOfWork, ledger: Ledger) -> BulkEarnResult:
            batch_id = self._new_id()
            books = self._books(uow, ledger, wallet_, members, need_lots=False)
            meta_ = {**meta, "batch_id": str(batch_id)}
            for member_id in members:
                ledger.earn(books[member_id], amounts[member_id], reason=reason, metadata=meta_)
            return BulkEarnResult(batch_id=batch_id, members=len(members),
                                  points=sum(amounts.values()), occurred_at=when)

        return self._write(key, request, when, None, apply)

    # -- orders and events ----------------------------------------------------------------

    def _version(self, number: int, uow: UnitOfWork) -> Program:
        # stored versions never change, so a parsed one is kept for good
        program = self._versions.get(number)
        if program is not None:
            return program
        found = [v for v in uow.program_versions() if v.version == number]
        if not found:  # pragma: no cover - an order's version is stored before the order
            raise InvalidProgram("the program version is not stored", field="version",
                                 value=number)
        program = Program.from_dict(dict(found[0].definition))
        self._versions[number] = program
        return program

    def _retention(self, program: Program) -> Retention:
        kept = self._retentions.get(program.version)
        if kept is None:
            kept = self._retentions[program.version] = retention(program.earning)
        return kept

    def _member_state(self, uow: UnitOfWork, member_id: str, wallet: str, at: dt.datetime,
                      *, lock: bool) -> MemberState:
        """The member, its ``wallet`` and default-wallet accounts (locked with ``lock``;
        the default wallet's row keeps the earning counters) and the version in force
        at ``at``: one read."""
        default = self.program.default_wallet
        wallets = (wallet,) if wallet == default else tuple(sorted((wallet, default)))
        state = uow.load_member(member_id, wallets, at, lock=lock)
        if state is None or wallet not in state.accounts:
            raise MemberNotFound("member is not enrolled", member_ids=[member_id])
        return state

    def _activity(self, uow: UnitOfWork, state: MemberState, kept: Retention,
                  queries: Sequence[UsageQuery] = ()) -> Activity:
        """The member's earning counters, rebuilt from its orders and events when the
        stored ones cannot answer ``queries`` (or keep less than ``kept`` asks)."""
        member_id = state.member.member_id
        default = state.accounts.get(self.program.default_wallet)
        activity = Activity.load(default.activity if default else None)
        if activity is not None and activity.covers(queries, kept):
            return activity
        if activity is not None:
            kept = activity.widened(kept)
        return Activity.rebuild(uow.load_usage(member_id), uow.load_orders(member_id),
                                kept, since=None)

    def _keep_activity(self, ledger: Ledger, state: MemberState, activity: Activity) -> None:
        default = state.accounts.get(self.program.default_wallet)
        if default is not None:
            ledger.set_activity(default, activity.dump())

    def _pricing(
        self, uow: UnitOfWork, state: MemberState, at: dt.datetime, *,
        event_type: str | None = None, is_order: bool,
        tier_read: dict[str, TierState | None] | None = None,
    ) -> _Priced:
        """What pricing an order or event of the member at ``at`` needs: the program
        version in force, the member's context, its caps' usage and stamp counts (from
        the counters on its default-wallet account)."""
        if state.version is None:
            raise InvalidOrder("no version of the program is in force at that instant",
                               field="placed_at" if is_order else "occurred_at",
                               value=at.isoformat())
        program = self._version(state.version, uow)
        kept = self._retention(program)
        queries = usage_queries(program.earning, program.time_zone, at,
                                event_type=event_type, stamp_counts=True)
        activity = self._activity(uow, state, kept, queries)
        member = state.member
        member_id = member.member_id
        multiplier = None
        tier: Any
        if self.program.tiers is not None:
            tier, multiplier = self._tier_of(uow, member_id, at, tier_read)
        else:
            tier = member.attributes.get("tier")
        ctx = MemberContext(
            member_id=member_id, enrolled_at=member.enrolled_at,
            attributes=dict(member.attributes), tier=tier if isinstance(tier, str) else None,
            earn_multiplier=multiplier,
            first_order=is_order and program.earning.needs_first_order
            and activity.orders == 0,
        )
        usage = activity.rows(self.program.id, member_id) if queries else ()
        stamps = activity.stamp_counts(stamp_card_ids(program.earning, event_type=event_type))
        return _Priced(program, ctx, usage, stamps, activity, kept)

    def _check_order(self, order: object) -> Order:
        if not isinstance(order, Order):
            raise InvalidOrder("order must be an Order", field="order", value=repr(order))
        if not order.lines:
            raise InvalidOrder("an order needs at least one line", field="lines", value=[])
        if order.currency != self.program.currency:
            raise CurrencyMismatch("the order is not in the program's currency",
                                   field="currency", value=order.currency,
                                   expected=self.program.currency)
        return order

    def quote(self, source: Order | Event) -> Evaluation:
        """Price an order or an event without writing anything: the same breakdown
        :meth:`record_order` / :meth:`record_event` would write now, with the member's
        caps, stamp cards and first-order status as they stand."""
        if isinstance(source, Event):
            _check_member_id(source.member_id)
            at = self._instant(source.occurred_at, "occurred_at")
            with self.storage.unit_of_work(self.program.id) as uow:
                state = self._member_state(uow, source.member_id,
                                           self.program.default_wallet, at, lock=False)
                p = self._pricing(uow, state, at, event_type=source.type, is_order=False)
            return evaluate_event(p.program.earning, p.program.time_zone, source, p.context,
                                  usage=p.usage, version=p.program.version, stamps=p.stamps)
        order = self._check_order(source)
        _check_member_id(order.member_id)
        at = self._instant(order.placed_at, "placed_at")
        with self.storage.unit_of_work(self.program.id) as uow:
            if uow.get_order(order.id) is not None:
                raise OrderAlreadyRecorded("an order with this id is already recorded",
                                           order_id=order.id)
            state = self._member_state(uow, order.member_id, self.program.default_wallet,
                                       at, lock=False)
            p = self._pricing(uow, state, at, is_order=True)
        return evaluate_order(p.program.earning, p.program.time_zone, order, p.context,
                              usage=p.usage, version=p.program.version, stamps=p.stamps)

    def record_order(
        self,
        order: Order,
        *,
        key: str | None = None,
        paid_with: Iterable[uuid.UUID | str] = (),
        wallet: str | None = None,
    ) -> OrderResult:
        """Price an order with the rules in force when it was placed and award its points
        (pending per the program's policy) as one earn dated ``order.placed_at``.

        Idempotent by order id: the key defaults to ``"order:<id>"``; recording the
        same order again returns the first result, and another order with the same id
        raises :class:`~loyaltykit.OrderAlreadyRecorded`. Under the default key the
        order's row is the key's record (one row, not two); keys starting with
        ``"order:"`` are kept for this default (anything else using one raises
        :class:`~loyaltykit.InvalidInput`). ``paid_with`` lists the
        spend or capture transactions that paid for the order with points; cancelling
        the order gives those points back to their original lots.
        """
        order = self._check_order(order)
        member_id = _check_member_id(order.member_id)
        default_key = f"{_ORDER_KEY}{order.id}"
        key = check_key(key if key is not None else default_key)
        wallet_ = self.program.wallet(wallet)
        when = self._instant(order.placed_at, "placed_at")
        if isinstance(paid_with, str | bytes):
            raise InvalidInput("paid_with must be a list of transaction ids",
                               paid_with=paid_with)
        payments = tuple(dict.fromkeys(_check_id(p, "paid_with") for p in paid_with))
        placed = order.to_dict()
        request = {"op": "record_order", "order": placed, "wallet": wallet_,
                   "paid_with": [str(p) for p in payments]}

        def apply(uow: UnitOfWork, ledger: Ledger) -> OrderResult:
            # read under the member's lock: caps, stamp cards and "first order" count
            # this member's other orders, which cannot change until we commit. A second
            # order with this id is refused by the storage's unique rule on writing.
            state = self._member_state(uow, member_id, wallet_, when, lock=True)
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=False,
                               locked={member_id: state.accounts[wallet_]})[member_id]
            for pid in payments:
                paid = uow.get_transaction(pid)
                if paid is None or paid.member_id != member_id or paid.wallet != wallet_:
                    raise TransactionNotFound("no such payment of this member's wallet",
                                              transaction_id=str(pid), member_id=member_id)
                if paid.kind not in (Kind.SPEND, Kind.CAPTURE):
                    raise InvalidInput("paid_with must name spend or capture transactions",
                                       transaction_id=str(pid), kind=paid.kind.value)
            p = self._pricing(uow, state, when, is_order=True, tier_read=ledger.tier_read)
            program = p.program
            evaluation = evaluate_order(program.earning, program.time_zone, order, p.context,
                                        usage=p.usage, version=program.version, stamps=p.stamps)
            tx = None
            if evaluation.points > 0:
                tx = ledger.earn(book, evaluation.points, reason=f"order {order.id}",
                                 metadata={"order_id": order.id})
            ledger.changes.orders[order.id] = OrderRecord(
                program_id=self.program.id, order_id=order.id, member_id=member_id,
                placed_at=when, version=program.version, order=placed,
                returned={}, status=OrderStatus.OPEN, points=evaluation.points,
                evaluation=evaluation.to_dict(), earn_id=tx.id if tx else None,
                payments=payments, created_at=ledger.recorded_at,
                updated_at=ledger.recorded_at,
            )
            ledger.changes.new_orders.add(order.id)
            ledger.changes.tier_orders.append(
                (member_id, when, spend_units(order.net_goods), 1))
            self._referral_on_order(uow, ledger, book, wallet_, order, when)
            # the order's row is its usage log; the counters follow it
            source = f"order:{order.id}"
            self._keep_activity(ledger, state, p.activity.record(
                source, when, (), usage_rows(evaluation, program_id=self.program.id,
                                             member_id=member_id, source=source,
                                             occurred_at=when),
                orders=1, horizon=p.kept.horizon))
            return OrderResult(
                order_id=order.id, member_id=member_id, points=evaluation.points,
                version=program.version, evaluation=evaluation,
                transaction=self._tx_result(uow, ledger, book, tx) if tx else None,
                rewards=evaluation.rewards,
            )

        # the breakdown is stored once, with the order: the key's record holds the rest
        return self._write(key, request, when, member_id, apply,
                           encode=encode_order_result, replay=_replay_order,
                           order_id=order.id if key == default_key else None)

    def record_return(
        self,
        order_id: str,
        lines: Mapping[str, int],
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> ReturnResult:
        """Return ``lines`` (line id -> quantity) of a recorded order.

        The order as it stands afterwards is re-evaluated with the rules it was placed
        under (its program version, its member's tier and first-order status then);
        the difference is clawed back under the program's clawback policy, from the
        order's own lots first. A return that drops the order below a bonus's minimum
        removes that bonus; a return never adds points.
        """
        order_id = _check_member_id(order_id, "order_id")
        if not isinstance(lines, Mapping) or not lines:
            raise InvalidReturn("lines must be a non-empty mapping of line id to quantity",
                                lines=repr(lines))
        wanted: dict[str, int] = {}
        for line_id, qty in lines.items():
            if not isinstance(line_id, str):
                raise InvalidReturn("line ids are str", line_id=repr(line_id))
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                raise InvalidReturn("a returned quantity must be a positive int",
                                    line_id=line_id, quantity=qty)
            wanted[line_id] = qty
        key = check_key(key)
        reason = _check_reason(reason)
        when = self._instant(at)
        request = self._request("record_return", at, when, order_id=order_id,
                                lines=wanted, reason=reason)
        return self._return(order_id, wanted, key, when, request, reason, cancel=False)

    def cancel_order(
        self,
        order_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> ReturnResult:
        """Cancel an order: return everything left of it (its points are clawed back)
        and give the points spent on it (``paid_with``) back to their original lots,
        with their original expiry. The key defaults to ``"cancel:<order id>"``."""
        order_id = _check_member_id(order_id, "order_id")
        key = check_key(key if key is not None else f"cancel:{order_id}")
        reason = _check_reason(reason)
        when = self._instant(at)
        request = self._request("cancel_order", at, when, order_id=order_id, reason=reason)
        return self._return(order_id, None, key, when, request, reason, cancel=True)

    def _return(
        self,
        order_id: str,
        wanted: dict[str, int] | None,
        key: str,
        when: dt.datetime,
        request: dict[str, Any],
        reason: str,
        *,
        cancel: bool,
    ) -> ReturnResult:
        def apply(uow: UnitOfWork, ledger: Ledger) -> ReturnResult:
            found = uow.get_order(order_id)
            if found is None:
                raise OrderNotFound("no such order", order_id=order_id)
            member_id = found.member_id
            payments = [t for t in (uow.get_transaction(p) for p in found.payments)
                        if t is not None] if cancel else []
            earn = uow.get_transaction(found.earn_id) if found.earn_id else None
            earn_lots = [m.lot_id for m in earn.movements if m.delta > 0] if earn else []
            wallet_ = earn.wallet if earn else (payments[0].wallet if payments
                                                else self.program.default_wallet)
            state = self._member_state(uow, member_id, wallet_, when, lock=True)
            book = self._books(
                uow, ledger, wallet_, [member_id], need_lots=True,
                extra_lots=[*earn_lots, *(m.lot_id for t in payments for m in t.movements)],
                locked={member_id: state.accounts[wallet_]},
            )[member_id]
            # read again under the member's lock: a concurrent return may have won
            record = uow.get_order(order_id)
            assert record is not None
            if record.status is OrderStatus.CANCELLED:
                raise OrderCancelled("the order was cancelled", order_id=order_id)
            original = Order.from_dict(dict(record.order))
            returned = dict(record.returned)
            if when < record.placed_at:
                raise InvalidReturn("a return cannot be dated before its order was placed",
                                    order_id=order_id, at=when.isoformat(),
                                    placed_at=record.placed_at.isoformat())
            if wanted is None:  # cancel: everything that is left goes back
                returned = {line.id: line.quantity for line in original.lines}
            else:
                for line_id, qty in wanted.items():
                    returned[line_id] = returned.get(line_id, 0) + qty
            as_it_stands = original.after_returns(returned)
            program = self._version(record.version, uow)
            previous = Evaluation.from_dict(dict(record.evaluation))
            placeholder = MemberContext(member_id=member_id, enrolled_at=record.placed_at)
            evaluation = evaluate_order(program.earning, program.time_zone, as_it_stands,
                                        placeholder, previous=previous,
                                        version=record.version)
            # before any clawback, so the voided rewards are taken back from their own lots
            self._referral_on_return(uow, ledger, book, wallet_, record, as_it_stands, when,
                                     cancel=cancel)
            restored = []
            for paid in payments:
                if uow.find_reversal(paid.id) is None:
                    back = ledger.reverse(book, paid, reason=reason or f"order {order_id} "
                                          "cancelled", metadata={"order_id": order_id})
                    restored.append(back)
            difference = record.points - evaluation.points
            tx = None
            if difference > 0:
                tx = ledger.clawback(
                    book, difference, earn_lots=earn_lots,
                    reason=reason or f"order {order_id} {'cancelled' if cancel else 'return'}",
                    metadata={"order_id": order_id},
                )
            before_net = original.after_returns(dict(record.returned)).net_goods
            ledger.changes.tier_orders.append((
                member_id, when,
                spend_units(as_it_stands.net_goods) - spend_units(before_net),
                -1 if cancel else 0))
            ledger.changes.orders[order_id] = attrs.evolve(
                record, returned=returned, points=evaluation.points,
                evaluation=evaluation.to_dict(), updated_at=ledger.recorded_at,
                recorded_evaluation=record.evaluation_as_recorded(),
                status=OrderStatus.CANCELLED if cancel else OrderStatus.OPEN,
            )
            kept = self._retention(program)
            activity = self._activity(uow, state, kept)
            source = f"order:{order_id}"
            before, after = (usage_rows(e, program_id=self.program.id, member_id=member_id,
                                        source=source, occurred_at=record.placed_at)
                             for e in (previous, evaluation))
            self._keep_activity(ledger, state, activity.record(
                source, record.placed_at, before, after, orders=-1 if cancel else 0,
                horizon=kept.horizon))
            return ReturnResult(
                order_id=order_id, member_id=member_id, points_before=record.points,
                points_after=evaluation.points, clawed_back=max(difference, 0),
                evaluation=evaluation,
                transaction=self._tx_result(uow, ledger, book, tx) if tx else None,
                restored=tuple(self._tx_result(uow, ledger, book, t) for t in restored),
                cancelled=cancel,
                rewards_withdrawn=_withdrawn(previous.rewards, evaluation.rewards),
            )

        return self._write(key, request, when, None, apply)

    def record_event(
        self,
        event: Event,
        *,
        key: str | None = None,
        wallet: str | None = None,
    ) -> EventResult:
        """Award the bonus rules for an event (sign-up, birthday, anniversary, review,
        visit or a custom one), dated ``event.occurred_at``. The key defaults to
        ``"event:<id>"``: recording the same event again returns the first result."""
        if not isinstance(event, Event):
            raise InvalidEvent("event must be an Event", field="event", value=repr(event))
        member_id = _check_member_id(event.member_id)
        key = check_key(key if key is not None else f"event:{event.id}")
        wallet_ = self.program.wallet(wallet)
        when = self._instant(event.occurred_at, "occurred_at")
        request = {"op": "record_event", "event": event.to_dict(), "wallet": wallet_}

        def apply(uow: UnitOfWork, ledger: Ledger) -> EventResult:
            state = self._member_state(uow, member_id, wallet_, when, lock=True)
            book = self._books(uow, ledger, wallet_, [member_id], need_lots=False,
                               locked={member_id: state.accounts[wallet_]})[member_id]
            p = self._pricing(uow, state, when, event_type=event.type, is_order=False,
                              tier_read=ledger.tier_read)
            program = p.program
            evaluation = evaluate_event(program.earning, program.time_zone, event, p.context,
                                        usage=p.usage, version=program.version, stamps=p.stamps)
            tx = None
            if evaluation.points > 0:
                tx = ledger.earn(book, evaluation.points, reason=f"{event.type} {event.id}",
                                 metadata={"event_id": event.id, "event_type": event.type})
            # events keep their usage rows (their log); the counters follow them
            rows = usage_rows(evaluation, program_id=self.program.id, member_id=member_id,
                              source=f"event:{event.id}", occurred_at=when)
            ledger.changes.usage.extend(rows)
            self._keep_activity(ledger, state, p.activity.record(
                f"event:{event.id}", when, (), rows, horizon=p.kept.horizon))
            return EventResult(
                event_id=event.id, member_id=member_id, points=evaluation.points,
                version=program.version, evaluation=evaluation,
                transaction=self._tx_result(uow, ledger, book, tx) if tx else None,
                rewards=evaluation.rewards,
            )

        return self._write(key, request, when, member_id, apply)

    def order(self, order_id: str) -> OrderRecord:
        """Return a recorded order: as placed, what was returned, what it is worth now."""
        order_id = _check_member_id(order_id, "order_id")
        with self.storage.unit_of_work(self.program.id) as uow:
            record = uow.get_order(order_id)
        if record is None:
            raise OrderNotFound("no such order", order_id=order_id)
        return record

    # -- tiers ----------------------------------------------------------------------------

    def _tiers(self) -> TierPolicy:
        policy = self.program.tiers
        if policy is None:
            raise InvalidInput("the program has no tiers", program_id=self.program.id)
        return policy

    def _anchor(self, enrolled_at: dt.datetime) -> dt.date:
        local = pendulum.instance(enrolled_at).in_timezone(zone(self.program.time_zone))
        return dt.date(local.year, local.month, local.day)

    def _evaluation_changes(
        self, member_id: str, evaluations: Iterable[tuple[dt.datetime, int, int, int]],
        recorded_at: dt.datetime | None,
    ) -> list[TierChange]:
        """History lines of the evaluations :func:`catch_up` applied."""
        tiers = self._tiers().tiers
        return [TierChange(member_id=member_id, at=when, from_tier=tiers[before].name,
                           to_tier=tiers[after].name, reason="evaluation", metric=value,
                           recorded_at=recorded_at)
                for when, before, after, value in evaluations]

    def _tier_step(self, uow: UnitOfWork, ledger: Ledger) -> None:
        """Keep tier states up to date with what this unit of work writes: new members
        start on the base tier; activity that changes the metric is added to its
        period's bucket after the member's due evaluations, then upgrades or reverts."""
        policy = self._tiers()
        changes = ledger.changes
        tz = self.program.time_zone
        names = [t.name for t in policy.tiers]
        for member in changes.members:
            changes.tier_states[member.member_id] = new_state(
                policy, member.member_id, member.enrolled_at, tz,
                self._anchor(member.enrolled_at))
            changes.new_tier_states.add(member.member_id)
        acts: dict[str, list[tuple[dt.datetime, int]]] = {}
        if policy.metric is TierMetric.POINTS:
            wallet = policy.wallet or self.program.default_wallet
            for tx in changes.transactions:
                if tx.wallet == wallet:
                    delta = -tx.amount(Account.ISSUED)
                    if delta:
                        acts.setdefault(tx.member_id, []).append((tx.occurred_at, delta))
        else:
            spend = policy.metric is TierMetric.SPEND
            for member_id, at, units, orders in changes.tier_orders:
                delta = units if spend else orders
                if delta:
                    acts.setdefault(member_id, []).append((at, delta))
        for member_id, items in acts.items():
            items.sort(key=lambda item: item[0])
            state = changes.tier_states.get(member_id)
            stored = state is None
            if state is None:
                if member_id in ledger.tier_read:
                    state = ledger.tier_read[member_id]
                else:
                    state = uow.get_tier_state(member_id)
                if state is None:  # enrolled before the program had tiers
                    found = uow.get_member(member_id)
                    assert found is not None  # the ledger step found its accounts
                    state = new_state(policy, member_id, items[0][0], tz,
                                      self._anchor(found.enrolled_at))
                    changes.new_tier_states.add(member_id)
                    stored = False
            added: dict[dt.datetime, int] = {}  # this write's buckets of the member

            def metric_of(start: dt.datetime, end: dt.datetime | None,
                          member_id: str = member_id, stored: bool = stored,
                          added: dict[dt.datetime, int] = added) -> int:
                value = uow.tier_metric(member_id, start, end) if stored else 0
                return value + sum(v for p, v in added.items()
                                   if start <= p and (end is None or p < end))

            for at, delta in items:
                state, evaluations = catch_up(policy, state, at, tz, metric_of)
                changes.tier_history += self._evaluation_changes(
                    member_id, evaluations, ledger.recorded_at)
                period = policy.window.period_start(at, tz, state.anchor)
                added[period] = added.get(period, 0) + delta
                if period < state.window_start:
                    continue  # dated in a window already evaluated: counted there only
                value = metric_of(state.window_start, state.next_evaluation)
                before = state.rank
                state, reason = on_activity(policy, state, value, at, tz)
                if reason is not None:
                    changes.tier_history.append(TierChange(
                        member_id=member_id, at=at, from_tier=names[before],
                        to_tier=names[state.rank], reason=reason, metric=value,
                        recorded_at=ledger.recorded_at))
            for period, delta in added.items():
                key = (member_id, period)
                changes.tier_buckets[key] = changes.tier_buckets.get(key, 0) + delta
            changes.tier_states[member_id] = state

    def _tier_state(self, uow: UnitOfWork, member_id: str, at: dt.datetime,
                    tier_read: dict[str, TierState | None] | None = None,
                    ) -> tuple[TierState | None, list[tuple[dt.datetime, int, int, int]]]:
        """The member's tier state with the evaluations due by ``at`` applied (not
        written), and those evaluations' changes. The stored state is kept in
        ``tier_read`` when given."""
        policy = self._tiers()
        state = uow.get_tier_state(member_id)
        if tier_read is not None:
            tier_read[member_id] = state
        if state is None:
            return None, []
        return catch_up(policy, state, at, self.program.time_zone,
                        lambda start, end: uow.tier_metric(member_id, start, end))

    def _tier_of(self, uow: UnitOfWork, member_id: str, at: dt.datetime,
                 tier_read: dict[str, TierState | None] | None = None) -> tuple[str, Any]:
        """(tier name, earn multiplier) of the member at ``at``, for pricing."""
        policy = self._tiers()
        state, _ = self._tier_state(uow, member_id, at, tier_read)
        tier = policy.tiers[state.rank if state is not None else 0]
        return tier.name, tier.benefits.earn_multiplier

    def _read_tier(self, member_id: str) -> tuple[TierPolicy, dt.datetime, TierState,
                                                  list[TierChange], int]:
        """One read of the member's tier as of now: the policy, now, the state (due
        evaluations applied; a member without one is on the base tier), the history
        (with those evaluations) and the metric of the current window."""
        member_id = _check_member_id(member_id)
        policy = self._tiers()
        now = self._now()
        with self.storage.unit_of_work(self.program.id) as uow:
            member = uow.get_member(member_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            state, virtual = self._tier_state(uow, member_id, now)
            history = uow.tier_history(member_id)
            if state is None:  # enrolled before the program had tiers, nothing since
                state, value = new_state(policy, member_id, now, self.program.time_zone,
                                         self._anchor(member.enrolled_at)), 0
            else:
                value = uow.tier_metric(member_id, state.window_start, state.next_evaluation)
        history += self._evaluation_changes(member_id, virtual, None)
        return policy, now, state, history, value

    def tier(self, member_id: str) -> TierStatus:
        """The member's tier now, with its benefits and how it is held.

        Evaluations due by now count even before due work has written them."""
        policy, now, state, history, _ = self._read_tier(member_id)
        tier = policy.tiers[state.rank]
        since = next((c.at for c in reversed(history) if c.to_tier == tier.name), None)
        manual = (state.manual if state.manual is not None
                  and (state.manual_until is None or now < state.manual_until) else None)
        return TierStatus(
            member_id=member_id, tier=tier.name, benefits=tier.benefits, since=since,
            protected_until=state.protected_until, next_evaluation=state.next_evaluation,
            lifetime_floor=policy.tiers[state.floor].name if state.floor else None,
            manual=policy.tiers[manual].name if manual is not None else None,
            manual_until=state.manual_until if manual is not None else None)

    def tier_as_of(self, member_id: str, at: dt.datetime) -> str:
        """The name of the tier the member held at the instant ``at`` (business
        time), from its tier history."""
        when = self._instant(at)
        policy, _, _, history, _ = self._read_tier(member_id)
        held = policy.tiers[0].name
        for change in sorted(history, key=lambda c: c.at):
            if change.at <= when:
                held = change.to_tier
        return held

    def tier_history(self, member_id: str) -> list[TierChange]:
        """Every change of the member's tier, oldest first, with its reason (evaluations
        due by now included)."""
        return self._read_tier(member_id)[3]

    def tier_progress(self, member_id: str) -> TierProgress:
        """What the member still needs, and by when, to reach the next tier; and what
        keeps the current one at the next evaluation."""
        policy, _, state, _, value = self._read_tier(member_id)
        currency = self.program.currency
        rank = state.rank
        thresholds = policy.thresholds
        nxt = rank + 1 if rank + 1 < len(policy.tiers) else None
        keeps = state.next_evaluation is None or would_be(policy, state, value) >= rank
        return TierProgress(
            member_id=member_id, tier=policy.tiers[rank].name,
            next_tier=policy.tiers[nxt].name if nxt is not None else None,
            metric=policy.units_as(value, currency),
            needed=(policy.units_as(max(thresholds[nxt] - value, 0), currency)
                    if nxt is not None else None),
            deadline=state.next_evaluation, window_start=state.window_start,
            keeps_tier=keeps,
            needed_to_keep=policy.units_as(max(thresholds[rank] - value, 0), currency))

    def assign_tier(
        self,
        member_id: str,
        tier: str,
        *,
        key: str,
        reason: str,
        until: dt.datetime | None = None,
        at: dt.datetime | None = None,
    ) -> TierStatus:
        """Put the member on ``tier`` by hand (a reason is required), until ``until``
        (None: for good). While the assignment holds, no evaluation or revert takes
        the member below it; reaching a higher tier still upgrades. Assigning again
        replaces the assignment. An assignment below a lifetime tier the member has
        reached leaves the member on the lifetime tier."""
        member_id = _check_member_id(member_id)
        policy = self._tiers()
        if not isinstance(tier, str):
            raise InvalidInput("tier must be a tier name", tier=repr(tier))
        try:
            rank = policy.rank(tier)
        except InvalidProgram:
            raise InvalidInput("no such tier", tier=tier,
                               tiers=[t.name for t in policy.tiers]) from None
        key = check_key(key)
        reason = _check_reason(reason, required=True)
        when = self._instant(at)
        end = None
        if until is not None:
            end = to_utc(check_aware(until, name="until"))
            if end <= when:
                raise InvalidInput("until must be later than the assignment",
                                   until=end.isoformat(), at=when.isoformat())
        request = self._request("assign_tier", at, when, member_id=member_id, tier=tier,
                                reason=reason, until=end.isoformat() if end else None)
        names = [t.name for t in policy.tiers]

        def apply(uow: UnitOfWork, ledger: Ledger) -> TierStatus:
            wallet = policy.wallet or self.program.default_wallet
            self._books(uow, ledger, wallet, [member_id], need_lots=False)
            state, evaluations = self._tier_state(uow, member_id, when)
            if state is None:
                member = uow.get_member(member_id)
                assert member is not None
                state = new_state(policy, member_id, when, self.program.time_zone,
                                  self._anchor(member.enrolled_at))
                ledger.changes.new_tier_states.add(member_id)
            ledger.changes.tier_history += self._evaluation_changes(
                member_id, evaluations, ledger.recorded_at)
            held = max(rank, state.floor)  # never below a lifetime tier reached
            ledger.changes.tier_history.append(TierChange(
                member_id=member_id, at=when, from_tier=names[state.rank],
                to_tier=names[held], reason="manual", metric=0, note=reason,
                recorded_at=ledger.recorded_at))
            state = attrs.evolve(state, rank=held, manual=rank, manual_until=end,
                                 manual_reason=reason, attained_at=when)
            ledger.changes.tier_states[member_id] = state
            return TierStatus(
                member_id=member_id, tier=names[held], benefits=policy.tiers[held].benefits,
                since=when, protected_until=state.protected_until,
                next_evaluation=state.next_evaluation,
                lifetime_floor=names[state.floor] if state.floor else None,
                manual=tier, manual_until=end)

        return self._write(key, request, when, member_id, apply)

    def tier_notices(self, *, since: dt.datetime | None = None,
                     limit: int = 1000) -> list[TierNotice]:
        """"Will downgrade" notices recorded by due work (created at or after
        ``since``), oldest first: send them, then ask again with a later ``since``."""
        self._tiers()
        if since is not None:
            since = to_utc(check_aware(since, name="since"))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidInput("limit must be an int in 1..100000", limit=limit)
        with self.storage.unit_of_work(self.program.id) as uow:
            return uow.tier_notices(since=since, limit=limit)

    def _tier_due_work(self, when: dt.datetime, batch_size: int, workers: int = 1
                       ) -> dict[str, int]:
        """Evaluate every tier window ended by ``when`` and record downgrade notices
        for evaluations within ``notice_days``: set-based, batch by batch, each batch
        its own unit of work (so it resumes, and a second run finds nothing); with
        ``workers`` > 1, the batches' member ranges are read first and run at once."""
        policy = self.program.tiers
        if policy is None or policy.window.kind is WindowKind.LIFETIME:
            return {}
        tz = self.program.time_zone
        by_anchor = policy.window.kind is WindowKind.ANNIVERSARY_YEAR
        totals = {"tier_evaluations": 0, "tier_changes": 0, "tier_notices": 0}
        parallel = workers > 1 and self.storage.concurrent

        def count(done: int, changed: int, notices: bool) -> None:
            if notices:
                totals["tier_notices"] += changed
            else:
                totals["tier_evaluations"] += done
                totals["tier_changes"] += changed

        def run(at: dt.datetime, anchor: dt.date | None, *, notices: bool) -> None:
            job = job_for(policy, tz, at, anchor, self._now(), batch_size)
            if parallel:  # (a state a concurrent write left waiting: the next round)
                jobs = [attrs.evolve(job, after=after, upto=upto)
                        for after, upto in self._tier_ranges(job, notices)]
                with ThreadPoolExecutor(workers, thread_name_prefix="loyaltykit-due") as pool:
                    for done, changed in pool.map(
                            lambda j: self._tier_batch(j, notices=notices), jobs):
                        count(done, changed, notices)
                return
            while True:  # batch by batch until one comes back short
                done, changed = self._tier_batch(job, notices=notices)
                count(done, changed, notices)
                if done < batch_size:
                    return

        while True:  # an evaluation moves states to the next one, which may be due too
            with self.storage.unit_of_work(self.program.id) as uow:
                due = uow.tier_due(when, by_anchor=by_anchor)
            if not due:
                break
            for at, anchor in due:
                run(at, anchor, notices=False)
        if policy.notice_days:
            horizon = when + dt.timedelta(days=policy.notice_days)
            with self.storage.unit_of_work(self.program.id) as uow:
                upcoming = uow.tier_due(horizon, by_anchor=by_anchor)
            for at, anchor in upcoming:
                run(at, anchor, notices=True)
        return totals

    def _tier_ranges(self, job: TierJob, notices: bool) -> list[tuple[str | None, str]]:
        """The member-id ranges ``(after, upto]`` of the batches of ``job``, in order."""
        ranges: list[tuple[str | None, str]] = []
        after: str | None = None
        with self.storage.unit_of_work(self.program.id) as uow:
            while (end := uow.tier_batch_end(attrs.evolve(job, after=after),
                                             noticed=notices)) is not None:
                if after is not None and end <= after:
                    raise StorageError("tier_batch_end did not move past its start",
                                       after=after, end=end)
                ranges.append((after, end))
                after = end
        return ranges

    def _tier_batch(self, job: TierJob, *, notices: bool) -> tuple[int, int]:
        attempt = 0
        while True:
            try:
                with self.storage.unit_of_work(self.program.id) as uow:
                    result = (uow.record_tier_notices(job) if notices
                              else uow.evaluate_tiers(job))
                    uow.commit()
                    return result
            except SerializationFailure:
                self._backoff(attempt)
            attempt += 1
            if attempt > self._max_retries:
                raise RetryLimitExceeded("tier due work kept conflicting",
                                         attempts=self._max_retries + 1)

    # -- due work -------------------------------------------------------------------------

    def run_due(self, at: dt.datetime | None = None, *, batch_size: int = 500,
                workers: int = 1) -> DueWorkReport:
        """Post everything due up to ``at`` (default: now) for every member: release
        stale holds, activate matured pending lots, expire lots past their expiry;
        evaluate tiers whose window ended and record "will downgrade" notices.

        Each transaction is dated at the instant it fell due, not when the job ran.
        Idempotent and resumable: work is done in batches of ``batch_size`` member
        wallets, each its own unit of work, and a second run finds nothing to do.

        ``workers`` > 1 runs up to that many tier batches at once, each on its own
        thread and connection (disjoint ranges of member ids): a year-end evaluation
        of a large program on PostgreSQL then uses the server's cores. The result is
        the same as with one worker. It needs a storage whose units of work may run
        concurrently (``storage.concurrent``; not a SQL storage bound to a host
        connection, which then works with one); on SQLite, whose writers take turns,
        it gains nothing. The ledger part (holds, activation, expiry) runs on one.
        """
        when = self._instant(at)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size must be a positive int", batch_size=batch_size)
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise InvalidInput("workers must be an int in 1..64", workers=workers)
        totals: dict[str, int] = {}
        members = 0
        cursor: tuple[str, str] | None = None
        while True:
            with self.storage.unit_of_work(self.program.id) as uow:
                due = uow.due_accounts(when, after=cursor, limit=batch_size)
                if not due:
                    break
                cursor = due[-1]
                ledger = Ledger(self.program, at=when, recorded_at=self._now(),
                                new_id=self._new_id)
                by_wallet: dict[str, list[str]] = {}
                for member_id, wallet in due:
                    by_wallet.setdefault(wallet, []).append(member_id)
                for wallet, ids in by_wallet.items():
                    self._books(uow, ledger, wallet, ids, need_lots=True)
                changes = ledger.finish()
                for tx in changes.transactions:
                    name = {Kind.ACTIVATE: "activated", Kind.EXPIRE: "expired",
                            Kind.RELEASE: "released"}[tx.kind]
                    unit = "holds" if tx.kind is Kind.RELEASE else "lots"
                    moved = -tx.amount(Account.HELD) if tx.kind is Kind.RELEASE else (
                        tx.amount(Account.EXPIRED) if tx.kind is Kind.EXPIRE
                        else -tx.amount(Account.PENDING))
                    totals[f"{name}_{unit}"] = totals.get(f"{name}_{unit}", 0) + 1
                    totals[f"{name}_points"] = totals.get(f"{name}_points", 0) + moved
                    if tx.kind is Kind.RELEASE:
                        # points a release returns to a lot past its expiry expire at once
                        lapsed = tx.amount(Account.EXPIRED)
                        totals["expired_points"] = totals.get("expired_points", 0) + lapsed
                members += len(due)
                uow.write(changes)
                uow.commit()
        totals.update(self._tier_due_work(when, batch_size, workers))
        report = DueWorkReport(at=when, members=members, **totals)
        level = logging.INFO if members else logging.DEBUG
        logger.log(level, "due work at %s: %s", when.isoformat(), report)
        return report

    # -- reads ----------------------------------------------------------------------------

    # -- referrals ------------------------------------------------------------------------

    def _referral_policy(self) -> ReferralPolicy:
        policy = self.program.referrals
        if policy is None:
            raise InvalidInput("the program has no referral policy", program_id=self.program.id)
        return policy

    def _digests(self, identity: object) -> dict[str, str]:
        if identity is None:
            return {}
        if not isinstance(identity, Identity):
            raise InvalidInput("identity must be an Identity", identity=repr(identity))
        if identity.empty:
            return {}
        if self._secret is None:
            raise InvalidInput("fingerprints are kept only as keyed hashes: give Loyalty a "
                               "secret (bytes) to keep an identity", member_identity="given")
        return identity.digests(self._secret)

    def _marks(self, member_id: str, digests: Mapping[str, str]) -> list[ReferralMark]:
        return [ReferralMark(self.program.id, member_id, kind, digest)
                for kind, digest in sorted(digests.items())]

    def check_code(self, text: str) -> str:
        """Normalise a typed referral code and return its stored form, or raise
        :class:`~loyaltykit.InvalidCode` if it cannot be one of the program's codes (a
        typo is caught by the check character). Reads no storage: a form can call it on
        every keystroke."""
        return self._referral_policy().code.parse(text)

    def issue_code(
        self,
        member_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        source: Source = Source.CUSTOMER,
        expires_at: dt.datetime | None = None,
        max_uses: int | None = None,
    ) -> ReferralCode:
        """Issue a new referral code to a member, drawn from :mod:`secrets`.

        The storage's unique rule on codes keeps every code distinct: a drawn code that
        is taken is drawn again. ``source`` picks the reward policy; ``expires_at``
        defaults to the policy's ``code_valid_days`` after issue and ``max_uses`` to its
        ``code_max_uses``. The key defaults to ``"referral-code:<member_id>"`` (the
        member's first code); give another key for more codes.
        """
        policy = self._referral_policy()
        member_id = _check_member_id(member_id)
        key = check_key(key if key is not None else f"referral-code:{member_id}")
        if not isinstance(source, Source):
            raise InvalidInput("source must be a Source", source=repr(source))
        when = self._instant(at)
        if expires_at is not None:
            expiry: dt.datetime | None = to_utc(check_aware(expires_at, name="expires_at"))
        elif policy.code_valid_days is not None:
            expiry = add_days(when, policy.code_valid_days, zone(self.program.time_zone))
        else:
            expiry = None
        if max_uses is None:
            max_uses = policy.code_max_uses
        elif isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 1:
            raise InvalidInput("max_uses must be a positive int", max_uses=max_uses)
        request = self._request("issue_code", at, when, member_id=member_id,
                                source=source.value,
                                expires_at=expiry.isoformat() if expiry else None,
                                max_uses=max_uses)

        def apply(uow: UnitOfWork, ledger: Ledger) -> ReferralCode:
            if uow.get_member(member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            code = policy.code.draw(self._randbelow)
            issued = ReferralCode(
                program_id=self.program.id, code=code, shown=policy.code.display(code),
                member_id=member_id, source=source, created_at=when, expires_at=expiry,
                max_uses=max_uses, uses=0)
            ledger.changes.referral_codes.append(issued)
            return issued

        return self._write(key, request, when, member_id, apply, redraw=True)

    def codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's referral codes, oldest first."""
        member_id = _check_member_id(member_id)
        with self.storage.unit_of_work(self.program.id) as uow:
            if uow.get_member(member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            return uow.member_codes(member_id)

    def identify(
        self,
        member_id: str,
        identity: Identity,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
    ) -> Member:
        """Keep keyed hashes of what identifies a member (e-mail, payment and device
        fingerprints) for the fraud checks of referrals they make or receive. The raw
        values are never stored. The key defaults to one derived from the hashes."""
        member_id = _check_member_id(member_id)
        digests = self._digests(identity)
        if not digests:
            raise InvalidInput("identity gives nothing to keep", member_id=member_id)
        when = self._instant(at)
        marks = sorted(digests.items())
        key = check_key(key if key is not None else "identify:" + hashlib.sha256(
            f"{member_id}|{marks}".encode()).hexdigest()[:40])
        request = self._request("identify", at, when, member_id=member_id, marks=marks)

        def apply(uow: UnitOfWork, ledger: Ledger) -> Member:
            member = uow.get_member(member_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            ledger.changes.referral_marks.extend(self._marks(member_id, digests))
            return member

        return self._write(key, request, when, member_id, apply)

    def refer(
        self,
        referee_id: str,
        code: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        identity: Identity | None = None,
    ) -> Referral:
        """Attach a referral code to an enrolled member (the referee) within the
        policy's ``attach_within_days`` of enrolling. The key defaults to
        ``"refer:<referee_id>"``.

        A malformed code raises :class:`~loyaltykit.InvalidCode` before any storage is
        read; an unknown one :class:`~loyaltykit.CodeNotFound`; an expired or used-up
        one :class:`~loyaltykit.CodeExpired` / :class:`~loyaltykit.CodeUsedUp`. One's
        own code raises :class:`~loyaltykit.SelfReferral`, a second referral
        :class:`~loyaltykit.AlreadyReferred`, and a member past the window or (unless the
        policy allows them) with orders recorded :class:`~loyaltykit.NotReferable`:
        nothing is written. Otherwise the fraud checks judge it and the referral is kept
        as waiting, flagged or blocked, with their reasons.
        """
        policy = self._referral_policy()
        referee_id = _check_member_id(referee_id, "referee_id")
        parsed = policy.code.parse(code)
        digests = self._digests(identity)
        key = check_key(key if key is not None else f"refer:{referee_id}")
        when = self._instant(at)
        request = self._request("refer", at, when, referee_id=referee_id, code=parsed,
                                marks=sorted(digests.items()))

        def apply(uow: UnitOfWork, ledger: Ledger) -> Referral:
            return self._attach(uow, ledger, referee_id, parsed, when, digests, member=None)

        return self._write(key, request, when, referee_id, apply)

    def _attach(self, uow: UnitOfWork, ledger: Ledger, referee_id: str, code: str,
                when: dt.datetime, digests: Mapping[str, str], *, member: Member | None
                ) -> Referral:
        """Attribute ``referee_id`` to the owner of ``code`` (``member``: the referee
        being enrolled in this unit of work; None: an enrolled member)."""
        policy = self._referral_policy()
        found = uow.get_code(code)
        if found is None:
            raise CodeNotFound("no such referral code", code=code)
        if found.member_id == referee_id:
            raise SelfReferral("a member cannot use their own code", reason="own code",
                               member_id=referee_id)
        if found.expires_at is not None and when >= found.expires_at:
            raise CodeExpired("the code has expired", code=code,
                              expires_at=found.expires_at.isoformat())
        if member is None:
            member = uow.get_member(referee_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[referee_id])
            existing = uow.get_referral(referee_id)
            if existing is not None:
                raise AlreadyReferred("the member already has a referral",
                                      reason="already referred", referee_id=referee_id,
                                      referrer_id=existing.referrer_id)
            closes = add_days(member.enrolled_at, policy.attach_within_days,
                              zone(self.program.time_zone))
            if when > closes:
                raise NotReferable("the window to attach a code has closed",
                                   reason="attach window closed", referee_id=referee_id,
                                   closed_at=closes.isoformat())
            if not policy.existing_customers and uow.count_orders(referee_id) > 0:
                raise NotReferable("an existing customer cannot be referred",
                                   reason="existing customer", referee_id=referee_id)
        referrer_id = found.member_id
        marks = uow.marks_of([referrer_id, referee_id])
        mine = frozenset((m.kind, m.digest) for m in marks if m.member_id == referrer_id)
        theirs = frozenset((m.kind, m.digest) for m in marks if m.member_id == referee_id)
        chain: list[str] = []
        up = uow.get_referral(referrer_id)
        while up is not None and up.referrer_id not in chain and len(chain) < 32:
            chain.append(up.referrer_id)
            up = uow.get_referral(up.referrer_id)
        last_hour, last_day = uow.count_attributions(
            referrer_id, (when - dt.timedelta(hours=1), when - dt.timedelta(days=1)))
        case = ReferralCase(
            referrer_id=referrer_id, referee_id=referee_id, at=when, source=found.source,
            referrer_marks=mine, referee_marks=theirs | frozenset(digests.items()),
            last_hour=last_hour, last_day=last_day, chain=tuple(chain))
        verdict = judge(self._fraud_checks, case)
        status = {Outcome.PASS: ReferralStatus.WAITING, Outcome.FLAG: ReferralStatus.FLAGGED,
                  Outcome.BLOCK: ReferralStatus.BLOCKED}[verdict.outcome]
        # a blocked attempt does not use the code up
        if status is not ReferralStatus.BLOCKED and not uow.claim_code(code):
            raise CodeUsedUp("the code has been used as often as it may be", code=code,
                             max_uses=found.max_uses)
        _, campaign = policy.reward_for(found.source, when)
        referral = Referral(
            program_id=self.program.id, referee_id=referee_id, referrer_id=referrer_id,
            code=code, source=found.source, status=status, attributed_at=when,
            updated_at=ledger.recorded_at, reasons=verdict.reasons, campaign=campaign,
            decided_at=when if status is ReferralStatus.BLOCKED else None)
        ledger.changes.referrals[referee_id] = referral
        ledger.changes.new_referrals.add(referee_id)
        ledger.changes.referral_marks.extend(self._marks(referee_id, digests))
        if status is not ReferralStatus.WAITING:
            logger.info("referral of %s by %s %s: %s", referee_id, referrer_id,
                        status.value, "; ".join(verdict.reasons))
        return referral

    def _qualifies(self, policy: ReferralPolicy, referral: Referral, net: Decimal,
                   at: dt.datetime, number: int) -> bool:
        """True if an order of ``net`` goods placed at ``at`` (the referee's
        ``number``-th) qualifies ``referral``."""
        deadline = add_days(referral.attributed_at, policy.qualify_within_days,
                            zone(self.program.time_zone))
        if not referral.attributed_at <= at < deadline:
            return False
        if policy.min_net is not None and net < policy.min_net.amount:
            return False
        return policy.order_number is None or number == policy.order_number

    def _referral_on_order(self, uow: UnitOfWork, ledger: Ledger, book: MemberBook,
                           wallet: str, order: Order, at: dt.datetime) -> None:
        """Pay (or, flagged, note) the referral this order qualifies, if any."""
        policy = self.program.referrals
        if policy is None:
            return
        referral = uow.get_referral(order.member_id)
        if referral is None or referral.order_id is not None or referral.status not in (
                ReferralStatus.WAITING, ReferralStatus.FLAGGED):
            return
        number = uow.count_orders(order.member_id) + 1
        if not self._qualifies(policy, referral, order.net_goods, at, number):
            return
        if referral.status is ReferralStatus.FLAGGED:
            ledger.changes.referrals[referral.referee_id] = attrs.evolve(
                referral, order_id=order.id, qualified_at=at, updated_at=ledger.recorded_at)
            return
        referee = book if wallet == self.program.default_wallet else None
        self._pay(uow, ledger, referral, order.id, at, referee)

    def _pay(self, uow: UnitOfWork, ledger: Ledger, referral: Referral, order_id: str,
             order_at: dt.datetime, referee_book: MemberBook | None,
             referrer_book: MemberBook | None = None) -> Referral:
        """Issue both rewards, pending until the order's return window closes; the
        referrer's only within the cap (counted under the referrer's lock)."""
        policy = self._referral_policy()
        tz = zone(self.program.time_zone)
        wallet = self.program.default_wallet
        reward, _ = policy.reward_for(referral.source, referral.attributed_at)
        settles = add_days(order_at, policy.return_window_days, tz)
        reasons = list(referral.reasons)
        referee_tx = referrer_tx = None
        referrer_points = reward.referrer
        if referrer_points:
            book = referrer_book or self._books(uow, ledger, wallet, [referral.referrer_id],
                                                need_lots=False)[referral.referrer_id]
            if policy.cap is not None:
                start, end = policy.cap.bounds(order_at, tz)
                if uow.count_paid(referral.referrer_id, start, end) >= policy.cap.count:
                    referrer_points = 0
                    reasons.append(f"cap: the referrer was paid for {policy.cap.count} "
                                   f"referrals this {policy.cap.period.value}")
            if referrer_points:
                referrer_tx = ledger.earn(
                    book, referrer_points, reason=f"referral of {referral.referee_id}",
                    metadata={"referral": referral.referee_id, "side": "referrer",
                              "order_id": order_id},
                    activates_at=settles, pending=True).id
        if reward.referee:
            if referee_book is None:
                referee_book = self._books(uow, ledger, wallet, [referral.referee_id],
                                           need_lots=False)[referral.referee_id]
            referee_tx = ledger.earn(
                referee_book, reward.referee, reason=f"referred by {referral.referrer_id}",
                metadata={"referral": referral.referee_id, "side": "referee",
                          "order_id": order_id},
                activates_at=settles, pending=True).id
        paid = attrs.evolve(
            referral, status=ReferralStatus.QUALIFIED, order_id=order_id,
            qualified_at=order_at, settles_at=settles, referrer_points=referrer_points,
            referee_points=reward.referee, referrer_tx=referrer_tx, referee_tx=referee_tx,
            reasons=tuple(reasons), updated_at=ledger.recorded_at)
        ledger.changes.referrals[referral.referee_id] = paid
        return paid

    def _referral_on_return(self, uow: UnitOfWork, ledger: Ledger, book: MemberBook,
                            wallet: str, record: OrderRecord, as_it_stands: Order,
                            at: dt.datetime, *, cancel: bool) -> None:
        """Void the rewards of the referral this order qualified when a return within
        its window leaves the order below the minimum (or cancels it)."""
        policy = self.program.referrals
        if policy is None:
            return
        referral = uow.get_referral(record.member_id)
        if referral is None or referral.order_id != record.order_id:
            return
        below = cancel or (policy.min_net is not None
                           and as_it_stands.net_goods < policy.min_net.amount)
        if not below:
            return
        if referral.status is ReferralStatus.FLAGGED:  # not paid yet: just not qualified
            ledger.changes.referrals[referral.referee_id] = attrs.evolve(
                referral, order_id=None, qualified_at=None, updated_at=ledger.recorded_at)
            return
        if referral.status is not ReferralStatus.QUALIFIED or referral.settles_at is None \
                or at >= referral.settles_at:
            return
        default = self.program.default_wallet
        reason = f"referral voided: order {record.order_id} returned"
        for member_id, tx_id in ((referral.referee_id, referral.referee_tx),
                                 (referral.referrer_id, referral.referrer_tx)):
            if tx_id is None:
                continue
            tx = uow.get_transaction(tx_id)
            if tx is None or uow.find_reversal(tx_id) is not None:
                continue
            lot_ids = [m.lot_id for m in tx.movements]
            if member_id == referral.referee_id and wallet == default:
                target = book
                if target.lots is not None:
                    for lot in uow.load_lots_by_id(lot_ids):
                        target.lots.setdefault(lot.id, lot)
            else:
                target = self._books(uow, ledger, default, [member_id], need_lots=True,
                                     extra_lots=lot_ids)[member_id]
            ledger.reverse(target, tx, reason=reason,
                           metadata={"referral": referral.referee_id})
        ledger.changes.referrals[referral.referee_id] = attrs.evolve(
            referral, status=ReferralStatus.VOIDED, decided_at=at,
            updated_at=ledger.recorded_at)

    def _decide_referral(self, referee_id: str, key: str | None, at: dt.datetime | None,
                         reason: str, *, approve: bool) -> Referral:
        self._referral_policy()
        referee_id = _check_member_id(referee_id, "referee_id")
        reason = _check_reason(reason, required=not approve)
        op = "approve_referral" if approve else "reject_referral"
        key = check_key(key if key is not None else f"{op}:{referee_id}")
        when = self._instant(at)
        request = self._request(op, at, when, referee_id=referee_id, reason=reason)

        def apply(uow: UnitOfWork, ledger: Ledger) -> Referral:
            referral = uow.get_referral(referee_id)
            if referral is None:
                raise ReferralNotFound("the member has no referral", referee_id=referee_id)
            if referral.status is not ReferralStatus.FLAGGED:
                raise ReferralNotFlagged("only a flagged referral can be approved or rejected",
                                         referee_id=referee_id, status=referral.status.value)
            if not approve:
                rejected = attrs.evolve(
                    referral, status=ReferralStatus.REJECTED, decided_at=when,
                    reasons=(*referral.reasons, f"rejected: {reason}"),
                    updated_at=ledger.recorded_at)
                ledger.changes.referrals[referee_id] = rejected
                return rejected
            decided = attrs.evolve(
                referral, status=ReferralStatus.WAITING, decided_at=when, order_id=None,
                qualified_at=None, updated_at=ledger.recorded_at,
                reasons=(*referral.reasons, *((f"approved: {reason}",) if reason else ())))
            ledger.changes.referrals[referee_id] = decided
            order = uow.get_order(referral.order_id) if referral.order_id else None
            if order is not None and order.status is not OrderStatus.CANCELLED:
                # the noted order pays now, if what is left of it still qualifies
                as_it_stands = Order.from_dict(dict(order.order)).after_returns(
                    dict(order.returned))
                policy = self._referral_policy()
                if policy.min_net is None or as_it_stands.net_goods >= policy.min_net.amount:
                    # both wallets locked in member order, as every other writer does
                    books = self._books(uow, ledger, self.program.default_wallet,
                                        [referee_id, referral.referrer_id], need_lots=False)
                    return self._pay(uow, ledger, decided, order.order_id, order.placed_at,
                                     books[referee_id], books[referral.referrer_id])
            return decided

        return self._write(key, request, when, referee_id, apply)

    def approve_referral(self, referee_id: str, *, key: str | None = None,
                         at: dt.datetime | None = None, reason: str = "") -> Referral:
        """Approve a flagged referral: it waits for its qualifying order, or, if one was
        placed while it was flagged (and still qualifies), pays now (pending until that
        order's return window closes)."""
        return self._decide_referral(referee_id, key, at, reason, approve=True)

    def reject_referral(self, referee_id: str, *, reason: str, key: str | None = None,
                        at: dt.datetime | None = None) -> Referral:
        """Reject a flagged referral, with a reason: it is never paid."""
        return self._decide_referral(referee_id, key, at, reason, approve=False)

    def referral(self, referee_id: str) -> Referral:
        """Return the member's referral (as referee)."""
        referee_id = _check_member_id(referee_id, "referee_id")
        with self.storage.unit_of_work(self.program.id) as uow:
            found = uow.get_referral(referee_id)
        if found is None:
            raise ReferralNotFound("the member has no referral", referee_id=referee_id)
        return found

    def referrals(self, referrer_id: str) -> list[Referral]:
        """Return the referrals a member made (as referrer), oldest first."""
        referrer_id = _check_member_id(referrer_id, "referrer_id")
        with self.storage.unit_of_work(self.program.id) as uow:
            return uow.referrals_of(referrer_id)

    def referrer_stats(self, member_id: str, *, at: dt.datetime | None = None
                       ) -> ReferrerStats:
        """Count what a member's referrals came to at ``at`` (default: now): invited,
        waiting, expired, flagged, qualified (pending + rewarded), voided and rejected
        (blocked or rejected, with their reasons counted), and the points pending and
        rewarded."""
        policy = self._referral_policy()
        member_id = _check_member_id(member_id)
        when = self._instant(at)
        tz = zone(self.program.time_zone)
        states: dict[str, int] = {}
        reasons: dict[str, int] = {}
        points = {"pending": 0, "rewarded": 0}
        found = self.referrals(member_id)
        for r in found:
            state = r.state_at(when, add_days(r.attributed_at, policy.qualify_within_days, tz))
            states[state] = states.get(state, 0) + 1
            if state in points:
                points[state] += r.referrer_points
            if r.status in (ReferralStatus.BLOCKED, ReferralStatus.REJECTED):
                for reason in r.reasons:
                    reasons[reason] = reasons.get(reason, 0) + 1
        return ReferrerStats(
            member_id=member_id, at=when, invited=len(found),
            waiting=states.get("waiting", 0), expired=states.get("expired", 0),
            flagged=states.get("flagged", 0),
            qualified=states.get("pending", 0) + states.get("rewarded", 0),
            pending=states.get("pending", 0), rewarded=states.get("rewarded", 0),
            voided=states.get("voided", 0),
            rejected=states.get("blocked", 0) + states.get("rejected", 0),
            points_pending=points["pending"], points_rewarded=points["rewarded"],
            reasons=reasons)

    def member(self, member_id: str) -> Member:
        """Return the enrolled member or raise MemberNotFound."""
        member_id = _check_member_id(member_id)
        with self.storage.unit_of_work(self.program.id) as uow:
            member = uow.get_member(member_id)
        if member is None:
            raise MemberNotFound("member is not enrolled", member_ids=[member_id])
        return member

    def balance(
        self,
        member_id: str,
        *,
        wallet: str | None = None,
        as_of: dt.datetime | None = None,
    ) -> Balance:
        """The member's balance in ``wallet``, now or as of a past instant.

        "Now" is the ledger as last written: expiries and activations appear once due
        work (or the member's next write) has posted them. ``as_of`` sums the postings
        whose business time is at or before it.
        """
        member_id = _check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        when = self._instant(as_of, "as_of")
        with self.storage.unit_of_work(self.program.id) as uow:
            state = uow.get_account(wallet_, member_id)
            if state is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            if as_of is None:
                return self._balance_of(state, when, uow.next_expiring(wallet_, member_id))
            sums = uow.sums_as_of(wallet_, member_id, when)
            live = [(lot, n) for lot, n in uow.lots_as_of(wallet_, member_id, when)
                    if lot.expires_at is not None and lot.expires_at > when]
        nxt = None
        if live:
            first = min(lot.expires_at for lot, _ in live if lot.expires_at is not None)
            nxt = (sum(n for lot, n in live if lot.expires_at == first), first)
        return self._balance_from_sums(member_id, wallet_, sums, when, nxt)

    def statement(
        self,
        member_id: str,
        *,
        wallet: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> StatementPage:
        """A page of the member's transactions, newest first, each with the member's
        total points right after it. Pass ``next_cursor`` back for the next page."""
        member_id = _check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
            1 <= limit <= MAX_STATEMENT_PAGE
        ):
            raise InvalidInput(f"limit must be an int in 1..{MAX_STATEMENT_PAGE}", limit=limit)
        before = None
        if cursor is not None:
            try:
                stamp, _, ident = cursor.partition("|")
                before = (dt.datetime.fromisoformat(stamp), uuid.UUID(ident))
                check_aware(before[0])
            except (ValueError, AttributeError, TypeError, InvalidInput):
                raise InvalidInput("malformed statement cursor", cursor=cursor) from None
        with self.storage.unit_of_work(self.program.id) as uow:
            if uow.get_account(wallet_, member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            txs, total = uow.statement(wallet_, member_id, limit=limit, before=before)
        lines = []
        running = total
        for tx in txs:
            lines.append(StatementLine(
                transaction_id=tx.id, kind=tx.kind, occurred_at=tx.occurred_at,
                points=tx.points, balance=running, reason=tx.reason,
                reverses_id=tx.reverses_id,
            ))
            running -= tx.points
        next_cursor = None
        if len(txs) == limit:
            last = txs[-1]
            next_cursor = f"{last.occurred_at.isoformat()}|{last.id}"
        return StatementPage(member_id=member_id, wallet=wallet_, lines=tuple(lines),
                             next_cursor=next_cursor)

    def transaction(self, transaction_id: uuid.UUID | str) -> Transaction:
        """Return a transaction with its postings and lot movements."""
        tid = _check_id(transaction_id, "transaction_id")
        with self.storage.unit_of_work(self.program.id) as uow:
            tx = uow.get_transaction(tid)
        if tx is None:
            raise TransactionNotFound("no such transaction", transaction_id=str(tid))
        return tx

    def hold_info(self, hold_id: uuid.UUID | str) -> Hold:
        """Return a hold (any status)."""
        hid = _check_id(hold_id, "hold_id")
        with self.storage.unit_of_work(self.program.id) as uow:
            hold = uow.get_hold(hid)
        if hold is None:
            raise HoldNotFound("no such hold", hold_id=str(hid))
        return hold

    def lots(self, member_id: str, *, wallet: str | None = None) -> list[Lot]:
        """The member's open lots (points left or pending), soonest-expiring first."""
        member_id = _check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        with self.storage.unit_of_work(self.program.id) as uow:
            if uow.get_account(wallet_, member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            lots = uow.load_lots(wallet_, [member_id])
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        return sorted(lots, key=lambda lot: (lot.expires_at or far, lot.earned_at, lot.id))


