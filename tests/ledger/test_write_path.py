"""The write path's shortcuts give what the general code gives: per-class copiers
instead of attrs.evolve, the everyday results' encoding, a UTC program's expiry,
check_instant on a UTC datetime, the id source's UUIDs, identity-hashed enums."""

from __future__ import annotations

import datetime as dt
import gc
import json
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_storage_factory
from loyaltykit import (
    LedgerPolicy,
    Loyalty,
    Money,
    Program,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit._calendar import in_zone, round_up
from loyaltykit._collector import collector_paused
from loyaltykit._copy import cached, copy_with, evolve, evolver
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    HoldAllocation,
    HoldStatus,
    Kind,
    Lot,
    Member,
)
from loyaltykit._program import ExpiryPolicy, ExpiryRounding
from loyaltykit._results import (
    Balance,
    HoldResult,
    TransactionResult,
    _dump,
    decode_result,
    encode_result,
)
from loyaltykit._validate import MAX_INSTANT, MIN_INSTANT, check_instant
from loyaltykit._values import new_id, to_utc
from loyaltykit.memory import MemoryStorage, MemoryUnitOfWork

UTC = dt.UTC
instants = st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(8000, 1, 1),
                        timezones=st.just(UTC))
counts = st.integers(min_value=-(10**18), max_value=10**18)
texts = st.text(min_size=1, max_size=20)
LOT = Lot(uuid.uuid4(), "p", "m", "points", uuid.uuid4(), 100, 80, 10,
          dt.datetime(2026, 1, 1, tzinfo=UTC), None, dt.datetime(2027, 1, 1, tzinfo=UTC), False)


def test_evolve_is_attrs_evolve_for_the_ledgers_values() -> None:
    state = AccountState("m", "points", available=5, next_due_at=LOT.expires_at)
    hold = Hold(uuid.uuid4(), "p", "m", "points", 30, HoldStatus.OPEN, LOT.earned_at,
                LOT.expires_at, uuid.uuid4(), (HoldAllocation(LOT.id, 30),))
    cases: list[tuple[Any, dict[str, Any]]] = [
        (LOT, {"remaining": 70}), (LOT, {"held": 0, "pending": True, "expires_at": None}),
        (state, {"available": 9, "version": 3}), (state, {}),
        (hold, {"status": HoldStatus.CAPTURED, "captured": 30, "resolved_by": uuid.uuid4()}),
    ]
    for value, changes in cases:
        copied = evolve(value, **changes)
        assert attrs.evolve(value, **changes) == copied
        assert copied is not value and type(copied) is type(value)
        # the same copy with the changed fields given by position (the due batch's)
        by_position = evolver(type(value), tuple(changes))(value, *changes.values())
        assert copied == by_position and by_position is not value
    with pytest.raises(TypeError, match="no field 'remainder'"):
        evolve(LOT, remainder=1)
    with pytest.raises(TypeError, match="no field 'remainder'"):
        evolver(Lot, ("held", "remainder"))
    assert 80 == LOT.remaining  # the original is untouched


def test_evolve_refuses_a_class_that_validates_and_copy_with_skips_the_checks() -> None:
    @attrs.frozen
    class Checked:
        points: int = attrs.field(validator=attrs.validators.gt(0))

    with pytest.raises(TypeError, match="validates"):
        evolve(Checked(1), points=2)
    with pytest.raises(TypeError, match="validates"):
        evolver(Checked, ("points",))
    assert -1 == copy_with(Checked(1), {"points": -1}).points  # a stored row as it is


def test_copies_of_slotted_subclasses_and_dict_classes_copy_every_field() -> None:
    @attrs.frozen
    class Base:
        a: int
        b: str = "b"

    @attrs.frozen
    class Child(Base):  # its own slot (c), the base's slots inherited (a, b)
        c: float = 0.5

    @attrs.frozen(slots=False)
    class Plain:  # no slots: fields in the instance's __dict__
        a: int
        b: list[int] = attrs.Factory(list)

    for value, changes in ((Child(1, "x", 2.0), {"a": 3}), (Child(1), {"c": 1.5, "b": "y"}),
                           (Plain(1, [2]), {"a": 5}), (Base(4), {})):
        copied = copy_with(value, changes)
        assert attrs.evolve(value, **changes) == copied
        assert copied is not value and type(copied) is type(value)
        assert copied == evolver(type(value), tuple(changes))(value, *changes.values())
    assert Child(1, "x", 2.0) == Child(1, "x", 2.0)  # the originals are untouched
    with pytest.raises(TypeError, match="no field 'd'"):
        copy_with(Child(1), {"d": 1})


