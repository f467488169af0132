"""A fuzz test of the whole public surface: bad input gets a typed error, writes nothing.

Every public call and constructor (the names in ``loyaltykit.__all__`` and
``loyaltykit.memory`` / ``loyaltykit.sql``, the facade's calls, ``loyalty.tiers.*`` and
``loyalty.referrals.*``, the parsers and the few methods a shop calls) has a recipe of
valid arguments against a prepared world (a program with earning rules, tiers and
referrals; members with points, a pending earn, an open hold, an order, a referral code,
a flagged referral). Each parameter in turn is given every kind of bad value of
:data:`_fuzz.HOSTILE` while the others stay valid, on memory, SQLite and PostgreSQL.

A case passes when the call raises a documented :class:`~loyaltykit.LoyaltyError` (one
named in ``loyaltykit.__all__``) that is also the fitting builtin (``ValueError`` or
``LookupError``, never a ``StorageError`` for input validation could refuse), whose text
and repr can be built, and when every stored row is exactly as before (see
:class:`_State`). A value the parameter's role says may be valid may also be accepted;
any other success is a bad value accepted silently.

The table is checked against the code: a public call without a recipe (or a stated
reason in :data:`NOT_FUZZED`), a parameter without a role or a valid value, or a recipe
that fails on valid input fails the suite, so nobody can add an unfuzzed call. The
parameters, and so the cases, come from ``inspect.signature``. Not enumerated:
``loyaltykit.storage`` (the port, for backend authors: the shipped contract tests it)
and ``loyaltykit.testing`` (test helpers).

Parts, each on every backend:

* the catalogue: every (call, parameter, kind) once; deterministic, so the number of
  cases is exact: :func:`catalogue_cases` (and printed with ``-s``);
* random values of every kind from Hypothesis strategies for random parameters: 300
  examples per backend, 2,000 in the ``slow`` part.

Failures are collected, not stopped at: the test fails listing them, and with
``LOYALTYKIT_FUZZ_REPORT=<path>`` writes all of them (area, call, parameter, kind,
value, problem, error type, message, backends) to that file.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import json
import operator
import os
import re
import secrets
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _fuzz
import loyaltykit
import loyaltykit.memory
import loyaltykit.sql
from conftest import POSTGRESQL
from loyaltykit import (
    DEFAULT_RFM_SEGMENTS,
    AllOf,
    AnyOf,
    Attribute,
    Benefits,
    Campaign,
    Cap,
    CapPeriod,
    ChannelIn,
    CodeSpec,
    Condition,
    CustomReward,
    Cycle,
    EarningPolicy,
    Event,
    EventBonusRule,
    EventPolicy,
    EventPosition,
    EventType,
    ExpiryPolicy,
    FirstOrder,
    FixedDiscount,
    FixedRule,
    FraudCheckError,
    FreeItem,
    Identity,
    LedgerPolicy,
    LineMatch,
    Loyalty,
    LoyaltyError,
    MemberContext,
    MinNet,
    MinTenure,
    Money,
    MultiplierRule,
    Not,
    Order,
    OrderLine,
    Outcome,
    PaymentPolicy,
    PendingPolicy,
    PercentDiscount,
    Period,
    Program,
    QualificationWindow,
    RateRule,
    RedemptionEstimate,
    ReferralCap,
    ReferralPolicy,
    ReferralReward,
    ReturnSplit,
    Reward,
    RewardLimit,
    RewardPolicy,
    RfmSegment,
    Rule,
    RuleGroup,
    SameEmail,
    SameFingerprint,
    Source,
    StampCardRule,
    Storage,
    StorageError,
    StoreIn,
    SystemClock,
    TestClock,
    Tier,
    TierIn,
    TierMultiplierRule,
    TierPolicy,
    Velocity,
    Verdict,
    VoucherStatus,
    Window,
    WindowKind,
    allocate_revenue,
    default_checks,
    describe_program,
    evaluate_event,
    evaluate_order,
    normalise_email,
    recognise_revenue,
    rfm_scores,
    rfm_segment,
)
from loyaltykit._services.events import EventService
from loyaltykit._services.payments import PaymentService
from loyaltykit._services.privacy import PrivacyService
from loyaltykit._services.referrals import ReferralService
from loyaltykit._services.report_orders import OrderReports
from loyaltykit._services.reports import ReportService
from loyaltykit._services.rewards import RewardService
from loyaltykit._services.tiers import TierService
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine

BERLIN = dt.timezone(dt.timedelta(hours=1))  # Europe/Berlin in March, before DST
START = dt.datetime(2026, 3, 2, 9, tzinfo=BERLIN)
#: A business instant of the recipes: after the world was built, before the clock's now.
AT = START + dt.timedelta(minutes=30)
NOW = START + dt.timedelta(hours=1)
SECRET = b"fuzz-secret-0123456789abcdef"
REPORT_VARIABLE = "LOYALTYKIT_FUZZ_REPORT"

SKIP, MAY, REFUSE = "skip", "may", "refuse"


# ---------------------------------------------------------------------------------------
# Roles: which kinds of value a parameter takes
# ---------------------------------------------------------------------------------------

@attrs.frozen
class Role:
    """What a parameter takes, told by kind of hostile value: ``skip`` kinds are valid
    there (not tried), ``may`` kinds may be accepted or refused, every other kind must be
    refused. ``None`` is skipped where the parameter's default is ``None`` or its
    annotation allows it."""

    name: str
    skip: frozenset[str] = frozenset()
    may: frozenset[str] = frozenset()

    def verdict(self, kind: str, param: inspect.Parameter) -> str:
        if kind == "none" and (param.default is None or "None" in str(param.annotation)):
            return SKIP
        if kind in self.skip:
            return SKIP
        return MAY if kind in self.may else REFUSE

    def also(self, name: str, *, skip: tuple[str, ...] = (), may: tuple[str, ...] = ()
             ) -> Role:
        """This role with more kinds skipped or allowed."""
        return Role(name, self.skip | set(skip), self.may | set(may))


def _kinds(*names: str) -> frozenset[str]:
    out: set[str] = set()
    for name in names:
        out |= _fuzz.GROUPS.get(name, frozenset({name}))
    assert out <= set(_fuzz.HOSTILE), out - set(_fuzz.HOSTILE)
    return frozenset(out)


# The issue's minimum for ids and keys: NUL, lone surrogates, other C0 controls and bidi
# overrides are refused; DEL and bidi isolates may be accepted.
ID = Role("id", skip=_kinds("str_digits", "str_word", "str_iso_datetime"),
          may=_kinds("str_del", "str_isolate"))
#: An idempotency key: like an id, but surrounding spaces are allowed.
KEY = ID.also("key", skip=("str_padded",))
#: Free text (reasons, descriptions): what no backend can store (NUL, lone surrogates)
#: and text past any sensible length are refused; other controls may pass.
TEXT = Role("text", skip=_kinds("str_empty", "str_digits", "str_word", "str_iso_datetime",
                                "str_padded"),
            may=_kinds("str_blank", "str_c0", "str_newline", "str_del", "str_bidi",
                       "str_isolate"))
REQUIRED_TEXT = Role("required text", skip=TEXT.skip - {"str_empty"}, may=TEXT.may - {
    "str_blank"})
#: A name from a closed set (a wallet, tier, currency, time zone, enum value...).
NAME = Role("name")
#: A lower-case name the shop makes up (a tier, group, campaign, event type...).
LABEL = Role("label", skip=_kinds("str_word"))
POINTS = Role("points")
#: Any int in some range: zero and negative ints may be valid.
INT = Role("int", may=_kinds("int_zero", "int_neg"))
#: A positive count or limit.
COUNT = Role("count")
COUNT0 = Role("count from 0", skip=_kinds("int_zero"))
INSTANT = Role("instant")
TTL = Role("duration")
JSON = Role("json", skip=_kinds("dict_empty", "none"))
#: A dict definition read by a ``from_dict``.
DEFINITION = Role("definition", may=_kinds("dict_empty"))
UUID = Role("uuid", skip=_kinds("uuid_zero"))
DECIMAL = Role("decimal", may=_kinds("int_zero", "int_neg", "dec_tiny", "str_digits"))
BOOL = Role("bool", skip=_kinds("bool_true", "bool_false"))
CALLABLE = Role("callable", may=_kinds("callable", "a_class"))
#: A sequence of things (an empty one may be valid).
SEQ = Role("sequence", may=_kinds("list_empty", "dict_empty"))
#: A value of one public type (an Order, a Program, a Clock...).
OBJECT = Role("object")
ANY = Role("any", may=frozenset(_fuzz.HOSTILE))
FLOAT = Role("float", may=_kinds("int_zero", "int_neg", "float_frac"))
#: A ``**`` parameter: only the call's own bad values (``extra``) are tried.
KEYWORDS = Role("keywords", skip=frozenset(_fuzz.HOSTILE))

#: Roles by parameter name; a parameter named otherwise gets its role from its
#: annotation (:func:`role_of`), or the table test asks for one.
NAMED: dict[str, Role] = {
    **dict.fromkeys(["member_id", "from_member_id", "to_member_id", "referee_id",
                     "referrer_id", "order_id", "id", "sku", "line_id"], ID),
    "key": KEY,
    **dict.fromkeys(["reason", "description", "note"], TEXT),
    **dict.fromkeys(["wallet", "tier", "currency", "time_zone", "scope", "op", "counts",
                     "prefix", "kind", "revision"], NAME),
    **dict.fromkeys(["name", "type", "event", "group"], LABEL),
    **dict.fromkeys(["channel", "store", "category"], ID),
    **dict.fromkeys(["at", "as_of", "since", "until", "activates_at", "expires_at",
                     "placed_at", "occurred_at", "effective_from", "start", "starts_at",
                     "ends_at", "enrolled_at", "instant", "now"], INSTANT),
    "ttl": TTL,
    **dict.fromkeys(["metadata", "attributes", "custom"], JSON),
    **dict.fromkeys(["hold_id", "earn_id", "transaction_id"], UUID),
    "points": POINTS,
    "data": DEFINITION,
}

_BY_ANNOTATION: dict[str, Role] = {
    "bool": BOOL, "int": INT, "int | None": INT, "Decimal": DECIMAL, "Decimal | None": DECIMAL,
    "dt.datetime": INSTANT, "dt.datetime | None": INSTANT, "dt.timedelta": TTL,
    "Mapping[str, Any]": JSON, "float": FLOAT, "str": NAME, "str | None": NAME,
}


def role_of(call: Call, param: inspect.Parameter) -> Role | None:
    """The role of ``param`` of ``call``: the recipe's, by name, or by annotation."""
    if param.name in call.roles:
        return call.roles[param.name]
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return KEYWORDS
    if param.name in NAMED:
        return NAMED[param.name]
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(
        param.annotation, "__name__", str(param.annotation))
    if annotation in _BY_ANNOTATION:
        return _BY_ANNOTATION[annotation]
    if annotation.startswith(("tuple[", "Sequence[", "Iterable[", "list[")):
        return SEQ
    if annotation.split(" | ")[0] in loyaltykit.__all__:
        return OBJECT
    return None


