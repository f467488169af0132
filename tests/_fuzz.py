"""Hostile input for the tests: mangled JSON-like definitions for the tests that feed
garbage to from_dict, and the kinds of bad value the public-surface fuzz
(tests/package/test_fuzz_public.py) gives every parameter."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
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


# ---------------------------------------------------------------------------------------
# Hostile values: the kinds of bad input every public parameter is given
# ---------------------------------------------------------------------------------------
# tests/package/test_fuzz_public.py gives each parameter of every public call each kind
# below (the catalogue) and random values of the same kinds (the strategies), while the
# other arguments stay valid. A kind has a name, so a parameter's role can say which
# kinds are valid there (skipped), which it may accept (no error required) and which it
# must refuse (every other kind).

#: How deep the deeply nested dicts and lists go (far past the interpreter's stack).
DEEP = 10_000


class Evil:
    """An object whose ``__repr__``, ``__str__``, ``__format__``, ``__eq__`` and
    ``__hash__`` raise: reading, printing, comparing or hashing it fails."""

    def __repr__(self) -> str:
        raise RuntimeError("Evil.__repr__")

    def __str__(self) -> str:
        raise RuntimeError("Evil.__str__")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("Evil.__format__")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("Evil.__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("Evil.__hash__")


def nested_dict(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}`` nested ``depth`` levels (built without recursion)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_list(depth: int) -> list[Any]:
    """``[[...[]]]`` nested ``depth`` levels."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# built once: a deep structure takes the garbage collector a while to make each time
_DEEP_DICT = nested_dict(DEEP)
_DEEP_LIST = nested_list(DEEP)


def _cyclic_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["a"] = value
    return value


def _offset(hours: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours))


#: kind -> a function making a fresh value of it (fresh: a call may keep or change it).
HOSTILE: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "bool_true": lambda: True,
    "bool_false": lambda: False,
    "int_zero": lambda: 0,
    "int_neg": lambda: -1,
    "int_2_63": lambda: 2**63,
    "int_neg_2_63": lambda: -(2**63) - 1,
    "int_2_200": lambda: 2**200,
    "float_nan": lambda: math.nan,
    "float_inf": lambda: math.inf,
    "float_ninf": lambda: -math.inf,
    "float_frac": lambda: 1.5,
    "dec_nan": lambda: Decimal("NaN"),
    "dec_snan": lambda: Decimal("sNaN"),
    "dec_inf": lambda: Decimal("Infinity"),
    "dec_ninf": lambda: Decimal("-Infinity"),
    "dec_big": lambda: Decimal("1E+999999"),
    "dec_tiny": lambda: Decimal("1E-999999"),
    "fraction": lambda: Fraction(1, 3),
    "complex": lambda: 1j,
    "str_empty": lambda: "",
    "str_blank": lambda: "   ",
    "str_padded": lambda: " m ",
    "str_nul": lambda: "a\x00b",
    "str_surrogate": lambda: "a\ud800b",
    "str_c0": lambda: "a\x01b",
    "str_newline": lambda: "a\nb",
    "str_del": lambda: "a\x7fb",
    "str_bidi": lambda: "a\u202eb",
    "str_isolate": lambda: "a\u2067b",
    "str_long": lambda: "x" * 100_000,
    "str_digits": lambda: "5",
    "str_word": lambda: "bogus",
    "str_iso_datetime": lambda: "2026-03-02T09:00:00+00:00",
    "bytes": lambda: b"m",
    "dt_naive": lambda: dt.datetime(2026, 3, 2, 9, 30),
    "dt_year1": lambda: dt.datetime(1, 1, 1, 0, 0, tzinfo=_offset(1)),
    "dt_year9999": lambda: dt.datetime(9999, 12, 31, 23, 59, tzinfo=_offset(-1)),
    "dt_min_utc": lambda: dt.datetime.min.replace(tzinfo=dt.UTC),
    "dt_max_utc": lambda: dt.datetime.max.replace(tzinfo=dt.UTC),
    "date": lambda: dt.date(2026, 3, 2),
    "time": lambda: dt.time(9, 30),
    "td_max": lambda: dt.timedelta.max,
    "td_min": lambda: dt.timedelta.min,
    "td_zero": lambda: dt.timedelta(0),
    "td_neg": lambda: dt.timedelta(seconds=-1),
    "list_empty": lambda: [],
    "list_of_none": lambda: [None],
    "dict_empty": lambda: {},
    "dict_int_key": lambda: {1: 2},
    "set": lambda: {"m"},
    "deep_dict": lambda: _DEEP_DICT,
    # one level past what attributes and metadata may nest (the mapping itself level 1):
    # the random part's depths start here, and drew it for an order's attributes once
    # in about a hundred runs before the catalogue had it
    "deep_dict_33": lambda: nested_dict(33),
    "deep_list": lambda: _DEEP_LIST,
    "cyclic_list": _cyclic_list,
    "cyclic_dict": _cyclic_dict,
    "object": lambda: object(),
    "evil": lambda: Evil(),
    "a_class": lambda: object,
    "callable": lambda: (lambda *args, **kwargs: None),
    "uuid_zero": lambda: uuid.UUID(int=0),
}

