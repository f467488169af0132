"""A pytest plugin: run the tests with :class:`loyaltykit.sql.routing.Capture` on and
write what it saw, as JSON, to the file named by ``LOYALTYKIT_ROUTING_OUT``
(tests/storage/test_routing.py runs the contract suite in a subprocess with it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loyaltykit.sql.routing import Capture

_CAPTURE = Capture()


def pytest_configure(config: pytest.Config) -> None:
    _CAPTURE.__enter__()


def pytest_unconfigure(config: pytest.Config) -> None:
    _CAPTURE.__exit__(None, None, None)
    out = os.environ.get("LOYALTYKIT_ROUTING_OUT")
    if not out:
        return
    seen = [
        {"name": c.name, "function": c.function, "route": c.routing.route.name,
         "tables": list(c.routing.tables), "sql": c.sql, "dialects": sorted(c.dialects)}
        for c in sorted(_CAPTURE.statements.values(), key=lambda c: c.name)
    ]
    Path(out).write_text(json.dumps(seen, indent=1))
