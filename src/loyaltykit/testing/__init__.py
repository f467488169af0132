"""Test helpers shipped with loyaltykit, for its own suite and for third-party backends.

Modules here are imported explicitly (``from loyaltykit.testing.invariants import
check_invariants``); some need the ``test`` extra (Hypothesis, pytest) installed. The
storage contract is also importable from here (``from loyaltykit.testing import
StorageContract``, see :mod:`loyaltykit.testing.contract`); it is loaded on first use, so
importing this package alone never imports pytest.

For a shop's own test suite: :func:`assert_invariants` (is the ledger sound after my
flows?) and the pytest plugin :mod:`loyaltykit.testing.pytest_plugin` (fixtures
``loyalty``, ``loyalty_sqlite``, ``loyalty_clock`` ..., loaded by pytest on its own
once loyaltykit is installed); see ``docs/testing.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loyaltykit._member_keys import KeyedStorage
from loyaltykit.storage import Storage
from loyaltykit.testing.assertions import assert_invariants

if TYPE_CHECKING:
    from loyaltykit.testing.contract import (
        LedgerContract,
        OrderContract,
        OutboxContract,
        PrivacyContract,
        ReferralContract,
        StorageContract,
        TierContract,
    )

__all__ = [
    "LedgerContract",
    "OrderContract",
    "OutboxContract",
    "PrivacyContract",
    "ReferralContract",
    "StorageContract",
    "TierContract",
    "assert_invariants",
    "by_shop_ids",
]

#: The contract classes, loaded on first use (they import pytest).
_CONTRACTS = frozenset(name for name in __all__ if name.endswith("Contract"))


def by_shop_ids(storage: Storage) -> Storage:
    """``storage`` as the facade uses it: its units of work take and give the shop's
    member ids, while the stores keep member keys (DESIGN §11). For tests that look
    into the stores of a ledger a :class:`~loyaltykit.Loyalty` wrote. An id that has no
    key is used as it is (rows a test wrote straight to the stores)."""
    return KeyedStorage(storage, raw=True)


def __getattr__(name: str) -> Any:
    # the contract imports pytest: load it only when asked for
    if name in _CONTRACTS:
        from loyaltykit.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
