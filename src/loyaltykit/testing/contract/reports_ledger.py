"""The ledger's reports part of the storage contract: program totals per wallet (the
identity ``issued = redeemed + expired + written_off + outstanding``), points per
period, members, counts, the tier distribution, breakage and liability (scenario A2).

Every backend gives the same figures; the tests use exact numbers (the scenario's and
others, in another time zone) and check the totals against the members' balances.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal

import attrs
import pendulum
import pytest

from loyaltykit import (
    Account,
    ClawbackPolicy,
    ExpiryPolicy,
    InvalidInput,
    Kind,
    LedgerPolicy,
    Money,
    NaiveDatetime,
    Period,
    Program,
    Storage,
    UnknownWallet,
    WalletTotals,
)
from loyaltykit._model import LotMovement, Posting, Transaction
from loyaltykit.storage.ledger import LedgerChanges
from loyaltykit.testing.contract.base import (
    HOLD_TTL,
    ContractPart,
    Shop,
    berlin,
    make_program,
    utc,
)
from loyaltykit.testing.contract.tiers import tier_program
from loyaltykit.testing.totals import check_totals

__all__ = ["LedgerReportContract"]

_TOKYO = pendulum.timezone("Asia/Tokyo")


def _tokyo(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=_TOKYO)


def _figures(t: WalletTotals) -> tuple[int, ...]:
    return (t.members, t.issued, t.redeemed, t.expired, t.written_off, t.available,
            t.pending, t.held, t.debt, t.outstanding)


def _program(program_id: str, time_zone: str, currency: str, point_value: str, *,
             months: int = 12) -> Program:
    return Program(id=program_id, time_zone=time_zone, currency=currency,
                   point_value=Money(point_value, currency),
                   ledger=LedgerPolicy(expiry=ExpiryPolicy(months=months)))


class LedgerReportContract(ContractPart):
    """Totals, members, tiers, points per period, breakage and liability."""

    # -- totals -------------------------------------------------------------------------

    def test_totals_classify_every_movement(self, storage: Storage) -> None:
        program = make_program(wallets=("points", "credits"),
                               expiry=ExpiryPolicy(days=30))
        shop = self.shop(storage, program, start=berlin(2026, 3, 1, 9))
        loyalty = shop.loyalty
        shop.enrol("a", "b", "c")
        assert [t.wallet for t in loyalty.reports.totals()] == ["credits", "points"]
        loyalty.earn("a", 500, key="e1")
        loyalty.earn("b", 300, key="e2")
        loyalty.earn("c", 80, key="e3", activates_at=shop.clock.now() + dt.timedelta(days=60))
        loyalty.earn("a", 40, key="e4", wallet="credits")
        spend = loyalty.spend("a", 120, key="s1")
        shop.later(dt.timedelta(hours=1))
        before = shop.clock.now()
        shop.later(dt.timedelta(hours=1))
        hold = loyalty.hold("b", 100, key="h1", ttl=HOLD_TTL)
        loyalty.capture(hold.hold_id, 60, key="c1")
        loyalty.hold("b", 50, key="h2", ttl=HOLD_TTL)  # stays open: held
        plus = loyalty.adjust("c", 25, key="a1", reason="goodwill")
        loyalty.adjust("a", -30, key="a2", reason="correction")
        loyalty.reverse(plus.transaction_id, key="r1")  # an adjustment's credit undone
        loyalty.reverse(spend.transaction_id, key="r2")  # the spend given back
        loyalty.transfer("a", "c", 70, key="t1")
        loyalty.clawback("b", 300, key="cb1")  # 190 taken (the 50 held stay), 110 debt
        # a: 500 - 30 - 70 = 400; b: 50 held and 110 debt; c: 80 pending + 70
        points = loyalty.reports.totals(wallet="points")
        assert [(3, 880, 60, 0, 330, 470, 80, 50, 110, 490)] == [
            _figures(t) for t in points]
        both = {t.wallet: t for t in loyalty.reports.totals()}
        assert (3, 40, 0, 0, 0, 40, 0, 0, 0, 40) == _figures(both["credits"])
        assert both["points"] == points[0]
        # the earlier instant: two earns, the pending one, the spend
        early = loyalty.reports.totals(as_of=before, wallet="points")[0]
        assert (3, 880, 120, 0, 0, 680, 80, 0, 0, 760) == _figures(early)
        assert before == early.as_of
        # thirty days on, due work expires what is left of the earns
        shop.later(dt.timedelta(days=31))
        loyalty.run_due()
        late = loyalty.reports.totals(wallet="points")[0]
        assert late.expired > 0 and late.issued == 880
        for at in (None, before, shop.clock.now() - dt.timedelta(days=10)):
            check_totals(loyalty, ["a", "b", "c"], as_of=at)

    def test_totals_under_pending_only_write_off_what_was_not_taken(
            self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        loyalty = shop.loyalty
        shop.enrol("m")
        loyalty.earn("m", 40, key="e1")
        loyalty.earn("m", 30, key="e2", activates_at=shop.clock.now() + dt.timedelta(days=14))
        loyalty.clawback("m", 80, key="cb")  # takes the 30 pending, writes off 50
        totals = loyalty.reports.totals()[0]
        assert (70, 0, 0, 30, 40, 0, 40) == (
            totals.issued, totals.redeemed, totals.expired, totals.written_off,
            totals.available, totals.pending, totals.outstanding)
        check_totals(loyalty, ["m"])

    def test_totals_read_the_old_pending_only_booking(self, storage: Storage) -> None:
        # rows written before the fix: the clawback booked its whole amount against
        # issued and the part it could not take to clawback_shortfall
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        loyalty = shop.loyalty
        shop.enrol("m")
        loyalty.earn("m", 40, key="e1")
        loyalty.earn("m", 30, key="e2", activates_at=shop.clock.now() + dt.timedelta(days=14))
        now = shop.clock.now()
        with storage.unit_of_work(shop.program.id) as uow:
            key = uow.members.keys_of(["m"])["m"]
            state = uow.ledger.get_account("points", key)
            assert state is not None
            lot = next(lot for lot in uow.ledger.load_lots("points", [key]) if lot.pending)
            tx = Transaction(
                id=uuid.uuid4(), program_id=shop.program.id, member_id=key,
                wallet="points", kind=Kind.CLAWBACK, occurred_at=now, recorded_at=now,
                postings=(Posting(Account.PENDING, -30), Posting(Account.ISSUED, 80),
                          Posting(Account.CLAWBACK_SHORTFALL, -50)),
                movements=(LotMovement(lot.id, -30),))
            uow.ledger.write(LedgerChanges(
                transactions=[tx], lots={lot.id: attrs.evolve(lot, remaining=0)},
                accounts={(key, "points"): state.apply(tx.postings)}))
            uow.commit()
        balance = loyalty.balance("m")
        assert (40, 40, 0) == (balance.earned, balance.total, balance.pending)
        assert 40 == loyalty.balance("m", as_of=now).earned
        totals = loyalty.reports.totals()[0]
        assert (70, 30, 40) == (totals.issued, totals.written_off, totals.outstanding)
        check_totals(loyalty, ["m"])

    # -- points per period --------------------------------------------------------------

    def test_points_per_month_in_the_programs_zone(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=40)),
                    start=berlin(2026, 1, 5, 9))
        loyalty = shop.loyalty
        shop.enrol("m", "n")
        loyalty.earn("m", 100, key="e1")
        shop.go(2026, 1, 31, 23, 30)  # 22:30 UTC: January in Berlin
        loyalty.earn("n", 50, key="e2")
        loyalty.spend("m", 30, key="s1")
        shop.clock.set(utc(2026, 2, 28, 23, 30))  # March 1st in Berlin
        loyalty.spend("n", 10, key="s2")  # and expiry of the rest of m's January lot
        loyalty.run_due()
        shop.go(2026, 4, 2, 12)
        loyalty.adjust("m", 5, key="a1", reason="goodwill")
        loyalty.run_due()
        got = loyalty.reports.points(Period.MONTH, berlin(2026, 1, 15), berlin(2026, 4, 3))
        assert [("2026-01", 150, 30, 0, 0), ("2026-02", 0, 0, 70, 0),
                ("2026-03", 0, 10, 40, 0), ("2026-04", 5, 0, 0, 0)] == [
            (p.label, p.issued, p.redeemed, p.expired, p.written_off) for p in got]
        assert (berlin(2026, 1, 1), berlin(2026, 2, 1)) == (got[0].start, got[0].end)
        quarters = loyalty.reports.points("quarter", berlin(2026, 1, 1), berlin(2026, 7, 1),
                                          wallet="points")
        assert [(155 - 5, 40, 110), (5, 0, 0)] == [
            (q.issued, q.redeemed, q.expired) for q in quarters]
        totals = loyalty.reports.totals()[0]
        assert (totals.issued, totals.redeemed, totals.expired) == (155, 40, 110)

    # -- members, counts, tiers ---------------------------------------------------------

    def _tier_shop(self, storage: Storage) -> tuple[Shop, dict[str, dt.datetime]]:
        shop = self.shop(storage, tier_program(), start=berlin(2026, 1, 10, 9))
        loyalty = shop.loyalty
        marks: dict[str, dt.datetime] = {}
        for name in ("ann", "bob", "cy", "dee", "eve"):
            loyalty.enrol(name)
            shop.later(dt.timedelta(minutes=1))
        loyalty.earn("ann", 600, key="e1")  # silver
        shop.later(dt.timedelta(days=10))
        marks["before"] = shop.clock.now()
        shop.later(dt.timedelta(days=10))
        loyalty.earn("bob", 2500, key="e2")  # gold
        loyalty.earn("cy", 100, key="e3")
        loyalty.spend("ann", 50, key="s1")
        marks["now"] = shop.clock.now()
        return shop, marks

    def test_members_pages_and_filters(self, storage: Storage) -> None:
        shop, marks = self._tier_shop(storage)
        reports = shop.loyalty.reports
        first = reports.members(limit=2)
        assert ["ann", "bob"] == [m.member_id for m in first.members]
        assert first.next_cursor is not None
        second = reports.members(limit=2, after=first.next_cursor)
        third = reports.members(limit=2, after=second.next_cursor)
        assert ["cy", "dee"] == [m.member_id for m in second.members]
        assert (["eve"], None) == ([m.member_id for m in third.members], third.next_cursor)
        ann = first.members[0]
        assert ("silver", marks["now"], berlin(2026, 1, 10, 9)) == (
            ann.tier, ann.last_active_at, ann.enrolled_at)
        assert ("member", None) == (third.members[0].tier, third.members[0].last_active_at)
        assert ["bob"] == [m.member_id for m in reports.members(tier="gold").members]
        active = reports.members(active_since=marks["before"])
        assert ["ann", "bob", "cy"] == [m.member_id for m in active.members]
        idle = reports.members(inactive_since=marks["before"])
        assert ["dee", "eve"] == [m.member_id for m in idle.members]
        assert (5, 1, 1, 3, 2, 0) == (
            reports.count(), reports.count(tier="gold"), reports.count(tier="silver"),
            reports.count(active_since=marks["before"]),
            reports.count(inactive_since=marks["before"]),
            reports.count(tier="gold", inactive_since=marks["before"]))
        shop.loyalty.privacy.erase("cy")
        names = [m.member_id for m in reports.members().members]
        assert names[:2] == ["ann", "bob"] and names[2].startswith("erased:")
        assert 5 == reports.count()

    def test_tier_distribution_now_and_as_of(self, storage: Storage) -> None:
        shop, marks = self._tier_shop(storage)
        reports = shop.loyalty.reports
        now = reports.tiers()
        assert [("member", 3), ("silver", 1), ("gold", 1), (None, 0)] == [
            (t.tier, t.members) for t in now.tiers]
        assert (5, 1) == (now.total, now.count("gold"))
        before = reports.tiers(as_of=marks["before"])
        assert [("member", 4), ("silver", 1), ("gold", 0), (None, 0)] == [
            (t.tier, t.members) for t in before.tiers]
        assert 0 == reports.tiers(as_of=berlin(2026, 1, 1)).total
        plain = self.shop(storage, make_program("plain"))
        plain.enrol("x")
        assert [(None, 1)] == [(t.tier, t.members) for t in plain.loyalty.reports.tiers().tiers]

    # -- breakage and liability ---------------------------------------------------------

    def test_a2_liability_and_breakage(self, storage: Storage) -> None:
        program = _program("A2", "Europe/Berlin", "EUR", "0.01")
        shop = self.shop(storage, program, start=berlin(2025, 1, 15, 10))
        loyalty = shop.loyalty
        shop.enrol("jan", "feb", "now")
        loyalty.earn("jan", 10_000, key="jan-earn")
        shop.go(2025, 2, 10, 10)
        loyalty.earn("feb", 5_000, key="feb-earn")
        shop.go(2025, 6, 1, 10)
        loyalty.spend("jan", 7_000, key="jan-spend")
        loyalty.spend("feb", 4_000, key="feb-spend")
        shop.go(2026, 3, 1, 10)
        loyalty.run_due()  # the rest of both cohorts expires
        loyalty.earn("now", 15_000, key="now-earn")
        loyalty.earn("now", 5_000, key="now-pending",
                     activates_at=shop.clock.now() + dt.timedelta(days=30))
        breakage = loyalty.reports.breakage()
        assert [("2025-01", 10_000, 7_000, 3_000, 0, True),
                ("2025-02", 5_000, 4_000, 1_000, 0, True),
                ("2026-03", 20_000, 0, 0, 20_000, False)] == [
            (c.label, c.issued, c.redeemed, c.expired, c.remaining, c.closed)
            for c in breakage.cohorts]
        assert breakage.rate == Decimal(4_000) / Decimal(15_000)
        assert str(breakage.rate).startswith("0.2666")
        assert breakage.expected_redemption == 1 - Decimal(4_000) / Decimal(15_000)
        liability = loyalty.reports.liability()
        assert (20_000, 15_000, 5_000) == (liability.points, liability.available,
                                           liability.pending)
        assert Money("200.00", "EUR") == liability.face_value
        assert Money("146.67", "EUR") == liability.liability
        assert "breakage" == liability.basis
        # before any cohort closed: the full face value
        early = loyalty.reports.liability(as_of=berlin(2025, 6, 2))
        assert ("face_value", 4_000, Money("40.00", "EUR")) == (
            early.basis, early.points, early.liability)
        given = loyalty.reports.liability(expected_redemption=Decimal("0.9"))
        assert (Money("180.00", "EUR"), "given") == (given.liability, given.basis)

    def test_breakage_months_in_another_zone(self, storage: Storage) -> None:
        program = _program("tokyo", "Asia/Tokyo", "USD", "0.05", months=6)
        shop = self.shop(storage, program, start=_tokyo(2025, 3, 10, 12))
        loyalty = shop.loyalty
        shop.enrol("u", "v", "w")
        loyalty.earn("u", 2_000, key="u1")
        # late on the last day of March in UTC: April 1st, 05:00 in Tokyo
        shop.clock.set(utc(2025, 3, 31, 20))
        loyalty.earn("v", 1_000, key="v1")
        shop.clock.set(_tokyo(2025, 5, 1, 9))
        loyalty.spend("u", 1_500, key="u-spend")
        loyalty.spend("v", 900, key="v-spend")
        shop.clock.set(_tokyo(2025, 11, 1, 9))
        loyalty.run_due()
        loyalty.earn("w", 3_333, key="w1")
        breakage = loyalty.reports.breakage()
        assert [("2025-03", 2_000, 1_500, 500, True), ("2025-04", 1_000, 900, 100, True),
                ("2025-11", 3_333, 0, 0, False)] == [
            (c.label, c.issued, c.redeemed, c.expired, c.closed) for c in breakage.cohorts]
        assert Decimal("0.2") == breakage.rate and Decimal("0.8") == (
            breakage.expected_redemption)
        liability = loyalty.reports.liability()
        assert (Money("166.65", "USD"), Money("133.32", "USD")) == (
            liability.face_value, liability.liability)
        # 166.65 x 0.5 = 83.325: half to even
        half = loyalty.reports.liability(expected_redemption=Decimal("0.5"))
        assert Money("83.32", "USD") == half.liability
        # as of the end of April, local time, no cohort was closed yet
        april = loyalty.reports.breakage(as_of=_tokyo(2025, 4, 30, 23))
        assert (None, None) == (april.rate, april.expected_redemption)
        assert [False, False] == [c.closed for c in april.cohorts]

    # -- bad input ----------------------------------------------------------------------

    def test_bad_input_is_refused(self, storage: Storage) -> None:
        shop = self.shop(storage, tier_program())
        loyalty = shop.loyalty
        shop.enrol("m")
        reports = loyalty.reports
        naive = dt.datetime(2026, 1, 1)
        naive_calls: list[Callable[[], object]] = [
            lambda: reports.totals(as_of=naive),
            lambda: reports.tiers(as_of="2026-01-01"),  # type: ignore[arg-type]
            lambda: reports.breakage(as_of=naive),
            lambda: reports.members(active_since=naive),
            lambda: reports.count(inactive_since=1),  # type: ignore[arg-type]
        ]
        for call in naive_calls:
            with pytest.raises(NaiveDatetime):
                call()
        for wallet_call in (lambda: reports.totals(wallet="nope"),
                            lambda: reports.liability(wallet="nope"),
                            lambda: reports.points("month", berlin(2026, 1, 1),
                                                   berlin(2026, 2, 1), wallet="nope")):
            with pytest.raises(UnknownWallet):
                wallet_call()
        refused: list[Callable[[], object]] = [
            lambda: reports.totals(as_of=shop.clock.now() + dt.timedelta(days=1)),
            lambda: reports.members(tier="platinum"),
            lambda: reports.count(tier=3),  # type: ignore[arg-type]
            lambda: reports.members(limit=0),
            lambda: reports.members(limit=True),
            lambda: reports.members(limit=10_000),
            lambda: reports.members(after="garbage"),
            lambda: reports.members(after="2026-01-01T00:00:00|"),
            lambda: reports.members(after=7),  # type: ignore[arg-type]
            lambda: reports.points("fortnight", berlin(2026, 1, 1), berlin(2026, 2, 1)),
            lambda: reports.points(3, berlin(2026, 1, 1), berlin(2026, 2, 1)),  # type: ignore[arg-type]
            lambda: reports.points(Period.DAY, berlin(2026, 2, 1), berlin(2026, 1, 1)),
            lambda: reports.points(Period.DAY, berlin(1990, 1, 1), berlin(2060, 1, 1)),
            lambda: reports.liability(expected_redemption=Decimal("1.5")),
            lambda: reports.liability(expected_redemption=0.5),  # type: ignore[arg-type]
            lambda: reports.liability(expected_redemption=Decimal("NaN")),
        ]
        for call in refused:
            with pytest.raises(InvalidInput):
                call()
        assert 1 == reports.count()

