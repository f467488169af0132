"""The tier part of the storage contract, and a pure model of tier history.

:class:`TierContract` is mixed into :class:`loyaltykit.testing.contract.StorageContract`,
so every backend runs it (a backend may also run it alone). :func:`replay_tiers`
recomputes a member's tier history from scratch with the pure rules of
:mod:`loyaltykit._tiers`, from what happened in the order it was written: the oracle the
stored (and, in SQL, set-based) history must equal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import attrs
import pendulum
import pytest

from loyaltykit import (
    Benefits,
    Downgrade,
    DuplicateKey,
    EarningPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    QualificationWindow,
    RateRule,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
    WindowKind,
)
from loyaltykit._tiers import TierState, catch_up, job_for, new_state, on_activity
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.changes import ChangeSet, write_changes
from loyaltykit.testing.contract.base import ContractPart

__all__ = ["TierContract", "replay_tiers", "tier_program"]

_BERLIN = pendulum.timezone("Europe/Berlin")


def _berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=_BERLIN)


def tier_program(
    *,
    window: QualificationWindow | None = None,
    downgrade: Downgrade = Downgrade.ONE_LEVEL,
    grace_periods: int = 1,
    notice_days: int = 30,
    lifetime_gold: bool = False,
    program_id: str = "R",
) -> Program:
    """Program R of the scenarios: tiers member (0), silver (500), gold (2000) on
    qualifying points earned in the calendar year in Europe/Berlin; one point per
    euro of net goods."""
    return Program(
        id=program_id, time_zone="Europe/Berlin", currency="EUR",
        point_value=Money("0.01", "EUR"),
        earning=EarningPolicy(rules=(RateRule(id="base", points=Decimal(1), per=Decimal(1)),)),
        tiers=TierPolicy(
            tiers=(Tier("member", 0), Tier("silver", 500, Benefits(discount_percent=Decimal(5))),
                   Tier("gold", 2000, Benefits(earn_multiplier=Decimal(2), free_shipping=True),
                        lifetime=lifetime_gold)),
            window=window or QualificationWindow(), downgrade=downgrade,
            grace_periods=grace_periods, notice_days=notice_days),
    )


def replay_tiers(
    program: Program,
    member_id: str,
    enrolled_at: dt.datetime,
    steps: Sequence[tuple[str, dt.datetime, int]],
) -> list[tuple[dt.datetime, str, str, str]]:
    """The tier history (at, from, to, reason) of a member enrolled at ``enrolled_at``,
    recomputed from ``steps`` in the order they were written: ``("activity", at,
    delta)`` (metric units dated ``at``) or ``("due", now, 0)`` (due work run at
    ``now``)."""
    policy = program.tiers
    assert policy is not None
    tz = program.time_zone
    local = pendulum.instance(enrolled_at).in_timezone(tz)
    anchor = dt.date(local.year, local.month, local.day)
    state: TierState = new_state(policy, member_id, enrolled_at, tz, anchor)
    buckets: dict[dt.datetime, int] = {}
    names = [t.name for t in policy.tiers]
    history: list[tuple[dt.datetime, str, str, str]] = []

    def metric_of(start: dt.datetime, end: dt.datetime | None) -> int:
        return sum(v for p, v in buckets.items() if start <= p and (end is None or p < end))

    for kind, at, delta in steps:
        state, evaluations = catch_up(policy, state, at, tz, metric_of)
        history += [(when, names[a], names[b], "evaluation") for when, a, b, _, _ in evaluations]
        if kind == "due":
            continue
        period = policy.window.period_start(at, tz, anchor)
        buckets[period] = buckets.get(period, 0) + delta
        if period < state.window_start:
            continue
        before = state.rank
        state, reason = on_activity(policy, state, metric_of(state.window_start,
                                                              state.next_evaluation), at, tz)
        if reason is not None:
            history.append((at, names[before], names[state.rank], reason))
    return history


def _history(loyalty: Loyalty, member_id: str) -> list[tuple[dt.datetime, str, str, str]]:
    return [(c.at, c.from_tier, c.to_tier, c.reason) for c in loyalty.tiers.history(member_id)]


class TierContract(ContractPart):
    """Tiers (DESIGN §5, scenarios T1-T2) on a backend: mixed into StorageContract."""

    def _tier_loyalty(self, storage: Storage, program: Program | None = None,
                 start: dt.datetime | None = None) -> tuple[Loyalty, TestClock]:
        clock = TestClock(start or _berlin(2026, 1, 10, 9))
        return self.make_loyalty(program or tier_program(), storage, clock=clock), clock

    def _tier_order(self, loyalty: Loyalty, clock: TestClock, order_id: str, member_id: str,
               euros: str, at: dt.datetime) -> int:
        clock.set(at)
        return loyalty.record_order(Order(
            id=order_id, member_id=member_id, placed_at=at, currency="EUR",
            lines=(OrderLine(sku="x", quantity=1, unit_price=Money(euros, "EUR")),))).points

    def test_t1_upgrade_at_once_keep_through_next_year_then_drop_one_level(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_loyalty(storage)
        loyalty.enrol("m")
        clock.set(_berlin(2026, 2, 1, 10))
        loyalty.earn("m", 600, key="e1")
        assert "silver" == loyalty.tiers.status("m").tier
        clock.set(_berlin(2026, 11, 30, 10))
        loyalty.earn("m", 1500, key="e2")
        assert "gold" == loyalty.tiers.status("m").tier
        clock.set(_berlin(2027, 1, 1, 0, 0))
        report = loyalty.run_due()
        assert (1, 0) == (report.tier_evaluations, report.tier_changes)
        assert "gold" == loyalty.tiers.status("m").tier
        clock.set(_berlin(2027, 5, 1, 10))
        loyalty.earn("m", 100, key="e3")
        clock.set(_berlin(2027, 12, 31, 23, 59))
        assert 0 == loyalty.run_due().tier_evaluations
        assert "gold" == loyalty.tiers.status("m").tier
        clock.set(_berlin(2028, 1, 1, 0, 0))
        assert 1 == loyalty.run_due().tier_changes
        assert "silver" == loyalty.tiers.status("m").tier  # one level, not to member
        assert [
            (_berlin(2026, 2, 1, 10), "member", "silver", "qualified"),
            (_berlin(2026, 11, 30, 10), "silver", "gold", "qualified"),
            (_berlin(2028, 1, 1), "gold", "silver", "evaluation"),
        ] == _history(loyalty, "m")
        assert "gold" == loyalty.tiers.as_of("m", _berlin(2027, 12, 31, 23, 59))
        assert "silver" == loyalty.tiers.as_of("m", _berlin(2028, 1, 1))
        assert "member" == loyalty.tiers.as_of("m", _berlin(2026, 1, 31))
        # a second run finds nothing to do
        assert 0 == loyalty.run_due().tier_evaluations

    def test_t2_a_return_that_unqualifies_reverts_at_once(self, storage: Storage) -> None:
        loyalty, clock = self._tier_loyalty(storage)
        loyalty.enrol("m")
        assert 600 == self._tier_order(loyalty, clock, "o1", "m", "600.00", _berlin(2026, 2, 1, 10))
        assert 1500 == self._tier_order(loyalty, clock, "o2", "m", "1500.00",
                                   _berlin(2026, 11, 30, 10))
        assert "gold" == loyalty.tiers.status("m").tier
        clock.set(_berlin(2026, 12, 5, 12))
        loyalty.record_return("o2", {"x": 1}, key="r1")
        assert "silver" == loyalty.tiers.status("m").tier
        assert 600 == loyalty.tiers.progress("m").metric
        assert (_berlin(2026, 12, 5, 12), "gold", "silver", "reverted") == _history(
            loyalty, "m")[-1]

    def test_calendar_window_follows_the_programs_zone_at_year_end(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_loyalty(storage)
        loyalty.enrol("m")
        # 22:30Z on 31 December is 23:30 in Berlin: 2026. 23:30Z is already 2027.
        clock.set(dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC))
        loyalty.earn("m", 300, key="a")
        clock.set(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC))
        loyalty.earn("m", 400, key="b")
        progress = loyalty.tiers.progress("m")
        assert _berlin(2027, 1, 1) == progress.window_start
        assert 400 == progress.metric
        assert "member" == loyalty.tiers.status("m").tier  # 300 + 400 never counted together
        assert _berlin(2028, 1, 1) == progress.deadline
        assert 100 == progress.needed  # silver (500) less the 400 of 2027
        assert "silver" == progress.next_tier

    def test_manual_and_lifetime_tiers_are_never_undercut(self, storage: Storage) -> None:
        loyalty, clock = self._tier_loyalty(storage, tier_program(lifetime_gold=True))
        for m in ("life", "manual", "temp"):
            loyalty.enrol(m)
        clock.set(_berlin(2026, 3, 1, 10))
        loyalty.earn("life", 2500, key="l1")
        loyalty.tiers.assign("manual", "gold", key="m1", reason="VIP by contract")
        loyalty.tiers.assign("temp", "gold", key="t1", reason="trial",
                            until=_berlin(2027, 6, 1))
        assert "gold" == loyalty.tiers.status("manual").tier
        assert "gold" == loyalty.tiers.status("manual").manual
        for year in (2027, 2028, 2029):
            clock.set(_berlin(year, 1, 1, 1))
            loyalty.run_due()
            assert "gold" == loyalty.tiers.status("life").tier
            assert "gold" == loyalty.tiers.status("manual").tier
        # the trial held at the 2027 evaluation, not at 2028's: then one level a year
        assert [("gold", "silver"), ("silver", "member")] == [
            (c.from_tier, c.to_tier) for c in loyalty.tiers.history("temp")
            if c.reason == "evaluation"]
        assert "manual" == loyalty.tiers.history("manual")[0].reason
        assert "VIP by contract" == loyalty.tiers.history("manual")[0].note

    def test_evaluations_and_reverts_equal_a_replay_from_scratch(
        self, storage: Storage
    ) -> None:
        program = tier_program()
        loyalty, clock = self._tier_loyalty(storage, program, start=_berlin(2025, 12, 1, 9))
        enrolled = clock.now()
        members = [f"m{i:02d}" for i in range(24)]
        steps: dict[str, list[tuple[str, dt.datetime, int]]] = {m: [] for m in members}
        for m in members:
            loyalty.enrol(m)
        keys = iter(range(10_000))
        for year in (2026, 2027, 2028):
            for i, m in enumerate(members):
                # a spread of yearly totals: none, silver, gold; some returned
                points = ((i * 7 + year) % 5) * 550
                if not points:
                    continue
                at = _berlin(year, 1 + i % 11, 2 + i % 20, 10)
                clock.set(at)
                tx = loyalty.earn(m, points, key=f"k{next(keys)}")
                steps[m].append(("activity", at, points))
                if (i + year) % 4 == 0:
                    later = at + dt.timedelta(days=3)
                    clock.set(later)
                    loyalty.reverse(tx.transaction_id, key=f"k{next(keys)}")
                    steps[m].append(("activity", later, -points))
            clock.set(_berlin(year + 1, 1, 1, 2))
            loyalty.run_due(batch_size=5)  # several set-based batches
            for m in members:
                steps[m].append(("due", clock.now(), 0))
        for m in members:
            assert replay_tiers(program, m, enrolled, steps[m]) == _history(loyalty, m), m
            for change in loyalty.tiers.history(m):
                if change.reason == "evaluation":
                    assert program.tiers is not None
                    drop = (program.tiers.rank(change.from_tier)
                            - program.tiers.rank(change.to_tier))
                    assert drop <= 1

    def test_batches_cover_disjoint_member_ranges(self, storage: Storage) -> None:
        """The storage side of parallel due work: batch ends walk the waiting states
        in member order, and a bounded job evaluates its range (after, upto] only."""
        program = tier_program(program_id="ranges")
        assert program.tiers is not None
        loyalty, clock = self._tier_loyalty(storage, program)
        members = [f"m{i:02d}" for i in range(10)]
        for m in members:
            loyalty.enrol(m)
            loyalty.earn(m, 10, key=m)
        # gold by hand for 2026 only: the evaluation takes m05 one level down
        loyalty.tiers.assign("m05", "gold", key="gold", reason="launch",
                            until=_berlin(2026, 12, 1))
        evaluation = _berlin(2027, 1, 1)
        clock.set(_berlin(2027, 1, 1, 2))
        job = job_for(program.tiers, program.time_zone, evaluation, None, clock.now(), 4)
        # the stores order members by the member keys the facade stored
        with storage.unit_of_work(program.id) as uow:
            key_of = uow.members.keys_of(members)
            keys = sorted(key_of.values())
            ends, after = [], None
            while (end := uow.tiers.tier_batch_end(attrs.evolve(job, after=after))) is not None:
                ends.append(end)
                after = end
        assert [keys[3], keys[7], keys[9]] == ends
        m05 = keys.index(key_of["m05"])
        # a range (low, high] of two or three members holding m05
        low = keys[m05 - 2] if m05 >= 2 else None
        high = keys[min(m05 + 1, 9)]
        inside = {m for m, k in key_of.items() if (low is None or low < k) and k <= high}
        with storage.unit_of_work(program.id) as uow:
            done, changed = uow.tiers.evaluate_tiers(attrs.evolve(job, after=low, upto=high))
            assert len(inside) == done
            # the one change, as appended to the history, with the state after it
            assert [(key_of["m05"], evaluation, "gold", "silver", "evaluation", 10,
                     clock.now(), None, _berlin(2028, 1, 1))] == [
                (c.change.member_id, c.change.at, c.change.from_tier, c.change.to_tier,
                 c.change.reason, c.change.metric, c.change.recorded_at, c.protected_until,
                 c.next_evaluation) for c in changed]
            uow.commit()
        with by_shop_ids(storage).unit_of_work(program.id) as uow:
            moved = {m for m in members
                     if (state := uow.tiers.get_tier_state(m)) is not None
                     and state.next_evaluation != evaluation}
            history = uow.tiers.tier_history("m05")
        assert inside == moved
        assert [("gold", "silver", 10)] == [
            (c.from_tier, c.to_tier, c.metric) for c in history if c.reason == "evaluation"]

    def test_parallel_due_work_equals_one_worker(self, storage: Storage) -> None:
        """run_due(workers=3) over many member ranges decides, records and notices what
        one worker does (on a storage that cannot run units of work at once, it is one
        worker)."""
        outcomes = []
        for workers, program_id in ((1, "serial"), (3, "parallel")):
            program = tier_program(program_id=program_id, grace_periods=0, notice_days=60)
            loyalty, clock = self._tier_loyalty(storage, program,
                                                start=_berlin(2025, 12, 1, 9))
            members = [f"m{i:02d}" for i in range(30)]
            for m in members:
                loyalty.enrol(m)
            reports = []
            for year in (2026, 2027):
                for i, m in enumerate(members):
                    points = ((i * 7 + year) % 5) * 550
                    if points:
                        clock.set(_berlin(year, 1 + i % 10, 2 + i % 20, 10))
                        loyalty.earn(m, points, key=f"{year}-{m}")
                for at in (_berlin(year, 12, 1, 10), _berlin(year + 1, 1, 1, 2)):
                    clock.set(at)
                    report = loyalty.run_due(batch_size=4, workers=workers)
                    reports.append(
                        (report.tier_evaluations, report.tier_changes, report.tier_notices))
            outcomes.append((
                reports,
                {m: _history(loyalty, m) for m in members},
                {m: loyalty.tiers.status(m).tier for m in members},
                # notices of one instant come in member-key order, unlike between programs
                sorted((n.member_id, n.evaluation_at, n.tier, n.would_be, n.metric, n.needed)
                       for n in loyalty.tiers.notices()),
            ))
        assert outcomes[0] == outcomes[1]
        reports, histories, _, notices = outcomes[0]
        assert reports[1][0] == reports[3][0] == 30  # every member evaluated, each year
        # the 2027 decisions drop some members: notices first, then the changes
        assert reports[2][2] > 0 and reports[3][1] > 0
        assert notices and any(h for h in histories.values())

    def test_notices_come_once_before_an_evaluation_that_would_downgrade(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_loyalty(storage, tier_program(grace_periods=0))
        loyalty.enrol("keeps")
        loyalty.enrol("drops")
        clock.set(_berlin(2026, 3, 1, 10))
        loyalty.earn("keeps", 2100, key="a")
        loyalty.earn("drops", 2100, key="b")
        clock.set(_berlin(2027, 1, 1, 1))
        loyalty.run_due()
        clock.set(_berlin(2027, 6, 1, 10))
        loyalty.earn("keeps", 2000, key="c")
        loyalty.earn("drops", 300, key="d")
        clock.set(_berlin(2027, 11, 15, 10))
        assert 0 == loyalty.run_due().tier_notices  # 46 days ahead: not yet
        clock.set(_berlin(2027, 12, 10, 10))
        assert 1 == loyalty.run_due().tier_notices
        assert 0 == loyalty.run_due().tier_notices
        (notice,) = loyalty.tiers.notices()
        assert ("drops", "gold", "silver", 300, 1700) == (
            notice.member_id, notice.tier, notice.would_be, notice.metric, notice.needed)
        assert _berlin(2028, 1, 1) == notice.evaluation_at
        assert not loyalty.tiers.progress("drops").keeps_tier
        assert loyalty.tiers.progress("keeps").keeps_tier

    def test_anniversary_and_rolling_windows(self, storage: Storage) -> None:
        anniversary = tier_program(window=QualificationWindow(WindowKind.ANNIVERSARY_YEAR),
                                   program_id="anniv")
        loyalty, clock = self._tier_loyalty(storage, anniversary, start=_berlin(2024, 2, 29, 9))
        loyalty.enrol("leap")
        loyalty.earn("leap", 600, key="a")
        clock.set(_berlin(2025, 3, 1, 10))
        loyalty.run_due()
        status = loyalty.tiers.status("leap")
        assert "silver" == status.tier
        # 28 February in common years, 29 February again in 2028
        assert _berlin(2026, 2, 28) == status.next_evaluation
        clock.set(_berlin(2027, 3, 1, 10))
        loyalty.run_due()
        assert _berlin(2028, 2, 29) == loyalty.tiers.status("leap").next_evaluation
        assert "member" == loyalty.tiers.status("leap").tier
        rolling = tier_program(window=QualificationWindow(WindowKind.ROLLING_MONTHS, months=3),
                               program_id="rolling", grace_periods=0)
        loyalty, clock = self._tier_loyalty(storage, rolling, start=_berlin(2026, 1, 10, 9))
        loyalty.enrol("r")
        loyalty.earn("r", 300, key="a")
        clock.set(_berlin(2026, 3, 10, 9))
        loyalty.earn("r", 300, key="b")
        assert "silver" == loyalty.tiers.status("r").tier  # January and March: one window
        clock.set(_berlin(2026, 4, 1, 1))
        loyalty.run_due()
        assert "silver" == loyalty.tiers.status("r").tier  # Jan-Mar still reaches 600
        clock.set(_berlin(2026, 5, 1, 1))
        loyalty.run_due()
        assert "member" == loyalty.tiers.status("r").tier  # Feb-Apr holds 300

    def test_a_second_new_tier_state_of_a_member_is_a_duplicate_key(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._tier_loyalty(storage)
        loyalty.enrol("m")
        with by_shop_ids(storage).unit_of_work("R") as uow:
            state = uow.tiers.get_tier_state("m")
            assert state is not None
            changes = ChangeSet()
            changes.tier_states["m"] = state
            changes.new_tier_states.add("m")
            with pytest.raises(DuplicateKey):
                write_changes(uow, changes)
        assert "member" == loyalty.tiers.status("m").tier

    def test_a_tier_state_is_written_for_the_member_of_its_key(self, storage: Storage
                                                               ) -> None:
        # the member-key layer hands the store states under their members' keys as they
        # are (no copy per state to put the key in it): the store reads the member from
        # the key, never from the state
        loyalty, _ = self._tier_loyalty(storage)
        loyalty.enrol("m")
        with by_shop_ids(storage).unit_of_work("R") as uow:
            state = uow.tiers.get_tier_state("m")
            assert state is not None
            changes = ChangeSet()
            changes.tier_states["m"] = attrs.evolve(state, member_id="someone-else", rank=2)
            write_changes(uow, changes)
            uow.commit()
        with by_shop_ids(storage).unit_of_work("R") as uow:
            stored = uow.tiers.get_tier_state("m")
            assert uow.tiers.get_tier_state("someone-else") is None
        assert stored is not None
        assert ("m", 2, state.version + 1) == (stored.member_id, stored.rank, stored.version)
