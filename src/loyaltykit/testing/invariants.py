"""Check the ledger invariants of DESIGN §3 against any storage backend.

Everything is read through the storage port (:class:`loyaltykit.storage.UnitOfWork`), so the
same checks run on the in-memory backend, on SQL, and on a third party's adapter. The
port cannot list members, so callers pass the ids of every member they enrolled.

The invariants, each reported with its own letter:

(a) the postings of each transaction sum to zero;
(b) each member wallet's stored running totals (:class:`~loyaltykit.storage.AccountState`)
    equal the sum of its postings per account;
(c) each member balance (available + pending + held + debt account) equals the sum of
    its lots' remaining minus the debt owed;
(d) every lot has ``0 <= held <= remaining <= amount``, and ``remaining`` equals the
    sum of the lot movements recorded for it;
(e) the available account is never negative, debt is never a credit, and only the
    ``ALLOW_NEGATIVE`` clawback policy lets the available *view* go below zero;
(f) held points agree three ways: the held account == the open holds' points == the
    lots' held, and each open hold's allocations are exactly what its lots hold;
(g) the pending account equals the remaining points of pending lots, and the available
    account the unheld remaining points of active lots;
(h) over the whole program the postings of all accounts sum to zero, and every
    account's derived balance equals the sum of the members' running totals;
(i) a wallet's ``next_due_at`` is never later than its earliest due work (a pending
    activation, an unheld expiry, an open hold's end), so due work is never missed;
(m) a spend's or capture's refunds (partial returns of an order paid with points) and
    its reversal never give back more than it redeemed, nor more to a lot than it
    took from that lot, and a refund names a spend or capture of the same wallet;
(s) the storage's reads agree with each other (statement paging, open lots, holds by
    id, transactions by id, reversals, next expiry, as-of sums);
(v) in a program with rewards, the members' vouchers agree with the rewards' counters
    (``held``: the issued and used ones, within the stock; ``redeemed``: the ones not
    cancelled, within the global limit), with each member's limit in every period
    window (calendar, rolling or lifetime), and with their spends: a cancelled voucher's
    spend is reversed, and so is an expired one's where the reward refunds on expiry;
    the others' spends are not given back at all (a direct ``reverse`` of one is
    refused); codes are stored normalised and unique, and each status has its fields.

Three more rules need to know what a step did, so they have their own functions:

(j) a write posts its wallets' due work up to its instant first, and due work leaves
    nothing due (:func:`find_due_work`);
(k) debits and holds take lots in the program's spend order
    (:func:`find_spend_order_violations`);
(l) debt is settled first by newly available points (:func:`find_unsettled_debt`;
    it needs ids issued in write order, as the default id source does).

Typical use, after every step of a test::

    check_invariants(storage, program, member_ids)

:func:`check_replay` checks the idempotency rule: replaying a write with the same key
returns an equal result and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import attrs

from loyaltykit._facade import Loyalty
from loyaltykit._member_keys import KeyedStorage
from loyaltykit._model import (
    MEMBER_ACCOUNTS,
    Account,
    AccountState,
    Hold,
    HoldStatus,
    Kind,
    Lot,
    Member,
    Transaction,
)
from loyaltykit._program import ClawbackPolicy, Program, SpendOrder
from loyaltykit._rewards import Voucher
from loyaltykit.storage import Storage, UnitOfWork
from loyaltykit.testing.voucher_invariants import voucher_problems

__all__ = [
    "INVARIANTS",
    "LedgerSnapshot",
    "Violation",
    "WalletSnapshot",
    "check_invariants",
    "check_replay",
    "describe_difference",
    "find_due_work",
    "find_spend_order_violations",
    "find_unsettled_debt",
    "find_violations",
    "read_ledger",
]

R = TypeVar("R")

#: What each invariant letter stands for (used in every violation message).
INVARIANTS: Mapping[str, str] = {
    "a": "postings of each transaction sum to zero",
    "b": "running totals equal the sum of postings",
    "c": "member balance equals its lots' remaining minus debt",
    "d": "lots stay within 0 <= held <= remaining <= amount and match their movements",
    "e": "available is never negative unless the clawback policy allows it",
    "f": "held points match the open holds and the lots' held points",
    "g": "pending and available accounts match their lots",
    "h": "program-wide postings sum to zero and system accounts match",
    "i": "next_due_at is never later than the earliest due work",
    "m": "refunds and reversals of a debit never give back more than it took",
    "j": "due work is posted up to each write's instant",
    "k": "debits and holds take lots in the program's spend order",
    "l": "debt is settled first by newly available points",
    "s": "storage reads agree with each other",
    "v": "vouchers agree with the reward counters, limits and their spends",
}

#: Statement page size used to read a wallet's whole history.
_PAGE = 500
#: How many of each wallet's newest transactions are re-read by id on each check
#: (re-reading all of them after every step of a long run costs too much; a step
#: writes few transactions, so checking after every step still reaches nearly all).
_RECHECK_NEWEST = 8


@attrs.frozen
class Violation:
    """One broken invariant: its letter (see :data:`INVARIANTS`) and what was found."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"invariant ({self.invariant}) {INVARIANTS[self.invariant]}: {self.message}"


