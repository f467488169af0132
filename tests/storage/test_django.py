"""loyaltykit.django.connection(): loyaltykit's writes inside Django's transaction, on
SQLite and PostgreSQL. Django is configured once for this process (two databases, one
per backend, and a third of a kind loyaltykit does not keep ledgers on)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import InsufficientPoints, InvalidInput, Loyalty, LoyaltyError, Money, Program
from loyaltykit.sql import SQLStorage

PROGRAM = Program(id="django", time_zone="UTC", currency="EUR",
                  point_value=Money("0.01", "EUR"))
#: the Django alias of each backend
ALIASES = {"sqlite": "default", "postgresql": "pg"}
_ids = itertools.count()


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Django configured with a SQLite file and an empty PostgreSQL database, both
    holding loyaltykit's schema and a shop table; the SQLAlchemy URL of each alias."""
    import django
    from django.conf import settings
    from django.db import connections

    from conftest import POSTGRESQL
    from loyaltykit.django import connection

    assert not settings.configured, "Django was configured by another test in this process"
    path = tmp_path_factory.mktemp("django") / "shop.sqlite"
    with POSTGRESQL.empty_database() as pg_url:
        pg = sa.make_url(pg_url)
        settings.configure(USE_TZ=True, TIME_ZONE="UTC", DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)},
            "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": pg.database,
                   "USER": pg.username or "", "HOST": pg.query["host"]},
            "other": {"ENGINE": "django.db.backends.dummy"},
        })
        django.setup()
        urls = {"default": f"sqlite:///{path}", "pg": pg_url}
        for alias in urls:
            with connections[alias].cursor() as cursor:
                cursor.execute("CREATE TABLE shop_orders (id VARCHAR(40) PRIMARY KEY)")
            with connection(alias) as conn:
                SQLStorage(conn).upgrade()
        try:
            yield urls
        finally:
            connections.close_all()


@pytest.fixture(params=list(ALIASES))
def using(request: pytest.FixtureRequest, urls: dict[str, str]) -> str:
    return ALIASES[request.param]


@pytest.fixture
def own(using: str, urls: dict[str, str]) -> Iterator[Loyalty]:
    """The program's facade on an engine of its own: what another connection sees."""
    storage = SQLStorage.from_url(urls[using])
    shop = Loyalty(PROGRAM, storage)
    shop.register()
    yield shop
    storage.dispose()


def _member(shop: Loyalty) -> str:
    member = f"m{next(_ids)}"
    shop.enrol(member)
    return member


def _insert_order(using: str, order_id: str) -> None:
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute("INSERT INTO shop_orders (id) VALUES (%s)", [order_id])


def _orders(urls: dict[str, str], using: str, *ids: str) -> list[str]:
    """The shop rows ``ids`` that a fresh connection sees (committed ones)."""
    engine = sa.create_engine(urls[using])
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT id FROM shop_orders WHERE id IN :ids")
                                 .bindparams(sa.bindparam("ids", expanding=True)),
                                 {"ids": list(ids)})
            return sorted(found.scalars())
    finally:
        engine.dispose()


def test_points_commit_with_djangos_rows(using: str, urls: dict[str, str],
                                         own: Loyalty) -> None:
    from django.db import transaction

    from loyaltykit.django import connection

    member = _member(own)
    with transaction.atomic(using=using):
        _insert_order(using, f"{member}-1")
        with connection(using) as conn:
            own.bind(conn).earn(member, 10, key=f"{member}-1")
        # SQLAlchemy gave the connection back without committing: nothing seen yet
        assert [] == _orders(urls, using, f"{member}-1")
    assert [f"{member}-1"] == _orders(urls, using, f"{member}-1")
    assert 10 == own.balance(member).available


