"""Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves"): the
value of a customer's purchases.

Each purchase's value is Gamma(p, ν), a customer's ν is Gamma(q, v). For a customer
with ``x`` repeat purchases of average value ``m`` the density of ``m`` is

    Γ(px+q) / (Γ(px) Γ(q)) · v^q · m^(px-1) · x^(px) / (v + x·m)^(px+q)

maximised in log space over ``log p, log q, log v`` by L-BFGS-B with the analytic
gradient, on the customers with ``x > 0`` and ``m > 0`` (the model's support).
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
from loyaltykit.analytics._checks import FloatArray, as_float_array, check_number
from loyaltykit.analytics._summary import Summary

__all__ = ["GammaGammaFit", "fit_gamma_gamma"]

_LOG_BOUND = 30.0


@attrs.frozen
class GammaGammaFit(JsonForm):
    """A Gamma-Gamma spend model fitted by maximum likelihood (:func:`fit_gamma_gamma`).

    ``p``, ``q``, ``v`` as in the module docstring (``v`` in the currency's units);
    ``log_likelihood`` at the optimum; ``converged``; ``customers``: the repeat
    customers fitted; ``seconds``: the fit's wall time.
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    converged: bool
    customers: int
    seconds: float = attrs.field(default=0.0, eq=False)

    @property
    def mean(self) -> float:
        """The population's mean purchase value ``p·v / (q-1)`` (infinite when
        ``q <= 1``): the expected average value of a customer without repeat
        purchases."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else math.inf

    def expected_average_value(self, x: Any, monetary: Any) -> FloatArray:
        """E[M | x, m]: a customer's expected average purchase value,
        ``p·(v + x·m) / (p·x + q - 1)``, a weighted mean of the population's mean and
        the customer's own average ``m`` (the mean alone for ``x == 0``)."""
        xs = as_float_array(x, "x")
        ms = as_float_array(monetary, "monetary")
        try:
            xs, ms = np.broadcast_arrays(xs, ms)
        except ValueError as exc:
            raise InvalidSummary("x and monetary must have the same length",
                                 field="monetary") from exc
        if ((xs < 0) | (xs != np.floor(xs))).any():
            raise InvalidSummary("x must be a whole number >= 0", field="x")
        if (ms < 0).any():
            raise InvalidSummary("monetary must be >= 0", field="monetary")
        p, q, v = self.p, self.q, self.v
        with np.errstate(divide="ignore", invalid="ignore"):
            value = p * (v + xs * ms) / (p * xs + q - 1.0)
        return np.asarray(np.where(xs > 0, value, self.mean), dtype=np.float64)


def _log_likelihood(params: FloatArray, x: FloatArray, m: FloatArray, log_m: FloatArray,
                    log_x: FloatArray) -> tuple[FloatArray, FloatArray]:
    p, q, v = np.exp(params)
    px = p * x
    log_vxm = np.log(v + x * m)
    ll = (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q)
          + q * math.log(v) + (px - 1.0) * log_m + px * log_x - (px + q) * log_vxm)
    psi_pxq = special.digamma(px + q)
    d_p = x * (psi_pxq - special.digamma(px) + log_m + log_x - log_vxm)
    d_q = psi_pxq - special.digamma(q) + math.log(v) - log_vxm
    d_v = q / v - (px + q) / (v + x * m)
    return ll, np.stack([d_p * p, d_q * q, d_v * v], axis=1)


def fit_gamma_gamma(summary: Summary, *, max_iterations: int = 1000) -> GammaGammaFit:
    """Fit Gamma-Gamma to the repeat customers of ``summary`` (``x > 0`` and
    ``monetary > 0``) by maximum likelihood. Values are rescaled by their mean while
    optimising; ``v`` and the log-likelihood are reported in the currency's units.
    Without such a customer: :class:`~loyaltykit.InvalidSummary`."""
    if not isinstance(summary, Summary):
        raise InvalidSummary("summary must be a Summary (see analytics.summary)",
                             field="summary")
    iterations = int(check_number(max_iterations, "max_iterations", low=1, high=10**6))
    started = time.perf_counter()
    keep = (summary.x > 0) & (summary.monetary > 0)
    if not keep.any():
        raise InvalidSummary("no repeat customers with a positive average value to fit",
                             field="monetary")
    x = summary.x[keep].astype(np.float64)
    m = summary.monetary[keep]
    scale = 1.0 / float(m.mean())
    ms = m * scale
    log_ms, log_x = np.log(ms), np.log(x)
    n = float(x.size)

    def objective(params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = _log_likelihood(params, x, ms, log_ms, log_x)
        return -float(ll.sum()) / n, -grad.sum(axis=0) / n

    result = optimize.minimize(objective, np.array([0.0, math.log(2.0), 0.0]), jac=True,
                               method="L-BFGS-B", bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 3,
                               options={"maxiter": iterations, "ftol": 1e-14, "gtol": 1e-9})
    p, q, v_scaled = (float(val) for val in np.exp(result.x))
    v = v_scaled / scale
    ll, _ = _log_likelihood(np.log([p, q, v]), x, m, np.log(m), log_x)
    log_likelihood = float(ll.sum())
    return GammaGammaFit(p, q, v, log_likelihood,
                         bool(result.success) and math.isfinite(log_likelihood),
                         int(x.size), time.perf_counter() - started)
