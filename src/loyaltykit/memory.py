"""The in-memory storage backend: a first-class test double with SQL's semantics.

Thread-safe. Each unit of work holds one process-wide lock from ``__enter__`` to
``__exit__`` (like SQLite, writers are serialised), keeps an undo log and rolls back
unless committed. Unique rules (idempotency key per program, member id per program,
order id per program, one reversal per transaction) raise
:class:`~loyaltykit.DuplicateKey` exactly where the SQL backend's constraints would,
and nothing of a rejected write is applied. JSON fields of program versions and orders
are kept as the SQL backend keeps them (a JSON round trip: tuples come back as lists)
and every read returns a fresh copy, so a caller cannot change what is stored.

>>> from loyaltykit.memory import MemoryStorage
>>> storage = MemoryStorage()
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import attrs

from loyaltykit._errors import DuplicateKey, StorageError
from loyaltykit._ledger import ChangeSet
from loyaltykit._model import (
    MEMBER_ACCOUNTS,
    Account,
    AccountState,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Lot,
    Member,
    MemberState,
    OrderRecord,
    OrderStatus,
    ProgramVersion,
    RuleUsage,
    Transaction,
)
from loyaltykit._referrals import (
    Referral,
    ReferralCode,
    ReferralMark,
    ReferralStatus,
)
from loyaltykit._tiers import (
    TierChange,
    TierJob,
    TierNotice,
    TierState,
    WindowKind,
    evaluate,
    would_be,
)

__all__ = ["MemoryStorage"]

_MISSING = object()


class _Tables:
    def __init__(self) -> None:
        self.programs: dict[str, dict[str, Any]] = {}
        self.members: dict[tuple[str, str], Member] = {}
        self.accounts: dict[tuple[str, str, str], AccountState] = {}
        self.lots: dict[uuid.UUID, Lot] = {}
        # open lots only (points left, or pending), so reads and spends of a member with
        # a long history do not walk every lot it ever had
        self.member_lots: dict[tuple[str, str, str], set[uuid.UUID]] = {}
        self.holds: dict[uuid.UUID, Hold] = {}
        self.member_holds: dict[tuple[str, str, str], set[uuid.UUID]] = {}  # open only
        self.transactions: dict[uuid.UUID, Transaction] = {}
        self.member_transactions: dict[tuple[str, str, str], list[uuid.UUID]] = {}
        self.reversals: dict[uuid.UUID, uuid.UUID] = {}
        self.keys: dict[tuple[str, str], IdempotencyRecord] = {}
        self.versions: dict[str, dict[int, ProgramVersion]] = {}
        self.orders: dict[tuple[str, str], OrderRecord] = {}
        # (program_id, member_id) -> ids of the member's orders that are not cancelled
        self.member_orders: dict[tuple[str, str], set[str]] = {}
        # (program_id, member_id) -> ids of all the member's orders, whatever their status
        self.member_all_orders: dict[tuple[str, str], set[str]] = {}
        self.usage: dict[tuple[str, str, str], RuleUsage] = {}  # (program, source, rule)
        self.member_usage: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        self.tier_states: dict[tuple[str, str], TierState] = {}
        # (program_id, member_id, period_start) -> metric units
        self.tier_buckets: dict[tuple[str, str, dt.datetime], int] = {}
        self.member_buckets: dict[tuple[str, str], set[dt.datetime]] = {}
        self.tier_history: dict[tuple[str, str], list[TierChange]] = {}
        # (program_id, member_id, evaluation instant) -> notice
        self.tier_notices: dict[tuple[str, str, dt.datetime], TierNotice] = {}
        self.codes: dict[tuple[str, str], ReferralCode] = {}
        self.member_codes: dict[tuple[str, str], set[str]] = {}
        self.referrals: dict[tuple[str, str], Referral] = {}
        # (program_id, referrer_id) -> referee ids
        self.referees: dict[tuple[str, str], set[str]] = {}
        self.marks: dict[tuple[str, str], set[tuple[str, str]]] = {}


def _json(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` as the SQL backend's JSON columns give it back."""
    try:
        copy: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StorageError("a value is not JSON", detail=str(exc)) from exc
    return copy


