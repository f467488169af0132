"""Reports over orders, the pure part: what an order counts for, the rows the reports
return (purchases, KPIs per period, RFM), and RFM scoring and segments as data
(DESIGN §9). No I/O, no clock reads.

An order *counts* while it is not cancelled and not everything in it was returned; it
counts for its *net goods now*: the lines' net amounts once the returns so far are
taken off, shipping excluded (:meth:`loyaltykit.Order.after_returns`,
:attr:`loyaltykit.Order.net_goods`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._orders import Order
from loyaltykit._values import Money

__all__ = ["Purchase", "counted_net"]


def counted_net(order: Mapping[str, Any], returned: Mapping[str, int],
                cancelled: bool) -> Decimal | None:
    """The net goods an order counts for now (``order`` as placed, as
    :meth:`~loyaltykit.Order.to_dict` gives it, ``returned`` the quantities returned so
    far per line id), or None when it does not count: cancelled, or every line
    returned. The stores keep this (as exact decimal text) beside the order."""
    if cancelled:
        return None
    now = Order.from_dict(order).after_returns(returned)
    if not now.lines:
        return None
    return now.net_goods


@attrs.frozen
class Purchase:
    """One order that counts, as the purchase analyses (CLV) read it.

    ``member_id`` is the shop's member id (``"erased:<key>"`` for an erased member),
    ``placed_at`` the order's instant in UTC and ``amount`` its net goods now (the
    lines' net amounts after the returns so far; shipping excluded)."""

    member_id: str
    order_id: str
    placed_at: dt.datetime
    amount: Money
