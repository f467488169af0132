"""Drawing the figures with matplotlib, imported here only when a picture is drawn.

Every picture is a :class:`matplotlib.figure.Figure` on an Agg canvas of its own: no
pyplot, so no global backend or figure registry is touched and a host's own use of
matplotlib is left as it was. The file is written beside its final name and renamed
into place, so a failed drawing leaves no half-written file; SVG output is made
reproducible (no date, fixed element ids).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loyaltykit._errors import InvalidInput, PlotsUnavailable, shown
from loyaltykit.plots._figures import (
    ClvDistribution,
    CohortRetention,
    LiabilityOverTime,
    RfmSegments,
    TiersOverTime,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_DPI", "DEFAULT_SIZE", "FORMATS", "check_path", "draw"]

#: The file formats, by the file's suffix (case-insensitive).
FORMATS = {".png": "png", ".svg": "svg"}
#: A picture's size in inches (width, height) unless given.
DEFAULT_SIZE = (8.0, 5.0)
#: Dots per inch of a PNG unless given (an SVG is 72 points an inch).
DEFAULT_DPI = 100
_MAX_INCHES = 100.0
_MAX_DPI = 1200
#: Cells get their percentage written in them up to this many columns.
_ANNOTATED_COLUMNS = 20
_INSTALL = "pip install 'loyaltykit[plot]'"

Figures = CohortRetention | RfmSegments | LiabilityOverTime | ClvDistribution | TiersOverTime


def check_path(path: object) -> tuple[Path, str]:
    """The picture's path and format: a ``.png`` or ``.svg`` file in an existing
    directory, else :class:`~loyaltykit.InvalidInput`."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInput("path must be a file path", path=shown(path))
    where = Path(path)
    fmt = FORMATS.get(where.suffix.lower())
    if fmt is None:
        raise InvalidInput("a picture is written to a .png or .svg file",
                           path=str(where), expected=sorted(FORMATS))
    if not where.parent.is_dir():
        raise InvalidInput("the picture's directory does not exist", path=str(where))
    if where.is_dir():
        raise InvalidInput("the picture's path is a directory", path=str(where))
    return where, fmt


def _options(title: object, size: object, dpi: object) -> tuple[float, float]:
    if title is not None and not isinstance(title, str):
        raise InvalidInput("title must be text", title=shown(title))
    if (not isinstance(size, tuple) or len(size) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int | float)
            or not math.isfinite(v) or not 0 < v <= _MAX_INCHES for v in size)):
        raise InvalidInput(f"size must be (width, height) in inches, each in (0, "
                           f"{_MAX_INCHES:g}]", size=shown(size))
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= _MAX_DPI:
        raise InvalidInput(f"dpi must be an int in 10..{_MAX_DPI}", dpi=shown(dpi))
    return float(size[0]), float(size[1])


def _nothing(figures: Figures) -> str | None:
    """Why ``figures`` make no picture, or None."""
    if isinstance(figures, CohortRetention) and not any(r.members for r in figures.cohorts):
        return "no member placed a first order in the range"
    if isinstance(figures, RfmSegments) and not figures.members:
        return "no member has an order that counts"
    if isinstance(figures, LiabilityOverTime | TiersOverTime) and not figures.rows:
        return "no period of the range has begun"
    return None


def draw(figures: Figures, path: str | os.PathLike[str], *, title: str | None = None,
         size: tuple[float, float] = DEFAULT_SIZE, dpi: int = DEFAULT_DPI) -> Path:
    """Draw ``figures`` (what one of :mod:`loyaltykit.plots`' functions returned) to
    ``path``, a PNG or SVG file by its suffix, and return the path.

    ``title`` replaces the picture's own; ``size`` is (width, height) in inches and
    ``dpi`` the PNG's dots per inch (a PNG is ``width * dpi`` by ``height * dpi``
    pixels, an SVG ``width * 72`` by ``height * 72`` points). An existing file is
    replaced. The heat map leaves out the cohorts without members.

    Another suffix, a missing directory, figures of another type, figures with
    nothing to draw (no cohort member, no scored member, no period begun) or bad
    options raise :class:`~loyaltykit.InvalidInput` and write nothing; without
    matplotlib, :class:`~loyaltykit.PlotsUnavailable` (``pip install
    'loyaltykit[plot]'``).
    """
    where, fmt = check_path(path)
    drawer = _DRAWERS.get(type(figures))
    if drawer is None:
        raise InvalidInput("figures must be what a loyaltykit.plots function returned",
                           figures=shown(figures))
    inches = _options(title, size, dpi)
    empty = _nothing(figures)
    if empty is not None:
        raise InvalidInput(f"nothing to draw: {empty}", figures=type(figures).__name__)
    figure_class, canvas_class, rc_context = _matplotlib()
    fig = figure_class(figsize=inches, dpi=dpi, layout="constrained")
    canvas_class(fig)
    drawer(fig, figures, title)
    partial = where.with_name(f".{where.name}.{os.getpid()}.partial")
    try:
        if fmt == "svg":
            with rc_context({"svg.hashsalt": "loyaltykit"}):  # stable element ids
                fig.savefig(partial, format=fmt, metadata={"Date": None})
        else:
            fig.savefig(partial, format=fmt, dpi=dpi)
        os.replace(partial, where)
    finally:
        partial.unlink(missing_ok=True)
    return where


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        from matplotlib import rc_context
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable(f"drawing a picture needs matplotlib: {_INSTALL}",
                               missing=exc.name or "matplotlib") from exc
    return Figure, FigureCanvasAgg, rc_context


