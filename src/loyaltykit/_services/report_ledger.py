"""Reports over the ledger, tiers and members: members, counts, totals per wallet,
tier distribution, points per period, liability and breakage (DESIGN §9).

Every figure is counted as :mod:`loyaltykit._reports_ledger` states it (the identity
``issued = redeemed + expired + written_off + outstanding``); each read is one or a
few set-based statements of the reports' store.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._ifrs15 import check_rate
from loyaltykit._member_keys import shop_ids
from loyaltykit._periods import Period, PeriodRange, period_ranges, report_periods
from loyaltykit._reports_ledger import (
    ACTIVITY_KINDS,
    FLOW_NAMES,
    Breakage,
    BreakageCohort,
    Liability,
    MemberPage,
    MemberRow,
    PointsPeriod,
    TierCount,
    TierDistribution,
    WalletTotals,
    breakage_rate,
    liability_amount,
)
from loyaltykit._services.context import Context
from loyaltykit._validate import check_instant

__all__ = ["MAX_MEMBER_PAGE", "LedgerReports"]

#: The most members one :meth:`LedgerReports.members` page may hold.
MAX_MEMBER_PAGE = 1000
_ONE = Decimal(1)


class LedgerReports:
    """The ledger's part of :class:`~loyaltykit._services.reports.ReportService`."""

    c: Context

    # -- validation -------------------------------------------------------------------

    def _wallets(self, wallet: str | None) -> tuple[str, ...]:
        if wallet is None:
            return tuple(self.c.program.wallets)
        return (self.c.program.wallet(wallet),)

    def _rank(self, tier: str | None) -> int | None:
        if tier is None:
            return None
        policy = self.c.program.tiers
        names = [t.name for t in policy.tiers] if policy is not None else []
        if not isinstance(tier, str) or tier not in names:
            raise InvalidInput("no such tier", tier=tier, tiers=names)
        return names.index(tier)

    @staticmethod
    def _since(value: object, name: str) -> dt.datetime | None:
        return None if value is None else check_instant(value, name)

    # -- totals -------------------------------------------------------------------------

    def totals(self, *, as_of: dt.datetime | None = None,
               wallet: str | None = None) -> list[WalletTotals]:
        """Program-wide totals per wallet (sorted by wallet; every wallet of the
        program, or only ``wallet``) at ``as_of`` (default now): what had occurred by
        then, as ``balance(as_of=)`` counts it. Now is the ledger as last written
        (expiries appear once due work or a write posted them).

        Each wallet's figures satisfy ``issued = redeemed + expired + written_off +
        outstanding`` and ``outstanding = available + pending + held - debt``; the
        outstanding points are the sum of the members' balances' ``total``.
        """
        wallets = self._wallets(wallet)
        when = self.c.instant(as_of, "as_of")
        bound = None if as_of is None else when
        with self.c.read() as uow:
            flows = {f.wallet: f.sums for f in uow.reports.ledger_flows(
                as_of=bound, periods=None, wallet=wallet and wallets[0])}
            counts = uow.reports.wallet_members(bound)
        out = []
        for name in wallets:
            sums = dict.fromkeys(FLOW_NAMES, 0) | dict(flows.get(name, {}))
            out.append(WalletTotals(
                wallet=name, as_of=when, members=counts.get(name, 0),
                issued=sums["issued"], redeemed=sums["redeemed"], expired=sums["expired"],
                written_off=sums["written_off"], available=sums["available"],
                pending=sums["pending"], held=sums["held"], debt=sums["debt"],
                outstanding=sums["available"] + sums["pending"] + sums["held"]
                - sums["debt"]))
        return sorted(out, key=lambda t: t.wallet)

    def points(self, period: Period | str, start: dt.datetime, end: dt.datetime, *,
               wallet: str | None = None) -> list[PointsPeriod]:
        """Points issued, redeemed, expired and written off per calendar ``period``
        (day, week, month, quarter, year in the program's time zone) overlapping
        ``[start, end)``, whole periods, in time order, zeros included; counted as
        :meth:`totals` counts them, by the business time of each transaction. All
        wallets together, or only ``wallet``. The redemption rate of a period is
        ``redeemed / issued``."""
        if wallet is not None:
            self.c.program.wallet(wallet)
        ranges = self._ranges(period, start, end)
        bounds = [(r.start, r.end) for r in ranges]
        with self.c.read() as uow:
            flows = uow.reports.ledger_flows(as_of=None, periods=bounds, wallet=wallet)
        sums = [dict.fromkeys(FLOW_NAMES, 0) for _ in ranges]
        for f in flows:
            for name in FLOW_NAMES:
                sums[f.period][name] += f.sums.get(name, 0)
        return [PointsPeriod(label=r.label, start=r.start, end=r.end, wallet=wallet,
                             issued=s["issued"], redeemed=s["redeemed"],
                             expired=s["expired"], written_off=s["written_off"])
                for r, s in zip(ranges, sums, strict=True)]

    def _ranges(self, period: Period | str, start: dt.datetime, end: dt.datetime
                ) -> list[PeriodRange]:
        return report_periods(period, start, end, self.c.program.time_zone)

    # -- members ------------------------------------------------------------------------

    def members(self, *, tier: str | None = None, active_since: dt.datetime | None = None,
                inactive_since: dt.datetime | None = None, after: str | None = None,
                limit: int = 100) -> MemberPage:
        """A page of the program's members in enrolment order, with their current
        tier (as stored: an evaluation due work has not run yet is not counted) and
        last activity: the latest business time of an earn, spend, hold, capture or
        transfer in any wallet (not expiries, activations, releases, clawbacks,
        adjustments or reversals; an order that earned nothing is no activity here).

        ``tier`` keeps members holding that tier now; ``active_since`` those with
        activity at or after it; ``inactive_since`` those with none at or after it
        (never active included). Pass the page's ``next_cursor`` as ``after`` for the
        next page. An erased member is listed as ``"erased:<key>"``."""
        rank = self._rank(tier)
        since = self._since(active_since, "active_since")
        idle = self._since(inactive_since, "inactive_since")
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
                1 <= limit <= MAX_MEMBER_PAGE):
            raise InvalidInput(f"limit must be an int in 1..{MAX_MEMBER_PAGE}", limit=limit)
        start = _cursor(after)
        with self.c.read() as uow:
            facts = uow.reports.member_facts(rank=rank, active_since=since,
                                             inactive_since=idle, after=start,
                                             limit=limit, activity=ACTIVITY_KINDS)
            ids = shop_ids(uow.members, [f.member_id for f in facts])
        names = self._tier_names()
        rows = tuple(MemberRow(member_id=ids[f.member_id], enrolled_at=f.enrolled_at,
                               tier=names[f.rank] if f.rank is not None
                               and f.rank < len(names) else None,
                               last_active_at=f.last_active_at) for f in facts)
        cursor = None
        if len(facts) == limit:
            cursor = f"{facts[-1].enrolled_at.isoformat()}|{facts[-1].member_id}"
        return MemberPage(members=rows, next_cursor=cursor)

    def count(self, *, tier: str | None = None, active_since: dt.datetime | None = None,
              inactive_since: dt.datetime | None = None) -> int:
        """How many members :meth:`members` lists with the same filters, in all."""
        rank = self._rank(tier)
        since = self._since(active_since, "active_since")
        idle = self._since(inactive_since, "inactive_since")
        with self.c.read() as uow:
            return uow.reports.count_members(rank=rank, active_since=since,
                                             inactive_since=idle, activity=ACTIVITY_KINDS)

    def _tier_names(self) -> list[str]:
        policy = self.c.program.tiers
        return [t.name for t in policy.tiers] if policy is not None else []

    def tiers(self, *, as_of: dt.datetime | None = None) -> TierDistribution:
        """Members per tier: now (each member's stored tier), or as of an earlier
        instant from the tier history (the members enrolled by then, each on the tier
        of its last history line by then, the base tier before any). Every tier of the
        program in ladder order, zeros included, then members with no tier (no tier
        state, or a program without tiers); a tier no longer in the program that the
        history still names is listed after them."""
        when = self.c.instant(as_of, "as_of")
        names = self._tier_names()
        counts: dict[str | None, int] = {}
        with self.c.read() as uow:
            if as_of is None:
                for rank, n in uow.reports.tier_ranks().items():
                    name = names[rank] if rank is not None and rank < len(names) else None
                    counts[name] = counts.get(name, 0) + n
            else:
                for tally in uow.reports.tiers_as_of(when):
                    name = tally.tier
                    if name is None and tally.has_state and names:
                        name = names[0]
                    counts[name] = counts.get(name, 0) + tally.members
        listed = [TierCount(n, counts.pop(n, 0)) for n in names]
        listed.append(TierCount(None, counts.pop(None, 0)))
        listed += [TierCount(n, counts[n]) for n in sorted(k for k in counts if k)]
        return TierDistribution(as_of=when, tiers=tuple(listed),
                                total=sum(t.members for t in listed))

    # -- liability and breakage ---------------------------------------------------------

    def breakage(self, *, as_of: dt.datetime | None = None,
                 wallet: str | None = None) -> Breakage:
        """Monthly cohorts of lots (earned by an earn or a positive manual adjustment,
        grouped by the calendar month of ``earned_at`` in the program's zone; lots a
        transfer created belong to the sender's cohort, where leaving counts as used),
        as of ``as_of`` (default now), in ``wallet`` (default the program's default
        wallet). A cohort is closed when none of its lots has points left. The
        breakage rate is expired / issued over the closed cohorts; expected
        redemption 1 - rate (both None without a closed cohort)."""
        name = self.c.program.wallet(wallet)
        when = self.c.instant(as_of, "as_of")
        with self.c.read() as uow:
            first = uow.reports.first_lot_at(name, when)
            ranges: list[PeriodRange] = []
            if first is not None:
                ranges = period_ranges(Period.MONTH, first, when + dt.timedelta(
                    microseconds=1), self.c.program.time_zone)
            found = uow.reports.lot_cohorts(name, [(r.start, r.end) for r in ranges], when)
        cohorts = tuple(BreakageCohort(month=ranges[s.month].day, issued=s.issued,
                               redeemed=s.issued - s.expired - s.remaining,
                               expired=s.expired, remaining=s.remaining,
                               closed=s.remaining == 0) for s in found)
        issued = sum(c.issued for c in cohorts if c.closed)
        expired = sum(c.expired for c in cohorts if c.closed)
        rate = breakage_rate(issued, expired)
        return Breakage(as_of=when, wallet=name, cohorts=cohorts, closed_issued=issued,
                        closed_expired=expired, rate=rate,
                        expected_redemption=None if rate is None else _ONE - rate)

    def liability(self, *, as_of: dt.datetime | None = None, wallet: str | None = None,
                  expected_redemption: Decimal | None = None) -> Liability:
        """What the outstanding points of ``wallet`` (default the program's default
        wallet) are worth at ``as_of`` (default now): points = available + pending +
        held (debt is not netted), face value = points x the program's point value,
        liability = face value x expected redemption, half to even to the cent.

        The expected redemption is ``expected_redemption`` if given (a Decimal in
        0..1), else 1 - the breakage of closed cohorts (:meth:`breakage`), else 1
        (no closed cohort yet: the full face value, the prudent default)."""
        name = self.c.program.wallet(wallet)
        given = _fraction(expected_redemption)
        when = self.c.instant(as_of, "as_of")
        totals = self.totals(as_of=as_of and when, wallet=name)[0]
        if given is not None:
            expected, basis = given, "given"
        else:
            found = self.breakage(as_of=as_of and when, wallet=name)
            if found.closed_issued:
                expected = Fraction(found.closed_issued - found.closed_expired,
                                    found.closed_issued)
                basis = "breakage"
            else:
                expected, basis = Fraction(1), "face_value"
        points = totals.available + totals.pending + totals.held
        value = self.c.program.point_value
        face = value * points
        shown = (expected_redemption if given is not None and expected_redemption is not None
                 else Decimal(expected.numerator) / Decimal(expected.denominator))
        return Liability(as_of=when, wallet=name, points=points,
                         available=totals.available, pending=totals.pending,
                         held=totals.held, debt=totals.debt, point_value=value,
                         face_value=face, expected_redemption=shown, basis=basis,
                         liability=liability_amount(face, expected))


def _fraction(value: object) -> Fraction | None:
    if value is None:
        return None
    return Fraction(check_rate(value, "expected_redemption"))


def _cursor(after: object) -> tuple[dt.datetime, str] | None:
    if after is None:
        return None
    try:
        if not isinstance(after, str) or len(after) > 400:
            raise ValueError
        stamp, sep, key = after.partition("|")
        if not sep or not key:
            raise ValueError
        return check_instant(dt.datetime.fromisoformat(stamp), "after"), key
    except (ValueError, InvalidInput):
        raise InvalidInput("malformed members cursor", after=shown(after)) from None

