"""The orders' store in SQL: recorded orders and the earning rules' usage rows."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from loyaltykit._model import OrderRecord, OrderStatus, RuleUsage
from loyaltykit._reports_orders import counted_net
from loyaltykit.sql._errors import translated
from loyaltykit.sql._many import execute_many
from loyaltykit.sql._pg_probes import key_sets, probed
from loyaltykit.sql._scrub import EMPTY_OBJECT, replaced
from loyaltykit.sql._shared import Store, chunks, claimed_by, upserts_for
from loyaltykit.sql.schema import lookups, orders, rule_usage
from loyaltykit.storage.orders import OrderChanges

__all__ = ["SQLOrderStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_ORDER_STATUSES = {s.value: s for s in OrderStatus}

_ORDER_COLS = (  # the fields of OrderRecord, in order
    orders.c.program_id,
    orders.c.order_id,
    orders.c.member_id,
    orders.c.placed_at,
    orders.c.version,
    orders.c.order,
    orders.c.returned,
    orders.c.status,
    orders.c.points,
    orders.c.evaluation,
    orders.c.earn_id,
    orders.c.payments,
    orders.c.created_at,
    orders.c.updated_at,
    orders.c.recorded_evaluation,
    orders.c.fingerprint,
    orders.c.result,
)
_o: sa.BindParameter[str] = sa.bindparam("o")
# the order found by its id through the member that claimed it (lk_lookups): routed to
# the member's node on a distributed engine
_SEL_ORDER: sa.Executable = sa.select(*_ORDER_COLS).where(
    orders.c.program_id == _p, orders.c.order_id == _o,
    orders.c.member_id == claimed_by("order", _o, _p),
)
# a batch's order ids: first which are claimed, and by whom (lk_lookups, read on the
# ids' nodes), then those orders on their members' nodes
_sel_claims = sa.select(lookups.c.value, lookups.c.member_id).where(
    lookups.c.program_id == _p, lookups.c.kind == "order")
_SEL_CLAIMS: sa.Executable = _sel_claims.where(
    lookups.c.value.in_(sa.bindparam("ids", expanding=True)))
# PostgreSQL: the ids as one JSON array, each found by its key whatever the statistics
# (a batch's orders are looked for in a program growing by the batch)
_SEL_CLAIMS_PG: sa.Executable = probed(_sel_claims, lookups.c.value)
_SEL_ORDERS: sa.Executable = sa.select(*_ORDER_COLS).where(
    orders.c.program_id == _p, orders.c.member_id.in_(sa.bindparam("ms", expanding=True)),
    orders.c.order_id.in_(sa.bindparam("ids", expanding=True)))
_SEL_MEMBER_ORDERS: sa.Executable = (
    sa.select(*_ORDER_COLS)
    .where(orders.c.program_id == _p, orders.c.member_id == _m)
    .order_by(orders.c.placed_at, orders.c.order_id)
)
_COUNT_ORDERS: sa.Executable = (
    sa.select(sa.func.count())
    .select_from(orders)
    .where(orders.c.program_id == _p, orders.c.member_id == _m,
           orders.c.status != OrderStatus.CANCELLED.value)
)

_USAGE_COLS = (  # the fields of RuleUsage, in order
    rule_usage.c.program_id,
    rule_usage.c.member_id,
    rule_usage.c.source,
    rule_usage.c.rule_id,
    rule_usage.c.rule_group,
    rule_usage.c.occurred_at,
    rule_usage.c.points,
    rule_usage.c.stamps,
)


@functools.cache
def _sel_usage(by_rule: bool, by_group: bool, since: bool, until: bool) -> sa.Executable:
    """The usage query for this combination of filters (at most 16, each built once)."""
    matches = []
    if by_rule:
        matches.append(rule_usage.c.rule_id.in_(sa.bindparam("rule_ids", expanding=True)))
    if by_group:
        matches.append(rule_usage.c.rule_group.in_(sa.bindparam("groups", expanding=True)))
    stmt = sa.select(*_USAGE_COLS).where(rule_usage.c.program_id == _p,
                                         rule_usage.c.member_id == _m)
    if matches:  # no rule and no group: every row of the member
        stmt = stmt.where(sa.or_(*matches))
    if since:
        stmt = stmt.where(rule_usage.c.occurred_at
                          >= sa.bindparam("since", type_=rule_usage.c.occurred_at.type))
    if until:
        stmt = stmt.where(rule_usage.c.occurred_at
                          < sa.bindparam("until", type_=rule_usage.c.occurred_at.type))
    return stmt


_INS_ORDER = orders.insert()
_CONTEXT = [(("context", "member", "member_id"), sa.bindparam("name", type_=sa.Text())),
            (("context", "member", "attributes"), EMPTY_OBJECT)]


@functools.cache
def _erase_orders(dialect: str) -> sa.Executable:
    """One UPDATE of the member's orders: no kept request, no member in the context."""
    return orders.update().where(orders.c.program_id == _p, orders.c.member_id == _m).values(
        fingerprint=None, result=None,
        evaluation=replaced(orders.c.evaluation, dialect, _CONTEXT),
        recorded_evaluation=replaced(orders.c.recorded_evaluation, dialect, _CONTEXT))


