"""scripts/docs_pictures.py: the CDNOW walkthrough's pictures (docs/walkthrough.md),
drawn from the repository's sample by the docs build."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from loyaltykit import Loyalty, Money, Period
from loyaltykit.plots import liability_over_time

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "docs_pictures.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_pictures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hook_draws_missing_or_stale_pictures_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script()
    calls: list[Path] = []

    def generate(out_dir: Path, cdnow: Any = None) -> list[Path]:
        calls.append(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in script.NAMES:
            (out_dir / name).write_bytes(b"picture")
        return [out_dir / name for name in script.NAMES]

    monkeypatch.setattr(script, "generate", generate)
    config = {"docs_dir": str(tmp_path)}
    script.on_pre_build(config)
    assert [tmp_path / "img"] == calls  # none there: drawn
    script.on_pre_build(config)
    assert 1 == len(calls)  # fresh: not drawn again
    old = time.time() - 3600 * 24 * 365 * 30  # older than every source
    os.utime(tmp_path / "img" / script.NAMES[2], (old, old))
    script.on_pre_build(config)
    assert 2 == len(calls)  # one stale picture: all drawn again


@pytest.mark.slow
def test_the_replay_and_its_pictures(tmp_path: Path) -> None:
    script = _script()
    started = time.process_time()
    cdnow: Loyalty = script.replay()
    replayed = time.process_time() - started
    assert 6_919 == sum(1 for _ in cdnow.reports.purchases())
    assert 2_357 == cdnow.reports.count()
    totals = cdnow.reports.totals()[0]
    # 1 point a dollar: every order earned, and points only left by vouchers or expiry
    assert totals.issued == totals.redeemed + totals.expired + totals.outstanding
    assert 0 < totals.redeemed and totals.redeemed % 100 == 0 and 0 < totals.expired
    assert {"member", "silver", "gold"} == {
        t.tier for t in cdnow.reports.tiers().tiers if t.members}
    first = dt.datetime(1997, 1, 1, tzinfo=script.NEW_YORK)
    months = liability_over_time(cdnow, Period.MONTH, first, script.END)
    # what docs/walkthrough.md says: the full face value until the first cohorts close
    # in January 1998, then the face value times the expected redemption
    assert "1998-01" == next(r.period.label for r in months.rows if r.basis == "breakage")
    assert all(r.liability == r.face_value for r in months.rows
               if r.period.label < "1998-01")
    assert all(r.liability < r.face_value and Decimal(0) < r.breakage_rate < Decimal(1)
               for r in months.rows if r.period.label >= "1998-01")
    assert Money("0.01", "USD") == cdnow.program.point_value
    paths = script.generate(tmp_path / "img", cdnow)
    assert [tmp_path / "img" / name for name in script.NAMES] == paths
    for path in paths:
        data = path.read_bytes()
        assert b"\x89PNG\r\n\x1a\n" == data[:8]
        assert (900, 550) == (int.from_bytes(data[16:20], "big"),
                              int.from_bytes(data[20:24], "big"))
    assert replayed < 60  # CPU seconds; it runs in every docs build
