"""Scenario V4: concurrent redemptions of a reward with stock, on PostgreSQL with
processes and on SQLite with threads. Exactly as many vouchers as there was stock, the
others refused as out of stock, and exactly their cost debited: the stock is taken with
one guarded UPDATE (RewardStore.take), never read and then written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from _workers import Team
from loyaltykit import Loyalty, OutOfStock, TestClock
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.contract.rewards import reward_program, v_coffee

MEMBERS = 50
STOCK = 10
AT = dt.datetime(2026, 4, 10, 8, tzinfo=dt.UTC)
PROGRAM = reward_program(v_coffee(stock=STOCK, per_member=None))


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "postgresql":
        from conftest import POSTGRESQL

        POSTGRESQL.storage()  # an empty database with the schema
        yield "process", POSTGRESQL.get_url()
    else:
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        storage = SQLStorage.from_url(url)
        storage.create_schema()
        storage.dispose()
        yield "thread", url


def _redeem(url: str, member_id: str, barrier: object) -> str:
    storage = SQLStorage.from_url(url)
    try:
        loyalty = Loyalty(PROGRAM, storage, clock=TestClock(AT), max_retries=50)
        barrier.wait()  # type: ignore[attr-defined]
        try:
            loyalty.rewards.redeem(member_id, "coffee", key=f"redeem:{member_id}")
        except OutOfStock:
            return "out"
        return "voucher"
    finally:
        storage.dispose()


def test_v4_fifty_members_redeem_the_last_ten_at_once(database: tuple[str, str]) -> None:
    kind, url = database
    storage = SQLStorage.from_url(url)
    setup = Loyalty(PROGRAM, storage, clock=TestClock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    members = [f"m{i:02d}" for i in range(MEMBERS)]
    for m in members:
        setup.enrol(m, key=f"enrol:{m}")
        setup.earn(m, 1000, key=f"earn:{m}")
    storage.dispose()  # no open SQLite connection while forking
    team = Team(kind)
    barrier = team.barrier(MEMBERS)
    with team:
        for m in members:
            team.start(m, _redeem, url, m, barrier)
        outcomes = team.results(timeout=120)
    assert sorted(outcomes.values()) == ["out"] * (MEMBERS - STOCK) + ["voucher"] * STOCK
    setup.clock.set(AT)  # type: ignore[attr-defined]
    assert sum(setup.balance(m).available for m in members) == MEMBERS * 1000 - STOCK * 500
    assert setup.rewards.stock("coffee") == 0
    vouchers = [v for m in members for v in setup.rewards.vouchers(m)]
    assert len(vouchers) == STOCK and len({v.code for v in vouchers}) == STOCK
    with storage._engine.connect() as conn:
        held = conn.execute(sa.text(
            "SELECT held, redeemed FROM lk_reward_counters WHERE reward_id = 'coffee'")).one()
    assert tuple(held) == (STOCK, STOCK)
    storage.dispose()
