"""Whether a statement goes to one node of a distributed engine (Citus; DESIGN §10).

A distributed engine sends a statement to the one node holding its rows (it is
*routed*) when each distributed table in it is pinned to one value of its
distribution column, an equality ``table.member_id = <value>``. Otherwise it runs on
several nodes: a list of values (``member_id IN (...)``, a JSON array of keys) goes
to the nodes of those values; tables joined on their distribution columns (colocated
tables, ``a.member_id = b.member_id``) are joined node by node, set-based; a
distributed table with neither is read on every node (a scan).

:func:`classify` says which, for one SQLAlchemy Core statement, from its structure
alone (no database): the equalities of its WHERE, ON and HAVING clauses (the
conjuncts at AND positions), an INSERT's VALUES (each row is routed by its own
value), an ``INSERT ... SELECT``'s columns, the columns of subqueries and CTEs (each
equal to what it selects) and ``col IN (subquery)`` (a semi-join: an equality) are
followed across the statement, so a table equal on its distribution column to a
pinned one, in the same colocation group, is pinned too. It is an approximation on
the safe side for what the stores write (conjunctions of equalities); two known
simplifications: a table object (not an alias) used in an outer query and in a
subquery is one occurrence, and an equality inside a subquery counts wherever the
subquery stands. ``text()`` and driver-level SQL naming a distributed table cannot be
read: they are ``text``.

:data:`NOT_SINGLE_SHARD` is the declared list of the statements that are not
single-shard on purpose, each with its reason; ``tests/storage/test_routing.py`` runs
the shipped contract suite with :class:`Capture` on and checks that every statement
on a distributed table is routed or declared, and that no declaration is stale.

A statement is named by :func:`statement_name`: the store function that executed it
(module and qualified name, found from the stack) and a digest of its SQL text,
compiled without a database and normalised (parameters as ``?``, repeated rows of
values once), so the name is the same on every backend and run, and changes when the
statement does (a changed statement is checked again).
"""

from __future__ import annotations

import enum
import hashlib
import re
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    Cast,
    ClauseElement,
    ColumnClause,
    Grouping,
    Label,
    TextClause,
    TypeCoerce,
)
from sqlalchemy.sql.selectable import (
    Alias,
    AliasedReturnsRows,
    CompoundSelect,
    FromClause,
    ScalarSelect,
    Select,
    TableValuedAlias,
    Values,
)

from loyaltykit.sql.distribution import SCHEMA, Distribution

__all__ = [
    "NOT_SINGLE_SHARD",
    "Capture",
    "Captured",
    "Declared",
    "Route",
    "Routing",
    "classify",
    "statement_name",
    "statement_text",
]


class Route(enum.IntEnum):
    """How a statement reaches a distributed table's nodes, best first (a
    statement's route is its worst table's)."""

    NONE = 0  #: no distributed table
    SINGLE = 1  #: every distributed table pinned to one value: one node
    MULTI = 2  #: a list of values (IN, an array of keys): the nodes of those values
    COLOCATED = 3  #: colocated tables joined on their distribution columns, node by node
    SCAN = 4  #: a distributed table with neither: every node
    TEXT = 5  #: SQL text naming a distributed table: not read, to be declared


@attrs.frozen
class Routing:
    """A statement's route and, per distributed table it names, that table's
    (``"lk_lots: scan"``; an alias as ``lk_transactions AS orig``)."""

    route: Route
    tables: tuple[str, ...] = ()


# -- statement names ------------------------------------------------------------------------

_EXPANDING = re.compile(r"\(?__\[POSTCOMPILE_\w+\]\)?")
_NAMED = re.compile(r"(?<![:\w]):\w+")
_PYFORMAT = re.compile(r"%\(\w+\)s(?:::[A-Z]+(?: WITH(?:OUT)? TIME ZONE)?(?:\[\])?)?")
_SPACE = re.compile(r"\s+")
_ROWS = re.compile(r"(\([?, ]+\))(?:, \1)+")