# ---------------------------------------------------------------------------------------
# The world the calls run against
# ---------------------------------------------------------------------------------------

def fuzz_program(version: int = 1, currency: str = "EUR", **changes: Any) -> Program:
    """A program with earning rules (rate, event bonus, stamp card), two tiers and a
    referral policy, in Europe/Berlin."""
    fields: dict[str, Any] = {
        "id": "fuzz", "time_zone": "Europe/Berlin", "currency": currency,
        "point_value": Money("0.01", currency), "wallets": ("points", "credits"),
        "ledger": LedgerPolicy(expiry=ExpiryPolicy(days=365)),
        "earning": EarningPolicy(rules=(
            RateRule(id="base", points=Decimal(1), per=Decimal(1)),
            EventBonusRule(id="birthday", event=EventType.BIRTHDAY, points=50),
            StampCardRule(id="coffee", every=10, points=100,
                          match=LineMatch(categories=("coffee",))),
        )),
        "tiers": TierPolicy(tiers=(Tier("member", 0), Tier("silver", 500))),
        "referrals": ReferralPolicy(reward=ReferralReward(referrer=100, referee=50),
                                    min_net=Money("10.00", currency)),
        "rewards": RewardPolicy(catalogue=(
            Reward("coffee", "Coffee", 10, FixedDiscount(Money("1.00", currency))),)),
        # 1 point = 0.01, no minimum, up to all of the goods: the world's spend of 10
        # points pays for an order
        "payments": PaymentPolicy(points=1, money=Money("0.01", currency)),
        "version": version,
    }
    fields.update(changes)
    return Program(**fields)


class _Clock:
    """A shop's own clock that goes wrong: it tells a good instant when the facade is
    given it, then ``later`` (perhaps hostile) on every read after."""

    def __init__(self, later: object) -> None:
        self._later = later
        self._reads = 0

    def now(self) -> Any:
        self._reads += 1
        return NOW if self._reads == 1 else self._later


def line(**changes: Any) -> OrderLine:
    fields: dict[str, Any] = {"line_id": "l1", "sku": "latte", "quantity": 2,
                              "unit_price": Money("5.00", "EUR"), "category": "coffee"}
    return OrderLine(**{**fields, **changes})


def order(order_id: str, **changes: Any) -> Order:
    fields: dict[str, Any] = {"id": order_id, "member_id": "m", "placed_at": AT,
                              "currency": "EUR", "lines": (line(),)}
    return Order(**{**fields, **changes})


#: The world's fraud check judging by itself (not told what to return).
_DEFAULT = object()

#: What the recipes use up, and :meth:`World.restock` makes anew.
RESOURCES = ("hold", "pending earn", "earn", "payment", "order", "referee",
             "flagged referral", "voucher")


class World:
    """One backend's storage with a little of everything in it, and the facade on it.

    Members: m (points, a pending earn, an open hold, a spend, an order, a referral
    code), n (points to reverse, an identity), a member not referred yet, r (referred
    by m) and one referred by m whom the world's fraud check flagged. What a call uses
    up (the hold it captures, the order it cancels...) is stocked again after the
    call took it (:meth:`restock`)."""

    def __init__(self, backend: str, storage: Storage, engine: sa.Engine | None,
                 directory: Path) -> None:
        self.backend = backend
        self.storage = storage
        self.engine = engine
        self.program = fuzz_program()
        self.clock = TestClock(START)
        #: what the world's fraud check returns (by default: pass, or flag the flagged
        #: referrals)
        self.verdict: object = _DEFAULT
        assert self.program.referrals is not None
        self.loyalty = lo = Loyalty(
            self.program, storage, clock=self.clock, secret=SECRET,
            fraud_checks=(*default_checks(self.program.referrals), self._check))
        self._serial = 0
        self._flagged: set[str] = set()
        lo.enrol("m")
        lo.enrol("n", identity=Identity(email="n@example.com"))
        self.earn_id = lo.earn("m", 1000, key="m-earn").transaction_id
        self.code = lo.referrals.issue_code("m").code
        lo.enrol("r", referral_code=self.code)
        for what in RESOURCES:
            self.restock(what)
        self.clock.set(NOW)
        self.program_file = directory / "program.json"
        self.program_file.write_text(json.dumps(self.program.to_dict()))

    def restock(self, what: str) -> None:
        """Make a new one of ``what`` the recipes use up (one of :data:`RESOURCES`)."""
        lo = self.loyalty
        if what == "hold":
            self.hold_id = lo.hold("m", 30, key=self.key(), ttl=dt.timedelta(days=1)).hold_id
        elif what == "pending earn":
            self.pending_id = lo.earn("m", 20, key=self.key(),
                                      activates_at=START + 2 * _DAY).transaction_id
        elif what == "earn":
            self.n_earn_id = lo.earn("n", 100, key=self.key()).transaction_id
        elif what == "payment":
            self.pay_id = lo.spend("m", 10, key=self.key()).transaction_id
        elif what == "order":
            self.order_id = self.fresh("order")
            lo.record_order(order(self.order_id, placed_at=self.clock.now()))
        elif what == "referee":
            self.referee = self.fresh("new")
            lo.enrol(self.referee)
        elif what == "flagged referral":
            self.flagged = self.fresh("flagged")
            self._flagged.add(self.flagged)
            lo.enrol(self.flagged, referral_code=self.code)
        elif what == "voucher":
            self.voucher = lo.rewards.redeem("m", "coffee", key=self.key()).voucher.shown
        else:
            raise AssertionError(what)

    def _check(self, case: Any) -> Any:
        if self.verdict is not _DEFAULT:
            return self.verdict
        if case.referee_id in self._flagged:
            return Verdict(Outcome.FLAG, ("fuzz",))
        return Verdict()

    def fresh(self, prefix: str) -> str:
        """A new id or key."""
        self._serial += 1
        return f"{prefix}-{self._serial}"

    def key(self) -> str:
        return self.fresh("key")


# ---------------------------------------------------------------------------------------
# The stored state: everything, compared before and after each bad call
# ---------------------------------------------------------------------------------------


def _copied(value: object) -> object:
    """A copy of the memory backend's containers; the records in them are frozen attrs
    values (replaced, never changed in place) and compare by value."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_copied(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


class _State:
    """Everything a backend stores. Memory: a copy of every table of every capability.
    SQL: every column of every row of every ``lk_*`` table (found in the database, so
    a new table is included), rows sorted. On SQL the state is read again only after a
    statement ran (every write is a statement, so none ran means no change);
    statements are counted on every SQLAlchemy engine."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.statements = 0
        self.reads = 0
        self._last: object = None
        self._query = ""
        if world.engine is not None:
            self._query = self._select_all(world.engine)
        sa.event.listen(sa.Engine, "before_cursor_execute", self._count)
        self._last = self._read()

    def _count(self, *args: object) -> None:
        self.statements += 1

    def close(self) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._count)

    def _read(self) -> object:
        self.reads += 1
        world = self.world
        if world.engine is None:
            # the memory backend's tables: one object per capability, a dict per table
            kinds = world.storage._tables._by_kind  # type: ignore[attr-defined]
            return {f"{kind.__name__}.{name}": _copied(table)
                    for kind, tables in kinds.items() for name, table in vars(tables).items()}
        with world.engine.connect() as conn:
            rows = sorted(tuple(row) for row in conn.exec_driver_sql(self._query))
        self.statements = 0
        return rows

    @staticmethod
    def _select_all(engine: sa.Engine) -> str:
        """One statement reading every row of every ``lk_*`` table, each row as a JSON
        array of all its columns (one round trip to the server per read)."""
        array = "json_build_array" if engine.dialect.name == "postgresql" else "json_array"
        quote = engine.dialect.identifier_preparer.quote
        parts = []
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table in sorted(inspector.get_table_names()):
                if table.startswith("lk_"):
                    columns = ", ".join(quote(c["name"]) for c in inspector.get_columns(table))
                    parts.append(f"SELECT '{table}', CAST({array}({columns}) AS TEXT) "
                                 f"FROM {quote(table)}")
        assert parts, "no lk_ tables"
        return " UNION ALL ".join(parts)

    def changed(self) -> bool:
        """Whether the stored state differs from the last time it was read."""
        if self.world.engine is not None and self.statements == 0:
            return False
        now = self._read()
        changed = now != self._last
        self._last = now
        return changed


# ---------------------------------------------------------------------------------------
# The calls: every public call and constructor with a recipe of valid arguments
# ---------------------------------------------------------------------------------------

Factory = Callable[["World"], Any]


