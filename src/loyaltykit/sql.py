"""The SQLAlchemy Core storage backend: SQLite by default, dialect-neutral SQL.

>>> from loyaltykit.sql import SQLStorage
>>> storage = SQLStorage.from_url("sqlite://")  # in memory; use sqlite:///path.db
>>> storage.create_schema()
>>> storage.dispose()

:meth:`SQLStorage.from_url` owns its engine; for SQLite it switches on WAL, foreign
keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions (writers are serialised by
the database lock, so two concurrent spends can never overdraw). Production databases
get their schema from the shipped Alembic migrations (:meth:`SQLStorage.upgrade`);
:meth:`SQLStorage.create_schema` is a shortcut for tests.

Given a host application's open :class:`~sqlalchemy.engine.Connection`, every unit of
work runs in a SAVEPOINT inside the host's transaction: loyaltykit's writes then
commit, or roll back, with the host's own (an order row and its points award are one
atomic change). loyaltykit never commits or closes such a connection.

Driver errors never escape: unique violations of the ledger's rules become
:class:`~loyaltykit.DuplicateKey`, anything else :class:`~loyaltykit.StorageError`.

The SQL is dialect-neutral but for a few upserts (registering a program version, which
must not fail on a lost insert race, rule usage rows, tier metric buckets and tier
notices), written as ``INSERT .. ON CONFLICT`` for PostgreSQL and SQLite, the supported
databases, and the set-based tier evaluation (see :func:`_tier_sql`).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    NamedTuple,
    ParamSpec,
    Self,
    TypeVar,
)

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from loyaltykit._errors import DuplicateKey, InvalidInput, SerializationFailure, StorageError
from loyaltykit._ledger import ChangeSet
from loyaltykit._model import (
    MEMBER_ACCOUNTS,
    Account,
    AccountState,
    Hold,
    HoldAllocation,
    HoldStatus,
    IdempotencyRecord,
    Kind,
    Lot,
    LotMovement,
    Member,
    MemberState,
    OrderRecord,
    OrderStatus,
    Posting,
    ProgramVersion,
    RuleUsage,
    Transaction,
)
from loyaltykit._referrals import (
    Referral,
    ReferralCode,
    ReferralMark,
    ReferralStatus,
    Source,
)
from loyaltykit._sql.engine import create_engine
from loyaltykit._sql.schema import (
    ACCOUNT_COLUMNS,
    accounts,
    hold_allocations,
    holds,
    idempotency_keys,
    lot_movements,
    lots,
    members,
    metadata,
    orders,
    postings,
    program_versions,
    programs,
    referral_codes,
    referral_marks,
    referrals,
    rule_usage,
    tier_buckets,
    tier_history,
    tier_notices,
    tier_states,
    transactions,
)
from loyaltykit._tiers import (
    Downgrade,
    TierChange,
    TierJob,
    TierNotice,
    TierPolicy,
    TierState,
    WindowKind,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "SQLStorage", "SQLUnitOfWork", "create_engine"]

#: The directory of the shipped Alembic migration scripts.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The table where Alembic records loyaltykit's schema revision (its own name, so it
#: cannot collide with the host application's ``alembic_version``).
VERSION_TABLE = "loyaltykit_alembic_version"

#: Ids per statement in ``IN (...)`` lists (well below every engine's parameter limit).
_CHUNK = 500

P = ParamSpec("P")
R = TypeVar("R")


# -- error translation ---------------------------------------------------------------------


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return bool(state == "23505")
    text = str(orig).lower()
    return "unique" in text or "duplicate" in text


def _violated(exc: sa_exc.IntegrityError, column: str) -> bool:
    """True if the unique constraint ``exc`` reports is the one on ``column``."""
    diag = getattr(exc.orig, "diag", None)  # psycopg names the constraint
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name).endswith(f"_{column}")
    return column in str(exc.orig)  # SQLite: "UNIQUE constraint failed: table.column"


#: SQLSTATEs after which the whole unit of work may simply be tried again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def _storage_error(exc: sa_exc.SQLAlchemyError) -> StorageError:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).splitlines()
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return SerializationFailure(
            "the database aborted the unit of work because of a concurrent one",
            sqlstate=sqlstate, detail=lines[0] if lines else "",
        )
    return StorageError(
        "the database failed", error=type(orig).__name__, detail=lines[0] if lines else ""
    )


def _translated(
    method: Callable[Concatenate[SQLUnitOfWork, P], R],
) -> Callable[Concatenate[SQLUnitOfWork, P], R]:
    """Turn SQLAlchemy errors raised by ``method`` into StorageError."""

    @functools.wraps(method)
    def wrapper(self: SQLUnitOfWork, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise _storage_error(exc) from exc

    return wrapper


# -- prepared statements (built once; SQLAlchemy caches their compiled form) --------------

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_w: sa.BindParameter[str] = sa.bindparam("w")
_ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)

_KINDS = {k.value: k for k in Kind}
_ACCOUNTS = {a.value: a for a in Account}
_STATUSES = {s.value: s for s in HoldStatus}
_ORDER_STATUSES = {s.value: s for s in OrderStatus}
_MEMBER_ACCOUNT_NAMES = sorted(a.value for a in MEMBER_ACCOUNTS)

_ACCOUNT_STATE_COLS = (
    accounts.c.member_id,
    accounts.c.wallet,
    *(accounts.c[name] for name in ACCOUNT_COLUMNS),
    accounts.c.next_due_at,
    accounts.c.version,
    accounts.c.activity,
)
_LOT_COLS = (
    lots.c.id,
    lots.c.program_id,
    lots.c.member_id,
    lots.c.wallet,
    lots.c.transaction_id,
    lots.c.amount,
    lots.c.remaining,
    lots.c.held,
    lots.c.earned_at,
    lots.c.activates_at,
    lots.c.expires_at,
    lots.c.pending,
)
_TX_COLS = (
    transactions.c.id,
    transactions.c.program_id,
    transactions.c.member_id,
    transactions.c.wallet,
    transactions.c.kind,
    transactions.c.occurred_at,
    transactions.c.recorded_at,
    transactions.c.idempotency_key,
    transactions.c.reason,
    transactions.c["metadata"],
    transactions.c.reverses_id,
)
_HOLD_COLS = (
    holds.c.id,
    holds.c.program_id,
    holds.c.member_id,
    holds.c.wallet,
    holds.c.points,
    holds.c.status,
    holds.c.created_at,
    holds.c.expires_at,
    holds.c.transaction_id,
    holds.c.captured,
    holds.c.resolved_by,
    hold_allocations.c.lot_id,
    hold_allocations.c.points,
)

_SEL_KEY: sa.Executable = sa.select(
    idempotency_keys.c.key,
    idempotency_keys.c.fingerprint,
    idempotency_keys.c.result,
    idempotency_keys.c.created_at,
    idempotency_keys.c.member_id,
).where(idempotency_keys.c.program_id == _p, idempotency_keys.c.key == sa.bindparam("k"))

_SEL_MEMBER: sa.Executable = sa.select(
    members.c.program_id, members.c.member_id, members.c.enrolled_at, members.c.attributes
).where(members.c.program_id == _p, members.c.member_id == _m)

_SEL_ACCOUNT: sa.Executable = sa.select(*_ACCOUNT_STATE_COLS).where(
    accounts.c.program_id == _p, accounts.c.wallet == _w, accounts.c.member_id == _m
)
_lock_accounts = (
    sa.select(*_ACCOUNT_STATE_COLS)
    .where(accounts.c.program_id == _p, accounts.c.wallet == _w)
    .order_by(accounts.c.member_id)
    .with_for_update()
)
# one-member variants of the hot reads: an expanding IN costs a rewrite per execution
_LOCK_ACCOUNTS: sa.Executable = _lock_accounts.where(accounts.c.member_id.in_(_ids))
_LOCK_ACCOUNT: sa.Executable = _lock_accounts.where(accounts.c.member_id == _m)

_open_lots = (
    sa.select(*_LOT_COLS)
    .where(lots.c.program_id == _p, lots.c.wallet == _w,
           sa.or_(lots.c.remaining > 0, lots.c.pending))
    .order_by(lots.c.earned_at, lots.c.id)
)
_SEL_OPEN_LOTS: sa.Executable = _open_lots.where(lots.c.member_id.in_(_ids))
_SEL_OPEN_LOTS_1: sa.Executable = _open_lots.where(lots.c.member_id == _m)
_SEL_LOTS_BY_ID: sa.Executable = sa.select(*_LOT_COLS).where(
    lots.c.program_id == _p, lots.c.id.in_(_ids)
)

_HOLDS_JOIN = holds.join(hold_allocations, hold_allocations.c.hold_id == holds.c.id)
_open_holds = (
    sa.select(*_HOLD_COLS)
    .select_from(_HOLDS_JOIN)
    .where(holds.c.program_id == _p, holds.c.wallet == _w,
           holds.c.status == HoldStatus.OPEN.value)
    .order_by(holds.c.created_at, holds.c.id, hold_allocations.c.position)
)
_SEL_OPEN_HOLDS: sa.Executable = _open_holds.where(holds.c.member_id.in_(_ids))
_SEL_OPEN_HOLDS_1: sa.Executable = _open_holds.where(holds.c.member_id == _m)
_SEL_HOLD: sa.Executable = (
    sa.select(*_HOLD_COLS)
    .select_from(_HOLDS_JOIN)
    .where(holds.c.program_id == _p, holds.c.id == sa.bindparam("id"))
    .order_by(hold_allocations.c.position)
)

_SEL_TX: sa.Executable = sa.select(*_TX_COLS).where(
    transactions.c.program_id == _p, transactions.c.id == sa.bindparam("id")
)
_SEL_POSTINGS: sa.Executable = (
    sa.select(postings.c.transaction_id, postings.c.account, postings.c.amount)
    .where(postings.c.transaction_id.in_(_ids))
    .order_by(postings.c.transaction_id, postings.c.position)
)
_SEL_MOVEMENTS: sa.Executable = (
    sa.select(lot_movements.c.transaction_id, lot_movements.c.lot_id, lot_movements.c.delta)
    .where(lot_movements.c.transaction_id.in_(_ids))
    .order_by(lot_movements.c.transaction_id, lot_movements.c.position)
)
_SEL_REVERSAL: sa.Executable = sa.select(transactions.c.id).where(
    transactions.c.reverses_id == sa.bindparam("id")
)

_at = sa.bindparam("at", type_=transactions.c.occurred_at.type)
_after_m: sa.BindParameter[str] = sa.bindparam("after_m")
_SEL_DUE = (
    sa.select(accounts.c.member_id, accounts.c.wallet)
    .where(accounts.c.program_id == _p, accounts.c.next_due_at <= _at)
    .order_by(accounts.c.member_id, accounts.c.wallet)
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_DUE_AFTER = _SEL_DUE.where(
    accounts.c.member_id >= _after_m,
    sa.or_(accounts.c.member_id > _after_m, accounts.c.wallet > sa.bindparam("after_w")),
)

_lot_of_member = (lots.c.program_id == _p, lots.c.member_id == _m, lots.c.wallet == _w)
_first_expiry = (
    sa.select(sa.func.min(lots.c.expires_at))
    .where(*_lot_of_member, lots.c.remaining > 0)
    .scalar_subquery()
)
_SEL_NEXT_EXPIRING: sa.Executable = (
    sa.select(lots.c.expires_at, sa.func.sum(lots.c.remaining))
    .where(*_lot_of_member, lots.c.remaining > 0, lots.c.expires_at == _first_expiry)
    .group_by(lots.c.expires_at)
)

_tx_of_member = (
    transactions.c.program_id == _p,
    transactions.c.member_id == _m,
    transactions.c.wallet == _w,
)
_SEL_SUMS_AS_OF: sa.Executable = (
    sa.select(postings.c.account, sa.func.sum(postings.c.amount))
    .select_from(transactions.join(postings, postings.c.transaction_id == transactions.c.id))
    .where(*_tx_of_member, transactions.c.occurred_at <= _at)
    .group_by(postings.c.account)
)
_remaining_as_of = (
    sa.select(
        lot_movements.c.lot_id.label("lot_id"),
        sa.func.sum(lot_movements.c.delta).label("remaining"),
    )
    .select_from(
        transactions.join(lot_movements, lot_movements.c.transaction_id == transactions.c.id)
    )
    .where(*_tx_of_member, transactions.c.occurred_at <= _at)
    .group_by(lot_movements.c.lot_id)
    .having(sa.func.sum(lot_movements.c.delta) > 0)
    .subquery("as_of")
)
_SEL_LOTS_AS_OF: sa.Executable = (
    sa.select(*_LOT_COLS, _remaining_as_of.c.remaining)
    .select_from(lots.join(_remaining_as_of, _remaining_as_of.c.lot_id == lots.c.id))
    .order_by(lots.c.earned_at, lots.c.id)
)

# keyset pagination on (occurred_at, id), newest first
_before_at = sa.bindparam("before_at", type_=transactions.c.occurred_at.type)
_before_id = sa.bindparam("before_id", type_=transactions.c.id.type)
_SEL_PAGE = (
    sa.select(*_TX_COLS)
    .where(*_tx_of_member)
    .order_by(transactions.c.occurred_at.desc(), transactions.c.id.desc())
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_PAGE_BEFORE = _SEL_PAGE.where(
    transactions.c.occurred_at <= _before_at,
    sa.or_(transactions.c.occurred_at < _before_at, transactions.c.id < _before_id),
)
_SEL_TOTAL_THROUGH: sa.Executable = (
    sa.select(sa.func.coalesce(sa.func.sum(postings.c.amount), 0))
    .select_from(transactions.join(postings, postings.c.transaction_id == transactions.c.id))
    .where(
        *_tx_of_member,
        postings.c.account.in_(_MEMBER_ACCOUNT_NAMES),
        transactions.c.occurred_at <= _before_at,
        sa.or_(transactions.c.occurred_at < _before_at, transactions.c.id <= _before_id),
    )
)

# programs, orders and rule usage
_VERSION_COLS = (
    program_versions.c.program_id,
    program_versions.c.version,
    program_versions.c.effective_from,
    program_versions.c.definition,
    program_versions.c.created_at,
)
_SEL_VERSIONS: sa.Executable = (
    sa.select(*_VERSION_COLS)
    .where(program_versions.c.program_id == _p)
    .order_by(program_versions.c.version)
)
_SEL_VERSION_AT: sa.Executable = (
    sa.select(program_versions.c.version)
    .where(
        program_versions.c.program_id == _p,
        sa.or_(program_versions.c.effective_from.is_(None),
               program_versions.c.effective_from <= _at),
    )
    .order_by(program_versions.c.version.desc())
    .limit(1)
)

# the number of the version in force at :at (program_version_at's rule), as a column
_version_in_force = sa.type_coerce(
    sa.select(sa.func.max(program_versions.c.version))
    .where(program_versions.c.program_id == _p,
           sa.or_(program_versions.c.effective_from.is_(None),
                  program_versions.c.effective_from <= _at))
    .scalar_subquery(),
    sa.Integer(),
)
_MEMBER_STATE_COLS = (members.c.member_id, members.c.enrolled_at, members.c.attributes,
                      _version_in_force)
_SEL_MEMBER_VERSION: sa.Executable = sa.select(*_MEMBER_STATE_COLS).where(
    members.c.program_id == _p, members.c.member_id == _m
)
_w2: sa.BindParameter[str] = sa.bindparam("w2")


@functools.cache
def _sel_member_state(wallets: int, lock: bool) -> sa.Executable:
    """``load_member``'s one statement: the member's account rows of the wallets asked
    for, each joined with the member and the version in force, in wallet order.
    ``wallets`` is 1 (bound as :w), 2 (:w, :w2) or 3 for any number (an expanding
    :ws); with ``lock`` the account rows, and only they, are locked as lock_accounts
    locks them (``FOR UPDATE OF lk_accounts``; SQLite renders no lock clause)."""
    if wallets == 1:
        which = accounts.c.wallet == _w
    elif wallets == 2:
        which = accounts.c.wallet.in_([_w, _w2])
    else:
        which = accounts.c.wallet.in_(sa.bindparam("ws", expanding=True))
    stmt = (
        sa.select(*_MEMBER_STATE_COLS, *_ACCOUNT_STATE_COLS)
        .select_from(accounts.join(members, sa.and_(
            members.c.program_id == accounts.c.program_id,
            members.c.member_id == accounts.c.member_id)))
        .where(accounts.c.program_id == _p, accounts.c.member_id == _m, which)
        .order_by(accounts.c.wallet)
    )
    return stmt.with_for_update(of=accounts) if lock else stmt


_ORDER_COLS = (  # the fields of OrderRecord, in order
    orders.c.program_id,
    orders.c.order_id,
    orders.c.member_id,
    orders.c.placed_at,
    orders.c.version,
    orders.c.order,
    orders.c.returned,
    orders.c.status,
    orders.c.points,
    orders.c.evaluation,
    orders.c.earn_id,
    orders.c.payments,
    orders.c.created_at,
    orders.c.updated_at,
    orders.c.recorded_evaluation,
    orders.c.fingerprint,
    orders.c.result,
)
_SEL_ORDER: sa.Executable = sa.select(*_ORDER_COLS).where(
    orders.c.program_id == _p, orders.c.order_id == sa.bindparam("o")
)
_SEL_MEMBER_ORDERS: sa.Executable = (
    sa.select(*_ORDER_COLS)
    .where(orders.c.program_id == _p, orders.c.member_id == _m)
    .order_by(orders.c.placed_at, orders.c.order_id)
)
_COUNT_ORDERS: sa.Executable = (
    sa.select(sa.func.count())
    .select_from(orders)
    .where(orders.c.program_id == _p, orders.c.member_id == _m,
           orders.c.status != OrderStatus.CANCELLED.value)
)

_USAGE_COLS = (  # the fields of RuleUsage, in order
    rule_usage.c.program_id,
    rule_usage.c.member_id,
    rule_usage.c.source,
    rule_usage.c.rule_id,
    rule_usage.c.rule_group,
    rule_usage.c.occurred_at,
    rule_usage.c.points,
    rule_usage.c.stamps,
)


@functools.cache
def _sel_usage(by_rule: bool, by_group: bool, since: bool, until: bool) -> sa.Executable:
    """The usage query for this combination of filters (at most 16, each built once)."""
    matches = []
    if by_rule:
        matches.append(rule_usage.c.rule_id.in_(sa.bindparam("rule_ids", expanding=True)))
    if by_group:
        matches.append(rule_usage.c.rule_group.in_(sa.bindparam("groups", expanding=True)))
    stmt = sa.select(*_USAGE_COLS).where(rule_usage.c.program_id == _p,
                                         rule_usage.c.member_id == _m)
    if matches:  # no rule and no group: every row of the member
        stmt = stmt.where(sa.or_(*matches))
    if since:
        stmt = stmt.where(rule_usage.c.occurred_at
                          >= sa.bindparam("since", type_=rule_usage.c.occurred_at.type))
    if until:
        stmt = stmt.where(rule_usage.c.occurred_at
                          < sa.bindparam("until", type_=rule_usage.c.occurred_at.type))
    return stmt


class _Upserts(NamedTuple):
    """The statements that need a dialect's ``INSERT .. ON CONFLICT``."""

    program: sa.Executable  # insert the program unless known
    version: sa.Executable  # insert the version unless stored
    usage: sa.Executable  # insert or overwrite a usage row
    bucket: sa.Executable  # add to a tier metric bucket (created at the value given)
    mark: sa.Executable  # keep an identity mark unless kept


