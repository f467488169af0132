"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

Before a build, the CDNOW walkthrough's pictures are drawn from the real data by
``docs/_pictures.py`` (``generate(out_dir)``) into ``docs/img/`` (not committed), so the
pages show what the code draws today. Without that module there is nothing to draw.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Draw the docs' pictures into docs/img/ when docs/_pictures.py exists."""
    source = DOCS / "_pictures.py"
    if not source.is_file():
        return
    spec = importlib.util.spec_from_file_location("_loyaltykit_docs_pictures", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(DOCS / "img")
