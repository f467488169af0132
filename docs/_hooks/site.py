"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

A ``python no-run`` fence (an example tests/package/test_docs.py does not execute) is
shown as an ordinary ``python`` block: Markdown has no such info string.

Before a build, the CDNOW walkthrough's pictures are drawn from the real data by
``docs/_pictures.py`` (``generate(out_dir)``) into ``docs/img/`` (not committed), so the
pages show what the code draws today. Without that module there is nothing to draw.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]

_NO_RUN = re.compile(r"^(?P<fence> {0,3}(?:`{3,}|~{3,})\s*python)\s+no-run\b", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Show ``python no-run`` blocks as ``python`` blocks."""
    return _NO_RUN.sub(r"\g<fence>", markdown)


_command = ["build"]


def on_startup(command: str, **kwargs: Any) -> None:
    """Remember whether this is ``mkdocs serve``."""
    _command[0] = command


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Draw the docs' pictures into docs/img/ when docs/_pictures.py exists (once under
    ``mkdocs serve``: new files in docs/ would make it rebuild again and again)."""
    source = DOCS / "_pictures.py"
    img = DOCS / "img"
    if not source.is_file() or (_command[0] == "serve" and img.is_dir() and any(img.iterdir())):
        return
    spec = importlib.util.spec_from_file_location("_loyaltykit_docs_pictures", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(img)
