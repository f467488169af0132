"""Rewards as data: the catalogue a member spends points on, and the pure calendar
decisions the rewards service takes on it.

Nothing here reads a clock or storage. A :class:`RewardPolicy` (the program's
``rewards``) holds the catalogue of :class:`Reward` values; each reward says what it
costs, what it gives (:class:`FixedDiscount`, :class:`PercentDiscount`,
:class:`FreeItem` or :class:`CustomReward`), how many there are (``stock``, the
``global_limit`` over its life), when it can be redeemed (``starts_at`` to
``ends_at``), for whom (``tiers``), how often per member (:class:`RewardLimit`) and how
long the voucher it issues is valid.

In the shop's words (scenario V's ``coffee``):

* 500 points buy a voucher for 5.00 EUR off; 2 in stock; at most 1 per member per
  calendar month of the program's time zone; redeemable from 1 April to 1 May (Berlin);
  the voucher is valid for 30 days (on the program's wall clock: issued 10 April 10:00,
  it expires 10 May 10:00).

The helpers :func:`availability`, :func:`period_bounds` and :func:`voucher_expires_at`
are the decisions the service asks of a reward; they take checked values.

Errors are :class:`~loyaltykit.InvalidProgram` naming the field by its path in the
program (``rewards.catalogue[coffee].cost``). A kind or a limit built on its own does
not know its reward, so its errors name it under ``rewards.`` (``rewards.kind.percent``);
read from a definition, the path is the reward's (``rewards.catalogue[coffee].kind.percent``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._calendar import add_days, calendar_period, zone
from loyaltykit._codes import CodeSpec
from loyaltykit._errors import InvalidInput, InvalidProgram, LoyaltyError, NaiveDatetime, shown
from loyaltykit._json import JsonForm
from loyaltykit._rules import CapPeriod
from loyaltykit._validate import (
    MAX_INSTANT,
    NAME,
    check_bool,
    check_decimal,
    check_ident,
    check_instant,
    check_int,
    check_json,
    check_text,
    field_name,
    invalid,
)
from loyaltykit._values import MAX_POINTS, Money

__all__ = [
    "Availability",
    "CustomReward",
    "FixedDiscount",
    "FreeItem",
    "PercentDiscount",
    "Reward",
    "RewardKind",
    "RewardLimit",
    "RewardPolicy",
    "RewardRedeemed",
    "Voucher",
    "VoucherCancelled",
    "VoucherExpired",
    "VoucherStatus",
    "VoucherUsed",
    "availability",
    "period_bounds",
    "rolling_count",
    "voucher_expires_at",
]

#: The longest a reward's name may be.
MAX_NAME_LENGTH = 200
#: The most rewards a catalogue holds.
MAX_REWARDS = 1_000
#: The largest stock, global limit or per-member count.
MAX_COUNT = 10**12
#: The longest rolling limit period and voucher validity, in days (about ten years).
MAX_DAYS = 3660
#: The longest SKU of a free item (as a shop's ids).
MAX_SKU_LENGTH = 128
#: The largest quantity of a free item.
MAX_QUANTITY = 10_000
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_PERIODS = (CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH, CapPeriod.QUARTER,
            CapPeriod.YEAR, CapPeriod.ROLLING, CapPeriod.LIFETIME)


# -- reading definitions ------------------------------------------------------------------


@contextlib.contextmanager
def _scoped(prefix: str) -> Iterator[None]:
    """Name an InvalidProgram raised inside by its path under ``prefix``: a part built
    on its own names its field under ``rewards.`` (``rewards.kind.percent``) or, for a
    code spec, ``code.``; under ``rewards.catalogue[coffee]`` that becomes
    ``rewards.catalogue[coffee].kind.percent``."""
    try:
        yield
    except InvalidProgram as exc:
        field = str(exc.details.get("field", ""))
        if field == prefix or field.startswith((f"{prefix}.", f"{prefix}[")):
            raise
        rest = field
        for lead in ("rewards.catalogue.", "rewards."):
            if field.startswith(lead):
                rest = field[len(lead):]
                break
        message = exc.message
        if message.startswith(f"{field}: "):
            message = message[len(field) + 2:]
        new = f"{prefix}.{rest}" if rest else prefix
        raise invalid(new, message, exc.details.get("value")) from None


def _table(data: object, field: str, known: frozenset[str],
           required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """``data`` if it is a mapping with only ``known`` keys and every ``required`` one;
    errors name the key under ``field``."""
    if not isinstance(data, Mapping):
        raise invalid(field, "must be a table", shown(data))
    for key in data:
        if key not in known:
            raise invalid(f"{field}.{field_name(key)}",
                          f"unknown field (known: {sorted(known)})", None)
    for key in required:
        if key not in data:
            raise invalid(f"{field}.{key}", "is required", None)
    return data


def _instant(value: object, field: str, *, text: bool = False) -> dt.datetime | None:
    """An aware instant in UTC, or None; with ``text`` (a definition being read) also
    ISO 8601 text with an offset."""
    if value is None:
        return None
    if text and isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise invalid(field, "must be an ISO 8601 datetime with offset", value) from None
    try:
        return check_instant(value, field, error=InvalidProgram)
    except NaiveDatetime:
        raise invalid(field, "must be a timezone-aware datetime", shown(value)) from None


def _optional_int(value: object, field: str, low: int, high: int) -> int | None:
    return None if value is None else check_int(value, field, low, high)


# -- what a reward gives ------------------------------------------------------------------


@attrs.frozen
class FixedDiscount(JsonForm):
    """A discount of ``amount`` (Money in the program's currency, more than zero) off
    an order the voucher is used on.

    >>> FixedDiscount(Money("5.00", "EUR")).to_dict()
    {'type': 'fixed_discount', 'amount': '5.00', 'currency': 'EUR'}
    """

    amount: Money

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, Money):
            raise invalid("rewards.kind.amount", "must be Money", shown(self.amount))
        if self.amount.amount <= 0:
            raise invalid("rewards.kind.amount", "must be more than zero",
                          str(self.amount.amount))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"type": "fixed_discount", **self.amount.to_dict()}


@attrs.frozen
class PercentDiscount(JsonForm):
    """A discount of ``percent`` per cent (an exact Decimal, more than 0, at most 100)
    off an order the voucher is used on.

    >>> PercentDiscount(Decimal("12.5")).to_dict()
    {'type': 'percent_discount', 'percent': '12.5'}
    """

    percent: Decimal

    def __attrs_post_init__(self) -> None:
        percent = check_decimal(self.percent, "rewards.kind.percent", Decimal(0),
                                Decimal(100))
        if percent == 0:
            raise invalid("rewards.kind.percent", "must be more than 0", str(percent))
        object.__setattr__(self, "percent", percent)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (the percentage as a string)."""
        return {"type": "percent_discount", "percent": str(self.percent)}


@attrs.frozen
class FreeItem(JsonForm):
    """``quantity`` of the product ``sku`` (a shop's id: 1-128 characters without
    surrounding spaces or control characters) for free."""

    sku: str
    quantity: int = 1

    def __attrs_post_init__(self) -> None:
        sku = self.sku
        if (not isinstance(sku, str) or not sku or sku != sku.strip()
                or len(sku) > MAX_SKU_LENGTH):
            raise invalid("rewards.kind.sku", f"must be 1-{MAX_SKU_LENGTH} characters without "
                          "surrounding spaces", shown(sku))
        check_text(sku, "rewards.kind.sku", ident=True, error=InvalidProgram)
        check_int(self.quantity, "rewards.kind.quantity", 1, MAX_QUANTITY)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"type": "free_item", "sku": self.sku, "quantity": self.quantity}