def _upserts(insert: Callable[[sa.Table], Any]) -> _Upserts:
    usage = insert(rule_usage)
    overwritten = ("member_id", "rule_group", "occurred_at", "points", "stamps")
    bucket = insert(tier_buckets)
    return _Upserts(
        program=insert(programs).on_conflict_do_nothing(index_elements=["id"]),
        version=insert(program_versions).on_conflict_do_nothing(
            index_elements=["program_id", "version"]),
        usage=usage.on_conflict_do_update(
            index_elements=["program_id", "source", "rule_id"],
            set_={name: usage.excluded[name] for name in overwritten},
        ),
        bucket=bucket.on_conflict_do_update(
            index_elements=["program_id", "member_id", "period_start"],
            set_={"value": tier_buckets.c.value + bucket.excluded.value},
        ),
        mark=insert(referral_marks).on_conflict_do_nothing(
            index_elements=["program_id", "member_id", "kind", "digest"]),
    )


_UPSERTS = {"postgresql": _upserts(postgresql.insert), "sqlite": _upserts(sqlite.insert)}


def _upserts_for(conn: Connection) -> _Upserts:
    try:
        return _UPSERTS[conn.dialect.name]
    except KeyError:
        raise StorageError("the SQL backend supports PostgreSQL and SQLite only",
                           dialect=conn.dialect.name) from None


