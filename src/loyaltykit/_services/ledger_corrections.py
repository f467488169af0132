"""The ledger's corrections: reversals, manual adjustments, clawbacks and transfers
between members (DESIGN §3). :class:`LedgerCorrections` is a base of
:class:`~loyaltykit._services.ledger.LedgerService`; every write validates its input
before touching storage and then runs in the write pipeline.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from loyaltykit._errors import (
    AlreadyReversed,
    InvalidInput,
    InvalidPoints,
    NotReversible,
    TransactionNotFound,
)
from loyaltykit._model import Kind
from loyaltykit._pipeline import Work
from loyaltykit._results import TransactionResult, TransferResult
from loyaltykit._services.ledger_books import LedgerBase, lots_by_member
from loyaltykit._validate import check_id, check_json, check_member_id, check_reason
from loyaltykit._values import check_key, check_points

__all__ = ["LedgerCorrections"]


class LedgerCorrections(LedgerBase):
    """Reverse, adjust, claw back and transfer points (see the module docstring)."""

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
        (:class:`~loyaltykit.NotReversible`), and so is a spend or capture already
        partly refunded (a partial return of the order it paid: cancelling that order
        gives back the rest); a transaction is reversed at most once
        (:class:`~loyaltykit.AlreadyReversed`).
        """
        tid = check_id(transaction_id, "transaction_id")
        key = check_key(key)
        reason = check_reason(reason)
        meta = check_json(metadata, "metadata")
        when = self.c.instant(at)
        request = self.c.request("reverse", at, when, transaction_id=str(tid), reason=reason,
                                metadata=meta)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            original = uow.ledger.get_transaction(tid)
            if original is None:
                raise TransactionNotFound("no such transaction", transaction_id=str(tid))
            originals = [original]
            if original.kind is Kind.TRANSFER:
                sibling = uow.ledger.get_transaction(uuid.UUID(original.metadata["counterpart_id"]))
                if sibling is None:  # pragma: no cover - written atomically with original
                    raise TransactionNotFound("transfer half missing", transaction_id=str(tid))
                originals.append(sibling)
            members = sorted({t.member_id for t in originals})
            books = self.books(
                uow, ledger, original.wallet, members, need_lots=True,
                extra_lots=lots_by_member(originals),
            )
            # looked for under the members' locks: a reversal committed while this one
            # waited for them must be seen, or its lots would be restored twice
            if uow.ledger.find_reversal(tid, member_id=original.member_id) is not None:
                raise AlreadyReversed("transaction already reversed", transaction_id=str(tid))
            if original.kind in (Kind.SPEND, Kind.CAPTURE):
                # part of it went back already (a partial return of an order it paid):
                # its exact opposite would give those points back a second time
                refunds = uow.ledger.find_refunds(original.wallet, original.member_id, tid)
                if refunds:
                    raise NotReversible(
                        "the transaction was partly refunded; cancel the order it paid "
                        "to give back the rest", transaction_id=str(tid),
                        refunds=[str(r) for r in refunds])
            txs = [ledger.reverse(books[t.member_id], t, reason=reason, metadata=meta)
                   for t in originals]
            return self.tx_result(uow, ledger, books[original.member_id], txs[0],
                                   tuple(tx.id for tx in txs[1:]))

        return self.c.pipeline.run(key, request, when, None, apply)

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
        member_id = check_member_id(member_id)
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise InvalidPoints("adjustment points must be a non-zero int", points=points)
        check_points(abs(points))
        key = check_key(key)
        reason = check_reason(reason, required=True)
        wallet_ = self.program.wallet(wallet)
        meta = check_json(metadata, "metadata")
        when = self.c.instant(at)
        request = self.c.request("adjust", at, when, member_id=member_id, points=points,
                                wallet=wallet_, reason=reason, metadata=meta)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            book = self.books(uow, ledger, wallet_, [member_id],
                               need_lots=points < 0)[member_id]
            tx = ledger.adjust(book, points, reason=reason, metadata=meta)
            return self.tx_result(uow, ledger, book, tx)

        return self.c.pipeline.run(key, request, when, member_id, apply)

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
        member_id = check_member_id(member_id)
        points = check_points(points)
        key = check_key(key)
        wallet_ = self.program.wallet(wallet)
        eid = check_id(earn_id, "earn_id") if earn_id is not None else None
        reason = check_reason(reason)
        meta = check_json(metadata, "metadata")
        when = self.c.instant(at)
        request = self.c.request("clawback", at, when, member_id=member_id, points=points,
                                wallet=wallet_, earn_id=str(eid) if eid else None,
                                reason=reason, metadata=meta)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            first: list[uuid.UUID] = []
            if eid is not None:
                earn = uow.ledger.get_transaction(eid)
                if earn is None or earn.member_id != member_id:
                    raise TransactionNotFound("no such earn for this member",
                                              transaction_id=str(eid), member_id=member_id)
                first = [m.lot_id for m in earn.movements if m.delta > 0]
            book = self.books(uow, ledger, wallet_, [member_id], need_lots=True,
                               extra_lots={member_id: first})[member_id]
            tx = ledger.clawback(book, points, earn_lots=first, reason=reason, metadata=meta)
            return self.tx_result(uow, ledger, book, tx)

        return self.c.pipeline.run(key, request, when, member_id, apply)

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
        sender = check_member_id(from_member_id, "from_member_id")
        receiver = check_member_id(to_member_id, "to_member_id")
        if sender == receiver:
            raise InvalidInput("cannot transfer to the same member", member_id=sender)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        # "source" and "target": the fingerprinted request keeps the names it had
        request = self.c.request("transfer", at, when, source=sender, target=receiver,
                                 points=points, wallet=wallet_, reason=reason, metadata=meta)

        def apply(work: Work) -> TransferResult:
            uow, ledger = work.uow, work.ledger
            books = self.books(uow, ledger, wallet_, [sender, receiver], need_lots=True)
            out, into = ledger.transfer(books[sender], books[receiver], points, reason=reason,
                                        metadata=meta)
            return TransferResult(
                transfer_id=uuid.UUID(out.metadata["transfer_id"]),
                outgoing=self.tx_result(uow, ledger, books[sender], out, (into.id,)),
                incoming=self.tx_result(uow, ledger, books[receiver], into, (out.id,)),
            )

        return self.c.pipeline.run(key, request, when, sender, apply)