@attrs.frozen(eq=True, hash=False)
class WalletSnapshot:
    """Everything stored for one member wallet, read through the storage port.

    ``transactions`` are newest first (statement order); ``lots`` holds every lot the
    wallet's movements, open lots and open holds refer to; ``open_lot_ids`` the ids
    :meth:`~loyaltykit.storage.LedgerStore.load_lots` returned; ``holds`` every hold a hold
    transaction names (None if the storage does not know it).
    """

    member_id: str
    wallet: str
    state: AccountState | None
    transactions: tuple[Transaction, ...]
    statement_total: int
    lots: Mapping[uuid.UUID, Lot]
    open_lot_ids: frozenset[uuid.UUID]
    open_holds: tuple[Hold, ...]
    holds: Mapping[uuid.UUID, Hold | None]


@attrs.frozen(eq=True, hash=False)
class LedgerSnapshot:
    """A program's whole ledger for the given members; equal snapshots mean nothing
    was written in between.

    In a program with rewards it holds the members' ``vouchers`` too (by id) and the
    ``reward_counters`` (``(held, redeemed)`` by reward id) of the catalogue's rewards
    and of every reward a voucher names.
    """

    program_id: str
    members: Mapping[str, Member | None]
    wallets: Mapping[tuple[str, str], WalletSnapshot]
    vouchers: Mapping[uuid.UUID, Voucher] = attrs.field(factory=dict)
    reward_counters: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)


# -- reading ----------------------------------------------------------------------------


def _read_wallet(uow: UnitOfWork, wallet: str, member_id: str) -> WalletSnapshot:
    state = uow.ledger.get_account(wallet, member_id)
    transactions: list[Transaction] = []
    before: tuple[dt.datetime, uuid.UUID] | None = None
    statement_total = 0
    while True:
        page, total = uow.ledger.statement(wallet, member_id, limit=_PAGE, before=before)
        if before is None:
            statement_total = total
        transactions.extend(page)
        if len(page) < _PAGE:
            break
        before = (page[-1].occurred_at, page[-1].id)
    open_lots = uow.ledger.load_lots(wallet, [member_id])
    open_holds = uow.ledger.load_open_holds(wallet, [member_id])
    wanted: dict[uuid.UUID, None] = {}
    for tx in transactions:
        for move in tx.movements:
            wanted[move.lot_id] = None
    for hold in open_holds:
        for alloc in hold.allocations:
            wanted[alloc.lot_id] = None
    for lot in open_lots:
        wanted.pop(lot.id, None)
    lots = {lot.id: lot for lot in open_lots}
    if wanted:
        for lot in uow.ledger.load_lots_by_id(list(wanted), member_id=member_id):
            lots.setdefault(lot.id, lot)
    holds: dict[uuid.UUID, Hold | None] = {}
    for tx in transactions:
        if tx.kind is Kind.HOLD and "hold_id" in tx.metadata:
            hold_id = uuid.UUID(str(tx.metadata["hold_id"]))
            holds[hold_id] = uow.ledger.get_hold(hold_id)
    return WalletSnapshot(
        member_id=member_id,
        wallet=wallet,
        state=state,
        transactions=tuple(transactions),
        statement_total=statement_total,
        lots=lots,
        open_lot_ids=frozenset(lot.id for lot in open_lots),
        open_holds=tuple(sorted(open_holds, key=lambda h: h.id)),
        holds=holds,
    )


def _keyed(storage: Storage) -> Storage:
    """``storage`` read by the shop's member ids (the facade stores member keys); an id
    with no key is read as it is (rows written straight to the stores)."""
    return KeyedStorage(storage, raw=True)


