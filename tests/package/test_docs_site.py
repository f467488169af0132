"""The docs site (mkdocs.yml) lists every page, and its API reference every public name.

CI builds the site itself (``mkdocs build --strict`` in .ci/run: a broken link or an
unknown reference fails it); these checks are fast and need no MkDocs, so a page left out
of the navigation or a public name left out of the reference fails the ordinary suite.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import loyaltykit

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"

# Markdown files under docs/ that are deliberately no page of the site.
NOT_PAGES: set[str] = set()

_NAV_PAGE = re.compile(r"^\s*-\s+(?:[^:#]+:\s+)?(?P<page>[\w./-]+\.md)\s*$")
_DIRECTIVE = re.compile(r"^:::\s+(?P<path>[\w.]+)\s*$", re.MULTILINE)


def nav_pages(text: str) -> list[str]:
    """The page paths of mkdocs.yml's ``nav:`` (a comment is no entry)."""
    pages: list[str] = []
    in_nav = False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            in_nav = line.startswith("nav:")
            continue
        if in_nav:
            m = _NAV_PAGE.match(line.split("#", 1)[0])
            if m:
                pages.append(m["page"])
    return pages


def doc_pages() -> set[str]:
    return {p.relative_to(DOCS).as_posix() for p in DOCS.glob("**/*.md")
            if not any(part.startswith("_") for part in p.relative_to(DOCS).parts)}


def test_nav_parser_reads_titled_untitled_and_commented_entries() -> None:
    text = ("site_name: x\nnav:\n  - Home: index.md\n  - API:\n      - api/index.md\n"
            "  # - Operations: operations.md\nplugins:\n  - a.md\n")
    assert ["index.md", "api/index.md"] == nav_pages(text)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = nav_pages(MKDOCS_YML.read_text(encoding="utf-8"))
    assert len(nav) == len(set(nav)), "a page is listed twice in mkdocs.yml's nav"
    missing_files = sorted(p for p in nav if not (DOCS / p).is_file())
    assert [] == missing_files, "mkdocs.yml's nav lists pages docs/ does not have"
    left_out = sorted(doc_pages() - set(nav) - NOT_PAGES)
    assert [] == left_out, "pages of docs/ missing from mkdocs.yml's nav (or NOT_PAGES)"


def _directives() -> dict[str, str]:
    """Each ``::: path`` of the API reference, mapped to its page."""
    found: dict[str, str] = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            found[m["path"]] = page.name
    return found


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = _directives()
    missing = [name for name in loyaltykit.__all__ if f"loyaltykit.{name}" not in documented]
    assert [] == missing, "names of loyaltykit.__all__ with no ::: entry under docs/api/"


def _names_an_object(path: str) -> bool:
    """Whether ``path`` (``package.module.Class.attr``) names something importable."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_every_api_reference_entry_names_an_object() -> None:
    documented = _directives()
    assert len(documented) > len(loyaltykit.__all__)
    assert not _names_an_object("loyaltykit.NoSuchName")
    assert not _names_an_object("loyaltykit.no_such_module.Thing")
    unknown = sorted(p for p in documented if not _names_an_object(p))
    assert [] == unknown, "::: entries under docs/api/ that name nothing"
