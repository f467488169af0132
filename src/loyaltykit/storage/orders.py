"""The orders' store: recorded orders and the earning rules' usage rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

import attrs

from loyaltykit._model import OrderRecord, RuleUsage

__all__ = ["OrderChanges", "OrderStore"]


@attrs.define
class OrderChanges:
    """What one unit of work writes to the orders' store.

    ``orders`` holds the final state of every touched order (ids in ``new_orders`` are
    inserted, the others updated); ``usage`` rows are upserted by
    ``(program_id, source, rule_id)``. ``net`` may give a new order's net goods (None:
    it counts for nothing), which a store that keeps them beside the order then need
    not work out from the order's document again.
    """

    orders: dict[str, OrderRecord] = attrs.field(factory=dict)
    new_orders: set[str] = attrs.field(factory=set)
    usage: list[RuleUsage] = attrs.field(factory=list)
    net: dict[str, Decimal | None] = attrs.field(factory=dict)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.orders or self.usage)

    def write_to(self, uow: _WithOrders) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.orders.write(self)


class OrderStore(Protocol):
    """Recorded orders and rule usage, read and written inside one unit of work."""

    def get_order(self, order_id: str) -> OrderRecord | None:
        """Return the recorded order (any status), or None."""

    def get_orders(self, order_ids: Sequence[str]) -> list[OrderRecord]:
        """Return those of ``order_ids`` that are recorded (any status), in one read;
        order unspecified."""

    def count_orders(self, member_id: str) -> int:
        """Return how many orders of the member are recorded and not cancelled."""

    def load_orders(self, member_id: str) -> list[OrderRecord]:
        """Return every recorded order of the member, whatever its status, ordered by
        (``placed_at``, ``order_id``)."""

    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        """Return the member's usage rows whose ``rule_id`` is in ``rule_ids`` or whose
        ``group`` is in ``groups``, with ``since <= occurred_at < until`` (a None bound
        is open). Order is unspecified. Empty ``rule_ids`` and ``groups``: every usage
        row of the member (still within the bounds)."""

    def erase(self, member_id: str, name: str) -> None:
        """Forget the request fingerprints and results kept on the member's orders, and
        in the member context their evaluations recorded (``context.member``, in
        ``evaluation`` and ``recorded_evaluation``) write ``name`` as its
        ``member_id`` and empty its ``attributes`` (the orders stay)."""

    def write(self, changes: OrderChanges) -> None:
        """Insert the new orders, update the touched ones and upsert the usage rows by
        ``(program_id, source, rule_id)`` (the last row of a key wins). An order id
        inserted twice raises :class:`~loyaltykit.DuplicateKey` with
        ``details["order_id"]``."""


class _WithOrders(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def orders(self) -> OrderStore: ...
