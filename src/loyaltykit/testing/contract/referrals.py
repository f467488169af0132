"""The referral part of the storage contract (DESIGN §6, scenarios R1-R4).

:class:`ReferralContract` is mixed into :class:`loyaltykit.testing.contract.StorageContract`,
so every backend runs it (a backend may also run it alone): codes unique by the storage
(with a tiny keyspace that forces collisions), the planned volume of codes (also under a
race), usage limits under a race, one referrer
per referee, two-sided pending rewards voided by a return, caps, sources, campaigns and
the fraud checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pendulum
import pytest

from loyaltykit import (
    AlreadyReferred,
    Campaign,
    CapPeriod,
    CodeExpired,
    CodeNotFound,
    CodeSpec,
    CodeUsedUp,
    CodeVolumeExhausted,
    FraudCheck,
    Identity,
    InvalidCode,
    Loyalty,
    Money,
    NotReferable,
    Order,
    OrderLine,
    Outcome,
    Program,
    ProgramVersionConflict,
    ReferralCap,
    ReferralCase,
    ReferralNotFlagged,
    ReferralPolicy,
    ReferralReward,
    ReferralStatus,
    RetryLimitExceeded,
    SelfReferral,
    Source,
    Storage,
    TestClock,
    Verdict,
)
from loyaltykit._codes import ALPHABET, damm_symbol
from loyaltykit.storage import ProgramVersion
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory

__all__ = ["SECRET", "ReferralContract", "referral_program", "symbols"]

_BERLIN = pendulum.timezone("Europe/Berlin")
#: The program secret the contract's facades key fingerprints with.
SECRET = b"contract-secret-0123456789abcdef"


def _berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
            second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=_BERLIN)


def referral_program(**overrides: Any) -> Program:
    """Scenario R's policy (500 / 250 points, first order of at least 20.00 EUR within 30
    days, 14-day return window, 10 paid referrals per referrer per calendar year), in a
    Europe/Berlin EUR program without earning rules; ``overrides`` change the policy."""
    fields: dict[str, Any] = {
        "reward": ReferralReward(referrer=500, referee=250),
        "min_net": Money("20.00", "EUR"), "qualify_within_days": 30,
        "return_window_days": 14, "cap": ReferralCap(10, CapPeriod.YEAR),
    }
    fields.update(overrides)
    return Program(id="ref", time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"), referrals=ReferralPolicy(**fields))


def _race(members: Sequence[str], attempt: Callable[[str], object],
          refused: type[Exception], *, won: str, lost: str) -> dict[str, str]:
    """Run ``attempt(member)`` for every member at once (threads released together);
    each member's outcome is ``won``, or ``lost`` where it raised ``refused``."""
    barrier = threading.Barrier(len(members))
    outcomes: dict[str, str] = {}

    def race(member_id: str) -> None:
        barrier.wait()
        try:
            attempt(member_id)
            outcomes[member_id] = won
        except refused:
            outcomes[member_id] = lost

    threads = [threading.Thread(target=race, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def symbols(text: str) -> Callable[[int], int]:
    """A ``randbelow`` that draws the Crockford symbols of ``text`` in turn, forever."""
    values = [ALPHABET.index(c) for c in text]
    state = {"i": 0}
    lock = threading.Lock()

    def randbelow(n: int) -> int:
        with lock:
            value = values[state["i"] % len(values)]
            state["i"] += 1
        assert value < n
        return value

    return randbelow


class _Counting:
    """A storage wrapper counting the units of work opened."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.opened = 0

    @property
    def concurrent(self) -> bool:
        return self.inner.concurrent

    def unit_of_work(self, program_id: str) -> Any:
        self.opened += 1
        return self.inner.unit_of_work(program_id)

    def register_program(self, version: Any) -> None:
        self.inner.register_program(version)


class ReferralContract(ContractPart):
    """Referrals on a backend: mixed into StorageContract."""

    def _ref(self, storage: Storage, program: Program | None = None, *,
             start: dt.datetime | None = None, randbelow: Callable[[int], int] | None = None,
             fraud_checks: Sequence[FraudCheck] | None = None,
             factory: LoyaltyFactory | None = None) -> tuple[Loyalty, TestClock]:
        clock = TestClock(start or _berlin(2026, 3, 1, 9))
        extra: dict[str, Any] = {}
        if randbelow is not None:
            extra["randbelow"] = randbelow
        loyalty = (factory or self.make_loyalty)(
            program or referral_program(), storage, clock=clock, secret=SECRET,
            fraud_checks=fraud_checks, **extra)
        return loyalty, clock

    @staticmethod
    def _ref_order(loyalty: Loyalty, clock: TestClock, order_id: str, member_id: str,
               euros: str, at: dt.datetime) -> None:
        clock.set(at)
        loyalty.record_order(Order(
            id=order_id, member_id=member_id, placed_at=at, currency="EUR",
            lines=(OrderLine(line_id="l1", sku="x", quantity=1, unit_price=Money(euros, "EUR")),)))

    @staticmethod
    def _ref_points(loyalty: Loyalty, member_id: str) -> tuple[int, int]:
        balance = loyalty.balance(member_id)
        return balance.available, balance.pending

    # -- scenarios R1-R4 ------------------------------------------------------------------

    def _r1_setup(self, storage: Storage) -> tuple[Loyalty, TestClock, str]:
        loyalty, clock = self._ref(storage, randbelow=symbols("7K30DM9XWP"))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice")
        assert "7K30D-M9XWP-" == code.shown[:12]
        # typed in lower case, with the letter o for the zero, without hyphens
        typed = code.shown.replace("-", "").lower().replace("0", "o")
        assert "o" in typed and typed.upper() != code.code
        loyalty.enrol("bob", referral_code=typed)
        return loyalty, clock, typed

    def test_r1_code_typed_loosely_attributes_and_both_rewards_pend_then_settle(
        self, storage: Storage
    ) -> None:
        loyalty, clock, _ = self._r1_setup(storage)
        referral = loyalty.referrals.get("bob")
        assert ("alice", ReferralStatus.WAITING) == (referral.referrer_id, referral.status)
        # day 5: the first order, 25.00 EUR
        self._ref_order(loyalty, clock, "o1", "bob", "25.00", _berlin(2026, 3, 6, 10))
        assert (0, 500) == self._ref_points(loyalty, "alice")
        assert (0, 250) == self._ref_points(loyalty, "bob")
        paid = loyalty.referrals.get("bob")
        assert (ReferralStatus.QUALIFIED, "o1", 500, 250) == (
            paid.status, paid.order_id, paid.referrer_points, paid.referee_points)
        assert _berlin(2026, 3, 20, 10) == paid.settles_at
        assert 1 == loyalty.referrals.stats("alice").pending
        # day 19: due work makes both available (not a minute before)
        clock.set(_berlin(2026, 3, 20, 9, 59))
        loyalty.run_due()
        assert (0, 500) == self._ref_points(loyalty, "alice")
        clock.set(_berlin(2026, 3, 20, 10))
        loyalty.run_due()
        assert (500, 0) == self._ref_points(loyalty, "alice")
        assert (250, 0) == self._ref_points(loyalty, "bob")
        stats = loyalty.referrals.stats("alice")
        assert (1, 1, 0, 1, 500) == (stats.invited, stats.qualified, stats.pending,
                                     stats.rewarded, stats.points_rewarded)

    def test_r2_a_return_within_the_window_voids_both_rewards(self, storage: Storage) -> None:
        loyalty, clock, _ = self._r1_setup(storage)
        self._ref_order(loyalty, clock, "o1", "bob", "25.00", _berlin(2026, 3, 6, 10))
        clock.set(_berlin(2026, 3, 11, 10))  # day 10
        loyalty.record_return("o1", {"l1": 1}, key="ret-1")
        assert ReferralStatus.VOIDED == loyalty.referrals.get("bob").status
        for day in (19, 40):
            clock.set(_berlin(2026, 3, 1, 9) + dt.timedelta(days=day))
            loyalty.run_due()
            assert (0, 0) == self._ref_points(loyalty, "alice")
            assert (0, 0) == self._ref_points(loyalty, "bob")
        stats = loyalty.referrals.stats("alice")
        assert (1, 0, 0) == (stats.voided, stats.qualified, stats.points_rewarded)

    def test_r2_a_return_after_the_window_voids_nothing(self, storage: Storage) -> None:
        loyalty, clock, _ = self._r1_setup(storage)
        self._ref_order(loyalty, clock, "o1", "bob", "25.00", _berlin(2026, 3, 6, 10))
        clock.set(_berlin(2026, 3, 20, 10))
        loyalty.record_return("o1", {"l1": 1}, key="ret-1")
        assert ReferralStatus.QUALIFIED == loyalty.referrals.get("bob").status
        loyalty.run_due()
        assert (500, 0) == self._ref_points(loyalty, "alice")

    def test_r3_same_normalised_email_is_blocked_as_self_referral(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage)
        loyalty.enrol("alice", identity=Identity(email="alice@gmail.com"))
        code = loyalty.referrals.issue_code("alice")
        loyalty.enrol("alice-2", referral_code=code.shown,
                      identity=Identity(email="a.lice+promo@gmail.com"))
        referral = loyalty.referrals.get("alice-2")
        assert ReferralStatus.BLOCKED == referral.status
        assert ("self-referral: same e-mail as the referrer",) == referral.reasons
        self._ref_order(loyalty, clock, "o1", "alice-2", "25.00", _berlin(2026, 3, 6, 10))
        assert (0, 0) == self._ref_points(loyalty, "alice")
        stats = loyalty.referrals.stats("alice")
        assert (1, 1) == (stats.invited, stats.rejected)
        assert {"self-referral: same e-mail as the referrer": 1} == dict(stats.reasons)
        assert 0 == loyalty.referrals.codes("alice")[0].uses  # a blocked attempt uses nothing

    def test_r4_a_mistyped_code_is_invalid_without_a_storage_lookup(
        self, storage: Storage
    ) -> None:
        counting = _Counting(storage)
        # the sync facade on a storage counting its units of work: a facade building its
        # own storage (make_loyalty's) would count nothing
        loyalty, _ = self._ref(counting, factory=Loyalty)
        loyalty.enrol("alice")
        loyalty.enrol("bob")
        code = loyalty.referrals.issue_code("alice").code
        wrong = next(c for c in ALPHABET if c != code[3])
        typo = code[:3] + wrong + code[4:]
        before = counting.opened
        with pytest.raises(InvalidCode):
            loyalty.referrals.refer("bob", typo)
        with pytest.raises(InvalidCode):
            loyalty.referrals.check_code(typo)
        assert before == counting.opened
        # a well-formed code nobody was given is "unknown", which needs the lookup
        other = next(c for c in (loyalty.program.referrals.code.draw(  # type: ignore[union-attr]
            random.Random(i).randrange) for i in range(10)) if c != code)
        with pytest.raises(CodeNotFound):
            loyalty.referrals.refer("bob", other)
        with pytest.raises(Exception) as refused:
            loyalty.referrals.get("bob")
        assert "referral_not_found" == refused.value.code  # type: ignore[attr-defined]

    # -- codes ----------------------------------------------------------------------------

    def test_a_taken_code_is_drawn_again(self, storage: Storage) -> None:
        # every draw repeats until the sequence moves on: the second member's first
        # draw is the first member's code
        loyalty, _ = self._ref(storage, randbelow=symbols("AAAAAAAAAA" * 2 + "BBBBBBBBBB"))
        loyalty.enrol("alice")
        loyalty.enrol("bob")
        first = loyalty.referrals.issue_code("alice")
        second = loyalty.referrals.issue_code("bob")
        assert first.code.startswith("AAAAAAAAAA")
        assert second.code.startswith("BBBBBBBBBB")
        assert [second] == loyalty.referrals.codes("bob")

    def test_a_tiny_keyspace_forces_collisions_and_every_code_stays_unique(
        self, storage: Storage
    ) -> None:
        rng = random.Random(7)
        draws = {"n": 0}

        def two_symbols(n: int) -> int:  # 2**10 = 1024 codes of 10 symbols
            draws["n"] += 1
            return rng.randrange(2)

        loyalty, _ = self._ref(storage, randbelow=two_symbols)
        loyalty.enrol("m")
        issued = [loyalty.referrals.issue_code("m", key=f"c{i}").code for i in range(120)]
        assert len(set(issued)) == len(issued)
        assert draws["n"] > 10 * len(issued)  # some draws collided and were redrawn
        assert sorted(issued) == sorted(c.code for c in loyalty.referrals.codes("m"))

    def test_an_exhausted_keyspace_gives_up_and_writes_nothing(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage, randbelow=symbols("0"))
        loyalty.enrol("alice")
        loyalty.enrol("bob")
        loyalty.referrals.issue_code("alice")
        with pytest.raises(RetryLimitExceeded):
            loyalty.referrals.issue_code("bob")
        assert [] == loyalty.referrals.codes("bob")

    def test_codes_past_the_planned_volume_are_refused_and_write_nothing(
        self, storage: Storage
    ) -> None:
        program = referral_program(code=CodeSpec(length=6, group=3, planned=3))
        loyalty, _ = self._ref(storage, program)
        for m in ("alice", "bob"):
            loyalty.enrol(m)
        first = loyalty.referrals.issue_code("alice")
        loyalty.referrals.issue_code("alice", key="second")
        loyalty.referrals.issue_code("bob")
        issued = {m: loyalty.referrals.codes(m) for m in ("alice", "bob")}
        with pytest.raises(CodeVolumeExhausted) as refused:
            loyalty.referrals.issue_code("bob", key="fourth")
        assert "code_volume_exhausted" == refused.value.code
        assert isinstance(refused.value, ValueError)
        assert {"planned": 3, "issued": 3} == dict(refused.value.details)
        assert issued == {m: loyalty.referrals.codes(m) for m in ("alice", "bob")}
        # a repeat of a key that issued a code replays it: nothing new is issued
        assert first == loyalty.referrals.issue_code("alice")
        # another program's codes are its own
        other, _ = self._ref(storage, attrs.evolve(program, id="ref-other"))
        other.enrol("carol")
        assert 1 == len([other.referrals.issue_code("carol")])
        # a new version with a larger plan issues more, up to that plan
        assert program.referrals is not None
        bigger = attrs.evolve(program, version=2, referrals=attrs.evolve(
            program.referrals, code=CodeSpec(length=6, group=3, planned=4)))
        grown, _ = self._ref(storage, bigger)
        grown.referrals.issue_code("bob", key="fourth")
        with pytest.raises(CodeVolumeExhausted):
            grown.referrals.issue_code("bob", key="fifth")
        assert 4 == sum(len(grown.referrals.codes(m)) for m in ("alice", "bob"))
        # an erased member's codes stay, and so do they in the count
        assert grown.privacy.erase("alice").erased
        with pytest.raises(CodeVolumeExhausted) as still:
            grown.referrals.issue_code("bob", key="sixth")
        assert {"planned": 4, "issued": 4} == dict(still.value.details)
        with storage.unit_of_work(program.id) as uow:
            assert 4 == uow.referrals.count_codes()

    def test_codes_issued_with_the_mod37_check_keep_working_after_a_switch(
        self, storage: Storage
    ) -> None:
        # version 1 as an earlier release stored it: its code spec has no check_scheme
        legacy = referral_program(code=CodeSpec(length=10, group=5, check_scheme="mod37"))
        definition = legacy.to_dict()
        del definition["referrals"]["code"]["check_scheme"]
        storage.register_program(ProgramVersion(legacy.id, 1, None, definition,
                                                _berlin(2026, 2, 1)))
        # the same version built anew gets the Damm check: a changed definition, refused
        with pytest.raises(ProgramVersionConflict):
            self._ref(storage, referral_program())
        old, _ = self._ref(storage, legacy, randbelow=symbols("7K30DM9XW1"))
        old.enrol("alice")
        issued = old.referrals.issue_code("alice")
        assert ("7K30DM9XW1$", "7K30D-M9XW1-$") == (issued.code, issued.shown)
        assert legacy.referrals is not None
        # a version 2 that refuses those codes is refused, writing nothing
        strict = attrs.evolve(legacy, version=2, referrals=attrs.evolve(
            legacy.referrals, code=CodeSpec(length=10, group=5)))
        with pytest.raises(ProgramVersionConflict) as refused:
            self._ref(storage, strict)
        assert ("code.check_scheme", "mod37", "damm32") == tuple(
            refused.value.details[k] for k in ("field", "stored", "given"))
        with storage.unit_of_work(legacy.id) as uow:
            assert [1] == [v.version for v in uow.programs.program_versions()]
        # one that accepts both issues Damm codes and still takes the old one, as typed
        both = attrs.evolve(strict, referrals=attrs.evolve(
            legacy.referrals, code=CodeSpec(length=10, group=5, check_scheme="damm32+mod37")))
        switched, _ = self._ref(storage, both, randbelow=symbols("7K30DM9XW1"))
        new = switched.referrals.issue_code("alice", key="new")
        assert "7K30DM9XW1" + damm_symbol("7K30DM9XW1") == new.code
        assert new.code[-1] in ALPHABET
        switched.enrol("bob", referral_code="7k30d m9xw1 $")
        switched.enrol("carol", referral_code=new.shown.lower())
        assert ["alice", "alice"] == [switched.referrals.get(m).referrer_id
                                      for m in ("bob", "carol")]
        # a text with a valid check under neither rule is refused before any lookup
        with pytest.raises(InvalidCode):
            switched.referrals.check_code("7K30DM9XW1*")

    def test_the_code_counter_reserves_within_the_plan_and_rolls_back(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.register()  # the counter's row refers to the program's
        other, _ = self._ref(storage, attrs.evolve(referral_program(), id="ref-other"))
        other.register()
        program_id = loyalty.program.id
        with storage.unit_of_work(program_id) as uow:
            assert 0 == uow.referrals.count_codes()
            assert uow.referrals.reserve_codes(2, 3)
            assert 2 == uow.referrals.count_codes()  # its own reservation
            assert not uow.referrals.reserve_codes(2, 3)
            assert not uow.referrals.reserve_codes(4, 3)  # the first, too
            assert 2 == uow.referrals.count_codes()
            uow.commit()
        with storage.unit_of_work(program_id) as uow:
            assert uow.referrals.reserve_codes(1, 3)  # not committed: rolled back
        with pytest.raises(RuntimeError, match="boom"), \
                storage.unit_of_work(program_id) as uow:
            assert uow.referrals.reserve_codes(1, 3)
            raise RuntimeError("boom")
        with storage.unit_of_work(program_id) as uow:
            assert 2 == uow.referrals.count_codes()
            assert uow.referrals.reserve_codes(1, 3)  # up to the plan exactly
            uow.commit()
        with storage.unit_of_work(program_id) as uow:
            assert (3, False, True) == (uow.referrals.count_codes(),
                                        uow.referrals.reserve_codes(1, 3),
                                        uow.referrals.reserve_codes(1, 4))
        with storage.unit_of_work(other.program.id) as uow:
            assert 0 == uow.referrals.count_codes()  # each program counts its own

    def test_racing_issuers_never_pass_the_planned_volume(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage, referral_program(
            code=CodeSpec(length=6, group=3, planned=4)))
        racers = [f"r{i}" for i in range(10)]
        for m in racers:
            loyalty.enrol(m)
        loyalty.referrals.issue_code("r0", key="before the race")
        outcomes = _race(racers, loyalty.referrals.issue_code, CodeVolumeExhausted,
                         won="issued", lost="refused")
        assert {"issued": 3, "refused": 7} == {
            o: sum(1 for x in outcomes.values() if x == o) for o in ("issued", "refused")}
        assert 4 == sum(len(loyalty.referrals.codes(m)) for m in racers)

    def test_issue_code_is_idempotent_by_key(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.enrol("alice")
        first = loyalty.referrals.issue_code("alice", source=Source.EMPLOYEE)
        assert first == loyalty.referrals.issue_code("alice", source=Source.EMPLOYEE)
        assert [first] == loyalty.referrals.codes("alice")
        assert Source.EMPLOYEE == first.source

    def test_code_expiry_and_usage_limit(self, storage: Storage) -> None:
        loyalty, clock = self._ref(storage)
        loyalty.enrol("alice")
        for m in ("bob", "carol", "dave"):
            loyalty.enrol(m)
        once = loyalty.referrals.issue_code("alice", key="once", max_uses=1)
        soon = loyalty.referrals.issue_code("alice", key="soon",
                                  expires_at=clock.now() + dt.timedelta(hours=1))
        assert ReferralStatus.WAITING == loyalty.referrals.refer("bob", once.code).status
        with pytest.raises(CodeUsedUp):
            loyalty.referrals.refer("carol", once.code)
        clock.set(clock.now() + dt.timedelta(hours=1))
        with pytest.raises(CodeExpired):
            loyalty.referrals.refer("dave", soon.shown)
        for m in ("carol", "dave"):
            with pytest.raises(Exception, match="referral_not_found"):
                loyalty.referrals.get(m)
        assert {once.code: 1,
                soon.code: 0} == {c.code: c.uses for c in loyalty.referrals.codes("alice")}

    def test_racing_referees_for_a_single_use_code_exactly_one_wins(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.enrol("alice")
        racers = [f"r{i}" for i in range(8)]
        for m in racers:
            loyalty.enrol(m)
        code = loyalty.referrals.issue_code("alice", max_uses=1).code
        outcomes = _race(racers, lambda m: loyalty.referrals.refer(m, code), CodeUsedUp,
                         won="won", lost="used up")
        winners = [m for m, o in outcomes.items() if o == "won"]
        assert 1 == len(winners)
        assert len(racers) - 1 == sum(1 for o in outcomes.values() if o == "used up")
        assert [winners[0]] == [r.referee_id for r in loyalty.referrals.made_by("alice")]
        assert 1 == loyalty.referrals.codes("alice")[0].uses

    # -- attribution ----------------------------------------------------------------------

    def test_one_referrer_per_referee_and_no_self_referral(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage)
        for m in ("alice", "bob", "carol"):
            loyalty.enrol(m)
        a = loyalty.referrals.issue_code("alice").code
        c = loyalty.referrals.issue_code("carol").code
        with pytest.raises(SelfReferral):
            loyalty.referrals.refer("alice", a)
        loyalty.referrals.refer("bob", a)
        with pytest.raises(AlreadyReferred):
            loyalty.referrals.refer("bob", c, key="second")
        assert "alice" == loyalty.referrals.get("bob").referrer_id
        assert [] == loyalty.referrals.made_by("carol")
        # refer's default key replays the first result
        assert loyalty.referrals.get("bob") == loyalty.referrals.refer("bob", a)

    def test_existing_customers_and_late_attachments_are_not_referable(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage)
        loyalty.enrol("alice")
        loyalty.enrol("bob")
        loyalty.enrol("carol")
        code = loyalty.referrals.issue_code("alice").code
        self._ref_order(loyalty, clock, "o1", "bob", "5.00", clock.now())
        with pytest.raises(NotReferable, match="existing customer"):
            loyalty.referrals.refer("bob", code)
        clock.set(_berlin(2026, 3, 8, 9, 0, 1))  # 7 days and a second after enrolling
        with pytest.raises(NotReferable, match="window"):
            loyalty.referrals.refer("carol", code)
        assert [] == loyalty.referrals.made_by("alice")

    def test_a_refused_enrolment_with_a_code_writes_nothing(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice", max_uses=1).code
        loyalty.enrol("bob", referral_code=code)
        with pytest.raises(CodeUsedUp):
            loyalty.enrol("carol", referral_code=code)
        with pytest.raises(Exception, match="member_not_found"):
            loyalty.member("carol")

    # -- qualification --------------------------------------------------------------------

    def test_only_an_order_at_the_minimum_within_the_window_qualifies(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage)
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").code
        loyalty.enrol("bob", referral_code=code)
        loyalty.enrol("carol", referral_code=code)
        self._ref_order(loyalty, clock, "b1", "bob", "19.99", _berlin(2026, 3, 2, 9))
        assert ReferralStatus.WAITING == loyalty.referrals.get("bob").status
        self._ref_order(loyalty, clock, "b2", "bob", "20.00", _berlin(2026, 3, 3, 9))
        assert "b2" == loyalty.referrals.get("bob").order_id
        # carol's first qualifying order comes a day after the 30 days
        self._ref_order(loyalty, clock, "c1", "carol", "80.00", _berlin(2026, 3, 31, 9))
        assert "expired" == loyalty.referrals.get("carol").state_at(
            clock.now(), _berlin(2026, 3, 31, 9))
        assert ReferralStatus.WAITING == loyalty.referrals.get("carol").status
        assert (0, 500) == self._ref_points(loyalty, "alice")
        stats = loyalty.referrals.stats("alice")
        assert (2, 1, 1) == (stats.invited, stats.qualified, stats.expired)

    def test_the_nth_order_qualifies(self, storage: Storage) -> None:
        loyalty, clock = self._ref(storage, referral_program(order_number=2))
        loyalty.enrol("alice")
        loyalty.enrol("bob", referral_code=loyalty.referrals.issue_code("alice").code)
        self._ref_order(loyalty, clock, "b1", "bob", "50.00", _berlin(2026, 3, 2, 9))
        assert ReferralStatus.WAITING == loyalty.referrals.get("bob").status
        self._ref_order(loyalty, clock, "b2", "bob", "50.00", _berlin(2026, 3, 3, 9))
        assert "b2" == loyalty.referrals.get("bob").order_id

    def test_cap_per_calendar_year_pays_the_referee_but_not_the_referrer(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage, referral_program(cap=ReferralCap(2)))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").code
        for i in range(3):
            loyalty.enrol(f"r{i}", referral_code=code)
            self._ref_order(loyalty, clock, f"o{i}", f"r{i}", "30.00", _berlin(2026, 3, 2 + i, 9))
        third = loyalty.referrals.get("r2")
        assert (0, 250) == (third.referrer_points, third.referee_points)
        assert any(r.startswith("cap:") for r in third.reasons)
        assert (0, 1000) == self._ref_points(loyalty, "alice")
        # a new calendar year pays again
        clock.set(_berlin(2027, 1, 2, 9))
        loyalty.enrol("r9", referral_code=code)
        self._ref_order(loyalty, clock, "o9", "r9", "30.00", _berlin(2027, 1, 3, 9))
        assert 500 == loyalty.referrals.get("r9").referrer_points

    def test_a_voided_referral_frees_its_place_under_a_rolling_cap(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage, referral_program(
            cap=ReferralCap(1, CapPeriod.ROLLING, days=30)))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").code
        loyalty.enrol("r0", referral_code=code)
        loyalty.enrol("r1", referral_code=code)
        self._ref_order(loyalty, clock, "o0", "r0", "30.00", _berlin(2026, 3, 2, 9))
        clock.set(_berlin(2026, 3, 3, 9))
        loyalty.cancel_order("o0")
        self._ref_order(loyalty, clock, "o1", "r1", "30.00", _berlin(2026, 3, 4, 9))
        assert 500 == loyalty.referrals.get("r1").referrer_points

    def test_sources_and_campaigns_pick_the_reward(self, storage: Storage) -> None:
        holiday = Campaign("holiday", _berlin(2026, 12, 1), _berlin(2026, 12, 27),
                           ReferralReward(1000, 500))
        program = referral_program(
            sources={Source.EMPLOYEE: ReferralReward(0, 400),
                     Source.PARTNER: ReferralReward(2000, 250)},
            campaigns=(holiday,), cap=None)
        loyalty, clock = self._ref(storage, program)
        for m in ("staff", "partner", "fan"):
            loyalty.enrol(m)
        codes = {"staff": loyalty.referrals.issue_code("staff", source=Source.EMPLOYEE).code,
                 "partner": loyalty.referrals.issue_code("partner", source=Source.PARTNER).code,
                 "fan": loyalty.referrals.issue_code("fan").code}
        loyalty.enrol("e1", referral_code=codes["staff"])
        loyalty.enrol("p1", referral_code=codes["partner"])
        self._ref_order(loyalty, clock, "e1", "e1", "30.00", _berlin(2026, 3, 2, 9))
        self._ref_order(loyalty, clock, "p1", "p1", "30.00", _berlin(2026, 3, 2, 10))
        assert (0, 400) == (loyalty.referrals.get("e1").referrer_points,
                            loyalty.referrals.get("e1").referee_points)
        assert (2000, 250) == (loyalty.referrals.get("p1").referrer_points,
                               loyalty.referrals.get("p1").referee_points)
        # attributed while the campaign runs: its reward, even if it qualifies after
        clock.set(_berlin(2026, 12, 20, 9))
        loyalty.enrol("h1", referral_code=codes["fan"])
        self._ref_order(loyalty, clock, "h1", "h1", "30.00", _berlin(2026, 12, 28, 9))
        held = loyalty.referrals.get("h1")
        assert ("holiday", 1000, 500) == (held.campaign, held.referrer_points,
                                          held.referee_points)
        clock.set(_berlin(2026, 12, 28, 10))
        loyalty.enrol("n1", referral_code=codes["fan"])
        self._ref_order(loyalty, clock, "n1", "n1", "30.00", _berlin(2026, 12, 29, 9))
        assert (None, 500) == (loyalty.referrals.get("n1").campaign,
                               loyalty.referrals.get("n1").referrer_points)

    # -- fraud checks ---------------------------------------------------------------------

    def test_velocity_flags_and_a_flagged_referral_waits_for_approval(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._ref(storage, referral_program(velocity_per_hour=2))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").code
        for i in range(4):
            loyalty.enrol(f"r{i}", referral_code=code)
        statuses = [loyalty.referrals.get(f"r{i}").status for i in range(4)]
        assert [ReferralStatus.WAITING] * 2 + [ReferralStatus.FLAGGED] * 2 == statuses
        assert ("velocity: more than 2 referrals in an hour",
                ) == loyalty.referrals.get("r2").reasons
        # a flagged referee's qualifying order is noted, not paid
        self._ref_order(loyalty, clock, "o2", "r2", "30.00", _berlin(2026, 3, 2, 9))
        assert (0, 0) == self._ref_points(loyalty, "alice")
        approved = loyalty.referrals.approve("r2", reason="known customer")
        assert (ReferralStatus.QUALIFIED, 500) == (approved.status, approved.referrer_points)
        assert _berlin(2026, 3, 16, 9) == approved.settles_at
        assert (0, 500) == self._ref_points(loyalty, "alice")
        rejected = loyalty.referrals.reject("r3", reason="same household")
        assert ReferralStatus.REJECTED == rejected.status
        assert "rejected: same household" == rejected.reasons[-1]
        with pytest.raises(ReferralNotFlagged):
            loyalty.referrals.approve("r3")
        self._ref_order(loyalty, clock, "o3", "r3", "30.00", _berlin(2026, 3, 2, 10))
        assert (0, 500) == self._ref_points(loyalty, "alice")
        assert (1, 1) == (loyalty.referrals.stats("alice").rejected,
                          loyalty.referrals.stats("alice").pending)

    def test_fingerprints_and_cycles(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage, referral_program(existing_customers=True))
        loyalty.enrol("alice", identity=Identity(payment="card-1", device="dev-1"))
        code = loyalty.referrals.issue_code("alice").code
        loyalty.enrol("bob", referral_code=code, identity=Identity(device="dev-1"))
        loyalty.enrol("carol", referral_code=code, identity=Identity(payment="card-1"))
        assert ReferralStatus.FLAGGED == loyalty.referrals.get("bob").status
        assert ReferralStatus.BLOCKED == loyalty.referrals.get("carol").status
        assert ("self-referral: same payment fingerprint as the referrer",) == (
            loyalty.referrals.get("carol").reasons)
        # alice refers dave, dave's code then comes back to alice: a cycle
        loyalty.enrol("dave", referral_code=code, key="dave")
        dave = loyalty.referrals.issue_code("dave").code
        loyalty.referrals.refer("alice", dave)
        assert ReferralStatus.BLOCKED == loyalty.referrals.get("alice").status
        assert ("cycle: the referee referred the referrer",
                ) == loyalty.referrals.get("alice").reasons

    def test_fingerprints_are_kept_only_as_keyed_hashes(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.enrol("alice", identity=Identity(email="Alice@Example.com", payment="tok-9"))
        with by_shop_ids(storage).unit_of_work("ref") as uow:
            marks = {m.kind: m.digest for m in uow.referrals.marks_of(["alice"])}
        expected = {kind: hmac.new(SECRET, f"{kind}:{value}".encode(),
                                   hashlib.sha256).hexdigest()
                    for kind, value in (("email", "alice@example.com"), ("payment", "tok-9"))}
        assert expected == marks

    def test_a_custom_check_is_pluggable(self, storage: Storage) -> None:
        def big_spender_review(case: ReferralCase) -> Verdict:
            if case.referrer_id == "vip":
                return Verdict(Outcome.FLAG, ("vip referrals are reviewed",))
            return Verdict()

        loyalty, _ = self._ref(storage, fraud_checks=[big_spender_review])
        loyalty.enrol("vip")
        loyalty.enrol("alice")
        loyalty.enrol("bob", referral_code=loyalty.referrals.issue_code("vip").code)
        loyalty.enrol("carol", referral_code=loyalty.referrals.issue_code("alice").code)
        assert (ReferralStatus.FLAGGED, ("vip referrals are reviewed",)) == (
            loyalty.referrals.get("bob").status, loyalty.referrals.get("bob").reasons)
        assert ReferralStatus.WAITING == loyalty.referrals.get("carol").status
