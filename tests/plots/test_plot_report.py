"""draw_report: the picture of a report by its name, as ``loyaltykit report NAME --plot
FILE`` draws it, with the command line's defaults (12 months up to now)."""

from __future__ import annotations

import datetime as dt
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _plot_shops import (
    Shop,
    berlin,
    cohort_shop,
    liability_shop,
    plain_program,
    rfm_shop,
    tier_shop,
)

from loyaltykit import InvalidInput, NaiveDatetime, UnknownWallet
from loyaltykit.memory import MemoryStorage
from loyaltykit.plots import PICTURES, draw_report


def texts(path: Path) -> list[str]:
    data = path.read_bytes()
    assert "{http://www.w3.org/2000/svg}svg" == ET.fromstring(data).tag
    return re.findall(r"<!-- (.*?) -->", data.decode("utf-8"))


def test_every_report_with_a_picture_is_listed() -> None:
    assert ["clv", "kpis", "liability", "rfm", "tiers"] == sorted(PICTURES)


def test_kpis_draw_retention_by_cohort_over_the_last_12_months(tmp_path: Path) -> None:
    shop = cohort_shop(MemoryStorage())  # now: 1 May 2026 00:00 in Berlin
    shown = texts(draw_report("kpis", shop.loyalty, tmp_path / "kpis.svg"))
    # May 2025 to April 2026: dee's first order (20 December 2025) is a cohort now
    assert ["2025-12 (1)", "2026-01 (3)", "2026-02 (1)", "2026-03 (1)", "2026-04 (1)"] == [
        t for t in shown if re.fullmatch(r"\d{4}-\d\d \(\d+\)", t)]
    assert [str(k) for k in range(12)] == [t for t in shown if t.isdigit()][:12]
    assert "Retention by cohort (first order per month, Europe/Berlin)" in shown


def test_kpis_with_a_period_and_a_range(tmp_path: Path) -> None:
    shop = cohort_shop(MemoryStorage())
    shown = texts(draw_report("kpis", shop.loyalty, tmp_path / "kpis.svg", period="quarter",
                              start=berlin(2026, 1, 1, 0), end=berlin(2026, 7, 1, 0)))
    assert ["2026-Q1 (5)", "2026-Q2 (1)"] == [t for t in shown if "-Q" in t]
    assert "20%" in shown  # one of Q1's five came back in Q2


def test_rfm_liability_and_tiers(tmp_path: Path) -> None:
    rfm = texts(draw_report("rfm", rfm_shop(MemoryStorage()).loyalty, tmp_path / "rfm.svg",
                            as_of=berlin(2026, 6, 30, 0)))
    assert "RFM segments (5 members, as of 2026-06-29 22:00 UTC)" in rfm
    assert "champions" in rfm
    liability = texts(draw_report("liability", liability_shop(MemoryStorage()).loyalty,
                                  tmp_path / "liability.svg"))
    # the last 12 months up to now (20 April 2026): May 2025 to April 2026
    assert ["2025-05", "2026-04"] == [t for t in liability if t in ("2025-05", "2026-04")]
    tiers = texts(draw_report("tiers", tier_shop(MemoryStorage()).loyalty,
                              tmp_path / "tiers.svg",
                              period="week", end=berlin(2026, 3, 1, 0)))
    assert "Members per tier (end of each week)" in tiers
    assert "2026-02-23" in tiers  # the last week before 1 March


def _clv_shop() -> Shop:
    """150 members drawn from the CLV models' own story (seeded): each buys at a rate
    of its own, may drop out after each purchase, and spends around a mean of its own."""
    rng = random.Random(2026)
    shop = Shop(plain_program("clv"), MemoryStorage(), berlin(2026, 12, 31))
    for m in range(150):
        day = berlin(2026, 1, 1) + dt.timedelta(days=rng.randrange(90))
        every = 7 / rng.gammavariate(1.0, 0.3)  # days between purchases, on average
        mean = rng.gammavariate(4.0, 8.0)
        gone = rng.betavariate(1.0, 4.0)  # the chance to drop out after a purchase
        while day < berlin(2026, 12, 1):
            amount = max(1, round(rng.gammavariate(6.0, mean / 6.0)))
            shop.order(f"m{m:03d}", day, f"{amount}.00")
            if rng.random() < gone:
                break  # the member is gone
            day += dt.timedelta(days=1 + int(rng.expovariate(1 / every)))
    return shop


