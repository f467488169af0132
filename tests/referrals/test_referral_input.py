"""Bad referral input gets a typed error (also the fitting builtin) and writes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from loyaltykit import (
    Campaign,
    CapPeriod,
    CodeNotFound,
    Cycle,
    FraudCheckError,
    Identity,
    InvalidCode,
    InvalidInput,
    InvalidProgram,
    Loyalty,
    LoyaltyError,
    MemberNotFound,
    Money,
    NaiveDatetime,
    Order,
    OrderLine,
    Outcome,
    Program,
    ReferralCap,
    ReferralCase,
    ReferralNotFound,
    ReferralPolicy,
    ReferralReward,
    SameEmail,
    SameFingerprint,
    Storage,
    TestClock,
    Velocity,
    Verdict,
    default_checks,
)
from loyaltykit.testing.contract import ledger_snapshot
from loyaltykit.testing.contract.referrals import SECRET, referral_program

START = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
MEMBERS = ("alice", "bob", "carol")


def _any(value: object) -> Any:
    return value


def _identity(**values: str) -> Identity:
    # built when the call runs, so the refusal is the call's
    return Identity(**values)


#: Outside the supported instants (1900-01-01 up to 9000-01-01 UTC).
_FIRST_PLUS_ONE = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
_LAST_MINUS_ONE = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-1)))


@pytest.fixture
def world(storage: Storage) -> tuple[Loyalty, str]:
    loyalty = Loyalty(referral_program(), storage, clock=TestClock(START), secret=SECRET)
    loyalty.enrol("alice", identity=Identity(email="alice@example.com"))
    loyalty.enrol("bob")
    loyalty.enrol("carol", referral_code=loyalty.referrals.issue_code("alice").code)
    return loyalty, loyalty.referrals.codes("alice")[0].code


def _state(loyalty: Loyalty) -> object:
    referrals = {m: loyalty.referrals.made_by(m) for m in MEMBERS}
    codes = {m: loyalty.referrals.codes(m) for m in MEMBERS}
    return ledger_snapshot(loyalty, MEMBERS), referrals, codes


CALLS: list[tuple[str, Callable[[Loyalty, str], object], type[LoyaltyError], type[Exception]]] = [
    ("typo", lambda lo, c: lo.referrals.refer("bob", c[:-1] + ("0" if c[-1] != "0" else "1")),
     InvalidCode, ValueError),
    ("not a str", lambda lo, c: lo.referrals.refer("bob", _any(123)), InvalidCode, ValueError),
    ("unknown code", lambda lo, c: lo.referrals.refer("bob", "00000000000"), CodeNotFound,
     LookupError),
    ("unknown referee", lambda lo, c: lo.referrals.refer("ghost", c), MemberNotFound, LookupError),
    ("naive at", lambda lo, c: lo.referrals.refer("bob", c, at=_any(dt.datetime(2026, 3, 1))),
     NaiveDatetime, ValueError),
    ("future at", lambda lo, c: lo.referrals.refer("bob", c, at=START + dt.timedelta(days=1)),
     InvalidInput, ValueError),
    ("bad identity", lambda lo, c: lo.referrals.refer("bob", c, identity=_any({"email": "x"})),
     InvalidInput, ValueError),
    ("bad email", lambda lo, c: lo.referrals.refer("bob", c,
                                                   identity=Identity(email=_any("nobody"))),
     InvalidInput, ValueError),
    ("issue to a ghost", lambda lo, c: lo.referrals.issue_code("ghost"), MemberNotFound,
     LookupError),
    ("bad source", lambda lo, c: lo.referrals.issue_code("bob", source=_any("employee")),
     InvalidInput, ValueError),
    ("bad max_uses", lambda lo, c: lo.referrals.issue_code("bob", max_uses=0), InvalidInput,
     ValueError),
    ("naive expiry", lambda lo, c: lo.referrals.issue_code("bob", expires_at=_any(
        dt.datetime(2027, 1, 1))), NaiveDatetime, ValueError),
    ("enrol with a typo", lambda lo, c: lo.enrol(
        "dave", referral_code=c[:-1] + ("*" if c[-1] != "*" else "~")), InvalidCode, ValueError),
    ("approve the unreferred", lambda lo, c: lo.referrals.approve("bob"), ReferralNotFound,
     LookupError),
    ("reject without a reason", lambda lo, c: lo.referrals.reject("carol", reason=""),
     InvalidInput, ValueError),
    ("identify with nothing", lambda lo, c: lo.referrals.identify("bob", Identity()), InvalidInput,
     ValueError),
    # what valid input is (docs/errors.md)
    ("expiry in the past", lambda lo, c: lo.referrals.issue_code(
        "bob", key="k", expires_at=START - dt.timedelta(seconds=1)), InvalidInput, ValueError),
    ("expiry now", lambda lo, c: lo.referrals.issue_code("bob", key="k", expires_at=START),
     InvalidInput, ValueError),
    ("expiry before at", lambda lo, c: lo.referrals.issue_code(
        "bob", key="k", at=START - dt.timedelta(days=2),
        expires_at=START - dt.timedelta(days=3)), InvalidInput, ValueError),
    ("expiry out of range", lambda lo, c: lo.referrals.issue_code(
        "bob", key="k", expires_at=_LAST_MINUS_ONE), InvalidInput, ValueError),
    ("huge max_uses", lambda lo, c: lo.referrals.issue_code("bob", key="k", max_uses=2**63),
     InvalidInput, ValueError),
    ("at out of range", lambda lo, c: lo.referrals.refer("bob", c, at=_FIRST_PLUS_ONE),
     InvalidInput, ValueError),
    ("stats out of range", lambda lo, c: lo.referrals.stats("alice", at=_FIRST_PLUS_ONE),
     InvalidInput, ValueError),
    ("approve out of range", lambda lo, c: lo.referrals.approve("carol", at=_FIRST_PLUS_ONE),
     InvalidInput, ValueError),
    ("NUL in a referee id", lambda lo, c: lo.referrals.refer("bo\x00b", c), InvalidInput,
     ValueError),
    ("bidi in a member id", lambda lo, c: lo.referrals.issue_code("b\u202eob"), InvalidInput,
     ValueError),
    ("NUL in a reason", lambda lo, c: lo.referrals.reject("carol", reason="no\x00"),
     InvalidInput, ValueError),
    ("surrogate in a device", lambda lo, c: lo.referrals.refer(
        "bob", c, identity=_identity(device="d\ud800")), InvalidInput, ValueError),
    ("surrogate in an e-mail", lambda lo, c: lo.referrals.refer(
        "bob", c, identity=_identity(email="b\udc00@example.com")), InvalidInput, ValueError),
    ("NUL in a payment", lambda lo, c: lo.referrals.identify(
        "bob", _identity(payment="tok\x00")), InvalidInput, ValueError),
]


@pytest.mark.parametrize(("name", "call", "error", "builtin"), CALLS, ids=[c[0] for c in CALLS])
def test_refused_and_nothing_written(world: tuple[Loyalty, str], name: str,
                                     call: Callable[[Loyalty, str], object],
                                     error: type[LoyaltyError], builtin: type[Exception]) -> None:
    loyalty, code = world
    before = _state(loyalty)
    with pytest.raises(error) as raised:
        call(loyalty, code)
    assert isinstance(raised.value, builtin)
    assert before == _state(loyalty)
    with pytest.raises(MemberNotFound):
        loyalty.member("dave")


def test_fingerprints_need_a_secret(storage: Storage) -> None:
    loyalty = Loyalty(referral_program(), storage, clock=TestClock(START))
    with pytest.raises(InvalidInput, match="secret"):
        loyalty.enrol("alice", identity=Identity(device="d"))
    with pytest.raises(MemberNotFound):
        loyalty.member("alice")
    with pytest.raises(InvalidInput):
        Loyalty(referral_program(), storage, clock=TestClock(START), secret=b"short")


def test_a_program_without_referrals_refuses_referral_calls(storage: Storage) -> None:
    program = Program(id="plain", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    loyalty = Loyalty(program, storage, clock=TestClock(START))
    loyalty.enrol("alice")
    for call in (lambda: loyalty.referrals.issue_code("alice"),
                 lambda: loyalty.referrals.check_code("X"),
                 lambda: loyalty.enrol("bob", referral_code="ABC"),
                 lambda: loyalty.referrals.stats("alice")):
        with pytest.raises(InvalidInput, match="no referral policy"):
            call()


@pytest.mark.parametrize(("build", "field"), [
    (lambda: ReferralPolicy(reward=_any((500, 250))), "referrals.reward"),
    (lambda: ReferralReward(referrer=-1), "referrals.reward.referrer"),
    (lambda: ReferralPolicy(reward=ReferralReward(1, 1), qualify_within_days=0),
     "referrals.qualify_within_days"),
    (lambda: ReferralPolicy(reward=ReferralReward(1, 1), order_number=0),
     "referrals.order_number"),
    (lambda: ReferralCap(0), "referrals.cap.count"),
    (lambda: ReferralCap(1, CapPeriod.DAY), "referrals.cap.period"),
    (lambda: ReferralCap(1, CapPeriod.ROLLING), "referrals.cap.days"),
    (lambda: Campaign("Xmas", START, START + dt.timedelta(days=1), ReferralReward()),
     "referrals.campaigns.name"),
    (lambda: Campaign("xmas", START, START, ReferralReward()), "referrals.campaigns.ends_at"),
    (lambda: Campaign("xmas", _any(dt.datetime(2026, 1, 1)), START, ReferralReward()),
     "referrals.campaigns.starts_at"),
    (lambda: ReferralPolicy(reward=ReferralReward(1, 1), sources=_any({"employee": 1})),
     "referrals.sources"),
    (lambda: referral_program(min_net=Money("20", "USD")), "referrals.min_net"),
    (lambda: Campaign("xmas\n", START, START + dt.timedelta(days=1), ReferralReward()),
     "referrals.campaigns.name"),
    (lambda: Campaign("xmas", _FIRST_PLUS_ONE, START, ReferralReward()),
     "referrals.campaigns.starts_at"),
    (lambda: Campaign("xmas", START, _LAST_MINUS_ONE, ReferralReward()),
     "referrals.campaigns.ends_at"),
    (lambda: ReferralPolicy.from_dict({"reward": {}, "bonus": 1}), "referrals.bonus"),
])
def test_bad_policies_name_their_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidProgram) as raised:
        build()
    assert field == raised.value.details["field"]


def test_the_policy_round_trips_through_the_program_definition() -> None:
    program = referral_program(
        campaigns=(Campaign("xmas", START, START + dt.timedelta(days=9),
                            ReferralReward(9, 9)),),
        cap=ReferralCap(3, CapPeriod.ROLLING, days=30), code_valid_days=90)
    assert program == Program.from_dict(program.to_dict())


# -- fraud checks -------------------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda: Velocity(per_hour=_any("5")),
    lambda: Velocity(per_hour=-1),
    lambda: Velocity(per_day=0),
    lambda: Velocity(per_hour=_any(True)),
    lambda: Velocity(per_day=10**20),
    lambda: Velocity(per_hour=_any(5.0)),
    lambda: Velocity(outcome=_any("flag")),
    lambda: SameEmail(outcome=_any("block")),
    lambda: SameEmail(outcome=_any(None)),
    lambda: SameFingerprint(kind="email"),
    lambda: SameFingerprint(kind=_any(["payment"])),
    lambda: SameFingerprint(outcome=_any(2)),
    lambda: Cycle(outcome=_any("x")),
    lambda: Verdict(outcome=_any("block")),
    lambda: Verdict(Outcome.FLAG, reasons=_any("a reason, not a tuple")),
    lambda: Verdict(Outcome.FLAG, reasons=_any((1,))),
    lambda: Verdict(Outcome.FLAG, reasons=("x" * 501,)),
    lambda: Verdict(Outcome.FLAG, reasons=("a\x00b",)),
    lambda: Verdict(Outcome.FLAG, reasons=["ok", "\ud800"]),
    lambda: Verdict(Outcome.FLAG, reasons=(_Short("x" * 501),)),
    lambda: Verdict(reasons=_any(None)),
    lambda: default_checks(_any(None)),
])
def test_fraud_checks_with_bad_settings_are_refused_on_construction(
        build: Callable[[], object]) -> None:
    with pytest.raises(InvalidInput) as refused:
        build()
    assert isinstance(refused.value, ValueError)


def test_good_fraud_check_settings_are_kept() -> None:
    assert (5, None) == (Velocity(per_hour=5).per_hour, Velocity(per_hour=5).per_day)
    assert ("a", "b") == Verdict(Outcome.FLAG, reasons=_any(["a", "b"])).reasons
    assert "device" == SameFingerprint("device", Outcome.FLAG).kind


def _raises(case: ReferralCase) -> Verdict:
    raise KeyError(case.referee_id)


def _recurses(case: ReferralCase) -> Verdict:
    return _recurses(case)


def _tampered(**fields: object) -> Callable[[ReferralCase], Verdict]:
    def check(case: ReferralCase) -> Verdict:
        verdict = Verdict(Outcome.FLAG, ("tampered",))
        for name, value in fields.items():
            object.__setattr__(verdict, name, value)
        return verdict
    return check


class _Short(str):
    """A text that says it is one character long."""

    def __len__(self) -> int:
        return 1


class _Unreadable(Verdict):
    """A Verdict whose outcome raises when read."""

    @property
    def outcome(self) -> Outcome:  # type: ignore[override]
        raise KeyError("outcome")


MISBEHAVING: list[tuple[str, Callable[[ReferralCase], object]]] = [
    ("raises KeyError", _raises),
    ("recurses", _recurses),
    ("returns None", lambda case: None),
    ("returns an outcome", lambda case: Outcome.BLOCK),
    ("returns a str", lambda case: "block"),
    ("builds a bad Verdict", lambda case: Verdict(outcome=_any("block"))),
    ("unknown outcome", _tampered(outcome="maybe")),
    ("unhashable outcome", _tampered(outcome=["block"])),
    ("reasons not a tuple", _tampered(reasons="abc")),
    ("reasons not str", _tampered(reasons=(1, 2))),
    ("reason too long", _tampered(reasons=("x" * 501,))),
    ("reason hides its length", _tampered(reasons=(_Short("x" * 501),))),
    ("reason with a NUL", _tampered(reasons=("a\x00b",))),
    ("reason with a lone surrogate", _tampered(reasons=("ok", "\udc80"))),
    ("reasons a list", _tampered(reasons=["a"])),
    ("verdict unreadable", lambda case: object.__new__(_Unreadable)),
]


@pytest.mark.parametrize("check", [c[1] for c in MISBEHAVING], ids=[c[0] for c in MISBEHAVING])
def test_a_misbehaving_fraud_check_is_a_typed_error_and_writes_nothing(
        storage: Storage, check: Callable[[ReferralCase], Verdict]) -> None:
    program = referral_program()
    assert program.referrals is not None
    loyalty = Loyalty(program, storage, clock=TestClock(START), secret=SECRET,
                      fraud_checks=[*default_checks(program.referrals), check])
    loyalty.enrol("alice")
    loyalty.enrol("bob")
    code = loyalty.referrals.issue_code("alice").code

    def state() -> object:
        return (ledger_snapshot(loyalty, ("alice", "bob")), loyalty.referrals.made_by("alice"),
                loyalty.referrals.codes("alice"), loyalty.referrals.codes("bob"))

    before = state()
    with pytest.raises(FraudCheckError) as failed:
        loyalty.referrals.refer("bob", code, identity=Identity(email="bob@example.com"))
    assert isinstance(failed.value, RuntimeError)
    assert "fraud_check_error" == failed.value.code
    assert "check" in failed.value.details
    str(failed.value)  # the log line is built
    with pytest.raises(FraudCheckError):
        loyalty.enrol("carol", referral_code=code, identity=Identity(device="carol-phone"))
    assert before == state()
    with pytest.raises(MemberNotFound):
        loyalty.member("carol")
    with pytest.raises(ReferralNotFound):
        loyalty.referrals.get("bob")
    with storage.unit_of_work("ref") as uow:
        assert [] == uow.referrals.marks_of(["bob", "carol"])


class _Hostile:
    """A check that flags without giving reasons, and whose repr is no storable text."""

    def __repr__(self) -> str:
        return "hostile\x00\ud800" + "y" * 2000

    def __call__(self, case: ReferralCase) -> Verdict:
        return Verdict(Outcome.FLAG)


def test_a_check_flagging_without_reasons_is_named_by_a_storable_repr(
        storage: Storage) -> None:
    program = referral_program()
    loyalty = Loyalty(program, storage, clock=TestClock(START), secret=SECRET,
                      fraud_checks=[_Hostile()])
    loyalty.enrol("alice")
    loyalty.enrol("bob")
    code = loyalty.referrals.issue_code("alice").code
    referral = loyalty.referrals.refer("bob", code)
    assert "flagged" == referral.status.value
    [reason] = referral.reasons
    assert reason.startswith("hostile\\x00\\ud800yyy") and reason.endswith("...")
    assert len(reason) <= 500
    assert (reason,) == loyalty.referrals.get("bob").reasons  # as stored


def test_referral_windows_from_the_last_instant_never_overflow(storage: Storage) -> None:
    # every referral window at its longest (3660 days) from the last supported instant
    last = dt.datetime(9000, 1, 1, tzinfo=dt.UTC) - dt.timedelta(microseconds=1)
    program = referral_program(qualify_within_days=3660, return_window_days=3660,
                               attach_within_days=3660, code_valid_days=3660,
                               cap=ReferralCap(10, CapPeriod.ROLLING, days=3660),
                               campaigns=(Campaign("late", last - dt.timedelta(days=1), last,
                                                   ReferralReward(1, 1)),))
    loyalty = Loyalty(program, storage, clock=TestClock(last), secret=SECRET)
    loyalty.enrol("alice")
    code = loyalty.referrals.issue_code("alice")
    assert code.expires_at is not None and 9010 == code.expires_at.year
    loyalty.enrol("bob", referral_code=code.code)
    order = Order(id="o", member_id="bob", placed_at=last, currency="EUR",
                  lines=(OrderLine(sku="A", quantity=1, unit_price=Money("30", "EUR")),))
    loyalty.record_order(order)
    referral = loyalty.referrals.get("bob")
    assert referral.settles_at is not None and 9010 == referral.settles_at.year
    assert 500 == loyalty.referrals.stats("alice").points_pending  # (the campaign ended)