def test_a_batch_holds_each_steps_changes_not_its_write() -> None:
    """A step of a batch (a history import's order) hands its changes to the batch and
    its Work (ledger, books, read scratch, hooks) is freed when the step ends: a batch
    of thousands of orders held every Work until it wrote (the memory backend's peak
    RSS at 5000 orders a batch: 315 MiB, 302 without them)."""
    import weakref

    from loyaltykit._pipeline import Steps, Work

    at = dt.datetime(2026, 1, 1, tzinfo=UTC)
    program = Program(id="s", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    loyalty = Loyalty(program, MemoryStorage(), clock=TestClock(at))
    refs: list[weakref.ref[Work]] = []

    def apply(steps: Steps) -> bool:
        def step(work: Work) -> None:
            refs.append(weakref.ref(work))

        with collector_paused():  # freed by reference counting, as in an import
            steps.run(at, None, step)
            return refs[0]() is None

    assert loyalty._c.pipeline.steps(apply, what="test")


def test_cached_builds_once_per_instance() -> None:
    built: list[object] = []

    class Owner:
        @cached
        def part(self) -> list[int]:
            built.append(self)
            return [len(built)]

    one, two = Owner(), Owner()
    assert one.part is one.part and [1] == one.part
    assert [2] == two.part and [one, two] == built
    assert isinstance(Owner.part, cached)


def _balance(values: list[int], at: dt.datetime, nxt: dt.datetime | None) -> Balance:
    return Balance("mé", "points", at, *values[:10], next_expiring_points=values[10],
                   next_expiring_at=nxt)


@settings(max_examples=50, deadline=None)
@given(st.lists(counts, min_size=11, max_size=11), instants, st.none() | instants, texts,
       st.sampled_from(list(Kind)), st.lists(st.uuids(), max_size=2))
def test_the_everyday_results_encode_as_the_generic_codec_does(
        values: list[int], at: dt.datetime, nxt: dt.datetime | None, member: str,
        kind: Kind, related: list[uuid.UUID]) -> None:
    balance = _balance(values, at, nxt)
    results = [
        TransactionResult(uuid.uuid4(), kind, member, "points", values[0], at, balance,
                          tuple(related)),
        HoldResult(uuid.uuid4(), uuid.uuid4(), member, "points", values[1], at, balance),
        Member("p", member, at, {"tier": member, "n": values[2], "tags": ["a", None]}),
        Member("p", member, at, {}),
    ]
    for result in results:
        text = encode_result(result)
        assert _dump(result) == json.loads(text)
        assert result == decode_result(text)


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=0, max_value=100_000), st.sampled_from(ExpiryRounding))
def test_a_utc_programs_expiry_in_days_is_the_calendars(start: dt.datetime, days: int,
                                                        rounding: ExpiryRounding) -> None:
    # (with rounding the shortcut must not be taken: the calendar's answer stands)
    expected = to_utc(round_up(in_zone(start, "UTC").add(days=days), rounding.value))
    found = ExpiryPolicy(days=days, round_up_to=rounding).expiry_for(start, "UTC")
    assert expected == found
    assert found is not None and found.tzinfo is UTC


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.just(UTC)), st.sampled_from([0, 1]))
def test_check_instant_takes_a_utc_datetime_as_it_is(value: dt.datetime, fold: int) -> None:
    value = value.replace(fold=fold)
    if not MIN_INSTANT <= value < MAX_INSTANT:
        with pytest.raises(ValueError, match="at must be from"):
            check_instant(value)
        return
    found = check_instant(value)
    assert value == found and found.tzinfo is UTC and type(found) is dt.datetime
    assert 0 == found.fold


def test_new_ids_are_uuids_like_any_other() -> None:
    made = new_id()
    plain = uuid.UUID(int=made.int)
    assert (plain, hash(plain), str(plain)) == (made, hash(made), str(made))
    assert 7 == made.version and uuid.RFC_4122 == made.variant
    assert plain.is_safe == made.is_safe and {plain: 1}[made] == 1


