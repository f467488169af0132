"""Test helpers shipped with loyaltykit, for its own suite and for third-party backends.

Modules here are imported explicitly (``from loyaltykit.testing.invariants import
check_invariants``); some need the ``test`` extra (Hypothesis, pytest) installed. The
storage contract is also importable from here (``from loyaltykit.testing import
StorageContract``, see :mod:`loyaltykit.testing.contract`); it is loaded on first use, so
importing this package alone never imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loyaltykit.testing.contract import (
        LedgerContract,
        OrderContract,
        ReferralContract,
        StorageContract,
        TierContract,
    )

__all__ = [
    "LedgerContract",
    "OrderContract",
    "ReferralContract",
    "StorageContract",
    "TierContract",
]


def __getattr__(name: str) -> Any:
    # the contract imports pytest: load it only when asked for
    if name in __all__:
        from loyaltykit.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
