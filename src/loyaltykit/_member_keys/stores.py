"""The capability stores of a unit of work, translating: shop ids in, member keys
to the wrapped store, shop ids back out (one class per store Protocol)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from loyaltykit._copy import copy_with
from loyaltykit._member_keys.names import Names
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    IdempotencyRecord,
    Lot,
    Member,
    MemberState,
    OrderRecord,
    RuleUsage,
    Transaction,
)
from loyaltykit._notices import NoticeClaim
from loyaltykit._outbox import EventConsumer, EventPosition, OutboxEvent
from loyaltykit._referrals import Referral, ReferralCode, ReferralMark
from loyaltykit._rewards import Voucher
from loyaltykit._tiers import TierChange, TierChanged, TierJob, TierNotice, TierState
from loyaltykit.storage import (
    KeyStore,
    LedgerChanges,
    LedgerStore,
    MemberKeyStore,
    NoticeStore,
    OrderChanges,
    OrderStore,
    OutboxChanges,
    OutboxStore,
    ReferralChanges,
    ReferralStore,
    RewardChanges,
    RewardStore,
    TierChanges,
    TierStore,
)
from loyaltykit.storage.keyed_writes import KeyedWrites
from loyaltykit.storage.ledger_due import DueChanges
from loyaltykit.storage.ledger_due_set import DueSet, DueSetStore
from loyaltykit.storage.members import MemberKeyChanges
from loyaltykit.storage.tier_due_set import TierOutbox, TierOutboxStore

__all__ = ["PAYLOAD_MEMBER_FIELDS", "KeyedKeyStore", "KeyedLedgerStore", "KeyedNoticeStore",
           "KeyedOrderStore", "KeyedOutboxStore", "KeyedReferralStore", "KeyedRewardStore",
           "KeyedTierStore"]

#: Fields of an event's payload (top level) that name another member: stored as keys
PAYLOAD_MEMBER_FIELDS = ("counterpart_member_id", "referrer_id", "referee_id")
_set = object.__setattr__


class KeyedKeyStore:
    """Idempotency records, translated."""

    def __init__(self, inner: KeyStore, names: Names) -> None:
        self.inner, self.n = inner, names

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        return self.n.one(self.inner.get_idempotency(key))

    def erase(self, member_id: str) -> None:
        self.inner.erase(self.n.key(member_id))

    def rename(self, keys: Sequence[str], old: str, new: str) -> None:
        self.inner.rename(keys, old, new)

    def write(self, records: Sequence[IdempotencyRecord]) -> None:
        # the keys looked up once per member (a batch's thousands of enrolments each
        # keep a record), drawn in the order the records first name them
        keys = self.n.write_keys(r.member_id for r in records if r.member_id is not None)
        self.inner.write([r if r.member_id is None
                          else copy_with(r, {"member_id": keys[r.member_id]})
                          for r in records])


class KeyedLedgerStore:
    """The ledger, translated."""

    def __init__(self, inner: LedgerStore, names: Names, members: MemberKeyStore) -> None:
        self.inner, self.n, self.members = inner, names, members
        # a store whose reads build their rows anew (SQL) has them named in place
        self._fresh = getattr(inner, "fresh_reads", False) is True
        # ... and one that builds rows of its own to write looks each row's key up
        self._keyed = inner.write_keyed if isinstance(inner, KeyedWrites) else None

    def get_member(self, member_id: str) -> Member | None:
        return self.n.one(self.inner.get_member(self.n.key(member_id)))

    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        found = self.inner.lock_accounts(wallet, self.n.keys(member_ids))
        return {s.member_id: s for s in self.n.shown(list(found.values()), fresh=self._fresh)}

    def get_account(self, wallet: str, member_id: str) -> AccountState | None:
        return self.n.one(self.inner.get_account(wallet, self.n.key(member_id)))

    def load_member(self, member_id: str, wallets: Sequence[str], at: dt.datetime, *,
                    lock: bool) -> MemberState | None:
        state = self.inner.load_member(self.n.key(member_id), wallets, at, lock=lock)
        if state is None:
            return None
        accounts = dict(zip(state.accounts, self.n.shown(list(state.accounts.values())),
                            strict=True))
        return MemberState(self.n.shown([state.member])[0], accounts, state.version)

    def load_members(self, member_ids: Sequence[str], wallets: Sequence[str]
                     ) -> dict[str, tuple[Member, dict[str, AccountState]]]:
        keys = dict(zip(self.n.keys(member_ids), member_ids, strict=True))
        found = self.inner.load_members(list(keys), wallets)
        members = self.n.shown([member for member, _ in found.values()])
        out: dict[str, tuple[Member, dict[str, AccountState]]] = {}
        for member, (key, (_, accounts)) in zip(members, found.items(), strict=True):
            shown = self.n.shown(list(accounts.values()))
            out[keys[key]] = (member, dict(zip(accounts, shown, strict=True)))
        return out

    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        return self.n.shown(self.inner.load_lots(wallet, self.n.keys(member_ids)),
                            fresh=self._fresh)

    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID], *,
                        member_id: str) -> list[Lot]:
        return self.n.shown(self.inner.load_lots_by_id(lot_ids,
                                                       member_id=self.n.key(member_id)),
                            fresh=self._fresh)

    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        return self.n.shown(self.inner.load_open_holds(wallet, self.n.keys(member_ids)),
                            fresh=self._fresh)

    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        found = self.inner.get_hold(hold_id)
        return None if found is None else self.n.shown([found], fresh=self._fresh)[0]

    def get_transaction(self, transaction_id: uuid.UUID, *,
                        member_id: str | None = None) -> Transaction | None:
        key = None if member_id is None else self.n.key(member_id)
        return self.n.one(self.inner.get_transaction(transaction_id, member_id=key))

    def find_reversal(self, transaction_id: uuid.UUID, *,
                      member_id: str | None = None) -> uuid.UUID | None:
        key = None if member_id is None else self.n.key(member_id)
        return self.inner.find_reversal(transaction_id, member_id=key)

    def find_refunds(self, wallet: str, member_id: str,
                     transaction_id: uuid.UUID) -> list[uuid.UUID]:
        return self.inner.find_refunds(wallet, self.n.key(member_id), transaction_id)

    def due_accounts(self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
                     ) -> list[tuple[str, str]]:
        cursor = None if after is None else (self.n.key(after[0]), after[1])
        found = self.inner.due_accounts(at, after=cursor, limit=limit)
        self.n.learn(k for k, _ in found)
        return [(self.n.id(k), wallet) for k, wallet in found]

    def due_bounds(self, at: dt.datetime, every: int) -> list[tuple[str, str]]:
        return self.inner.due_bounds(at, every)  # cursors: keys pass through

    def due_between(
        self, at: dt.datetime, *, after: tuple[str, str] | None, upto: tuple[str, str],
        limit: int,
    ) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
        found, cursor = self.inner.due_between(at, after=after, upto=upto, limit=limit)
        self.n.learn(k for k, _ in found)
        return [(self.n.id(k), wallet) for k, wallet in found], cursor

    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        return self.inner.next_expiring(wallet, self.n.key(member_id))

    def expiring_lots(
        self, start: dt.datetime, end: dt.datetime, *,
        after: tuple[dt.datetime, str, str, uuid.UUID] | None, limit: int
    ) -> list[Lot]:
        cursor = None if after is None else (after[0], self.n.key(after[1]), after[2],
                                             after[3])
        return self.n.shown(self.inner.expiring_lots(start, end, after=cursor, limit=limit))

    def sums_as_of(self, wallet: str, member_id: str, at: dt.datetime) -> dict[Account, int]:
        return self.inner.sums_as_of(wallet, self.n.key(member_id), at)

    def lots_as_of(self, wallet: str, member_id: str, at: dt.datetime
                   ) -> list[tuple[Lot, int]]:
        found = self.inner.lots_as_of(wallet, self.n.key(member_id), at)
        lots = self.n.shown([lot for lot, _ in found])
        return [(lot, left) for lot, (_, left) in zip(lots, found, strict=True)]

    def statement(self, wallet: str, member_id: str, *, limit: int,
                  before: tuple[dt.datetime, uuid.UUID] | None
                  ) -> tuple[list[Transaction], int]:
        txs, total = self.inner.statement(wallet, self.n.key(member_id), limit=limit,
                                          before=before)
        return self.n.shown(txs), total

    def erase(self, member_id: str) -> None:
        self.inner.erase(self.n.key(member_id))

    def rename_counterpart(self, member_id: str, name: str) -> list[str]:
        return self.inner.rename_counterpart(self.n.key(member_id), name)

    def write(self, changes: LedgerChanges) -> None:
        n = self.n
        if self._keyed is not None:
            self._write_keyed(self._keyed, changes)
            return
        members = [n.stored(m) for m in changes.members]
        accounts = {(n.write_key(m), w): n.stored(s) for (m, w), s in changes.accounts.items()}
        self.inner.write(LedgerChanges(
            transactions=[n.stored(t) for t in changes.transactions],
            lots={i: n.stored(lot) for i, lot in changes.lots.items()},
            new_lots=changes.new_lots,
            holds={i: n.stored(h) for i, h in changes.holds.items()},
            new_holds=changes.new_holds,
            accounts=accounts,
            new_accounts={(n.write_key(m), w) for m, w in changes.new_accounts},
            members=members,
        ))
        if members:
            self._added({m.member_id for m in members})

    def _write_keyed(self, write: Callable[[LedgerChanges, Mapping[str, str]], None],
                     changes: LedgerChanges) -> None:
        """The changes as they are, with the key of each member they name (drawn in
        the order the copies below would draw them: members, accounts, transactions,
        lots, holds): no row copied (a batch of 5000 orders wrote some 25,000 copies)."""
        keys = self.n.write_keys(itertools.chain(
            (m.member_id for m in changes.members), (m for m, _ in changes.accounts),
            (t.member_id for t in changes.transactions),
            (lot.member_id for lot in changes.lots.values()),
            (h.member_id for h in changes.holds.values()),
            (m for m, _ in changes.new_accounts)))
        write(changes, keys)
        if changes.members:
            self._added({keys[m.member_id] for m in changes.members})

    def _added(self, ids: set[str]) -> None:
        """Write the keys drawn in this unit of work for the members just written
        (``ids``: their keys)."""
        n = self.n
        added = {m: k for m, k in n.added.items() if k in ids}
        self.members.write(MemberKeyChanges(added=added))
        for m in added:
            del n.added[m]

    def write_due(self, changes: DueChanges) -> None:
        # rows name members by their index in ``members``: only that list is translated
        self.inner.write_due(attrs.evolve(
            changes, members=[self.n.write_key(m) for m in changes.members]))

    def post_due_set(self, request: DueSet) -> dict[str, int] | None:
        # a store that cannot post a batch itself leaves it to the Python path
        if not isinstance(self.inner, DueSetStore):
            return None
        keys = self.n.keys([m for m, _ in request.wallets])
        return self.inner.post_due_set(attrs.evolve(request, wallets=[
            (k, w) for k, (_, w) in zip(keys, request.wallets, strict=True)]))


def _order_doc(doc: Mapping[str, Any], member_id: str) -> dict[str, Any]:
    return {**doc, "member_id": member_id} if "member_id" in doc else dict(doc)


class KeyedOrderStore:
    """Orders and rule usage, translated."""

    def __init__(self, inner: OrderStore, names: Names) -> None:
        self.inner, self.n = inner, names
        self._keyed = inner.write_keyed if isinstance(inner, KeyedWrites) else None

    def _shown(self, records: list[OrderRecord]) -> list[OrderRecord]:
        return [attrs.evolve(r, order=_order_doc(r.order, r.member_id))
                for r in self.n.shown(records)]

    def get_order(self, order_id: str) -> OrderRecord | None:
        found = self.inner.get_order(order_id)
        return None if found is None else self._shown([found])[0]

    def get_orders(self, order_ids: Sequence[str]) -> list[OrderRecord]:
        return self._shown(self.inner.get_orders(order_ids))

    def count_orders(self, member_id: str) -> int:
        return self.inner.count_orders(self.n.key(member_id))

    def load_orders(self, member_id: str) -> list[OrderRecord]:
        return self._shown(self.inner.load_orders(self.n.key(member_id)))

    def load_usage(self, member_id: str, *, rule_ids: Sequence[str] = (),
                   groups: Sequence[str] = (), since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> list[RuleUsage]:
        return self.n.shown(self.inner.load_usage(
            self.n.key(member_id), rule_ids=rule_ids, groups=groups, since=since,
            until=until))

    def erase(self, member_id: str, name: str) -> None:
        self.inner.erase(self.n.key(member_id), name)

    def write(self, changes: OrderChanges) -> None:
        # one copy per row, the key and the order document's member swapped together
        # (attrs.evolve ran the row's __init__ again: a stored row is taken as it is)
        write_key = self.n.write_key
        if self._keyed is not None:  # no copy: the store looks each row's key up
            self._keyed(changes, self.n.write_keys(itertools.chain(
                (r.member_id for r in changes.orders.values()),
                (u.member_id for u in changes.usage))))
            return
        orders = {}
        for order_id, record in changes.orders.items():
            key = write_key(record.member_id)
            orders[order_id] = copy_with(record, {
                "member_id": key, "order": _order_doc(record.order, key)})
        self.inner.write(OrderChanges(orders=orders, new_orders=changes.new_orders,
                                      usage=[self.n.stored(u) for u in changes.usage],
                                      net=changes.net))


class KeyedTierStore:
    """Tier states, history and notices, translated."""

    def __init__(self, inner: TierStore, names: Names) -> None:
        self.inner, self.n = inner, names
        # a store whose reads build their states anew (SQL) has them named in place
        self._fresh = getattr(inner, "fresh_reads", False) is True

    def get_tier_state(self, member_id: str) -> TierState | None:
        found = self.inner.get_tier_state(self.n.key(member_id))
        return None if found is None else self.n.shown([found], fresh=self._fresh)[0]

    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        return self.inner.tier_metric(self.n.key(member_id), start, end)

    def get_tier_states(self, member_ids: Sequence[str]) -> dict[str, TierState]:
        keys = dict(zip(self.n.keys(member_ids), member_ids, strict=True))
        found = self.inner.get_tier_states(list(keys))
        return {keys[k]: s for k, s in zip(
            found, self.n.shown(list(found.values()), fresh=self._fresh), strict=True)}

    def tier_buckets(self, member_ids: Sequence[str]) -> dict[str, dict[dt.datetime, int]]:
        keys = dict(zip(self.n.keys(member_ids), member_ids, strict=True))
        return {keys[k]: b for k, b in self.inner.tier_buckets(list(keys)).items()}

    def tier_history(self, member_id: str) -> list[TierChange]:
        return self.n.shown(self.inner.tier_history(self.n.key(member_id)))

    def tier_due(self, at: dt.datetime, *, by_anchor: bool
                 ) -> list[tuple[dt.datetime, dt.date | None]]:
        return self.inner.tier_due(at, by_anchor=by_anchor)

    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        return self.inner.tier_batch_end(job, noticed=noticed)  # a key: see module doc

    def evaluate_tiers(self, job: TierJob) -> tuple[int, list[TierChanged]]:
        done, changed = self.inner.evaluate_tiers(job)
        lines = self.n.shown([c.change for c in changed])
        # (copy_with, not attrs.evolve: one per member a due evaluation moves)
        return done, [copy_with(c, {"change": line}) for c, line in zip(changed, lines,
                                                                         strict=True)]

    def evaluate_tiers_recorded(self, job: TierJob, outbox: TierOutbox
                                ) -> tuple[int, int] | None:
        # a store that cannot append the events itself leaves them to the caller (its
        # rows carry keys already: the events are stored under them, as the outbox's
        # write would store them)
        if not isinstance(self.inner, TierOutboxStore):
            return None
        return self.inner.evaluate_tiers_recorded(job, outbox)

    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        return self.inner.record_tier_notices(job)

    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        return self.n.shown(self.inner.tier_notices(since=since, limit=limit))

    def upcoming_tier_notices(self, after: dt.datetime, *,
                              cursor: tuple[dt.datetime, str] | None, limit: int
                              ) -> list[TierNotice]:
        key = None if cursor is None else (cursor[0], self.n.key(cursor[1]))
        return self.n.shown(self.inner.upcoming_tier_notices(after, cursor=key,
                                                             limit=limit))

    def write(self, changes: TierChanges) -> None:
        n = self.n
        # each member's key once (a history import's batch: a state and a bucket or
        # more per member)
        keys = n.write_keys([*changes.tier_states, *(m for m, _ in changes.tier_buckets)])
        self.inner.write(TierChanges(
            # a state is written under its key, its own member_id unread (the stores'
            # contract): no copy of each state to put the key in it
            tier_states={keys[m]: s for m, s in changes.tier_states.items()},
            new_tier_states={keys.get(m) or n.write_key(m) for m in changes.new_tier_states},
            tier_buckets={(keys[m], p): v for (m, p), v in changes.tier_buckets.items()},
            tier_history=[n.stored(h) for h in changes.tier_history],
            rewrites={n.write_key(m): c for m, c in changes.rewrites.items()},
        ))


class KeyedReferralStore:
    """Codes, referrals and marks, translated."""

    def __init__(self, inner: ReferralStore, names: Names) -> None:
        self.inner, self.n = inner, names

    def get_code(self, code: str) -> ReferralCode | None:
        return self.n.one(self.inner.get_code(code))

    def member_codes(self, member_id: str) -> list[ReferralCode]:
        return self.n.shown(self.inner.member_codes(self.n.key(member_id)))

    def claim_code(self, code: str) -> bool:
        return self.inner.claim_code(code)

    def count_codes(self) -> int:
        return self.inner.count_codes()

    def reserve_codes(self, n: int, planned: int) -> bool:
        return self.inner.reserve_codes(n, planned)

    def get_referral(self, referee_id: str) -> Referral | None:
        return self.n.one(self.inner.get_referral(self.n.key(referee_id)))

    def referrals_of(self, referrer_id: str) -> list[Referral]:
        return self.n.shown(self.inner.referrals_of(self.n.key(referrer_id)))

    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]) -> list[int]:
        return self.inner.count_attributions(self.n.key(referrer_id), since)

    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        return self.inner.count_paid(self.n.key(referrer_id), start, end)

    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        return self.n.shown(self.inner.marks_of(self.n.keys(member_ids)))

    def erase(self, member_id: str) -> None:
        self.inner.erase(self.n.key(member_id))

    def write(self, changes: ReferralChanges) -> None:
        n = self.n
        self.inner.write(ReferralChanges(
            referral_codes=[n.stored(c) for c in changes.referral_codes],
            referrals={n.write_key(m): n.stored(r) for m, r in changes.referrals.items()},
            new_referrals={n.write_key(m) for m in changes.new_referrals},
            referral_marks=[n.stored(m) for m in changes.referral_marks],
        ))


class KeyedRewardStore:
    """Vouchers and reward counters, translated."""

    def __init__(self, inner: RewardStore, names: Names) -> None:
        self.inner, self.n = inner, names

    def get_voucher(self, code: str) -> Voucher | None:
        return self.n.one(self.inner.get_voucher(code))

    def member_vouchers(self, member_id: str) -> list[Voucher]:
        return self.n.shown(self.inner.member_vouchers(self.n.key(member_id)))

    def count_redeemed(self, member_id: str, reward_id: str, start: dt.datetime | None,
                       end: dt.datetime) -> int:
        return self.inner.count_redeemed(self.n.key(member_id), reward_id, start, end)

    def counters(self, reward_id: str) -> tuple[int, int]:
        return self.inner.counters(reward_id)

    def take(self, reward_id: str, stock: int | None, global_limit: int | None) -> bool:
        return self.inner.take(reward_id, stock, global_limit)

    def release(self, reward_id: str, held: int, redeemed: int) -> None:
        self.inner.release(reward_id, held, redeemed)

    def due_vouchers(self, at: dt.datetime, limit: int) -> list[Voucher]:
        return self.n.shown(self.inner.due_vouchers(at, limit))

    def expiring_vouchers(self, start: dt.datetime, end: dt.datetime, *,
                          after: tuple[dt.datetime, uuid.UUID] | None, limit: int
                          ) -> list[Voucher]:
        return self.n.shown(self.inner.expiring_vouchers(start, end, after=after,
                                                         limit=limit))

    def write(self, changes: RewardChanges) -> None:
        self.inner.write(RewardChanges(
            vouchers={i: self.n.stored(v) for i, v in changes.vouchers.items()},
            new_vouchers=changes.new_vouchers,
        ))


class KeyedOutboxStore:
    """Events, translated (their member and the members their payload names)."""

    def __init__(self, inner: OutboxStore, names: Names) -> None:
        self.inner, self.n = inner, names
        self._keyed = inner.write_keyed if isinstance(inner, KeyedWrites) else None

    def streams(self) -> list[int]:
        return self.inner.streams()

    def read(self, stream: int, after: EventPosition | None,
             limit: int) -> list[OutboxEvent]:
        return self._shown(self.inner.read(stream, after, limit))

    def member_events(self, member_id: str) -> list[OutboxEvent]:
        return self._shown(self.inner.member_events(self.n.key(member_id)))

    def _shown(self, found: list[OutboxEvent]) -> list[OutboxEvent]:
        """The events a store read with their members as shop ids. A read builds new
        events each time (none is shared), so they are given their names in place:
        a consumer reads thousands a second, and copying each again cost a tenth of
        that."""
        n = self.n
        named = [(i, values) for i, e in enumerate(found)
                 if (values := _named(e.payload))]
        n.learn({e.member_id for e in found}.union(
            *(values for _, values in named)))
        ids = n._id
        for event in found:
            _set(event, "member_id", ids[event.member_id])
        for i, _ in named:
            event = found[i]
            _set(event, "payload", _payload(event.payload, ids.__getitem__))
        return found

    def last_position(self, stream: int) -> EventPosition | None:
        return self.inner.last_position(stream)

    def consumer_positions(self, name: str) -> list[EventConsumer]:
        return self.inner.consumer_positions(name)

    def consumers(self) -> list[EventConsumer]:
        return self.inner.consumers()

    def set_consumer_position(self, name: str, position: EventPosition,
                              at: dt.datetime) -> EventPosition | None:
        return self.inner.set_consumer_position(name, position, at)

    def prune(self, before: dt.datetime, limit: int) -> int:
        return self.inner.prune(before, limit)

    def erase(self, member_id: str) -> None:
        self.inner.erase(self.n.key(member_id))

    def write(self, changes: OutboxChanges) -> None:
        n = self.n
        write_key = n.write_key
        if self._keyed is not None:  # the store looks each event's key up
            keys = n.write_keys(event.member_id for event in changes.events)
            named = []
            for event in changes.events:
                payload = event.payload
                # only a payload naming other members is copied (converted)
                named.append(event if payload.keys().isdisjoint(PAYLOAD_MEMBER_FIELDS)
                             else copy_with(event, {"payload": _payload(payload, n.key)}))
            self._keyed(OutboxChanges(events=named), keys)
            return
        events = []
        for event in changes.events:  # one copy per event (NewEvent names one member)
            payload = event.payload
            if payload.keys().isdisjoint(PAYLOAD_MEMBER_FIELDS):
                events.append(copy_with(event, {"member_id": write_key(event.member_id)}))
            else:
                events.append(copy_with(event, {"member_id": write_key(event.member_id),
                                                "payload": _payload(payload, n.key)}))
        self.inner.write(OutboxChanges(events=events))


class KeyedNoticeStore:
    """Claimed notices, translated."""

    def __init__(self, inner: NoticeStore, names: Names) -> None:
        self.inner, self.n = inner, names

    def claim(self, claims: Sequence[NoticeClaim], at: dt.datetime) -> list[NoticeClaim]:
        keys = self.n.keys([c.member_id for c in claims])
        stored = [attrs.evolve(c, member_id=k) for c, k in zip(claims, keys, strict=True)]
        by_stored = dict(zip(stored, claims, strict=True))
        return [by_stored[c] for c in self.inner.claim(stored, at)]

    def claimed(self, type: str, member_id: str) -> list[str]:
        return self.inner.claimed(type, self.n.key(member_id))


def _named(payload: Mapping[str, Any]) -> list[str]:
    """The member ids (or keys) a payload names."""
    if payload.keys().isdisjoint(PAYLOAD_MEMBER_FIELDS):
        return []
    return [v for f in PAYLOAD_MEMBER_FIELDS if isinstance(v := payload.get(f), str)]


def _payload(payload: Mapping[str, Any], convert: Callable[[str], str]) -> dict[str, Any]:
    """``payload`` with the members it names converted (ids to keys or back)."""
    return {k: convert(v) if k in PAYLOAD_MEMBER_FIELDS and isinstance(v, str) else v
            for k, v in payload.items()}
