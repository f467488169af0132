"""The docs site's Griffe extension (docs/_hooks/sphinx_roles.py) and MkDocs hooks.

They need the ``docs`` extra (Griffe comes with mkdocstrings[python]); without it these
tests are skipped, and CI's docs step (``mkdocs build --strict``) still runs them in use.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

griffe = pytest.importorskip("griffe", reason="the docs extra (griffe) is not installed")

HOOKS = Path(__file__).resolve().parents[2] / "docs" / "_hooks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_docs_hooks_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


roles = _load("sphinx_roles")
site = _load("site")


@pytest.fixture(scope="module")
def package() -> object:
    """loyaltykit as the docs build sees it (with the extension applied)."""
    src = Path(__file__).resolve().parents[2] / "src"
    return griffe.load("loyaltykit", search_paths=[str(src)],
                       extensions=griffe.load_extensions(roles.SphinxRoles))


def _facade(package: object) -> object:
    return package["_facade.Loyalty"]  # type: ignore[index]


def test_roles_become_optional_autorefs_resolved_from_the_docstrings_scope(package) -> None:
    loyalty = package["_facade.Loyalty"]
    text = roles.markdown_docstring(
        loyalty, "See :class:`~loyaltykit.Balance`, :meth:`bind`, :class:`Program`,"
                 " :meth:`the binding <Loyalty.bind>` and :class:`sqlalchemy.engine.Engine`.")
    assert ('<autoref identifier="loyaltykit.Balance" optional><code>Balance</code></autoref>'
            in text)
    assert ('<autoref identifier="loyaltykit._facade.Loyalty.bind" optional>'
            "<code>bind()</code></autoref>") in text
    assert ('<autoref identifier="loyaltykit._program.Program" optional>'
            "<code>Program</code></autoref>") in text
    assert ('<autoref identifier="loyaltykit._facade.Loyalty.bind" optional>'
            "<code>the binding</code></autoref>") in text
    # outside loyaltykit: code, no link
    assert "<code>sqlalchemy.engine.Engine</code> and" not in text
    assert "and <code>sqlalchemy.engine.Engine</code>." in text
    assert ":class:" not in text and ":meth:" not in text


def test_doctests_literal_blocks_tables_and_versions_become_markdown(package) -> None:
    obj = package["_facade.Loyalty"]
    text = "\n".join([
        "Intro.",
        "",
        ">>> 1 + 1",
        "2",
        "",
        "The tree::",
        "",
        "    a",
        "      b :class:`Balance`",
        "",
        "=====  ===========",
        "name   what",
        "=====  ===========",
        "``a``  first",
        "       continued",
        "``b``  second | third",
        "=====  ===========",
        "",
        ".. versionadded:: 0.2",
    ])
    out = roles.markdown_docstring(obj, text).splitlines()
    assert ["```pycon", ">>> 1 + 1", "2", "```"] == out[2:6]
    tree = out.index("The tree:")
    assert ["", "```text", "a", "  b :class:`Balance`", "```"] == out[tree + 1: tree + 6]
    head = out.index("| name | what |")
    assert ["| --- | --- |", "| ``a`` | first continued |", "| ``b`` | second \\| third |"] == (
        out[head + 1: head + 4])
    assert "*Added in version 0.2.*" == out[-1]


def test_the_facades_delegates_are_methods_with_the_targets_signature(package) -> None:
    loyalty = _facade(package)
    earn = loyalty["earn"]
    assert isinstance(earn, griffe.Function)
    names = [p.name for p in earn.parameters]
    assert "self" not in names and names[:2] == ["member_id", "points"]
    target = package["_services.ledger.LedgerService.earn"]  # type: ignore[index]
    assert earn.docstring is not None
    assert target.docstring.value == earn.docstring.value
    assert "Award ``points``" in earn.docstring.value
    reverse = loyalty["reverse"]  # inherited by LedgerService from a base class
    assert isinstance(reverse, griffe.Function)
    aearn = package["aio._facade.AsyncLoyalty"]["earn"]  # type: ignore[index]
    assert isinstance(aearn, griffe.Function) and "async" in aearn.labels
    assert [p.name for p in aearn.parameters] == names


def test_comment_docstrings_document_attributes(package) -> None:
    tiers = _facade(package)["tiers"]
    assert tiers.docstring is not None
    assert "tier status" in tiers.docstring.value


def test_python_no_run_blocks_render_as_python() -> None:
    text = "a\n```python no-run\nx = 1\n```\n~~~python\ny\n~~~\n"
    assert "a\n```python\nx = 1\n```\n~~~python\ny\n~~~\n" == site.on_page_markdown(text)