@attrs.frozen
class Call:
    """A public call: how to get it (``target``), its parameters (``signature``), valid
    arguments for the world (``valid``: the required ones and any optional ones worth
    setting; the others keep their defaults), role overrides, and bad values of its own
    per parameter (``extra``: kind name -> factory)."""

    name: str
    target: Callable[[World], Callable[..., Any]]
    signature: Callable[[], Callable[..., Any]]
    valid: Callable[[World], dict[str, Any]] = lambda w: {}
    roles: Mapping[str, Role] = attrs.Factory(dict)
    extra: Mapping[str, Mapping[str, Factory]] = attrs.Factory(dict)
    #: whether the call may read or write the world's storage
    storage: bool = False
    #: what its success uses up of what the recipes need (an open hold, a pending earn,
    #: an order...; one of RESOURCES): the world makes a new one after
    consumes: str | None = None
    #: errors besides ValueError / LookupError that are its fitting refusal (the shop's
    #: own code going wrong is a RuntimeError, not the caller's bad input)
    refusals: tuple[type[Exception], ...] = ()

    def parameters(self) -> list[inspect.Parameter]:
        """The parameters to fuzz (``self``/``cls`` and ``*args`` left out)."""
        params = list(inspect.signature(self.signature()).parameters.values())
        if params and params[0].name in ("self", "cls"):
            params = params[1:]
        return [p for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _invoke(call: Call, fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    params = {p.name: p for p in call.parameters()}
    positional = [args.pop(n) for n, p in params.items()
                  if p.kind is inspect.Parameter.POSITIONAL_ONLY and n in args]
    extra = {}
    for name, p in params.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD and name in args:
            extra = args.pop(name)
    return fn(*positional, **args, **extra)


def _facade(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.{name}", lambda w: getattr(w.loyalty, name),
                lambda: getattr(Loyalty, name), storage=True, **kw)


def _tiers(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.tiers.{name}", lambda w: getattr(w.loyalty.tiers, name),
                lambda: getattr(TierService, name), storage=True, **kw)


def _referrals(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.referrals.{name}", lambda w: getattr(w.loyalty.referrals, name),
                lambda: getattr(ReferralService, name), storage=True, **kw)


def _rewards(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.rewards.{name}", lambda w: getattr(w.loyalty.rewards, name),
                lambda: getattr(RewardService, name), storage=True, **kw)


def _privacy(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.privacy.{name}", lambda w: getattr(w.loyalty.privacy, name),
                lambda: getattr(PrivacyService, name), storage=True, **kw)


def _payments(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.payments.{name}", lambda w: getattr(w.loyalty.payments, name),
                lambda: getattr(PaymentService, name), storage=True, **kw)


def _events(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.events.{name}", lambda w: getattr(w.loyalty.events, name),
                lambda: getattr(EventService, name), storage=True, **kw)


def _reports(name: str, **kw: Any) -> Call:
    return Call(f"Loyalty.reports.{name}", lambda w: getattr(w.loyalty.reports, name),
                lambda: getattr(ReportService, name), storage=True, **kw)


def _first_position(world: World) -> EventPosition:
    """The position of the outbox's first event (what a consumer may acknowledge)."""
    return world.loyalty.events.read("fuzz-peek", 1)[0].position


def _new(cls: type, valid: Callable[[World], dict[str, Any]] = lambda w: {},
         **kw: Any) -> Call:
    return Call(cls.__name__, lambda w: cls, lambda: cls, valid, **kw)


def _method(cls: type, name: str, instance: Factory,
            valid: Callable[[World], dict[str, Any]] = lambda w: {}, **kw: Any) -> Call:
    return Call(f"{cls.__name__}.{name}", lambda w: getattr(instance(w), name),
                lambda: getattr(cls, name), valid, **kw)


def _parse(cls: type, sample: Factory, **kw: Any) -> Call:
    """``cls.from_dict`` with the dict of a valid ``sample``."""
    return _method(cls, "from_dict", lambda w: cls,
                   lambda w: {"data": sample(w).to_dict()}, **kw)


def _write(**valid: Any) -> Callable[[World], dict[str, Any]]:
    """Valid arguments of a write: the given ones (factories are called) and a fresh key."""
    return lambda w: {"key": w.key(), **{k: v(w) if callable(v) else v
                                         for k, v in valid.items()}}


def _args(**valid: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: {k: v(w) if callable(v) and not isinstance(v, type) else v
                      for k, v in valid.items()}


def _set_clock(world: World) -> Callable[[object], None]:
    def set_clock(clock: object) -> None:
        """``loyalty.clock = clock``; the world's clock is put back after."""
        try:
            world.loyalty.clock = clock  # type: ignore[assignment]
        finally:
            world.loyalty.clock = world.clock
    return set_clock


def _clock_reads(world: World) -> Callable[[object], None]:
    def clock_now(now: object) -> None:
        """A shop's clock telling ``now``, read by a write (earn)."""
        world.loyalty.clock = _Clock(now)
        try:
            world.loyalty.earn("m", 5, key=world.key())
        finally:
            world.loyalty.clock = world.clock
    return clock_now


def _fraud_verdict(world: World) -> Callable[[object], None]:
    def fraud_check_returns(verdict: object) -> None:
        """A shop's fraud check returning ``verdict``, run by refer."""
        world.verdict = verdict
        try:
            world.loyalty.referrals.refer(world.referee, world.code, key=world.key())
        finally:
            world.verdict = _DEFAULT
    return fraud_check_returns


def _forged_verdict(outcome: object, reasons: object = ()) -> Verdict:
    """A Verdict that skipped its own checks (as a shop's check may build one)."""
    verdict = object.__new__(Verdict)
    object.__setattr__(verdict, "outcome", outcome)
    object.__setattr__(verdict, "reasons", reasons)
    return verdict


_MONEY = Money("12.50", "EUR")
_DAY = dt.timedelta(days=1)
_RULE_ROLES = {"priority": INT, "exclusive": BOOL}
#: Bad ``**engine_kwargs`` (the catalogue's kinds do not apply to a ``**`` parameter).
_ENGINE_KWARGS: dict[str, Factory] = {
    "unknown_option": lambda w: {"bogus": 1},
    "bad_connect_args": lambda w: {"connect_args": 5},
    "bad_poolclass": lambda w: {"poolclass": object},
}


def calls() -> list[Call]:
    """The table: one entry per public call."""
    earn_args = _write(member_id="m", points=5, at=AT, wallet="points", reason="fuzz",
                       metadata={"a": [1, "b"]}, activates_at=START + 2 * _DAY)
    return [
        # -- the facade, its wiring and what it reads from a shop's code -----------------
        Call("Loyalty", lambda w: Loyalty, lambda: Loyalty, lambda w: {
            "program": w.program, "storage": w.storage, "clock": w.clock, "secret": SECRET,
            "fraud_checks": (Velocity(per_hour=5),), "max_retries": 3},
            roles={"new_id": CALLABLE, "randbelow": CALLABLE, "secret": Role("secret"),
                   "max_retries": COUNT0, "fraud_checks": SEQ.also("checks", skip=(
                       "list_empty",))},
            extra={"program": {
                "version_2_new_time_zone": lambda w: fuzz_program(2, time_zone="Europe/Paris"),
                "version_2_new_currency": lambda w: fuzz_program(2, currency="USD"),
                "version_2_new_wallets": lambda w: fuzz_program(2, wallets=("points",)),
                "version_1_changed": lambda w: fuzz_program(1, earning=EarningPolicy()),
            }, "storage": {"storage_class": lambda w: MemoryStorage,
                           "a_facade": lambda w: w.loyalty},
                "clock": {"clock_class": lambda w: SystemClock},
                "fraud_checks": {"not_callables": lambda w: ["check"],
                                 "a_class": lambda w: [Velocity]}},
            storage=True),
        Call("Loyalty.clock=", _set_clock, lambda: _set_clock(None),  # type: ignore[arg-type]
             lambda w: {"clock": TestClock(START)}, roles={"clock": OBJECT},
             extra={"clock": {"clock_class": lambda w: TestClock}}, storage=True),
        Call("Clock.now (a shop's clock)", _clock_reads,
             lambda: _clock_reads(None),  # type: ignore[arg-type]
             lambda w: {"now": NOW}, storage=True),
        Call("FraudCheck (a shop's check)", _fraud_verdict,
             lambda: _fraud_verdict(None),  # type: ignore[arg-type]
             lambda w: {"verdict": Verdict()}, roles={"verdict": OBJECT},
             refusals=(FraudCheckError,),
             extra={"verdict": {
                 "unknown_outcome": lambda w: _forged_verdict("maybe"),
                 "reasons_not_text": lambda w: _forged_verdict(Outcome.FLAG, (None,)),
                 "reason_with_nul": lambda w: _forged_verdict(Outcome.FLAG, ("a\x00b",)),
                 "reason_surrogate": lambda w: _forged_verdict(Outcome.FLAG, ("a\ud800",)),
                 "duck_typed": lambda w: types.SimpleNamespace(outcome=Outcome.PASS,
                                                               reasons=()),
             }}, storage=True, consumes="referee"),
        # -- the ledger ------------------------------------------------------------------
        _facade("enrol", valid=_write(member_id=lambda w: w.fresh("member"), at=AT,
                                      attributes={"vip": True}, referral_code=lambda w: w.code,
                                      identity=Identity(email="new@example.com")),
                roles={"referral_code": NAME, "identity": OBJECT}),
        _facade("earn", valid=earn_args),
        _facade("spend", valid=_write(member_id="m", points=5, at=AT, wallet="points",
                                      reason="fuzz", metadata={"a": 1})),
        _facade("hold", valid=_write(member_id="m", points=5, ttl=_DAY, at=AT,
                                     wallet="points", reason="fuzz", metadata={"a": 1})),
        _facade("capture", consumes="hold", valid=_write(
            hold_id=lambda w: w.hold_id, points=5, reason="fuzz", metadata={"a": 1})),
        _facade("void", consumes="hold", valid=_write(hold_id=lambda w: w.hold_id, reason="fuzz",
                                                     metadata={"a": 1})),
        _facade("activate", consumes="pending earn", valid=_write(
            earn_id=lambda w: w.pending_id, reason="fuzz")),
        _facade("reverse", consumes="earn", valid=_write(
            transaction_id=lambda w: w.n_earn_id, reason="fuzz", metadata={"a": 1})),
        _facade("adjust", valid=_write(member_id="m", points=-5, at=AT, wallet="points",
                                       reason="fuzz", metadata={"a": 1}),
                roles={"points": Role("points, not zero", skip=_kinds("int_neg")),
                       "reason": REQUIRED_TEXT}),
        _facade("clawback", valid=_write(member_id="m", points=5, at=AT, wallet="points",
                                         earn_id=lambda w: w.earn_id, reason="fuzz",
                                         metadata={"a": 1})),
        _facade("transfer", valid=_write(from_member_id="m", to_member_id="n", points=5,
                                         at=AT, wallet="points", reason="fuzz",
                                         metadata={"a": 1})),
        _facade("bulk_earn", valid=_write(awards={"m": 1, "n": 2}, at=AT, wallet="points",
                                          reason="fuzz", metadata={"a": 1}),
                roles={"awards": OBJECT},
                extra={"awards": {"points_not_int": lambda w: {"m": "5"},
                                  "member_not_text": lambda w: [(None, 5)],
                                  "pairs_of_three": lambda w: [("m", 5, 6)],
                                  "nul_member": lambda w: {"a\x00b": 5},
                                  # MAX_POINTS bounds each award (a wallet's totals
                                  # are bounded by MAX_TOTAL)
                                  "award_above_max": lambda w: {"m": 10**15 + 1}}}),
        # -- reads -----------------------------------------------------------------------
        _facade("member", valid=_args(member_id="m")),
        _facade("balance", valid=_args(member_id="m", wallet="points", as_of=AT)),
        _facade("statement", valid=_args(member_id="m", wallet="points", limit=10),
                roles={"limit": COUNT, "cursor": NAME}),
        _facade("transaction", valid=_args(transaction_id=lambda w: w.earn_id)),
        _facade("hold_info", valid=_args(hold_id=lambda w: w.hold_id)),
        _facade("lots", valid=_args(member_id="m", wallet="points")),
        # -- orders and events -----------------------------------------------------------
        _facade("quote", valid=_args(order_or_event=lambda w: order(w.fresh("order"))),
                roles={"order_or_event": OBJECT}),
        _facade("record_order", consumes="payment", valid=lambda w: {
            "order": order(w.fresh("order")), "key": w.key(), "paid_with": [w.pay_id],
            "wallet": "points"},
            roles={"order": OBJECT, "paid_with": SEQ.also("ids", skip=("list_empty",))},
            extra={"paid_with": {"not_ids": lambda w: ["bogus"],
                                 "an_earn": lambda w: [w.earn_id]}}),
        _facade("record_return", consumes="order", valid=_write(
            order_id=lambda w: w.order_id, lines={"l1": 1}, reason="fuzz"),
                roles={"lines": OBJECT},
                extra={"lines": {"unknown_line": lambda w: {"l9": 1},
                                 "too_many": lambda w: {"l1": 3},
                                 "zero": lambda w: {"l1": 0},
                                 "huge": lambda w: {"l1": 2**63}}}),
        _facade("cancel_order", consumes="order", valid=_write(order_id=lambda w: w.order_id,
                                                               reason="fuzz")),
        _facade("record_event", valid=lambda w: {
            "event": Event(id=w.fresh("event"), type="birthday", member_id="m",
                           occurred_at=AT), "key": w.key(), "wallet": "points"},
            roles={"event": OBJECT}),
        _facade("order", valid=_args(order_id=lambda w: w.order_id)),
        _facade("record_orders", valid=lambda w: {
            "orders": [order(w.fresh("order"))], "wallet": "points", "enrol": False,
            "batch_size": 10, "on_progress": lambda done, total: None},
            roles={"orders": SEQ, "batch_size": COUNT, "on_progress": CALLABLE}),
        _facade("run_due", valid=_args(at=NOW, batch_size=100, workers=1,
                                       on_progress=lambda w: lambda progress: None),
                roles={"batch_size": COUNT, "workers": COUNT, "on_progress": CALLABLE}),
        # -- tiers -----------------------------------------------------------------------
        _tiers("status", valid=_args(member_id="m")),
        _tiers("history", valid=_args(member_id="m")),
        _tiers("progress", valid=_args(member_id="m")),
        _tiers("as_of", valid=_args(member_id="m", at=AT),
               roles={"at": INSTANT.also("instant or now", skip=("none",))}),
        _tiers("notices", valid=_args(since=AT, limit=10), roles={"limit": COUNT}),
        _tiers("assign", valid=_write(member_id="n", tier="silver", reason="vip",
                                      until=START + 30 * _DAY, at=AT),
               roles={"reason": REQUIRED_TEXT}),
        # -- referrals -------------------------------------------------------------------
        _referrals("check_code", valid=lambda w: {"text": w.code}, roles={"text": NAME}),
        _referrals("codes", valid=_args(member_id="m")),
        _privacy("erase", consumes="referee", valid=lambda w: {"member_id": w.referee}),
        _privacy("export", valid=_args(member_id="m")),
        # -- points as payment -----------------------------------------------------------
        _payments("quote", valid=_args(order=lambda w: order(w.fresh("order")),
                                       wallet="points"),
                  roles={"order": OBJECT}),
        _payments("hold", valid=_write(order=lambda w: order(w.fresh("order")), points=5,
                                       ttl=_DAY, at=AT, wallet="points"),
                  roles={"order": OBJECT}),
        _payments("capture", consumes="hold", valid=_write(hold_id=lambda w: w.hold_id)),
        _payments("release", consumes="hold", valid=_write(hold_id=lambda w: w.hold_id)),
        _referrals("get", valid=_args(referee_id="r")),
        _referrals("made_by", valid=_args(referrer_id="m")),
        _referrals("stats", valid=_args(member_id="m", at=AT)),
        _referrals("issue_code", valid=_write(member_id="m", at=AT, source=Source.EMPLOYEE,
                                              expires_at=NOW + 30 * _DAY, max_uses=3),
                   roles={"source": NAME, "max_uses": COUNT}),
        _referrals("refer", consumes="referee", valid=lambda w: {
            "referee_id": w.referee, "code": w.code, "key": w.key(), "at": AT,
            "identity": Identity(payment="card-1")},
            roles={"code": NAME, "identity": OBJECT}),
        _referrals("identify", valid=_write(member_id="n", identity=Identity(device="d-1"),
                                            at=AT),
                   roles={"identity": OBJECT}),
        _referrals("approve", consumes="flagged referral", valid=_write(
            referee_id=lambda w: w.flagged, reason="fine")),
        _referrals("reject", consumes="flagged referral", valid=_write(
            referee_id=lambda w: w.flagged, reason="fraud"),
                   roles={"reason": REQUIRED_TEXT}),
        # -- rewards ---------------------------------------------------------------------
        _rewards("redeem", valid=_write(member_id="m", reward_id="coffee", at=AT),
                 roles={"reward_id": ID}),
        _rewards("use", consumes="voucher", valid=_write(
            code=lambda w: w.voucher, order_id="till-1", at=NOW), roles={"code": NAME}),
        _rewards("cancel", consumes="voucher", valid=_write(
            code=lambda w: w.voucher, at=NOW, reason="fuzz"), roles={"code": NAME}),
        _rewards("check_code", valid=lambda w: {"text": w.voucher}, roles={"text": NAME}),
        _rewards("voucher", valid=lambda w: {"code": w.voucher}, roles={"code": NAME}),
        _rewards("vouchers", valid=_args(member_id="m", status=VoucherStatus.ISSUED),
                 roles={"status": OBJECT}),
        _rewards("stock", valid=_args(reward_id="coffee"), roles={"reward_id": ID}),
        # -- events (the outbox) -----------------------------------------------------------
        _events("read", valid=_args(consumer="fuzz", limit=10),
                roles={"consumer": ID, "limit": COUNT}),
        _events("ack", valid=_args(consumer="fuzz", event=_first_position),
                roles={"consumer": ID, "event": OBJECT},
                extra={"event": {"past_the_last": lambda w: EventPosition(2**62, 0),
                                 "event_as_dict": lambda w: w.loyalty.events.read(
                                     "fuzz-peek", 1)[0].to_dict()}}),
        _events("position", valid=_args(consumer="fuzz"), roles={"consumer": ID}),
        _events("positions", valid=_args(consumer="fuzz"), roles={"consumer": ID}),
        _events("consumers"),
        _events("follow", valid=_args(consumer="fuzz", batch=10, poll=0.01,
                                      stop=lambda w: lambda: True),
                roles={"consumer": ID, "batch": COUNT, "poll": FLOAT, "stop": CALLABLE}),
        _events("prune", valid=_args(before=AT), roles={"before": INSTANT}),
        # -- reports: orders --------------------------------------------------------------
        Call("Loyalty.reports.purchases", lambda w: w.loyalty.reports.purchases,
             lambda: OrderReports.purchases, _args(start=AT, end=AT + dt.timedelta(days=1)),
             storage=True),
        Call("Loyalty.reports.kpis", lambda w: w.loyalty.reports.kpis,
             lambda: OrderReports.kpis,
             _args(period=Period.MONTH, start=AT, end=AT + dt.timedelta(days=40)),
             roles={"period": OBJECT, "end": INSTANT}, storage=True),
        Call("Loyalty.reports.rfm", lambda w: w.loyalty.reports.rfm,
             lambda: OrderReports.rfm,
             _args(as_of=AT, segments=(RfmSegment("all", (1, 5), (1, 5)),)),
             roles={"segments": SEQ}, storage=True),
        _new(RfmSegment, lambda w: {"name": "best", "recency": (4, 5),
                                    "frequency_monetary": (4, 5)},
             roles={"name": ID, "recency": SEQ, "frequency_monetary": SEQ}),
        _method(RfmSegment, "matches", lambda w: RfmSegment("all", (1, 5), (1, 5)),
                lambda w: {"r": 1, "f": 2, "m": 3},
                roles={"r": COUNT, "f": COUNT, "m": COUNT}),
        Call("rfm_scores", lambda w: rfm_scores, lambda: rfm_scores,
             _args(values=[3, 1, 2], higher_is_better=False)),
        Call("rfm_segment", lambda w: rfm_segment, lambda: rfm_segment,
             _args(r=5, f=5, m=5, segments=DEFAULT_RFM_SEGMENTS),
             roles={"r": COUNT, "f": COUNT, "m": COUNT}),
        # -- reports (the ledger's) ---------------------------------------------------------
        _reports("totals", valid=_args(as_of=AT, wallet="points")),
        _reports("members", valid=_args(tier="silver", active_since=AT, inactive_since=NOW,
                                        limit=10),
                 roles={"inactive_since": INSTANT, "active_since": INSTANT, "limit": COUNT,
                        "after": NAME}),
        _reports("count", valid=_args(tier="silver", active_since=AT, inactive_since=NOW),
                 roles={"inactive_since": INSTANT, "active_since": INSTANT}),
        _reports("tiers", valid=_args(as_of=AT)),
        _reports("points", valid=_args(period=Period.MONTH, start=START, end=NOW,
                                       wallet="points"),
                 roles={"period": OBJECT, "end": INSTANT}),
        _reports("breakage", valid=_args(as_of=AT, wallet="points")),
        _reports("liability", valid=_args(as_of=AT, wallet="points",
                                          expected_redemption=Decimal("0.8"))),
        _reports("revenue", valid=_args(period=Period.MONTH, start=START, end=NOW,
                                        expected_redemption=Decimal("0.9"), wallet="points",
                                        quantum=Decimal("0.01")),
                 roles={"period": OBJECT, "end": INSTANT, "expected_redemption": DECIMAL,
                        "quantum": DECIMAL}),
        _new(EventPolicy, lambda w: {"retention_days": 30}, roles={"retention_days": COUNT}),
        _parse(EventPolicy, lambda w: EventPolicy(retention_days=30)),
        _new(EventPosition, lambda w: {"tx": 0, "seq": 1, "event": uuid.UUID(int=1),
                                       "stream": 0},
             roles={"tx": COUNT0, "seq": COUNT0, "event": UUID, "stream": INT}),
        _method(EventPosition, "from_str", lambda w: EventPosition, lambda w: {"text": "0.1"},
                roles={"text": NAME}),
        # -- storages --------------------------------------------------------------------
        _new(MemoryStorage),
        _new(SQLStorage, lambda w: {"bind": sa.create_engine("sqlite://")},
             roles={"bind": OBJECT}),
        _method(SQLStorage, "from_url", lambda w: SQLStorage,
                lambda w: {"url": "sqlite://", "engine_kwargs": {"echo": False}},
                roles={"url": NAME},
                extra={"url": {"unknown_dialect": lambda w: "nosuchdb://x"},
                       "engine_kwargs": _ENGINE_KWARGS}),
        Call("create_engine", lambda w: create_engine, lambda: create_engine,
             lambda w: {"url": "sqlite://"}, roles={"url": NAME},
             extra={"url": {"unknown_dialect": lambda w: "nosuchdb://x"},
                    "engine_kwargs": _ENGINE_KWARGS}),
        # -- values: money, clocks, codes, identities ------------------------------------
        _new(Money, lambda w: {"amount": Decimal("12.50"), "currency": "EUR"},
             roles={"amount": DECIMAL}),
        *[Call(f"Money.{op.__name__}", lambda w, op=op: lambda other: op(_MONEY, other),
               lambda op=op: getattr(Money, f"__{op.__name__.strip('_')}__"),
               lambda w: {"other": Money("1.25", "EUR")}, roles={"other": OBJECT},
               extra={"other": {"other_currency": lambda w: Money("1", "USD")}})
          for op in (operator.add, operator.sub, operator.lt, operator.le, operator.gt,
                     operator.ge)],
        Call("Money.mul", lambda w: lambda factor: _MONEY * factor, lambda: Money.__mul__,
             lambda w: {"factor": 3}, roles={"factor": DECIMAL.also(
                 "factor", skip=("int_zero", "int_neg"))},
             extra={"factor": {"huge": lambda w: Decimal("9E+999998")}}),
        _parse(Money, lambda w: _MONEY),
        Call("allocate_revenue", lambda w: allocate_revenue, lambda: allocate_revenue,
             lambda w: {"price": Money("100", "EUR"), "points": 10,
                        "point_value": Money("1", "EUR"), "expected_redemption": Decimal("0.9"),
                        "quantum": Decimal(1)},
             roles={"price": OBJECT, "point_value": OBJECT, "points": COUNT0,
                    "expected_redemption": DECIMAL, "quantum": DECIMAL}),
        Call("recognise_revenue", lambda w: recognise_revenue, lambda: recognise_revenue,
             lambda w: {"allocated": Money("9.50", "EUR"),
                        "estimates": [RedemptionEstimate(1, 2)], "quantum": Decimal(1)},
             roles={"allocated": OBJECT, "estimates": SEQ, "quantum": DECIMAL}),
        _new(RedemptionEstimate, lambda w: {"redeemed": 1, "expected": 2},
             roles={"redeemed": COUNT0, "expected": COUNT0}),
        _new(TestClock, lambda w: {"start": START}),
        _method(TestClock, "set", lambda w: TestClock(START), lambda w: {"instant": NOW}),
        _method(TestClock, "advance", lambda w: TestClock(START), lambda w: {"days": 1}),
        _new(SystemClock),
        _new(CodeSpec, lambda w: {"length": 10, "group": 5, "prefix": "R", "check": True,
                                  "planned": 1000},
             roles={"length": COUNT, "group": COUNT0, "planned": COUNT, "prefix": NAME.also(
                 "prefix", skip=("str_empty", "str_digits"))}),
        _method(CodeSpec, "parse", lambda w: CodeSpec(), lambda w: {"text": w.code},
                roles={"text": NAME}),
        _method(CodeSpec, "display", lambda w: CodeSpec(), lambda w: {"code": w.code},
                roles={"code": NAME}),
        _method(CodeSpec, "draw", lambda w: CodeSpec(),
                lambda w: {"randbelow": secrets.randbelow}, roles={"randbelow": CALLABLE},
                extra={"randbelow": {"out_of_range": lambda w: (lambda n: n + 5),
                                     "not_int": lambda w: (lambda n: "0")}}),
        _method(CodeSpec, "guess_probability", lambda w: CodeSpec(),
                lambda w: {"planned": 1000}, roles={"planned": COUNT}),
        _parse(CodeSpec, lambda w: CodeSpec()),
        _new(Identity, lambda w: {"email": "a@example.com", "payment": "card",
                                  "device": "phone"},
             roles={"email": TEXT, "payment": TEXT, "device": TEXT}),
        Call("normalise_email", lambda w: normalise_email, lambda: normalise_email,
             lambda w: {"email": "A.B+x@gmail.com"}, roles={"email": NAME}),
        Call("describe_program", lambda w: describe_program, lambda: describe_program,
             lambda w: {"program": w.program}, roles={"program": OBJECT}),
        # -- fraud checks ----------------------------------------------------------------
        _new(SameEmail, roles={"outcome": NAME}),
        _new(SameFingerprint, lambda w: {"kind": "device"}, roles={"outcome": NAME}),
        _new(Velocity, lambda w: {"per_hour": 5, "per_day": 20},
             roles={"per_hour": COUNT, "per_day": COUNT, "outcome": NAME}),
        _new(Cycle, roles={"outcome": NAME}),
        _new(Verdict, lambda w: {"outcome": Outcome.FLAG, "reasons": ("why",)},
             roles={"outcome": NAME, "reasons": SEQ.also("reasons", skip=("list_empty",))}),
        Call("default_checks", lambda w: default_checks, lambda: default_checks,
             lambda w: {"policy": w.program.referrals}, roles={"policy": OBJECT}),
        # -- orders and events -----------------------------------------------------------
        _new(OrderLine, lambda w: {"sku": "latte", "quantity": 2, "unit_price": _MONEY,
                                   "category": "coffee", "discount": Money("1", "EUR"),
                                   "line_id": "l1"},
             roles={"quantity": COUNT, "unit_price": OBJECT, "discount": OBJECT}),
        # a line without a currency of its own, so ``currency`` is the one it takes
        _method(OrderLine, "from_dict", lambda w: OrderLine,
                lambda w: {"data": {k: v for k, v in line().to_dict().items()
                                    if k != "currency"}, "currency": "EUR"},
                roles={"currency": NAME}),
        _new(Order, lambda w: {"id": "o9", "member_id": "m", "placed_at": AT,
                               "currency": "EUR", "lines": (line(),),
                               "shipping": Money("4.90", "EUR"), "channel": "web",
                               "store": "berlin", "attributes": {"gift": True}},
             roles={"lines": SEQ, "shipping": OBJECT}),
        _parse(Order, lambda w: order("o9")),
        _new(Event, lambda w: {"id": "e1", "type": "review", "member_id": "m",
                               "occurred_at": AT, "attributes": {"stars": 5}}),
        _parse(Event, lambda w: Event(id="e1", type="review", member_id="m", occurred_at=AT)),
        _new(MemberContext, lambda w: {"member_id": "m", "enrolled_at": START,
                                       "attributes": {"vip": True}, "tier": "silver",
                                       "first_order": True,
                                       "earn_multiplier": Decimal("1.5")},
             roles={"tier": ID}),
        Call("evaluate_order", lambda w: evaluate_order, lambda: evaluate_order,
             lambda w: {"policy": w.program.earning, "time_zone": "Europe/Berlin",
                        "order": order("o9"),
                        "member": MemberContext(member_id="m", enrolled_at=START)},
             roles={"policy": OBJECT, "order": OBJECT, "member": OBJECT, "usage": SEQ,
                    "version": COUNT, "previous": OBJECT, "stamps": JSON,
                    "money_paid": SEQ}),
        Call("evaluate_event", lambda w: evaluate_event, lambda: evaluate_event,
             lambda w: {"policy": w.program.earning, "time_zone": "Europe/Berlin",
                        "event": Event(id="e1", type="birthday", member_id="m",
                                       occurred_at=AT),
                        "member": MemberContext(member_id="m", enrolled_at=START)},
             roles={"policy": OBJECT, "event": OBJECT, "member": OBJECT, "usage": SEQ,
                    "version": COUNT, "stamps": JSON}),
        # -- programs and their parts ----------------------------------------------------
        _new(Program, lambda w: {
            "id": "p", "time_zone": "Europe/Berlin", "currency": "EUR",
            "point_value": Money("0.01", "EUR"), "wallets": ("points",),
            "ledger": LedgerPolicy(), "earning": EarningPolicy(), "version": 2,
            "effective_from": START, "tiers": w.program.tiers,
            "referrals": w.program.referrals},
            roles={"point_value": OBJECT, "wallets": SEQ, "ledger": OBJECT,
                   "earning": OBJECT, "version": COUNT, "tiers": OBJECT,
                   "referrals": OBJECT}),
        _parse(Program, lambda w: w.program),
        _method(Program, "from_file", lambda w: Program, lambda w: {"path": w.program_file},
                roles={"path": NAME}),
        _new(LedgerPolicy, lambda w: {"expiry": ExpiryPolicy(days=30),
                                      "pending": PendingPolicy(days=1)},
             roles={"expiry": OBJECT, "pending": OBJECT, "spend_order": NAME,
                    "clawback": NAME}),
        _parse(LedgerPolicy, lambda w: LedgerPolicy()),
        _new(ExpiryPolicy, lambda w: {"months": 12},
             roles={"days": COUNT0, "months": COUNT0, "round_up_to": NAME,
                    "counted_from": NAME}),
        _parse(ExpiryPolicy, lambda w: ExpiryPolicy(days=30)),
        _new(PendingPolicy, lambda w: {"days": 14}, roles={"days": COUNT0}),
        _new(EarningPolicy, lambda w: {"rules": w.program.earning.rules,
                                       "groups": (RuleGroup("g"),),
                                       "max_points_per_order": 1000},
             roles={"rules": SEQ, "groups": SEQ, "rounding": NAME, "stacking": NAME,
                    "max_points_per_order": COUNT0}),
        _parse(EarningPolicy, lambda w: w.program.earning),
        _new(RateRule, lambda w: {"id": "r", "points": Decimal(2), "per": Decimal(1)},
             roles={**_RULE_ROLES, "base": NAME, "points": DECIMAL, "per": DECIMAL}),
        _new(FixedRule, lambda w: {"id": "f", "points": 5, "per_item": True},
             roles={**_RULE_ROLES, "points": COUNT0}),
        _new(MultiplierRule, lambda w: {"id": "x", "factor": Decimal(2)},
             roles={**_RULE_ROLES, "factor": DECIMAL}),
        _new(TierMultiplierRule, lambda w: {"id": "t"}, roles=_RULE_ROLES),
        _new(EventBonusRule, lambda w: {"id": "b", "event": "birthday", "points": 5},
             roles={**_RULE_ROLES, "points": COUNT0}),
        _new(StampCardRule, lambda w: {"id": "s", "every": 10, "points": 5},
             roles={**_RULE_ROLES, "every": COUNT, "points": COUNT0, "reward": ID}),
        _parse(Rule, lambda w: RateRule(id="r")),
        _new(RuleGroup, lambda w: {"name": "g", "caps": (Cap(10, CapPeriod.DAY),)},
             roles={"caps": SEQ}),
        _parse(RuleGroup, lambda w: RuleGroup("g")),
        _new(Cap, lambda w: {"points": 100, "period": CapPeriod.ROLLING, "days": 7},
             roles={"points": COUNT0, "period": NAME, "days": COUNT}),
        _parse(Cap, lambda w: Cap(100, CapPeriod.DAY)),
        _new(Window, lambda w: {"start": dt.date(2026, 1, 1), "end": dt.date(2026, 12, 31),
                                "weekdays": (1, 2), "hours": ((dt.time(9), dt.time(17)),)},
             roles={"start": OBJECT.also("date", skip=("date",)),
                    "end": OBJECT.also("date", skip=("date",)), "weekdays": SEQ,
                    "hours": SEQ}),
        _parse(Window, lambda w: Window(weekdays=(1,))),
        _new(LineMatch, lambda w: {"categories": ("coffee",), "skus": ("latte",)},
             roles={"categories": SEQ, "skus": SEQ}),
        _parse(LineMatch, lambda w: LineMatch(categories=("coffee",))),
        _new(AllOf, lambda w: {"conditions": (FirstOrder(), MinNet(Decimal(5)))},
             roles={"conditions": SEQ}),
        _new(AnyOf, lambda w: {"conditions": (FirstOrder(),)}, roles={"conditions": SEQ}),
        _new(Not, lambda w: {"condition": FirstOrder()}, roles={"condition": OBJECT}),
        _new(Attribute, lambda w: {"scope": "member", "name": "vip", "op": "eq",
                                   "value": True}, roles={"value": ANY, "name": TEXT}),
        _new(FirstOrder),
        _new(Condition),
        _new(MinNet, lambda w: {"amount": Decimal(10)}, roles={"amount": DECIMAL}),
        _new(MinTenure, lambda w: {"years": 1}, roles={"years": COUNT0}),
        _new(ChannelIn, lambda w: {"channels": ("web",)}, roles={"channels": SEQ}),
        _new(StoreIn, lambda w: {"stores": ("berlin",)}, roles={"stores": SEQ}),
        _new(TierIn, lambda w: {"tiers": ("silver",)}, roles={"tiers": SEQ}),
        _parse(Condition, lambda w: AllOf((FirstOrder(), TierIn(("silver",))))),
        _new(TierPolicy, lambda w: {"tiers": (Tier("member", 0), Tier("gold", 100)),
                                    "wallet": "points", "notice_days": 10},
             roles={"tiers": SEQ, "metric": NAME, "window": OBJECT, "grace_periods": COUNT0,
                    "wallet": LABEL,
                    "downgrade": NAME, "notice_days": COUNT0}),
        _parse(TierPolicy, lambda w: w.program.tiers),
        _new(Tier, lambda w: {"name": "gold", "threshold": 100,
                              "benefits": Benefits(free_shipping=True)},
             roles={"threshold": COUNT0, "benefits": OBJECT}),
        _parse(Tier, lambda w: Tier("gold", 100)),
        _new(Benefits, lambda w: {"earn_multiplier": Decimal(2),
                                  "discount_percent": Decimal(5), "custom": {"lounge": True}},
             roles={"earn_multiplier": DECIMAL, "discount_percent": DECIMAL}),
        _parse(Benefits, lambda w: Benefits(free_shipping=True)),
        _new(QualificationWindow, lambda w: {"kind": WindowKind.ROLLING_MONTHS,
                                                    "months": 12},
             roles={"kind": NAME, "months": COUNT}),
        _parse(QualificationWindow, lambda w: QualificationWindow()),
        _new(ReferralPolicy, lambda w: {"reward": ReferralReward(1, 1),
                                        "min_net": Money("10", "EUR"),
                                        "cap": ReferralCap(5)},
             roles={"reward": OBJECT, "min_net": OBJECT,
                    "qualify_within_days": COUNT, "order_number": COUNT,
                    "return_window_days": COUNT0, "attach_within_days": COUNT0,
                    "existing_customers": BOOL, "cap": OBJECT, "campaigns": SEQ,
                    "sources": SEQ,
                    "code": OBJECT, "code_valid_days": COUNT,
                    "code_max_uses": COUNT, "velocity_per_hour": COUNT,
                    "velocity_per_day": COUNT}),
        _parse(ReferralPolicy, lambda w: w.program.referrals),
        _new(ReferralReward, lambda w: {"referrer": 100, "referee": 50},
             roles={"referrer": COUNT0, "referee": COUNT0}),
        _parse(ReferralReward, lambda w: ReferralReward(100, 50)),
        _new(ReferralCap, lambda w: {"count": 5, "period": CapPeriod.ROLLING, "days": 30},
             roles={"count": COUNT, "period": NAME, "days": COUNT}),
        _parse(ReferralCap, lambda w: ReferralCap(5)),
        _new(Campaign, lambda w: {"name": "spring", "starts_at": START,
                                  "ends_at": START + 30 * _DAY,
                                  "reward": ReferralReward(10, 10),
                                  "sources": (Source.CUSTOMER,)},
             roles={"reward": OBJECT, "sources": SEQ}),
        _parse(Campaign, lambda w: Campaign("spring", START, START + _DAY,
                                            ReferralReward(1, 1))),
        _new(RewardPolicy, lambda w: {"catalogue": (_reward(),), "wallet": "points",
                                      "code": CodeSpec(length=12)},
             roles={"catalogue": SEQ, "wallet": LABEL, "code": OBJECT}),
        _parse(RewardPolicy, lambda w: RewardPolicy(catalogue=(_reward(),))),
        _new(PaymentPolicy, lambda w: {"points": 100, "money": Money("1.00", "EUR"),
                                       "min_points": 500, "max_share": Decimal("0.5"),
                                       "step": 100, "earn_on_points_paid": True,
                                       "returns": ReturnSplit.MONEY_FIRST},
             roles={"points": COUNT, "money": OBJECT, "min_points": COUNT0,
                    "max_share": DECIMAL, "step": COUNT, "earn_on_points_paid": BOOL,
                    "returns": NAME}),
        _parse(PaymentPolicy, lambda w: PaymentPolicy(points=100, money=Money("1.00", "EUR"),
                                                      max_share=Decimal("0.5"))),
        _new(Reward, lambda w: {"id": "coffee", "name": "Coffee", "cost": 500,
                                "kind": FixedDiscount(Money("5.00", "EUR")), "stock": 2,
                                "starts_at": START, "ends_at": START + 30 * _DAY,
                                "tiers": frozenset({"silver"}),
                                "per_member": RewardLimit(1, CapPeriod.MONTH),
                                "global_limit": 10, "valid_until": START + 60 * _DAY},
             roles={"name": REQUIRED_TEXT, "cost": POINTS, "kind": OBJECT, "stock": COUNT0,
                    "tiers": SEQ.also("tier names", skip=("set",)), "per_member": OBJECT,
                    "global_limit": COUNT, "valid_days": COUNT, "valid_until": INSTANT}),
        _parse(Reward, lambda w: _reward()),
        _new(RewardLimit, lambda w: {"count": 2, "period": CapPeriod.ROLLING, "days": 7},
             roles={"count": COUNT, "period": NAME, "days": COUNT}),
        _parse(RewardLimit, lambda w: RewardLimit(1, CapPeriod.MONTH)),
        _new(FixedDiscount, lambda w: {"amount": Money("5.00", "EUR")},
             roles={"amount": OBJECT}),
        _new(PercentDiscount, lambda w: {"percent": Decimal("12.5")},
             roles={"percent": DECIMAL}),
        _new(FreeItem, lambda w: {"sku": "mug", "quantity": 2}, roles={"quantity": COUNT}),
        _new(CustomReward, lambda w: {"payload": {"seats": [1, 2]}}),
    ]


def _reward() -> Reward:
    """A reward of every part: a window, a tier, a limit, a voucher validity."""
    return Reward("coffee", "Coffee", 500, FreeItem("latte"), stock=3, starts_at=START,
                  ends_at=START + _DAY, tiers=frozenset({"silver"}),
                  per_member=RewardLimit(1, CapPeriod.ROLLING, days=7), valid_days=30)


#: Public callables that take no input a shop gives, or whose input the library builds
#: and checks itself, with the reason: not fuzzed. A new public call must be added to
#: the table above or here.
NOT_FUZZED: dict[str, str] = {
    **dict.fromkeys([
        "Balance", "BulkEarnResult", "DueProgress", "DueWorkReport", "ErasureResult",
        "Evaluation", "EventResult",
        "Hold", "HoldAllocation", "HoldResult", "ImportResult", "Lot", "LotMovement", "Member",
        "OrderRecord",
        "OrderResult", "PaymentQuote", "Posting", "Referral", "ReferralCode", "ReferrerStats",
        "ReturnResult",
        "RuleOutcome", "StatementLine", "StatementPage", "TierChange", "TierNotice",
        "TierProgress", "TierStatus", "Transaction", "TransactionResult", "TransferResult",
        "ReferralCase", "MemoryUnitOfWork", "SQLUnitOfWork", "Redemption", "Voucher",
        "EventConsumer", "OutboxEvent", "PeriodRange", "RevenueAllocation",
        "RevenueRecognition", "Purchase", "PeriodKpis", "RfmRow", "Breakage",
        "BreakageCohort", "Liability", "MemberPage", "MemberRow", "PointsPeriod", "TierCount",
        "TierDistribution", "WalletTotals", "PeriodRevenue",
    ], "a result or record the library builds and returns"),
    "Storage": "a Protocol: a backend is tested by the shipped storage contract",
    "Clock": "a Protocol: what a shop's clock returns is fuzzed as 'Clock.now'",
    "FraudCheck": "a callable type: what a shop's check returns is fuzzed as 'FraudCheck'",
    "EventType": "a namespace of event type names",
    "Rule": "the abstract base of the rules, refused whatever its fields (fuzzed through "
            "each concrete rule)",
    **dict.fromkeys([
        "SQLStorage.unit_of_work", "SQLStorage.read_unit_of_work", "SQLStorage.event_waiter",
        "SQLStorage.register_program", "MemoryStorage.unit_of_work",
        "MemoryStorage.read_unit_of_work", "MemoryStorage.register_program",
    ], "the storage port: called by the facade with values it built"),
    "Loyalty.bind": "wiring on a storage or connection, no value of the ledger's: its "
                    "refusals are tested in tests/storage/test_binding.py",
    **dict.fromkeys(["SQLStorage.upgrade"],
                    "an operator's migration command (tests/storage/test_migrations.py)"),
    **dict.fromkeys([
        "Loyalty.tiers.subscribe", "Loyalty.tiers.tier_of", "Loyalty.tiers.due",
        "Loyalty.referrals.subscribe", "Loyalty.referrals.enrolment_extras",
        "Loyalty.rewards.due", "Loyalty.rewards.subscribe",
        "Loyalty.events.due", "Loyalty.events.subscribe", "Loyalty.events.map",
        "Loyalty.events.append",
    ], "wiring between the facade's services"),
    **dict.fromkeys([
        "AllOf.unmet", "AnyOf.unmet", "Attribute.unmet", "Condition.unmet", "FirstOrder.unmet",
        "MinNet.unmet", "MinTenure.unmet", "Not.unmet", "Window.unmet", "Campaign.runs_for",
        "Cycle.__call__", "SameEmail.__call__", "SameFingerprint.__call__",
        "Velocity.__call__", "EarningPolicy.rule", "ExpiryPolicy.expiry_for",
        "Identity.digests", "LineMatch.matches", "Order.after_returns",
        "PendingPolicy.activates_at", "Program.wallet", "QualificationWindow.after_periods",
        "QualificationWindow.next_period", "QualificationWindow.period_start",
        "QualificationWindow.window_start", "ReferralCap.bounds", "ReferralPolicy.reward_for",
        "TierPolicy.qualified", "TierPolicy.rank", "TierPolicy.units_as",
        "PaymentPolicy.limit", "PaymentPolicy.points_for", "PaymentPolicy.problem",
        "PaymentPolicy.value",
    ], "an evaluation helper the library calls with values it has checked"),
}


def public_surface() -> dict[str, Callable[..., Any]]:
    """Every public callable that takes arguments, by the name the table uses: the
    classes and functions of ``loyaltykit``, ``loyaltykit.memory`` and ``loyaltykit.sql``
    (exceptions and enums aside), their public methods, and the calls of
    ``loyalty.tiers`` and ``loyalty.referrals``."""
    found: dict[str, Callable[..., Any]] = {}
    modules = [loyaltykit, loyaltykit.memory, loyaltykit.sql]
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseException | enum.Enum):
                continue
            if not callable(obj) or isinstance(obj, str | Path):
                continue
            found[name] = obj
            if not isinstance(obj, type) or name in NOT_FUZZED:
                continue  # a class not fuzzed: its methods neither
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr != "__call__":
                    continue
                if isinstance(value, property):
                    if value.fset is not None:
                        found[f"{name}.{attr}="] = value.fset
                    continue
                fn = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                if name == "Loyalty" and not callable(fn):
                    fn = getattr(Loyalty, attr)  # the facade's delegates
                if callable(fn) and _takes_arguments(fn):
                    found[f"{name}.{attr}"] = fn
    # every service behind an attribute of the facade (loyalty.tiers, ...)
    services = {f"Loyalty.{attr}": kind for attr, kind in typing.get_type_hints(Loyalty).items()
                if isinstance(kind, type) and kind.__module__.startswith("loyaltykit._services")}
    assert {"Loyalty.tiers", "Loyalty.referrals", "Loyalty.privacy"} <= set(services)
    for prefix, service in services.items():
        # a service may be built from parts (mixins), one module each: walk them all
        for part in service.__mro__:
            if not part.__module__.startswith("loyaltykit._services"):
                continue
            for attr, fn in vars(part).items():
                if not attr.startswith("_") and callable(fn):
                    found.setdefault(f"{prefix}.{attr}", fn)
    return found


def _takes_arguments(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool([p for p in params if p not in ("self", "cls")])


# ---------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------

@attrs.frozen
class Failure:
    backend: str
    call: str
    param: str
    kind: str
    value: str
    problem: str
    error: str
    message: str

    def line(self) -> str:
        fields = (self.call, self.param, self.kind, self.value, self.problem, self.error,
                  self.message)
        return " | ".join(f.replace("|", "\u00a6") for f in fields)


def _shown(value: object, limit: int = 80) -> str:
    try:
        text = re.sub(r" at 0x[0-9a-f]+", "", repr(value))  # the same on every run
    except Exception:  # a hostile value: name its type instead
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _documented(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name in loyaltykit.__all__ and getattr(loyaltykit, name) is type(exc)


class Runner:
    """Runs cases against one backend's world and collects the failures. What a call
    used up is stocked again; after a failure that changed the stored state the world
    is built anew (repeated, an accepted bad value could meet its own record, an
    idempotency conflict, and pass for refused)."""

    def __init__(self, backend: str, make: Callable[[], World]) -> None:
        self.backend = backend
        self._make = make
        self.world = make()
        self.state = _State(self.world)
        self.cases = 0
        self.failures: list[Failure] = []
        self.rebuilds = 0
        self.reads = 0  # of the stored state, by worlds gone

    def close(self) -> None:
        self.reads += self.state.reads
        self.state.close()

    def summary(self, part: str) -> str:
        return (f"fuzz {part} on {self.backend}: {self.cases} cases, "
                f"{len(self.failures)} failures; stored state read {self.reads} times, "
                f"{self.rebuilds} worlds built again")

    def _rebuild(self) -> None:
        self.reads += self.state.reads
        self.state.close()
        self.world = self._make()
        self.state = _State(self.world)
        self.rebuilds += 1

    def run(self, call: Call, param: inspect.Parameter, kind: str, make_value: Factory,
            verdict: str) -> None:
        """Call ``call`` with the bad value of ``kind`` for ``param``, the rest valid."""
        self.cases += 1
        world = self.world
        args = call.valid(world)
        problem = error = message = ""
        accepted = False
        value: object = None
        try:
            value = make_value(world)
            args[param.name] = value
            _invoke(call, call.target(world), args)
            accepted = True
        except LoyaltyError as exc:
            problem, error, message = self._judge(exc, call)
        except Exception as exc:  # RecursionError too
            problem, error, message = "escaped", type(exc).__name__, _message(exc)
        if accepted and verdict == REFUSE:
            problem = "accepted"
        changed = call.storage and self.state.changed()
        if changed and not accepted and not problem:
            problem = "wrote"
        if problem:
            self.failures.append(Failure(self.backend, call.name, param.name, kind,
                                         _shown(value), problem, error, message))
        if changed and problem:
            self._rebuild()
        elif changed and call.consumes:
            self.world.restock(call.consumes)
            self.state.changed()

    @staticmethod
    def _judge(exc: LoyaltyError, call: Call) -> tuple[str, str, str]:
        name = type(exc).__name__
        try:
            text = str(exc)
            repr(exc)
        except Exception as inner:
            return "unprintable", name, f"{type(inner).__name__} building its text"
        if isinstance(exc, StorageError):
            return "storage error", name, text[:200]
        if not _documented(exc):
            return "undocumented", name, text[:200]
        if not isinstance(exc, (ValueError, LookupError, *call.refusals)):
            return "not the fitting builtin", name, text[:200]
        return "", "", ""


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:200].replace("\n", " ")
    except Exception:
        return "<unprintable>"


def catalogue(table: list[Call]) -> Iterator[tuple[Call, inspect.Parameter,
                                                                   str, Factory, str]]:
    """Every (call, parameter, kind) of the catalogue that is a bad value there, with
    its factory and verdict."""
    for call in table:
        for param in call.parameters():
            role = role_of(call, param)
            assert role is not None, f"{call.name}({param.name}): no role"
            for kind, make in _fuzz.HOSTILE.items():
                verdict = role.verdict(kind, param)
                if verdict != SKIP:
                    yield call, param, kind, (lambda w, make=make: make()), verdict
            for kind, factory in call.extra.get(param.name, {}).items():
                yield call, param, kind, factory, REFUSE


def catalogue_cases() -> int:
    """How many cases the catalogue tries on each backend."""
    return sum(1 for _ in catalogue(calls()))


# ---------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------

@pytest.fixture
def make_world(backend: str, tmp_path: Path) -> Iterator[Callable[[], World]]:
    """Builds a new world on a new (or emptied) storage of the backend under test."""
    engines: list[sa.Engine] = []
    serial = iter(range(1_000_000))

    def make() -> World:
        directory = tmp_path / f"world-{next(serial)}"
        directory.mkdir()
        if backend == "memory":
            return World(backend, MemoryStorage(), None, directory)
        if backend == "sqlite":
            engine = create_engine(f"sqlite:///{directory / 'fuzz.sqlite'}")
            engines.append(engine)
            storage = SQLStorage(engine)
            storage.create_schema()
            return World(backend, storage, engine, directory)
        return World(backend, POSTGRESQL.storage(), POSTGRESQL.engine, directory)

    yield make
    for engine in engines:
        engine.dispose()


_REPORTED: dict[str, tuple[str, list[Failure]]] = {}

_TEXT_KINDS = {"str_nul", "str_surrogate", "str_c0", "str_newline", "str_bidi", "str_long",
               "str_empty", "str_blank", "str_padded", "reason_with_nul", "reason_surrogate",
               "nul_member"}
_FRAUD_CALLS = {"Velocity", "SameEmail", "SameFingerprint", "Cycle", "Verdict",
                "FraudCheck (a shop's check)"}


def area(failure: Failure) -> str:
    """A guess at which rule of issue 18 a failure belongs to, to sort the report."""
    head = failure.call.split(".")[0]
    if failure.problem == "wrote":
        return "partial write"
    if head == "CodeSpec":
        return "code specs"
    if failure.call in _FRAUD_CALLS:
        return "fraud checks"
    if failure.kind.startswith("dt_"):
        return "instant range"
    if failure.kind in _TEXT_KINDS or failure.error == "UnicodeEncodeError" \
            or "NUL" in failure.message:
        return "text rules"
    if head == "Money":
        return "money range"
    if failure.kind in ("int_2_63", "int_2_200", "int_neg_2_63"):
        return "huge ints"
    if failure.kind == "award_above_max":
        return "MAX_POINTS"
    return "other"


def _report(part: str, runner: Runner) -> None:
    """Keep the failures of ``part`` and, when asked to, write every part's to a file:
    area | call | parameter | kind | value | problem | error | message | backends."""
    _REPORTED[f"{part}[{runner.backend}]"] = (f"{runner.cases} cases", runner.failures)
    path = os.environ.get(REPORT_VARIABLE)
    if not path:
        return
    lines = [f"# {key}: {cases}, {len(failures)} failures"
             for key, (cases, failures) in _REPORTED.items()]
    lines.append("# area | call | parameter | kind | value | problem | error | message "
                 "| backends")
    seen: dict[tuple[str, str], set[str]] = {}
    for _, failures in _REPORTED.values():
        for failure in failures:
            seen.setdefault((area(failure), failure.line()), set()).add(failure.backend)
    for (where, text), backends in sorted(seen.items()):
        lines.append(f"{where} | {text} | {','.join(sorted(backends))}")
    Path(path).write_text("\n".join(lines) + "\n")


def _verdict_of(failures: list[Failure]) -> str:
    shown = "\n".join(f.line() for f in failures[:60])
    more = f"\n... and {len(failures) - 60} more" if len(failures) > 60 else ""
    return f"{len(failures)} failures:\n{shown}{more}"


def test_every_public_call_is_in_the_table() -> None:
    # a new public call or method needs a recipe (so it is fuzzed) or a reason not to be
    surface = set(public_surface())
    table = {call.name for call in calls()}
    assert [] == sorted(surface - table - set(NOT_FUZZED))
    assert [] == sorted(set(NOT_FUZZED) - surface), "stale entries in NOT_FUZZED"
    assert [] == sorted(set(NOT_FUZZED) & table)


def test_every_parameter_has_a_role_and_a_valid_value(tmp_path: Path) -> None:
    world = World("memory", MemoryStorage(), None, tmp_path)
    missing = []
    for call in calls():
        valid = call.valid(world)
        names = {p.name for p in call.parameters()}
        assert set(valid) <= names, f"{call.name}: recipe names unknown parameters"
        for param in call.parameters():
            if role_of(call, param) is None:
                missing.append(f"{call.name}({param.name}): no role")
            required = param.default is inspect.Parameter.empty and param.kind is not \
                inspect.Parameter.VAR_KEYWORD
            if required and param.name not in valid:
                missing.append(f"{call.name}({param.name}): no valid value")
    assert [] == missing


def test_the_recipes_are_valid(make_world: Callable[[], World]) -> None:
    # the control: with only valid arguments every call succeeds, so a refusal in the
    # fuzz is the bad value's doing; twice, so what the world stocks again works too
    runner = Runner("control", make_world)
    try:
        broken = []
        for call in calls() * 2:
            world = runner.world
            try:
                _invoke(call, call.target(world), call.valid(world))
            except Exception as exc:
                broken.append(f"{call.name}: {type(exc).__name__}: {_message(exc)}")
            if call.storage and runner.state.changed() and call.consumes:
                world.restock(call.consumes)
                runner.state.changed()
        assert [] == broken
    finally:
        runner.close()


def test_fuzz_catalogue(backend: str, make_world: Callable[[], World]) -> None:
    """Every (call, parameter, kind of bad value) once, on this backend."""
    runner = Runner(backend, make_world)
    try:
        for call, param, kind, factory, verdict in catalogue(calls()):
            runner.run(call, param, kind, factory, verdict)
    finally:
        runner.close()
    print("\n" + runner.summary("catalogue"))
    _report("catalogue", runner)
    assert catalogue_cases() == runner.cases
    assert not runner.failures, _verdict_of(runner.failures)


def _cases_of(table: list[Call]) -> list[tuple[Call, inspect.Parameter, Role]]:
    found = []
    for call in table:
        for param in call.parameters():
            role = role_of(call, param)
            assert role is not None
            found.append((call, param, role))
    return found


_STRATEGIES = _fuzz.hostile_strategies()
_KIND_OF_CATALOGUE = st.sampled_from(sorted(_fuzz.HOSTILE)).map(
    lambda k: (k, _fuzz.HOSTILE[k]()))
_RANDOM = st.one_of(_KIND_OF_CATALOGUE, *_STRATEGIES.values())


def _fuzz_random(backend: str, make_world: Callable[[], World], examples: int) -> None:
    runner = Runner(backend, make_world)
    table = _cases_of(calls())

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=st.sampled_from(table), drawn=_RANDOM)
    def check(case: tuple[Call, inspect.Parameter, Role], drawn: tuple[str, Any]) -> None:
        call, param, role = case
        kind, value = drawn
        verdict = role.verdict(kind, param)
        if verdict != SKIP:
            runner.run(call, param, kind, lambda w: value, verdict)

    try:
        check()
    finally:
        runner.close()
    print("\n" + runner.summary(f"random ({examples} examples)"))
    _report(f"random{examples}", runner)
    assert not runner.failures, _verdict_of(runner.failures)


def test_fuzz_random(backend: str, make_world: Callable[[], World]) -> None:
    """Random bad values of every kind (Hypothesis) for random parameters."""
    _fuzz_random(backend, make_world, 300)


@pytest.mark.slow
def test_fuzz_random_long(backend: str, make_world: Callable[[], World]) -> None:
    """The same, with more examples."""
    _fuzz_random(backend, make_world, 2_000)
