"""Mangling valid JSON-like definitions, for tests that feed garbage to from_dict."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st


def json_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like value (the empty path is the value itself)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += json_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += json_paths(item, (*path, i))
    return found


def mangle(data: Any, draw: st.DataObject, garbage: st.SearchStrategy[Any]) -> Any:
    """Replace, delete or add one value anywhere in a JSON-like structure."""
    data = json.loads(json.dumps(data))
    path = draw.draw(st.sampled_from(json_paths(data)))
    junk = draw.draw(garbage)
    if not path:
        return junk
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    action = draw.draw(st.sampled_from(("replace", "delete", "add")))
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent["unexpected"] = junk
    else:
        parent[path[-1]] = junk
    return data
