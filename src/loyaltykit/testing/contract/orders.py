"""The order part of the storage contract: program versions, recorded orders (returns,
cancellations), earning-rule usage, account activity and the member's state read for
pricing.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import attrs
import pytest

from loyaltykit import DuplicateKey, Member, Storage
from loyaltykit.storage import (
    AccountState,
    MemberState,
    OrderRecord,
    OrderStatus,
    ProgramVersion,
    RuleUsage,
)
from loyaltykit.testing.changes import ChangeSet, write_changes
from loyaltykit.testing.contract.base import MINUTE as _MINUTE
from loyaltykit.testing.contract.base import (
    ContractPart,
    berlin,
    make_program,
    utc,
)

__all__ = ["OrderContract"]


class OrderContract(ContractPart):
    """Orders, earning-rule usage and program versions on a backend: mixed into
    StorageContract."""

    # -- program versions -------------------------------------------------------------

    @staticmethod
    def _version(
        version: int, effective_from: dt.datetime | None = None, *, program_id: str = "shop",
        label: str = "", created_at: dt.datetime | None = None,
    ) -> ProgramVersion:
        definition = {"id": program_id, "label": label or f"v{version}",
                      "wallets": ["points"], "rules": [{"id": "base", "rate": "1.5"}]}
        return ProgramVersion(program_id, version, effective_from, definition,
                              created_at or utc(2026, 1, 1))

    def test_register_program_keeps_the_first_of_each_version(self, storage: Storage
                                                                 ) -> None:
        first = self._version(1, label="first")
        storage.register_program(first)
        storage.register_program(self._version(1, berlin(2026, 3, 1), label="second",
                                               created_at=utc(2026, 2, 1)))
        second = self._version(2, berlin(2026, 6, 1))
        storage.register_program(second)
        storage.register_program(second)
        storage.register_program(self._version(1, program_id="other"))
        with storage.unit_of_work("shop") as uow:
            assert [first, second] == uow.programs.program_versions()
        with storage.unit_of_work("nowhere") as uow:
            assert ([], None) == (uow.programs.program_versions(),
                                  uow.programs.program_version_at(utc(2026, 1, 1)))

    def test_program_versions_come_lowest_first(self, storage: Storage) -> None:
        versions = [self._version(n, utc(2026, n, 1)) for n in (3, 1, 10, 2)]
        for version in versions:
            storage.register_program(version)
        with storage.unit_of_work("shop") as uow:
            assert [1, 2, 3, 10] == [v.version for v in uow.programs.program_versions()]
            assert sorted(versions, key=lambda v: v.version) == uow.programs.program_versions()

    def test_program_version_at(self, storage: Storage) -> None:
        v1 = self._version(1)
        v2 = self._version(2, berlin(2026, 3, 1))
        v3 = self._version(3, berlin(2026, 3, 1))  # the same instant: the higher wins
        v4 = self._version(4, berlin(2026, 6, 1, 12))
        for version in (v4, v2, v1, v3):  # registered out of order
            storage.register_program(version)
        with storage.unit_of_work("shop") as uow:
            at = uow.programs.program_version_at
            assert v1.version == at(berlin(2026, 2, 28, 23, 59, 59, 999999))
            assert v3.version == at(berlin(2026, 3, 1))  # effective_from is inclusive
            assert v3.version == at(utc(2026, 2, 28, 23))  # the same instant in UTC
            assert v3.version == at(berlin(2026, 6, 1, 11, 59))
            assert v4.version == at(berlin(2026, 6, 1, 12))
            assert v4.version == at(utc(2099, 1, 1))

    def test_program_version_at_without_effective_dates(self, storage: Storage) -> None:
        # a version without effective_from is in force from the beginning of time, so
        # it beats every lower version whatever their dates
        storage.register_program(self._version(1, utc(2026, 1, 1)))
        storage.register_program(self._version(2))
        storage.register_program(self._version(3, utc(2026, 6, 1)))
        with storage.unit_of_work("shop") as uow:
            assert 2 == (uow.programs.program_version_at(utc(2000, 1, 1)))
            assert 2 == (uow.programs.program_version_at(utc(2026, 5, 31)))
            assert 3 == (uow.programs.program_version_at(utc(2026, 6, 1)))

    def test_no_version_in_force_yet_is_none(self, storage: Storage) -> None:
        storage.register_program(self._version(1, berlin(2026, 3, 1)))
        with storage.unit_of_work("shop") as uow:
            assert uow.programs.program_version_at(berlin(2026, 2, 28, 23, 59)) is None
            assert 1 == (uow.programs.program_version_at(berlin(2026, 3, 1)))

    def test_concurrent_registrations_never_fail(self, storage: Storage) -> None:
        barrier = threading.Barrier(16)

        def register(i: int) -> None:
            barrier.wait()
            # half race for the same version, half add versions of their own
            number = 1 if i % 2 else i + 2
            storage.register_program(self._version(number, label=f"by-{i}"))

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(register, range(16)))
        with storage.unit_of_work("shop") as uow:
            versions = uow.programs.program_versions()
        assert [1, *range(2, 18, 2)] == [v.version for v in versions]
        assert versions[0].definition["label"] in {f"by-{i}" for i in range(1, 16, 2)}

    # -- orders -----------------------------------------------------------------------

    def _orders_world(self, storage: Storage, *programs: str) -> None:
        """Register ``programs`` (default: shop) and enrol members a and b in each."""
        for program_id in programs or ("shop",):
            self._register(storage, program_id)
            with storage.unit_of_work(program_id) as uow:
                for member_id in ("a", "b"):
                    changes = self._enrolment(member_id, f"k-{member_id}")
                    changes.members[0] = Member(program_id, member_id, utc(2026, 1, 1))
                    write_changes(uow, changes)
                uow.commit()

    @staticmethod
    def _order(order_id: str, member_id: str = "a", *, program_id: str = "shop",
               **changes: Any) -> OrderRecord:
        record = OrderRecord(
            program_id=program_id,
            order_id=order_id,
            member_id=member_id,
            placed_at=berlin(2026, 1, 2, 10, 30),
            version=1,
            order={"id": order_id, "currency": "EUR", "channel": "web",
                   "lines": [{"id": "l1", "sku": "TEA", "quantity": 2, "price": "9.99"},
                             {"id": "l2", "sku": "CUP", "quantity": 1, "price": "4.50"}]},
            returned={},
            status=OrderStatus.OPEN,
            points=24,
            evaluation={"points": 24, "lines": [{"rule_id": "base", "points": "24.48"}]},
            earn_id=uuid.UUID(int=1),
            payments=(),
            created_at=utc(2026, 1, 2, 9, 30),
            updated_at=utc(2026, 1, 2, 9, 30),
        )
        return attrs.evolve(record, **changes)

    def _write_orders(self, storage: Storage, *records: OrderRecord, new: bool = True,
                      program_id: str = "shop") -> None:
        with storage.unit_of_work(program_id) as uow:
            write_changes(uow, ChangeSet(orders={r.order_id: r for r in records},
                                new_orders={r.order_id for r in records} if new else set()))
            uow.commit()

    def test_orders_are_recorded_and_read_back(self, storage: Storage) -> None:
        self._orders_world(storage, "shop", "other")
        o1 = self._order("o1")
        o2 = self._order("o2", "b", earn_id=None, points=0, evaluation={})
        self._write_orders(storage, o1, o2)
        with storage.unit_of_work("shop") as uow:
            assert (o1, o2) == (uow.orders.get_order("o1"), uow.orders.get_order("o2"))
            assert uow.orders.get_order("ghost") is None
        with storage.unit_of_work("other") as uow:  # order ids are per program
            assert uow.orders.get_order("o1") is None

    def test_stored_orders_and_versions_are_not_shared_with_the_caller(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage)
        version = self._version(2)
        storage.register_program(version)
        placed = self._order("o1")
        self._write_orders(storage, placed)
        expected = (self._version(2), self._order("o1"))
        # changing what was written, or what was read, changes nothing stored
        version.definition["rules"].clear()
        placed.order["lines"].clear()
        with storage.unit_of_work("shop") as uow:
            read = (uow.programs.program_versions()[-1], uow.orders.get_order("o1"))
            assert expected == read
            read[0].definition["rules"].clear()
            read[1].evaluation["lines"].clear()
            assert expected == (uow.programs.program_versions()[-1], uow.orders.get_order("o1"))

    def test_an_order_update_changes_what_may_change(self, storage: Storage) -> None:
        self._orders_world(storage)
        placed = self._order("o1")
        self._write_orders(storage, placed)
        payments = (uuid.UUID(int=7), uuid.UUID(int=3), uuid.UUID(int=5))
        returned = attrs.evolve(
            placed, returned={"l1": 1}, points=12, payments=payments, earn_id=uuid.UUID(int=2),
            evaluation={"points": 12, "lines": [{"rule_id": "base", "points": "12.49"}]},
            updated_at=berlin(2026, 1, 9, 18), recorded_evaluation=placed.evaluation,
        )
        self._write_orders(storage, returned, new=False)
        with storage.unit_of_work("shop") as uow:
            assert returned == uow.orders.get_order("o1")
            stored = uow.orders.get_order("o1")
            assert stored is not None
            assert placed.evaluation == stored.evaluation_as_recorded()
        cancelled = attrs.evolve(returned, status=OrderStatus.CANCELLED, points=0,
                                 earn_id=None, returned={"l1": 2, "l2": 1},
                                 updated_at=utc(2026, 1, 10))
        self._write_orders(storage, cancelled, new=False)
        with storage.unit_of_work("shop") as uow:
            assert cancelled == uow.orders.get_order("o1")

    def test_an_order_keeps_the_points_refunded_of_each_payment(self, storage: Storage
                                                                 ) -> None:
        """Partial returns of an order paid with points keep, per payment, the points
        given back so far; an order without refunds reads back an empty mapping."""
        self._orders_world(storage)
        payments = (uuid.UUID(int=7), uuid.UUID(int=3))
        placed = attrs.evolve(self._order("o1"), payments=payments)
        self._write_orders(storage, placed)
        with storage.unit_of_work("shop") as uow:
            stored = uow.orders.get_order("o1")
            assert stored is not None and {} == dict(stored.refunded)
        refunded = attrs.evolve(placed, returned={"l1": 1},
                                refunded={uuid.UUID(int=3): 750},
                                updated_at=berlin(2026, 1, 9, 18))
        self._write_orders(storage, refunded, new=False)
        again = attrs.evolve(refunded, refunded={uuid.UUID(int=3): 2000,
                                                 uuid.UUID(int=7): 5})
        self._write_orders(storage, again, new=False)
        with storage.unit_of_work("shop") as uow:
            assert again == uow.orders.get_order("o1")

    def test_a_duplicate_order_is_duplicate_key_and_writes_nothing(self, storage: Storage
                                                                   ) -> None:
        self._orders_world(storage, "shop", "other")
        original = self._order("o1")
        self._write_orders(storage, original)
        again = self._order("o1", "b", points=99)
        changes = self._enrolment("c", "k-c")
        changes.orders = {"o1": again, "o2": self._order("o2")}
        changes.new_orders = {"o1", "o2"}
        with pytest.raises(DuplicateKey), storage.unit_of_work("shop") as uow:
            write_changes(uow, changes)
        with storage.unit_of_work("shop") as uow:
            assert (None, None) == (uow.ledger.get_member("c"), uow.keys.get_idempotency("k-c"))
            assert (original, None) == (uow.orders.get_order("o1"), uow.orders.get_order("o2"))
            assert (1, 0) == (uow.orders.count_orders("a"), uow.orders.count_orders("b"))
        # another program may record an order with the same id
        elsewhere = self._order("o1", program_id="other")
        self._write_orders(storage, elsewhere, program_id="other")
        with storage.unit_of_work("other") as uow:
            assert elsewhere == uow.orders.get_order("o1")

    def test_order_writes_roll_back_unless_committed(self, storage: Storage) -> None:
        self._orders_world(storage)
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, ChangeSet(orders={"o1": self._order("o1")}, new_orders={"o1"}))
            assert 1 == uow.orders.count_orders("a")
        with storage.unit_of_work("shop") as uow:
            assert (None, 0) == (uow.orders.get_order("o1"), uow.orders.count_orders("a"))
        placed = self._order("o1")
        self._write_orders(storage, placed)
        with pytest.raises(RuntimeError, match="boom"), storage.unit_of_work("shop") as uow:
            cancelled = attrs.evolve(placed, status=OrderStatus.CANCELLED, points=0)
            write_changes(uow, ChangeSet(orders={"o1": cancelled}))
            raise RuntimeError("boom")
        with storage.unit_of_work("shop") as uow:
            assert (placed, 1) == (uow.orders.get_order("o1"), uow.orders.count_orders("a"))

    def test_count_orders_ignores_cancelled_orders_and_other_members(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        cancelled = self._order("o3", status=OrderStatus.CANCELLED)
        self._write_orders(storage, self._order("o1"), self._order("o2"), cancelled,
                           self._order("o4", "b"))
        self._write_orders(storage, *(self._order(f"x{i}", program_id="other")
                                      for i in range(3)), program_id="other")
        with storage.unit_of_work("shop") as uow:
            assert (2, 1, 0) == (uow.orders.count_orders("a"), uow.orders.count_orders("b"),
                                 uow.orders.count_orders("ghost"))
        self._write_orders(storage, self._order("o2", status=OrderStatus.CANCELLED),
                           new=False)
        with storage.unit_of_work("shop") as uow:
            assert 1 == uow.orders.count_orders("a")
        with storage.unit_of_work("other") as uow:
            assert 3 == uow.orders.count_orders("a")

    # -- rule usage -------------------------------------------------------------------

    @staticmethod
    def _usage(source: str, rule_id: str, group: str | None, occurred_at: dt.datetime,
               points: str = "1", *, member_id: str = "a", program_id: str = "shop",
               stamps: int = 0) -> RuleUsage:
        return RuleUsage(program_id, member_id, source, rule_id, group, occurred_at,
                         Decimal(points), stamps)

    def _write_usage(self, storage: Storage, *rows: RuleUsage, program_id: str = "shop"
                     ) -> None:
        with storage.unit_of_work(program_id) as uow:
            write_changes(uow, ChangeSet(usage=list(rows)))
            uow.commit()

    def test_usage_is_upserted_by_source_and_rule(self, storage: Storage) -> None:
        self._orders_world(storage)
        first = self._usage("order:o1", "base", None, utc(2026, 1, 2), "24.48")
        bonus = self._usage("order:o1", "bonus", "promo", utc(2026, 1, 2), "10")
        self._write_usage(storage, first, bonus)
        returned = self._usage("order:o1", "base", "weekday", utc(2026, 1, 3), "12.24",
                               stamps=1)
        self._write_usage(storage, returned)
        with storage.unit_of_work("shop") as uow:
            assert [returned, bonus] == _by_source_and_rule(
                uow.orders.load_usage("a", rule_ids=["base", "bonus"]))
            # two rows with one key in one write: the last one wins
            last = attrs.evolve(returned, points=Decimal("3"), stamps=2)
            write_changes(uow, ChangeSet(usage=[attrs.evolve(returned, points=Decimal("7")), last]))
            assert [last] == uow.orders.load_usage("a", rule_ids=["base"])
        with storage.unit_of_work("shop") as uow:  # not committed
            assert [returned] == uow.orders.load_usage("a", rule_ids=["base"])

    def test_load_usage_filters_by_rules_or_groups_and_time(self, storage: Storage) -> None:
        self._orders_world(storage, "shop", "other")
        t0 = berlin(2026, 3, 1, 12)
        day = dt.timedelta(days=1)
        r1 = self._usage("order:1", "base", None, t0)
        r2 = self._usage("order:1", "bonus", "promo", t0 + day)
        r3 = self._usage("order:2", "spring", "promo", t0 + 2 * day)
        r4 = self._usage("event:e1", "birthday", None, t0 + 3 * day, stamps=1)
        theirs = self._usage("order:9", "base", "promo", t0, member_id="b")
        self._write_usage(storage, r1, r2, r3, r4, theirs)
        self._write_usage(storage, self._usage("order:1", "base", "promo", t0,
                                               program_id="other"), program_id="other")

        with storage.unit_of_work("shop") as uow:
            def load(**filters: Any) -> list[RuleUsage]:
                return _by_source_and_rule(uow.orders.load_usage("a", **filters))

            assert [r1] == load(rule_ids=["base"])
            assert [r2, r3] == load(groups=["promo"])
            assert [r4, r1, r2, r3] == load(rule_ids=["base", "birthday"], groups=["promo"])
            assert [r2, r3] == load(rule_ids=["bonus"], groups=["promo"])  # each row once
            assert [r2] == load(groups=["promo"], since=t0 + day, until=t0 + 2 * day)
            assert [r3] == load(groups=["promo"], since=t0 + day + _MINUTE)
            assert [r1] == load(rule_ids=["base", "bonus"], until=t0 + day)
            # the bounds compare instants, whatever their zone
            assert [r2] == load(groups=["promo"], since=(t0 + day).astimezone(dt.UTC),
                                until=(t0 + day + _MINUTE).astimezone(dt.UTC))
            assert [] == load(rule_ids=["ghost"], groups=["nothing"])
            assert [] == load(rule_ids=["base"], since=t0 + day)
            assert [theirs] == _by_source_and_rule(uow.orders.load_usage("b", rule_ids=["base"]))
            assert [] == uow.orders.load_usage("ghost", rule_ids=["base"], groups=["promo"])

    def test_load_usage_without_filters_returns_all_the_members_rows(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        t0 = berlin(2026, 3, 1, 12)
        day = dt.timedelta(days=1)
        r1 = self._usage("order:1", "base", None, t0)
        r2 = self._usage("order:1", "bonus", "promo", t0 + day)
        r3 = self._usage("event:e1", "birthday", None, t0 + 2 * day, stamps=1)
        r4 = self._usage("event:e2", "card", "stamps", t0 + 3 * day, "0", stamps=2)
        theirs = self._usage("event:e9", "base", "promo", t0, member_id="b")
        self._write_usage(storage, r1, r2, r3, r4, theirs)
        self._write_usage(storage, self._usage("event:e1", "base", None, t0,
                                               program_id="other"), program_id="other")
        with storage.unit_of_work("shop") as uow:
            def load(member_id: str = "a", **bounds: Any) -> list[RuleUsage]:
                return _by_source_and_rule(uow.orders.load_usage(member_id, **bounds))

            assert [r3, r4, r1, r2] == load()
            assert [r3, r4, r1, r2] == load(rule_ids=[], groups=[])
            assert [r3, r4, r1, r2] == load(since=t0, until=t0 + 9 * day)
            assert [r3, r4, r2] == load(since=t0 + day)  # since is inclusive
            assert [r1, r2] == load(until=t0 + 2 * day)  # until is exclusive
            assert [r3] == load(since=(t0 + 2 * day).astimezone(dt.UTC),
                                until=(t0 + 2 * day + _MINUTE).astimezone(dt.UTC))
            assert [] == load(since=t0 + 4 * day)
            assert [theirs] == load("b")
            assert [] == load("ghost")
        with storage.unit_of_work("other") as uow:
            assert [("other", "event:e1")] == [
                (row.program_id, row.source) for row in uow.orders.load_usage("a")]

    # -- account activity, members' state and orders --------------------------------

    def _enrol_with(self, storage: Storage, member_id: str, *states: AccountState,
                    program_id: str = "shop", attributes: dict[str, Any] | None = None
                    ) -> None:
        """Enrol ``member_id`` with an account row per state given (committed)."""
        changes = ChangeSet()
        changes.members.append(Member(program_id, member_id, utc(2026, 1, 1),
                                      attributes or {}))
        for state in states:
            changes.accounts[(member_id, state.wallet)] = state
            changes.new_accounts.add((member_id, state.wallet))
        with storage.unit_of_work(program_id) as uow:
            write_changes(uow, changes)
            uow.commit()

    def _update_accounts(self, storage: Storage, *states: AccountState) -> None:
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, ChangeSet(accounts={(s.member_id, s.wallet): s for s in states}))
            uow.commit()

    def test_account_activity_round_trips_through_write(self, storage: Storage) -> None:
        self._register(storage)
        text = '{"orders": 3, "spent": "12.50",  "tags": ["caf\\u00e9", "né"]}'  # kept as is
        a = AccountState("a", "points", available=5, issued=-5, version=1, activity=text)
        b = AccountState("b", "points")
        c = AccountState("c", "points", activity="{}")
        for state in (a, b, c):
            self._enrol_with(storage, state.member_id, state)
        at = utc(2026, 3, 1)

        def read_back(*states: AccountState) -> None:
            with storage.unit_of_work("shop") as uow:
                ids = [state.member_id for state in states]
                assert {s.member_id: s for s in states} == uow.ledger.lock_accounts("points", ids)
                for state in states:
                    assert state == uow.ledger.get_account("points", state.member_id)
                    assert {state.member_id: state} == uow.ledger.lock_accounts(
                        "points", [state.member_id])
                    for lock in (False, True):
                        loaded = uow.ledger.load_member(state.member_id, ["points"], at, lock=lock)
                        assert loaded is not None
                        assert {"points": state} == loaded.accounts

        read_back(a, b, c)  # new accounts: inserted with their activity, or None
        assert (text, None) == (a.activity, b.activity)
        # updated accounts: the text is replaced verbatim, None stays None, and an
        # account may gain or lose its text
        a2 = attrs.evolve(a, available=7, issued=-7, version=2,
                          activity='{"orders": 4, "spent": "20.00"}')
        b2 = attrs.evolve(b, available=2, issued=-2, version=1)
        c2 = attrs.evolve(c, version=1, activity=None)
        self._update_accounts(storage, a2, b2, c2)
        read_back(a2, b2, c2)
        b3 = attrs.evolve(b2, version=2, activity='{"orders": 1}')
        self._update_accounts(storage, b3)
        read_back(a2, b3, c2)
        # an update that is not committed changes nothing
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, ChangeSet(accounts={("a", "points"): attrs.evolve(
                a2, version=3, activity="rolled back")}))
            assert "rolled back" == (uow.ledger.get_account("points", "a") or a2).activity
        read_back(a2, b3, c2)

    def test_load_member_returns_the_member_its_accounts_and_the_version(
        self, storage: Storage
    ) -> None:
        self._register(storage)  # version 1, in force from the beginning of time
        storage.register_program(ProgramVersion(
            "shop", 2, berlin(2026, 3, 1), make_program().to_dict(), utc(2026, 1, 1)))
        storage.register_program(ProgramVersion(
            "shop", 3, berlin(2026, 9, 1), make_program().to_dict(), utc(2026, 1, 1)))
        points = AccountState("a", "points", available=40, issued=-40, version=2,
                              next_due_at=utc(2026, 4, 1), activity='{"orders": 2}')
        miles = AccountState("a", "miles", available=7, transfers=-7, version=1)
        cash = AccountState("a", "cash", pending=3, issued=-3, version=1)
        self._enrol_with(storage, "a", points, miles, cash, attributes={"tier": "gold"})
        theirs = AccountState("b", "points", available=99, issued=-99, version=1,
                              activity='{"orders": 9}')
        self._enrol_with(storage, "b", theirs)
        member = Member("shop", "a", utc(2026, 1, 1), {"tier": "gold"})
        asked: list[tuple[list[str], dict[str, AccountState]]] = [
            (["points"], {"points": points}),
            (["miles"], {"miles": miles}),
            (["points", "miles"], {"points": points, "miles": miles}),
            (["miles", "points", "points"], {"points": points, "miles": miles}),
            (["points", "ghost"], {"points": points}),
            (["cash", "miles", "points"], {"points": points, "miles": miles, "cash": cash}),
            (["cash", "ghost", "points"], {"points": points, "cash": cash}),
            (["ghost"], {}),  # enrolled, but no account in the wallets asked for
            (["ghost", "void"], {}),
            ([], {}),
        ]
        times = [(berlin(2026, 2, 28, 23, 59), 1), (berlin(2026, 3, 1), 2),
                 (utc(2026, 2, 28, 23), 2), (berlin(2026, 8, 31, 23, 59, 59), 2),
                 (berlin(2026, 9, 1), 3)]
        for lock in (False, True):
            with storage.unit_of_work("shop") as uow:
                for wallets, accounts in asked:
                    for at, version in times:
                        got = uow.ledger.load_member("a", wallets, at, lock=lock)
                        assert MemberState(member, accounts, version) == got, (wallets, at)
                state = uow.ledger.load_member("b", ["points", "miles"], utc(2026, 3, 2), lock=lock)
                assert MemberState(Member("shop", "b", utc(2026, 1, 1)), {"points": theirs},
                                   2) == state
                assert uow.ledger.load_member("ghost", ["points"], utc(2026, 3, 2),
                                              lock=lock) is None
                assert uow.ledger.load_member("ghost", [], utc(2026, 3, 2), lock=lock) is None
                assert uow.ledger.load_member("ghost", ["points", "miles", "cash"],
                                       utc(2026, 3, 2), lock=lock) is None

    def test_load_member_without_a_version_in_force(self, storage: Storage) -> None:
        storage.register_program(ProgramVersion(
            "later", 1, berlin(2026, 6, 1), make_program("later").to_dict(), utc(2026, 1, 1)))
        self._register(storage)  # another program's versions do not count
        state = AccountState("a", "points", activity='{"orders": 0}')
        self._enrol_with(storage, "a", state, program_id="later")
        member = Member("later", "a", utc(2026, 1, 1))
        with storage.unit_of_work("later") as uow:
            for lock in (False, True):
                for wallets, accounts in ((["points"], {"points": state}), (["ghost"], {})):
                    before = uow.ledger.load_member("a", wallets, berlin(2026, 5, 31, 23, 59),
                                             lock=lock)
                    assert MemberState(member, accounts, None) == before
                    after = uow.ledger.load_member("a", wallets, berlin(2026, 6, 1), lock=lock)
                    assert MemberState(member, accounts, 1) == after
        with storage.unit_of_work("shop") as uow:  # members are per program
            assert uow.ledger.load_member("a", ["points"], utc(2026, 7, 1), lock=False) is None

    def test_load_member_with_lock_holds_the_accounts_until_the_end(
        self, storage: Storage
    ) -> None:
        """A second locking read of the same accounts waits for the first unit of work
        and then sees what it wrote (no lost update)."""
        self._register(storage)
        self._enrol_with(storage, "a", AccountState("a", "points"),
                         AccountState("a", "miles"))
        at = utc(2026, 3, 1)
        locked = threading.Event()

        def second() -> tuple[int, int, str | None]:
            assert locked.wait(30)
            with storage.unit_of_work("shop") as uow:
                state = uow.ledger.load_member("a", ["miles", "points"], at, lock=True)
                assert state is not None
                seen = (state.accounts["points"].available, state.accounts["miles"].available,
                        state.accounts["points"].activity)
                uow.commit()
            return seen

        with ThreadPoolExecutor(max_workers=1) as pool:
            with storage.unit_of_work("shop") as uow:
                first = uow.ledger.load_member("a", ["points", "miles"], at, lock=True)
                assert first is not None
                waiting = pool.submit(second)
                locked.set()
                time.sleep(0.3)  # give the second reader time to reach the lock
                assert not waiting.done()
                write_changes(uow, ChangeSet(accounts={
                    ("a", "points"): attrs.evolve(first.accounts["points"], available=5,
                                                  issued=-5, version=1, activity="{}"),
                    ("a", "miles"): attrs.evolve(first.accounts["miles"], available=2,
                                                 issued=-2, version=1),
                }))
                uow.commit()
            assert (5, 2, "{}") == waiting.result(timeout=30)

    def test_load_orders_returns_the_members_orders_in_time_order(
        self, storage: Storage
    ) -> None:
        self._orders_world(storage, "shop", "other")
        # placed_at compares instants: 10:30 in Berlin is 09:30 UTC, before 10:00 UTC
        first = self._order("o9", placed_at=utc(2026, 1, 1, 23))
        berlin_1030 = self._order("o3")
        same_instant = self._order("o2", placed_at=utc(2026, 1, 2, 9, 30))  # o2 < o3
        utc_1000 = self._order("o1", placed_at=utc(2026, 1, 2, 10),
                               status=OrderStatus.CANCELLED, points=0, earn_id=None)
        last = self._order("o0", placed_at=berlin(2026, 2, 1), returned={"l1": 1},
                           payments=(uuid.UUID(int=4), uuid.UUID(int=2)))
        self._write_orders(storage, last, utc_1000, berlin_1030, first, same_instant,
                           self._order("b1", "b", placed_at=utc(2026, 1, 2)))
        self._write_orders(storage, self._order("x1", program_id="other"),
                           program_id="other")
        expected = [first, same_instant, berlin_1030, utc_1000, last]
        with storage.unit_of_work("shop") as uow:
            assert expected == uow.orders.load_orders("a")
            assert ["b1"] == [o.order_id for o in uow.orders.load_orders("b")]
            assert [] == uow.orders.load_orders("ghost")
        # a cancellation changes the status, not the place in the list
        cancelled = attrs.evolve(berlin_1030, status=OrderStatus.CANCELLED, points=0,
                                 updated_at=utc(2026, 1, 5))
        self._write_orders(storage, cancelled, new=False)
        with storage.unit_of_work("shop") as uow:
            assert [first, same_instant, cancelled, utc_1000, last] == uow.orders.load_orders("a")
            write_changes(uow, ChangeSet(orders={"o8": self._order("o8", placed_at=utc(2026, 1,
                                                                                       1))},
                                new_orders={"o8"}))
            assert ["o8", "o9"] == [o.order_id for o in uow.orders.load_orders("a")][:2]
        with storage.unit_of_work("shop") as uow:  # not committed
            assert "o8" not in [o.order_id for o in uow.orders.load_orders("a")]
        with storage.unit_of_work("other") as uow:
            assert ["x1"] == [o.order_id for o in uow.orders.load_orders("a")]

    @pytest.mark.parametrize("points", [
        "74.9875", "0.333333333333333333333333333", "0.10", "-2.50", "1E+3", "0",
        "123456789012345678.000000001",
    ])
    def test_usage_points_round_trip_exactly(self, storage: Storage, points: str) -> None:
        self._orders_world(storage)
        row = self._usage("order:o1", "base", None, utc(2026, 1, 2), points)
        self._write_usage(storage, row)
        with storage.unit_of_work("shop") as uow:
            [stored] = uow.orders.load_usage("a", rule_ids=["base"])
        assert (row, points) == (stored, str(stored.points))
        assert isinstance(stored.points, Decimal)


def _by_source_and_rule(rows: Sequence[RuleUsage]) -> list[RuleUsage]:
    return sorted(rows, key=lambda row: (row.source, row.rule_id))