_INS_KEY = idempotency_keys.insert()
_INS_MEMBER = members.insert()
_INS_ACCOUNT = accounts.insert()
_INS_TX = transactions.insert()
_INS_POSTING = postings.insert()
_INS_LOT = lots.insert()
_INS_MOVEMENT = lot_movements.insert()
_INS_HOLD = holds.insert()
_INS_ALLOCATION = hold_allocations.insert()
_UPD_ACCOUNT = accounts.update().where(
    accounts.c.program_id == sa.bindparam("k_program_id"),
    accounts.c.member_id == sa.bindparam("k_member_id"),
    accounts.c.wallet == sa.bindparam("k_wallet"),
)
_UPD_LOT = lots.update().where(lots.c.id == sa.bindparam("k_id"))
_UPD_HOLD = holds.update().where(holds.c.id == sa.bindparam("k_id"))
_INS_ORDER = orders.insert()
_UPD_ORDER = orders.update().where(
    orders.c.program_id == sa.bindparam("k_program_id"),
    orders.c.order_id == sa.bindparam("k_order_id"),
)

# -- tiers ----------------------------------------------------------------------------------

_TIER_STATE_COLS = (  # the fields of TierState, in order
    tier_states.c.member_id,
    tier_states.c.rank,
    tier_states.c.attained_at,
    tier_states.c.protected_until,
    tier_states.c.window_start,
    tier_states.c.next_evaluation,
    tier_states.c.carried,
    tier_states.c.carried_until,
    tier_states.c.carried_floor,
    tier_states.c.floor,
    tier_states.c.anchor,
    tier_states.c.manual,
    tier_states.c.manual_until,
    tier_states.c.manual_reason,
    tier_states.c.noticed_for,
    tier_states.c.version,
)
_SEL_TIER_STATE: sa.Executable = (
    sa.select(*_TIER_STATE_COLS)
    .where(tier_states.c.program_id == _p, tier_states.c.member_id == _m)
    .with_for_update()
)
_INS_TIER_STATE = tier_states.insert()
# the version counts writes of the row: one more than stored, whatever the caller read
_UPD_TIER_STATE = (
    tier_states.update()
    .where(tier_states.c.program_id == sa.bindparam("k_program_id"),
           tier_states.c.member_id == sa.bindparam("k_member_id"))
    .values(version=tier_states.c.version + 1)
)

_TS_TYPE = tier_states.c.window_start.type
_tier_metric = (
    sa.select(sa.func.coalesce(sa.func.sum(tier_buckets.c.value), 0))
    .where(tier_buckets.c.program_id == _p, tier_buckets.c.member_id == _m,
           tier_buckets.c.period_start >= sa.bindparam("start", type_=_TS_TYPE))
)
_SEL_TIER_METRIC_FROM: sa.Executable = _tier_metric
_SEL_TIER_METRIC: sa.Executable = _tier_metric.where(
    tier_buckets.c.period_start < sa.bindparam("end", type_=_TS_TYPE))

_SEL_TIER_HISTORY: sa.Executable = (
    sa.select(tier_history.c.member_id, tier_history.c.at, tier_history.c.from_tier,
              tier_history.c.to_tier, tier_history.c.reason, tier_history.c.metric,
              tier_history.c.note, tier_history.c.recorded_at)
    .where(tier_history.c.program_id == _p, tier_history.c.member_id == _m)
    .order_by(tier_history.c.id)
)
_INS_TIER_HISTORY = tier_history.insert()

# -- referrals --

_c_code: sa.BindParameter[str] = sa.bindparam("k_code")
_SEL_CODE: sa.Executable = sa.select(referral_codes).where(
    referral_codes.c.program_id == _p, referral_codes.c.code == _c_code)
_SEL_MEMBER_CODES: sa.Executable = (
    sa.select(referral_codes)
    .where(referral_codes.c.program_id == _p, referral_codes.c.member_id == _m)
    .order_by(referral_codes.c.created_at, referral_codes.c.code))
# the condition is re-checked on the row as it stands once a concurrent claim commits
# (PostgreSQL's READ COMMITTED re-evaluates it; SQLite has one writer): never over-used
_CLAIM_CODE: sa.Executable = (
    referral_codes.update()
    .where(referral_codes.c.program_id == _p, referral_codes.c.code == _c_code,
           sa.or_(referral_codes.c.max_uses.is_(None),
                  referral_codes.c.uses < referral_codes.c.max_uses))
    .values(uses=referral_codes.c.uses + 1))
_INS_CODE = referral_codes.insert()
_SEL_REFERRAL: sa.Executable = sa.select(referrals).where(
    referrals.c.program_id == _p, referrals.c.referee_id == _m)
_SEL_REFERRALS_OF: sa.Executable = (
    sa.select(referrals)
    .where(referrals.c.program_id == _p, referrals.c.referrer_id == _m)
    .order_by(referrals.c.attributed_at, referrals.c.referee_id))


@functools.lru_cache(maxsize=8)
def _count_attributions(bounds: int) -> sa.Executable:
    """One count per bound ``s<i>`` of the referrer's referrals attributed at or after
    it, in one scan of those since the earliest (``s_min``)."""
    at = referrals.c.attributed_at
    counts = [sa.func.coalesce(sa.func.sum(sa.case(
        (at >= sa.bindparam(f"s{i}", type_=_TS_TYPE), 1), else_=0)), 0)
        for i in range(bounds)]
    return sa.select(*counts).where(
        referrals.c.program_id == _p, referrals.c.referrer_id == _m,
        at >= sa.bindparam("s_min", type_=_TS_TYPE))


_paid = sa.and_(referrals.c.program_id == _p, referrals.c.referrer_id == _m,
                referrals.c.status == ReferralStatus.QUALIFIED.value,
                referrals.c.referrer_points > 0,
                referrals.c.qualified_at < sa.bindparam("end", type_=_TS_TYPE))
_COUNT_PAID: sa.Executable = sa.select(sa.func.count()).where(_paid)
_COUNT_PAID_SINCE: sa.Executable = sa.select(sa.func.count()).where(
    _paid, referrals.c.qualified_at >= sa.bindparam("start", type_=_TS_TYPE))
_INS_REFERRAL = referrals.insert()
_UPD_REFERRAL: sa.Update = (
    referrals.update()
    .where(referrals.c.program_id == sa.bindparam("k_program_id"),
           referrals.c.referee_id == sa.bindparam("k_referee_id")))
_SEL_MARKS: sa.Executable = (
    sa.select(referral_marks.c.member_id, referral_marks.c.kind, referral_marks.c.digest)
    .where(referral_marks.c.program_id == _p, referral_marks.c.member_id.in_(_ids))
    .order_by(referral_marks.c.member_id, referral_marks.c.kind, referral_marks.c.digest))

_due_at = tier_states.c.next_evaluation <= sa.bindparam("at", type_=_TS_TYPE)
_SEL_TIER_DUE: sa.Executable = (
    sa.select(tier_states.c.next_evaluation).distinct()
    .where(tier_states.c.program_id == _p, _due_at)
    .order_by(tier_states.c.next_evaluation)
)
_SEL_TIER_DUE_BY_ANCHOR: sa.Executable = (
    sa.select(tier_states.c.next_evaluation, tier_states.c.anchor).distinct()
    .where(tier_states.c.program_id == _p, _due_at)
    .order_by(tier_states.c.next_evaluation, tier_states.c.anchor)
)

