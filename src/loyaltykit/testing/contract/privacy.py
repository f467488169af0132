"""The privacy part of the storage contract (DESIGN §11, scenario P1): member keys,
erasure and export.

Searching what a backend stores needs the backend: :meth:`PrivacyContract.stored_text`
knows the library's own (memory and SQL); a third-party backend overrides it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest

from loyaltykit import (
    DuplicateKey,
    Identity,
    InvalidInput,
    Kind,
    Loyalty,
    MemberNotFound,
    Money,
    Order,
    OrderLine,
    ReferralStatus,
    Storage,
    TestClock,
)
from loyaltykit.storage import Erasure, MemberKeyChanges
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.contract.base import ContractPart, berlin
from loyaltykit.testing.contract.referrals import referral_program
from loyaltykit.testing.contract.tiers import tier_program
from loyaltykit.testing.invariants import check_invariants
from loyaltykit.testing.stored import stored_text

__all__ = ["PrivacyContract"]

SECRET = b"privacy-contract-secret-0001"
OLD_SECRET = b"privacy-contract-secret-old1"
#: a member id and an attribute value no other stored text contains
XAVIER = "xavier-5501"
XAVIER_SEGMENT = "plat-7731"


def privacy_program() -> Any:
    """Scenario R's referral policy with scenario T's tiers, in one program."""
    return attrs.evolve(referral_program(), tiers=tier_program().tiers)


class PrivacyContract(ContractPart):
    """Erasure and export on one backend (scenario P1)."""

    def stored_text(self, storage: Storage) -> str:
        """Everything ``storage`` keeps, as text to search (override for a third-party
        backend)."""
        return stored_text(storage)

    def _world(self, storage: Storage) -> tuple[Loyalty, TestClock, dict[str, Any]]:
        """Scenario P1 up to the erasure: alice enrols, earns 100, spends 40 and refers
        bob, whose qualifying order rewards both once the return window closes."""
        clock = TestClock(berlin(2026, 3, 2, 9))
        loyalty = self.make_loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
        loyalty.enrol("alice", key="k1", attributes={"segment": "vip"},
                      identity=Identity(email="alice@example.com", device="dev-1"))
        loyalty.earn("alice", 100, key="k2")
        loyalty.spend("alice", 40, key="k3")
        code = loyalty.referrals.issue_code("alice", key="k4").code
        loyalty.enrol("bob", key="k5", referral_code=code,
                      identity=Identity(email="bob@example.com"))
        clock.advance(days=1)
        loyalty.record_order(Order(
            id="o1", member_id="bob", placed_at=clock.now(), currency="EUR",
            lines=(OrderLine(line_id="l1", sku="x", quantity=1,
                             unit_price=Money("30.00", "EUR")),)), key="k6")
        clock.advance(days=15)
        loyalty.run_due()
        return loyalty, clock, {"code": code}

    @staticmethod
    def _totals(loyalty: Loyalty, members: list[str]) -> dict[str, int]:
        fields = ("available", "pending", "held", "debt", "total", "earned", "spent",
                  "expired", "adjusted", "transferred")
        balances = [loyalty.balance(m) for m in members]
        return {f: sum(getattr(b, f) for b in balances) for f in fields}

    def test_p1_export_holds_everything_stored_about_the_member(
        self, storage: Storage
    ) -> None:
        loyalty, _, world = self._world(storage)
        document = loyalty.privacy.export("alice")
        assert document == json.loads(json.dumps(document))  # plain JSON data
        assert "alice" == document["member"]["member_id"]
        assert {"segment": "vip"} == document["member"]["attributes"]
        points = document["wallets"]["points"]
        assert 560 == points["balance"]["available"]  # 100 - 40 + the referrer's 500
        # newest first: the referral reward (earned pending, then activated), the spend,
        # the first earn
        assert ["activate", "earn", "spend", "earn"] == [
            t["kind"] for t in points["transactions"]]
        assert ["k3", "k2"] == [t["idempotency_key"] for t in points["transactions"][2:]]
        assert {"alice"} == {t["member_id"] for t in points["transactions"]}
        assert [world["code"]] == [c["code"] for c in document["referral_codes"]]
        assert [("bob", "alice", "qualified", 500)] == [
            (r["referee_id"], r["referrer_id"], r["status"], r["referrer_points"])
            for r in document["referrals_made"]]
        assert document["referred_by"] is None
        assert [("member", "silver", 600)] == [
            (c["from_tier"], c["to_tier"], c["metric"]) for c in document["tier_history"]]
        assert {"device", "email"} == {m["kind"] for m in document["identity_marks"]}
        assert "o1" not in {o["order_id"] for o in document["orders"]}  # bob's order
        assert "bob" == loyalty.privacy.export("bob")["orders"][0]["order"]["member_id"]
        assert "alice@example.com" not in json.dumps(document)  # only keyed hashes
        with pytest.raises(MemberNotFound):
            loyalty.privacy.export("nobody")

    def test_p1_erase_leaves_no_trace_of_the_member_and_every_total_as_it_was(
        self, storage: Storage
    ) -> None:
        loyalty, clock, _ = self._world(storage)
        assert "alice" in self.stored_text(storage)  # the control: it is stored
        before = self._totals(loyalty, ["alice", "bob"])
        bob = loyalty.balance("bob")
        erased = loyalty.privacy.erase("alice")
        assert erased.erased and erased.erased_as is not None
        assert erased.erased_at == clock.now()
        name = erased.erased_as
        text = self.stored_text(storage)
        assert "alice" not in text.lower()
        # the ledger stays, under the erased name; totals and the referral are unchanged
        assert before == self._totals(loyalty, [name, "bob"])
        assert bob == loyalty.balance("bob")
        referral = loyalty.referrals.get("bob")
        assert (name, ReferralStatus.QUALIFIED) == (referral.referrer_id, referral.status)
        assert [] == loyalty.privacy.export(name)["identity_marks"]
        assert {} == loyalty.privacy.export(name)["member"]["attributes"]
        check_invariants(storage, loyalty.program, [name, "bob"], at=clock.now())
        # erasing again changes nothing
        assert not loyalty.privacy.erase("alice").erased
        assert not loyalty.privacy.erase(name).erased
        assert text == self.stored_text(storage)
        with pytest.raises(MemberNotFound):
            loyalty.balance("alice")
        # a new alice is a new member with an empty ledger
        loyalty.enrol("alice", key="k7")
        assert 0 == loyalty.balance("alice").total
        assert () == loyalty.statement("alice").lines
        assert before == self._totals(loyalty, [name, "bob"])
        # due work keeps running on the erased member's ledger
        clock.advance(days=800)
        loyalty.run_due()
        check_invariants(storage, loyalty.program, [name, "bob", "alice"], at=clock.now())

    def _counterparts(self, storage: Storage) -> tuple[Loyalty, TestClock, dict[str, Any]]:
        """A member that others' rows name: xavier (with attributes) transfers to bob
        and gets a transfer from him (bob's request is kept for replays), one of them
        reversed, and records an order (its evaluation keeps the member's context)."""
        clock = TestClock(berlin(2026, 3, 2, 9))
        loyalty = self.make_loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
        loyalty.enrol(XAVIER, attributes={"segment": XAVIER_SEGMENT})
        loyalty.enrol("bob")
        loyalty.earn(XAVIER, 100, key="x-earn")
        loyalty.earn("bob", 100, key="b-earn")
        loyalty.transfer(XAVIER, "bob", 10, key="x-to-b")
        into = loyalty.transfer("bob", XAVIER, 5, key="b-to-x")
        loyalty.transfer("bob", XAVIER, 3, key="b-to-x-2")
        loyalty.reverse(into.outgoing.transaction_id, key="b-to-x-back")
        loyalty.record_order(Order(
            id="x-o1", member_id=XAVIER, placed_at=clock.now(), currency="EUR",
            lines=(OrderLine(line_id="l1", sku="x", quantity=2,
                             unit_price=Money("30.00", "EUR")),)), key="x-o1")
        return loyalty, clock, {"into": into}

    def test_erase_leaves_no_trace_in_other_members_rows_nor_in_order_contexts(
        self, storage: Storage
    ) -> None:
        loyalty, clock, world = self._counterparts(storage)
        text = self.stored_text(storage)
        assert XAVIER in text and XAVIER_SEGMENT in text  # the controls: both are stored
        bob = loyalty.balance("bob")
        replay = loyalty.transfer("bob", XAVIER, 5, key="b-to-x")
        assert replay == world["into"]
        erased = loyalty.privacy.erase(XAVIER)
        assert erased.erased_as is not None
        name = erased.erased_as
        text = self.stored_text(storage)
        assert XAVIER not in text and XAVIER_SEGMENT not in text
        # bob's transfers name the erased member; his ledger is as it was
        assert bob == loyalty.balance("bob")
        lines = loyalty.statement("bob", limit=50).lines
        named = {loyalty.transaction(line.transaction_id).metadata.get(
            "counterpart_member_id") for line in lines if line.kind is Kind.TRANSFER}
        assert {name} == named
        # bob's kept request replays, naming the erased member (the id is gone)
        again = loyalty.transfer("bob", XAVIER, 5, key="b-to-x")
        assert (world["into"].transfer_id, name) == (
            again.transfer_id, again.incoming.balance.member_id)
        # the outbox names the erased member in bob's transfers too
        events = loyalty.events.read("mailer", limit=100)
        assert {name} == {e.payload["counterpart_member_id"] for e in events
                          if e.member_id == "bob" and e.type == "points.transferred"}
        # the order's recorded context names the erased member, without attributes,
        # and a return still re-evaluates it
        clock.advance(days=1)
        loyalty.record_return("x-o1", {"l1": 1}, key="x-ret")
        check_invariants(storage, loyalty.program, [name, "bob"], at=clock.now())
        assert XAVIER not in self.stored_text(storage)
        # erasing the erased name again (the sweep) changes nothing more
        text = self.stored_text(storage)
        assert not loyalty.privacy.erase(name).erased
        assert text == self.stored_text(storage)

    def test_erasing_both_parties_of_a_transfer_renames_each_half(
        self, storage: Storage
    ) -> None:
        # the second erasure finds xavier's halves although bob's halves no longer
        # name xavier's key (the first erasure wrote his erased name there)
        loyalty, clock, _ = self._counterparts(storage)
        x_name = loyalty.privacy.erase(XAVIER).erased_as
        b_name = loyalty.privacy.erase("bob").erased_as
        assert x_name is not None and b_name is not None

        def counterparts(member_id: str) -> set[object]:
            lines = loyalty.statement(member_id, limit=50).lines
            return {loyalty.transaction(line.transaction_id).metadata.get(
                "counterpart_member_id") for line in lines if line.kind is Kind.TRANSFER}

        assert {b_name} == counterparts(x_name)
        assert {x_name} == counterparts(b_name)
        check_invariants(storage, loyalty.program, [x_name, b_name], at=clock.now())

    def test_export_holds_the_members_events(self, storage: Storage) -> None:
        loyalty, _, _ = self._counterparts(storage)
        document = loyalty.privacy.export(XAVIER)
        assert document == json.loads(json.dumps(document))
        events = document["events"]
        assert [
            "member.enrolled", "points.earned", "points.transferred", "points.transferred",
            "points.transferred", "points.reversed", "order.recorded",
        ] == [e["type"] for e in events]
        assert {XAVIER} == {e["member_id"] for e in events}
        assert {"segment": XAVIER_SEGMENT} == events[0]["payload"]["attributes"]
        assert "bob" == events[2]["payload"]["counterpart_member_id"]
        read = [e.to_dict() for e in loyalty.events.read("mailer", limit=100)
                if e.member_id == XAVIER]
        assert read == events  # as a consumer reads them: ids, instants, positions
        erased = loyalty.privacy.erase(XAVIER)
        assert erased.erased_as is not None
        after = loyalty.privacy.export(erased.erased_as)["events"]
        assert [e["id"] for e in events] + [after[-1]["id"]] == [e["id"] for e in after]
        assert "member.erased" == after[-1]["type"]
        assert {} == after[0]["payload"]["attributes"]

    def test_a_shop_id_is_stored_once_and_erasure_is_recorded(self, storage: Storage) -> None:
        loyalty, clock, _ = self._world(storage)
        with storage.unit_of_work(loyalty.program.id) as uow:
            keys = uow.members.keys_of(["alice", "bob", "carol"])
            assert {"alice", "bob"} == set(keys)
            assert keys["alice"] != keys["bob"]
            assert {keys["alice"]: "alice"} == uow.members.ids_of([keys["alice"]])
            assert uow.ledger.get_member("alice") is None  # rows carry the key
            assert uow.ledger.get_member(keys["alice"]) is not None
            assert uow.members.get_erasure(keys["alice"]) is None
        erased = loyalty.privacy.erase("alice")
        with storage.unit_of_work(loyalty.program.id) as uow:
            assert {} == uow.members.keys_of(["alice"])
            assert {} == uow.members.ids_of([keys["alice"]])
            assert Erasure(keys["alice"], clock.now()) == uow.members.get_erasure(keys["alice"])
            assert erased.erased_as == "erased:" + keys["alice"]
            # a shop id mapped twice, or a key erased twice, is a duplicate
            with pytest.raises(DuplicateKey):
                uow.members.write(MemberKeyChanges(added={"bob": keys["alice"]}))
        with storage.unit_of_work(loyalty.program.id) as uow, pytest.raises(DuplicateKey):
            uow.members.write(MemberKeyChanges(
                erasures=[Erasure(keys["alice"], clock.now())]))

    def test_an_erasure_that_fails_writes_nothing(self, storage: Storage) -> None:
        loyalty, _, _ = self._world(storage)
        text = self.stored_text(storage)
        with by_shop_ids(storage).unit_of_work(loyalty.program.id) as uow:
            uow.referrals.erase("alice")  # rolled back: never committed
        assert text == self.stored_text(storage)
        assert loyalty.privacy.export("alice")["identity_marks"]

    def test_marks_made_with_a_retired_secret_match_during_the_rotation_window(
        self, storage: Storage
    ) -> None:
        clock = TestClock(berlin(2026, 3, 2, 9))
        old = self.make_loyalty(privacy_program(), storage, clock=clock, secret=OLD_SECRET)
        old.enrol("ann", identity=Identity(email="ann@example.com"))
        code = old.referrals.issue_code("ann").code
        # the shop rotates: the new secret first, the old one still accepted
        rotating = self.make_loyalty(privacy_program(), storage, clock=clock,
                           secret=[SECRET, OLD_SECRET])
        rotating.enrol("ann2", referral_code=code,
                       identity=Identity(email="ANN@example.com"))
        assert ReferralStatus.BLOCKED == rotating.referrals.get("ann2").status
        # once the old secret is dropped, only marks made under the new one match
        rotated = self.make_loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
        rotated.enrol("ann3", referral_code=code,
                      identity=Identity(email="ann@example.com"))
        assert ReferralStatus.WAITING == rotated.referrals.get("ann3").status
        rotated.referrals.identify("ann", Identity(email="ann@example.com"))  # re-keyed
        rotated.enrol("ann4", referral_code=code, identity=Identity(email="ann@example.com"))
        assert ReferralStatus.BLOCKED == rotated.referrals.get("ann4").status

    def test_erasing_keeps_other_programs_untouched(self, storage: Storage) -> None:
        clock = TestClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
        one = self.make_loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
        other = self.make_loyalty(attrs.evolve(privacy_program(), id="other"), storage, clock=clock,
                        secret=SECRET)
        for loyalty in (one, other):
            loyalty.enrol("alice")
            loyalty.earn("alice", 10, key="e")
        assert one.privacy.erase("alice").erased
        assert 10 == other.balance("alice").available
        assert other.privacy.export("alice")["member"]["member_id"] == "alice"

    def test_ids_with_no_key_read_as_not_enrolled(self, storage: Storage) -> None:
        loyalty, _, _ = self._world(storage)
        longest = "x" * 128
        for member_id in (longest, "erased:" + "0" * 32, "erased:", "?alice"):
            with pytest.raises(MemberNotFound):
                loyalty.balance(member_id)
            with pytest.raises(MemberNotFound):
                loyalty.earn(member_id, 5, key=f"earn-{len(member_id)}-{member_id[:2]}")
            assert not loyalty.privacy.erase(member_id).erased
        loyalty.enrol(longest)
        assert 5 == loyalty.earn(longest, 5, key="long").balance.available
        text = self.stored_text(storage)
        for member_id in ("erased:" + "0" * 32, "erased:x"):  # never a shop's id
            with pytest.raises(InvalidInput):
                loyalty.enrol(member_id)
        assert text == self.stored_text(storage)