def test_clv_draws_the_value_expected_over_a_year(tmp_path: Path) -> None:
    shop = _clv_shop()
    path = draw_report("clv", shop.loyalty, tmp_path / "clv.svg")
    shown = texts(path)
    assert "expected value over 52 weeks (EUR)" in shown
    assert "Customer lifetime value (150 members)" in shown
    calibrated = texts(draw_report("clv", shop.loyalty, tmp_path / "early.svg",
                                   end=berlin(2026, 2, 1, 0)))
    members = [t for t in calibrated if t.startswith("Customer lifetime value")]
    assert len(members) == 1 and members[0] != "Customer lifetime value (150 members)"
    half = texts(draw_report("clv", shop.loyalty, tmp_path / "half.svg", horizon=26))
    assert "expected value over 26 weeks (EUR)" in half


@pytest.mark.parametrize(("name", "message"), [
    ("totals", "no picture for totals"), ("liabilities", "no picture for this report"),
    (None, "no picture for this report"),
])
def test_a_report_without_a_picture_is_refused(name: object, message: str,
                                               tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=message):
        draw_report(name, liability_shop(MemoryStorage()).loyalty,  # type: ignore[arg-type]
                    tmp_path / "picture.png")
    assert [] == list(tmp_path.iterdir())


def test_the_path_is_checked_before_any_report_is_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"\.png or \.svg"):
        draw_report("kpis", "not even a loyalty", tmp_path / "picture.gif")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="must be a Loyalty"):
        draw_report("kpis", "not even a loyalty", tmp_path / "picture.png")  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "error"), [
    ({"period": "fortnight"}, InvalidInput),
    ({"start": berlin(2026, 4, 1), "end": berlin(2026, 1, 1)}, InvalidInput),
    ({"end": dt.datetime(2026, 4, 1)}, NaiveDatetime),
    ({"as_of": "2026-04-01"}, NaiveDatetime),
])
def test_bad_options_are_refused_and_nothing_written(options: dict[str, object],
                                                     error: type[Exception],
                                                     tmp_path: Path) -> None:
    with pytest.raises(error):
        draw_report("liability", liability_shop(MemoryStorage()).loyalty,
                    tmp_path / "picture.png", **options)  # type: ignore[arg-type]
    assert [] == list(tmp_path.iterdir())


def test_clv_refuses_a_model_that_did_not_converge(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import attrs

    import loyaltykit.analytics as analytics

    fit_bgnbd = analytics.fit_bgnbd
    monkeypatch.setattr(analytics, "fit_bgnbd",
                        lambda summary: attrs.evolve(fit_bgnbd(summary), converged=False))
    with pytest.raises(InvalidInput, match="did not converge") as caught:
        draw_report("clv", _clv_shop().loyalty, tmp_path / "clv.png")
    assert ("BG/NBD", 150) == (caught.value.details["model"], caught.value.details["customers"])
    assert [] == list(tmp_path.iterdir())


def test_liability_draws_the_wallet_asked_for(tmp_path: Path) -> None:
    """``wallet`` reaches the liability picture: the shop's one wallet named draws
    what the default draws; a wallet the program lacks is refused, nothing written."""
    loyalty = liability_shop(MemoryStorage()).loyalty
    named = draw_report("liability", loyalty, tmp_path / "named.svg", wallet="points")
    default = draw_report("liability", loyalty, tmp_path / "default.svg")
    assert named.read_bytes() == default.read_bytes()
    with pytest.raises(UnknownWallet):
        draw_report("liability", loyalty, tmp_path / "other.svg", wallet="miles")
    assert not (tmp_path / "other.svg").exists()