_tier_notices = (
    sa.select(tier_notices.c.member_id, tier_notices.c.evaluation_at, tier_notices.c.tier,
              tier_notices.c.would_be, tier_notices.c.metric, tier_notices.c.needed,
              tier_notices.c.created_at)
    .where(tier_notices.c.program_id == _p)
    .order_by(tier_notices.c.created_at, tier_notices.c.evaluation_at,
              tier_notices.c.member_id)
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_TIER_NOTICES: sa.Executable = _tier_notices
_SEL_TIER_NOTICES_SINCE: sa.Executable = _tier_notices.where(
    tier_notices.c.created_at >= sa.bindparam("since", type_=_TS_TYPE))

# the parameters of a set-based tier run (a TierJob); "j_" keeps them apart from the
# column names SQLAlchemy reserves in INSERT and UPDATE statements
_j_at = sa.bindparam("j_at", type_=_TS_TYPE)
_j_anchor = sa.bindparam("j_anchor", type_=tier_states.c.anchor.type)
_j_next = sa.bindparam("j_next", type_=_TS_TYPE)
_j_window = sa.bindparam("j_window", type_=_TS_TYPE)
_j_protected = sa.bindparam("j_protected", type_=_TS_TYPE)
_j_recorded = sa.bindparam("j_recorded", type_=_TS_TYPE)
_j_limit = sa.bindparam("j_limit", type_=sa.Integer())
_j_last = sa.bindparam("j_last", type_=tier_states.c.member_id.type)
_j_after = sa.bindparam("j_after", type_=tier_states.c.member_id.type)
_j_upto = sa.bindparam("j_upto", type_=tier_states.c.member_id.type)

# PostgreSQL's JIT compiles the evaluation (its cost estimate is high) for longer than
# the compiled code saves, and the default work_mem spills its sorts to disk: both are
# set for the evaluation statement (SET LOCAL, then back) and nothing else
_TIER_SETTINGS = {"jit": "off", "work_mem": "64MB"}
_SET_TIER_SETTINGS: sa.Executable = sa.select(
    *(sa.func.current_setting(name) for name in _TIER_SETTINGS),
    *(sa.func.set_config(name, sa.bindparam(name, type_=sa.Text()), True)
      for name in _TIER_SETTINGS))
_RESET_TIER_SETTINGS: sa.Executable = sa.select(
    *(sa.func.set_config(name, sa.bindparam(name, type_=sa.Text()), True)
      for name in _TIER_SETTINGS))


class _TierSQL(NamedTuple):
    """The statements of one kind of set-based tier run (see :func:`_tier_sql`)."""

    run: sa.Executable  # PostgreSQL: the whole run; SQLite: the history (notice) INSERT
    last: sa.Executable  # the highest member id of the next batch (from :j_after)
    apply: sa.Executable | None  # SQLite: the UPDATE moving the batch's states on


class _Decision(NamedTuple):
    """What :func:`loyaltykit._tiers.evaluate` (``new_rank``, ``protected_until``,
    ``attained_at``, ``floor``) and :func:`~loyaltykit._tiers.would_be` decide for a
    state, as SQL expressions over its columns and its metric."""

    new_rank: sa.ColumnElement[Any]
    protected_until: sa.ColumnElement[Any]
    attained_at: sa.ColumnElement[Any]
    floor: sa.ColumnElement[Any]
    would_be: sa.ColumnElement[Any]


def _decide(policy: TierPolicy, dialect: str, state: Any,
            metric: sa.ColumnElement[Any]) -> _Decision:
    """The decisions for the tier state whose columns are ``state``'s attributes
    (``rank``, ``attained_at``, ``protected_until``, ``floor``, ``manual``,
    ``manual_until``) and whose window's metric is ``metric`` (a column, not a
    subquery: the expressions repeat it), at ``:j_at``, CASE expressions over the
    policy's thresholds."""
    greatest = sa.func.greatest if dialect == "postgresql" else sa.func.max
    # policy.qualified: the highest rank whose threshold the metric reaches
    q: sa.ColumnElement[Any] = sa.case(
        *((metric >= sa.literal(threshold, sa.BigInteger()), sa.literal(rank))
          for rank, threshold in reversed(list(enumerate(policy.thresholds))) if rank),
        else_=sa.literal(0),
    ) if len(policy.thresholds) > 1 else sa.literal(0)
    # floors(): the lifetime floor, and a manual assignment while it holds
    manual = sa.case(
        (sa.and_(state.manual.is_not(None),
                 sa.or_(state.manual_until.is_(None), _j_at < state.manual_until)),
         state.manual),
        else_=sa.literal(0),
    )
    rank = state.rank
    dropped = greatest(q, rank - 1) if policy.downgrade is Downgrade.ONE_LEVEL else q
    protected = sa.and_(state.protected_until.is_not(None), _j_at < state.protected_until)
    new_rank = greatest(sa.case((q >= rank, q), (protected, rank), else_=dropped),
                        state.floor, manual)
    # a tier the window reaches is protected until grace_periods after :j_at
    until = sa.case(
        (sa.and_(q >= rank, sa.or_(state.protected_until.is_(None),
                                   _j_protected > state.protected_until)), _j_protected),
        else_=state.protected_until,
    )
    # the lifetime floor: the highest lifetime tier the metric reaches (a manual
    # assignment or a protected tier wins none)
    lifetime = [(q >= sa.literal(r), sa.literal(r)) for r in reversed(policy.lifetime_ranks)]
    floor = (greatest(state.floor, sa.case(*lifetime, else_=sa.literal(0))) if lifetime
             else state.floor)
    attained = sa.case((new_rank > rank, _j_at), else_=state.attained_at)
    would_be = sa.case(
        (sa.or_(q >= rank, protected), greatest(q, rank)),
        else_=greatest(dropped, state.floor, manual),
    )
    return _Decision(new_rank, until, attained, floor, would_be)


# the buckets of the ``lk_tier_states`` row in scope within its window, [window_start,
# :j_at), and the metric they sum to
_IN_WINDOW = sa.and_(
    tier_buckets.c.program_id == tier_states.c.program_id,
    tier_buckets.c.member_id == tier_states.c.member_id,
    tier_buckets.c.period_start >= tier_states.c.window_start,
    tier_buckets.c.period_start < _j_at,
)
_METRIC = sa.cast(sa.func.coalesce(sa.func.sum(tier_buckets.c.value), 0), sa.BigInteger())


@functools.cache
def _tier_sql(policy: TierPolicy, dialect: str, notices: bool, after: bool = False,
              upto: bool = False) -> _TierSQL:
    """The statements of ``evaluate_tiers`` (or, with ``notices``, of
    ``record_tier_notices``) for ``policy`` on ``dialect``; with ``after`` / ``upto``,
    for the member ids in ``(:j_after, :j_upto]`` only.

    A batch is the ``:j_limit`` states waiting for the evaluation at ``:j_at`` with the
    lowest member ids (the due index's order); ``last`` finds the highest of them. For
    each, the metric of ``[window_start, :j_at)`` and what
    :func:`loyaltykit._tiers.evaluate` (or :func:`~loyaltykit._tiers.would_be`) decides
    (:func:`_decide`); the states move on (to the next window, or marked noticed), and a
    history line (a notice) is appended for each state whose tier changes (would drop).

    On PostgreSQL that is one statement, ``run``, returning one row (states picked,
    lines recorded): the batch and its decisions are a materialised CTE, the UPDATE a
    data-modifying CTE returning the decisions of the states it moved, and the INSERT
    reads those. The UPDATE moves only states still at the version read: a member
    written concurrently keeps its evaluation for the next call.

    On SQLite, whose writers are serialised (``BEGIN IMMEDIATE``) so nothing changes a
    state between the statements of one unit of work, the batch is every waiting state
    up to ``:j_last`` (``last``'s answer, or ``:j_upto``): ``run`` appends the lines of
    the batch's changes from the decisions, then ``apply`` moves the states on, each
    row's decision computed in place from its own metric (a correlated row-value
    subquery).
    """
    s = tier_states
    names = [t.name for t in policy.tiers]
    waiting = [s.c.program_id == _p, s.c.next_evaluation == _j_at]
    if policy.window.kind is WindowKind.ANNIVERSARY_YEAR:
        waiting.append(s.c.anchor == _j_anchor)
    if notices:
        waiting.append(sa.or_(s.c.noticed_for.is_(None), s.c.noticed_for != _j_at))
    if after:
        waiting.append(s.c.member_id > _j_after)
    postgres = dialect == "postgresql"
    ranked = sa.select(s.c.member_id).where(*waiting).order_by(s.c.member_id).limit(_j_limit)
    last = sa.select(sa.func.max(ranked.subquery("r").c.member_id))
    if upto and postgres:
        waiting.append(s.c.member_id <= _j_upto)

    # the batch with its metrics: the states joined to their window's buckets, grouped
    # by state (a merge join in member order, rather than a lookup per state); OFFSET 0
    # keeps both engines from merging it into the query above
    batch = (
        sa.select(s.c.program_id, s.c.member_id, s.c.version, s.c.rank, s.c.attained_at,
                  s.c.protected_until, s.c.floor, s.c.manual, s.c.manual_until,
                  _METRIC.label("metric"))
        .select_from(s.outerjoin(tier_buckets, _IN_WINDOW))
        .group_by(s.c.program_id, s.c.member_id)  # the key: the other columns follow
    )
    if postgres:
        batch = batch.where(*waiting).order_by(s.c.member_id).limit(_j_limit)
    else:
        batch = batch.where(*waiting, s.c.member_id <= _j_last)
    w = batch.offset(0).subquery("w")
    decided = _decide(policy, dialect, w.c, w.c.metric)
    to = decided.would_be if notices else decided.new_rank
    d_select = sa.select(w.c.program_id, w.c.member_id, w.c.version, w.c.metric,
                         w.c.rank.label("old_rank"), to.label("new_rank"),
                         decided.attained_at.label("attained_at"),
                         decided.protected_until.label("protected_until"),
                         decided.floor.label("floor"))

    def name_of(rank: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case({i: sa.literal(name) for i, name in enumerate(names)}, value=rank)

    def record(m: Any, source: Any) -> Any:
        """The INSERT of the lines (notices) of the decisions ``m`` from ``source``."""
        if notices:
            threshold_of = sa.case(
                {i: sa.literal(t, sa.BigInteger()) for i, t in enumerate(policy.thresholds)},
                value=m.old_rank)
            insert = (postgresql.insert if postgres else sqlite.insert)(tier_notices)
            stmt: Any = insert.from_select(
                ["program_id", "member_id", "evaluation_at", "tier", "would_be", "metric",
                 "needed", "created_at"],
                sa.select(m.program_id, m.member_id, _j_at, name_of(m.old_rank),
                          name_of(m.new_rank), m.metric, threshold_of - m.metric,
                          _j_recorded)
                .select_from(source)
                .where(m.new_rank < m.old_rank))
            return stmt.on_conflict_do_update(
                index_elements=["program_id", "member_id", "evaluation_at"],
                set_={name: insert.excluded[name]
                      for name in ("tier", "would_be", "metric", "needed", "created_at")})
        return tier_history.insert().from_select(
            ["program_id", "member_id", "at", "from_tier", "to_tier", "reason", "metric",
             "note", "recorded_at"],
            sa.select(m.program_id, m.member_id, _j_at, name_of(m.old_rank),
                      name_of(m.new_rank), sa.literal("evaluation"), m.metric,
                      sa.literal(""), _j_recorded)
            .select_from(source)
            .where(m.new_rank != m.old_rank))

    counted = {"preserve_rowcount": True}
    if postgres:
        d = d_select.cte("d").prefix_with("MATERIALIZED")
        if notices:
            moves: dict[str, Any] = {"noticed_for": _j_at}
        else:
            moves = {"rank": d.c.new_rank, "attained_at": d.c.attained_at,
                     "protected_until": d.c.protected_until, "window_start": _j_window,
                     "next_evaluation": _j_next, "carried": d.c.new_rank,
                     "carried_until": d.c.protected_until, "carried_floor": d.c.floor,
                     "floor": d.c.floor}
        moved = (
            s.update()
            .values(**moves, version=s.c.version + 1)
            .where(s.c.program_id == d.c.program_id, s.c.member_id == d.c.member_id,
                   s.c.version == d.c.version)
            .returning(s.c.program_id, s.c.member_id, d.c.old_rank, d.c.new_rank,
                       d.c.metric)
            .cte("moved")
        )
        table = tier_notices if notices else tier_history
        recorded = record(moved.c, moved).returning(table.c.member_id).cte("recorded")
        # the states picked (moved or not: see evaluate_tiers) and the lines recorded
        run = sa.select(
            sa.select(sa.func.count()).select_from(d).scalar_subquery(),
            sa.select(sa.func.count()).select_from(recorded).scalar_subquery(),
        ).add_cte(moved)
        return _TierSQL(run=run, last=last, apply=None)

    in_batch = (*waiting, s.c.member_id <= _j_last)
    if notices:
        apply = s.update().values(noticed_for=_j_at, version=s.c.version + 1).where(*in_batch)
    else:
        # each row's decision from its own metric, computed once per row
        metric = sa.select(_METRIC).where(_IN_WINDOW).correlate(s).scalar_subquery()
        m = sa.select(metric.label("metric")).offset(0).subquery("m")
        own = _decide(policy, dialect, s.c, m.c.metric)
        decision = sa.select(own.new_rank, own.attained_at, own.protected_until,
                             own.new_rank, own.protected_until, own.floor, own.floor
                             ).select_from(m).correlate(s).scalar_subquery()
        columns = sa.tuple_(s.c.rank, s.c.attained_at, s.c.protected_until, s.c.carried,
                            s.c.carried_until, s.c.carried_floor, s.c.floor)
        apply = s.update().values(
            {columns: decision, s.c.window_start: _j_window, s.c.next_evaluation: _j_next,
             s.c.version: s.c.version + 1}).where(*in_batch)
    d_sub = d_select.subquery("d")
    return _TierSQL(run=record(d_sub.c, d_sub).execution_options(**counted), last=last,
                    apply=apply)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# -- row <-> record ---------------------------------------------------------------------


def _hold(rows: Sequence[Any]) -> Hold:
    first = rows[0]
    return Hold(
        id=first[0],
        program_id=first[1],
        member_id=first[2],
        wallet=first[3],
        points=first[4],
        status=_STATUSES[first[5]],
        created_at=first[6],
        expires_at=first[7],
        transaction_id=first[8],
        allocations=tuple(HoldAllocation(r[11], r[12]) for r in rows),
        captured=first[9],
        resolved_by=first[10],
    )


def _account_row(program_id: str, member_id: str, wallet: str, s: AccountState) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "member_id": member_id,
        "wallet": wallet,
        "available": s.available,
        "pending": s.pending,
        "held": s.held,
        "debt": s.debt,
        "issued": s.issued,
        "redeemed": s.redeemed,
        "expired": s.expired,
        "adjustments": s.adjustments,
        "transfers": s.transfers,
        "clawback_shortfall": s.clawback_shortfall,
        "next_due_at": s.next_due_at,
        "version": s.version,
        "activity": s.activity,
    }


def _lot_row(lot: Lot) -> dict[str, Any]:
    return {
        "id": lot.id,
        "program_id": lot.program_id,
        "member_id": lot.member_id,
        "wallet": lot.wallet,
        "transaction_id": lot.transaction_id,
        "amount": lot.amount,
        "remaining": lot.remaining,
        "held": lot.held,
        "earned_at": lot.earned_at,
        "activates_at": lot.activates_at,
        "expires_at": lot.expires_at,
        "pending": lot.pending,
    }


def _version(row: Sequence[Any]) -> ProgramVersion:
    return ProgramVersion(*row)


def _order(row: Sequence[Any]) -> OrderRecord:
    return OrderRecord(
        program_id=row[0],
        order_id=row[1],
        member_id=row[2],
        placed_at=row[3],
        version=row[4],
        order=row[5],
        returned=row[6],
        status=_ORDER_STATUSES[row[7]],
        points=row[8],
        evaluation=row[9],
        earn_id=row[10],
        payments=tuple(uuid.UUID(p) for p in row[11]),
        created_at=row[12],
        updated_at=row[13],
        recorded_evaluation=row[14],
        fingerprint=row[15],
        result=row[16],
    )


def _changed_order(o: OrderRecord) -> dict[str, Any]:
    """The columns of an order that change after it is recorded."""
    return {
        "returned": dict(o.returned),
        "status": o.status.value,
        "points": o.points,
        "evaluation": dict(o.evaluation),
        "earn_id": o.earn_id,
        "payments": [str(p) for p in o.payments],
        "updated_at": o.updated_at,
        "recorded_evaluation": (None if o.recorded_evaluation is None
                                else dict(o.recorded_evaluation)),
    }


def _order_row(o: OrderRecord) -> dict[str, Any]:
    return {
        "program_id": o.program_id,
        "order_id": o.order_id,
        "member_id": o.member_id,
        "placed_at": o.placed_at,
        "version": o.version,
        "order": dict(o.order),
        "created_at": o.created_at,
        "fingerprint": o.fingerprint,
        "result": o.result,
        **_changed_order(o),
    }


def _usage(row: Sequence[Any]) -> RuleUsage:
    return RuleUsage(
        program_id=row[0],
        member_id=row[1],
        source=row[2],
        rule_id=row[3],
        group=row[4],
        occurred_at=row[5],
        points=Decimal(row[6]),  # the exact decimal string
        stamps=row[7],
    )


def _usage_row(u: RuleUsage) -> dict[str, Any]:
    return {
        "program_id": u.program_id,
        "source": u.source,
        "rule_id": u.rule_id,
        "member_id": u.member_id,
        "rule_group": u.group,
        "occurred_at": u.occurred_at,
        "points": str(u.points),  # exact: the decimal string, never a float
        "stamps": u.stamps,
    }


# -- the unit of work -------------------------------------------------------------------


class SQLUnitOfWork:
    """One database transaction of :class:`SQLStorage` for one program.

    On an engine it checks out a connection and begins a transaction (``BEGIN
    IMMEDIATE`` on SQLite); on a host's connection it opens a SAVEPOINT. Leaving the
    ``with`` block without :meth:`commit` rolls back; writes after a commit start a new
    transaction that needs its own commit.
    """

    def __init__(self, storage: SQLStorage, program_id: str) -> None:
        self.program_id = program_id
        self._engine = storage._engine
        self._host = storage._connection
        self._conn: Connection | None = None
        self._tx: sa.Transaction | None = None

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("open" if self._tx else "committed")
        return f"SQLUnitOfWork(program_id={self.program_id!r}, {state})"

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            if self._host is not None:
                self._conn = self._host
                self._tx = _begin_in_host(self._host)
            else:
                self._conn = self._engine.connect()
                self._tx = self._conn.begin()
        except sa_exc.SQLAlchemyError as exc:
            self._release()
            raise _storage_error(exc) from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back what was not committed and give the connection back."""
        try:
            if self._tx is not None:
                self._tx.rollback()
        except sa_exc.SQLAlchemyError as error:
            raise _storage_error(error) from error
        finally:
            self._release()

    def _release(self) -> None:
        self._tx = None
        conn, self._conn = self._conn, None
        if conn is not None and self._host is None:
            try:
                conn.close()
            except sa_exc.SQLAlchemyError as exc:
                raise _storage_error(exc) from exc

    def _c(self) -> Connection:
        """The connection, inside an open transaction (a new one after a commit)."""
        conn = self._conn
        if conn is None:
            raise StorageError("unit of work used outside its with block",
                               program_id=self.program_id)
        if self._tx is None:
            self._tx = conn.begin_nested() if self._host is not None else conn.begin()
        return conn

    @_translated
    def commit(self) -> None:
        """Make every write so far durable (or, on a host's connection, part of the
        host's transaction: released from the SAVEPOINT)."""
        if self._conn is None:
            raise StorageError("unit of work used outside its with block",
                               program_id=self.program_id)
        tx, self._tx = self._tx, None
        if tx is not None:
            tx.commit()

    # -- reads ----------------------------------------------------------------------------

    @_translated
    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """Return the stored record for ``key`` in this program, or None."""
        row = self._c().execute(_SEL_KEY, {"p": self.program_id, "k": key}).first()
        return None if row is None else IdempotencyRecord(*row)

    @_translated
    def get_member(self, member_id: str) -> Member | None:
        """Return the member, or None if not enrolled."""
        row = self._c().execute(_SEL_MEMBER, {"p": self.program_id, "m": member_id}).first()
        return None if row is None else Member(*row)

    @_translated
    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        """Lock (``SELECT ... FOR UPDATE``; SQLite's write lock is already held) and
        return the running totals of these members' ``wallet``, in member-id order."""
        conn = self._c()
        found: dict[str, AccountState] = {}
        if len(member_ids) == 1:
            one = {"p": self.program_id, "w": wallet, "m": member_ids[0]}
            for row in conn.execute(_LOCK_ACCOUNT, one):
                found[row[0]] = AccountState(*row)
            return found
        for chunk in _chunks(sorted(set(member_ids))):
            params: dict[str, Any] = {"p": self.program_id, "w": wallet, "ids": chunk}
            for row in conn.execute(_LOCK_ACCOUNTS, params):
                found[row[0]] = AccountState(*row)
        return found

    @_translated
    def get_account(self, wallet: str, member_id: str) -> AccountState | None:
        """Return the running totals without locking, or None if not enrolled."""
        params = {"p": self.program_id, "w": wallet, "m": member_id}
        row = self._c().execute(_SEL_ACCOUNT, params).first()
        return None if row is None else AccountState(*row)

    @_translated
    def load_member(
        self, member_id: str, wallets: Sequence[str], at: dt.datetime, *, lock: bool
    ) -> MemberState | None:
        """Return the member, its account rows of ``wallets`` (locked with ``lock``:
        ``SELECT ... FOR UPDATE OF lk_accounts``, the member row stays unlocked; SQLite's
        write lock is already held) and the version in force at ``at``, in one
        statement; None if not enrolled. Only a member without an account row in any
        of ``wallets`` takes a second statement."""
        conn = self._c()
        program_id = self.program_id
        params: dict[str, Any] = {"p": program_id, "m": member_id, "at": at}
        asked = sorted(set(wallets))
        if len(asked) == 1:
            params["w"] = asked[0]
        elif len(asked) == 2:
            params["w"], params["w2"] = asked
        else:
            params["ws"] = asked
        rows = (conn.execute(_sel_member_state(min(len(asked), 3), lock), params).all()
                if asked else [])
        head = rows[0] if rows else conn.execute(_SEL_MEMBER_VERSION, params).first()
        if head is None:
            return None
        return MemberState(
            member=Member(program_id, head[0], head[1], head[2]),
            accounts={row[5]: AccountState(*row[4:]) for row in rows},
            version=None if head[3] is None else int(head[3]),
        )

    @_translated
    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        """Return the open lots (remaining > 0 or pending) of these members' wallet,
        member by member in the order given, each member's oldest first."""
        conn = self._c()
        if len(member_ids) == 1:
            one = {"p": self.program_id, "w": wallet, "m": member_ids[0]}
            return [Lot(*row) for row in conn.execute(_SEL_OPEN_LOTS_1, one)]
        by_member: dict[str, list[Lot]] = {}
        for chunk in _chunks(list(dict.fromkeys(member_ids))):
            params: dict[str, Any] = {"p": self.program_id, "w": wallet, "ids": chunk}
            for row in conn.execute(_SEL_OPEN_LOTS, params):
                by_member.setdefault(row[2], []).append(Lot(*row))
        return [lot for m in member_ids for lot in by_member.get(m, ())]

    @_translated
    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID]) -> list[Lot]:
        """Return these lots of this program whatever their state, in the order given;
        unknown ids are absent."""
        conn = self._c()
        found: dict[uuid.UUID, Lot] = {}
        for chunk in _chunks(list(dict.fromkeys(lot_ids))):
            for row in conn.execute(_SEL_LOTS_BY_ID, {"p": self.program_id, "ids": chunk}):
                found[row[0]] = Lot(*row)
        return [found[i] for i in lot_ids if i in found]

    @_translated
    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        """Return the open holds of these members' wallet, member by member in the
        order given, each member's oldest first."""
        conn = self._c()
        rows_of: dict[uuid.UUID, list[Any]] = {}
        if len(member_ids) == 1:
            batches: Iterable[tuple[sa.Executable, dict[str, Any]]] = [
                (_SEL_OPEN_HOLDS_1, {"p": self.program_id, "w": wallet, "m": member_ids[0]})
            ]
        else:
            batches = (
                (_SEL_OPEN_HOLDS, {"p": self.program_id, "w": wallet, "ids": chunk})
                for chunk in _chunks(list(dict.fromkeys(member_ids)))
            )
        for stmt, params in batches:
            for row in conn.execute(stmt, params):
                rows_of.setdefault(row[0], []).append(row)
        by_member: dict[str, list[Hold]] = {}
        for rows in rows_of.values():
            hold = _hold(rows)
            by_member.setdefault(hold.member_id, []).append(hold)
        return [hold for m in member_ids for hold in by_member.get(m, ())]

    @_translated
    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        """Return the hold (any status) of this program, or None."""
        rows = self._c().execute(_SEL_HOLD, {"p": self.program_id, "id": hold_id}).all()
        return _hold(rows) if rows else None

    def _transactions(self, conn: Connection, rows: Sequence[Any]) -> list[Transaction]:
        """Build transactions from their rows, loading their postings and movements."""
        legs: dict[uuid.UUID, list[Posting]] = {}
        moves: dict[uuid.UUID, list[LotMovement]] = {}
        ids = [row[0] for row in rows]
        for chunk in _chunks(ids):
            for tid, account, amount in conn.execute(_SEL_POSTINGS, {"ids": chunk}):
                legs.setdefault(tid, []).append(Posting(_ACCOUNTS[account], amount))
            for tid, lot_id, delta in conn.execute(_SEL_MOVEMENTS, {"ids": chunk}):
                moves.setdefault(tid, []).append(LotMovement(lot_id, delta))
        return [
            Transaction(
                id=r[0],
                program_id=r[1],
                member_id=r[2],
                wallet=r[3],
                kind=_KINDS[r[4]],
                occurred_at=r[5],
                recorded_at=r[6],
                postings=tuple(legs.get(r[0], ())),
                movements=tuple(moves.get(r[0], ())),
                idempotency_key=r[7],
                reason=r[8],
                metadata=r[9],
                reverses_id=r[10],
            )
            for r in rows
        ]

    @_translated
    def get_transaction(self, transaction_id: uuid.UUID) -> Transaction | None:
        """Return the transaction with its postings and lot movements, or None."""
        conn = self._c()
        row = conn.execute(_SEL_TX, {"p": self.program_id, "id": transaction_id}).first()
        return None if row is None else self._transactions(conn, [row])[0]

    @_translated
    def find_reversal(self, transaction_id: uuid.UUID) -> uuid.UUID | None:
        """Return the id of the transaction reversing ``transaction_id``, or None."""
        found: uuid.UUID | None = self._c().scalar(_SEL_REVERSAL, {"id": transaction_id})
        return found

    @_translated
    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """Return up to ``limit`` (member_id, wallet) pairs whose ``next_due_at <= at``,
        ordered by (member_id, wallet) and strictly after ``after`` when given."""
        params: dict[str, Any] = {"p": self.program_id, "at": at, "lim": limit}
        if after is None:
            stmt = _SEL_DUE
        else:
            stmt = _SEL_DUE_AFTER
            params["after_m"], params["after_w"] = after
        return [(row[0], row[1]) for row in self._c().execute(stmt, params)]

    @_translated
    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        """Return (points, instant) of the soonest expiry among lots with points left."""
        params = {"p": self.program_id, "m": member_id, "w": wallet}
        row = self._c().execute(_SEL_NEXT_EXPIRING, params).first()
        return None if row is None else (int(row[1]), row[0])

    @_translated
    def sums_as_of(self, wallet: str, member_id: str, at: dt.datetime) -> dict[Account, int]:
        """Return the signed sum per account of the member's postings with
        ``occurred_at <= at`` (accounts with no postings are absent)."""
        params = {"p": self.program_id, "m": member_id, "w": wallet, "at": at}
        rows = self._c().execute(_SEL_SUMS_AS_OF, params)
        return {_ACCOUNTS[account]: int(total) for account, total in rows}

    @_translated
    def lots_as_of(
        self, wallet: str, member_id: str, at: dt.datetime
    ) -> list[tuple[Lot, int]]:
        """Return (lot, remaining as of ``at``) for lots whose movements up to ``at``
        leave points in them."""
        params = {"p": self.program_id, "m": member_id, "w": wallet, "at": at}
        rows = self._c().execute(_SEL_LOTS_AS_OF, params)
        return [(Lot(*row[:-1]), int(row[-1])) for row in rows]

    @_translated
    def statement(
        self,
        wallet: str,
        member_id: str,
        *,
        limit: int,
        before: tuple[dt.datetime, uuid.UUID] | None,
    ) -> tuple[list[Transaction], int]:
        """Return up to ``limit`` transactions newest first (by occurred_at, then id),
        strictly before ``before`` when given, and the member's total points through
        the first transaction returned (0 if none)."""
        conn = self._c()
        params: dict[str, Any] = {"p": self.program_id, "m": member_id, "w": wallet,
                                  "lim": limit}
        if before is None:
            rows = conn.execute(_SEL_PAGE, params).all()
        else:
            params["before_at"], params["before_id"] = before
            rows = conn.execute(_SEL_PAGE_BEFORE, params).all()
        if not rows:
            return [], 0
        page = self._transactions(conn, rows)
        params["before_at"], params["before_id"] = page[0].occurred_at, page[0].id
        total = conn.scalar(_SEL_TOTAL_THROUGH, params)
        return page, int(total or 0)

    # -- programs, orders, rule usage -----------------------------------------------------

    @_translated
    def program_versions(self) -> list[ProgramVersion]:
        """Return every stored version of this program, lowest version first."""
        rows = self._c().execute(_SEL_VERSIONS, {"p": self.program_id})
        return [_version(row) for row in rows]

    @_translated
    def program_version_at(self, at: dt.datetime) -> int | None:
        """Return the number of the highest version whose ``effective_from`` is None or
        at or before ``at``; None if there is none."""
        number = self._c().execute(_SEL_VERSION_AT, {"p": self.program_id, "at": at}).scalar()
        return None if number is None else int(number)

    @_translated
    def get_order(self, order_id: str) -> OrderRecord | None:
        """Return the recorded order (any status), or None."""
        row = self._c().execute(_SEL_ORDER, {"p": self.program_id, "o": order_id}).first()
        return None if row is None else _order(row)

    @_translated
    def count_orders(self, member_id: str) -> int:
        """Return how many orders of the member are recorded and not cancelled."""
        return int(self._c().scalar(_COUNT_ORDERS, {"p": self.program_id, "m": member_id})
                   or 0)

    @_translated
    def load_orders(self, member_id: str) -> list[OrderRecord]:
        """Return every recorded order of the member, whatever its status, ordered by
        (placed_at, order_id)."""
        rows = self._c().execute(_SEL_MEMBER_ORDERS, {"p": self.program_id, "m": member_id})
        return [_order(row) for row in rows]

    @_translated
    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        """Return the member's usage rows of these rules or groups with
        ``since <= occurred_at < until`` (a None bound is open); every row of the
        member (within the bounds) when both ``rule_ids`` and ``groups`` are empty."""
        params: dict[str, Any] = {"p": self.program_id, "m": member_id}
        if rule_ids:
            params["rule_ids"] = list(rule_ids)
        if groups:
            params["groups"] = list(groups)
        if since is not None:
            params["since"] = since
        if until is not None:
            params["until"] = until
        stmt = _sel_usage(bool(rule_ids), bool(groups), since is not None, until is not None)
        return [_usage(row) for row in self._c().execute(stmt, params)]

    # -- tiers ----------------------------------------------------------------------------

    @_translated
    def get_tier_state(self, member_id: str) -> TierState | None:
        """Return the member's tier state, locking its row (``SELECT ... FOR UPDATE``;
        SQLite's write lock is already held), or None if none is kept."""
        row = self._c().execute(_SEL_TIER_STATE, {"p": self.program_id, "m": member_id}).first()
        return None if row is None else TierState(*row)

    @_translated
    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        """Return the sum of the member's metric buckets whose period starts in
        ``[start, end)`` (``end`` None: no upper bound); 0 if there are none."""
        params: dict[str, Any] = {"p": self.program_id, "m": member_id, "start": start}
        if end is None:
            value = self._c().scalar(_SEL_TIER_METRIC_FROM, params)
        else:
            params["end"] = end
            value = self._c().scalar(_SEL_TIER_METRIC, params)
        return int(value or 0)

    @_translated
    def tier_history(self, member_id: str) -> list[TierChange]:
        """Return the member's tier history in the order it was written."""
        rows = self._c().execute(_SEL_TIER_HISTORY, {"p": self.program_id, "m": member_id})
        return [TierChange(*row) for row in rows]

    @_translated
    def tier_due(self, at: dt.datetime, *, by_anchor: bool) -> list[
            tuple[dt.datetime, dt.date | None]]:
        """Return the distinct evaluation instants at or before ``at`` that tier states
        wait for, oldest first; with ``by_anchor`` as (instant, anchor) pairs, else as
        (instant, None)."""
        params = {"p": self.program_id, "at": at}
        if by_anchor:
            rows = self._c().execute(_SEL_TIER_DUE_BY_ANCHOR, params)
            return [(row[0], row[1]) for row in rows]
        return [(row[0], None) for row in self._c().execute(_SEL_TIER_DUE, params)]

    @_translated
    def evaluate_tiers(self, job: TierJob) -> tuple[int, int]:
        """Evaluate, set-based, up to ``job.limit`` tier states waiting for ``job.at``
        (see :func:`_tier_sql`). Return how many states were evaluated and how many of
        those moved changed tier. A state written concurrently since it was read is
        left waiting (and counted as evaluated): the next call takes it up."""
        return self._tier_run(job, notices=False)

    @_translated
    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        """Record, set-based, "will downgrade" notices for up to ``job.limit`` tier
        states waiting for ``job.at`` not yet noticed for it, and mark them noticed.
        Return how many states were examined and how many notices were recorded."""
        return self._tier_run(job, notices=True)

    @_translated
    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        """Return the member id ending the next batch of ``job.limit`` states waiting
        for ``job.at`` after ``job.after`` (one range of the due index); None if none."""
        sql = _tier_sql(job.policy, self._c().dialect.name, noticed, job.after is not None)
        end = self._c().scalar(sql.last, self._tier_params(job))
        return None if end is None else str(end)

    def _tier_params(self, job: TierJob) -> dict[str, Any]:
        return {
            "p": self.program_id, "j_at": job.at, "j_anchor": job.anchor,
            "j_next": job.next_at, "j_window": job.window_start,
            "j_protected": job.protected_until, "j_recorded": job.recorded_at,
            "j_limit": job.limit, "j_after": job.after, "j_upto": job.upto,
        }

    def _tier_run(self, job: TierJob, *, notices: bool) -> tuple[int, int]:
        conn = self._c()
        dialect = conn.dialect.name
        if dialect not in _UPSERTS:
            raise StorageError("the SQL backend supports PostgreSQL and SQLite only",
                               dialect=dialect)
        sql = _tier_sql(job.policy, dialect, notices, job.after is not None,
                        job.upto is not None)
        params = self._tier_params(job)
        if sql.apply is None:  # PostgreSQL: one statement, with its settings
            before = conn.execute(_SET_TIER_SETTINGS, _TIER_SETTINGS).one()
            picked, recorded = conn.execute(sql.run, params).one()
            # (a failure rolls the settings back with the transaction or savepoint)
            conn.execute(_RESET_TIER_SETTINGS, dict(zip(_TIER_SETTINGS, before, strict=False)))
            return int(picked), int(recorded)
        params["j_last"] = job.upto if job.upto is not None else conn.scalar(sql.last, params)
        if params["j_last"] is None:
            return 0, 0
        recorded = conn.execute(sql.run, params).rowcount
        assert sql.apply is not None
        return conn.execute(sql.apply, params).rowcount, recorded

    @_translated
    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        """Return up to ``limit`` recorded notices created at or after ``since``,
        oldest first (by creation, evaluation instant, member id)."""
        params: dict[str, Any] = {"p": self.program_id, "lim": limit}
        if since is None:
            stmt = _SEL_TIER_NOTICES
        else:
            stmt = _SEL_TIER_NOTICES_SINCE
            params["since"] = since
        return [TierNotice(*row) for row in self._c().execute(stmt, params)]

    def _tier_history_rows(self, history: Sequence[TierChange]) -> list[dict[str, Any]]:
        """The rows of ``history``, in order (the database numbers them)."""
        return [
            {"program_id": self.program_id, "member_id": change.member_id, "at": change.at,
             "from_tier": change.from_tier, "to_tier": change.to_tier,
             "reason": change.reason, "metric": change.metric, "note": change.note,
             "recorded_at": change.recorded_at}
            for change in history
        ]

    # -- referrals ------------------------------------------------------------------------

    @_translated
    def get_code(self, code: str) -> ReferralCode | None:
        """Return the issued code, or None."""
        row = self._c().execute(_SEL_CODE, {"p": self.program_id, "k_code": code}).first()
        return None if row is None else _code(row)

    @_translated
    def member_codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's codes, oldest first."""
        rows = self._c().execute(_SEL_MEMBER_CODES, {"p": self.program_id, "m": member_id})
        return [_code(row) for row in rows]

    @_translated
    def claim_code(self, code: str) -> bool:
        """Count one more use of ``code`` unless it is used up (one guarded UPDATE)."""
        result = self._c().execute(_CLAIM_CODE, {"p": self.program_id, "k_code": code})
        return bool(result.rowcount == 1)

    @_translated
    def get_referral(self, referee_id: str) -> Referral | None:
        """Return the referee's referral, or None."""
        row = self._c().execute(_SEL_REFERRAL, {"p": self.program_id, "m": referee_id}).first()
        return None if row is None else _referral(row)

    @_translated
    def referrals_of(self, referrer_id: str) -> list[Referral]:
        """Return the referrer's referrals by attribution."""
        rows = self._c().execute(_SEL_REFERRALS_OF, {"p": self.program_id, "m": referrer_id})
        return [_referral(row) for row in rows]

    @_translated
    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        """For each instant of ``since``, count the referrer's referrals attributed at or
        after it: one statement for all."""
        if not since:
            return []
        params: dict[str, Any] = {"p": self.program_id, "m": referrer_id,
                                  "s_min": min(since)}
        params.update({f"s{i}": s for i, s in enumerate(since)})
        row = self._c().execute(_count_attributions(len(since)), params).one()
        return [int(n) for n in row]

    @_translated
    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        """Count the referrer's paid referrals that qualified in ``[start, end)``."""
        params: dict[str, Any] = {"p": self.program_id, "m": referrer_id, "end": end}
        if start is None:
            return int(self._c().scalar(_COUNT_PAID, params) or 0)
        params["start"] = start
        return int(self._c().scalar(_COUNT_PAID_SINCE, params) or 0)

    @_translated
    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        """Return the identity marks kept for these members."""
        if not member_ids:
            return []
        rows = self._c().execute(_SEL_MARKS, {"p": self.program_id,
                                              "ids": sorted(set(member_ids))})
        return [ReferralMark(self.program_id, m, kind, digest) for m, kind, digest in rows]

    # -- writes ---------------------------------------------------------------------------

    def _insert(self, conn: Connection, stmt: sa.Insert, rows: list[dict[str, Any]],
                duplicate: str | None = None, field: str = "", only: str | None = None
                ) -> None:
        """Insert ``rows`` in one executemany. A unique violation is DuplicateKey (with
        ``duplicate`` as its message and the rows' ``field`` as detail) when
        ``duplicate`` is given and, with ``only``, the violated constraint is that one;
        anything else is StorageError."""
        try:
            conn.execute(stmt, rows)
        except sa_exc.IntegrityError as exc:
            if duplicate is not None and _is_unique_violation(exc) and (
                only is None or _violated(exc, only)
            ):
                values = [row[field] for row in rows]
                detail = values[0] if len(values) == 1 else values
                raise DuplicateKey(duplicate, program_id=self.program_id,
                                   **{field: detail}) from exc
            raise _storage_error(exc) from exc

    @staticmethod
    def _update(conn: Connection, stmt: sa.Update, rows: list[dict[str, Any]],
                what: str) -> None:
        result = conn.execute(stmt, rows)
        sane = (conn.dialect.supports_sane_multi_rowcount if len(rows) > 1
                else conn.dialect.supports_sane_rowcount)
        if sane and result.rowcount != len(rows):
            raise StorageError(f"update of {what} found {result.rowcount} of {len(rows)} rows")

    @_translated
    def write(self, changes: ChangeSet) -> None:
        """Persist ``changes`` set-based: one executemany per table touched, inserts
        ordered so foreign keys hold. Raise DuplicateKey on a broken unique rule
        (idempotency key, member id, order id, one reversal per transaction, a new
        tier state of a member that has one); the caller must then roll the unit of
        work back. Tier states are inserted (version 0) or updated (stored version
        + 1), tier buckets added to by upsert, tier history lines appended."""
        conn = self._c()
        program_id = self.program_id
        if changes.idempotency:
            self._insert(conn, _INS_KEY, [
                {"program_id": program_id, "key": r.key, "member_id": r.member_id,
                 "fingerprint": r.fingerprint, "result": r.result, "created_at": r.created_at}
                for r in changes.idempotency
            ], "idempotency key already used", "key")
        if changes.members:
            self._insert(conn, _INS_MEMBER, [
                {"program_id": program_id, "member_id": m.member_id,
                 "enrolled_at": m.enrolled_at, "attributes": dict(m.attributes)}
                for m in changes.members
            ], "member already enrolled", "member_id")
        new_accounts = changes.new_accounts
        if new_accounts:
            self._insert(conn, _INS_ACCOUNT, [
                _account_row(program_id, member_id, wallet, state)
                for (member_id, wallet), state in changes.accounts.items()
                if (member_id, wallet) in new_accounts
            ])
        txs = changes.transactions
        if txs:
            self._insert(conn, _INS_TX, [
                {"id": tx.id, "program_id": tx.program_id, "member_id": tx.member_id,
                 "wallet": tx.wallet, "kind": tx.kind.value, "occurred_at": tx.occurred_at,
                 "recorded_at": tx.recorded_at, "idempotency_key": tx.idempotency_key,
                 "reason": tx.reason, "metadata": dict(tx.metadata),
                 "reverses_id": tx.reverses_id}
                for tx in txs
            ], "transaction already reversed", "reverses_id", only="reverses_id")
            legs = [
                {"transaction_id": tx.id, "account": p.account.value, "program_id": tx.program_id,
                 "member_id": tx.member_id, "wallet": tx.wallet, "amount": p.amount,
                 "position": i}
                for tx in txs for i, p in enumerate(tx.postings)
            ]
            if legs:
                self._insert(conn, _INS_POSTING, legs)
        new_lots = changes.new_lots
        if new_lots:
            self._insert(conn, _INS_LOT, [
                _lot_row(lot) for lot_id, lot in changes.lots.items() if lot_id in new_lots
            ])
        moves = [
            {"transaction_id": tx.id, "lot_id": mv.lot_id, "program_id": tx.program_id,
             "member_id": tx.member_id, "delta": mv.delta, "position": i}
            for tx in txs for i, mv in enumerate(tx.movements)
        ]
        if moves:
            self._insert(conn, _INS_MOVEMENT, moves)
        new_holds = changes.new_holds
        if new_holds:
            created = [h for hold_id, h in changes.holds.items() if hold_id in new_holds]
            self._insert(conn, _INS_HOLD, [
                {"id": h.id, "program_id": h.program_id, "member_id": h.member_id,
                 "wallet": h.wallet, "points": h.points, "status": h.status.value,
                 "created_at": h.created_at, "expires_at": h.expires_at,
                 "transaction_id": h.transaction_id, "captured": h.captured,
                 "resolved_by": h.resolved_by}
                for h in created
            ])
            self._insert(conn, _INS_ALLOCATION, [
                {"hold_id": h.id, "lot_id": a.lot_id, "program_id": h.program_id,
                 "member_id": h.member_id, "points": a.points, "position": i}
                for h in created for i, a in enumerate(h.allocations)
            ])
        new_orders = changes.new_orders
        if new_orders:
            self._insert(conn, _INS_ORDER, [
                _order_row(o) for order_id, o in changes.orders.items() if order_id in new_orders
            ], "order already recorded", "order_id")
        if changes.referral_codes:
            self._insert(conn, _INS_CODE, [
                {"program_id": program_id, "code": c.code, "shown": c.shown,
                 "member_id": c.member_id, "source": c.source.value,
                 "created_at": c.created_at, "expires_at": c.expires_at,
                 "max_uses": c.max_uses, "uses": c.uses}
                for c in changes.referral_codes
            ], "code already issued", "code")
        if changes.referrals:
            self._write_referrals(conn, changes)
        if changes.referral_marks:
            conn.execute(_upserts_for(conn).mark, [
                {"program_id": program_id, "member_id": m.member_id, "kind": m.kind,
                 "digest": m.digest} for m in changes.referral_marks])
        if changes.tier_states:
            self._write_tier_states(conn, changes)
        if changes.tier_buckets:
            conn.execute(_upserts_for(conn).bucket, [
                {"program_id": program_id, "member_id": member_id, "period_start": period,
                 "value": value}
                for (member_id, period), value in changes.tier_buckets.items()
            ])
        if changes.tier_history:
            self._insert(conn, _INS_TIER_HISTORY,
                         self._tier_history_rows(changes.tier_history))
        if changes.usage:
            # one row per key: the last one wins, as it would row by row
            usage = {(u.program_id, u.source, u.rule_id): u for u in changes.usage}
            conn.execute(_upserts_for(conn).usage, [_usage_row(u) for u in usage.values()])
        touched_accounts = [
            {"k_program_id": program_id, "k_member_id": member_id, "k_wallet": wallet,
             **{name: getattr(state, name) for name in ACCOUNT_COLUMNS},
             "next_due_at": state.next_due_at, "version": state.version,
             "activity": state.activity}
            for (member_id, wallet), state in changes.accounts.items()
            if (member_id, wallet) not in new_accounts
        ]
        if touched_accounts:
            self._update(conn, _UPD_ACCOUNT, touched_accounts, "accounts")
        touched_lots = [
            {"k_id": lot.id, "remaining": lot.remaining, "held": lot.held,
             "pending": lot.pending, "activates_at": lot.activates_at,
             "expires_at": lot.expires_at}
            for lot_id, lot in changes.lots.items() if lot_id not in new_lots
        ]
        if touched_lots:
            self._update(conn, _UPD_LOT, touched_lots, "lots")
        touched_holds = [
            {"k_id": h.id, "status": h.status.value, "captured": h.captured,
             "resolved_by": h.resolved_by}
            for hold_id, h in changes.holds.items() if hold_id not in new_holds
        ]
        if touched_holds:
            self._update(conn, _UPD_HOLD, touched_holds, "holds")
        touched_orders = [
            {"k_program_id": o.program_id, "k_order_id": o.order_id, **_changed_order(o)}
            for order_id, o in changes.orders.items() if order_id not in new_orders
        ]
        if touched_orders:
            self._update(conn, _UPD_ORDER, touched_orders, "orders")

    def _write_referrals(self, conn: Connection, changes: ChangeSet) -> None:
        created = changes.new_referrals
        rows = [{"program_id": r.program_id, "referee_id": r.referee_id,
                 "referrer_id": r.referrer_id, "code": r.code, "source": r.source.value,
                 "attributed_at": r.attributed_at, "campaign": r.campaign,
                 **_referral_changes(r)}
                for referee_id, r in changes.referrals.items() if referee_id in created]
        if rows:
            self._insert(conn, _INS_REFERRAL, rows, "member already referred", "referee_id")
        touched = [{"k_program_id": r.program_id, "k_referee_id": r.referee_id,
                    **_referral_changes(r)}
                   for referee_id, r in changes.referrals.items() if referee_id not in created]
        if touched:
            self._update(conn, _UPD_REFERRAL, touched, "referrals")

    def _write_tier_states(self, conn: Connection, changes: ChangeSet) -> None:
        """Insert the new tier states (version 0; one already kept is DuplicateKey, so
        the facade retries) and update the others (their stored version + 1)."""
        created = changes.new_tier_states
        inserted = [
            {"program_id": self.program_id, **_tier_state_row(state), "version": 0}
            for member_id, state in changes.tier_states.items() if member_id in created
        ]
        if inserted:
            self._insert(conn, _INS_TIER_STATE, inserted, "tier state already kept",
                         "member_id")
        updated = [
            {"k_program_id": self.program_id, "k_member_id": member_id,
             **{name: value for name, value in _tier_state_row(state).items()
                if name != "member_id"}}
            for member_id, state in changes.tier_states.items() if member_id not in created
        ]
        if updated:
            self._update(conn, _UPD_TIER_STATE, updated, "tier states")