def read_ledger(storage: Storage, program: Program, member_ids: Iterable[str]) -> LedgerSnapshot:
    """Read every wallet of ``member_ids`` in one unit of work (which is rolled back),
    and their vouchers and the reward counters if the program has rewards."""
    ids = sorted(set(member_ids))
    vouchers: dict[uuid.UUID, Voucher] = {}
    counters: dict[str, tuple[int, int]] = {}
    with _keyed(storage).unit_of_work(program.id) as uow:
        members = {m: uow.ledger.get_member(m) for m in ids}
        wallets = {
            (m, w): _read_wallet(uow, w, m) for m in ids for w in program.wallets
        }
        if program.rewards is not None:
            for m in ids:
                vouchers.update((v.id, v) for v in uow.rewards.member_vouchers(m))
            reward_ids = {r.id for r in program.rewards.catalogue}
            reward_ids |= {v.reward_id for v in vouchers.values()}
            counters = {r: uow.rewards.counters(r) for r in sorted(reward_ids)}
    return LedgerSnapshot(program_id=program.id, members=members, wallets=wallets,
                          vouchers=dict(sorted(vouchers.items())), reward_counters=counters)


# -- the invariants ---------------------------------------------------------------------


def _who(w: WalletSnapshot) -> str:
    return f"member {w.member_id!r} wallet {w.wallet!r}"


def _check_a(w: WalletSnapshot) -> Iterable[Violation]:
    for tx in w.transactions:
        total = sum(p.amount for p in tx.postings)
        if total != 0:
            yield Violation("a", f"{tx.kind.value} transaction {tx.id} of {_who(w)} sums to "
                                 f"{total}: {list(tx.postings)}")


def _posting_sums(transactions: Iterable[Transaction]) -> dict[Account, int]:
    sums = dict.fromkeys(Account, 0)
    for tx in transactions:
        for p in tx.postings:
            sums[p.account] += p.amount
    return sums


def _check_b(w: WalletSnapshot) -> Iterable[Violation]:
    if w.state is None:
        yield Violation("b", f"{_who(w)} has no stored running totals")
        return
    derived = _posting_sums(w.transactions)
    stored = w.state.sums()
    for account in Account:
        if stored[account] != derived[account]:
            yield Violation("b", f"{_who(w)} stores {account.value}={stored[account]} but its "
                                 f"postings sum to {derived[account]}")
    if w.transactions:
        member_total = sum(derived[a] for a in MEMBER_ACCOUNTS)
        if w.statement_total != member_total:
            yield Violation("b", f"{_who(w)}: the statement's running total is "
                                 f"{w.statement_total}, its member postings sum to "
                                 f"{member_total}")


def _check_c(w: WalletSnapshot) -> Iterable[Violation]:
    # per transaction: what it moves in lots is what it moves in available+pending+held,
    # so the balance matches the lots at every instant (as-of reads included)
    for tx in w.transactions:
        moved = sum(m.delta for m in tx.movements)
        posted = sum(tx.amount(a) for a in (Account.AVAILABLE, Account.PENDING, Account.HELD))
        if moved != posted:
            yield Violation("c", f"{_who(w)}: {tx.kind.value} {tx.id} moves {moved} points in "
                                 f"lots but changes available + pending + held by {posted}")
    if w.state is None:
        return
    s = w.state
    owed = -s.debt
    total = s.available + s.pending + s.held + s.debt
    in_lots = sum(lot.remaining for lot in w.lots.values())
    if owed < 0:
        yield Violation("c", f"{_who(w)} owes a negative debt ({owed})")
    if total != in_lots - owed:
        yield Violation("c", f"{_who(w)}: available {s.available} + pending {s.pending} + held "
                             f"{s.held} - debt {owed} = {total}, but its lots hold {in_lots} "
                             f"(minus debt: {in_lots - owed})")


