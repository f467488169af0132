"""Moved to :mod:`loyaltykit.testing.contract.tiers`; this name stays importable."""

from __future__ import annotations

from loyaltykit.testing.contract.tiers import TierContract, replay_tiers, tier_program

__all__ = ["TierContract", "replay_tiers", "tier_program"]
