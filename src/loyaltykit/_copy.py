"""Copies of attrs instances with some fields changed, fast: a leaf below the domain.

Every write copies a few frozen values: the ledger's working state after each posting,
a lot it takes points from, each row the member-key layer hands a store. ``attrs.evolve``
walks the class's fields and calls ``__init__`` again, and a loop setting fields by
name is not much cheaper; together they were a tenth of what an earn costs beyond its
SQL statements. The copiers here are written out per class (as attrs writes its own
``__init__``) and set each field once: through the field's slot descriptor where the
class has slots (its ``__set__`` bound once, a third cheaper per copy than
``object.__setattr__``, which looks the descriptor up again on every call).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs

__all__ = ["cached", "copy_with", "evolve", "evolver"]

T = TypeVar("T")

_Copier = Callable[[Any, Mapping[str, Any]], Any]
_set = object.__setattr__
_copiers: dict[type, _Copier] = {}
_checked: set[type] = set()


def copy_with(row: T, changes: Mapping[str, Any]) -> T:
    """A copy of the attrs instance ``row`` with ``changes`` set, running no validator,
    converter or ``__attrs_post_init__`` (a stored row is taken as it is)."""
    cls = type(row)
    copy = _copiers.get(cls)
    if copy is None:
        copy = _copiers[cls] = _copier(cls)
    copied: T = copy(row, changes)
    return copied


def evolve(inst: T, **changes: Any) -> T:
    """``attrs.evolve(inst, **changes)`` for a class with no validators, converters or
    ``__attrs_post_init__`` (so skipping ``__init__`` skips nothing); a class that has
    any raises TypeError. Unknown field names raise TypeError too, as attrs does."""
    cls = type(inst)
    if cls not in _checked:
        _check(cls)
    copy = _copiers.get(cls)
    if copy is None:
        copy = _copiers[cls] = _copier(cls)
    copied: T = copy(inst, changes)
    return copied


def _check(cls: type) -> None:
    fields = attrs.fields(cls)
    if hasattr(cls, "__attrs_post_init__") or any(
            f.validator is not None or f.converter is not None for f in fields):
        raise TypeError(f"{cls.__name__} validates or converts: use attrs.evolve")
    _checked.add(cls)


def _copier(cls: type) -> _Copier:
    """The copier of ``cls``, written out: each field copied, then the changes set
    (checked against the field names)."""
    return _written(cls, None, [
        "    for name, value in changes.items():",
        "        if name not in names:",
        "            raise TypeError(f'{cls.__name__} has no field {name!r}')",
        "        _set(new, name, value)"])


def evolver(cls: type, names: tuple[str, ...]) -> Callable[..., Any]:
    """``evolve(row, **dict(zip(names, values)))`` as ``copy(row, *values)``, for a hot
    loop that changes the same fields of many rows: no dict of changes to build and
    walk (evolve's was a third of the memory store's due batch loop). Its kind of class
    only (see :func:`evolve`); a name that is no field raises TypeError."""
    _check(cls)
    unknown = set(names) - {f.name for f in attrs.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    return _written(cls, names, [])


def _written(cls: type, given: tuple[str, ...] | None, tail: list[str]) -> _Copier:
    """A copy function for ``cls`` written out (as attrs writes its own ``__init__``):
    ``copy(row, changes)`` or, with fields ``given``, ``copy(row, *given)``; each field
    set once, through its slot where it has one, from the argument or the row; then
    the lines ``tail``."""
    names = [f.name for f in attrs.fields(cls)]
    if not all(name.isidentifier() for name in names):  # pragma: no cover - attrs's rule
        raise TypeError(f"{cls.__name__} has a field that is no identifier")
    # the arguments are numbered: a field may be called row, new or changes
    params = "changes" if given is None else ", ".join(f"a{i}" for i in range(len(given)))
    given = given or ()
    lines = [f"def copy(row, {params}):", "    new = _new(cls)"]
    namespace: dict[str, Any] = {"_new": object.__new__, "_set": _set, "cls": cls,
                                 "names": frozenset(names)}
    for i, name in enumerate(names):
        value = f"a{given.index(name)}" if name in given else f"row.{name}"
        slot = _slot(cls, name)
        if slot is None:
            lines.append(f"    _set(new, {name!r}, {value})")
        else:
            namespace[f"s{i}"] = slot.__set__
            lines.append(f"    s{i}(new, {value})")
    lines += [*tail, "    return new"]
    exec("\n".join(lines), namespace)  # attrs field names only
    copy: _Copier = namespace["copy"]
    return copy


def _slot(cls: type, name: str) -> types.MemberDescriptorType | None:
    """The slot descriptor holding field ``name`` of ``cls`` (None: no slot, the field
    lives in the instance's ``__dict__``)."""
    for klass in cls.__mro__:
        found = klass.__dict__.get(name)
        if found is not None:
            return found if isinstance(found, types.MemberDescriptorType) else None
    return None


class cached(Generic[T]):
    """Like :class:`functools.cached_property` without its lock (Python 3.11 takes one
    per first access): a unit of work's stores are built on first use, by one thread,
    several per write."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | cached[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.build(obj)
        return value