def test_an_exception_rolls_back_the_row_and_the_points(using: str, urls: dict[str, str],
                                                        own: Loyalty) -> None:
    from django.db import transaction

    from loyaltykit.django import connection

    member = _member(own)
    with pytest.raises(RuntimeError, match="declined"), transaction.atomic(using=using):
        _insert_order(using, f"{member}-1")
        with connection(using) as conn:
            bound = own.bind(conn)
            bound.earn(member, 10, key=f"{member}-1")
            assert 10 == bound.balance(member).available  # inside: written
        raise RuntimeError("the payment provider declined")
    assert [] == _orders(urls, using, f"{member}-1")
    assert 0 == own.balance(member).available


def test_a_refusal_rolls_back_djangos_row(using: str, urls: dict[str, str],
                                          own: Loyalty) -> None:
    from django.db import transaction

    from loyaltykit.django import connection

    member = _member(own)
    own.earn(member, 5, key=f"{member}-0")
    with pytest.raises(InsufficientPoints), transaction.atomic(using=using):
        _insert_order(using, f"{member}-1")
        with connection(using) as conn:
            bound = own.bind(conn)
            bound.earn(member, 3, key=f"{member}-1")
            bound.spend(member, 100, key=f"{member}-2")
    assert [] == _orders(urls, using, f"{member}-1")
    assert 5 == own.balance(member).available  # the earn before the refusal went too


def test_a_nested_atomic_rolls_back_its_savepoint_only(using: str, urls: dict[str, str],
                                                       own: Loyalty) -> None:
    from django.db import transaction

    from loyaltykit.django import connection

    member = _member(own)
    with transaction.atomic(using=using):
        _insert_order(using, f"{member}-1")
        with connection(using) as conn:
            own.bind(conn).earn(member, 5, key=f"{member}-1")
        with pytest.raises(InsufficientPoints), transaction.atomic(using=using):
            _insert_order(using, f"{member}-2")
            with connection(using) as conn:
                own.bind(conn).earn(member, 7, key=f"{member}-2")
                own.bind(conn).spend(member, 100, key=f"{member}-3")
        with connection(using) as conn:  # the transaction goes on after the savepoint
            assert 5 == own.bind(conn).balance(member).available
    assert [f"{member}-1"] == _orders(urls, using, f"{member}-1", f"{member}-2")
    assert 5 == own.balance(member).available


def test_a_refusal_caught_outside_the_block_keeps_the_rest(using: str,
                                                           urls: dict[str, str],
                                                           own: Loyalty) -> None:
    """The block is an atomic() block: a refusal leaving it rolls back the block's
    writes only, and the enclosing transaction commits the rest."""
    from django.db import transaction

    from loyaltykit.django import connection

    member = _member(own)
    with transaction.atomic(using=using):
        _insert_order(using, f"{member}-1")
        with pytest.raises(InsufficientPoints), connection(using) as conn:
            own.bind(conn).earn(member, 3, key=f"{member}-1")
            own.bind(conn).spend(member, 100, key=f"{member}-2")
        with connection(using) as conn:
            own.bind(conn).earn(member, 4, key=f"{member}-3")
    assert [f"{member}-1"] == _orders(urls, using, f"{member}-1")
    assert 4 == own.balance(member).available


def test_outside_atomic_the_block_is_a_transaction(using: str, urls: dict[str, str],
                                                   own: Loyalty) -> None:
    from django.db import connections

    from loyaltykit.django import connection

    member = _member(own)
    with pytest.raises(RuntimeError), connection(using) as conn:
        assert connections[using].in_atomic_block
        _insert_order(using, f"{member}-1")
        own.bind(conn).earn(member, 10, key=f"{member}-1")
        raise RuntimeError
    assert 0 == own.balance(member).available
    assert [] == _orders(urls, using, f"{member}-1")
    with connection(using) as conn:
        _insert_order(using, f"{member}-2")
        own.bind(conn).earn(member, 10, key=f"{member}-2")
    assert not connections[using].in_atomic_block
    assert 10 == own.balance(member).available
    assert [f"{member}-2"] == _orders(urls, using, f"{member}-2")


