"""The in-memory ledger store: members, accounts, lots, holds and transactions."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import uuid
from collections.abc import Sequence

import attrs

from loyaltykit._copy import evolve
from loyaltykit._errors import DuplicateKey
from loyaltykit._model import (
    MEMBER_ACCOUNTS,
    Account,
    AccountState,
    Hold,
    HoldStatus,
    Kind,
    Lot,
    Member,
    MemberState,
    Posting,
    Transaction,
)
from loyaltykit.memory.keys import MemoryProgramStore
from loyaltykit.memory.ledger_due_set import MemoryLedgerDueSet
from loyaltykit.memory.ledger_rows import ACCOUNT_OF, KeptTx, shared_postings
from loyaltykit.memory.sorted_index import IndexedTable
from loyaltykit.memory.tables import KeptSet, MemberKeys, Tables, UndoLog
from loyaltykit.storage.ledger import LedgerChanges
from loyaltykit.storage.ledger_due import DueChanges

__all__ = ["LedgerTables", "MemoryLedgerStore"]


def _due_key(key: tuple[str, str, str], state: AccountState
             ) -> tuple[str, dt.datetime, str, str] | None:
    """An account's place in the due index: (program, next due, member, wallet)."""
    if state.next_due_at is None:
        return None
    return (key[0], state.next_due_at, key[2], key[1])


def _expiring_key(lot_id: uuid.UUID, lot: Lot
                  ) -> tuple[str, dt.datetime, str, str, uuid.UUID] | None:
    """A lot's place in the expiry index (lots with unreserved active points only)."""
    if lot.expires_at is None or lot.pending or lot.remaining <= lot.held:
        return None
    return (lot.program_id, lot.expires_at, lot.member_id, lot.wallet, lot_id)


def _kept(tx: Transaction) -> KeptTx:
    """``tx`` as the store keeps it (:class:`~loyaltykit.memory.ledger_rows.KeptTx`:
    its texts in one bytes object), with the kept copy of its postings."""
    return KeptTx.of(tx, shared_postings(tx.postings))


class DueAccounts(IndexedTable[tuple[str, str, str], AccountState]):
    """The accounts, indexed by when they fall due; and per program the accounts due
    at the instant of the last due read, sorted as the read returns them (member,
    wallet), which the next batches of the same run read on from. An account that falls
    due by that instant and was not in it drops the list; those no longer due are
    skipped when read."""

    def __init__(self) -> None:
        super().__init__(_due_key)
        self.due_lists: dict[str, tuple[dt.datetime, list[tuple[str, str]]]] = {}

    def __setitem__(self, key: tuple[str, str, str], value: AccountState) -> None:
        listed = self.due_lists.get(key[0])
        if listed is not None and value.next_due_at is not None \
                and value.next_due_at <= listed[0]:
            old = self.get(key)
            if old is None or old.next_due_at is None or old.next_due_at > listed[0]:
                del self.due_lists[key[0]]
        super().__setitem__(key, value)


class LedgerTables:
    def __init__(self) -> None:
        self.members: dict[tuple[str, str], Member] = {}
        self.accounts = DueAccounts()
        self.lots: IndexedTable[uuid.UUID, Lot] = IndexedTable(_expiring_key)
        # open lots only (points left, or pending), so reads and spends of a member with
        # a long history do not walk every lot it ever had
        self.member_lots: dict[tuple[str, str, str], KeptSet[uuid.UUID]] = {}
        self.holds: dict[uuid.UUID, Hold] = {}
        self.member_holds: dict[tuple[str, str, str], KeptSet[uuid.UUID]] = {}  # open only
        self.transactions: dict[uuid.UUID, KeptTx] = {}
        self.member_transactions: dict[tuple[str, str, str], list[uuid.UUID]] = {}
        self.reversals: dict[uuid.UUID, uuid.UUID] = {}


