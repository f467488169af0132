"""The privacy service: erase and export a member (DESIGN §11); ``loyalty.privacy``.

Erasing runs as one write: it locks the member's wallets (so no write of the member runs
alongside), lets each store remove what identifies the member, deletes the mapping of
the shop's id to the member key and records the erasure (key and instant only). The
ledger is not touched: balances, lots and transactions stay under the key, so the
program's totals and reports do not change. Exporting reads everything stored about a
member in one unit of work and returns it as one JSON-ready document.
"""

from __future__ import annotations

from typing import Any

from loyaltykit._errors import MemberNotFound
from loyaltykit._events import MemberErased
from loyaltykit._json import to_data
from loyaltykit._member_keys import ERASED_PREFIX, KeyedUnitOfWork
from loyaltykit._pipeline import Work
from loyaltykit._privacy import EXPORT_FORMAT, ErasureResult
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._validate import check_member_id

__all__ = ["PrivacyService"]

_PAGE = 500  # transactions per statement read while exporting


class PrivacyService:
    """Erasure and export of members (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger

    def erase(self, member_id: str) -> ErasureResult:
        """Erase a member (right to erasure): afterwards the shop's ``member_id``
        appears in no stored row, the member's attributes, identity marks and kept
        requests are deleted, and its ledger stays balanced under the name
        ``"erased:<member key>"`` (:attr:`ErasureResult.erased_as`), so program totals
        and reports are unchanged. Erasing an id that is not enrolled (or erased
        already) changes nothing and returns ``erased=False``; a later
        ``enrol(member_id)`` is a new member with an empty ledger. Erasing the erased
        name again sweeps what a write of the member that ran alongside the erasure
        may have kept (also ``erased=False``).

        Not covered: what the shop itself wrote into free text (reasons, metadata, tier
        notes, order and idempotency key ids) and the shop's own tables.
        """
        member_id = check_member_id(member_id)
        when = self.c.now()

        def apply(work: Work) -> ErasureResult:
            uow = work.uow
            assert isinstance(uow, KeyedUnitOfWork)
            # the member and all its wallets, locked in one read
            if uow.ledger.load_member(member_id, self.program.wallets, work.recorded_at,
                                      lock=True) is None:
                return ErasureResult(member_id, erased=False)
            key = uow.erase(member_id, work.recorded_at)
            if key is None:  # an erased name: swept again, nothing more to do
                return ErasureResult(member_id, erased=False)
            work.publish(MemberErased(key, work.recorded_at))
            return ErasureResult(member_id, erased=True, erased_as=ERASED_PREFIX + key,
                                 erased_at=work.recorded_at)

        return self.c.pipeline.batch(when, apply, retry=True, what="erase")

    def export(self, member_id: str) -> dict[str, Any]:
        """Everything stored about a member, as one JSON-ready document (right of
        access and portability): the member record, balances, open lots and holds and
        every transaction per wallet, orders, tier state and history, referral codes,
        the referral that brought the member, the referrals it made, its identity
        marks (keyed hashes), its vouchers and its events still in the outbox (type,
        instants, payload and position, as a consumer reads them). Raises
        :class:`~loyaltykit.MemberNotFound` for an id that is not enrolled."""
        member_id = check_member_id(member_id)
        now = self.c.now()
        with self.c.read() as uow:
            loaded = uow.ledger.load_member(member_id, self.program.wallets, now, lock=False)
            if loaded is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            wallets: dict[str, Any] = {}
            for wallet in self.program.wallets:
                state = loaded.accounts.get(wallet)
                if state is None:
                    continue
                balance = self._ledger.balance_of(
                    state, now, self._ledger.next_expiring(uow, state))
                transactions, before = [], None
                while True:
                    page, _ = uow.ledger.statement(wallet, member_id, limit=_PAGE,
                                                   before=before)
                    transactions += page
                    if len(page) < _PAGE:
                        break
                    before = (page[-1].occurred_at, page[-1].id)
                wallets[wallet] = {
                    "balance": balance,
                    "open_lots": uow.ledger.load_lots(wallet, [member_id]),
                    "open_holds": uow.ledger.load_open_holds(wallet, [member_id]),
                    "transactions": transactions,
                }
            document: dict[str, Any] = {
                "format": EXPORT_FORMAT,
                "program_id": self.program.id,
                "exported_at": now,
                "member": loaded.member,
                "wallets": wallets,
                "orders": uow.orders.load_orders(member_id),
                "tier": uow.tiers.get_tier_state(member_id),
                "tier_history": uow.tiers.tier_history(member_id),
                "referral_codes": uow.referrals.member_codes(member_id),
                "referred_by": uow.referrals.get_referral(member_id),
                "referrals_made": uow.referrals.referrals_of(member_id),
                "identity_marks": uow.referrals.marks_of([member_id]),
                "vouchers": uow.rewards.member_vouchers(member_id),
                "events": [e.to_dict() for e in uow.outbox.member_events(member_id)],
            }
        exported: dict[str, Any] = to_data(document)
        return exported
