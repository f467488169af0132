"""Customers drawn from the models themselves: to test a fit (does it recover the
parameters it was drawn with?) and to size one (how long for a million customers?)."""

from __future__ import annotations

from typing import Any

import numpy as np

from loyaltykit._errors import InvalidInput, shown
from loyaltykit.analytics._checks import as_float_array, check_number
from loyaltykit.analytics._summary import Summary

__all__ = ["simulate"]

#: At most this many customers in one draw.
MAX_CUSTOMERS = 50_000_000


def simulate(customers: int, *, r: float, alpha: float, a: float, b: float, T: Any,
             spend: tuple[float, float, float] | None = None,
             seed: int | None = None) -> Summary:
    """A :class:`Summary` of ``customers`` drawn from BG/NBD with parameters
    ``r, alpha, a, b`` (and, with ``spend = (p, q, v)``, average values from
    Gamma-Gamma), each observed for ``T`` (a number, or one per customer), in weeks.

    Vectorised, no loop per customer: a rate λ ~ Gamma(r, α) and a drop-out probability
    p ~ Beta(a, b) each; the number of repeat purchases before dropping out
    J ~ Geometric(p) (1, 2, ...); N ~ Poisson(λT) purchases in ``(0, T]`` if alive
    throughout, so ``x = min(N, J)`` and, given N, ``t_x`` is the x-th of N uniform
    points: ``T · Beta(x, N - x + 1)``. The average of ``x`` purchases of a customer
    with ν ~ Gamma(q, v) is Gamma(p·x, ν·x). ``seed`` makes the draw repeatable."""
    if isinstance(customers, bool) or not isinstance(customers, int) \
            or not 1 <= customers <= MAX_CUSTOMERS:
        raise InvalidInput(f"customers must be an int from 1 to {MAX_CUSTOMERS}",
                           customers=shown(customers))
    params = [check_number(v, name, low=0.0, low_open=True, high=1e6)
              for name, v in (("r", r), ("alpha", alpha), ("a", a), ("b", b))]
    ages = np.broadcast_to(as_float_array(T, "T"), (customers,)).astype(np.float64)
    if (ages <= 0).any():
        raise InvalidInput("T must be > 0", T=shown(T))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInput("seed must be an int", seed=shown(seed))
    rng = np.random.default_rng(seed)
    r_, alpha_, a_, b_ = params
    rate = rng.gamma(r_, 1.0 / alpha_, customers)
    drop = np.clip(rng.beta(a_, b_, customers), 1e-12, 1.0)
    lifetime_purchases = rng.geometric(drop)
    alive_purchases = rng.poisson(rate * ages)
    x = np.minimum(alive_purchases, lifetime_purchases)
    repeat = x > 0
    share = rng.beta(np.where(repeat, x, 1), np.where(repeat, alive_purchases - x + 1, 1))
    t_x = np.where(repeat, ages * share, 0.0)
    monetary = np.zeros(customers)
    if spend is not None:
        p, q, v = (check_number(val, name, low=0.0, low_open=True, high=1e9)
                   for name, val in zip(("p", "q", "v"), spend, strict=True))
        nu = rng.gamma(q, 1.0 / v, customers)
        draws = rng.gamma(np.where(repeat, p * x, 1.0), 1.0 / (nu * np.maximum(x, 1)))
        monetary = np.where(repeat, draws, 0.0)
    return Summary.of(x, t_x, ages, monetary, member_ids=[str(i) for i in range(customers)])