def _check_d(w: WalletSnapshot) -> Iterable[Violation]:
    moved: dict[uuid.UUID, int] = {}
    for tx in w.transactions:
        for move in tx.movements:
            moved[move.lot_id] = moved.get(move.lot_id, 0) + move.delta
    for lot_id in moved:
        if lot_id not in w.lots:
            yield Violation("d", f"{_who(w)}: lot {lot_id} has movements but is not stored")
    for lot in w.lots.values():
        if (lot.member_id, lot.wallet) != (w.member_id, w.wallet):
            yield Violation("d", f"lot {lot.id} of member {lot.member_id!r} wallet "
                                 f"{lot.wallet!r} is referred to by {_who(w)}")
        if not 0 <= lot.held <= lot.remaining <= lot.amount:
            yield Violation("d", f"{_who(w)}: lot {lot.id} breaks 0 <= held {lot.held} <= "
                                 f"remaining {lot.remaining} <= amount {lot.amount}")
        if lot.remaining != moved.get(lot.id, 0):
            yield Violation("d", f"{_who(w)}: lot {lot.id} has remaining {lot.remaining} but "
                                 f"its movements sum to {moved.get(lot.id, 0)}")


def _check_e(w: WalletSnapshot, program: Program) -> Iterable[Violation]:
    if w.state is None:
        return
    s = w.state
    policy = program.ledger.clawback
    if s.available < 0:
        yield Violation("e", f"{_who(w)}: available account is {s.available}")
    if s.debt > 0:
        yield Violation("e", f"{_who(w)}: debt account is in credit ({s.debt})")
    if policy is ClawbackPolicy.PENDING_ONLY and s.debt != 0:
        yield Violation("e", f"{_who(w)}: debt {-s.debt} under the PENDING_ONLY policy")
    view = s.available + s.debt if policy is ClawbackPolicy.ALLOW_NEGATIVE else s.available
    if view < 0 and policy is not ClawbackPolicy.ALLOW_NEGATIVE:
        yield Violation("e", f"{_who(w)}: available balance {view} under {policy.value}")


def _check_f(w: WalletSnapshot) -> Iterable[Violation]:
    if w.state is None:
        return
    by_hold = sum(h.points for h in w.open_holds)
    by_lot = sum(lot.held for lot in w.lots.values())
    if not w.state.held == by_hold == by_lot:
        yield Violation("f", f"{_who(w)}: held account {w.state.held}, open holds {by_hold}, "
                             f"lots' held {by_lot}")
    allocated: dict[uuid.UUID, int] = {}
    for hold in w.open_holds:
        if hold.status is not HoldStatus.OPEN:
            yield Violation("f", f"{_who(w)}: hold {hold.id} listed as open is {hold.status}")
        if (hold.member_id, hold.wallet) != (w.member_id, w.wallet):
            yield Violation("f", f"hold {hold.id} of member {hold.member_id!r} listed for "
                                 f"{_who(w)}")
        total = sum(a.points for a in hold.allocations)
        if total != hold.points or any(a.points <= 0 for a in hold.allocations):
            yield Violation("f", f"{_who(w)}: hold {hold.id} of {hold.points} points allocates "
                                 f"{[(str(a.lot_id), a.points) for a in hold.allocations]}")
        for alloc in hold.allocations:
            lot = w.lots.get(alloc.lot_id)
            if lot is None:
                yield Violation("f", f"{_who(w)}: hold {hold.id} allocates unknown lot "
                                     f"{alloc.lot_id}")
            elif alloc.points > lot.held:
                yield Violation("f", f"{_who(w)}: hold {hold.id} allocates {alloc.points} of "
                                     f"lot {lot.id}, which holds only {lot.held}")
            allocated[alloc.lot_id] = allocated.get(alloc.lot_id, 0) + alloc.points
    for lot in w.lots.values():
        if lot.held != allocated.get(lot.id, 0):
            yield Violation("f", f"{_who(w)}: lot {lot.id} holds {lot.held} but open holds "
                                 f"allocate {allocated.get(lot.id, 0)} of it")
    open_ids = {h.id for h in w.open_holds}
    tx_ids = {tx.id: tx for tx in w.transactions}
    for hold_id, stored in w.holds.items():
        if stored is None:
            yield Violation("f", f"{_who(w)}: hold {hold_id} of a hold transaction is missing")
            continue
        if (stored.status is HoldStatus.OPEN) != (hold_id in open_ids):
            yield Violation("f", f"{_who(w)}: hold {hold_id} is {stored.status.value} but "
                                 f"{'not ' if hold_id not in open_ids else ''}listed as open")
        if stored.status is not HoldStatus.OPEN:
            closer = tx_ids.get(stored.resolved_by) if stored.resolved_by else None
            if closer is None or closer.kind not in (Kind.CAPTURE, Kind.RELEASE):
                yield Violation("f", f"{_who(w)}: {stored.status.value} hold {hold_id} names "
                                     f"no capture/release transaction ({stored.resolved_by})")
            if not 0 <= stored.captured <= stored.points:
                yield Violation("f", f"{_who(w)}: hold {hold_id} captured {stored.captured} "
                                     f"of {stored.points}")