def _version_copy(version: ProgramVersion) -> ProgramVersion:
    return attrs.evolve(version, definition=_json(version.definition))


def _order_copy(order: OrderRecord) -> OrderRecord:
    return attrs.evolve(order, order=_json(order.order), returned=_json(order.returned),
                        evaluation=_json(order.evaluation), payments=tuple(order.payments))


class MemoryStorage:
    """Keeps every program's ledger in process memory. See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables = _Tables()

    @property
    def concurrent(self) -> bool:
        """True: units of work may be opened from several threads (they take turns)."""
        return True

    def unit_of_work(self, program_id: str) -> MemoryUnitOfWork:
        """Return a unit of work for ``program_id``; use it as a context manager."""
        return MemoryUnitOfWork(self._lock, self._tables, program_id)

    def register_program(self, version: ProgramVersion) -> None:
        """Store this version unless ``(program_id, version)`` is stored already (the
        stored one is then left as it is); an unknown program is registered first."""
        stored = _version_copy(version)
        with self._lock:
            self._tables.programs.setdefault(version.program_id, _json(version.definition))
            versions = self._tables.versions.setdefault(version.program_id, {})
            versions.setdefault(version.version, stored)

    def __repr__(self) -> str:
        return f"MemoryStorage(programs={len(self._tables.programs)})"


class MemoryUnitOfWork:
    """A unit of work of :class:`MemoryStorage` (serialised, undo-logged)."""

    def __init__(self, lock: threading.RLock, tables: _Tables, program_id: str) -> None:
        self._lock = lock
        self._t = tables
        self.program_id = program_id
        self._undo: list[Callable[[], None]] = []
        self._committed = False
        self._entered = False

    def __enter__(self) -> Self:
        self._lock.acquire()
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # whatever is still in the undo log was written after the last commit
            for undo in reversed(self._undo):
                undo()
        finally:
            self._undo.clear()
            self._entered = False
            self._lock.release()

    def commit(self) -> None:
        """Keep every write made so far; later writes need another commit."""
        self._undo.clear()
        self._committed = True

    # -- helpers --------------------------------------------------------------------------

    def _set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        table[key] = value

        def undo() -> None:
            if old is _MISSING:
                del table[key]
            else:
                table[key] = old

        self._undo.append(undo)

    def _append(self, table: dict[Any, list[Any]], key: Any, value: Any) -> None:
        items = table.get(key)
        if items is None:
            self._set(table, key, [value])
            return
        items.append(value)
        self._undo.append(items.pop)

    def _track(self, index: dict[Any, set[Any]], key: Any, item: Any, is_open: bool) -> None:
        """Keep ``item`` in ``index[key]`` exactly while it is open (undo-logged)."""
        members = index.get(key)
        if members is None:
            members = set()
            self._set(index, key, members)
        if is_open and item not in members:
            members.add(item)
            self._undo.append(lambda: members.discard(item))
        elif not is_open and item in members:
            members.discard(item)
            self._undo.append(lambda: members.add(item))

    def _mk(self, wallet: str, member_id: str) -> tuple[str, str, str]:
        return (self.program_id, wallet, member_id)

    # -- reads ----------------------------------------------------------------------------

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        return self._t.keys.get((self.program_id, key))

    def get_member(self, member_id: str) -> Member | None:
        return self._t.members.get((self.program_id, member_id))

    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        found = {}
        for member_id in sorted(set(member_ids)):
            state = self._t.accounts.get(self._mk(wallet, member_id))
            if state is not None:
                found[member_id] = state
        return found

    def get_account(self, wallet: str, member_id: str) -> AccountState | None:
        return self._t.accounts.get(self._mk(wallet, member_id))

    def load_member(
        self, member_id: str, wallets: Sequence[str], at: dt.datetime, *, lock: bool
    ) -> MemberState | None:
        # the unit of work holds the process-wide lock already: lock changes nothing
        member = self.get_member(member_id)
        if member is None:
            return None
        found = {}
        for wallet in sorted(set(wallets)):
            state = self._t.accounts.get(self._mk(wallet, member_id))
            if state is not None:
                found[wallet] = state
        return MemberState(member=member, accounts=found, version=self.program_version_at(at))

    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        out = []
        for member_id in member_ids:
            for lot_id in sorted(self._t.member_lots.get(self._mk(wallet, member_id), ())):
                out.append(self._t.lots[lot_id])
        return out

    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID]) -> list[Lot]:
        return [self._t.lots[i] for i in lot_ids if i in self._t.lots
                and self._t.lots[i].program_id == self.program_id]

    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        out = []
        for member_id in member_ids:
            for hold_id in sorted(self._t.member_holds.get(self._mk(wallet, member_id), ())):
                out.append(self._t.holds[hold_id])
        return out

    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        hold = self._t.holds.get(hold_id)
        return hold if hold is not None and hold.program_id == self.program_id else None

    def get_transaction(self, transaction_id: uuid.UUID) -> Transaction | None:
        tx = self._t.transactions.get(transaction_id)
        return tx if tx is not None and tx.program_id == self.program_id else None

    def find_reversal(self, transaction_id: uuid.UUID) -> uuid.UUID | None:
        return self._t.reversals.get(transaction_id)

    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        due = sorted(
            (state.member_id, state.wallet)
            for (program_id, _, _), state in self._t.accounts.items()
            if program_id == self.program_id
            and state.next_due_at is not None
            and state.next_due_at <= at
        )
        if after is not None:
            due = [d for d in due if d > after]
        return due[:limit]

    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        lots = [lot for lot in self.load_lots(wallet, [member_id])
                if lot.expires_at is not None and lot.remaining > 0]
        if not lots:
            return None
        first = min(lot.expires_at for lot in lots if lot.expires_at is not None)
        return sum(lot.remaining for lot in lots if lot.expires_at == first), first

    def _member_transactions(self, wallet: str, member_id: str) -> list[Transaction]:
        ids = self._t.member_transactions.get(self._mk(wallet, member_id), [])
        return [self._t.transactions[i] for i in ids]

    def sums_as_of(self, wallet: str, member_id: str, at: dt.datetime) -> dict[Account, int]:
        sums: dict[Account, int] = {}
        for tx in self._member_transactions(wallet, member_id):
            if tx.occurred_at <= at:
                for p in tx.postings:
                    sums[p.account] = sums.get(p.account, 0) + p.amount
        return sums

    def lots_as_of(
        self, wallet: str, member_id: str, at: dt.datetime
    ) -> list[tuple[Lot, int]]:
        remaining: dict[uuid.UUID, int] = {}
        for tx in self._member_transactions(wallet, member_id):
            if tx.occurred_at <= at:
                for move in tx.movements:
                    remaining[move.lot_id] = remaining.get(move.lot_id, 0) + move.delta
        return [(self._t.lots[i], n) for i, n in remaining.items() if n > 0]

    def statement(
        self,
        wallet: str,
        member_id: str,
        *,
        limit: int,
        before: tuple[dt.datetime, uuid.UUID] | None,
    ) -> tuple[list[Transaction], int]:
        txs = sorted(
            self._member_transactions(wallet, member_id),
            key=lambda tx: (tx.occurred_at, tx.id),
            reverse=True,
        )
        if before is not None:
            txs = [tx for tx in txs if (tx.occurred_at, tx.id) < before]
        page = txs[:limit]
        if not page:
            return [], 0
        total = sum(
            p.amount for tx in txs for p in tx.postings if p.account in MEMBER_ACCOUNTS
        )
        return page, total

    # -- programs, orders, rule usage -----------------------------------------------------

    def program_versions(self) -> list[ProgramVersion]:
        versions = self._t.versions.get(self.program_id, {})
        return [_version_copy(versions[n]) for n in sorted(versions)]

    def program_version_at(self, at: dt.datetime) -> int | None:
        versions = self._t.versions.get(self.program_id, {})
        in_force = [n for n, v in versions.items()
                    if v.effective_from is None or v.effective_from <= at]
        return max(in_force) if in_force else None

    def get_order(self, order_id: str) -> OrderRecord | None:
        order = self._t.orders.get((self.program_id, order_id))
        return None if order is None else _order_copy(order)

    def count_orders(self, member_id: str) -> int:
        return len(self._t.member_orders.get((self.program_id, member_id), ()))

    def load_orders(self, member_id: str) -> list[OrderRecord]:
        ids = self._t.member_all_orders.get((self.program_id, member_id), ())
        found = [self._t.orders[(self.program_id, order_id)] for order_id in ids]
        found.sort(key=lambda order: (order.placed_at, order.order_id))
        return [_order_copy(order) for order in found]

    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        rules, named = set(rule_ids), set(groups)
        found = []
        for key in self._t.member_usage.get((self.program_id, member_id), ()):
            usage = self._t.usage[key]
            if (rules or named) and not (
                usage.rule_id in rules or (usage.group is not None and usage.group in named)
            ):
                continue
            if since is not None and usage.occurred_at < since:
                continue
            if until is not None and usage.occurred_at >= until:
                continue
            found.append(usage)
        return found

    # -- tiers ----------------------------------------------------------------------------

    def get_tier_state(self, member_id: str) -> TierState | None:
        return self._t.tier_states.get((self.program_id, member_id))

    def tier_metric(self, member_id: str, start: dt.datetime, end: dt.datetime | None) -> int:
        t = self._t
        return sum(t.tier_buckets[(self.program_id, member_id, period)]
                   for period in t.member_buckets.get((self.program_id, member_id), ())
                   if start <= period and (end is None or period < end))

    def tier_history(self, member_id: str) -> list[TierChange]:
        return list(self._t.tier_history.get((self.program_id, member_id), ()))

    def tier_due(self, at: dt.datetime, *, by_anchor: bool) -> list[
            tuple[dt.datetime, dt.date | None]]:
        found = {(s.next_evaluation, s.anchor if by_anchor else None)
                 for (program_id, _), s in self._t.tier_states.items()
                 if program_id == self.program_id and s.next_evaluation is not None
                 and s.next_evaluation <= at}
        return sorted(found, key=lambda pair: (pair[0], pair[1] or dt.date.min))

    def _waiting(self, job: TierJob, *, noticed: bool) -> list[TierState]:
        by_anchor = job.policy.window.kind is WindowKind.ANNIVERSARY_YEAR
        states = sorted(
            (s for (program_id, _), s in self._t.tier_states.items()
             if program_id == self.program_id and s.next_evaluation == job.at
             and (not by_anchor or s.anchor == job.anchor)
             and (not noticed or s.noticed_for != job.at)
             and (job.after is None or s.member_id > job.after)
             and (job.upto is None or s.member_id <= job.upto)),
            key=lambda s: s.member_id)
        return states[:job.limit]

    def tier_batch_end(self, job: TierJob, *, noticed: bool = False) -> str | None:
        waiting = self._waiting(attrs.evolve(job, upto=None), noticed=noticed)
        return waiting[-1].member_id if waiting else None

    def evaluate_tiers(self, job: TierJob) -> tuple[int, int]:
        policy = job.policy
        names = [t.name for t in policy.tiers]
        waiting = self._waiting(job, noticed=False)
        changed = 0
        for state in waiting:
            value = self.tier_metric(state.member_id, state.window_start, job.at)
            moved, reason = evaluate(policy, state, value, job.time_zone)
            key = (self.program_id, state.member_id)
            self._set(self._t.tier_states, key, attrs.evolve(moved, version=state.version + 1))
            if reason is not None:
                changed += 1
                self._append(self._t.tier_history, key, TierChange(
                    member_id=state.member_id, at=job.at, from_tier=names[state.rank],
                    to_tier=names[moved.rank], reason=reason, metric=value,
                    recorded_at=job.recorded_at))
        return len(waiting), changed

    def record_tier_notices(self, job: TierJob) -> tuple[int, int]:
        policy = job.policy
        names = [t.name for t in policy.tiers]
        thresholds = policy.thresholds
        waiting = self._waiting(job, noticed=True)
        recorded = 0
        for state in waiting:
            value = self.tier_metric(state.member_id, state.window_start, job.at)
            rank = would_be(policy, state, value)
            key = (self.program_id, state.member_id)
            if rank < state.rank:
                recorded += 1
                self._set(self._t.tier_notices, (*key, job.at), TierNotice(
                    member_id=state.member_id, evaluation_at=job.at,
                    tier=names[state.rank], would_be=names[rank], metric=value,
                    needed=thresholds[state.rank] - value, created_at=job.recorded_at))
            self._set(self._t.tier_states, key, attrs.evolve(
                state, noticed_for=job.at, version=state.version + 1))
        return len(waiting), recorded

    def tier_notices(self, *, since: dt.datetime | None, limit: int) -> list[TierNotice]:
        found = [n for (program_id, _, _), n in self._t.tier_notices.items()
                 if program_id == self.program_id
                 and (since is None or n.created_at >= since)]
        found.sort(key=lambda n: (n.created_at, n.evaluation_at, n.member_id))
        return found[:limit]

    # -- referrals ------------------------------------------------------------------------

    def get_code(self, code: str) -> ReferralCode | None:
        return self._t.codes.get((self.program_id, code))

    def member_codes(self, member_id: str) -> list[ReferralCode]:
        found = [self._t.codes[(self.program_id, c)]
                 for c in self._t.member_codes.get((self.program_id, member_id), ())]
        return sorted(found, key=lambda c: (c.created_at, c.code))

    def claim_code(self, code: str) -> bool:
        found = self._t.codes.get((self.program_id, code))
        if found is None:
            raise StorageError("claim of an unknown code", code=code)
        if found.max_uses is not None and found.uses >= found.max_uses:
            return False
        self._set(self._t.codes, (self.program_id, code),
                  attrs.evolve(found, uses=found.uses + 1))
        return True

    def get_referral(self, referee_id: str) -> Referral | None:
        return self._t.referrals.get((self.program_id, referee_id))

    def referrals_of(self, referrer_id: str) -> list[Referral]:
        found = [self._t.referrals[(self.program_id, r)]
                 for r in self._t.referees.get((self.program_id, referrer_id), ())]
        return sorted(found, key=lambda r: (r.attributed_at, r.referee_id))

    def count_attributions(self, referrer_id: str, since: Sequence[dt.datetime]
                           ) -> list[int]:
        found = self.referrals_of(referrer_id)
        return [sum(1 for r in found if r.attributed_at >= s) for s in since]

    def count_paid(self, referrer_id: str, start: dt.datetime | None, end: dt.datetime
                   ) -> int:
        return sum(1 for r in self.referrals_of(referrer_id)
                   if r.status is ReferralStatus.QUALIFIED and r.referrer_points > 0
                   and r.qualified_at is not None and r.qualified_at < end
                   and (start is None or r.qualified_at >= start))

    def marks_of(self, member_ids: Sequence[str]) -> list[ReferralMark]:
        out = []
        for member_id in sorted(set(member_ids)):
            for kind, digest in sorted(self._t.marks.get((self.program_id, member_id), ())):
                out.append(ReferralMark(self.program_id, member_id, kind, digest))
        return out

    # -- writes ---------------------------------------------------------------------------

    def write(self, changes: ChangeSet) -> None:
        t = self._t
        seen_codes: set[str] = set()
        for code in changes.referral_codes:
            if (self.program_id, code.code) in t.codes or code.code in seen_codes:
                raise DuplicateKey("code already issued", code=code.code)
            seen_codes.add(code.code)
        for referee_id in changes.new_referrals:
            if (self.program_id, referee_id) in t.referrals:
                raise DuplicateKey("member already referred", referee_id=referee_id)
        for referee_id in changes.referrals:
            if referee_id not in changes.new_referrals \
                    and (self.program_id, referee_id) not in t.referrals:
                raise StorageError("update of referrals found 0 of 1 rows")
        # check every unique rule before touching anything: a rejected write leaves no trace
        for record in changes.idempotency:
            if (self.program_id, record.key) in t.keys:
                raise DuplicateKey("idempotency key already used", key=record.key)
        seen_members = set()
        for member in changes.members:
            k = (self.program_id, member.member_id)
            if k in t.members or k in seen_members:
                raise DuplicateKey("member already enrolled", member_id=member.member_id)
            seen_members.add(k)
        seen_reversed = set()
        for tx in changes.transactions:
            if tx.reverses_id is not None:
                if tx.reverses_id in t.reversals or tx.reverses_id in seen_reversed:
                    raise DuplicateKey("transaction already reversed",
                                       transaction_id=str(tx.reverses_id))
                seen_reversed.add(tx.reverses_id)
        for order_id, order in changes.orders.items():
            known = (order.program_id, order_id) in t.orders
            if order_id in changes.new_orders and known:
                raise DuplicateKey("order already recorded", program_id=self.program_id,
                                   order_id=order_id)
            if order_id not in changes.new_orders and not known:
                raise StorageError("update of orders found 0 of 1 rows")
        for member_id in changes.new_tier_states:
            if (self.program_id, member_id) in t.tier_states:
                raise DuplicateKey("tier state already kept", member_id=member_id)
        # copy (and check) every JSON value before writing anything
        orders = {order_id: _order_copy(order) for order_id, order in changes.orders.items()}
        for member in changes.members:
            self._set(t.members, (self.program_id, member.member_id), member)
        for (member_id, wallet), state in changes.accounts.items():
            self._set(t.accounts, self._mk(wallet, member_id), state)
        for tx in changes.transactions:
            self._set(t.transactions, tx.id, tx)
            self._append(t.member_transactions, self._mk(tx.wallet, tx.member_id), tx.id)
            if tx.reverses_id is not None:
                self._set(t.reversals, tx.reverses_id, tx.id)
        for lot_id, lot in changes.lots.items():
            self._set(t.lots, lot_id, lot)
            key = self._mk(lot.wallet, lot.member_id)
            self._track(t.member_lots, key, lot_id, lot.remaining > 0 or lot.pending)
        for hold_id, hold in changes.holds.items():
            self._set(t.holds, hold_id, hold)
            key = self._mk(hold.wallet, hold.member_id)
            self._track(t.member_holds, key, hold_id, hold.status is HoldStatus.OPEN)
        for record in changes.idempotency:
            self._set(t.keys, (self.program_id, record.key), record)
        for order_id, order in orders.items():
            order_key = (order.program_id, order_id)
            if order_id not in changes.new_orders:
                # an update changes what may change after recording, nothing else
                order = attrs.evolve(t.orders[order_key], **{
                    name: getattr(order, name) for name in OrderRecord.CHANGING})
            self._set(t.orders, order_key, order)
            self._track(t.member_orders, (order.program_id, order.member_id), order_id,
                        order.status is not OrderStatus.CANCELLED)
            self._track(t.member_all_orders, (order.program_id, order.member_id), order_id,
                        True)
        for member_id, tier_state in changes.tier_states.items():
            key2 = (self.program_id, member_id)
            old_state = t.tier_states.get(key2)
            self._set(t.tier_states, key2, attrs.evolve(
                tier_state, version=0 if old_state is None else old_state.version + 1))
        for (member_id, period), amount in changes.tier_buckets.items():
            bucket = (self.program_id, member_id, period)
            self._set(t.tier_buckets, bucket, t.tier_buckets.get(bucket, 0) + amount)
            self._track(t.member_buckets, (self.program_id, member_id), period, True)
        for change in changes.tier_history:
            self._append(t.tier_history, (self.program_id, change.member_id), change)
        for code in changes.referral_codes:
            self._set(t.codes, (self.program_id, code.code), code)
            self._track(t.member_codes, (self.program_id, code.member_id), code.code, True)
        for referee_id, referral in changes.referrals.items():
            self._set(t.referrals, (self.program_id, referee_id), referral)
            self._track(t.referees, (self.program_id, referral.referrer_id), referee_id, True)
        for mark in changes.referral_marks:
            self._track(t.marks, (self.program_id, mark.member_id), (mark.kind, mark.digest),
                        True)
        for usage in changes.usage:
            usage_key = (usage.program_id, usage.source, usage.rule_id)
            old = t.usage.get(usage_key)
            if old is not None and old.member_id != usage.member_id:
                self._track(t.member_usage, (old.program_id, old.member_id), usage_key, False)
            self._set(t.usage, usage_key, usage)
            self._track(t.member_usage, (usage.program_id, usage.member_id), usage_key, True)
