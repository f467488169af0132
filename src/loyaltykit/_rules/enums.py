"""The enums of the earning rules: rounding, stacking, a rate's base, a cap's period."""

from __future__ import annotations

import decimal
import enum


class Rounding(enum.Enum):
    """How an order's exact point total becomes whole points (once per order)."""

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    CEILING = "ceiling"


DECIMAL_ROUNDING = {
    Rounding.FLOOR: decimal.ROUND_FLOOR,
    Rounding.HALF_UP: decimal.ROUND_HALF_UP,
    Rounding.HALF_EVEN: decimal.ROUND_HALF_EVEN,
    Rounding.CEILING: decimal.ROUND_CEILING,
}


class Stacking(enum.Enum):
    """How several multipliers combine: compound (``MULTIPLY``) or add their increases
    to the base (``ADD``)."""

    MULTIPLY = "multiply"
    ADD = "add"


class Base(enum.Enum):
    """What a rate rule counts: net goods, or net goods plus shipping."""

    NET_GOODS = "net_goods"
    NET_GOODS_AND_SHIPPING = "net_goods_and_shipping"


class CapPeriod(enum.Enum):
    """The period a cap counts over, per member. Calendar periods are in the program's
    time zone (``WEEK`` is the ISO week, from Monday); ``ROLLING`` needs ``days``."""

    ORDER = "order"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ROLLING = "rolling"
    LIFETIME = "lifetime"
