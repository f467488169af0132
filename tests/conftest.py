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
