"""Shared Hypothesis strategies for loyaltykit's tests and for third-party backends.

This module imports :mod:`hypothesis`, which is not a runtime dependency of loyaltykit:
install the ``test`` extra (``pip install loyaltykit[test]``) to use it.

>>> from loyaltykit.testing.strategies import programs
>>> program = programs().example()  # doctest: +SKIP

Identifiers and keys avoid control characters and surrogates: a NUL is refused by
PostgreSQL, and what those characters do to a backend is a question for bad-input
tests, not for the ledger's invariants.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from loyaltykit._program import (
    ClawbackPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    LedgerPolicy,
    PendingPolicy,
    Program,
    SpendOrder,
)
from loyaltykit._values import MAX_KEY_LENGTH, Money

__all__ = [
    "TIME_ZONES",
    "clawback_policies",
    "clock_steps",
    "expiry_policies",
    "instants",
    "keys",
    "ledger_policies",
    "member_ids",
    "pending_policies",
    "points",
    "program_ids",
    "programs",
    "spend_orders",
    "time_zones",
    "ttls",
    "wallet_sets",
]

#: Time zones with something to trip over: none, DST, half- and quarter-hour offsets,
#: a zone east of the date line.
TIME_ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
)

_TEXT = st.characters(exclude_categories=("Cc", "Cs"))
_WORD = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))


def points(max_value: int = 1_000) -> st.SearchStrategy[int]:
    """Valid point amounts: ints from 1 to ``max_value``."""
    return st.integers(min_value=1, max_value=max_value)


def keys(max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid idempotency keys (non-blank, at most ``max_size`` characters)."""
    size = min(max_size, MAX_KEY_LENGTH)
    return st.text(_TEXT, min_size=1, max_size=size).filter(lambda k: bool(k.strip()))


def member_ids(max_size: int = 20) -> st.SearchStrategy[str]:
    """Valid member ids: one to three words joined by single spaces (so never with
    surrounding white space), at most ``max_size`` characters."""
    word = st.text(_WORD, min_size=1, max_size=8)
    return st.lists(word, min_size=1, max_size=3).map(" ".join).map(
        lambda m: m[:max_size].strip() or "m"
    )


def program_ids() -> st.SearchStrategy[str]:
    """Valid program ids (letters, digits and ``_.:-``, 1-64 characters)."""
    return st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)


def time_zones() -> st.SearchStrategy[str]:
    """IANA time zone names from :data:`TIME_ZONES`."""
    return st.sampled_from(TIME_ZONES)


def instants(
    min_value: dt.datetime = dt.datetime(2020, 1, 1),
    max_value: dt.datetime = dt.datetime(2035, 12, 31),
) -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware UTC instants between two naive bounds (microsecond precision)."""
    return st.datetimes(min_value=min_value, max_value=max_value, timezones=st.just(dt.UTC))


def spend_orders() -> st.SearchStrategy[SpendOrder]:
    """Any :class:`~loyaltykit.SpendOrder`."""
    return st.sampled_from(SpendOrder)


def clawback_policies() -> st.SearchStrategy[ClawbackPolicy]:
    """Any :class:`~loyaltykit.ClawbackPolicy`."""
    return st.sampled_from(ClawbackPolicy)


def expiry_policies() -> st.SearchStrategy[ExpiryPolicy]:
    """Expiry policies: never, after N days, or after N months; any rounding and start.

    Short periods are drawn often, so that lots expire within a test's clock moves
    (and while held)."""
    rounding = st.sampled_from(ExpiryRounding)
    start = st.sampled_from(ExpiryStart)
    return st.one_of(
        st.just(ExpiryPolicy()),
        st.builds(ExpiryPolicy, days=st.integers(0, 14) | st.integers(0, 400),
                  round_up_to=rounding, counted_from=start),
        st.builds(ExpiryPolicy, months=st.integers(0, 36), round_up_to=rounding,
                  counted_from=start),
    )


def pending_policies() -> st.SearchStrategy[PendingPolicy]:
    """Pending policies: none (half of the time), N days, or manual activation."""
    return st.one_of(
        st.just(PendingPolicy()),
        st.just(PendingPolicy()),
        st.builds(PendingPolicy, days=st.integers(1, 60)),
        st.just(PendingPolicy(manual=True)),
    )


def ledger_policies() -> st.SearchStrategy[LedgerPolicy]:
    """Ledger policies combining every expiry, pending, spend-order and clawback choice."""
    return st.builds(
        LedgerPolicy,
        expiry=expiry_policies(),
        pending=pending_policies(),
        spend_order=spend_orders(),
        clawback=clawback_policies(),
    )


def wallet_sets() -> st.SearchStrategy[tuple[str, ...]]:
    """Wallet tuples: the default single wallet, or two wallets."""
    return st.sampled_from([("points",), ("points", "credits")])


def programs(
    *,
    ids: st.SearchStrategy[str] | None = None,
    wallets: st.SearchStrategy[tuple[str, ...]] | None = None,
) -> st.SearchStrategy[Program]:
    """Valid programs with random ledger policies and time zone."""
    return st.builds(
        Program,
        id=ids if ids is not None else program_ids(),
        time_zone=time_zones(),
        currency=st.just("EUR"),
        point_value=st.just(Money("0.01", "EUR")),
        wallets=wallets if wallets is not None else wallet_sets(),
        ledger=ledger_policies(),
    )


def clock_steps() -> st.SearchStrategy[dt.timedelta]:
    """How far to move a test clock: minutes, hours, days, or months."""
    return st.one_of(
        st.integers(1, 59).map(lambda n: dt.timedelta(minutes=n)),
        st.integers(1, 23).map(lambda n: dt.timedelta(hours=n)),
        st.integers(1, 40).map(lambda n: dt.timedelta(days=n)),
        st.integers(1, 14).map(lambda n: dt.timedelta(days=30 * n + 1)),
    )


def ttls() -> st.SearchStrategy[dt.timedelta]:
    """Hold time-to-live values from a minute to a month."""
    return st.one_of(
        st.integers(1, 120).map(lambda n: dt.timedelta(minutes=n)),
        st.integers(1, 30).map(lambda n: dt.timedelta(days=n)),
    )
