"""The ledger's tables as SQLAlchemy Core objects, built once at import.

Every member-scoped row carries ``(program_id, member_id)`` so it can serve as a
distribution key (DESIGN §10); ids are library-generated UUIDs, never sequences. The
``member_id`` columns (and ``referrer_id`` / ``referee_id``) hold the internal member
key, not the shop's id: ``lk_member_ids`` keeps the shop's id once, mapped to the key
(DESIGN §11), so erasing a member deletes one row.
Enumerations are stored as their string values; exact decimals (a rule's unrounded
points) as their decimal string, never as a float or an engine's own numeric type.
Every foreign key has an index leading with its columns (a primary key's, a unique
constraint's or its own), so deleting or checking a referenced row never scans the
referencing table. ``position`` columns keep the order of a transaction's postings and
lot movements and of a hold's allocations, which the ledger relies on (a partial
capture walks the allocations in order; a reversal mirrors the original's legs).

The shipped Alembic migrations (``loyaltykit/migrations``) must create exactly this
schema; ``tests/storage/test_migrations.py`` checks it with ``compare_metadata``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from loyaltykit._values import json_bytes
from loyaltykit.sql.outbox_key import OUTBOX_KEY, outbox_key_function

__all__ = [
    "ACCOUNT_COLUMNS",
    "Document",
    "UTCDateTime",
    "accounts",
    "code_counters",
    "hold_allocations",
    "holds",
    "idempotency_keys",
    "lookups",
    "lot_movements",
    "lots",
    "erasures",
    "member_ids",
    "members",
    "metadata",
    "notices",
    "orders",
    "outbox",
    "outbox_consumers",
    "postings",
    "program_versions",
    "programs",
    "referral_codes",
    "referral_marks",
    "referrals",
    "reward_counters",
    "rule_usage",
    "tier_buckets",
    "tier_history",
    "tier_notices",
    "tier_states",
    "transactions",
    "vouchers",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


#: distinct stored instants :class:`UTCDateTime` keeps converted (per dialect)
_MEMO_INSTANTS = 4096


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    SQLite keeps no offset (the value is stored as naive UTC text, which sorts in time
    order); PostgreSQL's ``timestamptz`` returns the session's zone, converted here.
    Naive datetimes are refused on the way in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True
    #: equal instants bind to the same parameter (both as UTC; a naive value equals no
    #: aware one and is refused): :func:`~loyaltykit.sql._many.execute_many` converts
    #: each distinct value of a column once
    memo_binds = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is dt.UTC:
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite (text parsed by a regular expression, then given its zone: some
        5 us a value) each distinct stored text is converted once and its (immutable)
        datetime reused: the rows a batch reads share most of their instants (due
        work reads three per lot). Elsewhere the driver returns datetimes."""
        process = super().result_processor(dialect, coltype)
        if process is None or dialect.name != "sqlite":
            return process
        memo: dict[Any, dt.datetime | None] = {}

        def memoized(value: Any) -> dt.datetime | None:
            found = memo.get(value)
            if found is None:
                found = process(value)
                if found is not None:  # a NULL is not kept (None is "not found")
                    if len(memo) >= _MEMO_INSTANTS:
                        memo.clear()
                    memo[value] = found
            return found

        return memoized


class Document(sa.TypeDecorator[Any]):
    """A JSON document column (``JSON`` in the schema, as before).

    On SQLite, where the document is text that Python encodes, it is encoded with
    orjson: an order's row holds its lines and its rule-by-rule breakdown, and the
    standard library's encoder took ~20 us an order for them, a tenth of what
    recording an order costs beyond a plain earn. What orjson refuses (integers beyond
    64 bits, non-string keys, lone surrogates) falls back to the standard encoder, so
    every value stored before still is. Python ``None`` is stored as JSON ``null``,
    as SQLAlchemy's JSON type does. Reading stays with the standard decoder (exact for
    every integer); other databases keep SQLAlchemy's JSON handling.
    """

    impl = sa.JSON()
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _encode_document