def _code(row: Any) -> ReferralCode:
    return ReferralCode(
        program_id=row.program_id, code=row.code, shown=row.shown, member_id=row.member_id,
        source=Source(row.source), created_at=row.created_at, expires_at=row.expires_at,
        max_uses=row.max_uses, uses=row.uses)


def _referral(row: Any) -> Referral:
    return Referral(
        program_id=row.program_id, referee_id=row.referee_id, referrer_id=row.referrer_id,
        code=row.code, source=Source(row.source), status=ReferralStatus(row.status),
        attributed_at=row.attributed_at, updated_at=row.updated_at,
        reasons=tuple(row.reasons), campaign=row.campaign, order_id=row.order_id,
        qualified_at=row.qualified_at, settles_at=row.settles_at,
        referrer_points=row.referrer_points, referee_points=row.referee_points,
        referrer_tx=row.referrer_tx, referee_tx=row.referee_tx, decided_at=row.decided_at)


def _referral_changes(r: Referral) -> dict[str, Any]:
    return {"status": r.status.value, "updated_at": r.updated_at, "reasons": list(r.reasons),
            "order_id": r.order_id, "qualified_at": r.qualified_at,
            "settles_at": r.settles_at, "referrer_points": r.referrer_points,
            "referee_points": r.referee_points, "referrer_tx": r.referrer_tx,
            "referee_tx": r.referee_tx, "decided_at": r.decided_at}


