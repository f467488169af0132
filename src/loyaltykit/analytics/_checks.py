"""Input checks of the CLV models: arrays that can be a purchase summary, numbers that
can be a horizon. A leaf of the analytics package (numpy and the error tree only)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from loyaltykit._errors import InvalidInput, InvalidSummary, shown

__all__ = ["FloatArray", "IntArray", "as_float_array", "check_number", "check_rfm"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A customer's count of repeat purchase days is at most this (keeps Γ(r + x) finite).
MAX_X = 10**9


def as_float_array(value: object, field: str) -> FloatArray:
    """``value`` (a number, a sequence, an array) as a float64 array; anything else,
    or a value that is not finite, raises :class:`~loyaltykit.InvalidSummary`."""
    if isinstance(value, str | bytes | bool) or value is None:
        raise InvalidSummary(f"{field} must be numbers", field=field, value=shown(value))
    try:
        raw = np.asarray(value)
        if raw.dtype.kind not in "iuf":  # text, bools, objects: not numbers
            raise TypeError(raw.dtype)
        out = raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidSummary(f"{field} must be numbers", field=field,
                             value=shown(value)) from exc
    if out.ndim > 1:
        raise InvalidSummary(f"{field} must be one-dimensional", field=field,
                             shape=out.shape)
    bad = ~np.isfinite(out)
    if bad.any():
        raise InvalidSummary(f"{field} must be finite (no NaN or infinity)", field=field,
                             row=_first(bad))
    return out


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(np.atleast_1d(mask))[0])


def check_rfm(x: object, t_x: object, T: object, *, allow_empty: bool = False
              ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Repeat counts, recencies and ages that can be a BG/NBD summary, broadcast to one
    shape: ``x`` whole and ``>= 0``, ``0 <= t_x <= T``, ``t_x == 0`` when ``x == 0``;
    else :class:`~loyaltykit.InvalidSummary` naming the column and the first bad row."""
    xs = as_float_array(x, "x")
    txs = as_float_array(t_x, "t_x")
    Ts = as_float_array(T, "T")
    try:
        xs, txs, Ts = np.broadcast_arrays(xs, txs, Ts)
    except ValueError as exc:
        raise InvalidSummary("x, t_x and T must have the same length", field="x",
                             lengths=[xs.size, txs.size, Ts.size]) from exc
    if xs.size == 0 and not allow_empty:
        raise InvalidSummary("no customers: the summary is empty", field="x")
    checks: list[tuple[str, npt.NDArray[np.bool_], str]] = [
        ("x", (xs < 0) | (xs != np.floor(xs)) | (xs > MAX_X),
         f"must be a whole number from 0 to {MAX_X}"),
        ("T", Ts < 0, "must be >= 0"),
        ("t_x", (txs < 0) | (txs > Ts), "must lie between 0 and T"),
        ("t_x", (xs == 0) & (txs != 0), "must be 0 for a customer with x = 0"),
    ]
    for field, bad, problem in checks:
        if bad.any():
            row = _first(bad)
            raise InvalidSummary(f"{field} {problem}", field=field, row=row,
                                 x=float(np.ravel(xs)[row]), t_x=float(np.ravel(txs)[row]),
                                 T=float(np.ravel(Ts)[row]))
    return xs, txs, Ts


def check_number(value: Any, name: str, *, low: float = 0.0, low_open: bool = False,
                 high: float = math.inf) -> float:
    """``value`` as a float if it is a real number (not ``bool``) in ``[low, high]``
    (``(low, high]`` when ``low_open``); else :class:`~loyaltykit.InvalidInput`."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidInput(f"{name} must be a number", **{name: shown(value)})
    number = float(value)
    if not math.isfinite(number) or number < low or (low_open and number == low) \
            or number > high:
        side = "(" if low_open else "["
        raise InvalidInput(f"{name} must be a finite number in {side}{low}, {high}]",
                           **{name: shown(value)})
    return number
