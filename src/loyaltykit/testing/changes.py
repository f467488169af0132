"""Writing stores directly in tests: every change part in one value, written in the
pipeline's order. A test that prepares stored state (or a backend's own tests) uses it
where the library itself goes through :class:`~loyaltykit._pipeline.WritePipeline`."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from loyaltykit._model import (
    AccountState,
    Hold,
    IdempotencyRecord,
    Lot,
    Member,
    OrderRecord,
    RuleUsage,
    Transaction,
)
from loyaltykit._referrals import Referral, ReferralCode, ReferralMark
from loyaltykit._tiers import TierChange, TierState
from loyaltykit.storage import (
    LedgerChanges,
    OrderChanges,
    ReferralChanges,
    TierChanges,
    UnitOfWork,
)

__all__ = ["ChangeSet", "write_changes"]


@attrs.define
class ChangeSet:
    """Every store's change fields at once (see each part for what a field means)."""

    transactions: list[Transaction] = attrs.field(factory=list)
    lots: dict[uuid.UUID, Lot] = attrs.field(factory=dict)
    new_lots: set[uuid.UUID] = attrs.field(factory=set)
    holds: dict[uuid.UUID, Hold] = attrs.field(factory=dict)
    new_holds: set[uuid.UUID] = attrs.field(factory=set)
    accounts: dict[tuple[str, str], AccountState] = attrs.field(factory=dict)
    new_accounts: set[tuple[str, str]] = attrs.field(factory=set)
    members: list[Member] = attrs.field(factory=list)
    idempotency: list[IdempotencyRecord] = attrs.field(factory=list)
    orders: dict[str, OrderRecord] = attrs.field(factory=dict)
    new_orders: set[str] = attrs.field(factory=set)
    usage: list[RuleUsage] = attrs.field(factory=list)
    tier_states: dict[str, TierState] = attrs.field(factory=dict)
    new_tier_states: set[str] = attrs.field(factory=set)
    tier_buckets: dict[tuple[str, dt.datetime], int] = attrs.field(factory=dict)
    tier_history: list[TierChange] = attrs.field(factory=list)
    referral_codes: list[ReferralCode] = attrs.field(factory=list)
    referrals: dict[str, Referral] = attrs.field(factory=dict)
    new_referrals: set[str] = attrs.field(factory=set)
    referral_marks: list[ReferralMark] = attrs.field(factory=list)


def write_changes(uow: UnitOfWork, changes: ChangeSet) -> None:
    """Write ``changes`` store by store, as the write pipeline does: the keys' records,
    then the ledger's part, then orders, referrals and tiers (empty parts skipped)."""
    if changes.idempotency:
        uow.keys.write(changes.idempotency)
    parts = (
        LedgerChanges(changes.transactions, changes.lots, changes.new_lots, changes.holds,
                      changes.new_holds, changes.accounts, changes.new_accounts,
                      changes.members),
        OrderChanges(changes.orders, changes.new_orders, changes.usage),
        ReferralChanges(changes.referral_codes, changes.referrals, changes.new_referrals,
                        changes.referral_marks),
        TierChanges(changes.tier_states, changes.new_tier_states, changes.tier_buckets,
                    changes.tier_history),
    )
    for part in parts:
        if not part.empty:
            part.write_to(uow)