def _tier_state_row(state: TierState) -> dict[str, Any]:
    """The columns of a tier state but its version (and program id)."""
    return {
        "member_id": state.member_id,
        "rank": state.rank,
        "attained_at": state.attained_at,
        "protected_until": state.protected_until,
        "window_start": state.window_start,
        "next_evaluation": state.next_evaluation,
        "carried": state.carried,
        "carried_until": state.carried_until,
        "carried_floor": state.carried_floor,
        "floor": state.floor,
        "anchor": state.anchor,
        "manual": state.manual,
        "manual_until": state.manual_until,
        "manual_reason": state.manual_reason,
        "noticed_for": state.noticed_for,
    }


def _begin_in_host(conn: Connection) -> sa.Transaction:
    """Open a SAVEPOINT inside the host's transaction (beginning it if needed)."""
    if not conn.in_transaction():
        conn.begin()  # the host's transaction, committed by the host like an autobegin
    if conn.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        if driver is not None and not getattr(driver, "in_transaction", True):
            # pysqlite's legacy mode has not really begun the host's transaction yet;
            # a SAVEPOINT alone would then commit on release, outside the host's control
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return conn.begin_nested()


# -- the storage --------------------------------------------------------------------------


class SQLStorage:
    """Keeps ledgers in a SQL database through SQLAlchemy Core (SQLite, PostgreSQL).

    ``bind`` is an :class:`~sqlalchemy.engine.Engine` (each unit of work checks out a
    connection and runs one transaction) or a host application's open
    :class:`~sqlalchemy.engine.Connection` (each unit of work is a SAVEPOINT inside the
    host's transaction; the host commits). For SQLite create engines with
    :meth:`from_url` or :func:`loyaltykit.sql.create_engine`, which set WAL, foreign
    keys, a busy timeout and ``BEGIN IMMEDIATE``.
    """

    #: The tables of the ledger (SQLAlchemy :class:`~sqlalchemy.MetaData`).
    metadata: ClassVar[sa.MetaData] = metadata

    def __init__(self, bind: Engine | Connection) -> None:
        self._engine: Engine
        self._connection: Connection | None
        if isinstance(bind, Engine):
            self._engine, self._connection = bind, None
        elif isinstance(bind, Connection):
            self._engine, self._connection = bind.engine, bind
        else:
            raise InvalidInput("bind must be a SQLAlchemy Engine or Connection",
                               bind=repr(bind))
        self._owns_engine = False

    @classmethod
    def from_url(cls, url: str, **engine_kwargs: Any) -> SQLStorage:
        """Create an engine for ``url`` (SQLite settings included; see
        :func:`create_engine`) owned by the new storage; :meth:`dispose` releases it.

        ``engine_kwargs`` go to :func:`sqlalchemy.create_engine`. An in-memory SQLite
        URL (``sqlite://``) gives each thread its own database; use a file to share
        one between threads or processes."""
        try:
            engine = create_engine(url, **engine_kwargs)
        except sa_exc.ArgumentError as exc:
            raise InvalidInput(
                "unusable database URL", url=_hide_password(str(url))
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise _storage_error(exc) from exc
        storage = cls(engine)
        storage._owns_engine = True
        return storage

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        mode = ", host connection" if self._connection is not None else ""
        return f"SQLStorage({url!r}{mode})"

    @property
    def concurrent(self) -> bool:
        """True on an engine whose pool gives each unit of work its own connection to
        one database; False on a host connection, or a pool of one connection per
        thread (an in-memory SQLite database is then a different one per thread) or
        one for all (whose units of work must run one at a time)."""
        one_per_thread_or_all = (sa.pool.SingletonThreadPool, sa.pool.StaticPool)
        return self._connection is None and not isinstance(self._engine.pool,
                                                           one_per_thread_or_all)

    def unit_of_work(self, program_id: str) -> SQLUnitOfWork:
        """Return a new unit of work for ``program_id`` (use it as a context manager)."""
        return SQLUnitOfWork(self, program_id)

    def _run(self, work: Callable[[Connection], None]) -> None:
        """Run ``work`` in a transaction of its own (a SAVEPOINT on a host connection)."""
        try:
            if self._connection is None:
                with self._engine.begin() as conn:
                    work(conn)
            else:
                with _begin_in_host(self._connection):
                    work(self._connection)
        except sa_exc.SQLAlchemyError as exc:
            raise _storage_error(exc) from exc

    def register_program(self, version: ProgramVersion) -> None:
        """Store this version unless ``(program_id, version)`` is stored already (the
        stored one is then left as it is). An unknown program is registered with this
        definition first. Safe to call concurrently: ``INSERT .. ON CONFLICT DO
        NOTHING`` lets a lost insert race pass without an error."""
        definition = dict(version.definition)

        def work(conn: Connection) -> None:
            upserts = _upserts_for(conn)
            conn.execute(upserts.program, {"id": version.program_id, "definition": definition,
                                           "created_at": version.created_at})
            conn.execute(upserts.version, {
                "program_id": version.program_id, "version": version.version,
                "effective_from": version.effective_from, "definition": definition,
                "created_at": version.created_at,
            })

        self._run(work)

    def create_schema(self) -> None:
        """Create every table that does not exist yet (a shortcut for tests and demos;
        production databases should use :meth:`upgrade`)."""
        self._run(lambda conn: metadata.create_all(conn))

    def alembic_config(self) -> Config:
        """An Alembic configuration for the shipped migrations (no ``alembic.ini``)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("version_table", VERSION_TABLE)
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the database schema to ``revision`` (default: the newest) with the
        migrations shipped in the package. On a host connection the migration joins
        the host's transaction."""
        from alembic import command
        from alembic.util import CommandError

        config = self.alembic_config()

        def work(conn: Connection) -> None:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

        try:
            self._run(work)
        except CommandError as exc:
            raise StorageError("the migration failed", revision=revision,
                               detail=str(exc)) from exc

    def dispose(self) -> None:
        """Close the pooled connections of an engine this storage created itself
        (:meth:`from_url`); a caller's engine or connection is left alone."""
        if self._owns_engine:
            self._engine.dispose()


def _hide_password(url: str) -> str:
    """Mask the password of ``scheme://user:password@host/...`` for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
