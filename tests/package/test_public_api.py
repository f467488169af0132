"""Checks on the public surface of the ``loyaltykit`` package."""

import __future__

import inspect
import json
import subprocess
import sys
import types
import typing

import pytest

import loyaltykit

# ---------------------------------------------------------------------------
# __all__ matches the package namespace
# ---------------------------------------------------------------------------


def _public_namespace_names() -> list[str]:
    """Public names bound in ``loyaltykit``, other than submodules.

    ``from __future__ import annotations`` in ``__init__.py`` binds the name
    ``annotations``; such compiler-feature objects are not API and are skipped.
    """
    return [
        name
        for name, value in vars(loyaltykit).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)
    ]


def test_all_is_sorted_and_unique() -> None:
    exported = list(loyaltykit.__all__)
    assert exported == sorted(exported)
    duplicates = sorted({n for n in exported if exported.count(n) > 1})
    assert duplicates == []


def test_all_matches_public_namespace() -> None:
    public = set(_public_namespace_names())
    exported = set(loyaltykit.__all__)
    assert sorted(public - exported) == [], "public names in loyaltykit missing from __all__"
    assert sorted(exported - public) == [], "names in __all__ not defined in loyaltykit"


# ---------------------------------------------------------------------------
# The domain core and the in-memory backend do not import SQLAlchemy
# ---------------------------------------------------------------------------

_FORBIDDEN_PREFIXES = ("sqlalchemy", "alembic")


def _modules_after(import_stmt: str) -> list[str]:
    """Names in ``sys.modules`` of a fresh interpreter after ``import_stmt``."""
    code = f"import json, sys\n{import_stmt}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{import_stmt!r} failed in a subprocess:\n{proc.stderr}"
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(modules, list)
    return [str(m) for m in modules]


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(_FORBIDDEN_PREFIXES)]


def test_forbidden_module_detection_works() -> None:
    # Control: the check below really sees an import of SQLAlchemy.
    assert "sqlalchemy" in _forbidden(_modules_after("import sqlalchemy"))


@pytest.mark.parametrize("module", ["loyaltykit", "loyaltykit.memory"])
def test_core_does_not_import_sqlalchemy(module: str) -> None:
    modules = _modules_after(f"import {module}")
    assert module in modules
    assert _forbidden(modules) == []


# ---------------------------------------------------------------------------
# Every exported name is documented
# ---------------------------------------------------------------------------


def _is_type_alias(value: object) -> bool:
    """True for type aliases: ``X = int``, ``X = A | B``, ``X = NewType(...)``, ..."""
    if isinstance(value, typing.NewType):
        return True
    if typing.get_origin(value) is not None:  # list[int], A | B, Literal[...], ...
        return True
    type_alias_type = getattr(typing, "TypeAliasType", None)  # `type X = ...` (3.12+)
    if type_alias_type is not None and isinstance(value, type_alias_type):
        return True
    # An alias of a class defined outside loyaltykit (e.g. `Points = int`).
    return isinstance(value, type) and not value.__module__.startswith("loyaltykit")


def _own_doc(value: object) -> str | None:
    """The docstring of ``value``, not one inherited from a base class."""
    if isinstance(value, type):
        doc = vars(value).get("__doc__")
        return inspect.cleandoc(doc) if isinstance(doc, str) else None
    return inspect.getdoc(value)


_DOCUMENTED = [
    name
    for name in getattr(loyaltykit, "__all__", ())
    if not isinstance(getattr(loyaltykit, name, None), int | str)
    and not _is_type_alias(getattr(loyaltykit, name, None))
]


@pytest.mark.parametrize("name", _DOCUMENTED)
def test_exported_name_has_docstring(name: str) -> None:
    value = getattr(loyaltykit, name)
    doc = _own_doc(value)
    assert doc, f"loyaltykit.{name} has no docstring"
