"""The write-safety part of the ledger contract: idempotency keys, concurrent writers and
the unit of work of the storage port (rollback unless committed, unique rules,
nothing left by a failure after writing).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, ClassVar

import pytest

from loyaltykit import (
    DuplicateKey,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    Member,
    MemberNotFound,
    ReadOnlyViolation,
    Storage,
    TransactionNotFound,
)
from loyaltykit.storage import AccountState, ProgramVersion
from loyaltykit.testing.changes import write_changes
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import MINUTE as _MINUTE
from loyaltykit.testing.contract.base import (
    ContractPart,
    Shop,
    make_program,
    statement_lines,
    utc,
)

__all__ = ["LedgerWriteContract"]


class LedgerWriteContract(ContractPart):
    """Idempotency, concurrency and the unit of work on a backend: part of
    :class:`LedgerContract`."""

    # -- idempotency ----------------------------------------------------------------------

    def _idempotency_world(self, storage: Storage) -> tuple[Shop, dict[str, Any]]:
        shop = self.shop(storage)
        shop.enrol("m", "n")
        earn = shop.loyalty.earn("m", 100, key="e1")
        pending = shop.loyalty.earn("m", 50, key="e2",
                                    activates_at=shop.clock.now() + dt.timedelta(days=3))
        hold = shop.loyalty.hold("m", 20, key="h1", ttl=_TTL)
        hold2 = shop.loyalty.hold("m", 10, key="h2", ttl=_TTL)
        return shop, {"earn": earn.transaction_id, "pending": pending.transaction_id,
                      "hold": hold.hold_id, "hold2": hold2.hold_id}

    _WRITES: ClassVar[dict[str, tuple[Callable[..., Any], Callable[..., Any]]]] = {
        "enrol": (lambda lo, ids, key: lo.enrol("x", key=key),
                  lambda lo, ids, key: lo.enrol("x", key=key, attributes={"vip": True})),
        "earn": (lambda lo, ids, key: lo.earn("m", 5, key=key),
                 lambda lo, ids, key: lo.earn("m", 6, key=key)),
        "spend": (lambda lo, ids, key: lo.spend("m", 5, key=key),
                  lambda lo, ids, key: lo.spend("m", 5, key=key, reason="other")),
        "hold": (lambda lo, ids, key: lo.hold("m", 5, key=key, ttl=_TTL),
                 lambda lo, ids, key: lo.hold("m", 5, key=key, ttl=2 * _TTL)),
        "capture": (lambda lo, ids, key: lo.capture(ids["hold"], 5, key=key),
                    lambda lo, ids, key: lo.capture(ids["hold"], 6, key=key)),
        "void": (lambda lo, ids, key: lo.void(ids["hold"], key=key),
                 lambda lo, ids, key: lo.void(ids["hold2"], key=key)),
        "activate": (lambda lo, ids, key: lo.activate(ids["pending"], key=key),
                     lambda lo, ids, key: lo.activate(ids["earn"], key=key)),
        "reverse": (lambda lo, ids, key: lo.reverse(ids["earn"], key=key),
                    lambda lo, ids, key: lo.reverse(ids["pending"], key=key)),
        "adjust": (lambda lo, ids, key: lo.adjust("m", -5, key=key, reason="fix"),
                   lambda lo, ids, key: lo.adjust("m", 5, key=key, reason="fix")),
        "clawback": (lambda lo, ids, key: lo.clawback("m", 5, key=key),
                     lambda lo, ids, key: lo.clawback("n", 5, key=key)),
        "transfer": (lambda lo, ids, key: lo.transfer("m", "n", 5, key=key),
                     lambda lo, ids, key: lo.transfer("n", "m", 5, key=key)),
        "bulk_earn": (lambda lo, ids, key: lo.bulk_earn({"m": 1, "n": 2}, key=key),
                      lambda lo, ids, key: lo.bulk_earn({"m": 2, "n": 1}, key=key)),
    }

    @pytest.mark.parametrize("op", sorted(_WRITES))
    def test_same_key_same_request_replays_and_writes_nothing(
        self, storage: Storage, op: str
    ) -> None:
        shop, ids = self._idempotency_world(storage)
        write, _ = self._WRITES[op]
        first = write(shop.loyalty, ids, "the-key")
        before = shop.snapshot("m", "n", "x")
        assert first == write(shop.loyalty, ids, "the-key")
        assert before == shop.snapshot("m", "n", "x")
        # a retry later (the business instant defaulting to the clock) is the same request
        shop.later(_MINUTE)
        assert first == write(shop.loyalty, ids, "the-key")
        shop.check("m", "n")

    @pytest.mark.parametrize("op", sorted(_WRITES))
    def test_same_key_different_request_is_a_conflict(self, storage: Storage,
                                                      op: str) -> None:
        shop, ids = self._idempotency_world(storage)
        write, different = self._WRITES[op]
        write(shop.loyalty, ids, "the-key")
        before = shop.snapshot("m", "n", "x")
        with pytest.raises(IdempotencyConflict) as info:
            different(shop.loyalty, ids, "the-key")
        assert "the-key" == info.value.details["key"]
        with pytest.raises(IdempotencyConflict):
            shop.loyalty.earn("n", 1, key="the-key") if op != "earn" else (
                shop.loyalty.spend("m", 1, key="the-key"))
        assert before == shop.snapshot("m", "n", "x")

    def test_same_key_with_an_explicit_instant(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        at = shop.clock.now()
        first = shop.loyalty.earn("m", 10, key="k1", at=at)
        shop.later(_MINUTE)
        assert first == shop.loyalty.earn("m", 10, key="k1", at=at)
        with pytest.raises(IdempotencyConflict):
            shop.loyalty.earn("m", 10, key="k1", at=at + dt.timedelta(seconds=1))
        assert 1 == len(statement_lines(shop.loyalty, "m"))

    def test_a_failed_write_does_not_use_up_its_key(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        shop.loyalty.earn("m", 10, key="order")
        assert 0 == shop.loyalty.spend("m", 10, key="pay").balance.available

    def test_keys_are_scoped_per_program(self, storage: Storage) -> None:
        one = self.shop(storage, make_program("one"))
        two = self.shop(storage, make_program("two"))
        one.enrol("m")
        two.enrol("m")
        first = one.loyalty.earn("m", 10, key="order-1")
        second = two.loyalty.earn("m", 20, key="order-1")
        assert first.transaction_id != second.transaction_id
        assert (10, 20) == (one.balance("m").available, two.balance("m").available)
        assert first == one.loyalty.earn("m", 10, key="order-1")
        with pytest.raises(IdempotencyConflict):
            one.loyalty.earn("m", 20, key="order-1")
        # programs are isolated: one program cannot see the other's records
        with pytest.raises(TransactionNotFound):
            two.loyalty.transaction(first.transaction_id)
        with pytest.raises(TransactionNotFound):
            two.loyalty.reverse(first.transaction_id, key="undo")
        hold = one.loyalty.hold("m", 5, key="cart", ttl=_TTL)
        with pytest.raises(HoldNotFound):
            two.loyalty.capture(hold.hold_id, key="steal")
        one.enrol("only-in-one")
        with pytest.raises(MemberNotFound):
            two.loyalty.member("only-in-one")
        one.check("m")
        two.check("m")

    # -- concurrency ----------------------------------------------------------------------

    def test_concurrent_spends_never_overdraw(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        barrier = threading.Barrier(20)

        def spend(i: int) -> bool:
            barrier.wait()
            try:
                shop.loyalty.spend("m", 10, key=f"spend-{i}")
            except InsufficientPoints:
                return False
            return True

        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(spend, range(20)))
        assert (10, 10) == (outcomes.count(True), outcomes.count(False))
        assert (0, 100) == (shop.balance("m").available, shop.balance("m").spent)
        shop.check("m")

    def test_concurrent_writes_with_one_key_write_once(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        barrier = threading.Barrier(20)

        def earn(_: int) -> uuid.UUID:
            barrier.wait()
            return shop.loyalty.earn("m", 10, key="same").transaction_id

        with ThreadPoolExecutor(max_workers=20) as pool:
            ids = set(pool.map(earn, range(20)))
        assert 1 == len(ids)
        assert 10 == shop.balance("m").available
        assert ids == {line.transaction_id for line in statement_lines(shop.loyalty, "m")}
        shop.check("m")

    def test_concurrent_enrolments_and_writes_to_different_members(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage)
        members = [f"m{i}" for i in range(10)]
        barrier = threading.Barrier(20)

        def work(i: int) -> Member:
            member_id = members[i % 10]
            barrier.wait()
            member = shop.loyalty.enrol(member_id)
            shop.loyalty.earn(member_id, 7, key=f"earn-{i}")
            return member

        with ThreadPoolExecutor(max_workers=20) as pool:
            enrolled = list(pool.map(work, range(20)))
        assert 10 == len({m.member_id for m in enrolled})
        assert [14] * 10 == [shop.balance(m).available for m in members]
        shop.check(*members)

    # -- the storage port -----------------------------------------------------------------


    def test_unit_of_work_rolls_back_unless_committed(self, storage: Storage) -> None:
        self._register(storage)
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, self._enrolment("a", "k-a"))
            assert uow.ledger.get_member("a") is not None
        with storage.unit_of_work("shop") as uow:
            assert (None, None, None) == (uow.ledger.get_member("a"),
                                          uow.ledger.get_account("points", "a"),
                                          uow.keys.get_idempotency("k-a"))
        with pytest.raises(RuntimeError, match="boom"), storage.unit_of_work("shop") as uow:
            write_changes(uow, self._enrolment("b", "k-b"))
            raise RuntimeError("boom")
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, self._enrolment("c", "k-c"))
            uow.commit()
        with storage.unit_of_work("shop") as uow:
            assert (None, None) == (uow.ledger.get_member("b"), uow.keys.get_idempotency("k-b"))
            assert Member("shop", "c", utc(2026, 1, 1)) == uow.ledger.get_member("c")
            assert AccountState("c", "points") == uow.ledger.get_account("points", "c")
            record = uow.keys.get_idempotency("k-c")
            assert record is not None
            assert ("k-c", "f", "{}", "c") == (record.key, record.fingerprint, record.result,
                                               record.member_id)
            assert {"c": AccountState("c", "points")} == uow.ledger.lock_accounts(
                "points", ["c", "ghost"])

    def test_a_read_only_unit_of_work_reads_and_refuses_writes(self, storage: Storage) -> None:
        # read_unit_of_work is an optional part of the port (the facade's reads use it):
        # it sees what is committed, and a write through it writes nothing
        self._register(storage)
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, self._enrolment("a", "k-a"))
            uow.commit()
        reads = getattr(storage, "read_unit_of_work", None)
        if reads is None:  # such a backend is read through ordinary units of work
            return
        with reads("shop") as uow:
            assert uow.ledger.get_member("a") is not None
            with pytest.raises(ReadOnlyViolation):
                write_changes(uow, self._enrolment("b", "k-b"))
        with pytest.raises(ReadOnlyViolation), reads("shop") as uow:
            write_changes(uow, self._enrolment("b", "k-b"))
            uow.commit()
        # the next ordinary unit of work (maybe on the same connection) writes again
        with storage.unit_of_work("shop") as uow:
            assert (None, None) == (uow.ledger.get_member("b"), uow.keys.get_idempotency("k-b"))
            write_changes(uow, self._enrolment("c", "k-c"))
            uow.commit()
        with reads("shop") as uow:
            assert uow.ledger.get_member("c") is not None

    def test_unique_rules_raise_duplicate_key(self, storage: Storage) -> None:
        self._register(storage)
        with storage.unit_of_work("shop") as uow:
            write_changes(uow, self._enrolment("a", "k-a"))
            uow.commit()
        for changes in (self._enrolment("b", "k-a"), self._enrolment("a", "k-other")):
            with pytest.raises(DuplicateKey), storage.unit_of_work("shop") as uow:
                write_changes(uow, changes)
            with storage.unit_of_work("shop") as uow:
                assert (None, None) == (uow.ledger.get_member("b"),
                                        uow.keys.get_idempotency("k-other"))
                assert uow.ledger.get_member("a") is not None
        # other programs may reuse both the key and the member id
        self._register(storage, "other")
        changes = self._enrolment("a", "k-a")
        changes.members[0] = Member("other", "a", utc(2026, 1, 1))
        with storage.unit_of_work("other") as uow:
            write_changes(uow, changes)
            uow.commit()
        with storage.unit_of_work("other") as uow:
            assert uow.ledger.get_member("a") is not None

    def test_a_failure_after_writing_leaves_nothing(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m", "n")
        shop.loyalty.earn("m", 100, key="order")
        before = shop.snapshot("m", "n")
        # the sync facade on a storage that fails mid-write: its subject is the unit of
        # work, so no other facade (one building its own storage) could stand in here
        failing = Shop(_FailingStorage(storage), shop.program, start=shop.clock.now())
        with pytest.raises(_Boom):
            failing.loyalty.transfer("m", "n", 30, key="gift")
        with pytest.raises(_Boom):
            failing.loyalty.enrol("x")
        assert before == shop.snapshot("m", "n")
        with pytest.raises(MemberNotFound):
            shop.loyalty.member("x")
        # the key was not used up
        assert 70 == shop.loyalty.transfer("m", "n", 30, key="gift").outgoing.balance.available
        shop.check("m", "n")


class _Boom(Exception):
    pass


class _FailingUnitOfWork:
    """Delegates to a real unit of work but fails right after writing."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> _FailingUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        # everything was written to the stores; fail instead of committing it
        raise _Boom("failure after write, before commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FailingStorage:
    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    @property
    def concurrent(self) -> bool:
        return self._inner.concurrent

    def unit_of_work(self, program_id: str) -> Any:
        return _FailingUnitOfWork(self._inner.unit_of_work(program_id))

    def register_program(self, version: ProgramVersion) -> None:
        self._inner.register_program(version)
