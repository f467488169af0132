"""BG/NBD and Gamma-Gamma by maximum likelihood: the published CDNOW figures (scenario
A5), parameters recovered from customers drawn from the models, the predictions'
formulas, CLV, and typed refusals."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from scipy import special

from loyaltykit import InvalidInput, InvalidSummary, Money, Purchase
from loyaltykit.analytics import (
    BGNBDFit,
    GammaGammaFit,
    Summary,
    _bgnbd,
    _gamma_gamma,
    clv,
    fit_bgnbd,
    fit_gamma_gamma,
    simulate,
    summary,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "cdnow"


@pytest.fixture(scope="module")
def published() -> Summary:
    """cdnow_customers_summary.csv as published (no values)."""
    with (DATA / "cdnow_customers_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    return Summary.of([int(r["frequency"]) for r in rows], [float(r["recency"]) for r in rows],
                      [float(r["T"]) for r in rows], member_ids=[r["ID"] for r in rows])


@pytest.fixture(scope="module")
def cdnow() -> Summary:
    """The summary of CDNOW_sample.txt's purchases (with values), calibration to
    1997-09-30, days in UTC."""
    purchases = []
    for i, line in enumerate((DATA / "CDNOW_sample.txt").read_text().splitlines()):
        _, member, day, _, value = line.split()
        placed = dt.datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=dt.UTC)
        purchases.append(Purchase(member, str(i), placed, Money(value, "USD")))
    return summary(purchases, end=dt.datetime(1997, 10, 1, tzinfo=dt.UTC), time_zone="UTC")


@pytest.fixture(scope="module")
def fitted(published: Summary) -> BGNBDFit:
    return fit_bgnbd(published)


# -- A5: the published figures --------------------------------------------------------------


def test_bgnbd_on_cdnow_gives_the_published_parameters(fitted: BGNBDFit) -> None:
    assert fitted.converged
    assert (2357, "weeks") == (fitted.customers, fitted.unit)
    for name, expected in (("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)):
        assert abs(getattr(fitted, name) - expected) <= 0.001, name
    assert abs(fitted.log_likelihood - -9582.4) <= 0.1


def test_conditional_expectation_of_the_published_customer(fitted: BGNBDFit) -> None:
    assert abs(float(fitted.expected_purchases(39, 2, 30.43, 38.86)) - 1.226) <= 0.001


def test_gamma_gamma_on_the_946_repeat_customers(cdnow: Summary) -> None:
    assert 946 == int((cdnow.x > 0).sum())
    fit = fit_gamma_gamma(cdnow)
    assert (True, 946) == (fit.converged, fit.customers)
    assert abs(fit.p - 6.25) <= 0.01
    assert abs(fit.q - 3.74) <= 0.01
    assert abs(fit.v - 15.44) <= 0.01
    # maximum likelihood on exactly these values (SCENARIOS A5)
    assert (6.2496, 3.7442, 15.4435) == (round(fit.p, 4), round(fit.q, 4), round(fit.v, 4))


# -- other numbers: parameters drawn, then recovered ------------------------------------


def test_bgnbd_recovers_the_parameters_it_was_drawn_with() -> None:
    truth = {"r": 0.6, "alpha": 9.0, "a": 1.4, "b": 4.0}
    drawn = simulate(200_000, T=np.arange(200_000) % 365 / 7 + 8, seed=7, **truth)
    fit = fit_bgnbd(drawn)
    assert fit.converged
    for name, value in truth.items():
        assert abs(getattr(fit, name) / value - 1) <= 0.05, (name, getattr(fit, name))
    # the maximum: the log-likelihood there beats the truth's
    at_truth = BGNBDFit(**truth, log_likelihood=0.0, converged=True, customers=0)
    assert fit.log_likelihood >= float(at_truth.log_likelihood_of(
        drawn.x, drawn.t_x, drawn.T).sum())


def test_gamma_gamma_recovers_the_parameters_it_was_drawn_with() -> None:
    drawn = simulate(300_000, r=2.0, alpha=5.0, a=0.5, b=5.0, T=30, spend=(3.0, 5.0, 40.0),
                     seed=11)
    fit = fit_gamma_gamma(drawn)
    assert fit.converged
    for got, value in ((fit.p, 3.0), (fit.q, 5.0), (fit.v, 40.0)):
        assert abs(got / value - 1) <= 0.05, (got, value)


# -- the likelihoods' gradients ----------------------------------------------------------


def test_bgnbd_gradient_matches_finite_differences(published: Summary) -> None:
    x = published.x.astype(float)
    params = np.log([0.4, 3.0, 0.9, 2.0])
    _, grad = _bgnbd._log_likelihood(params, x, published.t_x, published.T)
    assert grad is not None
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-6
        up, _ = _bgnbd._log_likelihood(params + step, x, published.t_x, published.T)
        down, _ = _bgnbd._log_likelihood(params - step, x, published.t_x, published.T)
        assert float((up - down).sum() / 2e-6) == pytest.approx(float(grad[:, k].sum()),
                                                                rel=1e-6)


def test_gamma_gamma_gradient_matches_finite_differences(cdnow: Summary) -> None:
    keep = cdnow.x > 0
    x, m = cdnow.x[keep].astype(float), cdnow.monetary[keep]
    params = np.log([3.0, 2.0, 10.0])

    def ll(p: Any) -> Any:
        return _gamma_gamma._log_likelihood(p, x, m, np.log(m), np.log(x))

    _, grad = ll(params)
    for k in range(3):
        step = np.zeros(3)
        step[k] = 1e-6
        numeric = (ll(params + step)[0] - ll(params - step)[0]).sum() / 2e-6
        assert float(numeric) == pytest.approx(float(grad[:, k].sum()), rel=1e-6)


# -- predictions ---------------------------------------------------------------------------


FIT = BGNBDFit(r=0.5, alpha=6.0, a=1.7, b=3.2, log_likelihood=0.0, converged=True,
               customers=1)


def _direct(fit: BGNBDFit, t: float, x: int, t_x: float, T: float) -> float:
    """FHL eq. 10 as printed (the hypergeometric untransformed)."""
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(
        r + x, b + x, a + b + x - 1, z)
    odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return float(head * body / (1 + odds))


@pytest.mark.parametrize(("t", "x", "t_x", "T"), [
    (39, 2, 30.43, 38.86), (10, 0, 0, 20), (52, 7, 40, 41), (1, 1, 0.5, 60), (100, 3, 5, 50),
])
def test_conditional_expectation_is_fhl_equation_10(t: float, x: int, t_x: float,
                                                    T: float) -> None:
    for fit in (FIT, attrs.evolve(FIT, a=0.6)):  # a on either side of 1
        got = float(fit.expected_purchases(t, x, t_x, T))
        assert got == pytest.approx(_direct(fit, t, x, t_x, T), rel=1e-9)


def _log_hyp2f1_series(A: float, B: float, C: float, z: float, terms: int = 200_000) -> float:
    """log ₂F₁(A, B; C; z) for positive A, B, C and 0 <= z < 1, by summing its
    (positive) series in log space: slow, but never overflows."""
    k = np.arange(terms, dtype=np.float64)
    log_ratio = np.log(A + k) + np.log(B + k) - np.log(C + k) - np.log1p(k) + math.log(z)
    log_terms = np.concatenate([[0.0], np.cumsum(log_ratio)[:-1]])
    return float(special.logsumexp(log_terms))


def test_large_counts_stay_finite_where_the_printed_formula_overflows() -> None:
    t, x, t_x, T = 52.0, 2000, 51.9, 52.0
    got = FIT.expected_purchases(t, [300, x], [51.5, t_x], [T, T])
    assert np.isfinite(got).all()
    with np.errstate(all="ignore"):
        assert not math.isfinite(_direct(FIT, t, x, t_x, T))  # as printed: inf / nan
    # the printed formula again, its hypergeometric summed in log space
    r, alpha, a, b = FIT.r, FIT.alpha, FIT.a, FIT.b
    log_part = (r + x) * math.log((alpha + T) / (alpha + T + t)) + _log_hyp2f1_series(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    odds = a / (b + x - 1) * math.exp((r + x) * math.log((alpha + T) / (alpha + t_x)))
    expected = (a + b + x - 1) / (a - 1) * (1 - math.exp(log_part)) / (1 + odds)
    assert float(got[1]) == pytest.approx(expected, rel=1e-7)


def test_population_expectation_and_probability_alive() -> None:
    t = np.array([0.0, 13.0, 52.0])
    population = FIT.population_expected_purchases(t)
    assert 0.0 == population[0]
    np.testing.assert_allclose(population, FIT.expected_purchases(t, 0, 0, 0), rtol=1e-12)
    assert [1.0, 1.0] == FIT.probability_alive([0, 0], [0, 0], [5, 50]).tolist()
    alive = FIT.probability_alive([3, 3, 3], [10, 30, 50], [50, 50, 50])
    assert (np.diff(alive) > 0).all() and alive[2] == pytest.approx(
        1 / (1 + 1.7 / (3.2 + 2)), rel=1e-12)  # bought at T: only the drop-out chance


def test_gamma_gamma_expected_average_value() -> None:
    fit = GammaGammaFit(p=6.0, q=4.0, v=15.0, log_likelihood=0.0, converged=True,
                        customers=1)
    assert fit.mean == pytest.approx(30.0)
    got = fit.expected_average_value([0, 1, 10], [0, 50, 50])
    assert got.tolist() == pytest.approx([30.0, 6 * (15 + 50) / 9, 6 * 515 / 63])


# -- CLV -----------------------------------------------------------------------------------


def test_clv_per_member(cdnow: Summary) -> None:
    purchases = fit_bgnbd(cdnow)
    value = fit_gamma_gamma(cdnow)
    result = clv(cdnow, purchases, value, horizon=39)
    first = next(result.rows())
    assert ("0001", 2357) == (first.member_id, len(result))
    assert Money("74.02", "USD") == first.historical  # 29.33 + 29.73 + 14.96 by 30 Sep
    expected = purchases.expected_purchases(39, cdnow.x, cdnow.t_x, cdnow.T)
    average = value.expected_average_value(cdnow.x, cdnow.monetary)
    np.testing.assert_allclose(result.expected_purchases, expected)
    np.testing.assert_allclose(result.expected_value, expected * average)
    np.testing.assert_allclose(result.probability_alive,
                               purchases.probability_alive(cdnow.x, cdnow.t_x, cdnow.T))
    # discounted by 1% a 4-week step: each step's purchases at its end
    discounted = clv(cdnow, purchases, value, horizon=39, discount_rate=0.01, step=4)
    ends = [min(4 * k, 39) for k in range(11)]
    ey = [purchases.expected_purchases(e, cdnow.x, cdnow.t_x, cdnow.T) for e in ends]
    by_hand = sum((ey[k] - ey[k - 1]) / 1.01 ** k for k in range(1, 11)) * average
    np.testing.assert_allclose(discounted.expected_value, by_hand, rtol=1e-12)
    assert (discounted.expected_value < result.expected_value).all()


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_gets_typed_errors(published: Summary, fitted: BGNBDFit) -> None:
    spend = GammaGammaFit(p=6.0, q=4.0, v=15.0, log_likelihood=0.0, converged=True,
                          customers=1)
    bad: list[tuple[type[Exception], Any]] = [
        (InvalidSummary, lambda: fitted.expected_purchases(39, -1, 0, 10)),
        (InvalidSummary, lambda: fitted.expected_purchases(39, 2, 11, 10)),
        (InvalidSummary, lambda: fitted.expected_purchases(math.nan, 2, 1, 10)),
        (InvalidSummary, lambda: fitted.expected_purchases(-1, 2, 1, 10)),
        (InvalidSummary, lambda: fitted.probability_alive([1, 2], [1], [3, 3, 3])),
        (InvalidSummary, lambda: fitted.population_expected_purchases(-3)),
        (InvalidSummary, lambda: fit_bgnbd("summary")),  # type: ignore[arg-type]
        (InvalidSummary, lambda: fit_gamma_gamma(published)),  # no values
        (InvalidSummary, lambda: spend.expected_average_value([1], [-5])),
        (InvalidSummary, lambda: spend.expected_average_value([0.5], [5])),
        (InvalidInput, lambda: fit_bgnbd(published, max_iterations=0)),
        (InvalidInput, lambda: clv(published, fitted, spend, horizon=0)),
        (InvalidInput, lambda: clv(published, fitted, spend, horizon=math.inf)),
        (InvalidInput, lambda: clv(published, fitted, spend, horizon=True)),
        (InvalidInput, lambda: clv(published, fitted, spend, horizon=39, discount_rate=-1)),
        (InvalidInput, lambda: clv(published, fitted, spend, horizon=39, step=0.001)),
        (InvalidInput, lambda: clv(published, spend, spend, horizon=39)),  # type: ignore
        (InvalidInput, lambda: simulate(0, r=1, alpha=1, a=1, b=1, T=1)),
        (InvalidInput, lambda: simulate(5, r=-1, alpha=1, a=1, b=1, T=1)),
    ]
    for error, call in bad:
        with pytest.raises(error):
            call()
