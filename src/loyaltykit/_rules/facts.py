"""What conditions and windows look at: the member's context and one evaluation's facts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._calendar import Zone
from loyaltykit._errors import InvalidInput, shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import Order
from loyaltykit._rules.fields import (
    check_decimal,
    set_field,
)
from loyaltykit._validate import NAME, check_instant, check_json, check_member_id

_set = object.__setattr__


@attrs.frozen
class MemberContext(JsonForm):
    """What the rules may know about the member: enrolment instant (for tenure),
    attributes (for :class:`Attribute` conditions), tier, whether the order being
    evaluated is the member's first, and the tier's earn multiplier (read by
    :class:`TierMultiplierRule`; None: no tier ladder, which counts as 1)."""

    member_id: str
    enrolled_at: dt.datetime
    attributes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    tier: str | None = None
    first_order: bool = False
    earn_multiplier: Decimal | None = None
    # the snapshot's fields but the attributes, on the first snapshot (a member is priced
    # again and again when a stream of its orders is evaluated; every field but the
    # attributes is immutable, so each snapshot copies this and the attributes as they are)
    _snapshot: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False,
                                                   eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        check_member_id(self.member_id)
        check_instant(self.enrolled_at, "enrolled_at")  # aware, in range; kept as given
        set_field(self, "attributes", check_json(self.attributes, "attributes"))
        if self.tier is not None and (not isinstance(self.tier, str)
                                      or not NAME.match(self.tier)):
            raise InvalidInput("tier must be a tier name or None", tier=shown(self.tier))
        if not isinstance(self.first_order, bool):
            raise InvalidInput("first_order must be a bool", first_order=shown(self.first_order))
        if self.earn_multiplier is not None:
            set_field(self, "earn_multiplier",
                      check_decimal(self.earn_multiplier, "earn_multiplier"))

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-compatible copy (kept in :attr:`Evaluation.context`)."""
        fixed = self._snapshot
        if fixed is None:
            fixed = {"member_id": self.member_id, "enrolled_at": self.enrolled_at.isoformat(),
                     "tier": self.tier, "first_order": self.first_order,
                     "attributes": None}
            if self.earn_multiplier is not None:
                fixed["earn_multiplier"] = str(self.earn_multiplier)
            set_field(self, "_snapshot", fixed)
        data = fixed.copy()
        data["attributes"] = dict(self.attributes)
        return data


def checked_context(member_id: str, enrolled_at: dt.datetime, attributes: dict[str, Any],
                    tier: str | None, first_order: bool, earn_multiplier: Decimal | None
                    ) -> MemberContext:
    """A :class:`MemberContext` of values checked already: a stored member's id,
    enrolment instant and attributes (checked as the member was written:
    JSON-compatible, as read back), a tier name and multiplier of the program's tier
    policy. Built without :meth:`MemberContext.__attrs_post_init__`'s checks, which
    cost an order priced in a stream of them (a history import) as much as its rules;
    the fields are the same. Not public: a caller's own context is checked."""
    ctx = object.__new__(MemberContext)
    _set(ctx, "member_id", member_id)
    _set(ctx, "enrolled_at", enrolled_at)
    _set(ctx, "attributes", attributes)
    _set(ctx, "tier", tier)
    _set(ctx, "first_order", first_order)
    _set(ctx, "earn_multiplier", earn_multiplier)
    _set(ctx, "_snapshot", None)
    return ctx


class Facts:
    """What conditions and windows look at, for one evaluation."""

    __slots__ = ("at", "channel", "currency", "earn_multiplier", "enrolled_at", "event_attrs",
                 "first_order", "local", "member_attrs", "net", "order_attrs", "store", "tier",
                 "zone")

    def __init__(self, at: dt.datetime, zone: Zone, net: Decimal, currency: str,
                 member: MemberContext, order_attrs: Mapping[str, Any] | None,
                 event_attrs: Mapping[str, Any] | None, channel: str | None,
                 store: str | None) -> None:
        self.at = at
        self.zone = zone
        self.local = at.astimezone(zone)
        self.net = net
        self.currency = currency
        self.tier = member.tier
        self.earn_multiplier = member.earn_multiplier
        self.first_order = member.first_order
        self.member_attrs = member.attributes
        self.enrolled_at = member.enrolled_at
        self.order_attrs = order_attrs
        self.event_attrs = event_attrs
        self.channel = channel
        self.store = store


def order_facts(order: Order, member: MemberContext, zone: Zone) -> Facts:
    """The facts of a first evaluation of ``order`` for ``member``."""
    return Facts(order.placed_at, zone, order.net_goods, order.currency, member,
                 order.attributes, None, order.channel, order.store)