def _check_g(w: WalletSnapshot) -> Iterable[Violation]:
    if w.state is None:
        return
    pending = sum(lot.remaining for lot in w.lots.values() if lot.pending)
    active = sum(lot.remaining - lot.held for lot in w.lots.values() if not lot.pending)
    if w.state.pending != pending:
        yield Violation("g", f"{_who(w)}: pending account {w.state.pending}, pending lots hold "
                             f"{pending}")
    if w.state.available != active:
        yield Violation("g", f"{_who(w)}: available account {w.state.available}, active lots "
                             f"hold {active} unheld")
    for lot in w.lots.values():
        if lot.pending and lot.held:
            yield Violation("g", f"{_who(w)}: pending lot {lot.id} has {lot.held} held")


def _check_h(snapshot: LedgerSnapshot) -> Iterable[Violation]:
    derived = _posting_sums(tx for w in snapshot.wallets.values() for tx in w.transactions)
    total = sum(derived.values())
    if total != 0:
        yield Violation("h", f"program {snapshot.program_id!r}: all postings sum to {total} "
                             f"({ {a.value: n for a, n in derived.items() if n} })")
    stored = dict.fromkeys(Account, 0)
    for w in snapshot.wallets.values():
        if w.state is not None:
            for account, n in w.state.sums().items():
                stored[account] += n
    for account in Account:
        if stored[account] != derived[account]:
            yield Violation("h", f"program {snapshot.program_id!r}: {account.value} is "
                                 f"{derived[account]} by postings, {stored[account]} by the "
                                 f"members' running totals")


def _check_i(w: WalletSnapshot) -> Iterable[Violation]:
    if w.state is None:
        return
    due: list[tuple[dt.datetime, str]] = []
    for lot in w.lots.values():
        if lot.pending and lot.activates_at is not None:
            due.append((lot.activates_at, f"lot {lot.id} activates"))
        if lot.expires_at is not None and lot.remaining - lot.held > 0:
            due.append((lot.expires_at, f"lot {lot.id} expires"))
    for hold in w.open_holds:
        due.append((hold.expires_at, f"hold {hold.id} ends"))
    if not due:
        return
    first, what = min(due)
    stored = w.state.next_due_at
    if stored is None or stored > first:
        yield Violation("i", f"{_who(w)}: next_due_at is {stored} but {what} at {first}")


def _check_m(w: WalletSnapshot) -> Iterable[Violation]:
    by_id = {tx.id: tx for tx in w.transactions}
    back: dict[uuid.UUID, tuple[int, dict[uuid.UUID, int]]] = {}
    for tx in w.transactions:
        if tx.kind is Kind.REFUND:
            target = tx.metadata.get("refunds_id")
        elif tx.kind is Kind.REVERSE and tx.metadata.get("reversed_kind") in ("spend",
                                                                               "capture"):
            target = str(tx.reverses_id)
        else:
            continue
        original = by_id.get(uuid.UUID(target)) if isinstance(target, str) else None
        if original is None or original.kind not in (Kind.SPEND, Kind.CAPTURE):
            yield Violation("m", f"{_who(w)}: {tx.kind.value} {tx.id} gives back {target}, "
                                 f"not a spend or capture of this wallet")
            continue
        points, lots = back.get(original.id, (0, {}))
        for m in tx.movements:
            lots[m.lot_id] = lots.get(m.lot_id, 0) + m.delta
        back[original.id] = (points - tx.amount(Account.REDEEMED), lots)
    for original_id, (points, lots) in back.items():
        original = by_id[original_id]
        redeemed = original.amount(Account.REDEEMED)
        if points > redeemed:
            yield Violation("m", f"{_who(w)}: {points} points of {original.kind.value} "
                                 f"{original_id} were given back, it redeemed {redeemed}")
        took = {m.lot_id: -m.delta for m in original.movements if m.delta < 0}
        for lot_id, n in lots.items():
            if n > took.get(lot_id, 0):
                yield Violation("m", f"{_who(w)}: {n} points went back to lot {lot_id} "
                                     f"from {original_id}, which took "
                                     f"{took.get(lot_id, 0)} from it")


