"""Every statement the shipped contract suite issues on a distributed table is routed by
its distribution column, or is declared (issue 23, item 3 and check 6b).

The contract suite (``tests/*/test_*_contract.py``) runs on SQLite and PostgreSQL in a
subprocess with :class:`loyaltykit.sql.routing.Capture` on (the plugin
``_routing_capture``: a process of its own, so the capture sees no other test's
statements, whatever xdist does with this one); then each statement that is not
single-shard must be declared, in the package's
:data:`~loyaltykit.sql.routing.NOT_SINGLE_SHARD` (on purpose) or in :data:`PENDING`
here (to be routed by a part of issue 23 still to come), and no declaration may be
stale: declared and never seen, or seen routed (so :data:`PENDING` only shrinks).

A declaration names one statement (``module:function#digest``, see
:func:`~loyaltykit.sql.routing.statement_name`) or every statement of a function
(``module:function``: a report or due-work function that builds its statement per
call from its options), with the worst route allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from loyaltykit.sql.routing import NOT_SINGLE_SHARD, Declared, Route

TESTS = Path(__file__).resolve().parents[1]
CONTRACT = sorted(str(p.relative_to(TESTS)) for p in TESTS.glob("*/test_*_contract.py"))

#: The statements not routed yet, each with why and the part of issue 23 that routes it:
#: none left (the test fails on a new unrouted statement and on a stale entry).
PENDING: tuple[Declared, ...] = ()


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What the contract suite executes on SQLite and PostgreSQL (see the module
    docstring), one entry per statement name."""
    out = tmp_path_factory.mktemp("routing") / "seen.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOYALTYKIT_TEST_POSTGRESQL_URL", "PYTEST_XDIST_WORKER",
                        "PYTEST_ADDOPTS")}  # its own server: it empties the tables
    env["LOYALTYKIT_ROUTING_OUT"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent),
                                         env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "_routing_capture", "-k", "SQLite or PostgreSQL", *CONTRACT],
        cwd=TESTS, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"the contract suite failed:\n{run.stdout[-4000:]}"
    found: list[dict[str, Any]] = json.loads(out.read_text())
    return found


def _covering(entry: Declared, statement: dict[str, Any]) -> bool:
    """``entry`` names ``statement`` (by its name, or every statement of its function)."""
    return entry.name == statement["name"] or entry.name == statement["function"]


def _shown(statement: dict[str, Any]) -> str:
    tables = ", ".join(statement["tables"])
    return (f"{statement['route']:9} {statement['name']} ({'/'.join(statement['dialects'])})"
            f"\n          {tables}\n          {statement['sql'][:400]}")


def _undeclared(seen: Iterable[dict[str, Any]], entries: Iterable[Declared]) -> list[str]:
    entries = list(entries)
    found = []
    for statement in seen:
        route = Route[statement["route"]]
        if route <= Route.SINGLE:
            continue
        if not any(_covering(e, statement) and route <= e.route for e in entries):
            found.append(_shown(statement))
    return found


def _stale(seen: list[dict[str, Any]], entries: Iterable[Declared]) -> list[str]:
    return [f"{e.name} ({e.route.name}): {e.reason}" for e in entries
            if not any(_covering(e, s) and Route[s["route"]] > Route.SINGLE for s in seen)]


def test_declarations_name_each_statement_once() -> None:
    names = [e.name for e in (*NOT_SINGLE_SHARD, *PENDING)]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert all(e.route > Route.SINGLE and e.reason for e in (*NOT_SINGLE_SHARD, *PENDING))


@pytest.mark.slow
def test_every_statement_on_a_distributed_table_is_routed_or_declared(
        seen: list[dict[str, Any]]) -> None:
    undeclared = _undeclared(seen, (*NOT_SINGLE_SHARD, *PENDING))
    assert not undeclared, (
        f"{len(undeclared)} statements are not single-shard and not declared (route them "
        "by their member, or declare them in loyaltykit.sql.routing.NOT_SINGLE_SHARD with "
        "a reason):\n" + "\n".join(undeclared))


@pytest.mark.slow
def test_no_declared_statement_is_stale(seen: list[dict[str, Any]]) -> None:
    stale = _stale(seen, (*NOT_SINGLE_SHARD, *PENDING))
    assert not stale, (
        "declared, but not seen as a statement that is not single-shard (routed now, "
        "changed, or gone: drop or rename the entry):\n" + "\n".join(stale))


def test_the_check_fails_on_an_unrouted_statement_and_a_stale_entry() -> None:
    scan = {"name": "sql.x:f#0123456789", "function": "sql.x:f", "route": "SCAN",
            "tables": ["lk_lots: scan"], "sql": "SELECT ...", "dialects": ["sqlite"]}
    assert len(_undeclared([scan], [])) == 1
    assert _undeclared([scan], [Declared("sql.x:f", Route.SCAN, "why")]) == []
    # declared for a better route than it has
    assert len(_undeclared([scan], [Declared(scan["name"], Route.MULTI, "why")])) == 1
    assert len(_stale([{**scan, "route": "SINGLE"}],
                      [Declared(scan["name"], Route.SCAN, "why")])) == 1
