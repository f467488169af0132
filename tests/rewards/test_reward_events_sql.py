"""The rewards' events on the SQL backend inside a host's transaction: a rollback
leaves no voucher and no event, a commit brings both."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, TestClock, VoucherNotFound
from loyaltykit.sql import SQLStorage
from loyaltykit.sql.schema import outbox, vouchers
from loyaltykit.testing.contract import berlin
from loyaltykit.testing.contract.rewards import reward_program, v_coffee

_TYPES = ("reward.redeemed", "voucher.used", "voucher.cancelled", "voucher.expired")


def _prepared(engine: sa.Engine, clock: TestClock) -> Loyalty:
    """M holds 1,500 points and one coffee voucher, committed."""
    loyalty = Loyalty(reward_program(v_coffee(stock=None, per_member=None)),
                      SQLStorage(engine), clock=clock)
    loyalty.enrol("M")
    loyalty.earn("M", 1500, key="e")
    return loyalty


def _ours(loyalty: Loyalty) -> list[str]:
    return [e.type for e in loyalty.events.read("mailer", limit=1000) if e.type in _TYPES]


def _written(conn: sa.Connection) -> list[str]:
    """The rewards' events in the outbox table as ``conn`` sees it (its own
    transaction's events are not safe to read through the outbox yet on PostgreSQL)."""
    rows = conn.execute(sa.select(outbox.c.type).where(outbox.c.type.in_(_TYPES))
                        .order_by(outbox.c.stream, outbox.c.tx, outbox.c.seq, outbox.c.id))
    return [row.type for row in rows]


def test_a_host_transaction_that_rolls_back_leaves_no_reward_event(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 4, 10, 10))
    loyalty = _prepared(engine, clock)
    kept = loyalty.rewards.redeem("M", "coffee", key="kept").voucher
    program = loyalty.program
    with engine.connect() as conn:
        conn.begin()
        host = Loyalty(program, SQLStorage(conn), clock=clock)
        gone = host.rewards.redeem("M", "coffee", key="r").voucher
        host.rewards.use(gone.code, order_id="1001", key="u")
        host.rewards.cancel(kept.code, key="c")
        clock.set(berlin(2026, 5, 11))
        assert 0 == host.run_due().expired_vouchers  # cancelled and used: nothing due
        assert ["reward.redeemed", "reward.redeemed", "voucher.used",
                "voucher.cancelled"] == _written(conn)
        conn.rollback()
    assert ["reward.redeemed"] == _ours(loyalty)
    with pytest.raises(VoucherNotFound):
        loyalty.rewards.voucher(gone.code)
    # due work inside a host transaction that rolls back: no voucher.expired either
    with engine.connect() as conn:
        conn.begin()
        host = Loyalty(program, SQLStorage(conn), clock=clock)
        assert 1 == host.run_due().expired_vouchers
        assert ["reward.redeemed", "voucher.expired"] == _written(conn)
        conn.rollback()
    assert ["reward.redeemed"] == _ours(loyalty)
    with engine.connect() as conn:
        assert 1 == conn.scalar(sa.select(sa.func.count()).select_from(vouchers))
        assert 1 == conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.type == "reward.redeemed"))


def test_a_host_transaction_that_commits_brings_its_reward_events(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 4, 10, 10))
    program = _prepared(engine, clock).program
    with engine.connect() as conn, conn.begin():
        host = Loyalty(program, SQLStorage(conn), clock=clock)
        got = host.rewards.redeem("M", "coffee", key="r").voucher
        host.rewards.cancel(got.code, key="c")
    after = Loyalty(program, SQLStorage(engine), clock=clock)
    assert ["reward.redeemed", "voucher.cancelled"] == _ours(after)


def test_one_redemption_appends_its_two_events_in_one_statement(engine: sa.Engine) -> None:
    """points.spent and reward.redeemed go to the outbox in one executemany (the
    benchmark's baseline mirrors it), and due work appends a batch's voucher.expired
    events in one too."""
    clock = TestClock(berlin(2026, 4, 10, 10))
    loyalty = _prepared(engine, clock)
    inserts: list[int] = []

    def count(conn: object, cursor: object, statement: str, parameters: object,
              context: object, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LK_OUTBOX"):
            inserts.append(len(parameters) if executemany else 1)  # type: ignore[arg-type]

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        loyalty.rewards.redeem("M", "coffee", key="r1")
        assert [2] == inserts
        loyalty.rewards.redeem("M", "coffee", key="r2")
        clock.set(berlin(2026, 5, 11))
        inserts.clear()
        assert 2 == loyalty.run_due().expired_vouchers
        assert [2] == inserts
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
