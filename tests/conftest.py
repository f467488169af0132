"""Shared pytest configuration for the loyaltykit test suite."""

from __future__ import annotations

import contextlib
import itertools
import os

from hypothesis import HealthCheck, settings

# ---------------------------------------------------------------------------
# Hypothesis profiles
# ---------------------------------------------------------------------------
# "ci" is loaded when the CI environment variable is set (CI runs .ci/run with
# CI=true); "dev" otherwise. Select one explicitly with
# `pytest --hypothesis-profile=NAME`.

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=50,
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

# the shipped test helpers and tests/_benchmarks.py assert; let pytest explain their failures
pytest.register_assert_rewrite("loyaltykit.testing", "_benchmarks")

from loyaltykit import Storage  # noqa: E402
from loyaltykit.memory import MemoryStorage  # noqa: E402

#: Every storage backend the suite runs against.
BACKENDS = ["memory", "sqlite", "postgresql"]

#: A PostgreSQL URL to test against; without it the suite starts a throwaway server.
POSTGRESQL_URL_VARIABLE = "LOYALTYKIT_TEST_POSTGRESQL_URL"


class _PostgreSQL:
    """The session's PostgreSQL: given by URL, or started on first use and stopped at
    the end of the session. Each storage handed out starts from empty tables."""

    def __init__(self) -> None:
        self.server: Any = None
        self.url: str | None = None
        self.engine: Any = None
        self._databases = itertools.count()

    def get_url(self) -> str:
        if self.url is None:
            url = os.environ.get(POSTGRESQL_URL_VARIABLE)
            if not url:
                from _postgres import PostgresServer, find_binaries

                binaries = find_binaries()
                if binaries is None:
                    raise RuntimeError(
                        "PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                        f"postgresql or set {POSTGRESQL_URL_VARIABLE}"
                    )
                self.server = PostgresServer(binaries)
                url = self.server.start()
            self.url = url
        return self.url

    def storage(self) -> Storage:
        from loyaltykit.sql import SQLStorage, create_engine

        if self.engine is None:
            self.engine = create_engine(self.get_url(), pool_size=10, max_overflow=30)
            SQLStorage(self.engine).upgrade()
        tables = ", ".join(t.name for t in SQLStorage.metadata.sorted_tables)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} CASCADE")
        return SQLStorage(self.engine)

    @contextlib.contextmanager
    def empty_database(self) -> Iterator[str]:
        """Create a new, empty database on the server; yield its URL; drop it after."""
        import sqlalchemy as sa

        url = sa.make_url(self.get_url())
        name = f"scratch_{os.getpid()}_{next(self._databases)}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            yield url.set(database=name).render_as_string(hide_password=False)
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            admin.dispose()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.server is not None:
            self.server.stop()


POSTGRESQL = _PostgreSQL()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    POSTGRESQL.stop()

StorageFactory = Callable[[], Storage]


def make_storage_factory(
    name: str, directory: Path
) -> tuple[StorageFactory, list[Callable[[], None]]]:
    """Return a factory of fresh, empty storages of backend ``name`` and the cleanups."""
    cleanups: list[Callable[[], None]] = []
    counter = iter(range(1_000_000))

    def factory() -> Storage:
        if name == "memory":
            return MemoryStorage()
        if name == "sqlite":
            from loyaltykit.sql import SQLStorage

            path = directory / f"ledger-{next(counter)}.sqlite"
            storage = SQLStorage.from_url(f"sqlite:///{path}")
            storage.create_schema()
            cleanups.append(storage.dispose)
            return storage
        if name == "postgresql":
            return POSTGRESQL.storage()
        raise ValueError(name)

    return factory, cleanups


#: The ``backend`` fixture's parameters. A test parametrised by backend pays a server
#: round trip per call on PostgreSQL, so those runs are ``slow``: the fast loop
#: (``-m "not slow"``) runs them on memory and SQLite, and reaches PostgreSQL through the
#: contract parts (tests/*/test_*_contract.py), which stay in it on all three backends.
BACKEND_PARAMS = [
    pytest.param(name, marks=pytest.mark.slow) if name == "postgresql" else name
    for name in BACKENDS
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def storage_factory(backend: str, tmp_path: Path) -> Iterator[StorageFactory]:
    """A callable that returns a fresh, empty storage of the backend under test."""
    factory, cleanups = make_storage_factory(backend, tmp_path)
    yield factory
    for cleanup in cleanups:
        cleanup()


@pytest.fixture
def storage(storage_factory: StorageFactory) -> Storage:
    """A fresh, empty storage of the backend under test."""
    return storage_factory()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An engine of the host's own on an empty database with loyaltykit's schema
    (SQLite file, then PostgreSQL): for tests that join a host's transaction."""
    import sqlalchemy as sa

    from loyaltykit.sql import SQLStorage, create_engine

    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            made = sa.create_engine(stack.enter_context(POSTGRESQL.empty_database()))
        else:
            made = create_engine(f"sqlite:///{tmp_path / 'host.sqlite'}")
        SQLStorage(made).create_schema()
        yield made
        made.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A SQLStorage on an empty database without loyaltykit's schema (a new SQLite file,
    then a new PostgreSQL database): for migration tests."""
    from loyaltykit.sql import SQLStorage

    if request.param == "sqlite":
        storage = SQLStorage.from_url(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
        yield storage
        storage.dispose()
        return
    with POSTGRESQL.empty_database() as url:
        storage = SQLStorage.from_url(url)
        yield storage
        storage.dispose()