def test_new_ids_drawn_many_at_once_are_drawn_as_one_by_one() -> None:
    # set-based due work draws a wallet's ids at once: they must keep the order and
    # the form of ids drawn one at a time (5,000 in one millisecond: the counter of a
    # millisecond runs over; over 409 ids: the random buffer is read again)
    made = [new_id(), *new_id.many(5000), new_id(), *new_id.many(3), *new_id.many(0)]
    assert 5005 == len(made) == len(set(made))
    assert made == sorted(made)
    assert len({u.int & ((1 << 62) - 1) for u in made}) == len(made)
    for one in made:
        plain = uuid.UUID(int=one.int)
        assert (plain, hash(plain), str(plain)) == (one, hash(one), str(one))
        assert 7 == one.version and uuid.RFC_4122 == one.variant
        assert plain.is_safe == one.is_safe


def test_new_ids_drawn_as_hex_digits_are_ids_as_drawn_one_by_one() -> None:
    # SQLite's set-based due work binds a batch's ids as one value of hex digits
    # (5,000 in one millisecond: the counter of a millisecond runs over)
    before = new_id()
    digits = new_id.many_hex(5000)
    after = new_id()
    more = new_id.many(3)
    last = new_id.many_hex(7)
    assert 5000 * 32 == len(digits) and digits == digits.lower()
    made = [uuid.UUID(digits[i:i + 32].decode()) for i in range(0, len(digits), 32)]
    tail = [uuid.UUID(last[i:i + 32].decode()) for i in range(0, len(last), 32)]
    assert 5000 == len(set(made)) and 7 == len(tail)
    drawn = [before, *made, after, *more, *tail]
    assert drawn == sorted(drawn) and len(drawn) == len(set(drawn))
    assert len({u.int & ((1 << 62) - 1) for u in drawn}) == len(drawn)
    assert all(7 == u.version and uuid.RFC_4122 == u.variant for u in drawn)
    assert b"" == new_id.many_hex(0)


def test_new_ids_drawn_as_hex_digits_take_no_loop_per_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the hex digits are built a column at a time (consecutive high halves, random low
    # halves with their variant bits set at once), not through the per-id loop of many
    from loyaltykit._values import _UUID7

    def per_id(self: _UUID7, n: int) -> list[int]:
        raise AssertionError("many_hex drew its ids one by one")

    monkeypatch.setattr(_UUID7, "_values", per_id)
    assert 64 * 32 == len(new_id.many_hex(64))


def test_new_ids_of_a_forked_child_draw_other_random_bits() -> None:
    # ids take their random bits from a buffer of os.urandom: a child must not reuse
    # the bytes it inherited (it would draw the parent's next ids' random parts)
    import os

    if not hasattr(os, "fork"):
        return
    new_id()  # the buffer filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"".join(new_id().bytes for _ in range(4)))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64)
    os.close(read)
    os.close(write)
    parent = b"".join(new_id().bytes for _ in range(4))
    assert {child[i + 8:i + 16] for i in range(0, 64, 16)}.isdisjoint(
        parent[i + 8:i + 16] for i in range(0, 64, 16))


def test_ledger_enums_hash_by_identity() -> None:
    for member in [*Account, *Kind, *HoldStatus]:
        assert hash(member) == object.__hash__(member)
        assert {member: 1}[type(member)(member.value)] == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.slow)])
def test_everyday_sql_writes_leave_no_reference_cycles(backend: str, tmp_path: Path) -> None:
    # a write's objects must go when it ends, by reference counting: what cycles kept
    # triggered the cyclic collector every few writes (a tenth of an earn's time)
    factory, cleanups = make_storage_factory(backend, tmp_path)
    try:
        _no_cycles(factory())
    finally:
        for cleanup in cleanups:
            cleanup()


def _no_cycles(storage: Storage) -> None:
    program = Program(id="cycles", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)))
    loyalty = Loyalty(program, storage)
    loyalty.enrol("m", key="enrol")
    loyalty.earn("m", 100, key="warm")  # first use: caches, compiled statements
    gc.collect()
    was = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        loyalty.earn("m", 100, key="earn")
        loyalty.spend("m", 30, key="spend")
        held = loyalty.hold("m", 30, key="hold", ttl=dt.timedelta(minutes=15))
        loyalty.capture(held.hold_id, key="capture")
        loyalty.earn("m", 100, key="earn")  # a replay
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(was)
        gc.garbage.clear()
    assert [] == left