def _check_s_snapshot(w: WalletSnapshot, program_id: str) -> Iterable[Violation]:
    seen: set[uuid.UUID] = set()
    for tx in w.transactions:
        if tx.id in seen:
            yield Violation("s", f"{_who(w)}: the statement lists transaction {tx.id} twice")
        seen.add(tx.id)
        if (tx.program_id, tx.member_id, tx.wallet) != (program_id, w.member_id, w.wallet):
            yield Violation("s", f"{_who(w)}: the statement lists transaction {tx.id} of "
                                 f"{tx.program_id!r}/{tx.member_id!r}/{tx.wallet!r}")
    order = [(tx.occurred_at, tx.id) for tx in w.transactions]
    if order != sorted(order, reverse=True):
        yield Violation("s", f"{_who(w)}: the statement is not newest first")
    for lot in w.lots.values():
        is_open = lot.remaining > 0 or lot.pending
        if is_open != (lot.id in w.open_lot_ids):
            yield Violation("s", f"{_who(w)}: lot {lot.id} (remaining {lot.remaining}, pending "
                                 f"{lot.pending}) {'missing from' if is_open else 'listed in'} "
                                 f"load_lots")


def find_violations(snapshot: LedgerSnapshot, program: Program, *,
                    at: dt.datetime | None = None) -> list[Violation]:
    """Return every broken invariant in ``snapshot`` (the ones that need no further
    reads: (a) to (i), (m), (v), and the parts of (s) that a snapshot shows). ``at``
    (e.g. the test clock's now) lets (v) check that expired vouchers' expiry has come."""
    found: list[Violation] = []
    for member_id, member in snapshot.members.items():
        if member is None:
            found.append(Violation("s", f"member {member_id!r} is not enrolled"))
    for w in snapshot.wallets.values():
        found += _check_a(w)
        found += _check_b(w)
        found += _check_c(w)
        found += _check_d(w)
        found += _check_e(w, program)
        found += _check_f(w)
        found += _check_g(w)
        found += _check_i(w)
        found += _check_m(w)
        found += _check_s_snapshot(w, snapshot.program_id)
    found += _check_h(snapshot)
    found += (Violation("v", problem) for problem in voucher_problems(snapshot, program, at))
    return found


def _storage_violations(
    storage: Storage, snapshot: LedgerSnapshot, program: Program, at: dt.datetime | None
) -> list[Violation]:
    """Cross-check reads a snapshot does not contain (invariant (s))."""
    found: list[Violation] = []
    with _keyed(storage).unit_of_work(program.id) as uow:
        for w in snapshot.wallets.values():
            for tx in w.transactions[:_RECHECK_NEWEST]:
                by_id = uow.ledger.get_transaction(tx.id)
                if by_id != tx:
                    found.append(Violation("s", f"{_who(w)}: get_transaction({tx.id}) returned "
                                                f"{by_id}, the statement {tx}"))
            for tx in w.transactions[:_RECHECK_NEWEST]:
                if tx.reverses_id is not None:
                    reversal = uow.ledger.find_reversal(tx.reverses_id)
                    # the same read named by the member (a reversal is its original's
                    # member's): what a distributed engine routes
                    routed = uow.ledger.find_reversal(tx.reverses_id, member_id=tx.member_id)
                    if reversal != tx.id or routed != tx.id:
                        found.append(Violation("s", f"{_who(w)}: find_reversal("
                                                    f"{tx.reverses_id}) is {reversal} (by "
                                                    f"member {routed}), not {tx.id}"))
            for hold in w.open_holds:
                if uow.ledger.get_hold(hold.id) != hold:
                    found.append(Violation("s", f"{_who(w)}: get_hold({hold.id}) differs from "
                                                f"load_open_holds"))
            live = [lot for lot in w.lots.values()
                    if lot.expires_at is not None and lot.remaining > 0]
            expected: tuple[int, dt.datetime] | None = None
            if live:
                first = min(lot.expires_at for lot in live if lot.expires_at is not None)
                expected = (sum(lot.remaining for lot in live if lot.expires_at == first), first)
            got = uow.ledger.next_expiring(w.wallet, w.member_id)
            if got != expected:
                found.append(Violation("s", f"{_who(w)}: next_expiring is {got}, the lots say "
                                            f"{expected}"))
            if at is not None and w.state is not None:
                sums = uow.ledger.sums_as_of(w.wallet, w.member_id, at)
                stored = w.state.sums()
                diff = {a.value: (sums.get(a, 0), n) for a, n in stored.items()
                        if sums.get(a, 0) != n}
                if diff:
                    found.append(Violation("s", f"{_who(w)}: sums_as_of({at.isoformat()}) "
                                                f"differs from the running totals "
                                                f"(as of, stored): {diff}"))
                as_of = {lot.id: n for lot, n in uow.ledger.lots_as_of(w.wallet, w.member_id, at)}
                now = {i: lot.remaining for i, lot in w.lots.items() if lot.remaining > 0}
                if as_of != now:
                    found.append(Violation("s", f"{_who(w)}: lots_as_of({at.isoformat()}) "
                                                f"gives {as_of}, the lots hold {now}"))
    return found


