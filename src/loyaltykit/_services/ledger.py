"""The ledger's service: members, points, holds, corrections.

The everyday writes of a shop (enrol, earn, spend, hold, capture, void, activate,
bulk earn; the corrections, reverse, adjust, clawback and transfer, are in
:mod:`loyaltykit._services.ledger_corrections`, the building blocks in
:mod:`loyaltykit._services.ledger_books`). Every write validates its input
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
    DuplicateKey,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    InvalidInput,
    MemberAlreadyEnrolled,
    NotPending,
    TransactionNotFound,
    shown,
)
from loyaltykit._events import MemberEnrolled
from loyaltykit._ledger import MemberBook
from loyaltykit._member_keys import ERASED_PREFIX
from loyaltykit._model import (
    AccountState,
    Hold,
    HoldStatus,
    Member,
)
from loyaltykit._pipeline import Work
from loyaltykit._referrals import Identity
from loyaltykit._results import (
    BulkEarnResult,
    HoldResult,
    TransactionResult,
)
from loyaltykit._services.context import Context
from loyaltykit._services.ledger_books import lots_by_member
from loyaltykit._services.ledger_corrections import LedgerCorrections
from loyaltykit._validate import (
    check_id,
    check_instant,
    check_json,
    check_member_id,
    check_reason,
)
from loyaltykit._values import check_key, check_points

__all__ = ["ENROL_KEY", "MAX_HOLD_TTL", "LedgerService", "lots_by_member"]

#: The longest a hold may reserve points (a checkout's reservation, not a savings plan).
MAX_HOLD_TTL = dt.timedelta(days=3660)
ENROL_KEY = "enrol:"  # the prefix of enrol's default keys

#: Turns enrol's raw ``referral_code`` and ``identity`` into what
#: :class:`~loyaltykit._events.MemberEnrolled` carries: (normalised code or None,
#: keyed hashes of the member's identity).
EnrolmentExtras = Callable[[object, object],
                           tuple[str | None, tuple[tuple[str, str], ...]]]


class LedgerService(LedgerCorrections):
    """Members, points and holds of one program (see the module docstring)."""

    def __init__(self, c: Context, enrolment_extras: EnrolmentExtras) -> None:
        super().__init__(c)
        #: the referral capability's check of enrol's referral code and identity
        self.enrolment_extras = enrolment_extras

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