def _payload(value: object) -> dict[str, Any]:
    try:
        return check_json(value, "payload")
    except InvalidInput as exc:
        raise invalid("rewards.kind.payload", exc.message.removeprefix("payload "),
                      shown(value)) from None


@attrs.frozen
class CustomReward(JsonForm):
    """Anything else the shop hands out, described by ``payload``: a JSON-compatible
    mapping with str keys (as metadata: at most 16 KiB, nested at most 32 levels, no
    NUL or unpaired surrogate in its text)."""

    payload: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "payload", _payload(self.payload))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"type": "custom", "payload": dict(self.payload)}


#: What a reward gives.
RewardKind = FixedDiscount | PercentDiscount | FreeItem | CustomReward
_KINDS: dict[str, tuple[type[Any], frozenset[str]]] = {
    "fixed_discount": (FixedDiscount, frozenset({"type", "amount", "currency"})),
    "percent_discount": (PercentDiscount, frozenset({"type", "percent"})),
    "free_item": (FreeItem, frozenset({"type", "sku", "quantity"})),
    "custom": (CustomReward, frozenset({"type", "payload"})),
}


def _kind_from_dict(data: object) -> RewardKind:
    field = "rewards.kind"
    if not isinstance(data, Mapping):
        raise invalid(field, "must be a table with a type", shown(data))
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise invalid(f"{field}.type", f"must be one of {sorted(_KINDS)}", shown(kind))
    _table(data, field, _KINDS[kind][1], ("type",))
    if kind == "fixed_discount":
        _table(data, field, _KINDS[kind][1], ("amount", "currency"))
        try:
            amount = Money(data["amount"], data["currency"])
        except LoyaltyError as exc:
            raise invalid(f"{field}.amount", exc.message, shown(data["amount"])) from None
        return FixedDiscount(amount)
    if kind == "percent_discount":
        _table(data, field, _KINDS[kind][1], ("percent",))
        return PercentDiscount(data["percent"])
    if kind == "free_item":
        _table(data, field, _KINDS[kind][1], ("sku",))
        return FreeItem(data["sku"], data.get("quantity", 1))
    return CustomReward(data.get("payload", {}))