#: The kind names, grouped (a role names groups rather than each kind).
GROUPS: dict[str, frozenset[str]] = {
    "int": frozenset(k for k in HOSTILE if k.startswith("int_")),
    "float": frozenset(k for k in HOSTILE if k.startswith("float_")),
    "decimal": frozenset(k for k in HOSTILE if k.startswith("dec_")),
    "str": frozenset(k for k in HOSTILE if k.startswith("str_")),
    "datetime": frozenset(k for k in HOSTILE if k.startswith("dt_")),
    "timedelta": frozenset(k for k in HOSTILE if k.startswith("td_")),
}


def text_kind(text: str) -> str:
    """The kind of hostile text ``text`` is, by the worst character in it."""
    if "\x00" in text:
        return "str_nul"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "str_surrogate"
    if any(c < " " for c in text):
        return "str_c0"
    if any("\u202a" <= c <= "\u202e" for c in text):
        return "str_bidi"
    return "str_del"  # DEL, bidi isolates and marks, BOM: may be accepted in ids


def _float_kind(value: float) -> str:
    if math.isnan(value):
        return "float_nan"
    if math.isinf(value):
        return "float_inf" if value > 0 else "float_ninf"
    return "float_frac"


def _decimal_kind(value: Decimal) -> str:
    if value.is_nan():
        return "dec_snan" if value.is_snan() else "dec_nan"
    if value.is_infinite():
        return "dec_inf" if value > 0 else "dec_ninf"
    return "dec_big" if value.adjusted() > 0 else "dec_tiny"


def hostile_strategies() -> dict[str, st.SearchStrategy[tuple[str, Any]]]:
    """Random values of each group of kinds, for the Hypothesis part of the fuzz, each
    drawn as ``(kind, value)`` so a parameter's role judges it as a catalogue value."""
    forbidden = st.sampled_from(["\x00", "\ud800", "\udfff", "\x01", "\x1b", "\x1f", "\x7f",
                                 "\u202a", "\u202e", "\u2066", "\u200f", "\ufeff"])
    spliced = st.tuples(st.text(max_size=20), forbidden, st.text(max_size=20)).map(
        lambda p: p[0] + p[1] + p[2])
    offsets = st.sampled_from([_offset(h) for h in (-23, -12, -1, 1, 12, 23)])
    aware_edges = st.one_of(  # the first and last years Python holds, at some offset
        st.datetimes(max_value=dt.datetime(1, 12, 31, 23, 59), timezones=offsets),
        st.datetimes(min_value=dt.datetime(9999, 1, 1), timezones=offsets))
    extreme_decimals = st.builds(
        lambda sign, first, rest, exp: Decimal((sign, (first, *rest), exp)),
        st.integers(0, 1), st.integers(1, 9), st.lists(st.integers(0, 9), max_size=5),
        st.one_of(st.integers(-999_999, -10_000), st.integers(10_000, 999_990)))
    return {
        "text": spliced.map(lambda t: (text_kind(t), t)),
        "long_text": st.integers(10_001, 200_000).map(lambda n: ("str_long", "y" * n)),
        "huge_int": st.one_of(st.integers(min_value=2**63),
                              st.integers(max_value=-(2**63) - 1)).map(lambda n: ("int_2_63", n)),
        "float": st.floats(allow_nan=True, allow_infinity=True).map(
            lambda f: (_float_kind(f), f)),
        "decimal": st.one_of(
            st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_finite()),
            extreme_decimals).map(lambda d: (_decimal_kind(d), d)),
        "naive": st.datetimes().map(lambda d: ("dt_naive", d)),
        "edge_datetime": aware_edges.map(
            lambda d: ("dt_year1" if d.year == 1 else "dt_year9999", d)),
        "timedelta": st.one_of(
            st.timedeltas(min_value=dt.timedelta(days=3661)).map(lambda d: ("td_max", d)),
            st.timedeltas(max_value=dt.timedelta(0)).map(
                lambda d: ("td_zero" if not d else "td_neg", d))),
        "deep": st.integers(33, DEEP).flatmap(lambda n: st.sampled_from(
            [("deep_dict", nested_dict(n)), ("deep_list", nested_list(n))])),
        "wrong_type": st.sampled_from(["object", "evil", "bytes", "complex", "fraction",
                                       "set", "a_class"]).map(lambda k: (k, HOSTILE[k]())),
    }