class MemoryLedgerStore(MemoryLedgerDueSet):
    """The ledger of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(LedgerTables)
        self._keys = tables.of(MemberKeys)
        self._tables = tables  # (the outbox's, for set-based due work's events)
        self._programs = MemoryProgramStore(uow, tables)  # load_member's version in force

    def _mk(self, wallet: str, member_id: str) -> tuple[str, str, str]:
        return (self._uow.program_id, wallet, member_id)

    # -- reads ----------------------------------------------------------------------------

    def get_member(self, member_id: str) -> Member | None:
        return self._t.members.get((self._uow.program_id, member_id))

    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        # the unit of work holds the process-wide lock already: nothing more to lock
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
        return MemberState(member=member, accounts=self._accounts(member_id, sorted(set(wallets))),
                           version=self._programs.program_version_at(at))

    def load_members(self, member_ids: Sequence[str], wallets: Sequence[str]
                     ) -> dict[str, tuple[Member, dict[str, AccountState]]]:
        names = sorted(set(wallets))
        found: dict[str, tuple[Member, dict[str, AccountState]]] = {}
        for member_id in dict.fromkeys(member_ids):
            member = self.get_member(member_id)
            if member is not None:
                found[member_id] = (member, self._accounts(member_id, names))
        return found

    def _accounts(self, member_id: str, wallets: list[str]) -> dict[str, AccountState]:
        """The member's accounts of ``wallets`` (each once, in order) that exist."""
        found = {}
        for wallet in wallets:
            state = self._t.accounts.get(self._mk(wallet, member_id))
            if state is not None:
                found[wallet] = state
        return found

    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        out = []
        for member_id in member_ids:
            for lot_id in sorted(self._t.member_lots.get(self._mk(wallet, member_id), ())):
                out.append(self._t.lots[lot_id])
        return out

    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID], *,
                        member_id: str) -> list[Lot]:
        lots, program_id = self._t.lots, self._uow.program_id
        return [lots[i] for i in lot_ids if i in lots and lots[i].program_id == program_id
                and lots[i].member_id == member_id]

    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        out = []
        for member_id in member_ids:
            for hold_id in sorted(self._t.member_holds.get(self._mk(wallet, member_id), ())):
                out.append(self._t.holds[hold_id])
        return out

    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        hold = self._t.holds.get(hold_id)
        return hold if hold is not None and hold.program_id == self._uow.program_id else None

    def get_transaction(self, transaction_id: uuid.UUID, *,
                        member_id: str | None = None) -> Transaction | None:
        tx = self._t.transactions.get(transaction_id)
        if tx is None or tx.program_id != self._uow.program_id or (
                member_id is not None and tx.member_id != member_id):
            return None
        return tx.read()

    def find_reversal(self, transaction_id: uuid.UUID, *,
                      member_id: str | None = None) -> uuid.UUID | None:
        found = self._t.reversals.get(transaction_id)
        if found is not None and member_id is not None and (
                self._t.transactions[found].member_id != member_id):
            return None
        return found

    def find_refunds(self, wallet: str, member_id: str,
                     transaction_id: uuid.UUID) -> list[uuid.UUID]:
        wanted = str(transaction_id)
        found = (self._t.transactions[t] for t in
                 self._t.member_transactions.get(self._mk(wallet, member_id), ()))
        return [tx.id for tx in found
                if tx.kind is Kind.REFUND and tx.metadata.get("refunds_id") == wanted]

    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        return self._due(at, after, None, limit)

    def due_bounds(self, at: dt.datetime, every: int) -> list[tuple[str, str]]:
        # the list stays for the ranges' reads that follow (due_between)
        due = [key for key in self._due_list(at) if self._is_due(key, at)]
        ends = due[every - 1::every]
        if due and (not ends or ends[-1] != due[-1]):
            ends.append(due[-1])
        return ends

    def due_between(
        self, at: dt.datetime, *, after: tuple[str, str] | None, upto: tuple[str, str],
        limit: int,
    ) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
        found = self._due(at, after, upto, limit)
        return found, (found[-1] if len(found) == limit else None)

    def _due_list(self, at: dt.datetime) -> list[tuple[str, str]]:
        """The program's accounts due by ``at`` in key order (member, wallet): read from
        the due index and sorted once per run, then kept (:class:`DueAccounts`)."""
        program_id, accounts = self._uow.program_id, self._t.accounts
        listed = accounts.due_lists.get(program_id)
        if listed is None or listed[0] != at:
            due = []
            for p, due_at, member_id, wallet in accounts.index.after((program_id,)):
                if p != program_id or due_at > at:
                    break
                due.append((member_id, wallet))
            due.sort()
            listed = accounts.due_lists[program_id] = (at, due)
        return listed[1]

    def _is_due(self, key: tuple[str, str], at: dt.datetime) -> bool:
        """Whether the account ``key`` of the kept list is still due by ``at``."""
        state = self._t.accounts.get((self._uow.program_id, key[1], key[0]))
        return state is not None and state.next_due_at is not None \
            and state.next_due_at <= at

    def _due(self, at: dt.datetime, after: tuple[str, str] | None,
             upto: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` accounts still due by ``at`` in ``(after, upto]`` (None: no
        bound), in key order. A read that reaches the kept list's end drops it: the run
        has nothing left to read on."""
        due = self._due_list(at)
        found: list[tuple[str, str]] = []
        start = 0 if after is None else bisect.bisect_right(due, after)
        for key in itertools.islice(due, start, None):
            if upto is not None and key > upto:
                return found
            if self._is_due(key, at):
                found.append(key)
                if len(found) == limit:
                    return found
        del self._t.accounts.due_lists[self._uow.program_id]
        return found

    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        lots = [lot for lot in self.load_lots(wallet, [member_id])
                if lot.expires_at is not None and lot.remaining > 0]
        if not lots:
            return None
        first = min(lot.expires_at for lot in lots if lot.expires_at is not None)
        return sum(lot.remaining for lot in lots if lot.expires_at == first), first

    def expiring_lots(
        self, start: dt.datetime, end: dt.datetime, *,
        after: tuple[dt.datetime, str, str, uuid.UUID] | None, limit: int
    ) -> list[Lot]:
        program_id, lots = self._uow.program_id, self._t.lots
        found: list[Lot] = []
        for key in lots.index.after((program_id, start) if after is None
                                    else (program_id, *after)):
            if key[0] != program_id or key[1] > end or len(found) >= limit:
                break
            if key[1] > start:
                found.append(lots[key[4]])
        return found

    def _member_transactions(self, wallet: str, member_id: str) -> list[KeptTx]:
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
        page = [tx.read() for tx in txs[:limit]]
        if not page:
            return [], 0
        total = sum(
            p.amount for tx in txs for p in tx.postings if p.account in MEMBER_ACCOUNTS
        )
        return page, total

    # -- writes ---------------------------------------------------------------------------

    def erase(self, member_id: str) -> None:
        k = (self._uow.program_id, member_id)
        member = self._t.members.get(k)
        if member is not None and member.attributes:
            self._uow.put(self._t.members, k, attrs.evolve(member, attributes={}))

    def rename_counterpart(self, member_id: str, name: str) -> list[str]:
        t, program_id = self._t, self._uow.program_id
        keys = set()
        for (p, _, m), ids in t.member_transactions.items():
            if p != program_id or m != member_id:
                continue
            for tx_id in ids:
                tx = t.transactions[tx_id]
                if tx.kind is not Kind.TRANSFER or "counterpart_id" not in tx.metadata:
                    continue
                if tx.idempotency_key is not None:
                    keys.add(tx.idempotency_key)
                other = t.transactions.get(uuid.UUID(str(tx.metadata["counterpart_id"])))
                if other is not None and "counterpart_member_id" in other.metadata:
                    self._uow.put(t.transactions, other.id, _kept(attrs.evolve(
                        other.read(),
                        metadata={**other.metadata, "counterpart_member_id": name})))
        return sorted(keys)

    def write(self, changes: LedgerChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        # check every unique rule before touching anything: a rejected part leaves no trace
        seen_members = set()
        for member in changes.members:
            k = (program_id, member.member_id)
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
        for member in changes.members:
            uow.put(t.members, self._keys.shared((program_id, member.member_id)), member)
        for (member_id, wallet), state in changes.accounts.items():
            uow.put(t.accounts, self._keys.shared(self._mk(wallet, member_id)), state)
        for tx in changes.transactions:
            uow.put(t.transactions, tx.id, _kept(tx))
            uow.append(t.member_transactions,
                       self._keys.shared(self._mk(tx.wallet, tx.member_id)), tx.id)
            if tx.reverses_id is not None:
                uow.put(t.reversals, tx.reverses_id, tx.id)
        for lot_id, lot in changes.lots.items():
            uow.put(t.lots, lot_id, lot)
            key = self._keys.shared(self._mk(lot.wallet, lot.member_id))
            uow.track(t.member_lots, key, lot_id, lot.remaining > 0 or lot.pending)
        for hold_id, hold in changes.holds.items():
            uow.put(t.holds, hold_id, hold)
            key = self._keys.shared(self._mk(hold.wallet, hold.member_id))
            uow.track(t.member_holds, key, hold_id, hold.status is HoldStatus.OPEN)

    def write_due(self, changes: DueChanges) -> None:
        """The rows of a batch of set-based due work, kept as :meth:`write` keeps the
        same transactions (memory keeps objects: the rows are the set-based path's for
        SQL), built here directly: no :class:`LedgerChanges` and its copies, and one
        undo-log entry per table for the batch, not one per row."""
        t, uow, program_id, who = self._t, self._uow, self._uow.program_id, changes.members
        recorded_at = changes.recorded_at
        assert recorded_at is not None, "set before anything is written"
        shared = self._keys.shared
        moves = {tx_id: (lot_id, delta) for tx_id, _, lot_id, delta in changes.movements}
        # each transaction's legs as (account, amount) pairs, looked up by the pairs'
        # tuple (hashed in C, where a tuple of Postings hashes each in Python): a batch
        # has a handful of distinct ones, each built and shared once
        legs: dict[uuid.UUID, list[tuple[str, int]]] = {}
        for tx_id, _, _, account, amount, _ in changes.postings:
            legs.setdefault(tx_id, []).append((account, amount))
        postings_of: dict[tuple[tuple[str, int], ...], tuple[Posting, ...]] = {}
        txs: list[tuple[uuid.UUID, KeptTx]] = []
        by_member: list[tuple[tuple[str, str, str], uuid.UUID]] = []
        no_legs: tuple[Posting, ...] = ()
        kept_due, kind_of, moved = KeptTx.due, _KIND_OF, moves.get
        for tx_id, m, wallet, kind, occurred_at, reason, metadata in changes.transactions:
            found = legs.get(tx_id)
            if found is None:
                postings = no_legs
            else:
                pairs = tuple(found)
                postings = postings_of.get(pairs, no_legs)
                if postings is no_legs:
                    postings = postings_of[pairs] = shared_postings(tuple(
                        Posting(ACCOUNT_OF[a], n) for a, n in pairs))
            member_id = who[m]
            # the row itself, no Transaction built first (KeptTx.of keeps the same)
            txs.append((tx_id, kept_due(tx_id, program_id, member_id, wallet, kind_of[kind],
                                        occurred_at, recorded_at, postings, moved(tx_id),
                                        reason, metadata)))
            by_member.append((shared((program_id, wallet, member_id)), tx_id))
        states = [(shared((program_id, state.wallet, who[m])),
                   evolve(state, member_id=who[m])) for m, state in changes.accounts]
        lots = [(lot_id, evolve(t.lots[lot_id], remaining=remaining, held=held,
                                pending=pending, activates_at=activates_at,
                                expires_at=expires_at))
                for lot_id, _, remaining, held, pending, activates_at, expires_at
                in changes.lots]
        holds = [(hold_id, evolve(t.holds[hold_id], status=HoldStatus.RELEASED, captured=0,
                                  resolved_by=by))
                 for hold_id, _, by in changes.holds]
        # the order write() keeps: accounts, transactions, lots, holds
        uow.put_many(t.accounts, states)
        uow.put_many(t.transactions, txs)
        uow.append_many(t.member_transactions, by_member)
        uow.put_many(t.lots, lots)
        for lot_id, lot in lots:
            uow.track(t.member_lots, shared((program_id, lot.wallet, lot.member_id)), lot_id,
                      lot.remaining > 0 or lot.pending)
        uow.put_many(t.holds, holds)
        for hold_id, hold in holds:
            uow.track(t.member_holds, shared((program_id, hold.wallet, hold.member_id)),
                      hold_id, False)


#: a kind's member by value, by dict lookup (not the Enum's call)
_KIND_OF = {k.value: k for k in Kind}
