"""The earning counters kept on a member's default-wallet account against the log they
summarise.

Caps, stamp cards and first-order conditions read the counters instead of the usage
log. These tests replay random histories of orders (in and out of time order),
returns, cancellations and events, in two wallets, and check after every step that

* each order and event is priced exactly as it is from the whole log (every order's
  tracked outcomes and every event's usage rows, read back from storage), and
* the stored counters equal the ones rebuilt from that log.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltykit import (
    AllOf,
    Cap,
    CapPeriod,
    EarningPolicy,
    Event,
    EventBonusRule,
    FirstOrder,
    FixedRule,
    LineMatch,
    Loyalty,
    MemberContext,
    MinNet,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    RuleGroup,
    StampCardRule,
    Storage,
    TestClock,
    Window,
    _activity,
    evaluate_event,
    evaluate_order,
)
from loyaltykit._activity import Activity, order_usage, retention
from loyaltykit._model import RuleUsage
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.changes import write_changes
from loyaltykit.testing.contract import berlin, make_program

EUR = "EUR"
START = berlin(2026, 1, 5, 12)


def earning() -> EarningPolicy:
    """Every kind of counted rule: calendar, rolling, lifetime and group caps, a stamp
    card, a first-order bonus and a capped event bonus."""
    return EarningPolicy(
        rules=(
            RateRule(id="base"),
            FixedRule(id="weekend", points=50, window=Window(weekdays=(6, 7)),
                      caps=(Cap(120, CapPeriod.MONTH),), group="bonus"),
            FixedRule(id="big", points=20, condition=MinNet(Decimal("40.00")),
                      caps=(Cap(30, CapPeriod.ROLLING, days=3),), group="bonus"),
            FixedRule(id="loyal", points=15, caps=(Cap(40, CapPeriod.LIFETIME),)),
            FixedRule(id="first", points=25, condition=AllOf((FirstOrder(),))),
            StampCardRule(id="card", every=3, points=10, counts="items",
                          match=LineMatch(categories=("coffee",))),
            EventBonusRule(id="review", event="review", points=5,
                           caps=(Cap(10, CapPeriod.DAY),)),
        ),
        groups=(RuleGroup(name="bonus", caps=(Cap(100, CapPeriod.WEEK),)),),
    )


def program() -> Program:
    base = make_program("A")
    return Program(id=base.id, time_zone=base.time_zone, currency=base.currency,
                   point_value=base.point_value, wallets=("points", "credits"),
                   ledger=base.ledger, earning=earning())


class Oracle:
    """Records through the facade and prices every source again from the whole log."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.program = program()
        self.clock = TestClock(berlin(2028, 6, 1))
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self.loyalty.enrol("ann", at=berlin(2025, 12, 1))
        self.orders: list[str] = []
        self.events: dict[str, list[RuleUsage]] = {}
        self.n = 0

    def log(self) -> list[RuleUsage]:
        rows = [r for rows in self.events.values() for r in rows]
        for order_id in self.orders:
            rows.extend(order_usage(self.loyalty.order(order_id)))
        return rows

    def context(self, *, first: bool) -> MemberContext:
        open_orders = sum(1 for o in self.orders
                          if self.loyalty.order(o).status.value == "open")
        return MemberContext(member_id="ann", enrolled_at=berlin(2025, 12, 1),
                             first_order=first and open_orders == 0)

    def stamps(self) -> dict[str, int]:
        return {"card": sum(r.stamps for r in self.log() if r.rule_id == "card")}

    def order(self, day: int, hour: int, coffee: int, cents: int, wallet: str) -> None:
        self.n += 1
        placed = START + dt.timedelta(days=day, hours=hour)
        lines = [OrderLine(sku="cake", category="food", quantity=1,
                           unit_price=Money(Decimal(cents) / 100, EUR), line_id="cake")]
        if coffee:
            lines.append(OrderLine(sku="espresso", category="coffee", quantity=coffee,
                                   unit_price=Money("2.50", EUR), line_id="coffee"))
        order = Order(id=f"o{self.n}", member_id="ann", placed_at=placed, currency=EUR,
                      lines=tuple(lines))
        expected = evaluate_order(self.program.earning, self.program.time_zone, order,
                                  self.context(first=True), usage=self.log(),
                                  stamps=self.stamps(), version=1)
        got = self.loyalty.record_order(order, wallet=wallet)
        assert _outcomes(expected) == _outcomes(got.evaluation)
        self.orders.append(order.id)

    def event(self, day: int, wallet: str) -> None:
        self.n += 1
        event = Event(id=f"e{self.n}", type="review", member_id="ann",
                      occurred_at=START + dt.timedelta(days=day, hours=3))
        expected = evaluate_event(self.program.earning, self.program.time_zone, event,
                                  self.context(first=False), usage=self.log(),
                                  stamps=self.stamps(), version=1)
        got = self.loyalty.record_event(event, wallet=wallet)
        assert _outcomes(expected) == _outcomes(got.evaluation)
        self.events[event.id] = [
            RuleUsage(self.program.id, "ann", f"event:{event.id}", o.rule_id, o.group,
                      event.occurred_at, o.points, o.stamps)
            for o in got.evaluation.outcomes if o.tracked and (o.points or o.stamps)]

    def give_back(self, index: int, cancel: bool) -> None:
        if not self.orders:
            return
        order_id = self.orders[index % len(self.orders)]
        record = self.loyalty.order(order_id)
        if record.status.value != "open":
            return
        self.n += 1
        if cancel:
            self.loyalty.cancel_order(order_id, key=f"c{self.n}")
            return
        left = {line["line_id"]: line["quantity"] - record.returned.get(line["line_id"], 0)
                for line in record.order["lines"]}
        line_id = next((k for k, v in sorted(left.items()) if v > 0), None)
        if line_id is not None:
            self.loyalty.record_return(order_id, {line_id: 1}, key=f"r{self.n}")

    def check_counters(self) -> None:
        with by_shop_ids(self.storage).unit_of_work(self.program.id) as uow:
            state = uow.ledger.get_account("points", "ann")
            credits = uow.ledger.get_account("credits", "ann")
        assert state is not None and credits is not None
        assert credits.activity is None  # counters live on the default wallet only
        assert state.activity is not None  # (parsed: what storage holds)
        stored = Activity.parse(state.activity)
        kept = retention(self.program.earning)
        assert (kept.rules, kept.groups) == (stored.keep_rules, stored.keep_groups)
        records = [self.loyalty.order(o) for o in self.orders]
        events = [r for rows in self.events.values() for r in rows]
        rebuilt = Activity.rebuild(events, records, kept, since=stored.since)
        assert rebuilt.orders == stored.orders
        assert rebuilt.stamps == stored.stamps
        assert rebuilt.used == stored.used
        pid = self.program.id
        assert _rows(rebuilt.entries(pid, "ann")) == _rows(stored.entries(pid, "ann"))