def check_invariants(
    storage: Storage,
    program: Program,
    member_ids: Iterable[str],
    *,
    at: dt.datetime | None = None,
    snapshot: LedgerSnapshot | None = None,
) -> None:
    """Raise :class:`AssertionError` naming every broken ledger invariant.

    ``member_ids`` must list every member enrolled in ``program`` (the storage port
    cannot list them); program-wide checks are only meaningful over all of them.
    ``at``, when given, is an instant no earlier than any transaction's business time
    (e.g. the test clock's now): the as-of reads are then checked against the current
    totals. ``snapshot`` is a :func:`read_ledger` result to reuse instead of reading
    again. The message lists each violation on its own line, starting with its letter
    as in :data:`INVARIANTS`, e.g. ``invariant (d) lots stay within ...``.
    """
    if snapshot is None:
        snapshot = read_ledger(storage, program, member_ids)
    found = find_violations(snapshot, program, at=at)
    found += _storage_violations(storage, snapshot, program, at)
    if found:
        lines = "\n".join(f"  {v}" for v in found)
        raise AssertionError(f"{len(found)} ledger invariant violation(s) in program "
                             f"{program.id!r}:\n{lines}")


def find_due_work(
    snapshot: LedgerSnapshot,
    at: dt.datetime,
    wallets: Iterable[tuple[str, str]] | None = None,
) -> list[Violation]:
    """Return due work left undone at ``at`` in ``wallets`` (member id, wallet) pairs,
    all of the snapshot's by default (invariant (j)).

    Right after a write at ``at`` the wallets it touched, and right after due work at
    ``at`` every wallet, have no open hold and no pending lot due at or before ``at``,
    and no unheld points in a lot that expired before ``at`` (a lot the write itself
    created may expire exactly at ``at``).
    """
    keys = list(snapshot.wallets) if wallets is None else list(wallets)
    found: list[Violation] = []
    for key in keys:
        w = snapshot.wallets.get(key)
        if w is None:
            continue
        for lot in w.lots.values():
            if lot.pending and lot.activates_at is not None and lot.activates_at <= at:
                found.append(Violation("j", f"{_who(w)}: lot {lot.id} is still pending at "
                                            f"{at.isoformat()} (activates {lot.activates_at})"))
            if (lot.expires_at is not None and lot.expires_at < at
                    and lot.remaining - lot.held > 0):
                found.append(Violation("j", f"{_who(w)}: lot {lot.id} keeps "
                                            f"{lot.remaining - lot.held} unheld points at "
                                            f"{at.isoformat()}, past its expiry "
                                            f"{lot.expires_at}"))
        for hold in w.open_holds:
            if hold.expires_at <= at:
                found.append(Violation("j", f"{_who(w)}: hold {hold.id} is still open at "
                                            f"{at.isoformat()} (ended {hold.expires_at})"))
    return found


_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)


def _in_spend_order(program: Program, lots: Iterable[Lot]) -> list[Lot]:
    """``lots`` in the order the program's spends take them (DESIGN §3)."""
    order = program.ledger.spend_order
    if order is SpendOrder.SOONEST_EXPIRING:
        return sorted(lots, key=lambda lot: (lot.expires_at or _FAR_FUTURE, lot.earned_at,
                                             lot.id))
    newest = order is SpendOrder.NEWEST_FIRST
    return sorted(lots, key=lambda lot: (lot.earned_at, lot.id), reverse=newest)


