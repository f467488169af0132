"""Shared pytest configuration for the loyaltykit test suite."""

from __future__ import annotations

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

import pytest  # noqa: E402

# the shipped test helpers assert; let pytest explain their failures
pytest.register_assert_rewrite("loyaltykit.testing")

from loyaltykit import Storage  # noqa: E402
from loyaltykit.memory import MemoryStorage  # noqa: E402

#: Every storage backend the suite runs against. PostgreSQL joins in a later issue.
BACKENDS = ["memory", "sqlite"]

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
        raise ValueError(name)

    return factory, cleanups


@pytest.fixture(params=BACKENDS)
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