#: the text of an empty document of each type: a batch's order rows carry several (no
#: returns, no payments, no first breakdown yet), written without a call of the encoder
_EMPTY_DOCUMENTS: dict[type, str] = {dict: "{}", list: "[]", type(None): "null"}


def _encode_document(value: Any) -> str:
    if not value:
        empty = _EMPTY_DOCUMENTS.get(type(value))
        if empty is not None:
            return empty
    try:  # orjson straight away (json_bytes' own frame cost a tenth of a document)
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses: json_bytes' standard encoder writes it
        return json_bytes(value).decode()


_ID = sa.String(64)  # program ids are at most 64 characters
_MEMBER = sa.String(128)  # the facade's MAX_MEMBER_ID_LENGTH
_WALLET = sa.String(32)
_KEY = sa.String(200)  # MAX_KEY_LENGTH
_ENUM = sa.String(32)
_ORDER = sa.String(128)  # order ids follow the member id's rules
_SOURCE = sa.String(200)  # "order:<order id>" or "event:<event id>"
_RULE = sa.String(128)  # earning rule ids and groups
_DECIMAL = sa.Text()  # str(Decimal): exact, converted in Python
_POINTS = sa.BigInteger()
_TS = UTCDateTime()
_TIER = sa.String(32)  # tier names (lower-case identifiers up to 32 characters)
_RANK = sa.Integer()  # a tier's position on the ladder (0: the base tier)


def _member_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["program_id", "member_id"], ["lk_members.program_id", "lk_members.member_id"]
    )


def _row_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    """A foreign key to a member's row of ``table`` by its id: ``(column, member_id)``
    to ``(id, member_id)``, so it joins two tables distributed by the member on the
    member (colocated, DESIGN §10)."""
    return sa.ForeignKeyConstraint([column, "member_id"], [f"{table}.id", f"{table}.member_id"])


