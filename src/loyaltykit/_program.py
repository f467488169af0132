"""A loyalty program as data: time zone, currency, wallets and ledger policies.

A :class:`Program` validates on construction (errors name the bad field) and
round-trips to a JSON-compatible dict. Calendar maths (expiry rounding, pending days)
happens in the program's IANA time zone (:mod:`loyaltykit._calendar`).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import re
import tomllib
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._calendar import in_zone, round_up
from loyaltykit._calendar import zone as zone  # where the service looks for it
from loyaltykit._errors import (
    InvalidProgram,
    LoyaltyError,
    NaiveDatetime,
    UnknownWallet,
    shown,
)
from loyaltykit._json import JsonForm
from loyaltykit._outbox import EventPolicy
from loyaltykit._payment import PaymentPolicy
from loyaltykit._referrals import ReferralPolicy
from loyaltykit._rewards import FixedDiscount, RewardPolicy
from loyaltykit._rules import EarningPolicy
from loyaltykit._tiers import TierPolicy
from loyaltykit._validate import (
    CURRENCIES,
    NAME,
    check_instant,
    check_keys,
    check_time_zone,
    field_name,
    invalid,
)
from loyaltykit._values import Money, to_utc

__all__ = [
    "ClawbackPolicy",
    "ExpiryPolicy",
    "ExpiryRounding",
    "ExpiryStart",
    "LedgerPolicy",
    "PendingPolicy",
    "Program",
    "SpendOrder",
]

_PROGRAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
#: The longest expiry or pending period in days (about 273 years), and in months.
#: Bounded so that an expiry counted from an activation counted from any supported
#: instant stays a valid date (docs/errors.md, "What valid input is").
MAX_PERIOD_DAYS = 100_000
MAX_PERIOD_MONTHS = 3_000


class SpendOrder(enum.Enum):
    """Which lots a spend consumes first."""

    #: Soonest-expiring first; lots that never expire last; ties oldest first (default).
    SOONEST_EXPIRING = "soonest_expiring"
    #: Oldest earned first.
    OLDEST_FIRST = "oldest_first"
    #: Newest earned first.
    NEWEST_FIRST = "newest_first"


class ClawbackPolicy(enum.Enum):
    """What a clawback does when the member has fewer points than it takes back."""

    #: Take what is there; the rest becomes debt that later earnings settle first.
    DEBT = "debt"
    #: Like DEBT, but the balance shows the shortfall as a negative available balance.
    ALLOW_NEGATIVE = "allow_negative"
    #: Take only pending points; what cannot be taken is written off: not taken, not
    #: booked, and recorded as the transaction's ``metadata["shortfall"]``.
    PENDING_ONLY = "pending_only"


class ExpiryRounding(enum.Enum):
    """Round a lot's expiry up to the start of the next day / month / quarter / year."""

    NONE = "none"
    DAY = "day"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class ExpiryStart(enum.Enum):
    """Whether the expiry period counts from the earn or from the lot's activation."""

    EARN = "earn"
    ACTIVATION = "activation"


def _check_count(field: str, value: object, *, allow_none: bool,
                 high: int = MAX_PERIOD_DAYS) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > high:
        raise invalid(field, f"must be an int between 0 and {high}", value)


