"""Program-wide reports over the ledger, members and tiers: the values they return
and the pure maths (how a posting counts in the totals, breakage, liability).

**The identity.** Per wallet, program-wide, at any instant::

    issued = redeemed + expired + written_off + outstanding
    outstanding = available + pending + held - debt

where every posting of the ledger counts in exactly one term
(:func:`flow_of`, the one classification both backends implement):

* ``issued``: points the program credited to members: earns (order, referral, bonus
  earns alike: the ``issued`` account) and positive manual adjustments, net of the
  reversals of those;
* ``written_off``: points taken back without being redeemed: clawbacks and negative
  manual adjustments, net of their reversals;
* ``redeemed``: spends and captures, net of refunds and reversals;
* ``expired``: points that expired (also those returning to a lot past its expiry);
* ``available``, ``pending``, ``held``, ``debt``: the members' own accounts.

A reversal counts with the transaction it reverses (joined on ``reverses_id``), an
adjustment by the sign of its own posting (a reversal of one by the sign of the
adjustment it reverses). Points a reversal could not take back under the
``PENDING_ONLY`` policy stay issued (the member spent them). Rows written before a
``PENDING_ONLY`` clawback stopped posting its shortfall to ``clawback_shortfall``
count that account with ``issued`` (so such old clawbacks count only what they took).
A transfer moves points between two members of the same wallet (both halves post to
the wallet's ``transfers`` account and cancel program-wide), so it is in no term.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import attrs

from loyaltykit._json import JsonForm
from loyaltykit._values import Money

__all__ = [
    "FLOW_NAMES",
    "Breakage",
    "BreakageCohort",
    "Liability",
    "MemberPage",
    "MemberRow",
    "PointsPeriod",
    "TierCount",
    "TierDistribution",
    "WalletTotals",
    "ACTIVITY_KINDS",
    "breakage_rate",
    "flow_of",
    "liability_amount",
]

#: The sums a ledger read gives per wallet (and period): the flows, then the members'
#: accounts, then ``transfers`` (zero program-wide: a check, not a term).
FLOW_NAMES = ("issued", "redeemed", "expired", "written_off", "available", "pending",
              "held", "debt", "transfers")

#: The kinds of transaction that count as a member's activity: points earned, spent,
#: held or captured at checkout, or transferred (what the member or the shop did for
#: them; not expiries, activations, releases, clawbacks, adjustments or reversals).
ACTIVITY_KINDS = ("earn", "spend", "hold", "capture", "transfer")

_ISSUED_ACCOUNTS = frozenset({"issued", "clawback_shortfall"})
_CENT = Decimal("0.01")


def flow_of(kind: str, reversed_kind: str | None, account: str, amount: int
            ) -> tuple[str, int]:
    """The term (one of :data:`FLOW_NAMES`) a posting of ``amount`` on ``account``
    counts in, and its signed contribution. ``kind`` is its transaction's kind,
    ``reversed_kind`` the kind of the transaction a reversal reverses (else None)."""
    reversing = kind == "reverse"
    cls = reversed_kind if reversing else kind
    if account in _ISSUED_ACCOUNTS:
        return ("written_off", amount) if cls == "clawback" else ("issued", -amount)
    if account == "adjustments":
        # a credit posts negative here; a reversal of an adjustment the opposite sign
        credit = amount > 0 if (reversing and cls == "adjust") else amount < 0
        return ("issued", -amount) if credit else ("written_off", amount)
    if account == "debt":
        return "debt", -amount
    return account, amount


@attrs.frozen
class WalletTotals(JsonForm):
    """One wallet's totals at ``as_of`` (what had occurred by then).

    ``members`` have an account in the wallet (enrolled by ``as_of``); the points
    figures are program-wide sums (see the identity in the reports' docs):
    ``issued = redeemed + expired + written_off + outstanding`` and
    ``outstanding = available + pending + held - debt``. ``available`` is the points
    in the members' lots not held (before any debt: under ``ALLOW_NEGATIVE`` a
    member's balance shows ``available - debt``).
    """

    wallet: str
    as_of: dt.datetime
    members: int
    issued: int
    redeemed: int
    expired: int
    written_off: int
    available: int
    pending: int
    held: int
    debt: int
    outstanding: int


@attrs.frozen
class MemberRow(JsonForm):
    """One member in a :class:`MemberPage`: the shop's ``member_id`` (an erased member
    shows as ``"erased:<key>"``), when it enrolled, its current ``tier`` name (None:
    no tier state, or a program without tiers) and its last activity (None: none yet;
    see :data:`ACTIVITY_KINDS`)."""

    member_id: str
    enrolled_at: dt.datetime
    tier: str | None
    last_active_at: dt.datetime | None


@attrs.frozen
class MemberPage(JsonForm):
    """A page of members in enrolment order (then by an internal key); pass
    ``next_cursor`` back as ``after`` for the next page (None: no more)."""

    members: tuple[MemberRow, ...]
    next_cursor: str | None


@attrs.frozen
class TierCount(JsonForm):
    """How many members hold ``tier`` (None: members with no tier)."""

    tier: str | None
    members: int


@attrs.frozen
class TierDistribution(JsonForm):
    """Members per tier at ``as_of``: every tier of the program in ladder order (zeros
    included), then members with no tier (``tier=None``); ``total`` is their sum."""

    as_of: dt.datetime
    tiers: tuple[TierCount, ...]
    total: int

    def count(self, tier: str | None) -> int:
        """The members holding ``tier`` (None: with no tier); 0 for a name not listed."""
        return next((t.members for t in self.tiers if t.tier == tier), 0)


@attrs.frozen
class PointsPeriod(JsonForm):
    """Points that moved in one reporting period ``[start, end)`` (UTC bounds of a
    calendar period in the program's zone, named by ``label``), counted as the
    totals count them: ``issued``, ``redeemed``, ``expired``, ``written_off``."""

    label: str
    start: dt.datetime
    end: dt.datetime
    wallet: str | None
    issued: int
    redeemed: int
    expired: int
    written_off: int


@attrs.frozen
class BreakageCohort(JsonForm):
    """The lots earned in one calendar month (``month``: its first day, in the
    program's zone): points ``issued`` (the lots' amounts), ``expired`` of them,
    ``redeemed`` (used otherwise: spent, captured, taken back, transferred, settling
    debt) and ``remaining`` at the report's instant. ``closed``: no lot of the
    cohort has points left."""

    month: dt.date
    issued: int
    redeemed: int
    expired: int
    remaining: int
    closed: bool

    @property
    def label(self) -> str:
        """``2025-01``."""
        return f"{self.month.year:04d}-{self.month.month:02d}"


@attrs.frozen
class Breakage(JsonForm):
    """Breakage estimated from closed monthly cohorts (DESIGN §9).

    ``rate`` = expired / issued over the closed cohorts (None: no closed cohort),
    ``expected_redemption`` = 1 - rate (None likewise); both exact to 28 digits.
    ``closed_issued`` / ``closed_expired`` are the sums they come from.
    """

    as_of: dt.datetime
    wallet: str
    cohorts: tuple[BreakageCohort, ...]
    closed_issued: int
    closed_expired: int
    rate: Decimal | None
    expected_redemption: Decimal | None


@attrs.frozen
class Liability(JsonForm):
    """The money the program owes for outstanding points at ``as_of``.

    ``points`` = available + pending + held (held points are the member's until a
    capture redeems them); ``debt`` is shown but not netted (a member's debt is settled
    only by future earnings, never by other members' points). ``face_value`` =
    points x ``point_value``; ``liability`` = face value x ``expected_redemption``,
    rounded half to even to the cent. ``basis`` says where the expected redemption
    came from: ``"breakage"`` (1 - the breakage of closed cohorts), ``"given"`` (the
    caller's), ``"face_value"`` (no closed cohort yet: 1, the prudent default).
    """

    as_of: dt.datetime
    wallet: str
    points: int
    available: int
    pending: int
    held: int
    debt: int
    point_value: Money
    face_value: Money
    expected_redemption: Decimal
    basis: str
    liability: Money


def breakage_rate(issued: int, expired: int) -> Decimal | None:
    """expired / issued (28 significant digits), None when nothing was issued."""
    if issued <= 0:
        return None
    return Decimal(expired) / Decimal(issued)


def liability_amount(face_value: Money, expected: Fraction) -> Money:
    """``face_value`` x ``expected`` (exact), rounded half to even to the cent."""
    exact = Fraction(face_value.amount) * expected
    cents = (exact / Fraction(_CENT)).numerator, (exact / Fraction(_CENT)).denominator
    whole, rest = divmod(cents[0], cents[1])
    twice = 2 * rest
    if twice > cents[1] or (twice == cents[1] and whole % 2 == 1):
        whole += 1
    amount = (Decimal(whole) * _CENT).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    return Money(amount, face_value.currency)


def sums_of(rows: Mapping[str, int]) -> dict[str, int]:
    """Every name of :data:`FLOW_NAMES` with its sum in ``rows`` (0 if absent)."""
    return {name: int(rows.get(name, 0)) for name in FLOW_NAMES}