# -- the pictures ------------------------------------------------------------------------


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0)


def _whole(axis: Any) -> None:
    """Ticks at whole numbers only: the axis counts members."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _period_axis(ax: Axes, labels: list[str]) -> None:
    """Period labels along x, thinned to about a dozen when there are many."""
    step = max(1, math.ceil(len(labels) / 12))
    ax.set_xticks(range(0, len(labels), step), labels[::step],
                  rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6
                  else "center")


def _cohorts(fig: Figure, f: CohortRetention, title: str | None) -> None:
    import numpy as np

    # a period in which no member placed a first order is no cohort worth a row
    shown_rows = [(c, row) for c, row in zip(f.cohorts, f.grid, strict=True) if c.members]
    grid = np.ma.masked_invalid(np.array(
        [[math.nan if v is None else float(v) for v in row] for _, row in shown_rows],
        dtype=float))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    rows, columns = grid.shape
    ax.set_xticks(range(columns), [str(k) for k in range(columns)])
    ax.set_yticks(range(rows), [f"{c.cohort.label} ({c.members})" for c, _ in shown_rows])
    ax.set_xlabel(f"{f.period.value}s since the first order")
    ax.set_ylabel("cohort (members)")
    if columns <= _ANNOTATED_COLUMNS:
        for i, (_, row) in enumerate(shown_rows):
            for k, value in enumerate(row):
                if value is not None:
                    ax.text(k, i, f"{float(value):.0%}", ha="center", va="center",
                            fontsize=7, color="white" if value > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="members with an order", format=_percent())
    ax.set_title(title or f"Retention by cohort (first order per {f.period.value}, "
                 f"{f.time_zone})")


def _segments(fig: Figure, f: RfmSegments, title: str | None) -> None:
    ax = fig.add_subplot()
    names = [(s.segment or "no segment").replace("_", " ") for s in f.segments]
    bars = ax.barh(range(len(names)), [s.members for s in f.segments], color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # the table's first segment on top
    ax.bar_label(bars, labels=[f"{s.members} ({float(s.share or 0):.0%})"
                               for s in f.segments], padding=3, fontsize=8)
    ax.set_xlabel("members")
    _whole(ax.xaxis)
    ax.margins(x=0.15)
    ax.set_title(title or f"RFM segments ({f.members} members, as of "
                 f"{f.as_of.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)")


def _liability(fig: Figure, f: LiabilityOverTime, title: str | None) -> None:
    ax = fig.add_subplot()
    x = range(len(f.rows))
    ax.plot(x, [float(r.liability.amount) for r in f.rows], marker="o", color="tab:blue",
            label=f"liability ({f.currency})")
    ax.plot(x, [float(r.face_value.amount) for r in f.rows], linestyle="--",
            color="tab:gray", label=f"face value ({f.currency})")
    ax.set_ylabel(f.currency)
    ax.set_ylim(bottom=0)
    _period_axis(ax, [r.period.label for r in f.rows])
    rates = ax.twinx()
    rates.plot(x, [math.nan if r.breakage_rate is None else float(r.breakage_rate)
                   for r in f.rows], marker="s", color="tab:red", label="breakage rate")
    rates.set_ylim(0, 1.05)
    rates.yaxis.set_major_formatter(_percent())
    rates.set_ylabel("breakage rate (closed cohorts)")
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = rates.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, loc="upper left", fontsize=8)
    ax.set_title(title or f"Liability and breakage of the {f.wallet} wallet "
                 f"(per {f.period.value})")


def _clv(fig: Figure, f: ClvDistribution, title: str | None) -> None:
    ax = fig.add_subplot()
    ax.stairs(f.counts, f.edges, fill=True, color="tab:blue", alpha=0.8)
    over = (f" over {f.horizon:g} {f.unit}" if f.horizon is not None and f.unit else "")
    ax.set_xlabel(f"expected value{over}" + (f" ({f.currency})" if f.currency else ""))
    ax.set_ylabel("members")
    _whole(ax.yaxis)
    ax.set_title(title or f"Customer lifetime value ({len(f.values)} members)")


def _tiers(fig: Figure, f: TiersOverTime, title: str | None) -> None:
    ax = fig.add_subplot()
    x = range(len(f.rows))
    bottom = [0] * len(f.rows)
    for column, tier in enumerate(f.tiers):
        counts = [row.members[column] for row in f.rows]
        if tier is None and not any(counts):
            continue  # nobody without a tier: no empty legend entry
        ax.bar(x, counts, bottom=bottom, label=tier or "no tier")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _period_axis(ax, [r.period.label for r in f.rows])
    ax.set_ylabel("members")
    _whole(ax.yaxis)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or f"Members per tier (end of each {f.period.value})")


_DRAWERS: dict[type, Callable[[Figure, Any, str | None], None]] = {
    CohortRetention: _cohorts,
    RfmSegments: _segments,
    LiabilityOverTime: _liability,
    ClvDistribution: _clv,
    TiersOverTime: _tiers,
}
