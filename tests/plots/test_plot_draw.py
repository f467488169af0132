"""Drawing the pictures (loyaltykit.plots.draw): each picture drawn from a small known
data set to PNG and SVG, the file checked (PNG signature and the IHDR chunk's size,
SVG an <svg> root of the right size), the figures found in the picture (the SVG keeps
every text as a comment), the same figures giving the same file and other figures
another; bad input refused with a typed error and nothing written; matplotlib optional."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _plot_shops import berlin, cohort_shop, liability_shop, rfm_shop, tier_shop

from loyaltykit import InvalidInput, Period, RfmSegment
from loyaltykit.memory import MemoryStorage
from loyaltykit.plots import (
    ClvDistribution,
    CohortRetention,
    LiabilityOverTime,
    RfmSegments,
    TiersOverTime,
    clv_distribution,
    cohort_retention,
    draw,
    liability_over_time,
    rfm_segments,
    tiers_over_time,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}svg"
TABLE = (RfmSegment("top", recency=(4, 5), frequency_monetary=(4, 5)),
         RfmSegment("middle", recency=(2, 5), frequency_monetary=(1, 5)),
         RfmSegment("gone", recency=(1, 1), frequency_monetary=(2, 5)))


def _cohorts(more: bool) -> CohortRetention:
    shop = cohort_shop(MemoryStorage())
    if more:  # hal comes back in April
        shop.order("hal", berlin(2026, 4, 20))
    return cohort_retention(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                            berlin(2026, 5, 1, 0))


def _segments(more: bool) -> RfmSegments:
    shop = rfm_shop(MemoryStorage())
    if more:  # d buys again on 30 June: recent, so no longer without a segment
        shop.order("d", berlin(2026, 6, 30), "500.00")
    return rfm_segments(shop.loyalty, segments=TABLE)


def _liability(more: bool) -> LiabilityOverTime:
    shop = liability_shop(MemoryStorage())
    if more:
        shop.loyalty.earn("ann", 5_000, key="more")
    return liability_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                               berlin(2026, 5, 1, 0))


def _clv(more: bool) -> ClvDistribution:
    return clv_distribution([1, 2, 2.5, 4, 9] + ([8.5] if more else []), bins=4)


def _tiers(more: bool) -> TiersOverTime:
    shop = tier_shop(MemoryStorage())
    if more:
        shop.member("eli")
    return tiers_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                           berlin(2026, 4, 1, 0))


#: Each picture: its figures (the known set, or one with something more) and texts the
#: picture must show for the known set.
PICTURES: dict[str, tuple[Callable[[bool], Any], list[str]]] = {
    "cohorts": (_cohorts, ["2026-01 (3)", "2026-02 (1)", "2026-03 (1)", "2026-04 (1)",
                           "100%", "33%", "0%", "months since the first order"]),
    "segments": (_segments, ["top", "middle", "gone", "no segment", "1 (20%)", "3 (60%)",
                             "0 (0%)", "RFM segments (5 members, as of 2026-06-30 22:00 UTC)"]),
    "liability": (_liability, ["2026-01", "2026-04", "liability (EUR)", "face value (EUR)",
                               "breakage rate"]),
    "clv": (_clv, ["members", "Customer lifetime value (5 members)"]),
    "tiers": (_tiers, ["member", "silver", "gold", "2026-01", "2026-03",
                       "Members per tier (end of each month)"]),
}


@pytest.fixture(scope="module")
def figures() -> dict[tuple[str, bool], Any]:
    return {(name, more): make(more) for name, (make, _) in PICTURES.items()
            for more in (False, True)}


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height from its IHDR chunk (the first, right after the
    signature: length, type, then width and height as 4-byte big-endian)."""
    assert PNG_SIGNATURE == data[:8]
    assert b"IHDR" == data[12:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def svg_texts(data: bytes) -> list[str]:
    """The texts of a matplotlib SVG (each drawn as paths, kept in a comment)."""
    return re.findall(r"<!-- (.*?) -->", data.decode("utf-8"))


@pytest.mark.parametrize("name", PICTURES)
def test_each_picture_as_png(name: str, figures: dict[tuple[str, bool], Any],
                             tmp_path: Path) -> None:
    path = draw(figures[name, False], tmp_path / f"{name}.png")
    assert tmp_path / f"{name}.png" == path
    data = path.read_bytes()
    assert (800, 500) == png_size(data)  # 8 x 5 inches at 100 dpi
    assert len(data) > 5_000
    again = draw(figures[name, False], tmp_path / f"{name}-again.png").read_bytes()
    other = draw(figures[name, True], tmp_path / f"{name}-other.png").read_bytes()
    assert data == again
    assert (800, 500) == png_size(other)
    assert data != other


@pytest.mark.parametrize("name", PICTURES)
def test_each_picture_as_svg(name: str, figures: dict[tuple[str, bool], Any],
                             tmp_path: Path) -> None:
    data = draw(figures[name, False], tmp_path / f"{name}.svg").read_bytes()
    root = ET.fromstring(data)
    assert SVG == root.tag
    assert ("576pt", "360pt") == (root.get("width"), root.get("height"))  # 72 pt an inch
    texts = svg_texts(data)
    assert [t for t in PICTURES[name][1] if t not in texts] == []
    again = draw(figures[name, False], tmp_path / f"{name}-again.svg").read_bytes()
    other = draw(figures[name, True], tmp_path / f"{name}-other.svg").read_bytes()
    assert data == again  # no date, stable ids: the docs' pictures only change with data
    assert data != other


def test_the_heat_map_shows_each_share_and_leaves_empty_cohorts_out(tmp_path: Path) -> None:
    found = cohort_retention(cohort_shop(MemoryStorage()).loyalty, Period.MONTH,
                             berlin(2026, 4, 1, 0), berlin(2026, 6, 1, 0))
    assert [0] == [c.members for c in found.cohorts][1:]  # May: no new member
    texts = svg_texts(draw(found, tmp_path / "april.svg").read_bytes())
    assert "2026-04 (1)" in texts
    assert "2026-05 (0)" not in texts
    assert ["100%", "0%"] == [t for t in texts if t.endswith("%") and t[0].isdigit()][:2]


def test_size_dpi_title_and_suffix_case(figures: dict[tuple[str, bool], Any],
                                        tmp_path: Path) -> None:
    png = draw(figures["tiers", False], tmp_path / "small.PNG", size=(4, 3), dpi=50)
    assert (200, 150) == png_size(png.read_bytes())
    svg = draw(figures["tiers", False], tmp_path / "small.svg", size=(4, 3), title="Ours")
    root = ET.fromstring(svg.read_bytes())
    assert ("288pt", "216pt") == (root.get("width"), root.get("height"))
    texts = svg_texts(svg.read_bytes())
    assert "Ours" in texts
    assert "Members per tier (end of each month)" not in texts


def test_an_existing_file_is_replaced(figures: dict[tuple[str, bool], Any],
                                      tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(b"old")
    draw(figures["clv", False], path)
    assert (800, 500) == png_size(path.read_bytes())
    assert ["picture.png"] == [p.name for p in tmp_path.iterdir()]


@pytest.mark.parametrize("name", ["picture.jpg", "picture.pdf", "picture", "picture.png.txt",
                                  "missing/picture.png"])
def test_a_bad_path_is_refused_and_nothing_written(name: str, figures: dict[tuple[str, bool],
                                                   Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        draw(figures["clv", False], tmp_path / name)
    assert [] == list(tmp_path.iterdir())


def test_a_directory_or_not_a_path_is_refused(figures: dict[tuple[str, bool], Any],
                                              tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InvalidInput, match="is a directory"):
        draw(figures["clv", False], tmp_path / "dir.png")
    with pytest.raises(InvalidInput, match="must be a file path"):
        draw(figures["clv", False], 42)  # type: ignore[arg-type]
    assert ["dir.png"] == [p.name for p in tmp_path.iterdir()]


@pytest.mark.parametrize("options", [
    {"title": 3}, {"size": (8, 0)}, {"size": (8,)}, {"size": [8, 5]}, {"size": (8, "5")},
    {"size": (8, float("inf"))}, {"size": (1000, 5)}, {"dpi": 5}, {"dpi": 100.0},
    {"dpi": True}, {"dpi": 5000},
])
def test_bad_options_are_refused_and_nothing_written(options: dict[str, Any], figures: dict[
        tuple[str, bool], Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        draw(figures["tiers", False], tmp_path / "picture.png", **options)
    assert [] == list(tmp_path.iterdir())


def _empty() -> list[Any]:
    cohorts = cohort_shop(MemoryStorage())
    later = berlin(2026, 6, 1, 0), berlin(2026, 8, 1, 0)
    return [
        cohort_retention(cohorts.loyalty, Period.MONTH, *later),   # nobody new
        rfm_segments(cohorts.loyalty, as_of=berlin(2025, 1, 1)),   # nobody had ordered
        liability_over_time(liability_shop(MemoryStorage()).loyalty, Period.MONTH, *later),
        tiers_over_time(tier_shop(MemoryStorage()).loyalty, Period.MONTH, *later),
        cohort_retention(cohorts.loyalty, Period.MONTH, later[0], later[0]),  # no period
    ]


@pytest.mark.parametrize("index", range(5))
def test_figures_with_nothing_to_draw_are_refused(index: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="nothing to draw"):
        draw(_empty()[index], tmp_path / "picture.svg")
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("figures", [None, "cohorts", [1, 2, 3], {"counts": (1,)}])
def test_what_no_plots_function_returned_is_refused(figures: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"loyaltykit\.plots"):
        draw(figures, tmp_path / "picture.png")  # type: ignore[arg-type]
    assert [] == list(tmp_path.iterdir())


# -- matplotlib is optional ---------------------------------------------------------------

_SCRIPT = """
import json, sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if BLOCK and name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Blocker())
import loyaltykit
core = sorted(m for m in sys.modules if m.startswith("matplotlib"))
from loyaltykit.plots import clv_distribution, draw
figures = clv_distribution([1.0, 2.0, 4.0], bins=2)
plots = sorted(m for m in sys.modules if m.startswith("matplotlib"))
outcome = {"core": core, "plots": plots, "counts": list(figures.counts)}
try:
    draw(figures, PATH)
except ImportError as exc:
    outcome.update(error=type(exc).__name__, text=str(exc), code=getattr(exc, "code", None),
                   loyalty_error=isinstance(exc, loyaltykit.LoyaltyError),
                   missing=exc.details.get("missing"), cause=type(exc.__cause__).__name__)
else:
    outcome.update(error=None)
print(json.dumps(outcome))
"""


def _run(block: bool, path: Path) -> dict[str, Any]:
    code = f"BLOCK = {block!r}\nPATH = {str(path)!r}\n" + textwrap.dedent(_SCRIPT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert 0 == proc.returncode, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_without_matplotlib_the_figures_work_and_draw_says_how_to_install(
        tmp_path: Path) -> None:
    result = _run(True, tmp_path / "picture.png")
    assert [2, 1] == result["counts"]
    assert ("PlotsUnavailable", "plots_unavailable", True) == (
        result["error"], result["code"], result["loyalty_error"])
    assert "pip install 'loyaltykit[plot]'" in result["text"]
    assert str(result["missing"]).startswith("matplotlib")
    assert "ImportError" == result["cause"] or "ModuleNotFoundError" == result["cause"]
    assert [] == list(tmp_path.iterdir())


def test_neither_loyaltykit_nor_its_plots_import_matplotlib_until_drawing(
        tmp_path: Path) -> None:
    result = _run(False, tmp_path / "picture.png")
    assert ([], []) == (result["core"], result["plots"])
    assert result["error"] is None  # the control: with matplotlib, the picture is drawn
    assert (800, 500) == png_size((tmp_path / "picture.png").read_bytes())


def test_the_as_of_of_each_period_is_inside_it() -> None:
    found = _liability(False)
    for row in found.rows:
        assert row.period.start <= row.as_of < row.period.end
        assert row.as_of.tzinfo is dt.UTC
