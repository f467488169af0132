"""The in-memory orders store: recorded orders and the earning rules' usage rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from loyaltykit._errors import DuplicateKey, StorageError
from loyaltykit._model import OrderRecord, OrderStatus, RuleUsage
from loyaltykit.memory.order_rows import KeptOrder
from loyaltykit.memory.tables import KeptSet, MemberKeys, Tables, UndoLog, plain
from loyaltykit.storage.orders import OrderChanges

__all__ = ["MemoryOrderStore", "OrderTables"]


class OrderTables:
    def __init__(self) -> None:
        # program_id -> order_id -> the order as kept (its texts packed together; one
        # dict per program, not a (program, order) key tuple per order)
        self.orders: dict[str, dict[str, KeptOrder]] = {}
        # (program_id, member_id) -> how many of the member's orders are not cancelled (a
        # count, not their ids: nothing reads which they are)
        self.member_orders: dict[tuple[str, str], int] = {}
        # (program_id, member_id) -> ids of all the member's orders, whatever their status
        self.member_all_orders: dict[tuple[str, str], KeptSet[str]] = {}
        self.usage: dict[tuple[str, str, str], RuleUsage] = {}  # (program, source, rule)
        self.member_usage: dict[tuple[str, str], KeptSet[tuple[str, str, str]]] = {}


class MemoryOrderStore:
    """The recorded orders and rule usage of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(OrderTables)
        self._keys = tables.of(MemberKeys)

    def get_order(self, order_id: str) -> OrderRecord | None:
        order = self._orders().get(order_id)
        return None if order is None else order.read()

    def get_orders(self, order_ids: Sequence[str]) -> list[OrderRecord]:
        orders = self._orders()
        return [o.read() for i in dict.fromkeys(order_ids) if (o := orders.get(i)) is not None]

    def _orders(self) -> dict[str, KeptOrder]:
        """The program's orders (an empty dict, not kept, if it has none)."""
        return self._t.orders.get(self._uow.program_id, {})

    def count_orders(self, member_id: str) -> int:
        return self._t.member_orders.get((self._uow.program_id, member_id), 0)

    def load_orders(self, member_id: str) -> list[OrderRecord]:
        program_id = self._uow.program_id
        ids = self._t.member_all_orders.get((program_id, member_id), ())
        orders = self._orders()
        found = [orders[order_id] for order_id in ids]
        found.sort(key=lambda order: (order.placed_at, order.order_id))
        return [order.read() for order in found]

    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        rules, named = set(rule_ids), set(groups)
        found = []
        for key in self._t.member_usage.get((self._uow.program_id, member_id), ()):
            usage = self._t.usage[key]
            if (rules or named) and not (
                usage.rule_id in rules or (usage.group is not None and usage.group in named)
            ):
                continue
            if since is not None and usage.occurred_at < since:
                continue
            if until is not None and usage.occurred_at >= until:
                continue
            found.append(usage)
        return found

    def erase(self, member_id: str, name: str) -> None:
        program_id = self._uow.program_id
        for order_id in sorted(self._t.member_all_orders.get((program_id, member_id), ())):
            kept = self._orders()[order_id]
            order = kept.read()
            erased = KeptOrder.of(attrs.evolve(
                order, fingerprint=None, result=None,
                evaluation=_without_member(order.evaluation, name),
                recorded_evaluation=None if order.recorded_evaluation is None
                else _without_member(order.recorded_evaluation, name)))
            if erased != kept:
                self._uow.put(self._orders(), order_id, erased)

    def write(self, changes: OrderChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        for order_id, order in changes.orders.items():
            known = order_id in t.orders.get(order.program_id, ())
            if order_id in changes.new_orders and known:
                raise DuplicateKey("order already recorded", program_id=program_id,
                                   order_id=order_id)
            if order_id not in changes.new_orders and not known:
                raise StorageError("update of orders found 0 of 1 rows")
        # keep (and check) every JSON value as its text before writing anything: one
        # immutable copy, shared by the reads, which decode it
        orders = {order_id: KeptOrder.of(order) for order_id, order in changes.orders.items()}
        for order_id, kept in orders.items():
            program_orders = t.orders.get(kept.program_id)
            if program_orders is None:
                program_orders = {}
                uow.put(t.orders, kept.program_id, program_orders)
            if order_id not in changes.new_orders:
                # an update changes what may change after recording, nothing else
                given = changes.orders[order_id]
                kept = KeptOrder.of(attrs.evolve(program_orders[order_id].read(), **{
                    name: getattr(given, name) for name in OrderRecord.CHANGING}))
            before = program_orders.get(order_id)
            counted = (kept.status is not OrderStatus.CANCELLED) - (
                before is not None and before.status is not OrderStatus.CANCELLED)
            uow.put(program_orders, order_id, kept)
            if counted:
                member_key = self._keys.shared((kept.program_id, kept.member_id))
                uow.put(t.member_orders, member_key,
                        t.member_orders.get(member_key, 0) + counted)
            uow.track(t.member_all_orders,
                      self._keys.shared((kept.program_id, kept.member_id)), order_id,
                       True)
        for usage in changes.usage:
            usage_key = (usage.program_id, usage.source, usage.rule_id)
            old = t.usage.get(usage_key)
            if old is not None and old.member_id != usage.member_id:
                uow.track(t.member_usage, (old.program_id, old.member_id), usage_key, False)
            uow.put(t.usage, usage_key, usage)
            uow.track(t.member_usage, self._keys.shared((usage.program_id, usage.member_id)),
                      usage_key, True)


def _without_member(evaluation: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``evaluation`` with its context's member named ``name`` and without attributes
    (only what is there is replaced, as SQL's ``json_replace`` does)."""
    evaluation = plain(evaluation)
    context = evaluation.get("context")
    if not isinstance(context, Mapping) or not isinstance(context.get("member"), Mapping):
        return evaluation
    member = context["member"]
    replaced = {k: name if k == "member_id" else {} if k == "attributes" else v
                for k, v in member.items()}
    return {**evaluation, "context": {**context, "member": replaced}}
