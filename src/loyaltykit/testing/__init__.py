"""Test helpers shipped with loyaltykit, for its own suite and for third-party backends.

Modules here are imported explicitly (``from loyaltykit.testing.invariants import
check_invariants``); some need the ``test`` extra (Hypothesis, pytest) installed.
"""
