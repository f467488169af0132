"""BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): how many
purchases a customer makes, and whether they are still a customer.

While alive, a customer buys at Poisson rate λ ~ Gamma(r, α); after each repeat
purchase they drop out with probability p ~ Beta(a, b). For one customer with ``x``
repeat purchases, the last at ``t_x``, observed for ``T``, the likelihood (their eq. 6) is

    L = B(a, b+x)/B(a, b) · Γ(r+x)/Γ(r) · α^r / (α+T)^(r+x)
        + [x > 0] · B(a+1, b+x-1)/B(a, b) · Γ(r+x)/Γ(r) · α^r / (α+t_x)^(r+x)

evaluated in log space (``gammaln``, ``betaln``, ``logaddexp``) and maximised over
``log r, log α, log a, log b`` by L-BFGS-B with the analytic gradient (``digamma``).
Customers with equal ``(x, t_x, T)`` are weighted into one row, and the terms that
depend on ``x`` only are computed once per distinct ``x``: no Python loop per customer.
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs
import numpy as np
from scipy import optimize, special

from loyaltykit._errors import InvalidSummary
from loyaltykit._json import JsonForm
from loyaltykit.analytics._checks import (
    FloatArray,
    IntArray,
    as_float_array,
    check_number,
    check_rfm,
)
from loyaltykit.analytics._summary import Summary

__all__ = ["BGNBDFit", "fit_bgnbd"]

#: Bounds of the optimiser on the logs of the parameters (e^±30: far past any data).
_LOG_BOUND = 30.0


@attrs.frozen
class BGNBDFit(JsonForm):
    """A BG/NBD model fitted by maximum likelihood (:func:`fit_bgnbd`).

    ``r``, ``alpha`` (in the summary's time unit): the Gamma distribution of purchase
    rates; ``a``, ``b``: the Beta distribution of the drop-out probability;
    ``log_likelihood`` at the optimum (natural log, the summary's unit); ``converged``:
    whether the optimiser met its tolerance (check it before using the fit);
    ``customers``: how many were fitted; ``seconds``: the fit's wall time.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    customers: int
    unit: str = "weeks"
    seconds: float = attrs.field(default=0.0, eq=False)

    def expected_purchases(self, t: Any, x: Any, t_x: Any, T: Any) -> FloatArray:
        """E[Y(t) | x, t_x, T]: a customer's expected purchases in the next ``t`` (FHL
        eq. 10), vectorised over the customers (array-likes of one length, or
        numbers)::

            (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; z)]
            / (1 + [x > 0] · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)),   z = t/(α+T+t)

        The hypergeometric part is taken through Euler's transformation,
        ``(1-z)^(a-1) ₂F₁(a+b-1-r, a-1; a+b+x-1; z)``, whose parameters stay small and
        whose series converges on ``0 <= z < 1`` however large ``x`` is; the
        denominator in log space (no overflow for large ``x``)."""
        horizon = _horizon(t)
        xs, txs, Ts = check_rfm(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = horizon / (alpha + Ts + horizon)
        c = a + b + xs - 1
        bracket = 1.0 - np.exp((a - 1.0) * np.log1p(-z)) * special.hyp2f1(
            a + b - 1.0 - r, a - 1.0, c, z)
        numerator = c / (a - 1.0) * bracket
        return np.asarray(numerator * self.probability_alive(xs, txs, Ts), dtype=np.float64)

    def probability_alive(self, x: Any, t_x: Any, T: Any) -> FloatArray:
        """P(alive | x, t_x, T) at the end of calibration (FHL 2008 note): 1 for a
        customer without repeat purchases, else
        ``1 / (1 + a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))``, computed in log space."""
        xs, txs, Ts = check_rfm(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = (math.log(a) - np.log(np.maximum(b + xs - 1.0, 1e-300))
                        + (r + xs) * (np.log(alpha + Ts) - np.log(alpha + txs)))
        alive = np.where(xs > 0, special.expit(-log_odds), 1.0)
        return np.asarray(alive, dtype=np.float64)

    def population_expected_purchases(self, t: Any) -> FloatArray:
        """E[X(t)]: expected purchases in ``t`` of a customer just acquired (FHL eq. 9),
        ``(a+b-1)/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b; a+b-1; t/(α+t))]`` (through the
        same transformation)."""
        ts = as_float_array(t, "t")
        if (ts < 0).any():
            raise InvalidSummary("t must be >= 0", field="t")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = ts / (alpha + ts)
        bracket = 1.0 - np.exp((a - 1.0) * np.log1p(-z)) * special.hyp2f1(
            a + b - 1.0 - r, a - 1.0, a + b - 1.0, z)
        return np.asarray((a + b - 1.0) / (a - 1.0) * bracket, dtype=np.float64)

    def log_likelihood_of(self, x: Any, t_x: Any, T: Any) -> FloatArray:
        """Each customer's log-likelihood under this fit."""
        xs, txs, Ts = check_rfm(x, t_x, T)
        params = np.log([self.r, self.alpha, self.a, self.b])
        ll, _ = _log_likelihood(params, xs, txs, Ts, gradient=False)
        return ll


def _horizon(t: Any) -> FloatArray:
    ts = as_float_array(t, "t")
    if (ts < 0).any():
        raise InvalidSummary("t (the horizon) must be >= 0", field="t")
    return ts


def _log_likelihood(params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray,
                    *, gradient: bool = True, distinct: tuple[FloatArray, IntArray] | None = None
                    ) -> tuple[FloatArray, FloatArray | None]:
    """Per-row log-likelihoods at ``params = log(r, α, a, b)`` and, with ``gradient``,
    their derivatives by the log-parameters (rows x 4). Terms that depend on ``x``
    only are evaluated once per distinct ``x`` (``distinct``: the distinct values and
    each row's index among them, when the caller has them)."""
    r, alpha, a, b = np.exp(params)
    xu, xi = np.unique(x, return_inverse=True) if distinct is None else distinct
    repeat_u = xu > 0
    # per distinct x
    base_u = special.gammaln(r + xu) - special.gammaln(r) + r * math.log(alpha)
    beta_ab = special.betaln(a, b)
    b1_u = special.betaln(a, b + xu) - beta_ab
    b2_u = np.where(repeat_u, special.betaln(a + 1.0, b + np.maximum(xu - 1.0, 0.0))
                    - beta_ab, -np.inf)
    c = r + x
    log_T = np.log(alpha + T)
    log_tx = np.log(alpha + t_x)
    term1 = b1_u[xi] - c * log_T
    term2 = b2_u[xi] - c * log_tx
    total = np.logaddexp(term1, term2)
    ll = base_u[xi] + total
    if not gradient:
        return ll, None
    w2 = np.exp(term2 - total)  # share of the "dropped out after t_x" term
    w1 = 1.0 - w2
    psi_ab = special.digamma(a + b)
    psi_abx_u = special.digamma(a + b + xu)
    # d/dr
    d_r = (special.digamma(r + xu) - special.digamma(r) + math.log(alpha))[xi] \
        - w1 * log_T - w2 * log_tx
    # d/dα
    d_alpha = r / alpha - c * (w1 / (alpha + T) + w2 / (alpha + t_x))
    # d/da, d/db of the two Beta ratios
    da1_u = psi_ab - psi_abx_u
    da2_u = special.digamma(a + 1.0) - special.digamma(a) + psi_ab - psi_abx_u
    db1_u = special.digamma(b + xu) - psi_abx_u - special.digamma(b) + psi_ab
    db2_u = np.where(repeat_u, special.digamma(b + np.maximum(xu - 1.0, 0.0))
                     - psi_abx_u - special.digamma(b) + psi_ab, 0.0)
    d_a = w1 * da1_u[xi] + w2 * da2_u[xi]
    d_b = w1 * db1_u[xi] + w2 * db2_u[xi]
    grad = np.empty((x.size, 4))
    grad[:, 0] = d_r * r
    grad[:, 1] = d_alpha * alpha
    grad[:, 2] = d_a * a
    grad[:, 3] = d_b * b
    return ll, grad


def _compress(x: FloatArray, t_x: FloatArray, T: FloatArray
              ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Distinct ``(x, t_x, T)`` rows and how many customers share each (one lexsort)."""
    order = np.lexsort((T, t_x, x))
    xs, txs, Ts = x[order], t_x[order], T[order]
    new = np.ones(x.size, dtype=bool)
    new[1:] = (xs[1:] != xs[:-1]) | (txs[1:] != txs[:-1]) | (Ts[1:] != Ts[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, x.size)).astype(np.float64)
    return xs[starts], txs[starts], Ts[starts], counts


def fit_bgnbd(summary: Summary, *, max_iterations: int = 1000) -> BGNBDFit:
    """Fit BG/NBD to ``summary`` by maximum likelihood (see the module docstring).

    The times are rescaled so the longest ``T`` is 10 while optimising (for a
    well-conditioned problem); ``alpha`` and the log-likelihood are reported in the
    summary's unit. ``converged`` is False when L-BFGS-B stopped short of its
    tolerance (e.g. at ``max_iterations``); the fit is still the best point found."""
    if not isinstance(summary, Summary):
        raise InvalidSummary("summary must be a Summary (see analytics.summary)",
                             field="summary")
    iterations = int(check_number(max_iterations, "max_iterations", low=1, high=10**6))
    started = time.perf_counter()
    x = summary.x.astype(np.float64)
    t_x, T = summary.t_x, summary.T
    scale = 10.0 / float(T.max()) if float(T.max()) > 0 else 1.0
    xs, txs, Ts, weights = _compress(x, t_x * scale, T * scale)
    total_weight = float(weights.sum())

    distinct = np.unique(xs, return_inverse=True)

    def objective(params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = _log_likelihood(params, xs, txs, Ts, distinct=distinct)
        assert grad is not None
        return (-float(weights @ ll) / total_weight,
                -(weights @ grad) / total_weight)

    result = optimize.minimize(objective, np.zeros(4), jac=True, method="L-BFGS-B",
                               bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
                               options={"maxiter": iterations, "ftol": 1e-14, "gtol": 1e-9})
    r, alpha_scaled, a, b = (float(v) for v in np.exp(result.x))
    alpha = alpha_scaled / scale
    params = np.log([r, alpha, a, b])
    ll, _ = _log_likelihood(params, x, t_x, T, gradient=False)
    log_likelihood = float(ll.sum())
    return BGNBDFit(r, alpha, a, b, log_likelihood,
                    bool(result.success) and math.isfinite(log_likelihood),
                    len(summary), summary.unit, time.perf_counter() - started)