# -- how often ------------------------------------------------------------------------------


@attrs.frozen
class RewardLimit(JsonForm):
    """At most ``count`` redemptions per member per ``period``: a calendar ``DAY``,
    ``WEEK`` (ISO, from Monday), ``MONTH``, ``QUARTER`` or ``YEAR`` of the program's
    time zone, ``ROLLING`` over the last ``days`` days (of the program's wall clock), or
    ``LIFETIME``. Cancelled vouchers do not count (the service releases them). The
    limit holds in every period, also when a redemption is backdated before others: a
    lifetime limit counts every voucher, a rolling one every window of ``days`` days
    that holds the redemption.

    >>> RewardLimit(1, CapPeriod.MONTH).to_dict()
    {'count': 1, 'period': 'month', 'days': None}
    """

    count: int
    period: CapPeriod = CapPeriod.LIFETIME
    days: int | None = None

    def __attrs_post_init__(self) -> None:
        check_int(self.count, "rewards.per_member.count", 1, MAX_COUNT)
        if not isinstance(self.period, CapPeriod) or self.period not in _PERIODS:
            raise invalid("rewards.per_member.period",
                          f"must be one of {[p.value for p in _PERIODS]}", shown(self.period))
        if self.period is CapPeriod.ROLLING:
            check_int(self.days, "rewards.per_member.days", 1, MAX_DAYS)
        elif self.days is not None:
            raise invalid("rewards.per_member.days", "only a rolling limit has days",
                          shown(self.days))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"count": self.count, "period": self.period.value, "days": self.days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardLimit:
        """The inverse of :meth:`to_dict`; bad fields raise InvalidProgram."""
        data = _table(data, "rewards.per_member", frozenset({"count", "period", "days"}),
                      ("count",))
        period = data.get("period", CapPeriod.LIFETIME.value)
        try:
            checked = CapPeriod(period)
        except Exception:  # ValueError; an unhashable or hostile value fails otherwise
            raise invalid("rewards.per_member.period",
                          f"must be one of {[p.value for p in _PERIODS]}",
                          shown(period)) from None
        return cls(count=data["count"], period=checked, days=data.get("days"))


# -- a reward ---------------------------------------------------------------------------------