def test_reads_through_djangos_connection_match_the_engines(using: str,
                                                            own: Loyalty) -> None:
    """Django's SQLite connections convert DATETIME and DATE columns themselves; the
    values read through them are those read through loyaltykit's own engine."""
    from loyaltykit.django import connection

    member = _member(own)
    own.earn(member, 10, key=f"{member}-1")
    with connection(using) as conn:
        bound = own.bind(conn)
        assert own.member(member) == bound.member(member)
        assert own.lots(member) == bound.lots(member)
        assert own.statement(member) == bound.statement(member)
    assert own.member(member).enrolled_at.tzinfo is not None


def test_nested_calls_share_one_connection_and_a_new_django_connection_is_followed(
        using: str, own: Loyalty) -> None:
    from django.db import connections

    from loyaltykit.django import connection

    with connection(using) as outer, connection(using) as inner:
        assert outer is inner
        first = connections[using].connection
        assert first is outer.connection.driver_connection.raw  # type: ignore[union-attr]
    connections[using].close()  # as Django does at the end of a request
    member = _member(own)
    with connection(using) as conn:
        assert connections[using].connection is not first
        assert conn.connection.driver_connection.raw is connections[using].connection  # type: ignore[union-attr]
        own.bind(conn).earn(member, 4, key=f"{member}-1")
    assert 4 == own.balance(member).available


def test_each_thread_writes_through_its_own_django_connection(urls: dict[str, str]) -> None:
    """Django keeps a connection per thread: so does the pool (PostgreSQL: a SQLite
    file's second writer would wait for the first one's lock)."""
    import threading

    from django.db import connections, transaction

    from loyaltykit.django import connection

    storage = SQLStorage.from_url(urls["pg"])
    shop = Loyalty(PROGRAM, storage)
    members = [_member(shop), _member(shop)]
    seen: list[Any] = []
    both_inside = threading.Barrier(2, timeout=30)

    def checkout(member: str) -> None:
        try:
            with transaction.atomic(using="pg"), connection("pg") as conn:
                seen.append(conn.connection.driver_connection.raw)  # type: ignore[union-attr]
                shop.bind(conn).earn(member, 6, key=f"{member}-1")
                both_inside.wait()  # both transactions open at once
        finally:
            connections.close_all()

    threads = [threading.Thread(target=checkout, args=(m,)) for m in members]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert 2 == len({id(raw) for raw in seen})
        assert [6, 6] == [shop.balance(m).available for m in members]
    finally:
        storage.dispose()


@pytest.mark.parametrize("using", ["nowhere", None, 1, "other"])
def test_a_database_loyaltykit_cannot_join_is_refused(urls: dict[str, str],
                                                      using: Any) -> None:
    from django.db import connections

    from loyaltykit.django import connection

    with pytest.raises(InvalidInput) as caught, connection(using):
        pass
    assert isinstance(caught.value, LoyaltyError | ValueError)
    assert not any(connections[alias].in_atomic_block for alias in ALIASES.values())


def test_without_joining_the_points_commit_alone(urls: dict[str, str]) -> None:
    """Why join: a facade on its own engine, called inside atomic(), commits its points
    though Django's row rolls back (PostgreSQL: on SQLite the second writer would wait
    for Django's lock instead)."""
    from django.db import transaction

    storage = SQLStorage.from_url(urls["pg"])
    try:
        shop = Loyalty(PROGRAM, storage)
        member = _member(shop)
        with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
            _insert_order("pg", f"{member}-1")
            shop.earn(member, 10, key=f"{member}-1")
            raise RuntimeError
        assert [] == _orders(urls, "pg", f"{member}-1")
        assert 10 == shop.balance(member).available
    finally:
        storage.dispose()


def test_importing_the_module_needs_no_django() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['django'] = None; import loyaltykit.django; "
            "print(loyaltykit.django.connection.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parent)
    assert "connection" == proc.stdout.strip(), proc.stderr