def find_spend_order_violations(
    snapshot: LedgerSnapshot,
    program: Program,
    member_id: str,
    wallet: str,
    taken: Sequence[uuid.UUID],
    at: dt.datetime,
) -> list[Violation]:
    """Return a violation of invariant (k) if a debit or hold at ``at`` that took the
    lots ``taken`` skipped a lot that comes first in the program's spend order.

    ``snapshot`` is read right after the debit: no lot ranked before the last lot
    taken may have spendable points left.
    """
    w = snapshot.wallets.get((member_id, wallet))
    if w is None or not taken:
        return []
    if any(i not in w.lots for i in taken):
        return [Violation("k", f"{_who(w)}: a debit took unknown lots {list(taken)}")]
    position = {lot.id: n for n, lot in enumerate(_in_spend_order(program, w.lots.values()))}
    last = w.lots[max(taken, key=position.__getitem__)]
    skipped = [lot for lot in w.lots.values()
               if lot.spendable(at) > 0 and position[lot.id] < position[last.id]]
    return [Violation("k", f"{_who(w)}: a {program.ledger.spend_order.value} debit at "
                           f"{at.isoformat()} took lot {last.id} but left {lot.spendable(at)} "
                           f"spendable points in lot {lot.id}, which comes first")
            for lot in skipped]


_CREDITS = frozenset({Kind.EARN, Kind.ADJUST, Kind.TRANSFER, Kind.ACTIVATE})


def find_unsettled_debt(snapshot: LedgerSnapshot) -> list[Violation]:
    """Return violations of invariant (l): every earn, positive adjustment, incoming
    transfer and activation settles the debt owed just before it, up to its points.

    Transactions are replayed in id order, which must be the order they were written
    (true of the default time-ordered ids and of a counter).
    """
    found: list[Violation] = []
    for w in snapshot.wallets.values():
        owed = 0
        for tx in sorted(w.transactions, key=lambda t: t.id):
            settled = tx.amount(Account.DEBT)
            credit = tx.amount(Account.AVAILABLE) + settled
            if tx.kind in _CREDITS and credit > 0 and settled != min(owed, credit):
                found.append(Violation("l", f"{_who(w)}: {tx.kind.value} {tx.id} makes "
                                            f"{credit} points available while {owed} are "
                                            f"owed, but settles {settled}"))
            owed -= settled
    return found


_UNSET: object = object()


def check_replay(
    loyalty: Loyalty,
    call: Callable[[], R],
    member_ids: Iterable[str],
    *,
    original: object = _UNSET,
) -> R:
    """Replay a keyed write and assert it returns an equal result and writes nothing.

    ``call`` performs the write (the same request with the same key each time it is
    called). Without ``original``, ``call`` is first run once to make the original
    write; with it, ``original`` is the result the first call returned. Returns the
    replay's result.
    """
    ids: Sequence[str] = sorted(set(member_ids))
    if original is _UNSET:
        original = call()
    before = read_ledger(loyalty.storage, loyalty.program, ids)
    replayed = call()
    after = read_ledger(loyalty.storage, loyalty.program, ids)
    if replayed != original:
        raise AssertionError(f"replay returned a different result:\n  original: {original!r}"
                             f"\n  replay:   {replayed!r}")
    if before != after:
        raise AssertionError(f"replay changed the ledger:\n{describe_difference(before, after)}")
    return replayed


def describe_difference(before: LedgerSnapshot, after: LedgerSnapshot) -> str:
    """Say briefly where two snapshots of the same ledger differ (for failure messages)."""
    lines: list[str] = []
    for m in sorted(set(before.members) | set(after.members)):
        if before.members.get(m) != after.members.get(m):
            lines.append(f"  member {m!r}: {before.members.get(m)} -> {after.members.get(m)}")
    for key in sorted(set(before.wallets) | set(after.wallets)):
        b, a = before.wallets.get(key), after.wallets.get(key)
        if b == a:
            continue
        if b is None or a is None:
            lines.append(f"  wallet {key}: {b} -> {a}")
            continue
        for field in attrs.fields(WalletSnapshot):
            old, new = getattr(b, field.name), getattr(a, field.name)
            if old != new:
                lines.append(f"  {_who(b)} {field.name}: {old!r} -> {new!r}")
    for i in sorted(set(before.vouchers) | set(after.vouchers)):
        if before.vouchers.get(i) != after.vouchers.get(i):
            lines.append(f"  voucher {i}: {before.vouchers.get(i)!r} -> "
                         f"{after.vouchers.get(i)!r}")
    if before.reward_counters != after.reward_counters:
        lines.append(f"  reward counters: {before.reward_counters} -> "
                     f"{after.reward_counters}")
    return "\n".join(lines) or "  (no difference)"