def statement_text(statement: ClauseElement | str) -> str:
    """``statement``'s SQL compiled without a database (its own dialect for a
    dialect's construct, e.g. PostgreSQL's ``ON CONFLICT``), normalised: every
    parameter as ``?`` (an expanding IN as ``(?)``), whitespace as one space, a run of
    rows of values as the first followed by ``, ...``."""
    sql = statement.text if isinstance(statement, TextClause) else str(statement)
    sql = _EXPANDING.sub("(?)", sql)
    sql = _PYFORMAT.sub("?", _NAMED.sub("?", sql)).replace("%s", "?")
    sql = _SPACE.sub(" ", sql).strip()
    return _ROWS.sub(r"\1, ...", sql)


def statement_name(function: str, statement: ClauseElement | str) -> str:
    """The stable name of ``statement`` executed by ``function`` (``module:qualname``,
    without the package): ``function#digest``, the digest 10 hex digits of the SHA-1
    of :func:`statement_text`."""
    digest = hashlib.sha1(statement_text(statement).encode(), usedforsecurity=False)
    return f"{function}#{digest.hexdigest()[:10]}"


# -- the classifier -------------------------------------------------------------------------

_Node = tuple[Any, ...]


class _Classes:
    """Union-find over the statement's column occurrences and values."""

    def __init__(self) -> None:
        self.parent: dict[_Node, _Node] = {}

    def find(self, node: _Node) -> _Node:
        parent = self.parent.setdefault(node, node)
        if parent != node:
            parent = self.parent[node] = self.find(parent)
        return parent

    def union(self, a: _Node, b: _Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def members(self, node: _Node) -> Iterator[_Node]:
        root = self.find(node)
        return (n for n in list(self.parent) if self.find(n) == root)


def _unwrap(element: Any) -> Any:
    while True:
        if isinstance(element, Label | Grouping):
            element = element.element
        elif isinstance(element, Cast | TypeCoerce):
            element = element.clause
        else:
            return element


def _source(from_: Any) -> Any:
    """The statement a subquery, CTE or lateral selects from (None: a table)."""
    if isinstance(from_, AliasedReturnsRows) and not isinstance(from_, TableValuedAlias):
        inner = from_.element
        if isinstance(inner, Select | CompoundSelect | Values | UpdateBase):
            return inner
    return None


def _many_source(from_: Any) -> bool:
    """A FROM whose rows are a list of values (a table-valued function, VALUES)."""
    if isinstance(from_, TableValuedAlias | Values | sa.sql.functions.FunctionElement):
        return True
    if isinstance(from_, Alias) and not isinstance(from_.element, sa.Table):
        return _many_source(from_.element)
    return isinstance(_source(from_), Values)


class _Walk:
    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self.classes = _Classes()
        #: distributed occurrences: the FROM object -> its table's name
        self.tables: dict[int, tuple[str, str]] = {}
        self.pinned: set[int] = set()  # occurrences pinned by an INSERT's VALUES

    def node(self, element: Any) -> _Node | None:
        element = _unwrap(element)
        if isinstance(element, BindParameter):
            return ("many" if element.expanding else "value", id(element))
        if isinstance(element, ColumnClause):
            table = element.table
            if table is None:  # a literal column ("0") is a value; a bare name none
                return ("value", id(element)) if element.is_literal else None
            if _many_source(table):
                return ("many", id(table))
            return ("col", id(table), element.key)
        if isinstance(element, ScalarSelect):
            if self.subplan(element.element):
                return ("value", id(element))
            return self.first_column(element.element)
        if isinstance(element, Select | CompoundSelect):
            return self.first_column(element)
        return None

    def subplan(self, select: Any) -> bool:
        """A scalar subquery the engine answers first, on its own, and then puts in
        the statement as one value (Citus's recursive planning): itself routed to one
        node, such as the member that claimed an order id (``lk_lookups``, by the
        value). Walked on its own, a correlated subquery names the outer table among
        its FROMs, unpinned: it is not routed, so it is not one value."""
        if not isinstance(select, Select):
            return False
        inner = _Walk(self.distribution)
        inner.statement(select)
        return inner.routing().route <= Route.SINGLE

    def first_column(self, select: Any) -> _Node | None:
        columns = list(getattr(select, "selected_columns", ()))
        return self.node(columns[0]) if columns else None

    def equal(self, a: Any, b: Any) -> None:
        na, nb = self.node(a), self.node(b)
        if na is not None and nb is not None:
            self.classes.union(na, nb)

    def conjuncts(self, clause: Any) -> None:
        """Follow the equalities at AND positions of ``clause``."""
        clause = _unwrap(clause)
        if clause is None:
            return
        if isinstance(clause, BooleanClauseList):
            if clause.operator is operators.and_:
                for c in clause.clauses:
                    self.conjuncts(c)
            return
        if not isinstance(clause, BinaryExpression):
            return
        op = clause.operator
        left, right = _unwrap(clause.left), _unwrap(clause.right)
        if op is operators.eq:
            if isinstance(left, sa.Tuple) and isinstance(right, sa.Tuple):
                for a, b in zip(left.clauses, right.clauses, strict=False):
                    self.equal(a, b)
            else:
                self.equal(left, right)
        elif op is operators.in_op and not isinstance(left, sa.Tuple):
            node = self.node(left)
            if node is None:
                return
            if isinstance(right, BindParameter):
                self.classes.union(node, ("many", id(right)))
            elif isinstance(right, ScalarSelect | Select | CompoundSelect):
                self.equal(left, right)  # a semi-join on the subquery's column
            else:
                self.classes.union(node, ("many", id(right)))

    def from_(self, from_: Any) -> None:
        """Note a FROM object: a distributed table's occurrence, or a subquery's
        columns equal to what it selects."""
        if isinstance(from_, sa.Table):
            self.occurrence(from_, from_.name, from_.name)
            return
        if isinstance(from_, Alias) and isinstance(from_.element, sa.Table):
            self.occurrence(from_, from_.element.name,
                            f"{from_.element.name} AS {from_.name}")
            return
        inner = _source(from_)
        if inner is None or isinstance(inner, Values):
            return
        selects = inner.selects if isinstance(inner, CompoundSelect) else [inner]
        for select in selects:
            inner_columns = list(getattr(select, "exported_columns", ()))
            for outer, column in zip(from_.c, inner_columns, strict=False):
                node = self.node(column)
                if node is not None:
                    self.classes.union(("col", id(from_), outer.key), node)

    def occurrence(self, from_: FromClause, table: str, shown: str) -> None:
        if table in self.distribution.distributed:
            self.tables[id(from_)] = (table, shown)

    def statement(self, stmt: Any) -> None:
        seen: set[int] = set()
        for element in visitors.iterate(stmt):
            if id(element) in seen:
                continue
            seen.add(id(element))
            if isinstance(element, FromClause):
                self.from_(element)
                if isinstance(element, sa.Join):
                    self.conjuncts(element.onclause)
            if isinstance(element, Select):
                for join in element._setup_joins:  # select().join(...): (target, on, ...)
                    self.conjuncts(join[1])
                self.conjuncts(element.whereclause)
                self.conjuncts(element._having_criteria and sa.and_(
                    *element._having_criteria))
            elif isinstance(element, sa.Update | sa.Delete):
                self.from_(element.table)
                self.conjuncts(element.whereclause)
            elif isinstance(element, sa.Insert):
                self.insert(element)

    def insert(self, stmt: sa.Insert) -> None:
        target = stmt.table
        self.from_(target)
        select = stmt.select
        if select is None:
            self.pinned.add(id(target))  # each row of VALUES routed by its own value
            return
        names = stmt._select_names or []
        for name, column in zip(names, select.selected_columns, strict=False):
            key = name if isinstance(name, str) else name.key
            node = self.node(column)
            if node is not None:
                self.classes.union(("col", id(target), key), node)

    def routing(self) -> Routing:
        dist = self.distribution
        found: list[tuple[str, Route]] = []
        for at, (table, shown) in sorted(self.tables.items(), key=lambda x: x[1][1]):
            column = dist.distributed[table]
            node: _Node = ("col", at, column)
            if at in self.pinned:
                found.append((shown, Route.SINGLE))
                continue
            kinds = list(self.classes.members(node))
            if any(k[0] == "value" for k in kinds):
                route = Route.SINGLE
            elif any(k[0] == "many" for k in kinds):
                route = Route.MULTI
            elif any(k[0] == "col" and k[1] != at and k[1] in self.tables
                     and dist.distributed[self.tables[k[1]][0]] == k[2]
                     and dist.group(self.tables[k[1]][0]) == dist.group(table)
                     for k in kinds):
                route = Route.COLOCATED
            else:
                route = Route.SCAN
            found.append((shown, route))
        worst = max((route for _, route in found), default=Route.NONE)
        return Routing(worst, tuple(f"{shown}: {route.name.lower()}"
                                    for shown, route in found))


_NAMES = re.compile(r"\b(\w+)\b")
_DML = re.compile(r"\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


def classify(statement: ClauseElement | str,
             distribution: Distribution = SCHEMA) -> Routing:
    """The route of ``statement`` (a Core statement, or SQL text) on a schema
    distributed as ``distribution`` (see the module docstring)."""
    if isinstance(statement, str | TextClause):
        sql = statement if isinstance(statement, str) else statement.text
        named = sorted({n for n in _NAMES.findall(sql) if n in distribution.distributed})
        if not named or not _DML.match(sql):  # schema work (PRAGMA, DDL) is no query
            return Routing(Route.NONE)
        return Routing(Route.TEXT, tuple(f"{n}: text" for n in named))
    walk = _Walk(distribution)
    walk.statement(statement)
    return walk.routing()


# -- capture --------------------------------------------------------------------------------

#: Modules that execute statements for others: the store function is further out.
_PLUMBING = frozenset({
    "loyaltykit.sql._many", "loyaltykit.sql._many_pg", "loyaltykit.sql._errors",
    "loyaltykit.sql._plans", "loyaltykit.sql.routing",
})
#: The storage's own module and the migrations' runner: what they execute is schema
#: work (creating the schema, migrations' data steps), no store's statement.
_SCHEMA_WORK = frozenset({"loyaltykit.sql.storage", "loyaltykit.sql.alembic"})
#: Functions of the stores' base class that execute what a store method hands them.
_HELPERS = frozenset({"Store._insert", "Store._insert_rows", "Store._update",
                      "Store._update_rows"})
#: The frames of these functions hold the Core statement a driver-level execution
#: runs (:mod:`loyaltykit.sql._many`'s plans) in their local ``stmt``.
_MANY = frozenset({"loyaltykit.sql._many", "loyaltykit.sql._many_pg"})


@attrs.define
class Captured:
    """A statement seen by a :class:`Capture`: its name, route and text, the store
    function that executed it and the backends it ran on."""

    name: str
    function: str
    routing: Routing
    sql: str
    dialects: set[str] = attrs.field(factory=set)


class Capture:
    """Records every statement that loyaltykit's SQL stores execute on any engine
    while active (a ``before_cursor_execute`` listener on :class:`sqlalchemy.engine.Engine`),
    with its route: ``with Capture() as seen: ...`` then ``seen.statements``. DDL,
    statements executed by code outside the package and statements on no distributed
    table are left out."""

    def __init__(self, distribution: Distribution = SCHEMA) -> None:
        self.distribution = distribution
        self.statements: dict[str, Captured] = {}
        self._known: dict[tuple[int, str], tuple[ClauseElement | str, Routing, str]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Capture:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, sql: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if context is not None and getattr(context, "isddl", False):
            return
        function, stmt = _executed_by(sys._getframe(1))
        if function is None:
            return
        compiled = getattr(context, "compiled", None)
        element: ClauseElement | str = (compiled.statement if compiled is not None
                                        else stmt if stmt is not None else sql)
        key = (id(element), function)
        with self._lock:
            known = self._known.get(key)
            if known is None or known[0] is not element:
                routing = classify(element, self.distribution)
                known = (element, routing, statement_name(function, element))
                self._known[key] = known
            _, routing, name = known
            if routing.route is Route.NONE:
                return
            found = self.statements.get(name)
            if found is None:
                found = self.statements[name] = Captured(
                    name, function, routing, statement_text(element))
            found.dialects.add(conn.dialect.name)


def _executed_by(frame: FrameType | None) -> tuple[str | None, ClauseElement | None]:
    """The store function executing the statement (``module:qualname`` without the
    package; None: not a function of :mod:`loyaltykit.sql`'s), and the Core statement a plan of
    :mod:`loyaltykit.sql._many` runs as driver-level SQL, if any."""
    stmt: ClauseElement | None = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("loyaltykit.sql."):
            if module in _SCHEMA_WORK:
                return None, None
            if module in _MANY and stmt is None:
                found = frame.f_locals.get("stmt")
                if isinstance(found, ClauseElement):
                    stmt = found
            elif module not in _PLUMBING and frame.f_code.co_qualname not in _HELPERS:
                qualname = frame.f_code.co_qualname
                return f"{module.removeprefix('loyaltykit.')}:{qualname}", stmt
        frame = frame.f_back
    return None, None


# -- the declared list ----------------------------------------------------------------------


@attrs.frozen
class Declared:
    """A statement that is not single-shard on purpose: its :func:`statement_name`,
    its route and why."""

    name: str
    route: Route
    reason: str


_DUE = ("due work, set-based: the program's rows due by an instant, read through their "
        "index on every node (one table)")
_BATCH = ("a batch's members (a history import's, a due batch's) in one statement: the "
          "nodes of those members")
_TIER_RUN = ("set-based tier evaluation of a batch (a range of member keys): tier states "
             "joined with their buckets, history and notices on member_id (colocated)")
_REPORT = "a program-wide report: colocated tables joined on member_id, node by node"
_REFERRER = ("a referrer's referrals (its cap's count, its paid ones, its list): a "
             "referral lives with its referee (lk_referrals by referee_id: the referee's "
             "orders settle it on its own node), so the referrer's are read through the "
             "referrer index on every node; one such read per attribution")
_REPORT_SCAN = "a program-wide report over one table, on every node"
_OUTBOX = ("the outbox as a consumer reads it: one stream's events (a stream is the node "
           "that keyed them, each node's shards hold its own), read through the readers' "
           "index on every node; a consumer reads every stream in turn (docs/events.md)")

#: The statements of loyaltykit's SQL stores that are not single-shard on purpose
#: (``docs/scale.md`` lists them): each named by :func:`statement_name` (or, for a
#: function that builds its statements per call from its options, by the function:
#: every statement it executes), with the worst route allowed and the reason.
NOT_SINGLE_SHARD: tuple[Declared, ...] = (
    # -- due work over a program's accounts, lots, tier states and vouchers
    Declared("sql.ledger_due:SQLLedgerDue.due_accounts", Route.SCAN, _DUE),
    Declared("sql.ledger_due:SQLLedgerDue.due_between", Route.SCAN, _DUE),
    Declared("sql.ledger_due:SQLLedgerDue.due_bounds", Route.SCAN,
             _DUE + "; every n-th due key, the ranges workers take side by side"),
    Declared("sql.ledger_history:SQLLedgerHistory.expiring_lots", Route.SCAN,
             "due work's 'points expiring' notices: the program's lots expiring in a "
             "window, by expiry, on every node (one table)"),
    Declared("sql.ledger_due:_write_due_postgresql", Route.TEXT,
             "a due batch's transactions, postings and lot movements on PostgreSQL: one "
             "INSERT ... SELECT from unnest arrays per table, each row with its member_id "
             "(each row goes to its member's node)"),
    Declared("sql.ledger_due:_updated", Route.TEXT,
             "a due batch's accounts, lots and holds on PostgreSQL: one UPDATE ... FROM "
             "unnest arrays per table, joined on each row's key and member_id: each row "
             "on its member's node"),
    Declared("sql.ledger_due_set:SQLLedgerDueSet._post.<locals>.run", Route.TEXT,
             "SQLite's set-based due posting (temporary tables, SQLite's own SQL): never "
             "runs on a distributed engine (PostgreSQL writes a due batch with "
             "sql.ledger_due)"),
    Declared("sql.tiers:SQLTierStore.tier_due", Route.SCAN,
             "tier due work: the evaluation instants due in a program (one table)"),
    Declared("sql.tiers:SQLTierStore.tier_batch_end", Route.SCAN,
             "tier due work: the last member key of the next batch of due tier states "
             "(one table, a range of member keys)"),
    Declared("sql.tiers:SQLTierStore._tier_run", Route.COLOCATED, _TIER_RUN),
    Declared("sql.tiers:SQLTierStore._batch_end#1e9d5ebfa0", Route.SCAN,
             "tier notices' due work: the batch's last member key (one table)"),
    Declared("sql.tiers:SQLTierStore._tier_run#392e567ecc", Route.SCAN,
             "tier notices' due work: the batch's tier states marked noticed (one "
             "table, a range of member keys)"),
    Declared("sql.tiers:SQLTierStore._tier_run#695c5311f3", Route.SCAN,
             "tier notices' due work: the batch's tier states marked noticed (one "
             "table, a range of member keys)"),
    Declared("sql.tiers:SQLTierStore.evaluate_tiers", Route.COLOCATED, _TIER_RUN),
    Declared("sql.tiers:SQLTierStore.evaluate_tiers_recorded", Route.COLOCATED, _TIER_RUN),
    Declared("sql.tiers:SQLTierStore._batch_end#4cbb11cd77", Route.SCAN,
             "tier due work: the batch's last member key (one table)"),
    Declared("sql.tiers:SQLTierStore._batch_end#85c1c1b185", Route.SCAN,
             "tier due work: the batch's last member key (one table)"),
    Declared("sql.tiers:SQLTierStore._batch_end#90e0211f83", Route.SCAN,
             "tier due work: how many states a batch planned by its end holds, one "
             "history line id each (one table, a range of member keys)"),
    Declared("sql.tiers:SQLTierStore._batch_end#91fe65003b", Route.SCAN,
             "tier due work: how many states a batch planned by its end holds, one "
             "history line id each (one table, a range of member keys)"),
    # -- a transaction named by its id alone that no write claimed
    Declared("sql.ledger:SQLLedgerStore.get_transaction#6544cdfc93", Route.SCAN,
             "a transaction named by its id alone (reverse, activate) that no write "
             "claimed in lk_lookups: due work's set-based expiries, activations and "
             "releases (never reversible), or no such id; read by the id on every node, "
             "after the claimed read found nothing"),
    # -- a referrer's referrals, which live with their referees
    Declared("sql.referrals:SQLReferralStore.count_attributions#a031d62d9e", Route.SCAN,
             _REFERRER),
    Declared("sql.referrals:SQLReferralStore.count_paid#07c5c2bd32", Route.SCAN, _REFERRER),
    Declared("sql.referrals:SQLReferralStore.referrals_of#a1b8af064f", Route.SCAN,
             _REFERRER),
    Declared("sql.members:SQLMemberKeyStore.write#aa2eb7e1c1", Route.SCAN,
             "an erasure written without its shop id (a store-level write that names "
             "none): the mapping found by the member key, on every node; the facade "
             "names the shop id, and its delete goes to that id's node"),
    Declared("sql.orders:SQLOrderStore.get_orders", Route.MULTI,
             "a batch's order ids (a history import's 'recorded already?'): their claims "
             "in lk_lookups on the ids' nodes, then the orders found on their members' "
             "nodes"),
    Declared("sql.tiers:SQLTierStore.tier_notices", Route.SCAN,
             "tier notices' events: a program's notices by creation (one table)"),
    Declared("sql.tiers:SQLTierStore.upcoming_tier_notices", Route.SCAN,
             "'tier will drop' events: a program's notices by evaluation instant (one "
             "table)"),
    Declared("sql.rewards:SQLRewardStore.due_vouchers", Route.SCAN,
             "voucher due work: a program's issued vouchers by expiry (one table)"),
    Declared("sql.rewards:SQLRewardStore.expiring_vouchers", Route.SCAN,
             "'voucher expiring' notices: a program's issued vouchers expiring in a "
             "window (one table)"),
    # -- batch reads of many members
    Declared("sql.ledger:SQLLedgerStore.load_members", Route.MULTI, _BATCH),
    Declared("sql.ledger:SQLLedgerStore.lock_accounts", Route.MULTI, _BATCH),
    Declared("sql.ledger:SQLLedgerStore.load_lots", Route.MULTI, _BATCH),
    Declared("sql.ledger:SQLLedgerStore.load_open_holds", Route.MULTI,
             _BATCH + " (a hold's allocations joined on its member: the same nodes)"),
    Declared("sql.tiers:SQLTierStore.get_tier_states", Route.MULTI, _BATCH),
    Declared("sql.tiers:SQLTierStore.tier_buckets", Route.MULTI, _BATCH),
    Declared("sql.referrals:SQLReferralStore.marks_of", Route.MULTI, _BATCH),
    Declared("sql.members:SQLMemberKeyStore.keys_of", Route.MULTI,
             "a batch's shop ids mapped to member keys: lk_member_ids by the shop id, "
             "the nodes of those ids"),
    # -- the reverse lookup and erasure
    Declared("sql.members:SQLMemberKeyStore.ids_of", Route.TEXT,
             "the members-id reverse lookup (member keys to shop ids: events' readers, "
             "exports) over lk_member_ids, distributed by the shop id: every node"),
    Declared("sql.members:SQLMemberKeyStore._pairs", Route.SCAN,
             "the members-id reverse lookup of one key (see ids_of): every node"),
    Declared("sql.keys:SQLKeyStore.erase", Route.SCAN,
             "erasure (rare): a member's idempotency records, in a table distributed by "
             "the key: every node"),
    Declared("sql.keys:SQLKeyStore.rename", Route.MULTI,
             "erasure (rare): the member's name taken out of its idempotency records' "
             "results, by their keys: the nodes of those keys"),
    # -- the outbox: a consumer reads every stream
    Declared("sql.outbox:SQLOutboxStore.streams", Route.SCAN,
             "the program's streams (lowest, highest, any between): every node"),
    Declared("sql.outbox:SQLOutboxStore.read", Route.SCAN, _OUTBOX),
    Declared("sql.outbox:SQLOutboxStore.last_position", Route.SCAN, _OUTBOX),
    Declared("sql.outbox:SQLOutboxStore.set_consumer_position", Route.SCAN,
             "a consumer's acknowledgement: its position in a reference table, written "
             "only to a readable position of the stream (a read of it on every node)"),
    Declared("sql.outbox:SQLOutboxStore.prune", Route.SCAN,
             "retention (due work): a stream's events every consumer passed, oldest "
             "first, on every node"),
    Declared("sql.outbox:append_many", Route.TEXT,
             "many events in one INSERT ... SELECT from unnest arrays, each row with its "
             "member_id (each row to its member's node, keyed there by the trigger)"),
    Declared("sql.tier_events:append_events", Route.TEXT,
             "SQLite's set-based tier.changed events (SQLite's own SQL): never runs on a "
             "distributed engine"),
    # -- reports
    Declared("sql.report_ledger:SQLLedgerReports.count_members", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.member_facts", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.tier_ranks", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.tiers_as_of", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.wallet_members", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.ledger_flows", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.lot_cohorts", Route.COLOCATED, _REPORT),
    Declared("sql.report_ledger:SQLLedgerReports.first_lot_at", Route.SCAN, _REPORT_SCAN),
    Declared("sql.report_orders:SQLOrderReports.counted_orders", Route.SCAN, _REPORT_SCAN),
    Declared("sql.report_orders:SQLOrderReports.member_order_totals", Route.SCAN,
             _REPORT_SCAN),
    Declared("sql.report_orders:SQLOrderReports.period_order_totals", Route.SCAN,
             _REPORT_SCAN),
)