def _outcomes(evaluation: Any) -> list[tuple[str, Decimal, int]]:
    return [(o.rule_id, o.points, o.stamps) for o in evaluation.outcomes]


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    return sorted((r.source, r.rule_id, r.group, r.occurred_at, r.points, r.stamps)
                  for r in rows)


steps = st.lists(st.one_of(
    st.tuples(st.just("order"), st.integers(0, 120), st.integers(0, 10),
              st.integers(0, 4), st.integers(500, 6000), st.sampled_from(["points", "credits"])),
    st.tuples(st.just("event"), st.integers(0, 120), st.sampled_from(["points", "credits"])),
    st.tuples(st.just("return"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
), min_size=1, max_size=25)


def run(oracle: Oracle, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        if op[0] == "order":
            oracle.order(*op[1:])
        elif op[0] == "event":
            oracle.event(*op[1:])
        else:
            oracle.give_back(op[1], cancel=op[0] == "cancel")
        oracle.check_counters()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=steps)
def test_counters_price_like_the_whole_log(ops: list[tuple[Any, ...]]) -> None:
    run(Oracle(MemoryStorage()), ops)


def history() -> list[tuple[Any, ...]]:
    """A fixed history: a year of orders mostly in time order (so entries get dropped
    behind the horizon), some far in the past (so the counters are rebuilt), returns,
    cancellations and events in both wallets."""
    ops: list[tuple[Any, ...]] = []
    for i in range(60):
        day = i * 6 if i % 9 else max(0, i * 6 - 150)
        ops.append(("order", day, i % 11, i % 5, 800 + 97 * i,
                    "credits" if i % 7 == 0 else "points"))
        if i % 5 == 2:
            ops.append(("event", day, "points"))
        if i % 8 == 3:
            ops.append(("return", i))
        if i % 13 == 4:
            ops.append(("cancel", i - 2))
    return ops


@pytest.mark.slow
def test_counters_on_every_backend(storage: Storage) -> None:
    oracle = Oracle(storage)
    run(oracle, history())
    with by_shop_ids(storage).unit_of_work(oracle.program.id) as uow:
        state = uow.ledger.get_account("points", "ann")
    assert state is not None
    assert state.activity is not None
    stored = Activity.parse(state.activity)
    # the history is long enough that old entries were dropped behind the horizon
    assert stored is not None and stored.since is not None


def test_counters_missing_are_rebuilt(storage: Storage) -> None:
    """An account row without counters (written before they existed) gets them
    rebuilt from the log on the member's next order."""
    oracle = Oracle(storage)
    for i in range(4):
        oracle.order(i * 2, 3, 2, 4500, "points")
    oracle.event(1, "points")
    with by_shop_ids(storage).unit_of_work(oracle.program.id) as uow:
        state = uow.ledger.get_account("points", "ann")
        assert state is not None
        write_changes(uow, _changes({("ann", "points"): attrs.evolve(state, activity=None)}))
        uow.commit()
    with by_shop_ids(storage).unit_of_work(oracle.program.id) as uow:
        cleared = uow.ledger.get_account("points", "ann")
    assert cleared is not None and cleared.activity is None
    oracle.order(9, 3, 2, 4500, "points")
    oracle.check_counters()


def _changes(accounts: dict[tuple[str, str], Any]) -> Any:
    from loyaltykit.testing.changes import ChangeSet
    return ChangeSet(accounts=accounts)


@pytest.mark.parametrize("days", [0, 40, 400])
def test_an_order_far_in_the_past_is_priced_from_the_log(storage: Storage, days: int) -> None:
    """Orders long after, then one dated before the counters' entries: the weekend cap
    of its month is counted from the log."""
    oracle = Oracle(storage)
    for i in range(6):
        oracle.order(5 + i * 7, 0, 0, 3000, "points")  # Saturdays: weekend bonus
    for i in range(10):
        oracle.order(days + 60 + i * 30, 0, 0, 3000, "points")
    oracle.order(5 + 7, 2, 1, 3000, "points")
    oracle.check_counters()


# -- the stored form ----------------------------------------------------------------------


def _usage(source: str, rule: str, at: dt.datetime, points: str) -> RuleUsage:
    return RuleUsage("p", "ann", source, rule, None, at, Decimal(points), 0)


T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
KEPT = frozenset({"weekend"})


def test_the_stored_form_keeps_entries_as_text_until_they_change() -> None:
    """An order that adds no entry writes the stored entries back verbatim; one that
    adds an entry appends it; and the stored form round-trips."""
    start = Activity(keep_rules=KEPT).record(
        "order:a", T0, (), [_usage("order:a", "weekend", T0, "50")], orders=1)
    text = start.dump()
    loaded = Activity.parse(text)
    assert loaded.dump() == text
    entries_text = text[text.index('"entries":'):]
    # a source with nothing kept (an untracked rule): entries unchanged, text reused
    later = loaded.record("order:b", T0 + dt.timedelta(hours=1), (),
                          [_usage("order:b", "base", T0, "12.5")], orders=1)
    assert later.dump().endswith(entries_text)
    assert later.used[("base", None)] == Decimal("12.5") and later.orders == 2
    added = Activity.parse(later.dump())
    added = added.record("order:c", T0 + dt.timedelta(hours=2), (),
                         [_usage("order:c", "weekend", T0 + dt.timedelta(hours=2), "20")])
    assert [("order:a", "50"), ("order:c", "20")] == [
        (r.source, str(r.points)) for r in added.entries("p", "ann")]
    # a return replaces its source's entries
    back = added.record("order:a", T0, [_usage("order:a", "weekend", T0, "50")],
                        [_usage("order:a", "weekend", T0, "10")])
    assert [("order:c", "20"), ("order:a", "10")] == [
        (r.source, str(r.points)) for r in back.entries("p", "ann")]
    assert back.used[("weekend", None)] == Decimal(30)


def test_the_horizon_drops_old_entries_of_a_form_without_oldest() -> None:
    """Forms stored before ``oldest`` existed still drop entries behind the horizon:
    the entries are parsed to find their earliest instant."""
    legacy = ('{"v":1,"newest":"2026-03-01T12:00:00+00:00","orders":1,'
              '"keep_rules":["weekend"],"entries":[["order:a","weekend",null,'
              '"2026-03-01T12:00:00+00:00","50",0]]}')
    loaded = Activity.parse(legacy)
    assert [("order:a", T0)] == [
        (r.source, r.occurred_at) for r in loaded.entries("p", "ann")]
    later = loaded.record("order:b", T0 + dt.timedelta(days=60), (), [], orders=1,
                          horizon=dt.timedelta(days=39))
    assert [] == later.entries("p", "ann")
    assert later.since == T0 + dt.timedelta(days=21)
    # within the horizon nothing is dropped
    kept = loaded.record("order:b", T0 + dt.timedelta(days=30), (), [], orders=1,
                         horizon=dt.timedelta(days=39))
    assert 1 == len(kept.entries("p", "ann")) and kept.since is None


def test_a_stamp_card_named_entries_does_not_confuse_the_stored_form() -> None:
    stamps = {"coffee": 1, "entries": 3}  # stored as {"coffee":1,"entries":3}
    counters = Activity(keep_rules=KEPT, stamps=stamps).record(
        "order:a", T0, (), [_usage("order:a", "weekend", T0, "50")])
    for activity in (counters, Activity(stamps=stamps)):
        loaded = Activity.parse(activity.dump())
        assert stamps == dict(loaded.stamps)
        assert activity.entries("p", "ann") == loaded.entries("p", "ann")


def test_counters_dumped_or_parsed_are_loaded_again_without_parsing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member's next order reads the text its last one wrote, and every new member's
    first order the enrolment's same text: load hands back the counters it stands for."""
    counters = Activity(keep_rules=KEPT).record(
        "order:a", T0, (), [_usage("order:a", "weekend", T0, "50")], orders=1)
    text = counters.dump()
    kept = retention(EarningPolicy())
    fresh = Activity.fresh_text(kept)
    assert fresh is Activity.fresh_text(kept) and fresh == Activity.fresh(kept).dump()
    legacy = '{"v":1,"orders":3}'  # stored by another process
    parsed: list[str] = []
    parse = Activity.parse

    def spy(text: str) -> Activity:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(Activity, "parse", spy)
    assert Activity.load(text) is counters
    first = Activity.load(legacy)
    assert first is not None and 3 == first.orders
    assert Activity.load(legacy) is first
    assert Activity.load(fresh) is Activity.load(fresh)
    assert [legacy] == parsed


def test_counters_without_entries_make_no_horizon_cutoff(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to drop behind the horizon: no cutoff instant is turned into text (most
    members keep no entries: their programs' caps look back over no period)."""
    texts: list[dt.datetime] = []
    utc_text = _activity._utc_text

    def spy(at: dt.datetime) -> str:
        texts.append(at)
        return utc_text(at)

    monkeypatch.setattr(_activity, "_utc_text", spy)
    later = Activity(keep_rules=KEPT).record(
        "order:a", T0, (), [_usage("order:a", "base", T0, "5")], orders=1,
        horizon=dt.timedelta(days=39))
    assert [] == texts and not later.stored and later.since is None
    kept = later.record("order:b", T0 + dt.timedelta(days=1), (),
                        [_usage("order:b", "weekend", T0, "5")], horizon=dt.timedelta(days=39))
    assert 1 == len(kept.entries("p", "ann"))
    assert [T0 + dt.timedelta(days=1) - dt.timedelta(days=39)] == texts[-1:]