_REWARD_KEYS = frozenset({
    "id", "name", "cost", "kind", "stock", "starts_at", "ends_at", "tiers", "per_member",
    "global_limit", "valid_days", "valid_until", "refund_on_expiry",
})


def _is_ident(text: str) -> bool:
    try:
        check_ident(text, "id")
    except InvalidProgram:
        return False
    return True


def _tier_names(value: object, field: str) -> frozenset[str]:
    if not isinstance(value, tuple | list | set | frozenset):
        raise invalid(field, "must be a set of tier names", shown(value))
    for name in value:
        if not isinstance(name, str) or not NAME.match(name):
            raise invalid(field, "tier names are lower-case identifiers up to 32 chars",
                          shown(name))
    return frozenset(value)


@attrs.frozen
class Reward(JsonForm):
    """One entry of the catalogue. See the module docstring; scenario V's ``coffee``:

    >>> from loyaltykit import CapPeriod, Money
    >>> coffee = Reward(
    ...     id="coffee", name="Coffee voucher", cost=500,
    ...     kind=FixedDiscount(Money("5.00", "EUR")), stock=2,
    ...     per_member=RewardLimit(1, CapPeriod.MONTH),
    ...     starts_at=dt.datetime(2026, 3, 31, 22, tzinfo=dt.UTC),
    ...     ends_at=dt.datetime(2026, 4, 30, 22, tzinfo=dt.UTC), valid_days=30)
    >>> coffee.cost, coffee.stock
    (500, 2)

    ``id`` names it (an identifier: a letter, then up to 63 letters, digits and _.-);
    ``name`` is shown to members (1-200 characters, not blank); ``cost`` in points
    (1 to 10**15). ``stock`` (None: unlimited) is how many are left to redeem and
    ``global_limit`` (None: none) how many may ever be redeemed. It can be redeemed
    from ``starts_at`` (None: always) until, not including, ``ends_at`` (None: for
    ever). ``tiers`` (empty: everyone) are the tiers of the program's ladder a member
    must hold one of. ``per_member`` limits each member (None: no limit). The voucher
    it issues is valid ``valid_days`` days on the program's wall clock or until
    ``valid_until`` (neither: for ever; not both); ``refund_on_expiry`` gives the
    points back when a voucher expires unused.

    .. versionadded:: 0.3
    """

    id: str
    name: str
    cost: int
    kind: RewardKind
    stock: int | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    tiers: frozenset[str] = frozenset()
    per_member: RewardLimit | None = None
    global_limit: int | None = None
    valid_days: int | None = None
    valid_until: dt.datetime | None = None
    refund_on_expiry: bool = False

    def __attrs_post_init__(self) -> None:
        check_ident(self.id, "rewards.catalogue.id")
        at = self._field
        name = self.name
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise invalid(at("name"), f"must be 1-{MAX_NAME_LENGTH} characters, not blank",
                          shown(name))
        check_text(name, at("name"), error=InvalidProgram)
        check_int(self.cost, at("cost"), 1, MAX_POINTS)
        if not isinstance(self.kind, FixedDiscount | PercentDiscount | FreeItem | CustomReward):
            raise invalid(at("kind"), "must be a FixedDiscount, PercentDiscount, FreeItem or "
                          "CustomReward", shown(self.kind))
        _optional_int(self.stock, at("stock"), 0, MAX_COUNT)
        _optional_int(self.global_limit, at("global_limit"), 1, MAX_COUNT)
        for field in ("starts_at", "ends_at", "valid_until"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _instant(value, at(field)))
        if self.starts_at is not None and self.ends_at is not None \
                and self.ends_at <= self.starts_at:
            raise invalid(at("ends_at"), "must be after starts_at", self.ends_at.isoformat())
        object.__setattr__(self, "tiers", _tier_names(self.tiers, at("tiers")))
        if self.per_member is not None and not isinstance(self.per_member, RewardLimit):
            raise invalid(at("per_member"), "must be a RewardLimit", shown(self.per_member))
        _optional_int(self.valid_days, at("valid_days"), 1, MAX_DAYS)
        if self.valid_days is not None and self.valid_until is not None:
            raise invalid(at("valid_until"), "give valid_days or valid_until, not both",
                          self.valid_until.isoformat())
        check_bool(self.refund_on_expiry, at("refund_on_expiry"))

    def _field(self, name: str) -> str:
        """The path of this reward's field ``name`` in the program:
        ``rewards.catalogue[coffee].cost``."""
        return f"rewards.catalogue[{self.id}].{name}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        def instant(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "name": self.name,
            "cost": self.cost,
            "kind": self.kind.to_dict(),
            "stock": self.stock,
            "starts_at": instant(self.starts_at),
            "ends_at": instant(self.ends_at),
            "tiers": sorted(self.tiers),
            "per_member": self.per_member.to_dict() if self.per_member is not None else None,
            "global_limit": self.global_limit,
            "valid_days": self.valid_days,
            "valid_until": instant(self.valid_until),
            "refund_on_expiry": self.refund_on_expiry,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reward:
        """The inverse of :meth:`to_dict` (or a TOML table); bad fields raise
        InvalidProgram naming ``rewards.catalogue[<id>].<field>``."""
        return cls._read(data, "?")

    @classmethod
    def _read(cls, raw: object, fallback: str) -> Reward:
        """Read a reward named in errors by its id, or ``fallback`` (its index in the
        catalogue) if it has no usable one."""
        label = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(label, str) or not _is_ident(label):
            label = fallback
        prefix = f"rewards.catalogue[{label}]"
        with _scoped(prefix):
            data = _table(raw, prefix, _REWARD_KEYS, ("id", "name", "cost", "kind"))
            per_member = data.get("per_member")
            return cls(
                id=data["id"], name=data["name"], cost=data["cost"],
                kind=_kind_from_dict(data["kind"]),
                stock=data.get("stock"),
                starts_at=_instant(data.get("starts_at"), f"{prefix}.starts_at", text=True),
                ends_at=_instant(data.get("ends_at"), f"{prefix}.ends_at", text=True),
                tiers=data.get("tiers", frozenset()),
                per_member=(RewardLimit.from_dict(per_member) if per_member is not None
                            else None),
                global_limit=data.get("global_limit"),
                valid_days=data.get("valid_days"),
                valid_until=_instant(data.get("valid_until"), f"{prefix}.valid_until", text=True),
                refund_on_expiry=data.get("refund_on_expiry", False),
            )


