"""Customer lifetime value per member: historical (net spend to date) and predictive
(BG/NBD purchases x Gamma-Gamma value over a horizon)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from loyaltykit._errors import InvalidInput, InvalidSummary, shown
from loyaltykit._json import JsonForm
from loyaltykit._values import Money
from loyaltykit.analytics._bgnbd import BGNBDFit
from loyaltykit.analytics._checks import FloatArray, check_number
from loyaltykit.analytics._gamma_gamma import GammaGammaFit
from loyaltykit.analytics._summary import Summary

__all__ = ["MAX_STEPS", "CustomerValue", "CustomerValues", "clv"]

#: At most this many discounting steps in one horizon.
MAX_STEPS = 10_000


@attrs.frozen
class CustomerValue(JsonForm):
    """One member's row of :class:`CustomerValues` (model estimates are floats in the
    currency's units; ``historical`` is exact)."""

    member_id: str
    expected_purchases: float
    probability_alive: float
    expected_average_value: float
    expected_value: float
    historical: Money | None


@attrs.frozen(eq=False)
class CustomerValues(JsonForm):
    """:func:`clv`'s answer, as columns in the summary's member order.

    ``expected_purchases``: E[Y(horizon) | x, t_x, T]; ``probability_alive``;
    ``expected_average_value``: E[M | x, m] (Gamma-Gamma); ``expected_value``: the
    predictive CLV over the horizon (see :func:`clv` for the formula); ``historical``:
    net spend in the summary's period (``None`` when the summary has no spend).
    """

    member_ids: tuple[str, ...]
    expected_purchases: FloatArray
    probability_alive: FloatArray
    expected_average_value: FloatArray
    expected_value: FloatArray
    historical: tuple[Money, ...] | None
    horizon: float
    discount_rate: float
    step: float
    unit: str

    def __len__(self) -> int:
        return len(self.member_ids)

    def rows(self) -> Iterator[CustomerValue]:
        """One :class:`CustomerValue` per member, in order."""
        for i, member_id in enumerate(self.member_ids):
            yield CustomerValue(
                member_id, float(self.expected_purchases[i]),
                float(self.probability_alive[i]), float(self.expected_average_value[i]),
                float(self.expected_value[i]),
                None if self.historical is None else self.historical[i])


def clv(summary: Summary, purchases: BGNBDFit, value: GammaGammaFit, *, horizon: Any,
        discount_rate: Any = 0.0, step: Any = None) -> CustomerValues:
    """Per member: expected purchases, probability alive, expected average value and
    expected value over ``horizon`` (in the summary's unit), plus net spend to date.

    ``expected_value = E[M] · Σ_{k=1..K} (E[Y(t_k)] - E[Y(t_{k-1})]) / (1+d)^k`` with
    ``t_k = min(k·step, horizon)``, ``K = ⌈horizon / step⌉``, ``d = discount_rate`` per
    ``step`` (purchases expected in a step are discounted to its end) and
    ``E[M] = value.expected_average_value(x, monetary)``. With ``d = 0`` (the default)
    it is ``E[Y(horizon)] · E[M]``; ``step`` defaults to the whole horizon. At most
    :data:`MAX_STEPS` steps. Bad arguments: :class:`~loyaltykit.InvalidInput`."""
    if not isinstance(summary, Summary):
        raise InvalidSummary("summary must be a Summary", field="summary")
    if not isinstance(purchases, BGNBDFit):
        raise InvalidInput("purchases must be a BGNBDFit", purchases=shown(purchases))
    if not isinstance(value, GammaGammaFit):
        raise InvalidInput("value must be a GammaGammaFit", value=shown(value))
    if purchases.unit != summary.unit:
        raise InvalidInput("the fit and the summary count time in different units",
                           fit=purchases.unit, summary=summary.unit)
    h = check_number(horizon, "horizon", low=0.0, low_open=True, high=1e9)
    d = check_number(discount_rate, "discount_rate", low=0.0, high=1e6)
    length = h if step is None else check_number(step, "step", low=0.0, low_open=True,
                                                 high=1e9)
    steps = math.ceil(h / length - 1e-12)
    if steps > MAX_STEPS:
        raise InvalidInput(f"at most {MAX_STEPS} steps in a horizon", horizon=h, step=length)
    x, t_x, T = summary.x, summary.t_x, summary.T
    alive = purchases.probability_alive(x, t_x, T)
    average = value.expected_average_value(x, summary.monetary)
    total = np.zeros(len(summary))
    before = np.zeros(len(summary))
    for k in range(1, steps + 1):
        upto = purchases.expected_purchases(min(k * length, h), x, t_x, T)
        total += (upto - before) / (1.0 + d) ** k
        before = upto
    return CustomerValues(summary.member_ids, before, alive, average, total * average,
                          summary.spend, h, d, length, summary.unit)