_UPD_ORDER = orders.update().where(
    orders.c.program_id == sa.bindparam("k_program_id"),
    orders.c.order_id == sa.bindparam("k_order_id"),
    orders.c.member_id == sa.bindparam("k_member_id"),
)


def _order(row: Sequence[Any]) -> OrderRecord:
    return OrderRecord(
        program_id=row[0],
        order_id=row[1],
        member_id=row[2],
        placed_at=row[3],
        version=row[4],
        order=row[5],
        returned=row[6],
        status=_ORDER_STATUSES[row[7]],
        points=row[8],
        evaluation=row[9],
        earn_id=row[10],
        payments=_payment_ids(row[11]),
        created_at=row[12],
        updated_at=row[13],
        recorded_evaluation=row[14],
        fingerprint=row[15],
        result=row[16],
        refunded=_refunded(row[11]),
    )


def _payment_ids(document: Any) -> tuple[uuid.UUID, ...]:
    """The payment transaction ids of an order's ``payments`` document: a list of ids
    (as first written, and still when nothing was refunded), or
    ``{"ids": [...], "refunded": {id: points}}`` once a partial return gave points back."""
    ids = document["ids"] if isinstance(document, dict) else document
    return tuple(uuid.UUID(p) for p in ids)


def _refunded(document: Any) -> dict[uuid.UUID, int]:
    if not isinstance(document, dict):
        return {}
    return {uuid.UUID(k): int(v) for k, v in document.get("refunded", {}).items()}


def _payments_document(o: OrderRecord) -> Any:
    ids = [str(p) for p in o.payments]
    if not o.refunded:
        return ids
    return {"ids": ids, "refunded": {str(k): v for k, v in o.refunded.items()}}


#: The columns of an order that change after it is recorded, in the order of
#: :func:`_changed_values`' tuple.
_CHANGED_KEYS = ("returned", "status", "points", "evaluation", "earn_id", "payments",
                 "updated_at", "recorded_evaluation", "net_amount")


def _changed_values(o: OrderRecord, net: dict[str, Decimal | None] | None = None
                    ) -> tuple[Any, ...]:
    """The values of an order's :data:`_CHANGED_KEYS` (``net``: the net goods the
    service gave for new orders, else worked out from the order's document)."""
    if net is not None and o.order_id in net:
        given = net[o.order_id]
        net_amount = None if given is None else str(given)
    else:
        net_amount = _net_amount(o)
    # (the status's ``_value_``: ``.value`` is a property, a Python call an order)
    return (dict(o.returned), o.status._value_, o.points, dict(o.evaluation), o.earn_id,
            _payments_document(o), o.updated_at,
            None if o.recorded_evaluation is None else dict(o.recorded_evaluation),
            net_amount)


def _changed_order(o: OrderRecord) -> dict[str, Any]:
    """The columns of an order that change after it is recorded, by name."""
    return dict(zip(_CHANGED_KEYS, _changed_values(o), strict=True))


def _currency(order: Any) -> str | None:
    currency = order.get("currency") if isinstance(order, dict) else None
    return currency if isinstance(currency, str) and len(currency) == 3 else None


def _net_amount(o: OrderRecord) -> str | None:
    """What the order counts for in reports now, as exact decimal text (None: nothing,
    cancelled or everything returned)."""
    net = counted_net(o.order, o.returned, o.status is OrderStatus.CANCELLED)
    return None if net is None else str(net)


#: A new order's columns, in the order of :func:`_order_values`' tuple.
_ORDER_KEYS = ("program_id", "order_id", "member_id", "placed_at", "version", "order",
               "currency", "created_at", "fingerprint", "result", *_CHANGED_KEYS)


def _order_values(o: OrderRecord, net: dict[str, Decimal | None],
                  keys: Mapping[str, str] | None) -> tuple[Any, ...]:
    """A new order's row, in _ORDER_KEYS' order (a tuple: a batch's rows are built
    as tuples, see :meth:`~loyaltykit.sql._shared.Store._insert_rows`); with ``keys``, its
    member (and its document's) looked up."""
    doc = dict(o.order)
    member_id = o.member_id
    if keys is not None:
        member_id = keys[member_id]
        if "member_id" in doc:  # the document names its member as the row does
            doc["member_id"] = member_id
    return (o.program_id, o.order_id, member_id, o.placed_at, o.version, doc,
            _currency(o.order), o.created_at, o.fingerprint, o.result,
            *_changed_values(o, net))


def _usage(row: Sequence[Any]) -> RuleUsage:
    return RuleUsage(
        program_id=row[0],
        member_id=row[1],
        source=row[2],
        rule_id=row[3],
        group=row[4],
        occurred_at=row[5],
        points=Decimal(row[6]),  # the exact decimal string
        stamps=row[7],
    )


def _usage_row(u: RuleUsage, member_id: str) -> dict[str, Any]:
    return {
        "program_id": u.program_id,
        "source": u.source,
        "rule_id": u.rule_id,
        "member_id": member_id,
        "rule_group": u.group,
        "occurred_at": u.occurred_at,
        "points": str(u.points),  # exact: the decimal string, never a float
        "stamps": u.stamps,
    }


