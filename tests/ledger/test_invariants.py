"""The invariant checks of ``loyaltykit.testing.invariants`` can fail.

A check that never fails proves nothing, so each test builds a small, sound ledger on
the in-memory backend, corrupts one thing on purpose (through the backend's tables or
a crafted change set written through a unit of work) and asserts that
``check_invariants`` raises an ``AssertionError`` naming the broken invariant.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator

import attrs
import pytest

from loyaltykit import (
    Account,
    ClawbackPolicy,
    ExpiryPolicy,
    Kind,
    LedgerPolicy,
    Loyalty,
    Money,
    Posting,
    Program,
    TestClock,
    Transaction,
    Voucher,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.changes import ChangeSet, write_changes
from loyaltykit.testing.invariants import (
    INVARIANTS,
    LedgerSnapshot,
    check_invariants,
    check_replay,
    find_due_work,
    find_spend_order_violations,
    find_unsettled_debt,
    find_violations,
    read_ledger,
)
from loyaltykit.testing.machine import CounterIds

START = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
MEMBERS = ["alice", "bob"]


def make_program(clawback: ClawbackPolicy = ClawbackPolicy.DEBT) -> Program:
    return Program(
        id="inv",
        time_zone="Europe/Berlin",
        currency="EUR",
        point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(days=90), clawback=clawback),
    )


@attrs.define
class Ledger:
    """A sound little ledger: earns, a pending earn, a spend, an open hold, a transfer."""

    storage: MemoryStorage
    loyalty: Loyalty
    clock: TestClock
    earn_id: uuid.UUID
    hold_id: uuid.UUID

    @property
    def program(self) -> Program:
        return self.loyalty.program

    @property
    def tables(self):  # the memory backend's internals, to corrupt on purpose
        from loyaltykit.memory.ledger import LedgerTables

        return self.storage._tables.of(LedgerTables)

    def key(self, member_id: str = "alice") -> tuple[str, str, str]:
        """The memory tables' key of the member's default wallet (by member key)."""
        from loyaltykit.memory.members import MemberKeyTables

        member_key = self.storage._tables.of(MemberKeyTables).keys[self.program.id][member_id]
        return (self.program.id, self.program.default_wallet, member_key)

    def lots_of(self, member_id: str = "alice"):
        # oldest first (a set's order follows the ids the source drew, events' ones too)
        lots = [self.tables.lots[i] for i in self.tables.member_lots[self.key(member_id)]]
        return sorted(lots, key=lambda lot: (lot.earned_at, lot.id))

    def check(self) -> None:
        check_invariants(self.storage, self.program, MEMBERS, at=self.clock.now())

    def broken(self) -> str:
        with pytest.raises(AssertionError) as info:
            self.check()
        return str(info.value)


def build(clawback: ClawbackPolicy = ClawbackPolicy.DEBT) -> Ledger:
    storage = MemoryStorage()
    clock = TestClock(START)
    loyalty = Loyalty(make_program(clawback), storage, clock=clock, new_id=CounterIds())
    for member_id in MEMBERS:
        loyalty.enrol(member_id)
    earn = loyalty.earn("alice", 100, key="e1")
    clock.advance(hours=1)
    loyalty.earn("alice", 50, key="e2")
    loyalty.earn("alice", 40, key="e3", activates_at=clock.now() + dt.timedelta(days=5))
    loyalty.spend("alice", 30, key="s1")
    hold = loyalty.hold("alice", 20, key="h1", ttl=dt.timedelta(days=1))
    loyalty.transfer("alice", "bob", 25, key="t1")
    clock.advance(minutes=5)
    return Ledger(storage, loyalty, clock, earn.transaction_id, hold.hold_id)


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    sound = build()
    sound.check()  # the control: nothing is broken before the test breaks it
    yield sound


def mentions(message: str, letter: str) -> bool:
    return f"invariant ({letter}) {INVARIANTS[letter]}" in message


def replace_frozen(value: object, **changes: object) -> None:
    """Change fields of a frozen record in place (as a buggy backend might store it)."""
    for name, new in changes.items():
        object.__setattr__(value, name, new)


# -- a sound ledger passes ------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(ClawbackPolicy))
def test_sound_ledgers_pass_under_every_clawback_policy(policy: ClawbackPolicy) -> None:
    sound = build(policy)
    sound.loyalty.clawback("bob", 500, key="c1")  # more than bob has: debt or write-off
    sound.loyalty.earn("bob", 10, key="e4")
    sound.clock.advance(days=200)
    sound.loyalty.run_due()
    sound.check()
    assert find_violations(read_ledger(sound.storage, sound.program, MEMBERS),
                           sound.program) == []


def test_allow_negative_shows_a_negative_available_balance_without_a_violation() -> None:
    sound = build(ClawbackPolicy.ALLOW_NEGATIVE)
    sound.loyalty.clawback("bob", 500, key="c1")
    assert sound.loyalty.balance("bob").available < 0
    sound.check()


# -- each invariant can fail ----------------------------------------------------------------


def test_a_unbalanced_transaction(ledger: Ledger) -> None:
    tx = ledger.tables.transactions[ledger.earn_id]
    replace_frozen(tx, postings=(*tx.postings, Posting(Account.ISSUED, -5)))
    message = ledger.broken()
    assert mentions(message, "a")
    assert str(ledger.earn_id) in message


def test_b_running_total_differs_from_postings(ledger: Ledger) -> None:
    state = ledger.tables.accounts[ledger.key()]
    ledger.tables.accounts[ledger.key()] = attrs.evolve(state, expired=state.expired + 3)
    message = ledger.broken()
    assert mentions(message, "b")
    assert "expired=3" in message


def test_c_balance_differs_from_lots(ledger: Ledger) -> None:
    lot = ledger.lots_of()[0]
    replace_frozen(lot, remaining=lot.remaining - 1)
    assert mentions(ledger.broken(), "c")


def test_c_transaction_moves_lots_and_balance_differently(ledger: Ledger) -> None:
    tx = ledger.tables.transactions[ledger.earn_id]
    (move,) = tx.movements
    replace_frozen(tx, movements=(attrs.evolve(move, delta=move.delta - 1),))
    message = ledger.broken()
    assert mentions(message, "c")
    assert f"moves {move.delta - 1} points in lots but changes" in message


def test_c_negative_debt() -> None:
    sound = build()
    state = sound.tables.accounts[sound.key("bob")]
    sound.tables.accounts[sound.key("bob")] = attrs.evolve(state, debt=4)
    message = sound.broken()
    assert mentions(message, "c")
    assert "owes a negative debt" in message


def test_d_held_above_remaining(ledger: Ledger) -> None:
    lot = ledger.lots_of()[0]
    replace_frozen(lot, held=lot.remaining + 1)
    message = ledger.broken()
    assert mentions(message, "d")
    assert "0 <= held" in message


def test_d_remaining_above_amount(ledger: Ledger) -> None:
    lot = ledger.lots_of()[0]
    replace_frozen(lot, remaining=lot.amount + 1)
    assert mentions(ledger.broken(), "d")


def test_d_remaining_differs_from_movements(ledger: Ledger) -> None:
    # stays within bounds, but no movement explains it
    lot = next(lot for lot in ledger.lots_of() if 0 < lot.remaining - lot.held)
    replace_frozen(lot, remaining=lot.remaining - 1)
    message = ledger.broken()
    assert mentions(message, "d")
    assert "its movements sum to" in message


def test_e_negative_available_written_through_a_unit_of_work(ledger: Ledger) -> None:
    # a crafted, balanced overdraft: the postings are fine, the balance is not
    program = ledger.program
    with by_shop_ids(ledger.storage).unit_of_work(program.id) as uow:
        state = uow.ledger.lock_accounts(program.default_wallet, ["bob"])["bob"]
        spend = Transaction(
            id=uuid.uuid4(), program_id=program.id, member_id="bob",
            wallet=program.default_wallet, kind=Kind.SPEND, occurred_at=ledger.clock.now(),
            recorded_at=ledger.clock.now(),
            postings=(Posting(Account.AVAILABLE, -(state.available + 7)),
                      Posting(Account.REDEEMED, state.available + 7)),
        )
        changes = ChangeSet(transactions=[spend],
                            accounts={("bob", program.default_wallet):
                                      state.apply(spend.postings)})
        write_changes(uow, changes)
        uow.commit()
    message = ledger.broken()
    assert mentions(message, "e")
    assert "available account is -7" in message


def test_e_debt_under_pending_only() -> None:
    sound = build(ClawbackPolicy.PENDING_ONLY)
    state = sound.tables.accounts[sound.key("bob")]
    sound.tables.accounts[sound.key("bob")] = attrs.evolve(state, debt=-5)
    message = sound.broken()
    assert mentions(message, "e")
    assert "PENDING_ONLY" in message


def test_f_hold_points_differ_from_held(ledger: Ledger) -> None:
    hold = ledger.tables.holds[ledger.hold_id]
    replace_frozen(hold, points=hold.points + 1)
    message = ledger.broken()
    assert mentions(message, "f")
    assert str(ledger.hold_id) in message


def test_f_allocation_exceeds_lot_held(ledger: Ledger) -> None:
    hold = ledger.tables.holds[ledger.hold_id]
    lot = ledger.tables.lots[hold.allocations[0].lot_id]
    replace_frozen(lot, held=0, remaining=lot.remaining)
    message = ledger.broken()
    assert mentions(message, "f")
    assert "which holds only 0" in message


def test_f_open_hold_missing_from_open_holds(ledger: Ledger) -> None:
    ledger.tables.member_holds[ledger.key()].remove(ledger.hold_id)
    message = ledger.broken()
    assert mentions(message, "f")


def test_g_pending_lot_counted_as_active(ledger: Ledger) -> None:
    lot = next(lot for lot in ledger.lots_of() if lot.pending)
    replace_frozen(lot, pending=False)
    message = ledger.broken()
    assert mentions(message, "g")
    assert not mentions(message, "c")  # the total is right, only the buckets are wrong


def test_h_system_accounts_do_not_balance(ledger: Ledger) -> None:
    # bob's transfer-in posts to a system account the running totals do not know of
    tx = next(ledger.tables.transactions[i]
              for i in ledger.tables.member_transactions[ledger.key("bob")])
    replace_frozen(tx, postings=(*tx.postings, Posting(Account.ADJUSTMENTS, 9)))
    message = ledger.broken()
    assert mentions(message, "h")
    assert "all postings sum to 9" in message


def test_i_next_due_at_later_than_an_expiry(ledger: Ledger) -> None:
    state = ledger.tables.accounts[ledger.key()]
    later = START + dt.timedelta(days=365)
    ledger.tables.accounts[ledger.key()] = attrs.evolve(state, next_due_at=later)
    message = ledger.broken()
    assert mentions(message, "i")


def test_j_due_work_left_undone(ledger: Ledger) -> None:
    def due() -> list[str]:
        snapshot = read_ledger(ledger.storage, ledger.program, MEMBERS)
        return [str(v) for v in find_due_work(snapshot, ledger.clock.now())]

    assert [] == due()
    expired = next(lot for lot in ledger.lots_of() if lot.remaining > lot.held)
    replace_frozen(expired, expires_at=START - dt.timedelta(days=1))
    pending = next(lot for lot in ledger.lots_of() if lot.pending)
    replace_frozen(pending, activates_at=START)
    hold = ledger.tables.holds[ledger.hold_id]
    replace_frozen(hold, expires_at=START)
    found = due()
    assert 3 == len(found)
    assert all(mentions(v, "j") for v in found)


def test_k_debit_skipped_a_lot_that_comes_first(ledger: Ledger) -> None:
    # soonest-expiring order: the first earn's lot (still spendable) comes before the second
    first, second = (lot for lot in ledger.lots_of() if not lot.pending)
    snapshot = read_ledger(ledger.storage, ledger.program, MEMBERS)
    now = ledger.clock.now()
    assert [] == find_spend_order_violations(snapshot, ledger.program, "alice", "points",
                                             [first.id], now)
    found = find_spend_order_violations(snapshot, ledger.program, "alice", "points",
                                        [second.id], now)
    assert 1 == len(found)
    assert mentions(str(found[0]), "k")
    assert str(first.id) in str(found[0])


def test_l_earn_did_not_settle_debt() -> None:
    sound = build()
    sound.loyalty.clawback("bob", 500, key="c1")
    earn = sound.loyalty.earn("bob", 10, key="e4")
    assert 0 == earn.balance.available
    assert [] == find_unsettled_debt(read_ledger(sound.storage, sound.program, MEMBERS))
    tx = sound.tables.transactions[earn.transaction_id]
    replace_frozen(tx, postings=(Posting(Account.ISSUED, -10), Posting(Account.AVAILABLE, 10)))
    found = find_unsettled_debt(read_ledger(sound.storage, sound.program, MEMBERS))
    assert 1 == len(found)
    assert mentions(str(found[0]), "l")


def test_s_open_lot_missing_from_load_lots(ledger: Ledger) -> None:
    lot = next(lot for lot in ledger.lots_of() if lot.remaining > lot.held)
    ledger.tables.member_lots[ledger.key()].remove(lot.id)
    message = ledger.broken()
    assert mentions(message, "s")
    assert "missing from load_lots" in message


def test_s_as_of_sums_disagree_with_running_totals(ledger: Ledger) -> None:
    # a transaction dated in the future is invisible as of now
    tx = ledger.tables.transactions[ledger.earn_id]
    replace_frozen(tx, occurred_at=ledger.clock.now() + dt.timedelta(days=1))
    message = ledger.broken()
    assert mentions(message, "s")
    assert "sums_as_of" in message


# -- replay ---------------------------------------------------------------------------------


def test_check_replay_accepts_a_true_replay(ledger: Ledger) -> None:
    def earn():
        return ledger.loyalty.earn("bob", 7, key="replayed")

    result = check_replay(ledger.loyalty, earn, MEMBERS)
    assert 7 == result.points


def test_check_replay_rejects_a_write_with_a_new_key(ledger: Ledger) -> None:
    keys = iter(range(10))

    def earn():
        return ledger.loyalty.earn("bob", 7, key=f"fresh-{next(keys)}")

    with pytest.raises(AssertionError, match="replay returned a different result"):
        check_replay(ledger.loyalty, earn, MEMBERS)


def test_check_replay_rejects_a_replay_that_writes(ledger: Ledger) -> None:
    original = ledger.loyalty.earn("bob", 7, key="k")
    calls: list[Callable[[], object]] = [
        lambda: ledger.loyalty.earn("alice", 1, key="side effect"),
    ]

    def replay():
        calls.pop()()  # a buggy backend that writes on replay
        return ledger.loyalty.earn("bob", 7, key="k")

    with pytest.raises(AssertionError, match="replay changed the ledger"):
        check_replay(ledger.loyalty, replay, MEMBERS, original=original)


def test_m_refunds_give_back_more_than_the_debit_took() -> None:
    from decimal import Decimal

    from loyaltykit import Order, OrderLine, PaymentPolicy

    program = attrs.evolve(make_program(), payments=PaymentPolicy(
        points=100, money=Money("1.00", "EUR"), max_share=Decimal("0.5")))
    storage = MemoryStorage()
    loyalty = Loyalty(program, storage, clock=TestClock(START))
    loyalty.enrol("alice")
    loyalty.earn("alice", 600, key="e1")
    loyalty.earn("alice", 600, key="e2")
    spent = loyalty.spend("alice", 1000, key="s")
    eur = Money("10.00", "EUR")
    order = Order(id="o", member_id="alice", placed_at=START, currency="EUR", lines=(
        OrderLine(sku="a", quantity=1, unit_price=eur),
        OrderLine(sku="b", quantity=1, unit_price=eur)))
    loyalty.record_order(order, paid_with=[spent.transaction_id])
    loyalty.record_return("o", {"b": 1}, key="r")
    check_invariants(storage, program, ["alice"])
    snapshot = read_ledger(storage, program, ["alice"])
    wallet = snapshot.wallets[("alice", "points")]
    refund = next(t for t in wallet.transactions if t.kind is Kind.REFUND)
    again = [attrs.evolve(refund, id=uuid.uuid4()) for _ in range(2)]
    forged = attrs.evolve(snapshot, wallets={("alice", "points"): attrs.evolve(
        wallet, transactions=(*again, *wallet.transactions))})
    found = [v for v in find_violations(forged, program) if v.invariant == "m"]
    assert any("were given back, it redeemed 1000" in v.message for v in found)
    assert any("went back to lot" in v.message for v in found)


# -- (v) vouchers ---------------------------------------------------------------------


def _reward_ledger() -> tuple[Loyalty, TestClock]:
    """Alice and Bob each redeem tea and a mug; Bob cancels his tea; the mugs expire
    (refunded) and Alice uses her tea. Sound."""
    from loyaltykit import CapPeriod, FreeItem, Reward, RewardLimit, RewardPolicy

    tea = Reward("tea", "Tea", 100, FreeItem("tea"), stock=3, global_limit=3,
                 per_member=RewardLimit(1, CapPeriod.ROLLING, days=7), valid_days=5)
    mug = Reward("mug", "Mug", 50, FreeItem("mug"), valid_days=1, refund_on_expiry=True)
    program = attrs.evolve(make_program(), rewards=RewardPolicy(catalogue=(tea, mug)))
    clock = TestClock(START)
    loyalty = Loyalty(program, MemoryStorage(), clock=clock, new_id=CounterIds())
    for member in MEMBERS:
        loyalty.enrol(member)
        loyalty.earn(member, 1000, key=f"earn {member}")
        loyalty.rewards.redeem(member, "tea", key=f"tea {member}")
        loyalty.rewards.redeem(member, "mug", key=f"mug {member}")
    bobs = loyalty.rewards.vouchers("bob")[0]
    loyalty.rewards.cancel(bobs.code, key="cancel")
    clock.advance(days=2)
    loyalty.run_due()
    loyalty.rewards.use(loyalty.rewards.vouchers("alice")[0].code, order_id="o", key="use")
    check_invariants(loyalty.storage, program, MEMBERS, at=clock.now())
    return loyalty, clock


def _v(loyalty: Loyalty, snapshot: LedgerSnapshot | None = None,
       program: Program | None = None, at: dt.datetime | None = None) -> list[str]:
    """The messages of the (v) violations found in ``snapshot`` (default: as stored)."""
    snap = snapshot or read_ledger(loyalty.storage, loyalty.program, MEMBERS)
    return [v.message for v in find_violations(snap, program or loyalty.program, at=at)
            if v.invariant == "v"]


def _with(snapshot: LedgerSnapshot, *vouchers: Voucher) -> LedgerSnapshot:
    return attrs.evolve(snapshot, vouchers={**snapshot.vouchers,
                                            **{v.id: v for v in vouchers}})


def test_v_counters_that_disagree_with_the_vouchers() -> None:
    from loyaltykit.memory.rewards import RewardTables

    loyalty, clock = _reward_ledger()
    tables = loyalty.storage._tables.of(RewardTables)  # corrupt the memory backend
    key = ("inv", "tea")
    tables.counters[key] = (tables.counters[key][0] + 1, tables.counters[key][1])
    with pytest.raises(AssertionError, match=r"invariant \(v\).*'tea': counters"):
        check_invariants(loyalty.storage, loyalty.program, MEMBERS, at=clock.now())


def test_v_stock_and_global_limit_exceeded() -> None:
    from loyaltykit import RewardPolicy

    loyalty, _ = _reward_ledger()
    policy = loyalty.program.rewards
    assert policy is not None
    tea = attrs.evolve(policy.by_id["tea"], stock=0, global_limit=None)
    program = attrs.evolve(loyalty.program, rewards=RewardPolicy(
        catalogue=(tea, policy.by_id["mug"])))
    assert any("hold an item of a stock of 0" in m for m in _v(loyalty, program=program))
    # the two expired mugs still count against the global limit
    mug = attrs.evolve(policy.by_id["mug"], global_limit=1)
    program = attrs.evolve(program, rewards=RewardPolicy(catalogue=(policy.by_id["tea"], mug)))
    assert ["reward 'mug': 2 redemptions, the global limit is 1"] == _v(loyalty,
                                                                       program=program)


def test_v_member_limit_exceeded_in_a_rolling_window() -> None:
    loyalty, _ = _reward_ledger()
    snapshot = read_ledger(loyalty.storage, loyalty.program, MEMBERS)
    alices = next(v for v in snapshot.vouchers.values()
                  if v.member_id == "alice" and v.reward_id == "tea")
    twin = attrs.evolve(alices, id=uuid.uuid4(), code="0" * 11,
                        issued_at=alices.issued_at + dt.timedelta(days=6))
    found = _v(loyalty, _with(snapshot, twin))
    assert any("has 2 vouchers in the rolling period" in m for m in found)
    apart = attrs.evolve(twin, issued_at=alices.issued_at + dt.timedelta(days=8))
    assert not any("vouchers in the rolling period" in m
                   for m in _v(loyalty, _with(snapshot, apart)))


def test_v_spends_given_back_or_kept_wrongly() -> None:
    from loyaltykit import VoucherStatus

    loyalty, _ = _reward_ledger()
    snapshot = read_ledger(loyalty.storage, loyalty.program, MEMBERS)
    cancelled = next(v for v in snapshot.vouchers.values()
                     if v.status is VoucherStatus.CANCELLED)
    # the cancelled voucher's refund is missing from the ledger
    wallet = snapshot.wallets[("bob", "points")]
    kept = attrs.evolve(snapshot, wallets={**snapshot.wallets, ("bob", "points"): attrs.evolve(
        wallet, transactions=tuple(t for t in wallet.transactions
                                   if t.id != cancelled.refund_id))})
    assert any("is not reversed" in m for m in _v(loyalty, kept))
    # an issued voucher whose spend the rewards gave back
    issued = attrs.evolve(cancelled, status=VoucherStatus.ISSUED, cancelled_at=None,
                          refund_id=None)
    assert any("while the voucher stands" in m
               for m in _v(loyalty, _with(snapshot, issued)))
    # a reward that does not refund on expiry, but the expired mugs were refunded
    from loyaltykit import RewardPolicy

    policy = loyalty.program.rewards
    assert policy is not None
    mug = attrs.evolve(policy.by_id["mug"], refund_on_expiry=False)
    program = attrs.evolve(loyalty.program, rewards=RewardPolicy(
        catalogue=(policy.by_id["tea"], mug)))
    assert any("does not refund on expiry" in m for m in _v(loyalty, program=program))


def test_v_codes_and_status_fields() -> None:
    from loyaltykit import VoucherStatus

    loyalty, clock = _reward_ledger()
    snapshot = read_ledger(loyalty.storage, loyalty.program, MEMBERS)
    used = next(v for v in snapshot.vouchers.values() if v.status is VoucherStatus.USED)
    lower = attrs.evolve(used, code=used.code.lower())
    assert any("not stored normalised" in m for m in _v(loyalty, _with(snapshot, lower)))
    unused = attrs.evolve(used, used_at=None)
    assert any("is used with used_at None" in m for m in _v(loyalty, _with(snapshot, unused)))
    # expired vouchers whose expiry has not come at the instant checked
    early = START + dt.timedelta(hours=1)
    assert any("is expired at" in m for m in _v(loyalty, at=early))
    assert [] == _v(loyalty, at=clock.now())


def test_every_invariant_has_a_failing_test() -> None:
    tested = {name.split("_")[1] for name in globals() if name.startswith("test_")}
    assert set(INVARIANTS) <= tested
