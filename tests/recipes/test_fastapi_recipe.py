"""docs/recipes/fastapi.md runs as written in the docs' own test on SQLite; here the same
code runs on PostgreSQL (psycopg's async driver): one transaction per request, checkout
with points, a refused spend rolling back the shop's order row, returns, errors as HTTP."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import sqlalchemy as sa

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "recipes" / "fastapi.md"


def _code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", RECIPE.read_text(), flags=re.S)
    assert blocks, "the recipe has its app in a python block"
    return "\n".join(blocks)


def test_the_fastapi_recipe_runs_on_postgresql(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as url:
        made = sa.make_url(url).set(drivername="postgresql+psycopg_async")
        monkeypatch.setenv("SHOP_DATABASE_URL", made.render_as_string(hide_password=False))
        monkeypatch.chdir(tmp_path)
        # a module of its own: pydantic resolves the app's models through sys.modules
        module = types.ModuleType("fastapi_recipe")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(_code(), str(RECIPE), "exec"), module.__dict__)
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:  # it ran on this server, not on a SQLite file
                assert 2 == conn.execute(sa.text("SELECT count(*) FROM shop_orders")).scalar()
        finally:
            engine.dispose()
    assert not list(tmp_path.glob("*.sqlite"))
