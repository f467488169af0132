"""Tier history lines get library-drawn ids on SQLite's set-based evaluation (issue
23: no database sequence), one per line, even when a batch planned by its end holds
more states than its limit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import sqlalchemy as sa

from loyaltykit import Loyalty, TestClock
from loyaltykit._tiers import job_for
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.testing.contract.tiers import tier_program

_BERLIN = ZoneInfo("Europe/Berlin")


def _berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=_BERLIN)


def _history(storage: SQLStorage) -> list[tuple[str, str]]:
    with storage._engine.connect() as conn:
        return [(str(r[0]), r[1]) for r in conn.execute(sa.text(
            "SELECT id, to_tier FROM lk_tier_history ORDER BY member_id, id"))]


def test_a_batch_given_by_its_end_numbers_every_line(tmp_path: Path) -> None:
    storage = SQLStorage(create_engine(f"sqlite:///{tmp_path}/tiers.sqlite"))
    storage.create_schema()
    program = tier_program(program_id="ids")
    assert program.tiers is not None
    clock = TestClock(_berlin(2026, 1, 10, 9))
    loyalty = Loyalty(program, storage, clock=clock)
    members = [f"m{i}" for i in range(5)]
    for m in members:  # gold by hand for 2026: the evaluation takes each one level down
        loyalty.enrol(m)
        loyalty.tiers.assign(m, "gold", key=m, reason="launch", until=_berlin(2026, 12, 1))
    assert 5 == len(_history(storage))
    clock.set(_berlin(2027, 1, 1, 2))
    job = job_for(program.tiers, program.time_zone, _berlin(2027, 1, 1), None, clock.now(), 2)
    with storage.unit_of_work(program.id) as uow:
        keys = sorted(uow.members.keys_of(members).values())
        # a range planned for 2 states that holds 5 (states entered it since)
        done, changed = uow.tiers.evaluate_tiers(attrs.evolve(job, upto=keys[-1]))
        uow.commit()
    assert (5, 5) == (done, len(changed))
    lines = _history(storage)
    assert 10 == len(lines) == len({i for i, _ in lines})  # an id of its own each
    assert 5 * ["gold", "silver"] == [tier for _, tier in lines]  # in each member's order
