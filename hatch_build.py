"""Build-time metadata: the long description shown on PyPI.

README.md starts with the commands for a fresh checkout (make a venv, install the
checkout, run the demo); someone reading PyPI wants ``pip install loyaltykit`` first,
and on PyPI a relative link (``docs/ledger.md``) leads nowhere. So the description is
README.pypi.md (install, extras) followed by README.md from its "What it is" section up
to "Development" (working on a checkout), every relative link made absolute against the
``Source`` URL of ``[project.urls]`` (the one place the project's address is written).

hatchling runs this hook for every build (wheel, sdist, editable) and for
``prepare_metadata_for_build_wheel``; tests/package/test_packaging.py checks its result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

HEAD = "README.pypi.md"
BODY = "README.md"
BODY_FROM = "## What it is"
BODY_UNTIL = "## Development"

# [text](target) and ![alt](target), and reference definitions "[name]: target"
_INLINE = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_REFERENCE = re.compile(r"^(\s{0,3}\[[^\]]+\]:\s*)(\S+)", re.MULTILINE)
_ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|#|/)")


def absolute_links(markdown: str, source: str) -> str:
    """``markdown`` with every relative link pointing into ``source``'s main branch
    (``docs/ledger.md`` -> ``SOURCE/blob/main/docs/ledger.md``); images point at the
    raw file so that PyPI can show them."""
    base = source.rstrip("/")

    def fix(prefix: str, target: str) -> str:
        if _ABSOLUTE.match(target):
            return target
        path = target[2:] if target.startswith("./") else target
        kind = "raw" if prefix.startswith("!") else "blob"
        return f"{base}/{kind}/main/{path}"

    text = _INLINE.sub(lambda m: m[1] + fix(m[1], m[2]) + m[3], markdown)
    return _REFERENCE.sub(lambda m: m[1] + fix(m[1], m[2]), text)


def pypi_description(root: Path, source: str) -> str:
    """The long description: README.pypi.md, then README.md's sections from "What it
    is" to "Development" (excluded), with absolute links."""
    head = (root / HEAD).read_text(encoding="utf-8")
    body = (root / BODY).read_text(encoding="utf-8")
    start, end = body.find(f"\n{BODY_FROM}\n"), body.find(f"\n{BODY_UNTIL}\n")
    if start < 0 or end < start:
        raise ValueError(f"{BODY} lacks the sections {BODY_FROM!r} .. {BODY_UNTIL!r} "
                         f"that {HEAD} is followed by on PyPI (see hatch_build.py)")
    return absolute_links(head.rstrip("\n") + "\n" + body[start:end].rstrip("\n") + "\n",
                          source)


class PyPIReadmeHook(MetadataHookInterface):
    """Fills the dynamic ``readme`` of pyproject.toml with :func:`pypi_description`."""

    PLUGIN_NAME = "custom"

    def update(self, metadata: dict[str, Any]) -> None:
        source = metadata.get("urls", {}).get("Source")
        if not source:
            raise ValueError("[project.urls] needs a Source URL to make README links absolute")
        metadata["readme"] = {
            "content-type": "text/markdown",
            "text": pypi_description(Path(self.root), source),
        }