# -- the catalogue ------------------------------------------------------------------------------

_POLICY_KEYS = frozenset({"catalogue", "wallet", "code"})


@attrs.frozen
class RewardPolicy(JsonForm):
    """A program's rewards: the ``catalogue`` (rewards with unique ids, at most 1,000),
    the ``wallet`` redemptions debit (None: the program's first) and the ``code`` spec
    of the vouchers they issue.

    >>> from loyaltykit import Money
    >>> policy = RewardPolicy(catalogue=(
    ...     Reward("coffee", "Coffee voucher", 500, FixedDiscount(Money("5.00", "EUR"))),))
    >>> sorted(policy.by_id)
    ['coffee']

    .. versionadded:: 0.3
    """

    catalogue: tuple[Reward, ...] = ()
    wallet: str | None = None
    code: CodeSpec = attrs.field(factory=CodeSpec)
    _by_id: Mapping[str, Reward] = attrs.field(init=False, repr=False, eq=False,
                                               hash=False)

    def __attrs_post_init__(self) -> None:
        catalogue = self.catalogue
        if isinstance(catalogue, list):
            catalogue = tuple(catalogue)
        if not isinstance(catalogue, tuple):
            raise invalid("rewards.catalogue", "must be a tuple of Reward", shown(catalogue))
        if len(catalogue) > MAX_REWARDS:
            raise invalid("rewards.catalogue", f"at most {MAX_REWARDS} rewards", len(catalogue))
        seen: set[str] = set()
        for i, reward in enumerate(catalogue):
            if not isinstance(reward, Reward):
                raise invalid(f"rewards.catalogue[{i}]", "must be a Reward", shown(reward))
            if reward.id in seen:
                raise invalid(f"rewards.catalogue[{reward.id}].id", "ids must be unique",
                              reward.id)
            seen.add(reward.id)
        object.__setattr__(self, "catalogue", catalogue)
        # built once: every redemption looks its reward up
        object.__setattr__(self, "_by_id", {reward.id: reward for reward in catalogue})
        if self.wallet is not None and (not isinstance(self.wallet, str)
                                        or not NAME.match(self.wallet)):
            raise invalid("rewards.wallet", "must be a wallet name or None", shown(self.wallet))
        if not isinstance(self.code, CodeSpec):
            raise invalid("rewards.code", "must be a CodeSpec", shown(self.code))

    @property
    def by_id(self) -> Mapping[str, Reward]:
        """The catalogue by reward id (the policy's own mapping: do not change it)."""
        return self._by_id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {"catalogue": [r.to_dict() for r in self.catalogue], "wallet": self.wallet,
                "code": self.code.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardPolicy:
        """Build a policy from :meth:`to_dict` output (or the program's ``[rewards]``
        TOML table); bad fields raise InvalidProgram naming the field."""
        data = _table(data, "rewards", _POLICY_KEYS)
        raw = data.get("catalogue", [])
        if not isinstance(raw, list | tuple):
            raise invalid("rewards.catalogue", "must be a list of rewards", shown(raw))
        catalogue = []
        for i, entry in enumerate(raw):
            catalogue.append(Reward._read(entry, str(i)))
        code = data.get("code")
        with _scoped("rewards"):
            spec = CodeSpec.from_dict(code) if code is not None else CodeSpec()
        return cls(catalogue=tuple(catalogue), wallet=data.get("wallet"), code=spec)


# -- decisions ------------------------------------------------------------------------------------


class Availability(enum.Enum):
    """Whether a reward can be redeemed at an instant, as far as its own dates tell
    (stock, limits and tiers are the service's to count)."""

    AVAILABLE = "available"
    #: Before ``starts_at``.
    NOT_YET = "not_yet"
    #: At or after ``ends_at``, or once the vouchers it issues would be void on issue
    #: (``valid_until`` passed).
    ENDED = "ended"


def availability(reward: Reward, at: dt.datetime) -> Availability:
    """Whether ``reward`` can be redeemed at ``at`` (an aware instant) by its dates:
    its window is ``[starts_at, ends_at)``, and a reward whose vouchers are valid until
    an instant that has come is over."""
    if reward.starts_at is not None and at < reward.starts_at:
        return Availability.NOT_YET
    if reward.ends_at is not None and at >= reward.ends_at:
        return Availability.ENDED
    if reward.valid_until is not None and at >= reward.valid_until:
        return Availability.ENDED
    return Availability.AVAILABLE


def period_bounds(limit: RewardLimit, at: dt.datetime, time_zone: str
                  ) -> tuple[dt.datetime | None, dt.datetime]:
    """``[start, end)`` in UTC of the redemptions that count against ``limit`` for a
    redemption at ``at``: the calendar day, week, month, quarter or year holding ``at``
    in ``time_zone``; for a rolling limit those after the same wall-clock time ``days``
    days earlier, up to ``at`` itself (the window ending at ``at``; the later windows
    that hold it are :func:`rolling_count`'s); for a lifetime limit everything (start
    None, end the latest instant accepted)."""
    if limit.period is CapPeriod.LIFETIME:
        return None, MAX_INSTANT
    tz = zone(time_zone)
    if limit.period is CapPeriod.ROLLING:
        start = add_days(at, -(limit.days or 0), tz) + _ONE_MICROSECOND
        return start, at + _ONE_MICROSECOND
    return calendar_period(limit.period.value, at.astimezone(tz).date(), tz)


def rolling_count(limit: RewardLimit, at: dt.datetime, time_zone: str,
                  issued: Iterable[dt.datetime]) -> int:
    """The most of the redemptions ``issued`` (their instants) that one window of the
    rolling ``limit`` holding ``at`` holds: the window ending at ``at`` or one ending at
    a later redemption less than ``days`` days after it. A redemption at ``at`` keeps
    the limit if this is less than ``limit.count``."""
    times = sorted(issued)
    worst = 0
    for end in [at, *(t for t in times if t > at)]:
        start, stop = period_bounds(limit, end, time_zone)
        if start is not None and start > at:
            break  # windows of later redemptions no longer hold ``at``
        worst = max(worst, sum(1 for t in times
                               if (start is None or start <= t) and t < stop))
    return worst


def voucher_expires_at(reward: Reward, issued_at: dt.datetime, time_zone: str
                       ) -> dt.datetime | None:
    """When a voucher of ``reward`` issued at ``issued_at`` expires (UTC; None: never):
    ``valid_days`` later at the same time on the wall clock of ``time_zone``, or at
    ``valid_until``."""
    if reward.valid_days is not None:
        return add_days(issued_at, reward.valid_days, zone(time_zone))
    return reward.valid_until


# -- vouchers ---------------------------------------------------------------------------------


class VoucherStatus(enum.Enum):
    """Where a voucher is in its life: issued (usable until it expires), then used,
    cancelled or expired, for good."""

    ISSUED = "issued"
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@attrs.frozen
class Voucher(JsonForm):
    """A voucher a redemption issued: what the shop hands the member and takes at the
    till.

    ``code`` is its stored (normalised) form, unique in the program, and ``shown`` how
    it is printed (grouped); ``reward_id`` and ``version`` name the reward in the
    program version it was redeemed under, ``cost`` the points it took, debited by the
    spend ``transaction_id`` from ``wallet``. ``status`` is as stored: an issued
    voucher past ``expires_at`` (None: never) is refused as expired at once, and due
    work marks it expired. ``used_at`` and ``order_id`` are set when it is used,
    ``cancelled_at`` when cancelled, ``expired_at`` (its ``expires_at``) when due work
    expires it; ``refund_id`` is the reversal that gave the points back (on cancel, or
    on expiry when the reward refunds).

    .. versionadded:: 0.3
    """

    id: uuid.UUID
    program_id: str
    code: str
    shown: str
    member_id: str
    reward_id: str
    version: int
    wallet: str
    cost: int
    transaction_id: uuid.UUID
    status: VoucherStatus
    issued_at: dt.datetime
    expires_at: dt.datetime | None = None
    used_at: dt.datetime | None = None
    order_id: str | None = None
    cancelled_at: dt.datetime | None = None
    expired_at: dt.datetime | None = None
    refund_id: uuid.UUID | None = None

    def status_at(self, at: dt.datetime) -> VoucherStatus:
        """The status at ``at``: an issued voucher whose expiry has come is expired,
        whether or not due work has marked it yet."""
        if self.status is VoucherStatus.ISSUED and self.expires_at is not None \
                and at >= self.expires_at:
            return VoucherStatus.EXPIRED
        return self.status


# -- domain events ----------------------------------------------------------------------------
# Raised by the rewards' service inside the write's unit of work (see loyaltykit._events);
# the outbox maps them to ``reward.redeemed`` and ``voucher.*`` events. ``reward`` is the
# catalogue entry of the voucher's program version (None only if that version lacks it).


@attrs.frozen
class RewardRedeemed:
    """A redemption issued ``voucher`` for ``reward``; its spend (``voucher.transaction_id``)
    was posted before."""

    voucher: Voucher
    reward: Reward


@attrs.frozen
class VoucherUsed:
    """``voucher`` (as it stands now: used) was used on its ``order_id``."""

    voucher: Voucher
    reward: Reward | None


@attrs.frozen
class VoucherCancelled:
    """``voucher`` (now cancelled) was cancelled with ``reason``; its reversal
    (``voucher.refund_id``, posted before) gave ``points_returned`` back to the member's
    lots (0 without one)."""

    voucher: Voucher
    reward: Reward | None
    points_returned: int
    reason: str


@attrs.frozen
class VoucherExpired:
    """Due work expired ``voucher`` (now expired); where its reward refunds on expiry its
    reversal (``voucher.refund_id``, posted before) gave ``points_returned`` back."""

    voucher: Voucher
    reward: Reward | None
    points_returned: int
