"""Predictive customer lifetime value: BG/NBD and Gamma-Gamma (DESIGN §9, docs/reports.md).

Needs numpy and scipy, which the core package does not install:
``pip install loyaltykit[analytics]``. Without them, importing this module raises
:class:`~loyaltykit.AnalyticsUnavailable` (an ``ImportError``); ``import loyaltykit``
never imports them.

The path from a program's orders to a value per member:

1. :func:`summary_from` (or :func:`summary` over any purchases): per member, repeat
   purchase days ``x``, recency ``t_x``, age ``T`` (weeks by default) and the average
   value of the repeat days, as a columnar :class:`Summary`;
2. :func:`fit_bgnbd` and :func:`fit_gamma_gamma`: maximum likelihood, in log space,
   vectorised over customers (:class:`BGNBDFit`, :class:`GammaGammaFit`);
3. :func:`clv`: expected purchases, probability alive, expected value over a horizon
   and historical spend per member (:class:`CustomerValues`).

:func:`simulate` draws customers from the models themselves (to test and size a fit).

Checked against Fader, Hardie & Lee's published CDNOW figures (tests/analytics).
"""

from __future__ import annotations

from loyaltykit._errors import AnalyticsUnavailable

for _module in ("numpy", "scipy.optimize", "scipy.special"):
    try:
        __import__(_module)
    except ImportError as _exc:
        raise AnalyticsUnavailable(
            "loyaltykit.analytics needs numpy and scipy: pip install loyaltykit[analytics]",
            missing=_module) from _exc

from loyaltykit.analytics._bgnbd import BGNBDFit, fit_bgnbd  # noqa: E402
from loyaltykit.analytics._clv import CustomerValue, CustomerValues, clv  # noqa: E402
from loyaltykit.analytics._gamma_gamma import GammaGammaFit, fit_gamma_gamma  # noqa: E402
from loyaltykit.analytics._simulate import simulate  # noqa: E402
from loyaltykit.analytics._summary import Summary, summary, summary_from  # noqa: E402

__all__ = [
    "BGNBDFit",
    "CustomerValue",
    "CustomerValues",
    "GammaGammaFit",
    "Summary",
    "clv",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "simulate",
    "summary",
    "summary_from",
]