@attrs.frozen
class ExpiryPolicy(JsonForm):
    """When lots expire: ``days`` or ``months`` after the start, rounded up.

    With neither ``days`` nor ``months`` set, points never expire. Rounding moves the
    instant to the start of the next calendar period in the program's time zone, so a
    lot earned on 2026-01-15 with ``months=12, round_up_to=MONTH`` expires at
    2027-02-01 00:00 local time.
    """

    days: int | None = None
    months: int | None = None
    round_up_to: ExpiryRounding = ExpiryRounding.NONE
    counted_from: ExpiryStart = ExpiryStart.EARN

    def __attrs_post_init__(self) -> None:
        _check_count("ledger.expiry.days", self.days, allow_none=True)
        _check_count("ledger.expiry.months", self.months, allow_none=True,
                     high=MAX_PERIOD_MONTHS)
        if self.days is not None and self.months is not None:
            raise invalid("ledger.expiry", "give days or months, not both", attrs.asdict(self))
        if not isinstance(self.round_up_to, ExpiryRounding):
            raise invalid("ledger.expiry.round_up_to", "must be an ExpiryRounding",
                          self.round_up_to)
        if not isinstance(self.counted_from, ExpiryStart):
            raise invalid("ledger.expiry.counted_from", "must be an ExpiryStart", self.counted_from)

    @property
    def expires(self) -> bool:
        """True if lots expire at all under this policy."""
        return self.days is not None or self.months is not None

    def expiry_for(self, start: dt.datetime, time_zone: str) -> dt.datetime | None:
        """Return the expiry instant (UTC) of a lot whose period starts at ``start``."""
        if not self.expires:
            return None
        if (time_zone == "UTC" and self.days is not None
                and self.round_up_to is ExpiryRounding.NONE and start.tzinfo is dt.UTC):
            # days on a clock without offset changes are fixed lengths: no time zone
            # work (a tenth of an earn's own time)
            return start + dt.timedelta(days=self.days)
        local = in_zone(start, time_zone)
        if self.months is not None:
            local = local.add(months=self.months)
        else:
            local = local.add(days=self.days or 0)
        local = round_up(local, self.round_up_to.value)
        return to_utc(local)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {
            "days": self.days,
            "months": self.months,
            "round_up_to": self.round_up_to.value,
            "counted_from": self.counted_from.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpiryPolicy:
        """Inverse of :meth:`to_dict`."""
        data = dict(check_keys(data, _EXPIRY_KEYS))
        return cls(
            days=data.get("days"),
            months=data.get("months"),
            round_up_to=_enum(ExpiryRounding, data.get("round_up_to", "none"),
                              "expiry.round_up_to"),
            counted_from=_enum(ExpiryStart, data.get("counted_from", "earn"),
                               "expiry.counted_from"),
        )


@attrs.frozen
class PendingPolicy(JsonForm):
    """How long earned points stay pending (visible, not spendable).

    ``days`` > 0 activates a lot that many calendar days after the earn (in the
    program's time zone); ``manual=True`` keeps lots pending until an explicit
    ``activate`` call. An explicit call may always activate a pending lot early.
    """

    days: int = 0
    manual: bool = False

    def __attrs_post_init__(self) -> None:
        _check_count("ledger.pending.days", self.days, allow_none=False)
        if not isinstance(self.manual, bool):
            raise invalid("ledger.pending.manual", "must be a bool", self.manual)
        if self.manual and self.days:
            raise invalid("ledger.pending", "give days or manual, not both", attrs.asdict(self))

    def activates_at(self, earned_at: dt.datetime, time_zone: str) -> dt.datetime | None:
        """Return when a lot earned at ``earned_at`` activates (None: manual or at once)."""
        if self.manual or not self.days:
            return None
        local = in_zone(earned_at, time_zone).add(days=self.days)
        return to_utc(local)

    @property
    def is_pending(self) -> bool:
        """True if earns start pending under this policy."""
        return self.manual or self.days > 0


@attrs.frozen
class LedgerPolicy(JsonForm):
    """The ledger rules of a program: expiry, pending period, spend order, clawback."""

    expiry: ExpiryPolicy = attrs.field(factory=ExpiryPolicy)
    pending: PendingPolicy = attrs.field(factory=PendingPolicy)
    spend_order: SpendOrder = SpendOrder.SOONEST_EXPIRING
    clawback: ClawbackPolicy = ClawbackPolicy.DEBT

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.expiry, ExpiryPolicy):
            raise invalid("ledger.expiry", "must be an ExpiryPolicy", self.expiry)
        if not isinstance(self.pending, PendingPolicy):
            raise invalid("ledger.pending", "must be a PendingPolicy", self.pending)
        if not isinstance(self.spend_order, SpendOrder):
            raise invalid("ledger.spend_order", "must be a SpendOrder", self.spend_order)
        if not isinstance(self.clawback, ClawbackPolicy):
            raise invalid("ledger.clawback", "must be a ClawbackPolicy", self.clawback)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {
            "expiry": self.expiry.to_dict(),
            "pending": {"days": self.pending.days, "manual": self.pending.manual},
            "spend_order": self.spend_order.value,
            "clawback": self.clawback.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerPolicy:
        """Inverse of :meth:`to_dict`."""
        data = dict(check_keys(data, _LEDGER_KEYS))
        pending = check_keys(data.get("pending", {}), frozenset({"days", "manual"}))
        return cls(
            expiry=ExpiryPolicy.from_dict(data.get("expiry", {})),
            pending=PendingPolicy(days=pending.get("days", 0), manual=pending.get("manual", False)),
            spend_order=_enum(
                SpendOrder, data.get("spend_order", "soonest_expiring"), "spend_order"
            ),
            clawback=_enum(ClawbackPolicy, data.get("clawback", "debt"), "clawback"),
        )


_EXPIRY_KEYS = frozenset({"days", "months", "round_up_to", "counted_from"})
_LEDGER_KEYS = frozenset({"expiry", "pending", "spend_order", "clawback"})


def _enum(cls: type[enum.Enum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except Exception:  # ValueError; an unhashable or hostile value fails otherwise
        choices = [m.value for m in cls]
        raise invalid(f"ledger.{field}", f"must be one of {choices}", value) from None


@attrs.frozen
class Program(JsonForm):
    """A loyalty program: identity, time zone, currency, point value, wallets, policies.

    ``wallets`` names the kinds of points members hold; the first is the default wallet
    every call uses unless told otherwise. ``point_value`` is the money value of one
    point, used for liability reports. ``earning`` holds the earning rules.

    Programs are versioned: ``version`` counts definitions of the same program and
    ``effective_from`` says from when this one prices orders (None: from the
    beginning). ``tiers`` is the tier ladder (None: the program has no tiers; the
    rules then read a member's tier from its ``tier`` attribute). ``referrals`` holds
    the referral program (None: none); ``rewards`` the reward catalogue (None: none);
    ``payments`` how members may pay with points (None: points pay for nothing at
    checkout through :attr:`Loyalty.payments`); ``events`` what the outbox keeps
    (:class:`EventPolicy`; None: every event until pruned by hand).
    Every version is
    kept in storage, so an order is always re-evaluated (on a return) with the rules
    it was placed under. Versions of one program share its id, time zone, currency
    and wallets.
    """

    id: str
    time_zone: str
    currency: str
    point_value: Money
    wallets: tuple[str, ...] = ("points",)
    ledger: LedgerPolicy = attrs.field(factory=LedgerPolicy)
    earning: EarningPolicy = attrs.field(factory=EarningPolicy)
    version: int = 1
    effective_from: dt.datetime | None = None
    tiers: TierPolicy | None = None
    referrals: ReferralPolicy | None = None
    rewards: RewardPolicy | None = None
    payments: PaymentPolicy | None = None
    events: EventPolicy | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not _PROGRAM_ID.match(self.id):
            raise invalid("id", "must be 1-64 characters of letters, digits and _.:-", self.id)
        check_time_zone(self.time_zone)
        try:
            zone(self.time_zone)
        except Exception:
            raise invalid("time_zone", "unknown IANA time zone", self.time_zone) from None
        if not isinstance(self.currency, str) or self.currency not in CURRENCIES:
            raise invalid("currency", "must be an ISO 4217 currency code (such as EUR)",
                          self.currency)
        if not isinstance(self.point_value, Money):
            raise invalid("point_value", "must be Money", self.point_value)
        if self.point_value.currency != self.currency:
            raise invalid("point_value", "must be in the program's currency", self.point_value)
        if self.point_value.amount < Decimal(0):
            raise invalid("point_value", "must not be negative", str(self.point_value.amount))
        if not isinstance(self.wallets, tuple) or not self.wallets:
            raise invalid("wallets", "must be a non-empty tuple of names", self.wallets)
        for name in self.wallets:
            if not isinstance(name, str) or not NAME.match(name):
                raise invalid("wallets", "names are lower-case identifiers up to 32 chars", name)
        if len(set(self.wallets)) != len(self.wallets):
            raise invalid("wallets", "names must be unique", self.wallets)
        if not isinstance(self.ledger, LedgerPolicy):
            raise invalid("ledger", "must be a LedgerPolicy", self.ledger)
        if not isinstance(self.earning, EarningPolicy):
            raise invalid("earning", "must be an EarningPolicy", self.earning)
        if (isinstance(self.version, bool) or not isinstance(self.version, int)
                or not 1 <= self.version <= 1_000_000):
            raise invalid("version", "must be an int between 1 and 1000000", self.version)
        if self.effective_from is not None:
            try:
                aware = check_instant(self.effective_from, "effective_from",
                                      error=InvalidProgram)
            except NaiveDatetime:
                raise invalid("effective_from", "must be a timezone-aware datetime",
                              shown(self.effective_from)) from None
            object.__setattr__(self, "effective_from", aware)
        if self.tiers is not None:
            if not isinstance(self.tiers, TierPolicy):
                raise invalid("tiers", "must be a TierPolicy", shown(self.tiers))
            if self.tiers.wallet is not None and self.tiers.wallet not in self.wallets:
                raise invalid("tiers.wallet", f"not a wallet of the program {self.wallets}",
                              self.tiers.wallet)
            for tier in self.tiers.tiers:
                threshold = tier.threshold
                if isinstance(threshold, Money) and threshold.currency != self.currency:
                    raise invalid(f"tiers.{tier.name}.threshold",
                                  "must be in the program's currency", threshold.currency)
        if self.referrals is not None:
            if not isinstance(self.referrals, ReferralPolicy):
                raise invalid("referrals", "must be a ReferralPolicy", shown(self.referrals))
            minimum = self.referrals.min_net
            if minimum is not None and minimum.currency != self.currency:
                raise invalid("referrals.min_net", "must be in the program's currency",
                              minimum.currency)
        if self.rewards is not None:
            self._check_rewards(self.rewards)
        if self.events is not None and not isinstance(self.events, EventPolicy):
            raise invalid("events", "must be an EventPolicy", shown(self.events))
        if self.payments is not None:
            if not isinstance(self.payments, PaymentPolicy):
                raise invalid("payments", "must be a PaymentPolicy", shown(self.payments))
            if self.payments.money.currency != self.currency:
                raise invalid("payments.money", "must be in the program's currency",
                              self.payments.money.currency)

    def _check_rewards(self, rewards: object) -> None:
        """The catalogue's fields that depend on the rest of the program: the wallet,
        the currency of fixed discounts and the tiers a reward is restricted to."""
        if not isinstance(rewards, RewardPolicy):
            raise invalid("rewards", "must be a RewardPolicy", shown(rewards))
        if rewards.wallet is not None and rewards.wallet not in self.wallets:
            raise invalid("rewards.wallet", f"not a wallet of the program {self.wallets}",
                          rewards.wallet)
        ladder = {t.name for t in self.tiers.tiers} if self.tiers is not None else set()
        for reward in rewards.catalogue:
            path = f"rewards.catalogue[{reward.id}]"
            kind = reward.kind
            if isinstance(kind, FixedDiscount) and kind.amount.currency != self.currency:
                raise invalid(f"{path}.kind.amount", "must be in the program's currency",
                              kind.amount.currency)
            unknown = sorted(reward.tiers - ladder)
            if unknown:
                raise invalid(f"{path}.tiers", "not a tier of the program's ladder "
                              f"{sorted(ladder)}", unknown)

    @property
    def default_wallet(self) -> str:
        """The wallet used when a call names none (the first of ``wallets``)."""
        return self.wallets[0]

    def wallet(self, name: str | None) -> str:
        """Return ``name`` (or the default wallet) after checking the program has it."""
        if name is None:
            return self.default_wallet
        if not isinstance(name, str) or name not in self.wallets:
            raise UnknownWallet(
                "the program has no such wallet", wallet=name, wallets=list(self.wallets)
            )
        return name

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {
            "id": self.id,
            "time_zone": self.time_zone,
            "currency": self.currency,
            "point_value": self.point_value.to_dict(),
            "wallets": list(self.wallets),
            "ledger": self.ledger.to_dict(),
            "earning": self.earning.to_dict(),
            "version": self.version,
            "effective_from": (self.effective_from.isoformat()
                               if self.effective_from is not None else None),
            "tiers": self.tiers.to_dict() if self.tiers is not None else None,
            "referrals": self.referrals.to_dict() if self.referrals is not None else None,
            "rewards": self.rewards.to_dict() if self.rewards is not None else None,
            "payments": self.payments.to_dict() if self.payments is not None else None,
            "events": self.events.to_dict() if self.events is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Program:
        """Build a program from :meth:`to_dict` output; bad fields raise InvalidProgram."""
        try:
            raw_value = data["point_value"]
            try:
                point_value = Money.from_dict(raw_value)
            except (KeyError, TypeError, AttributeError, LoyaltyError):
                raise invalid("point_value", "must be {'amount': ..., 'currency': ...}",
                              shown(raw_value)) from None
            wallets = data.get("wallets", ("points",))
            if not isinstance(wallets, list | tuple):  # a str would become one-letter wallets
                raise invalid("wallets", "must be a list of names", wallets)
            unknown = sorted(set(data) - _PROGRAM_KEYS, key=field_name)
            if unknown:  # a typo ("earnings") must not silently drop a whole section
                raise invalid(field_name(unknown[0]),
                              f"unknown field (known: {sorted(_PROGRAM_KEYS)})",
                              None)
            effective_from = data.get("effective_from")
            if isinstance(effective_from, str):
                try:
                    effective_from = dt.datetime.fromisoformat(effective_from)
                except ValueError:
                    raise invalid("effective_from", "must be an ISO 8601 datetime with offset",
                                  effective_from) from None
            return cls(
                id=data["id"],
                time_zone=data["time_zone"],
                currency=data["currency"],
                point_value=point_value,
                wallets=tuple(wallets),
                ledger=LedgerPolicy.from_dict(data.get("ledger", {})),
                earning=EarningPolicy.from_dict(data.get("earning", {})),
                version=data.get("version", 1),
                effective_from=effective_from,
                tiers=(TierPolicy.from_dict(data["tiers"]) if data.get("tiers") is not None
                       else None),
                referrals=(ReferralPolicy.from_dict(data["referrals"])
                           if data.get("referrals") is not None else None),
                rewards=(RewardPolicy.from_dict(data["rewards"])
                         if data.get("rewards") is not None else None),
                payments=(PaymentPolicy.from_dict(data["payments"])
                          if data.get("payments") is not None else None),
                events=(EventPolicy.from_dict(data["events"])
                        if data.get("events") is not None else None),
            )
        except KeyError as exc:
            raise invalid(str(exc.args[0]), "is required", None) from None
        except (TypeError, AttributeError) as exc:
            raise invalid("program", f"malformed definition: {exc}", None) from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Program:
        """Load a program from a ``.toml`` or ``.json`` file (the :meth:`to_dict` shape).

        Write money amounts and decimal factors as strings (``"1.25"``) in either
        format; TOML datetimes (``effective_from = 2027-01-01T00:00:00+01:00``) may
        be native. An unreadable or malformed file raises InvalidProgram.
        """
        if not isinstance(path, str | os.PathLike):
            raise invalid("file", "must be a path (str or os.PathLike)", shown(path))
        try:
            name = os.fspath(path)
            if not isinstance(name, str):
                raise TypeError("a path of bytes")
            with open(name, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise invalid("file", f"cannot read {name}: {exc.strerror}", name) from None
        except (TypeError, ValueError) as exc:  # bytes, NUL, lone surrogates in the path
            raise invalid("file", f"not a usable path: {exc}", shown(path)) from None
        try:
            if name.endswith(".toml"):
                data: Any = tomllib.loads(raw.decode("utf-8"))
            elif name.endswith(".json"):
                data = json.loads(raw)
            else:
                raise invalid("file", "must end in .toml or .json", name)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise invalid("file", f"cannot parse {name}: {exc}", name) from None
        if not isinstance(data, dict):
            raise invalid("file", "must hold one program (a table/object)", name)
        return cls.from_dict(data)


_PROGRAM_KEYS = frozenset({
    "id", "time_zone", "currency", "point_value", "wallets", "ledger", "earning",
    "version", "effective_from", "tiers", "referrals", "rewards", "payments", "events",
})
