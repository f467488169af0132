"""Moved to :mod:`loyaltykit.testing.contract.referrals`; this name stays importable."""

from __future__ import annotations

from loyaltykit.testing.contract.referrals import (
    SECRET,
    ReferralContract,
    referral_program,
    symbols,
)

__all__ = ["SECRET", "ReferralContract", "referral_program", "symbols"]