programs = sa.Table(
    "lk_programs",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("definition", Document(), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

program_versions = sa.Table(
    "lk_program_versions",
    metadata,
    sa.Column("program_id", _ID, sa.ForeignKey("lk_programs.id"), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("effective_from", _TS, nullable=True),
    sa.Column("definition", Document(), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

members = sa.Table(
    "lk_members",
    metadata,
    sa.Column("program_id", _ID, sa.ForeignKey("lk_programs.id"), primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("enrolled_at", _TS, nullable=False),
    sa.Column("attributes", Document(), nullable=False),
)

# the shop's member id, kept once: every other row carries the member key
member_ids = sa.Table(
    "lk_member_ids",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("external_id", _MEMBER, primary_key=True),
    sa.Column("member_id", _MEMBER, nullable=False),
    # distributed by the shop's id (DESIGN §10): no foreign key to the member's row on
    # another node; the key is drawn fresh, so one key never maps two shop ids
    sa.Index("ix_lk_member_ids_member", "program_id", "member_id"),
)

# one row per erased member: its key and when (nothing that identifies the person)
erasures = sa.Table(
    "lk_erasures",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("erased_at", _TS, nullable=False),
    _member_fk(),
)

#: The running-total columns of ``accounts``, one per :class:`~loyaltykit.Account`.
ACCOUNT_COLUMNS = (
    "available",
    "pending",
    "held",
    "debt",
    "issued",
    "redeemed",
    "expired",
    "adjustments",
    "transfers",
    "clawback_shortfall",
)

accounts = sa.Table(
    "lk_accounts",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("wallet", _WALLET, primary_key=True),
    *(sa.Column(name, _POINTS, nullable=False) for name in ACCOUNT_COLUMNS),
    sa.Column("next_due_at", _TS, nullable=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
    # opaque JSON text the service keeps on the default wallet's row (earning counters)
    sa.Column("activity", sa.Text(), nullable=True),
    _member_fk(),
    sa.CheckConstraint("held >= 0", name="held_not_negative"),
    sa.CheckConstraint("pending >= 0", name="pending_not_negative"),
    sa.CheckConstraint("debt <= 0", name="debt_not_positive"),
    sa.Index("ix_lk_accounts_due", "program_id", "next_due_at"),
)

transactions = sa.Table(
    "lk_transactions",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("wallet", _WALLET, nullable=False),
    sa.Column("kind", _ENUM, nullable=False),
    sa.Column("occurred_at", _TS, nullable=False),
    sa.Column("recorded_at", _TS, nullable=False),
    sa.Column("idempotency_key", _KEY, nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("metadata", Document(), nullable=False),
    sa.Column("reverses_id", sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint("id", "member_id"),
    _member_fk(),
    # a reversal is posted in the member's own ledger (each half of a transfer in its own)
    sa.UniqueConstraint("reverses_id", "member_id"),
    sa.Index(
        "ix_lk_transactions_member_time", "program_id", "member_id", "wallet", "occurred_at", "id"
    ),
)

postings = sa.Table(
    "lk_postings",
    metadata,
    sa.Column("transaction_id", sa.Uuid(), nullable=False),
    sa.Column("account", _ENUM, nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("wallet", _WALLET, nullable=False),
    sa.Column("amount", _POINTS, nullable=False),
    sa.Column("position", sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint("transaction_id", "member_id", "account"),
    _row_fk("transaction_id", "lk_transactions"),
    sa.CheckConstraint("amount <> 0", name="amount_not_zero"),
)

lots = sa.Table(
    "lk_lots",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("wallet", _WALLET, nullable=False),
    sa.Column("transaction_id", sa.Uuid(), nullable=False),
    sa.Column("amount", _POINTS, nullable=False),
    sa.Column("remaining", _POINTS, nullable=False),
    sa.Column("held", _POINTS, nullable=False),
    sa.Column("earned_at", _TS, nullable=False),
    sa.Column("activates_at", _TS, nullable=True),
    sa.Column("expires_at", _TS, nullable=True),
    sa.Column("pending", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("id", "member_id"),
    _member_fk(),
    _row_fk("transaction_id", "lk_transactions"),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint("0 <= held AND held <= remaining AND remaining <= amount", name="bounds"),
    sa.Index("ix_lk_lots_member_open", "program_id", "member_id", "wallet", "remaining"),
    # "points expiring soon" notices: lots by expiry, each member's lots of one expiry
    # together (partial: lots that never expire cost nothing)
    sa.Index("ix_lk_lots_expiring", "program_id", "expires_at", "member_id", "wallet", "id",
             postgresql_where=sa.text("expires_at IS NOT NULL"),
             sqlite_where=sa.text("expires_at IS NOT NULL")),
    # the lot an earn made; deleting a transaction checks its foreign key here
    sa.Index("ix_lk_lots_transaction", "transaction_id", "member_id"),
)

lot_movements = sa.Table(
    "lk_lot_movements",
    metadata,
    sa.Column("transaction_id", sa.Uuid(), nullable=False),
    sa.Column("lot_id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("delta", _POINTS, nullable=False),
    sa.Column("position", sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint("transaction_id", "member_id", "lot_id"),
    _row_fk("transaction_id", "lk_transactions"),
    _row_fk("lot_id", "lk_lots"),
    sa.CheckConstraint("delta <> 0", name="delta_not_zero"),
    # which transactions moved a lot; deleting a lot checks its foreign key here (the
    # primary key leads with the transaction)
    sa.Index("ix_lk_lot_movements_lot", "lot_id", "member_id"),
)

holds = sa.Table(
    "lk_holds",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("wallet", _WALLET, nullable=False),
    sa.Column("points", _POINTS, nullable=False),
    sa.Column("status", _ENUM, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
    sa.Column("transaction_id", sa.Uuid(), nullable=False),
    sa.Column("captured", _POINTS, nullable=False),
    sa.Column("resolved_by", sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint("id", "member_id"),
    _member_fk(),
    _row_fk("transaction_id", "lk_transactions"),
    sa.CheckConstraint("points > 0", name="points_positive"),
    sa.CheckConstraint("captured >= 0 AND captured <= points", name="captured_bounds"),
    sa.Index("ix_lk_holds_member_status", "program_id", "member_id", "wallet", "status"),
    sa.Index("ix_lk_holds_transaction", "transaction_id", "member_id"),  # the key's check
)

hold_allocations = sa.Table(
    "lk_hold_allocations",
    metadata,
    sa.Column("hold_id", sa.Uuid(), nullable=False),
    sa.Column("lot_id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("points", _POINTS, nullable=False),
    sa.Column("position", sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint("hold_id", "member_id", "lot_id"),
    _row_fk("hold_id", "lk_holds"),
    _row_fk("lot_id", "lk_lots"),
    sa.CheckConstraint("points > 0", name="points_positive"),
    # the holds reserving a lot; deleting a lot checks its foreign key here
    sa.Index("ix_lk_hold_allocations_lot", "lot_id", "member_id"),
)

idempotency_keys = sa.Table(
    "lk_idempotency_keys",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("member_id", _MEMBER, nullable=True),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("result", sa.Text(), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

# What must be unique in a program although it belongs to one member's rows: an order
# id, a voucher code, a referral code. One row per value, mapped to its member: the
# primary key is the uniqueness rule (a value written twice is a unique violation), and
# a call that names only the value finds its member here. Distributed by the value on a
# distributed engine (DESIGN §10), so the check is one node's; the member's rows are on
# the member's node.
lookups = sa.Table(
    "lk_lookups",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", _KEY, primary_key=True),
    sa.Column("member_id", _MEMBER, nullable=False),
)

orders = sa.Table(
    "lk_orders",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("order_id", _ORDER, primary_key=True),
    # in the key so the order lives with its member (the order id's uniqueness in the
    # program is lk_lookups' rule)
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("placed_at", _TS, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("order", Document(), nullable=False),
    sa.Column("returned", Document(), nullable=False),
    sa.Column("status", _ENUM, nullable=False),
    sa.Column("points", _POINTS, nullable=False),
    sa.Column("evaluation", Document(), nullable=False),
    sa.Column("earn_id", sa.Uuid(), nullable=True),
    sa.Column("payments", Document(), nullable=False),  # transaction ids as strings
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    # the breakdown as first recorded, kept by the first return that changes it
    sa.Column("recorded_evaluation", Document(), nullable=True),
    # set when the order is its default key's idempotency record ("order:<id>")
    sa.Column("fingerprint", sa.Text(), nullable=True),
    sa.Column("result", sa.Text(), nullable=True),
    # what the order counts for in reports, kept by every write: its currency, and its
    # net goods after the returns so far (shipping excluded) as exact decimal text;
    # NULL when it does not count (cancelled, or everything returned; and both NULL for
    # a document that is no order, which only rows written by hand have)
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("net_amount", _DECIMAL, nullable=True),
    _member_fk(),
    sa.CheckConstraint("status IN ('open', 'cancelled')", name="status"),
    sa.Index("ix_lk_orders_member_status", "program_id", "member_id", "status"),
    sa.Index("ix_lk_orders_member_placed", "program_id", "member_id", "placed_at", "order_id"),
)

rule_usage = sa.Table(
    "lk_rule_usage",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("source", _SOURCE, primary_key=True),
    sa.Column("rule_id", _RULE, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("rule_group", _RULE, nullable=True),
    sa.Column("occurred_at", _TS, nullable=False),
    sa.Column("points", _DECIMAL, nullable=False),
    sa.Column("stamps", sa.Integer(), nullable=False),
    _member_fk(),
    sa.Index("ix_lk_rule_usage_member_rule", "program_id", "member_id", "rule_id", "occurred_at"),
    sa.Index(
        "ix_lk_rule_usage_member_group", "program_id", "member_id", "rule_group", "occurred_at"
    ),
)


# -- tiers ---------------------------------------------------------------------------------

tier_states = sa.Table(
    "lk_tier_states",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("rank", _RANK, nullable=False),
    sa.Column("attained_at", _TS, nullable=True),
    sa.Column("protected_until", _TS, nullable=True),
    sa.Column("window_start", _TS, nullable=False),
    sa.Column("next_evaluation", _TS, nullable=True),  # NULL: a lifetime window
    sa.Column("carried", _RANK, nullable=False),
    sa.Column("carried_until", _TS, nullable=True),
    sa.Column("carried_floor", _RANK, nullable=False),
    sa.Column("floor", _RANK, nullable=False),
    sa.Column("anchor", sa.Date(), nullable=False),  # enrolment date, program's zone
    sa.Column("manual", _RANK, nullable=True),
    sa.Column("manual_until", _TS, nullable=True),
    sa.Column("manual_reason", sa.Text(), nullable=False),
    sa.Column("noticed_for", _TS, nullable=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
    _member_fk(),
    # the states waiting for an evaluation, in the member order batches take them in
    sa.Index("ix_lk_tier_states_due", "program_id", "next_evaluation", "member_id"),
)

# the tier metric per member and period (a year, a membership year, a month; the epoch
# for a lifetime window), in metric units
tier_buckets = sa.Table(
    "lk_tier_buckets",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("period_start", _TS, primary_key=True),
    sa.Column("value", _POINTS, nullable=False),
    _member_fk(),
)

# ``id`` orders a member's history lines as written: a time-ordered UUID the library
# draws (a member's lines are written under the lock of its tier state, one after the
# other), so appending a line reads nothing first and no database sequence numbers it
tier_history = sa.Table(
    "lk_tier_history",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("program_id", _ID, nullable=False),
    sa.Column("member_id", _MEMBER, nullable=False),
    sa.Column("at", _TS, nullable=False),
    sa.Column("from_tier", _TIER, nullable=False),
    sa.Column("to_tier", _TIER, nullable=False),
    sa.Column("reason", _ENUM, nullable=False),
    sa.Column("metric", _POINTS, nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("recorded_at", _TS, nullable=True),
    sa.PrimaryKeyConstraint("id", "member_id"),
    _member_fk(),
    sa.Index("ix_lk_tier_history_member", "program_id", "member_id", "id"),
)

tier_notices = sa.Table(
    "lk_tier_notices",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("evaluation_at", _TS, primary_key=True),
    sa.Column("tier", _TIER, nullable=False),
    sa.Column("would_be", _TIER, nullable=False),
    sa.Column("metric", _POINTS, nullable=False),
    sa.Column("needed", _POINTS, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    _member_fk(),
    sa.Index("ix_lk_tier_notices_created", "program_id", "created_at"),
    # the notices of evaluations still to come ("tier.will_drop" events)
    sa.Index("ix_lk_tier_notices_evaluation", "program_id", "evaluation_at", "member_id"),
)


# -- referrals -----------------------------------------------------------------------------

_CODE = sa.String(48)  # a stored code: prefix (up to 8), symbols (up to 32), check

# the primary key is the storage's uniqueness rule for codes: a code drawn twice is a
# unique violation, and the facade draws another
referral_codes = sa.Table(
    "lk_referral_codes",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("code", _CODE, primary_key=True),
    sa.Column("shown", sa.String(64), nullable=False),
    sa.Column("member_id", _MEMBER, primary_key=True),  # the code's owner
    sa.Column("source", _ENUM, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("expires_at", _TS, nullable=True),
    sa.Column("max_uses", sa.Integer(), nullable=True),
    sa.Column("uses", sa.Integer(), nullable=False),
    _member_fk(),
    sa.Index("ix_lk_referral_codes_member", "program_id", "member_id"),
)

# how many codes each program has issued: the code spec's planned volume is checked on
# this one row (a guarded increment in the unit of work that inserts the code), never
# by counting the codes. Program-level, like stock counters: issuers of one program
# queue on it from the increment to their commit; no other write touches it.
code_counters = sa.Table(
    "lk_code_counters",
    metadata,
    sa.Column("program_id", _ID, sa.ForeignKey("lk_programs.id"), primary_key=True),
    sa.Column("issued", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("issued >= 0", name="issued_not_negative"),
)

# one row per referee (the primary key: at most one referrer each)
referrals = sa.Table(
    "lk_referrals",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("referee_id", _MEMBER, primary_key=True),
    sa.Column("referrer_id", _MEMBER, nullable=False),
    sa.Column("code", _CODE, nullable=False),
    sa.Column("source", _ENUM, nullable=False),
    sa.Column("status", _ENUM, nullable=False),
    sa.Column("attributed_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Column("reasons", Document(), nullable=False),
    sa.Column("campaign", sa.String(64), nullable=True),
    sa.Column("order_id", _ORDER, nullable=True),
    sa.Column("qualified_at", _TS, nullable=True),
    sa.Column("settles_at", _TS, nullable=True),
    sa.Column("referrer_points", _POINTS, nullable=False),
    sa.Column("referee_points", _POINTS, nullable=False),
    sa.Column("referrer_tx", sa.Uuid(), nullable=True),
    sa.Column("referee_tx", sa.Uuid(), nullable=True),
    sa.Column("decided_at", _TS, nullable=True),
    sa.ForeignKeyConstraint(["program_id", "referee_id"],
                            ["lk_members.program_id", "lk_members.member_id"]),
    # no foreign key to the code: it lives with its owner, the referrer, on another node
    sa.Index("ix_lk_referrals_referrer", "program_id", "referrer_id", "attributed_at"),
    sa.Index("ix_lk_referrals_code", "program_id", "code"),  # the foreign key's check
)

# keyed hashes of members' e-mails and fingerprints, never the values
referral_marks = sa.Table(
    "lk_referral_marks",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    _member_fk(),
    sa.Index("ix_lk_referral_marks_digest", "program_id", "kind", "digest"),
)


# -- rewards -------------------------------------------------------------------------------

# one row per voucher; the unique code is the storage's uniqueness rule for voucher codes
# (a code drawn twice is a unique violation, and the facade draws another)
vouchers = sa.Table(
    "lk_vouchers",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("code", _CODE, nullable=False),
    sa.Column("shown", sa.String(64), nullable=False),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("reward_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("wallet", _WALLET, nullable=False),
    sa.Column("cost", _POINTS, nullable=False),
    sa.Column("transaction_id", sa.Uuid(), nullable=False),
    sa.Column("status", _ENUM, nullable=False),
    sa.Column("issued_at", _TS, nullable=False),
    sa.Column("expires_at", _TS, nullable=True),
    sa.Column("used_at", _TS, nullable=True),
    sa.Column("order_id", _ORDER, nullable=True),
    sa.Column("cancelled_at", _TS, nullable=True),
    sa.Column("expired_at", _TS, nullable=True),
    sa.Column("refund_id", sa.Uuid(), nullable=True),
    _member_fk(),
    _row_fk("transaction_id", "lk_transactions"),
    # a code's uniqueness in the program is lk_lookups' rule
    sa.Index("ix_lk_vouchers_code", "program_id", "code"),
    sa.CheckConstraint("status IN ('issued', 'used', 'cancelled', 'expired')", name="status"),
    sa.Index("ix_lk_vouchers_member", "program_id", "member_id", "reward_id", "issued_at"),
    # the issued vouchers due work expires, soonest first
    sa.Index("ix_lk_vouchers_due", "program_id", "status", "expires_at"),
    sa.Index("ix_lk_vouchers_transaction", "transaction_id", "member_id"),  # the key's check
)

# one row per reward: the vouchers that took an item of stock (issued and used) and the
# redemptions that count against its global limit (all but cancelled). Redemptions take
# it with one guarded UPDATE; like a code counter, a popular reward's row is the one
# program-level hot row (DESIGN §10); different rewards never share one.
reward_counters = sa.Table(
    "lk_reward_counters",
    metadata,
    sa.Column("program_id", _ID, sa.ForeignKey("lk_programs.id"), primary_key=True),
    sa.Column("reward_id", sa.String(64), primary_key=True),
    sa.Column("held", sa.BigInteger(), nullable=False),
    sa.Column("redeemed", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("held >= 0", name="held_not_negative"),
    sa.CheckConstraint("redeemed >= held", name="redeemed_covers_held"),
)


# -- events (the outbox) -------------------------------------------------------------------

# one row per event, read per stream in (tx, seq, id) order (see loyaltykit._outbox and
# docs/events.md). The primary key leads with the member (a distributed engine places
# a member's events with the member's other rows); nothing is numbered by a database
# sequence:
# * on SQLite (writers take turns) ``stream`` and ``tx`` are 0 and the INSERT gives
#   ``seq`` one more than the program's largest (never reused: pruning keeps each
#   program's last event), so seq grows in commit order;
# * on PostgreSQL the trigger (:mod:`loyaltykit.sql.outbox_key`) gives each row its stream (the
#   server's system identifier), its ordering key ``tx`` (the writer's transaction id,
#   or the member's last key if that is higher) and ``seq``, its number within the key
#   (a transaction numbers its own events in the order it appends them; an event that
#   takes a member's higher key comes after every event of that key); ``id`` breaks
#   ties between two such events appended side by side.
# No foreign key: an insert takes no lock on a member or program row.
outbox = sa.Table(
    "lk_outbox",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("stream", sa.BigInteger(), nullable=False),
    sa.Column("tx", sa.BigInteger(), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("occurred_at", _TS, nullable=False),
    sa.Column("recorded_at", _TS, nullable=False),
    sa.Column("payload", Document(), nullable=False),
    # the readers' order, per stream
    sa.Index("ix_lk_outbox_position", "program_id", "stream", "tx", "seq", "id"),
    # a member's events in order: the trigger's "the member's last key"; erasure; export
    sa.Index("ix_lk_outbox_member", "program_id", "member_id", "stream", "tx", "seq"),
)

for _ddl in (outbox_key_function(), OUTBOX_KEY):  # create_schema's tables too
    sa.event.listen(outbox, "after_create",
                    sa.DDL(_ddl).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]

# one row per named consumer and stream: the position it acknowledged last there
outbox_consumers = sa.Table(
    "lk_outbox_consumers",
    metadata,
    sa.Column("program_id", _ID, sa.ForeignKey("lk_programs.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("stream", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("tx", sa.BigInteger(), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("event", sa.Uuid(), nullable=False),
    sa.Column("acked_at", _TS, nullable=False),
)


# -- notices (due work's "points expiring", "voucher expiring", "tier will drop") ----------

# one row per notice emitted: the primary key is what makes each subject's notice
# exactly once (claimed with INSERT .. ON CONFLICT DO NOTHING RETURNING, in the unit of
# work that appends its event). ``subject`` is a lot or voucher id, or an evaluation
# instant; nothing in a row identifies a person beyond the member key. No foreign key,
# like the outbox: a claim takes no lock on a member or program row.
notices = sa.Table(
    "lk_notices",
    metadata,
    sa.Column("program_id", _ID, primary_key=True),
    sa.Column("type", sa.String(64), primary_key=True),
    sa.Column("member_id", _MEMBER, primary_key=True),
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("emitted_at", _TS, nullable=False),
)
