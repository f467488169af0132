"""The JSON form of what the public API returns (docs/json.md).

One convention for every result and record: an attrs class is an object of its fields
(or what its own ``to_dict`` returns, for the few that keep a compact form of their
own: an :class:`~loyaltykit.Evaluation`, an :class:`~loyaltykit.OutboxEvent`, a
program's policies...), :class:`~loyaltykit.Money` is ``{"amount": "12.30",
"currency": "EUR"}``, decimals and UUIDs are text, instants are ISO 8601 with their
offset, dates ISO 8601, enums their value, tuples and lists arrays, sets sorted arrays,
mappings objects with text keys, arrays of numbers (the analytics' NumPy arrays) lists,
a float that is not finite ``null`` (JSON has no NaN), and an error (an import's
failures) ``{"code", "message", "details"}`` (:meth:`LoyaltyError.to_dict`). The result
is plain data that :func:`json.dumps` writes as it is, no custom encoder needed.

:class:`JsonForm` gives a class ``to_dict``/``to_json`` in that form and makes it a
valid pydantic type (a FastAPI return annotation or ``response_model``) without
importing pydantic until pydantic asks: the core import stays free of it.

A leaf module: it imports nothing of loyaltykit.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["JsonForm", "fields_data", "to_data"]


def to_data(value: Any) -> Any:
    """``value`` as plain JSON data in loyaltykit's convention (see the module doc)."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):  # before str and int: a StrEnum is its value
        return to_data(value.value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    cls = type(value)
    if attrs.has(cls):
        own = getattr(value, "to_dict", None)
        if own is not None:
            return own()
        return fields_data(value)
    if isinstance(value, BaseException):  # a LoyaltyError is {"code", "message", "details"}
        own = getattr(value, "to_dict", None)
        return own() if own is not None else {"type": cls.__name__, "message": str(value)}
    if isinstance(value, Mapping):
        return {str(to_data(k)): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_data(v) for v in value), key=repr)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    tolist = getattr(value, "tolist", None)  # a NumPy array or scalar (never imported)
    if tolist is not None:
        return to_data(tolist())
    return value


def fields_data(value: Any) -> dict[str, Any]:
    """An attrs instance as the object of its fields, each in :func:`to_data`'s form."""
    return {f.name: to_data(getattr(value, f.name)) for f in attrs.fields(type(value))}


class JsonForm:
    """What gives a public result or record its JSON form: ``to_dict()`` (plain data,
    :func:`to_data`'s convention), ``to_json()`` (that data as JSON text) and a pydantic
    schema, so FastAPI accepts the class as a return annotation or ``response_model``
    and writes ``to_dict()`` as the response body.

    A class that keeps a form of its own overrides ``to_dict``; the rest follow from it.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This value as JSON-compatible data: money as ``{"amount": "12.30",
        "currency": "EUR"}``, decimals and UUIDs as text, instants as ISO 8601 with
        their offset, enums as their value, nested records as objects (docs/json.md)."""
        return fields_data(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """:meth:`to_dict` as JSON text (keys in field order)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """pydantic's hook (imported only when pydantic calls it): an instance of the
        class is valid as it is, and serialises, in Python and JSON alike, as
        :meth:`to_dict`."""
        from pydantic_core import core_schema

        return core_schema.is_instance_schema(
            cls,
            ref=f"{cls.__module__}.{cls.__qualname__}:{id(cls)}",  # one named schema each
            serialization=core_schema.plain_serializer_function_ser_schema(_dump_for_pydantic),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """The JSON schema pydantic (FastAPI's OpenAPI document) shows for the class:
        an object, described by the class's first docstring line."""
        doc = (cls.__doc__ or "").strip().splitlines()
        described = {"description": doc[0]} if doc else {}
        return {"type": "object", "title": cls.__name__, **described}


def _dump_for_pydantic(value: Any) -> Any:
    return value.to_dict()
