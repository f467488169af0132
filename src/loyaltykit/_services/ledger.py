"""The ledger's service: members, points, holds, reversals.

The everyday writes of a shop (enrol, earn, spend, hold, capture, void, activate,
reverse, adjust, clawback, transfer, bulk earn). Every write validates its input
before touching storage, then runs in the write pipeline: it locks the member
wallet(s) it writes, first posts the member's own due work (releases, activations,
expiries up to the write's instant), then applies the request. Other services post
points through :meth:`LedgerService.books` and the :class:`~loyaltykit._ledger.Ledger`
of their :class:`~loyaltykit._pipeline.Work`; the reads are in
:mod:`loyaltykit._services.ledger_reads`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loyaltykit._activity import Activity
from loyaltykit._collector import collector_paused
from loyaltykit._errors import (
    AlreadyReversed,
    DuplicateKey,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    InvalidInput,
    InvalidPoints,
    MemberAlreadyEnrolled,
    MemberNotFound,
    NotPending,
    NotReversible,
    TransactionNotFound,
    shown,
)
from loyaltykit._events import MemberEnrolled
from loyaltykit._ledger import Ledger, MemberBook
from loyaltykit._member_keys import ERASED_PREFIX
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    HoldStatus,
    Kind,
    Lot,
    Member,
    Transaction,
)
from loyaltykit._pipeline import Work
from loyaltykit._program import ClawbackPolicy
from loyaltykit._referrals import Identity
from loyaltykit._results import (
    Balance,
    BulkEarnResult,
    HoldResult,
    TransactionResult,
    TransferResult,
)
from loyaltykit._services.context import Context
from loyaltykit._validate import (
    check_id,
    check_instant,
    check_json,
    check_member_id,
    check_reason,
)
from loyaltykit._values import check_key, check_points
from loyaltykit.storage import UnitOfWork

__all__ = ["ENROL_KEY", "MAX_HOLD_TTL", "LedgerService", "lots_by_member"]

#: The longest a hold may reserve points (a checkout's reservation, not a savings plan).
MAX_HOLD_TTL = dt.timedelta(days=3660)
ENROL_KEY = "enrol:"  # the prefix of enrol's default keys

#: Turns enrol's raw ``referral_code`` and ``identity`` into what
#: :class:`~loyaltykit._events.MemberEnrolled` carries: (normalised code or None,
#: keyed hashes of the member's identity).
EnrolmentExtras = Callable[[object, object],
                           tuple[str | None, tuple[tuple[str, str], ...]]]


def lots_by_member(transactions: Iterable[Transaction]) -> dict[str, list[uuid.UUID]]:
    """The lots these transactions moved, by the member whose they are (a transaction's
    lots are its member's): what :meth:`LedgerService.books` reads besides the open
    ones, each member's in a read routed by the member."""
    out: dict[str, list[uuid.UUID]] = {}
    for tx in transactions:
        out.setdefault(tx.member_id, []).extend(m.lot_id for m in tx.movements)
    return out


class LedgerService:
    """Members, points and holds of one program (see the module docstring)."""

    def __init__(self, c: Context, enrolment_extras: EnrolmentExtras) -> None:
        self.c = c
        self.program = c.program
        #: the referral capability's check of enrol's referral code and identity
        self.enrolment_extras = enrolment_extras

    # -- building blocks other services use -----------------------------------------------

    def books(
        self,
        uow: UnitOfWork,
        ledger: Ledger,
        wallet: str,
        member_ids: list[str],
        *,
        need_lots: bool,
        extra_lots: Mapping[str, Iterable[uuid.UUID]] | None = None,
        locked: Mapping[str, AccountState] | None = None,
        register: bool = True,
    ) -> dict[str, MemberBook]:
        states = uow.ledger.lock_accounts(wallet, member_ids) if locked is None else locked
        missing = [m for m in member_ids if m not in states]
        if missing:
            raise MemberNotFound("member is not enrolled", member_ids=missing[:10],
                                 missing=len(missing))
        books = {m: MemberBook(states[m]) for m in member_ids}
        due = [m for m, s in states.items()
               if s.next_due_at is not None and s.next_due_at <= ledger.at]
        loaded = member_ids if need_lots else due
        if loaded:
            lots = uow.ledger.load_lots(wallet, loaded)
            # an open hold keeps its points on the held account (never 0 points), so a
            # wallet with nothing held has no open hold to load
            holding = [m for m in loaded if states[m].held]
            holds = uow.ledger.load_open_holds(wallet, holding) if holding else []
            for m in loaded:
                books[m].lots = {}
                books[m].holds = {}
            for lot in lots:
                lots_of = books[lot.member_id].lots
                assert lots_of is not None
                lots_of[lot.id] = lot
            # lots besides the open ones (those a reversal or clawback restores), read
            # member by member, each read routed by its member (DESIGN §10); only a
            # loaded member's are kept
            for m, lot_ids in (extra_lots or {}).items():
                book = books.get(m)
                wanted = list(lot_ids)
                if book is None or book.lots is None or not wanted:
                    continue
                for lot in uow.ledger.load_lots_by_id(wanted, member_id=m):
                    if lot.wallet == wallet:
                        book.lots.setdefault(lot.id, lot)
            for hold in holds:
                holds_of = books[hold.member_id].holds
                assert holds_of is not None
                holds_of[hold.id] = hold
        if not register:  # the caller posts their due work (set-based due work)
            return books
        for book in books.values():
            ledger.add_book(book)
            if book.lots is not None:
                ledger.catch_up(book, ledger.at)
        return books

    def balance_of(
        self, state: AccountState, as_of: dt.datetime, nxt: tuple[int, dt.datetime] | None
    ) -> Balance:
        # the state's fields are the signed sums: read as they are, not through sums()
        # (a dict built per result, then read account by account)
        return self._balance(state.member_id, state.wallet, state.available, state.pending,
                             state.held, state.debt, state.issued + state.clawback_shortfall,
                             state.redeemed, state.expired, state.adjustments, state.transfers,
                             as_of, nxt)

    def balance_from_sums(
        self,
        member_id: str,
        wallet: str,
        sums: Mapping[Account, int],
        as_of: dt.datetime,
        nxt: tuple[int, dt.datetime] | None,
    ) -> Balance:
        s = sums.get
        return self._balance(member_id, wallet, s(Account.AVAILABLE, 0), s(Account.PENDING, 0),
                             s(Account.HELD, 0), s(Account.DEBT, 0),
                             s(Account.ISSUED, 0) + s(Account.CLAWBACK_SHORTFALL, 0),
                             s(Account.REDEEMED, 0), s(Account.EXPIRED, 0),
                             s(Account.ADJUSTMENTS, 0), s(Account.TRANSFERS, 0), as_of, nxt)

    def _balance(self, member_id: str, wallet: str, available: int, pending: int, held: int,
                 debt: int, issued: int, redeemed: int, expired: int, adjustments: int,
                 transfers: int, as_of: dt.datetime, nxt: tuple[int, dt.datetime] | None
                 ) -> Balance:
        """The balance of the signed sums given (``issued``: with ``clawback_shortfall``)."""
        debt = -debt
        total = available + pending + held - debt
        if self.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE:
            available -= debt
        return Balance(
            member_id=member_id,
            wallet=wallet,
            as_of=as_of,
            available=available,
            pending=pending,
            held=held,
            debt=debt,
            total=total,
            # points a PENDING_ONLY clawback could not take were once booked against
            # issued and written off to clawback_shortfall: read such old rows net
            earned=-issued,
            spent=redeemed,
            expired=expired,
            adjusted=-adjustments,
            transferred=-transfers,
            next_expiring_points=nxt[0] if nxt else 0,
            next_expiring_at=nxt[1] if nxt else None,
        )

    @staticmethod
    def next_expiring(uow: UnitOfWork, state: AccountState) -> tuple[int, dt.datetime] | None:
        """The stored (points, instant) of the wallet's soonest expiry, read only when
        it can exist: a wallet with a lot that has points left and an expiry has a
        ``next_due_at`` (that lot's expiry, or an open hold's end if it is all held),
        so a wallet without one (a program that never expires points, or no live lot
        of an expiring version) needs no query."""
        if state.next_due_at is None:
            return None
        return uow.ledger.next_expiring(state.wallet, state.member_id)

    def _next_expiring_after(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook
    ) -> tuple[int, dt.datetime] | None:
        if book.lots is not None:
            lots: Iterable[Lot] = book.lots.values()
        else:
            # the book's state only gained instants since it was read (its lots were
            # not loaded), so its next_due_at is None only if the stored one is
            stored = self.next_expiring(uow, book.state)
            new = [lot for i, lot in ledger.changes.lots.items()
                   if lot.member_id == book.member_id and lot.wallet == book.wallet]
            if stored is not None:
                points, when = stored
                new_at = [lot for lot in new if lot.expires_at is not None and lot.remaining > 0]
                first = min([when, *[lot.expires_at for lot in new_at if lot.expires_at]])
                extra = sum(lot.remaining for lot in new_at if lot.expires_at == first)
                return ((points if when == first else 0) + extra, first)
            lots = new
        live = [lot for lot in lots if lot.expires_at is not None and lot.remaining > 0]
        if not live:
            return None
        first = min(lot.expires_at for lot in live if lot.expires_at is not None)
        return sum(lot.remaining for lot in live if lot.expires_at == first), first

    def tx_result(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook, tx: Transaction,
        related: tuple[uuid.UUID, ...] = (),
    ) -> TransactionResult:
        balance = self.balance_of(book.state, ledger.at,
                                   self._next_expiring_after(uow, ledger, book))
        return TransactionResult(
            transaction_id=tx.id, kind=tx.kind, member_id=tx.member_id, wallet=tx.wallet,
            points=tx.points, occurred_at=tx.occurred_at, balance=balance,
            related_ids=related,
        )

    def _common(
        self, key: object, wallet: str | None, reason: object, metadata: object, at: object
    ) -> tuple[str, str, str, dict[str, Any], dt.datetime]:
        """Validate the arguments most writes share: key, wallet, reason, metadata, at."""
        return (
            check_key(key),
            self.program.wallet(wallet),
            check_reason(reason),
            check_json(metadata, "metadata"),
            self.c.instant(at),
        )

    # -- members --------------------------------------------------------------------------

    @staticmethod
    def check_new_member(member_id: object) -> str:
        """The member id checked as one a member may be enrolled under (not one that
        names erased members)."""
        member_id = check_member_id(member_id)
        if member_id.startswith(ERASED_PREFIX):
            raise InvalidInput(f"member ids starting with {ERASED_PREFIX!r} name erased "
                               "members", member_id=member_id)
        return member_id

    def enrol(
        self,
        member_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        attributes: Mapping[str, Any] | None = None,
        referral_code: str | None = None,
        identity: Identity | None = None,
    ) -> Member:
        """Enrol a member (the shop's own customer id) with empty wallets.

        The key defaults to ``"enrol:<member_id>"``, so enrolling the same member twice
        with the same attributes returns the first result. With another key an
        enrolled member raises :class:`~loyaltykit.MemberAlreadyEnrolled`.

        With ``referral_code`` the member is referred in the same unit of work (see
        :meth:`refer` for what is refused; then nothing is written, the enrolment
        included). ``identity`` is kept as keyed hashes for the fraud checks.
        """
        member_id = self.check_new_member(member_id)
        key = check_key(key if key is not None else f"{ENROL_KEY}{member_id}")
        attrs_ = check_json(attributes, "attributes")
        parsed, digests = self.enrolment_extras(referral_code, identity)
        when = self.c.instant(at)
        request = self.enrol_request(member_id, at, when, attrs_, parsed, digests)

        def apply(work: Work) -> Member:
            uow = work.uow
            if uow.ledger.get_member(member_id) is not None:
                if uow.keys.get_idempotency(key) is not None:
                    # a concurrent enrolment with this key committed between our two
                    # reads: retry, and the retry replays its result
                    raise DuplicateKey("enrolment raced", key=key)
                raise MemberAlreadyEnrolled("member is already enrolled", member_id=member_id)
            return self.enrol_in(work, member_id, when, attrs_, parsed, digests)

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def enrol_request(self, member_id: str, at: object, when: dt.datetime,
                      attributes: dict[str, Any], referral_code: str | None = None,
                      digests: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
        """The request :meth:`enrol`'s key fingerprints (``at`` as given, ``when`` the
        instant it gives), shared with the history import."""
        request = self.c.request("enrol", at, when, member_id=member_id,
                                 attributes=attributes)
        if referral_code is not None or digests:
            request["referral"] = [referral_code, list(digests)]
        return request

    def enrol_in(self, work: Work, member_id: str, when: dt.datetime,
                 attributes: dict[str, Any], referral_code: str | None = None,
                 digests: tuple[tuple[str, str], ...] = ()) -> Member:
        """Enrol ``member_id`` (checked, not enrolled) in ``work``, dated ``when``: the
        use case of :meth:`enrol`, shared with the history import."""
        member = Member(self.program.id, member_id, when, attributes)
        ledger = work.ledger
        ledger.changes.members.append(member)
        fresh = Activity.fresh_text(self.c.retention(self.program))
        for wallet in self.program.wallets:
            activity = fresh if wallet == self.program.default_wallet else None
            ledger.add_book(MemberBook(AccountState(member_id, wallet, activity=activity)))
            ledger.changes.new_accounts.add((member_id, wallet))
        work.publish(MemberEnrolled(member, referral_code, digests))
        return member

    # -- points ---------------------------------------------------------------------------

    def earn(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        activates_at: dt.datetime | None = None,
    ) -> TransactionResult:
        """Award ``points`` as a new lot. Pending per the program's policy unless
        ``activates_at`` says when it activates; active points settle debt first."""
        member_id = check_member_id(member_id)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        activation = None
        if activates_at is not None:
            activation = check_instant(activates_at, "activates_at")
        request = self.c.request(
            "earn", at, when, member_id=member_id, points=points, wallet=wallet_, reason=reason,
            metadata=meta, activates_at=activation.isoformat() if activation else None,
        )

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            book = self.books(uow, ledger, wallet_, [member_id], need_lots=False)[member_id]
            tx = ledger.earn(book, points, reason=reason, metadata=meta,
                             activates_at=activation,
                             pending=True if activation is not None else None)
            return self.tx_result(uow, ledger, book, tx)

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def spend(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Redeem ``points`` from available lots in the program's spend order.

        Raises :class:`~loyaltykit.InsufficientPoints` (writing nothing) when fewer
        points are available."""
        member_id = check_member_id(member_id)
        points = check_points(points)
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        request = self.c.request("spend", at, when, member_id=member_id, points=points,
                                wallet=wallet_, reason=reason, metadata=meta)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            book = self.books(uow, ledger, wallet_, [member_id], need_lots=True)[member_id]
            tx = ledger.spend(book, points, reason=reason, metadata=meta)
            return self.tx_result(uow, ledger, book, tx)

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def hold(
        self,
        member_id: str,
        points: int,
        *,
        key: str,
        ttl: dt.timedelta,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> HoldResult:
        """Reserve ``points`` of available points for ``ttl`` (e.g. during checkout).

        Held points cannot be spent or held again. Capture them with :meth:`capture`,
        give them back with :meth:`void`; an unresolved hold is released by due work
        once ``ttl`` has passed. Held points do not expire while held: if their lot
        passes its expiry meanwhile, they expire when the hold returns them.
        """
        member_id = check_member_id(member_id)
        points = check_points(points)
        key = check_key(key)
        if not isinstance(ttl, dt.timedelta) or not dt.timedelta(0) < ttl <= MAX_HOLD_TTL:
            raise InvalidInput("ttl must be a positive timedelta of at most "
                               f"{MAX_HOLD_TTL.days} days", ttl=shown(ttl))
        wallet_ = self.program.wallet(wallet)
        reason = check_reason(reason)
        meta = check_json(metadata, "metadata")
        when = self.c.instant(at)
        request = self.c.request("hold", at, when, member_id=member_id, points=points,
                                ttl=ttl.total_seconds(), wallet=wallet_, reason=reason,
                                metadata=meta)

        def apply(work: Work) -> HoldResult:
            uow, ledger = work.uow, work.ledger
            book = self.books(uow, ledger, wallet_, [member_id], need_lots=True)[member_id]
            tx, hold = ledger.hold(book, points, ttl=ttl, reason=reason, metadata=meta)
            balance = self.balance_of(book.state, when,
                                       self._next_expiring_after(uow, ledger, book))
            return HoldResult(hold_id=hold.id, transaction_id=tx.id, member_id=member_id,
                              wallet=wallet_, points=points, expires_at=hold.expires_at,
                              balance=balance)

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def _resolve(
        self,
        op: str,
        hold_id: uuid.UUID | str,
        capture: int | None,
        key: str,
        at: dt.datetime | None,
        reason: str,
        metadata: Mapping[str, Any] | None,
    ) -> TransactionResult:
        hid = check_id(hold_id, "hold_id")
        if capture is not None:
            capture = check_points(capture)
        key = check_key(key)
        reason = check_reason(reason)
        meta = check_json(metadata, "metadata")
        when = self.c.instant(at)
        request = self.c.request(op, at, when, hold_id=str(hid), points=capture, reason=reason,
                                metadata=meta)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            stored = uow.ledger.get_hold(hid)
            if stored is None:
                raise HoldNotFound("no such hold", hold_id=str(hid))
            if stored.status is not HoldStatus.OPEN:
                raise HoldNotOpen("the hold is no longer open", hold_id=str(hid),
                                  status=stored.status.value)
            if op == "capture" and stored.expires_at <= when:
                raise HoldExpired("the hold expired before capture", hold_id=str(hid),
                                  expires_at=stored.expires_at.isoformat())
            book = self.books(uow, ledger, stored.wallet, [stored.member_id],
                               need_lots=True)[stored.member_id]
            holds = book.holds or {}
            hold: Hold | None = holds.get(hid)
            if hold is None:  # released by the member's own due work just now
                raise HoldNotOpen("the hold is no longer open", hold_id=str(hid),
                                  status=HoldStatus.RELEASED.value)
            points = hold.points if capture is None else capture
            status = HoldStatus.CAPTURED if op == "capture" else HoldStatus.VOIDED
            tx = ledger.resolve_hold(book, hold, capture=points if op == "capture" else 0,
                                     status=status, reason=reason, metadata=meta)
            return self.tx_result(uow, ledger, book, tx)

        return self.c.pipeline.run(key, request, when, None, apply)

    def capture(
        self,
        hold_id: uuid.UUID | str,
        points: int | None = None,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Redeem ``points`` of an open hold (all of it by default); the rest returns
        to available. Raises HoldExpired once the hold's ttl has passed."""
        return self._resolve("capture", hold_id, points, key, at, reason, metadata)

    def void(
        self,
        hold_id: uuid.UUID | str,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> TransactionResult:
        """Give an open hold's points back to available (checkout abandoned)."""
        return self._resolve("void", hold_id, None, key, at, reason, metadata)

    def activate(
        self,
        earn_id: uuid.UUID | str,
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> TransactionResult:
        """Make the pending points of an earn spendable now (e.g. the return window
        closed early). Raises NotPending if nothing of it is pending."""
        tid = check_id(earn_id, "earn_id")
        key = check_key(key)
        reason = check_reason(reason)
        when = self.c.instant(at)
        request = self.c.request("activate", at, when, earn_id=str(tid), reason=reason)

        def apply(work: Work) -> TransactionResult:
            uow, ledger = work.uow, work.ledger
            original = uow.ledger.get_transaction(tid)
            if original is None:
                raise TransactionNotFound("no such transaction", transaction_id=str(tid))
            book = self.books(uow, ledger, original.wallet, [original.member_id],
                               need_lots=True)[original.member_id]
            lots = book.lots or {}
            pending = [lots[m.lot_id] for m in original.movements
                       if m.delta > 0 and m.lot_id in lots and lots[m.lot_id].pending
                       and lots[m.lot_id].remaining > 0]
            if not pending:
                raise NotPending("nothing of this transaction is pending",
                                 transaction_id=str(tid))
            txs = [ledger.activate(book, lot, reason=reason) for lot in pending]
            return self.tx_result(uow, ledger, book, txs[0],
                                   tuple(tx.id for tx in txs[1:]))

        return self.c.pipeline.run(key, request, when, None, apply)

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

    @collector_paused()  # objects per member, none garbage until the write ends
    def bulk_earn(
        self,
        awards: Mapping[str, int] | Iterable[tuple[str, int]],
        *,
        key: str,
        at: dt.datetime | None = None,
        wallet: str | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> BulkEarnResult:
        """Award points to many members in one call (a campaign gift), as one set-based
        write: all members get their lot or none does. Unknown members raise
        MemberNotFound naming them, and nothing is written."""
        if not isinstance(awards, Mapping) and (
                isinstance(awards, str | bytes) or not isinstance(awards, Iterable)):
            raise InvalidInput("awards must be a mapping of member id to points, or "
                               "(member_id, points) pairs", awards=shown(awards))
        items = list(awards.items()) if isinstance(awards, Mapping) else list(awards)
        if not items:
            raise InvalidInput("bulk earn needs at least one award")
        members: list[str] = []
        seen: set[str] = set()
        amounts: dict[str, int] = {}
        for item in items:
            if not isinstance(item, tuple) or len(item) != 2:
                raise InvalidInput("each award is a (member_id, points) pair", award=shown(item))
            member_id = check_member_id(item[0])
            if member_id in seen:
                raise InvalidInput("a member appears twice in a bulk earn", member_id=member_id)
            seen.add(member_id)
            members.append(member_id)
            amounts[member_id] = check_points(item[1])
        key, wallet_, reason, meta, when = self._common(key, wallet, reason, metadata, at)
        digest = hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()
        request = self.c.request("bulk_earn", at, when, awards=digest, wallet=wallet_,
                                reason=reason, metadata=meta)

        def apply(work: Work) -> BulkEarnResult:
            uow, ledger = work.uow, work.ledger
            batch_id = self.c.new_id()
            books = self.books(uow, ledger, wallet_, members, need_lots=False)
            meta_ = {**meta, "batch_id": str(batch_id)}
            for member_id in members:
                ledger.earn(books[member_id], amounts[member_id], reason=reason, metadata=meta_)
            return BulkEarnResult(batch_id=batch_id, members=len(members),
                                  points=sum(amounts.values()), occurred_at=when)

        return self.c.pipeline.run(key, request, when, None, apply)