class SQLOrderStore(Store):
    """Recorded orders and rule usage of one program."""

    @translated
    def get_order(self, order_id: str) -> OrderRecord | None:
        """Return the recorded order (any status), or None."""
        row = self._c().execute(_SEL_ORDER, {"p": self.program_id, "o": order_id}).first()
        return None if row is None else _order(row)

    @translated
    def get_orders(self, order_ids: Sequence[str]) -> list[OrderRecord]:
        """Return those of ``order_ids`` that are recorded: the ids claimed, with
        their members (a read per :data:`~loyaltykit.sql._shared.CHUNK` ids; one on
        PostgreSQL), then the orders of those found, by member and id (none for a
        history import's new orders)."""
        conn, program_id = self._c(), self.program_id
        claimed: dict[str, str] = {}
        for pg, named in key_sets(conn, list(dict.fromkeys(order_ids))):
            claimed.update(conn.execute(_SEL_CLAIMS_PG if pg else _SEL_CLAIMS,
                                        {"p": program_id, **named}).all())
        found = list[OrderRecord]()
        ids = sorted(claimed)
        for chunk in chunks(ids):
            rows = conn.execute(_SEL_ORDERS, {"p": program_id, "ids": list(chunk), "ms": sorted(
                {claimed[i] for i in chunk})}).all()
            found.extend(_order(row) for row in rows)
        return found

    @translated
    def count_orders(self, member_id: str) -> int:
        """Return how many orders of the member are recorded and not cancelled."""
        return int(self._c().scalar(_COUNT_ORDERS, {"p": self.program_id, "m": member_id})
                   or 0)

    @translated
    def load_orders(self, member_id: str) -> list[OrderRecord]:
        """Return every recorded order of the member, whatever its status, ordered by
        (placed_at, order_id)."""
        rows = self._c().execute(_SEL_MEMBER_ORDERS, {"p": self.program_id, "m": member_id})
        return [_order(row) for row in rows]

    @translated
    def load_usage(
        self,
        member_id: str,
        *,
        rule_ids: Sequence[str] = (),
        groups: Sequence[str] = (),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[RuleUsage]:
        """Return the member's usage rows of these rules or groups with
        ``since <= occurred_at < until`` (a None bound is open); every row of the
        member (within the bounds) when both ``rule_ids`` and ``groups`` are empty."""
        params: dict[str, Any] = {"p": self.program_id, "m": member_id}
        if rule_ids:
            params["rule_ids"] = list(rule_ids)
        if groups:
            params["groups"] = list(groups)
        if since is not None:
            params["since"] = since
        if until is not None:
            params["until"] = until
        stmt = _sel_usage(bool(rule_ids), bool(groups), since is not None, until is not None)
        return [_usage(row) for row in self._c().execute(stmt, params)]

    @translated
    def erase(self, member_id: str, name: str) -> None:
        """Forget the fingerprints and results kept on the member's orders and the
        member in their evaluations' context (one UPDATE)."""
        conn = self._c()
        conn.execute(_erase_orders(conn.dialect.name),
                     {"p": self.program_id, "m": member_id, "name": name})

    @translated
    def write(self, changes: OrderChanges) -> None:
        """Insert the new orders (an order id recorded twice is DuplicateKey with
        ``details["order_id"]``), upsert the usage rows (the last row of a key wins),
        then update the touched orders."""
        self._write(changes, None)

    @translated
    def write_keyed(self, changes: OrderChanges, keys: Mapping[str, str]) -> None:
        """:meth:`write` with each row's member (and each order document's) looked up
        in ``keys`` (see :mod:`loyaltykit.storage.keyed_writes`)."""
        self._write(changes, keys)

    def _write(self, changes: OrderChanges, keys: Mapping[str, str] | None) -> None:
        conn = self._c()
        new_orders = changes.new_orders
        if new_orders:
            rows = [_order_values(o, changes.net, keys)
                    for order_id, o in changes.orders.items() if order_id in new_orders]
            # the order id is the program's one (lk_lookups), then the member's order
            self._claim(conn, "order", [(row[1], row[2]) for row in rows],
                        "order already recorded", "order_id")
            self._insert_rows(conn, _INS_ORDER, _ORDER_KEYS, rows,
                              "order already recorded", "order_id")
        if changes.usage:
            # one row per key: the last one wins, as it would row by row
            usage = {(u.program_id, u.source, u.rule_id, u.member_id): u for u in changes.usage}
            execute_many(conn, upserts_for(conn).usage, [
                _usage_row(u, u.member_id if keys is None else keys[u.member_id])
                for u in usage.values()])
        touched_orders = [
            {"k_program_id": o.program_id, "k_order_id": o.order_id,
             "k_member_id": o.member_id if keys is None else keys[o.member_id],
             **_changed_order(o)}
            for order_id, o in changes.orders.items() if order_id not in new_orders
        ]
        if touched_orders:
            self._update(conn, _UPD_ORDER, touched_orders, "orders")
