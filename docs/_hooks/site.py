"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

A ``python no-run`` fence (an example tests/package/test_docs.py does not execute) is
shown as an ordinary ``python`` block: Markdown has no such info string.

The CDNOW walkthrough's pictures are drawn by the other hook, ``scripts/docs_pictures.py``.
"""

from __future__ import annotations

import re
from typing import Any

_NO_RUN = re.compile(r"^(?P<fence> {0,3}(?:`{3,}|~{3,})\s*python)\s+no-run\b", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Show ``python no-run`` blocks as ``python`` blocks."""
    return _NO_RUN.sub(r"\g<fence>", markdown)