def test_bulk_earn_runs_with_the_cyclic_collector_paused() -> None:
    # its rows are all alive until the write ends: a collection could free nothing
    collector_on: list[bool] = []

    class Watched(MemoryStorage):
        def unit_of_work(self, program_id: str) -> MemoryUnitOfWork:
            collector_on.append(gc.isenabled())
            return super().unit_of_work(program_id)

    program = Program(id="bulk", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    loyalty = Loyalty(program, Watched())
    members = [f"m{i}" for i in range(50)]
    for member in members:
        loyalty.enrol(member, key=f"enrol-{member}")
    loyalty.earn("m0", 5, key="earn")
    assert {True} == set(collector_on)  # everyday writes leave it alone
    collector_on.clear()
    loyalty.bulk_earn([(m, 10) for m in members], key="gift")
    assert [False] == collector_on
    assert gc.isenabled()
    assert 505 == sum(loyalty.balance(m).available for m in members)


def _members_due(count: int) -> Loyalty:
    """A memory program whose ``count`` members each have an expired lot and a tier
    evaluation due (the clock already moved past both)."""
    program = Program(id="due", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      ledger=LedgerPolicy(expiry=ExpiryPolicy(days=30)),
                      tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 100))))
    clock = TestClock(dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    loyalty = Loyalty(program, MemoryStorage(), clock=clock)
    for n in range(1, count + 1):
        loyalty.enrol(f"m{n}", key=f"enrol-m{n}")
        loyalty.earn(f"m{n}", 150, key=f"earn-m{n}")
    clock.set(dt.datetime(2027, 2, 1, tzinfo=dt.UTC))
    return loyalty


def test_due_work_batches_run_with_the_cyclic_collector_paused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a batch's rows (ledger and tiers) are all alive until it writes: a collection
    # could free nothing (at 20,000 members it ran over the growing batch again and again)
    from loyaltykit._pipeline import WritePipeline

    seen: list[tuple[str, bool]] = []
    batch = WritePipeline.batch

    def watched(self: WritePipeline, at: dt.datetime, apply: Any, *, retry: bool = False,
                what: str = "due work") -> Any:
        seen.append((what, gc.isenabled()))
        return batch(self, at, apply, retry=retry, what=what)

    monkeypatch.setattr(WritePipeline, "batch", watched)
    loyalty = _members_due(2)
    report = loyalty.run_due()
    assert (2, 2) == (report.expired_lots, report.tier_evaluations)
    ours = [on for what, on in seen if what in ("ledger due work", "tier due work")]
    assert 2 <= len(ours) and {False} == set(ours), seen
    assert gc.isenabled()


def test_the_collector_resumes_after_the_last_pause_and_only_if_it_was_on() -> None:
    assert gc.isenabled()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an outer pause still runs
    assert gc.isenabled()
    gc.disable()  # a host that switched it off itself
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_due_work_keeps_the_cyclic_collector_paused_between_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # re-enabled between batches it ran after every one (over the batch's new rows,
    # and now and then over the whole heap); one pause for the run, resumed at its end.
    # With a threshold of 1, any allocation while it is on starts a collection.
    from loyaltykit._pipeline import WritePipeline

    log: list[str] = []
    batch = WritePipeline.batch

    def watched(self: WritePipeline, at: dt.datetime, apply: Any, *, retry: bool = False,
                what: str = "due work") -> Any:
        log.append("batch")
        return batch(self, at, apply, retry=retry, what=what)

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            log.append("gc")

    monkeypatch.setattr(WritePipeline, "batch", watched)
    loyalty = _members_due(3)
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    gc.callbacks.append(collected)
    try:
        report = loyalty.run_due(batch_size=1)
    finally:
        gc.callbacks.remove(collected)
        gc.set_threshold(*threshold)
    assert (3, 3) == (report.expired_lots, report.tier_evaluations)
    first, last = log.index("batch"), len(log) - log[::-1].index("batch")
    assert 6 <= log.count("batch") and "gc" not in log[first:last], log
    assert gc.isenabled()
