"""The totals' identity, checked against the members' own figures (DESIGN §9).

:func:`check_totals` asserts, per wallet, at an instant, that
``loyalty.reports.totals(as_of=...)`` adds up
(``issued = redeemed + expired + written_off + outstanding``), that its member figures
are the sums of the members' balances (so the program-wide statement and the members'
agree), and that its issued / written-off split is what an independent reading of every
transaction gives: the points a transaction created or destroyed (from the member's
side: its points, plus what it redeemed, expired or transferred) counted by what the
transaction is: an earn issues, a clawback writes off, an adjustment by its sign, a
reversal as the transaction it reverses (an adjustment's reversal by the sign of the
adjustment). The state machine calls :func:`check_machine_totals` after every step.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence

from loyaltykit import Account, ClawbackPolicy, Kind, Loyalty, MemberNotFound, Transaction

__all__ = ["check_machine_totals", "check_totals", "expected_flows"]


def _statement(loyalty: Loyalty, member_id: str, wallet: str) -> list[Transaction]:
    txs = []
    cursor = None
    while True:
        page = loyalty.statement(member_id, wallet=wallet, limit=500, cursor=cursor)
        txs += [loyalty.transaction(line.transaction_id) for line in page.lines]
        if page.next_cursor is None:
            return txs
        cursor = page.next_cursor


def expected_flows(transactions: Iterable[Transaction], as_of: dt.datetime | None
                   ) -> dict[str, dict[str, int]]:
    """Per wallet: issued, written_off, redeemed, expired of ``transactions`` (every
    transaction of the program's members) that occurred by ``as_of`` (None: all)."""
    by_id = {tx.id: tx for tx in transactions}
    out: dict[str, dict[str, int]] = {}
    for tx in by_id.values():
        if as_of is not None and tx.occurred_at > as_of:
            continue
        sums = out.setdefault(tx.wallet, dict.fromkeys(
            ("issued", "written_off", "redeemed", "expired", "transfers"), 0))
        redeemed, expired = tx.amount(Account.REDEEMED), tx.amount(Account.EXPIRED)
        transferred = tx.amount(Account.TRANSFERS)
        sums["redeemed"] += redeemed
        sums["expired"] += expired
        sums["transfers"] += transferred
        # points this transaction brought into (+) or took out of (-) the program
        created = tx.points + redeemed + expired + transferred
        what, credit = tx.kind, created > 0
        if tx.kind is Kind.REVERSE:
            original = by_id.get(tx.reverses_id) if tx.reverses_id else None
            assert original is not None, f"the reversed transaction of {tx} was not read"
            what = original.kind
            if what is Kind.ADJUST:
                credit = original.points > 0
        if what is Kind.CLAWBACK or (what is Kind.ADJUST and not credit):
            sums["written_off"] -= created
        else:
            sums["issued"] += created
    return out


def check_totals(loyalty: Loyalty, member_ids: Sequence[str], *,
                 as_of: dt.datetime | None = None,
                 transactions: Mapping[tuple[str, str], Sequence[Transaction]] | None = None,
                 ) -> None:
    """Assert the totals of every wallet at ``as_of`` (None: now) against the balances
    of ``member_ids`` (every member of the program; ids not enrolled are skipped) and
    their transactions (``(member_id, wallet) -> transactions``, read when not given).
    """
    program = loyalty.program
    negative = program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE
    totals = {t.wallet: t for t in loyalty.reports.totals(as_of=as_of)}
    assert sorted(totals) == sorted(program.wallets), totals
    txs: list[Transaction] = []
    seen: set[uuid.UUID] = set()
    for wallet in program.wallets:
        t = totals[wallet]
        assert t.issued == t.redeemed + t.expired + t.written_off + t.outstanding, t
        assert t.outstanding == t.available + t.pending + t.held - t.debt, t
        sums = dict.fromkeys(("available", "pending", "held", "debt", "total", "earned",
                              "adjusted", "spent", "expired", "transferred"), 0)
        members = 0
        for member_id in member_ids:
            try:
                balance = loyalty.balance(member_id, wallet=wallet, as_of=as_of)
            except MemberNotFound:
                continue
            if as_of is None or loyalty.member(member_id).enrolled_at <= as_of:
                members += 1
            for name in sums:
                sums[name] += getattr(balance, name)
            if negative:
                sums["available"] += balance.debt
            given = (transactions or {}).get((member_id, wallet))
            for tx in (given if transactions is not None and given is not None
                       else _statement(loyalty, member_id, wallet)):
                if tx.id not in seen:
                    seen.add(tx.id)
                    txs.append(tx)
        assert (t.available, t.pending, t.held, t.debt, t.outstanding, t.members) == (
            sums["available"], sums["pending"], sums["held"], sums["debt"], sums["total"],
            members), (t, sums, members)
        assert t.issued - t.written_off == sums["earned"] + sums["adjusted"], (t, sums)
        assert (t.redeemed, t.expired, 0) == (
            sums["spent"], sums["expired"], sums["transferred"]), (t, sums)
    expected = expected_flows(txs, as_of)
    for wallet in program.wallets:
        t = totals[wallet]
        want = expected.get(wallet, dict.fromkeys(
            ("issued", "written_off", "redeemed", "expired", "transfers"), 0))
        assert (t.issued, t.written_off, t.redeemed, t.expired, 0) == (
            want["issued"], want["written_off"], want["redeemed"], want["expired"],
            want["transfers"]), (wallet, as_of, t, want)


def check_machine_totals(loyalty: Loyalty, member_ids: Sequence[str],
                         transactions: Mapping[tuple[str, str], Sequence[Transaction]],
                         ) -> None:
    """:func:`check_totals` now and at an earlier instant (the business time of the
    middle transaction stored), from the transactions a snapshot read."""
    check_totals(loyalty, member_ids, transactions=transactions)
    stamps = sorted(tx.occurred_at for txs in transactions.values() for tx in txs)
    if stamps:
        check_totals(loyalty, member_ids, as_of=stamps[len(stamps) // 2],
                     transactions=transactions)
