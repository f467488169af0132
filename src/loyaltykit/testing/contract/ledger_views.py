"""The read part of the ledger contract: balances (also as of a past instant), statements
and independent wallets.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from loyaltykit import (
    Balance,
    InsufficientPoints,
    InvalidInput,
    Kind,
    Storage,
    UnknownWallet,
)
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import (
    L_EXPIRY,
    ContractPart,
    Shop,
    berlin,
    make_program,
    statement_lines,
    utc,
)
from loyaltykit.testing.contract.base import MINUTE as _MINUTE
from loyaltykit.testing.contract.base import kinds as _kinds

__all__ = ["LedgerViewContract"]


class LedgerViewContract(ContractPart):
    """Balances, statements and wallets on a backend: part of :class:`LedgerContract`."""

    # -- balance view ---------------------------------------------------------------------

    def _mixed_history(self, storage: Storage) -> Shop:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m", "n")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="a")  # lot A, expires 2027-02-01
        shop.go(2026, 3, 10, 9)
        shop.loyalty.earn("m", 50, key="b")  # lot B, expires 2027-04-01
        shop.go(2026, 4, 1, 9)
        shop.loyalty.spend("m", 30, key="spend")  # A 70
        shop.go(2026, 4, 2, 9)
        shop.loyalty.adjust("m", 10, key="adjust", reason="goodwill")  # C, 2027-05-01
        shop.go(2026, 4, 3, 9)
        shop.loyalty.transfer("m", "n", 20, key="transfer")  # A 50
        shop.go(2026, 4, 4, 9)
        shop.loyalty.hold("m", 15, key="hold", ttl=dt.timedelta(days=7))  # A held 15
        shop.go(2026, 4, 5, 9)
        shop.loyalty.earn("m", 25, key="d", activates_at=berlin(2026, 5, 1))  # pending D
        return shop

    def test_balance_view_fields(self, storage: Storage) -> None:
        shop = self._mixed_history(storage)
        balance = shop.balance("m")
        assert Balance(
            member_id="m", wallet="points", as_of=utc(2026, 4, 5, 7), available=95,
            pending=25, held=15, debt=0, total=135, earned=175, spent=30, expired=0,
            adjusted=10, transferred=-20, next_expiring_points=50,
            next_expiring_at=utc(2027, 1, 31, 23),
        ) == balance
        shop.check("m", "n")
        shop.go(2027, 2, 1, 0, 30)
        report = shop.loyalty.run_due()
        assert (1, 25, 2, 70, 1, 15, 2) == (
            report.activated_lots, report.activated_points, report.expired_lots,
            report.expired_points, report.released_holds, report.released_points,
            report.members)
        assert 20 == shop.balance("n").expired
        assert Balance(
            member_id="m", wallet="points", as_of=utc(2027, 1, 31, 23, 30), available=85,
            pending=0, held=0, debt=0, total=85, earned=175, spent=30, expired=50,
            adjusted=10, transferred=-20, next_expiring_points=50,
            next_expiring_at=utc(2027, 3, 31, 22),
        ) == shop.balance("m")
        shop.check("m", "n")

    def test_balance_as_of_a_past_instant(self, storage: Storage) -> None:
        shop = self._mixed_history(storage)
        shop.go(2027, 2, 1, 0, 30)
        shop.loyalty.run_due()

        def at(*parts: int) -> Balance:
            return shop.balance("m", as_of=berlin(*parts))

        assert (0, 0, 0, None) == (at(2026, 1, 1).available, at(2026, 1, 1).total,
                                   at(2026, 1, 1).earned, at(2026, 1, 1).next_expiring_at)
        march = at(2026, 3, 31)
        assert (150, 150, 150, 0, 100, utc(2027, 1, 31, 23)) == (
            march.available, march.total, march.earned, march.spent,
            march.next_expiring_points, march.next_expiring_at)
        assert berlin(2026, 3, 31) == march.as_of
        april = at(2026, 4, 2, 12)
        assert (130, 30, 10, 0) == (april.available, april.spent, april.adjusted,
                                    april.transferred)
        held = at(2026, 4, 6)
        assert (95, 25, 15, 135) == (held.available, held.pending, held.held, held.total)
        released = at(2026, 4, 12)
        assert (110, 25, 0) == (released.available, released.pending, released.held)
        activated = at(2026, 5, 2)
        assert (135, 0) == (activated.available, activated.pending)
        expired = at(2027, 2, 1, 0, 0)
        assert (85, 50, 50, utc(2027, 3, 31, 22)) == (
            expired.available, expired.expired, expired.next_expiring_points,
            expired.next_expiring_at)
        just_before = at(2027, 1, 31, 23, 59)
        assert (135, 0) == (just_before.available, just_before.expired)
        with pytest.raises(InvalidInput):
            shop.balance("m", as_of=shop.clock.now() + _MINUTE)

    # -- statement ------------------------------------------------------------------------

    def test_statement_is_newest_first_with_a_running_balance(
        self, storage: Storage
    ) -> None:
        shop = self._mixed_history(storage)
        lines = statement_lines(shop.loyalty, "m")
        assert [Kind.EARN, Kind.HOLD, Kind.TRANSFER, Kind.ADJUST, Kind.SPEND, Kind.EARN,
                Kind.EARN] == _kinds(lines)
        assert [135, 110, 110, 130, 120, 150, 100] == [line.balance for line in lines]
        assert [25, 0, -20, 10, -30, 50, 100] == [line.points for line in lines]
        assert "goodwill" == lines[3].reason
        stamps = [line.occurred_at for line in lines]
        assert sorted(stamps, reverse=True) == stamps

    def test_statement_pages_cover_every_transaction_once(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        expected = set()
        for i in range(23):
            # several transactions share one business instant
            at = berlin(2026, 1, 1, 8) + dt.timedelta(minutes=i // 5)
            expected.add(shop.loyalty.earn("m", i + 1, key=f"e{i}", at=at).transaction_id)
        for limit in (1, 4, 5, 23, 50):
            pages = []
            cursor = None
            while True:
                page = shop.loyalty.statement("m", limit=limit, cursor=cursor)
                assert len(page.lines) <= limit
                pages.append(page)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            lines = [line for page in pages for line in page.lines]
            assert expected == {line.transaction_id for line in lines}
            assert len(expected) == len(lines)
            assert sum(range(1, 24)) == lines[0].balance
            for newer, older in itertools.pairwise(lines):
                assert newer.balance - newer.points == older.balance
                assert (newer.occurred_at, newer.transaction_id) > (
                    older.occurred_at, older.transaction_id)
            assert lines[-1].points == lines[-1].balance

    # -- wallets --------------------------------------------------------------------------

    def test_wallets_are_independent(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(wallets=("points", "credits")))
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="credit", wallet="credits")
        shop.loyalty.earn("m", 3, key="point")
        assert (3, 10) == (shop.balance("m").available,
                           shop.balance("m", wallet="credits").available)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 5, key="pay")
        assert before == shop.snapshot("m")
        hold = shop.loyalty.hold("m", 5, key="cart", ttl=_TTL, wallet="credits")
        capture = shop.loyalty.capture(hold.hold_id, key="paid")
        assert ("credits", 5, 5) == (capture.wallet, capture.balance.available,
                                     capture.balance.spent)
        assert [13 - 10] == [lot.remaining for lot in shop.loyalty.lots("m")]
        assert [Kind.CAPTURE, Kind.HOLD, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m", wallet="credits"))
        assert [Kind.EARN] == _kinds(statement_lines(shop.loyalty, "m"))
        shop.check("m")

    def test_unknown_wallet(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(wallets=("points", "credits")))
        shop.enrol("m")
        before = shop.snapshot("m")
        with pytest.raises(UnknownWallet) as info:
            shop.loyalty.earn("m", 10, key="k", wallet="miles")
        assert "miles" == info.value.details["wallet"]
        with pytest.raises(UnknownWallet):
            shop.balance("m", wallet="miles")
        assert before == shop.snapshot("m")
