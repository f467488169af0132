"""The referrals' service: codes, attribution, two-sided rewards, fraud checks, stats.

Referrals react to other capabilities through domain events: an enrolment with a
code attributes the new member (:class:`~loyaltykit._events.MemberEnrolled`), the
referee's first qualifying order pays both sides, pending until its return window
closes (:class:`~loyaltykit._events.OrderRecorded`), and a return within that window
that leaves the order below the minimum voids them
(:class:`~loyaltykit._events.OrderReturned`).

Recording a referral and every change of its status raise a
:class:`~loyaltykit._services.referral_events.ReferralChanged` domain event in the same
unit of work (the outbox's referral events: :mod:`loyaltykit._services.referral_events`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

import attrs

from loyaltykit._errors import (
    AlreadyReferred,
    CodeExpired,
    CodeNotFound,
    CodeUsedUp,
    CodeVolumeExhausted,
    InvalidInput,
    MemberNotFound,
    NotReferable,
    ReferralNotFlagged,
    ReferralNotFound,
    SelfReferral,
    shown,
)
from loyaltykit._events import MemberEnrolled, OrderRecorded, OrderReturned
from loyaltykit._ledger import MemberBook
from loyaltykit._model import Member, OrderRecord, OrderStatus
from loyaltykit._orders import Order
from loyaltykit._pipeline import EventBus, Work
from loyaltykit._program import zone
from loyaltykit._referrals import (
    FraudCheck,
    Identity,
    Outcome,
    Referral,
    ReferralCase,
    ReferralCode,
    ReferralMark,
    ReferralPolicy,
    ReferralStatus,
    ReferrerStats,
    Source,
    add_days,
    default_checks,
    judge,
)
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._services.referral_events import ReferralChanged
from loyaltykit._validate import check_instant, check_member_id, check_reason
from loyaltykit._values import check_key
from loyaltykit.storage import ReferralChanges

__all__ = ["ReferralService"]

logger = logging.getLogger("loyaltykit")

#: The most uses a referral code may be given (as a policy's ``code_max_uses``).
MAX_USES = 10**9


#: An identity's keyed hashes: sorted (kind, digest) pairs, one per kind and secret.
Marks = tuple[tuple[str, str], ...]

#: The most secrets kept at once (the current one and those being rotated out).
MAX_SECRETS = 8


def _secrets(secret: object) -> tuple[bytes, ...]:
    """``Loyalty``'s ``secret``: one key, or the current key first and then older ones
    whose marks still match (a rotation window); each at least 16 bytes."""
    if secret is None:
        return ()
    found = (secret,) if isinstance(secret, bytes) else secret
    if (isinstance(found, (str, bytes, bytearray)) or not isinstance(found, Sequence)
            or not 1 <= len(found) <= MAX_SECRETS
            or not all(isinstance(s, bytes) and len(s) >= 16 for s in found)):
        raise InvalidInput("secret must be bytes of at least 16 bytes, or a sequence of 1 "
                           f"to {MAX_SECRETS} of them (the current one first)",
                           secret="(hidden)")
    return tuple(found)


class ReferralService:
    """Referrals of one program (see the module docstring); ``loyalty.referrals``."""

    def __init__(self, c: Context, ledger: LedgerService, *,
                 secret: bytes | Sequence[bytes] | None,
                 fraud_checks: Sequence[FraudCheck] | None,
                 randbelow: Callable[[int], int] = secrets.randbelow) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        self._secrets = _secrets(secret)
        if fraud_checks is None:
            checks: tuple[FraudCheck, ...] = (
                default_checks(c.program.referrals) if c.program.referrals is not None
                else ())
        else:
            if isinstance(fraud_checks, str | bytes | Mapping) \
                    or not isinstance(fraud_checks, Iterable):
                raise InvalidInput("fraud checks must be callables returning a Verdict",
                                   fraud_checks=shown(fraud_checks))
            checks = tuple(fraud_checks)
            # a class is callable, but calling it builds a check, it does not run one
            if not all(callable(c) and not isinstance(c, type) for c in checks):
                raise InvalidInput("fraud checks must be callables returning a Verdict",
                                   fraud_checks=shown(fraud_checks))
        self._fraud_checks = checks
        self._randbelow = randbelow

    def subscribe(self, bus: EventBus) -> None:
        """Attribute enrolments that carry a code (and keep identities); follow orders
        of referees when the program has a referral policy."""
        bus.subscribe(MemberEnrolled, self._on_enrolled)
        if self.program.referrals is not None:
            bus.subscribe(OrderRecorded, self._on_order)
            bus.subscribe(OrderReturned, self._on_return)

    def enrolment_extras(self, referral_code: object, identity: object
                         ) -> tuple[str | None, Marks]:
        """Check enrol's ``referral_code`` (normalised; malformed raises
        :class:`~loyaltykit.InvalidCode`) and turn its ``identity`` into keyed hashes."""
        parsed = (self._referral_policy().code.parse(referral_code)  # type: ignore[arg-type]
                  if referral_code is not None else None)
        return parsed, self._digests(identity)

    def _on_enrolled(self, work: Work, event: MemberEnrolled) -> None:
        member = event.member
        if event.referral_code is not None:
            self._attach(work, member.member_id, event.referral_code, member.enrolled_at,
                         event.digests, member=member)
        elif event.digests:
            work.part(ReferralChanges).referral_marks.extend(
                self._marks(member.member_id, event.digests))

    def _on_order(self, work: Work, event: OrderRecorded) -> None:
        book = work.ledger.book(event.record.member_id, event.wallet)
        self._referral_on_order(work, book, event.wallet, event.order,
                                event.record.placed_at)

    def _on_return(self, work: Work, event: OrderReturned) -> None:
        book = work.ledger.book(event.record.member_id, event.wallet)
        self._referral_on_return(work, book, event.wallet, event.record, event.after,
                                 event.at, cancel=event.cancelled)

    def _referral_policy(self) -> ReferralPolicy:
        policy = self.program.referrals
        if policy is None:
            raise InvalidInput("the program has no referral policy", program_id=self.program.id)
        return policy

    def _digests(self, identity: object) -> Marks:
        """The identity's keyed hashes under every secret (the current one and those
        still in their rotation window), as sorted (kind, digest) pairs."""
        if identity is None:
            return ()
        if not isinstance(identity, Identity):
            # not its repr: whatever was given in its place may hold an e-mail address
            raise InvalidInput("identity must be an Identity", field="identity",
                               type=type(identity).__name__)
        if identity.empty:
            return ()
        if not self._secrets:
            raise InvalidInput("fingerprints are kept only as keyed hashes: give Loyalty a "
                               "secret (bytes) to keep an identity", member_identity="given")
        return tuple(sorted({pair for secret in self._secrets
                             for pair in identity.digests(secret).items()}))

    def _marks(self, member_id: str, digests: Marks) -> list[ReferralMark]:
        return [ReferralMark(self.program.id, member_id, kind, digest)
                for kind, digest in digests]

    def check_code(self, text: str) -> str:
        """Normalise a typed referral code and return its stored form, or raise
        :class:`~loyaltykit.InvalidCode` if it cannot be one of the program's codes (a
        typo is caught by the check character). Reads no storage: a form can call it on
        every keystroke."""
        return self._referral_policy().code.parse(text)

    def issue_code(
        self,
        member_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        source: Source = Source.CUSTOMER,
        expires_at: dt.datetime | None = None,
        max_uses: int | None = None,
    ) -> ReferralCode:
        """Issue a new referral code to a member, drawn from :mod:`secrets`.

        The storage's unique rule on codes keeps every code distinct: a drawn code that
        is taken is drawn again. ``source`` picks the reward policy; ``expires_at``
        (later than the issue) defaults to the policy's ``code_valid_days`` after issue
        and ``max_uses`` (1 to 10**9) to its ``code_max_uses``. The key defaults to
        ``"referral-code:<member_id>"`` (the member's first code); give another key for
        more codes.

        The program issues at most its code spec's ``planned`` codes (every member's,
        erased members' too: the storage keeps a per-program count that each issue
        raises with a guarded increment, so concurrent issuers cannot pass the plan
        either); past it :class:`~loyaltykit.CodeVolumeExhausted` is raised and
        nothing is written. A new program version with a larger plan issues more.
        """
        policy = self._referral_policy()
        member_id = check_member_id(member_id)
        key = check_key(key if key is not None else f"referral-code:{member_id}")
        if not isinstance(source, Source):
            raise InvalidInput("source must be a Source", source=shown(source))
        when = self.c.instant(at)
        expiry: dt.datetime | None
        if expires_at is not None:
            expiry = check_instant(expires_at, "expires_at")
            if expiry <= when:
                raise InvalidInput("expires_at must be later than the code is issued",
                                   expires_at=expiry.isoformat(), at=when.isoformat())
        elif policy.code_valid_days is not None:
            expiry = add_days(when, policy.code_valid_days, zone(self.program.time_zone))
        else:
            expiry = None
        if max_uses is None:
            max_uses = policy.code_max_uses
        elif isinstance(max_uses, bool) or not isinstance(max_uses, int) \
                or not 1 <= max_uses <= MAX_USES:
            raise InvalidInput(f"max_uses must be an int from 1 to {MAX_USES}",
                               max_uses=max_uses)
        request = self.c.request("issue_code", at, when, member_id=member_id,
                                source=source.value,
                                expires_at=expiry.isoformat() if expiry else None,
                                max_uses=max_uses)

        def apply(work: Work) -> ReferralCode:
            uow = work.uow
            if uow.ledger.get_member(member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            if not uow.referrals.reserve_codes(1, policy.code.planned):
                raise CodeVolumeExhausted(
                    "the program has issued as many codes as its code spec plans for; a "
                    "new program version with a larger plan issues more",
                    planned=policy.code.planned, issued=uow.referrals.count_codes())
            code = policy.code.draw(self._randbelow)
            issued = ReferralCode(
                program_id=self.program.id, code=code, shown=policy.code.display(code),
                member_id=member_id, source=source, created_at=when, expires_at=expiry,
                max_uses=max_uses, uses=0)
            work.part(ReferralChanges).referral_codes.append(issued)
            return issued

        return self.c.pipeline.run(key, request, when, member_id, apply, redraw="code")

    def codes(self, member_id: str) -> list[ReferralCode]:
        """Return the member's referral codes, oldest first."""
        member_id = check_member_id(member_id)
        with self.c.read() as uow:
            if uow.ledger.get_member(member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            return uow.referrals.member_codes(member_id)

    def identify(
        self,
        member_id: str,
        identity: Identity,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
    ) -> Member:
        """Keep keyed hashes of what identifies a member (e-mail, payment and device
        fingerprints) for the fraud checks of referrals they make or receive. The raw
        values are never stored. The key defaults to one derived from the hashes."""
        member_id = check_member_id(member_id)
        digests = self._digests(identity)
        if not digests:
            raise InvalidInput("identity gives nothing to keep", member_id=member_id)
        when = self.c.instant(at)
        marks = list(digests)
        key = check_key(key if key is not None else "identify:" + hashlib.sha256(
            f"{member_id}|{marks}".encode()).hexdigest()[:40])
        request = self.c.request("identify", at, when, member_id=member_id, marks=marks)

        def apply(work: Work) -> Member:
            uow = work.uow
            member = uow.ledger.get_member(member_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            work.part(ReferralChanges).referral_marks.extend(self._marks(member_id, digests))
            return member

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def refer(
        self,
        referee_id: str,
        code: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        identity: Identity | None = None,
    ) -> Referral:
        """Attach a referral code to an enrolled member (the referee) within the
        policy's ``attach_within_days`` of enrolling. The key defaults to
        ``"refer:<referee_id>"``.

        A malformed code raises :class:`~loyaltykit.InvalidCode` before any storage is
        read; an unknown one :class:`~loyaltykit.CodeNotFound`; an expired or used-up
        one :class:`~loyaltykit.CodeExpired` / :class:`~loyaltykit.CodeUsedUp`. One's
        own code raises :class:`~loyaltykit.SelfReferral`, a second referral
        :class:`~loyaltykit.AlreadyReferred`, and a member past the window or (unless the
        policy allows them) with orders recorded :class:`~loyaltykit.NotReferable`:
        nothing is written. Otherwise the fraud checks judge it and the referral is kept
        as waiting, flagged or blocked, with their reasons.
        """
        policy = self._referral_policy()
        referee_id = check_member_id(referee_id, "referee_id")
        parsed = policy.code.parse(code)
        digests = self._digests(identity)
        key = check_key(key if key is not None else f"refer:{referee_id}")
        when = self.c.instant(at)
        request = self.c.request("refer", at, when, referee_id=referee_id, code=parsed,
                                marks=list(digests))

        def apply(work: Work) -> Referral:
            return self._attach(work, referee_id, parsed, when, digests, member=None)

        return self.c.pipeline.run(key, request, when, referee_id, apply)

    def _attach(self, work: Work, referee_id: str, code: str,
                when: dt.datetime, digests: Marks, *, member: Member | None
                ) -> Referral:
        """Attribute ``referee_id`` to the owner of ``code`` (``member``: the referee
        being enrolled in this unit of work; None: an enrolled member)."""
        uow, ledger = work.uow, work.ledger
        policy = self._referral_policy()
        found = uow.referrals.get_code(code)
        if found is None:
            raise CodeNotFound("no such referral code", code=code)
        if found.member_id == referee_id:
            raise SelfReferral("a member cannot use their own code", reason="own code",
                               member_id=referee_id)
        if found.expires_at is not None and when >= found.expires_at:
            raise CodeExpired("the code has expired", code=code,
                              expires_at=found.expires_at.isoformat())
        if member is None:
            member = uow.ledger.get_member(referee_id)
            if member is None:
                raise MemberNotFound("member is not enrolled", member_ids=[referee_id])
            existing = uow.referrals.get_referral(referee_id)
            if existing is not None:
                raise AlreadyReferred("the member already has a referral",
                                      reason="already referred", referee_id=referee_id,
                                      referrer_id=existing.referrer_id)
            closes = add_days(member.enrolled_at, policy.attach_within_days,
                              zone(self.program.time_zone))
            if when > closes:
                raise NotReferable("the window to attach a code has closed",
                                   reason="attach window closed", referee_id=referee_id,
                                   closed_at=closes.isoformat())
            if not policy.existing_customers and uow.orders.count_orders(referee_id) > 0:
                raise NotReferable("an existing customer cannot be referred",
                                   reason="existing customer", referee_id=referee_id)
        referrer_id = found.member_id
        marks = uow.referrals.marks_of([referrer_id, referee_id])
        mine = frozenset((m.kind, m.digest) for m in marks if m.member_id == referrer_id)
        theirs = frozenset((m.kind, m.digest) for m in marks if m.member_id == referee_id)
        chain: list[str] = []
        up = uow.referrals.get_referral(referrer_id)
        while up is not None and up.referrer_id not in chain and len(chain) < 32:
            chain.append(up.referrer_id)
            up = uow.referrals.get_referral(up.referrer_id)
        last_hour, last_day = uow.referrals.count_attributions(
            referrer_id, (when - dt.timedelta(hours=1), when - dt.timedelta(days=1)))
        case = ReferralCase(
            referrer_id=referrer_id, referee_id=referee_id, at=when, source=found.source,
            referrer_marks=mine, referee_marks=theirs | frozenset(digests),
            last_hour=last_hour, last_day=last_day, chain=tuple(chain))
        verdict = judge(self._fraud_checks, case)
        status = {Outcome.PASS: ReferralStatus.WAITING, Outcome.FLAG: ReferralStatus.FLAGGED,
                  Outcome.BLOCK: ReferralStatus.BLOCKED}[verdict.outcome]
        # a blocked attempt does not use the code up
        if status is not ReferralStatus.BLOCKED and not uow.referrals.claim_code(code):
            raise CodeUsedUp("the code has been used as often as it may be", code=code,
                             max_uses=found.max_uses)
        _, campaign = policy.reward_for(found.source, when)
        referral = Referral(
            program_id=self.program.id, referee_id=referee_id, referrer_id=referrer_id,
            code=code, source=found.source, status=status, attributed_at=when,
            updated_at=ledger.recorded_at, reasons=verdict.reasons, campaign=campaign,
            decided_at=when if status is ReferralStatus.BLOCKED else None)
        work.part(ReferralChanges).referrals[referee_id] = referral
        work.part(ReferralChanges).new_referrals.add(referee_id)
        work.part(ReferralChanges).referral_marks.extend(self._marks(referee_id, digests))
        work.publish(ReferralChanged(None, referral, ledger.at))
        if status is not ReferralStatus.WAITING:
            logger.info("referral of %s by %s %s: %s", referee_id, referrer_id,
                        status.value, "; ".join(verdict.reasons))
        return referral

    def _qualifies(self, policy: ReferralPolicy, referral: Referral, net: Decimal,
                   at: dt.datetime, number: int) -> bool:
        """True if an order of ``net`` goods placed at ``at`` (the referee's
        ``number``-th) qualifies ``referral``."""
        deadline = add_days(referral.attributed_at, policy.qualify_within_days,
                            zone(self.program.time_zone))
        if not referral.attributed_at <= at < deadline:
            return False
        if policy.min_net is not None and net < policy.min_net.amount:
            return False
        return policy.order_number is None or number == policy.order_number

    def _referral_on_order(self, work: Work, book: MemberBook,
                           wallet: str, order: Order, at: dt.datetime) -> None:
        """Pay (or, flagged, note) the referral this order qualifies, if any."""
        uow, ledger = work.uow, work.ledger
        policy = self.program.referrals
        if policy is None:
            return
        referral = uow.referrals.get_referral(order.member_id)
        if referral is None or referral.order_id is not None or referral.status not in (
                ReferralStatus.WAITING, ReferralStatus.FLAGGED):
            return
        number = uow.orders.count_orders(order.member_id) + 1
        if not self._qualifies(policy, referral, order.net_goods, at, number):
            return
        if referral.status is ReferralStatus.FLAGGED:
            work.part(ReferralChanges).referrals[referral.referee_id] = attrs.evolve(
                referral, order_id=order.id, qualified_at=at, updated_at=ledger.recorded_at)
            return
        referee = book if wallet == self.program.default_wallet else None
        self._pay(work, referral, order.id, at, referee)

    def _pay(self, work: Work, referral: Referral, order_id: str,
             order_at: dt.datetime, referee_book: MemberBook | None,
             referrer_book: MemberBook | None = None) -> Referral:
        """Issue both rewards, pending until the order's return window closes; the
        referrer's only within the cap (counted under the referrer's lock)."""
        uow, ledger = work.uow, work.ledger
        policy = self._referral_policy()
        tz = zone(self.program.time_zone)
        wallet = self.program.default_wallet
        reward, _ = policy.reward_for(referral.source, referral.attributed_at)
        settles = add_days(order_at, policy.return_window_days, tz)
        reasons = list(referral.reasons)
        referee_tx = referrer_tx = None
        referrer_points = reward.referrer
        if referrer_points:
            book = referrer_book or self._ledger.books(uow, ledger, wallet, [referral.referrer_id],
                                                need_lots=False)[referral.referrer_id]
            if policy.cap is not None:
                start, end = policy.cap.bounds(order_at, tz)
                if uow.referrals.count_paid(referral.referrer_id, start, end) >= policy.cap.count:
                    referrer_points = 0
                    reasons.append(f"cap: the referrer was paid for {policy.cap.count} "
                                   f"referrals this {policy.cap.period.value}")
            if referrer_points:
                referrer_tx = ledger.earn(
                    book, referrer_points, reason="referral reward (referrer)",
                    metadata={"side": "referrer", "order_id": order_id},
                    activates_at=settles, pending=True).id
        if reward.referee:
            if referee_book is None:
                referee_book = self._ledger.books(uow, ledger, wallet, [referral.referee_id],
                                           need_lots=False)[referral.referee_id]
            referee_tx = ledger.earn(
                referee_book, reward.referee, reason="referral reward (referee)",
                metadata={"side": "referee", "order_id": order_id},
                activates_at=settles, pending=True).id
        paid = attrs.evolve(
            referral, status=ReferralStatus.QUALIFIED, order_id=order_id,
            qualified_at=order_at, settles_at=settles, referrer_points=referrer_points,
            referee_points=reward.referee, referrer_tx=referrer_tx, referee_tx=referee_tx,
            reasons=tuple(reasons), updated_at=ledger.recorded_at)
        work.part(ReferralChanges).referrals[referral.referee_id] = paid
        work.publish(ReferralChanged(referral, paid, ledger.at))
        return paid

    def _referral_on_return(self, work: Work, book: MemberBook,
                            wallet: str, record: OrderRecord, as_it_stands: Order,
                            at: dt.datetime, *, cancel: bool) -> None:
        """Void the rewards of the referral this order qualified when a return within
        its window leaves the order below the minimum (or cancels it)."""
        uow, ledger = work.uow, work.ledger
        policy = self.program.referrals
        if policy is None:
            return
        referral = uow.referrals.get_referral(record.member_id)
        if referral is None or referral.order_id != record.order_id:
            return
        below = cancel or (policy.min_net is not None
                           and as_it_stands.net_goods < policy.min_net.amount)
        if not below:
            return
        if referral.status is ReferralStatus.FLAGGED:  # not paid yet: just not qualified
            work.part(ReferralChanges).referrals[referral.referee_id] = attrs.evolve(
                referral, order_id=None, qualified_at=None, updated_at=ledger.recorded_at)
            return
        if referral.status is not ReferralStatus.QUALIFIED or referral.settles_at is None \
                or at >= referral.settles_at:
            return
        default = self.program.default_wallet
        reason = f"referral voided: order {record.order_id} returned"
        for member_id, tx_id in ((referral.referee_id, referral.referee_tx),
                                 (referral.referrer_id, referral.referrer_tx)):
            if tx_id is None:
                continue
            # read by their member: routed on a distributed engine (DESIGN §10)
            tx = uow.ledger.get_transaction(tx_id, member_id=member_id)
            if tx is None or uow.ledger.find_reversal(tx_id, member_id=member_id) is not None:
                continue
            lot_ids = [m.lot_id for m in tx.movements]
            if member_id == referral.referee_id and wallet == default:
                target = book
                if target.lots is not None:
                    for lot in uow.ledger.load_lots_by_id(lot_ids, member_id=member_id):
                        target.lots.setdefault(lot.id, lot)
            else:
                target = self._ledger.books(uow, ledger, default, [member_id], need_lots=True,
                                     extra_lots={member_id: lot_ids})[member_id]
            ledger.reverse(target, tx, reason=reason,
                           metadata={"order_id": record.order_id})
        voided = attrs.evolve(referral, status=ReferralStatus.VOIDED, decided_at=at,
                              updated_at=ledger.recorded_at)
        work.part(ReferralChanges).referrals[referral.referee_id] = voided
        work.publish(ReferralChanged(referral, voided, ledger.at))

    def _decide_referral(self, referee_id: str, key: str | None, at: dt.datetime | None,
                         reason: str, *, approve: bool) -> Referral:
        self._referral_policy()
        referee_id = check_member_id(referee_id, "referee_id")
        reason = check_reason(reason, required=not approve)
        op = "approve_referral" if approve else "reject_referral"
        key = check_key(key if key is not None else f"{op}:{referee_id}")
        when = self.c.instant(at)
        request = self.c.request(op, at, when, referee_id=referee_id, reason=reason)

        def apply(work: Work) -> Referral:
            uow, ledger = work.uow, work.ledger
            referral = uow.referrals.get_referral(referee_id)
            if referral is None:
                raise ReferralNotFound("the member has no referral", referee_id=referee_id)
            if referral.status is not ReferralStatus.FLAGGED:
                raise ReferralNotFlagged("only a flagged referral can be approved or rejected",
                                         referee_id=referee_id, status=referral.status.value)
            if not approve:
                rejected = attrs.evolve(
                    referral, status=ReferralStatus.REJECTED, decided_at=when,
                    reasons=(*referral.reasons, f"rejected: {reason}"),
                    updated_at=ledger.recorded_at)
                work.part(ReferralChanges).referrals[referee_id] = rejected
                work.publish(ReferralChanged(referral, rejected, ledger.at))
                return rejected
            decided = attrs.evolve(
                referral, status=ReferralStatus.WAITING, decided_at=when, order_id=None,
                qualified_at=None, updated_at=ledger.recorded_at,
                reasons=(*referral.reasons, *((f"approved: {reason}",) if reason else ())))
            work.part(ReferralChanges).referrals[referee_id] = decided
            work.publish(ReferralChanged(referral, decided, ledger.at))
            order = uow.orders.get_order(referral.order_id) if referral.order_id else None
            if order is not None and order.status is not OrderStatus.CANCELLED:
                # the noted order pays now, if what is left of it still qualifies
                as_it_stands = Order.from_dict(dict(order.order)).after_returns(
                    dict(order.returned))
                policy = self._referral_policy()
                if policy.min_net is None or as_it_stands.net_goods >= policy.min_net.amount:
                    # both wallets locked in member order, as every other writer does
                    books = self._ledger.books(uow, ledger, self.program.default_wallet,
                                        [referee_id, referral.referrer_id], need_lots=False)
                    return self._pay(work, decided, order.order_id, order.placed_at,
                                     books[referee_id], books[referral.referrer_id])
            return decided

        return self.c.pipeline.run(key, request, when, referee_id, apply)

    def approve(self, referee_id: str, *, key: str | None = None,
                         at: dt.datetime | None = None, reason: str = "") -> Referral:
        """Approve a flagged referral: it waits for its qualifying order, or, if one was
        placed while it was flagged (and still qualifies), pays now (pending until that
        order's return window closes)."""
        return self._decide_referral(referee_id, key, at, reason, approve=True)

    def reject(self, referee_id: str, *, reason: str, key: str | None = None,
                        at: dt.datetime | None = None) -> Referral:
        """Reject a flagged referral, with a reason: it is never paid."""
        return self._decide_referral(referee_id, key, at, reason, approve=False)

    def get(self, referee_id: str) -> Referral:
        """Return the member's referral (as referee)."""
        referee_id = check_member_id(referee_id, "referee_id")
        with self.c.read() as uow:
            found = uow.referrals.get_referral(referee_id)
        if found is None:
            raise ReferralNotFound("the member has no referral", referee_id=referee_id)
        return found

    def made_by(self, referrer_id: str) -> list[Referral]:
        """Return the referrals a member made (as referrer), oldest first."""
        referrer_id = check_member_id(referrer_id, "referrer_id")
        with self.c.read() as uow:
            return uow.referrals.referrals_of(referrer_id)

    def stats(self, member_id: str, *, at: dt.datetime | None = None
                       ) -> ReferrerStats:
        """Count what a member's referrals came to at ``at`` (default: now): invited,
        waiting, expired, flagged, qualified (pending + rewarded), voided and rejected
        (blocked or rejected, with their reasons counted), and the points pending and
        rewarded."""
        policy = self._referral_policy()
        member_id = check_member_id(member_id)
        when = self.c.instant(at)
        tz = zone(self.program.time_zone)
        states: dict[str, int] = {}
        reasons: dict[str, int] = {}
        points = {"pending": 0, "rewarded": 0}
        found = self.made_by(member_id)
        for r in found:
            state = r.state_at(when, add_days(r.attributed_at, policy.qualify_within_days, tz))
            states[state] = states.get(state, 0) + 1
            if state in points:
                points[state] += r.referrer_points
            if r.status in (ReferralStatus.BLOCKED, ReferralStatus.REJECTED):
                for reason in r.reasons:
                    reasons[reason] = reasons.get(reason, 0) + 1
        return ReferrerStats(
            member_id=member_id, at=when, invited=len(found),
            waiting=states.get("waiting", 0), expired=states.get("expired", 0),
            flagged=states.get("flagged", 0),
            qualified=states.get("pending", 0) + states.get("rewarded", 0),
            pending=states.get("pending", 0), rewarded=states.get("rewarded", 0),
            voided=states.get("voided", 0),
            rejected=states.get("blocked", 0) + states.get("rejected", 0),
            points_pending=points["pending"], points_rewarded=points["rewarded"],
            reasons=reasons)

