"""docs/recipes/django.md runs as written in the docs' own test on SQLite; here the same
code runs on PostgreSQL (Django's postgresql backend on psycopg 3): the shop's migrations
bringing loyaltykit's tables in, checkout in one transaction, an exception, a refused
spend and a nested atomic() rolling back the order rows with their points.

Django's settings are configured once per process, so the recipe runs in a fresh
interpreter, as the docs' test runs it (tests/package/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from tests.package.test_docs import run_in_fresh_interpreter

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "recipes" / "django.md"


def test_the_django_recipe_runs_on_postgresql(tmp_path: Path) -> None:
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as url:
        run_in_fresh_interpreter(RECIPE, tmp_path, env={"SHOP_DATABASE_URL": url})
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:  # it ran on this server, not on a SQLite file
                assert 2 == conn.execute(sa.text("SELECT count(*) FROM shop_order")).scalar()
                applied = conn.execute(sa.text(
                    "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY name"))
                assert ["0001_initial", "0002_loyaltykit"] == list(applied.scalars())
                assert conn.execute(sa.text(
                    "SELECT version_num FROM loyaltykit_alembic_version")).scalar()
        finally:
            engine.dispose()
    assert not list(tmp_path.glob("*.sqlite"))
