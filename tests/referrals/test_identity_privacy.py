"""Raw identities never leave the call (DESIGN §11): not in an error's message, details,
``str`` or ``repr`` (nor in the errors it was raised from), and not in a log line.

Every identity below carries the marker ``secretjane`` (an e-mail's normalised form
keeps it: ``Secret.Jane+promo@GMail.com`` reads as ``secretjane@gmail.com``), and each
case drives one error path of a call that takes identities.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest

from loyaltykit import (
    AlreadyReferred,
    CodeNotFound,
    FraudCheckError,
    IdempotencyConflict,
    Identity,
    InvalidCode,
    InvalidInput,
    Loyalty,
    LoyaltyError,
    MemberAlreadyEnrolled,
    MemberNotFound,
    Money,
    NotReferable,
    Order,
    OrderLine,
    ReferralCase,
    ReferralStatus,
    SelfReferral,
    Storage,
    TestClock,
    Verdict,
    default_checks,
    normalise_email,
)
from loyaltykit.testing.contract.referrals import SECRET, referral_program

START = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
JANE = Identity(email="Secret.Jane+promo@GMail.com", payment="tok_secretjane_4242",
                device="dev-secretjane-9")
JANE_AGAIN = Identity(email="secret.jane@example.com")


def _typo(code: str) -> str:
    """``code`` with another check character (always a typo the check catches)."""
    return code[:-1] + ("*" if code[-1] != "*" else "~")


def _any(value: object) -> Any:
    return value


def _marked(text: str) -> bool:
    low = text.lower()
    return "secretjane" in low or "secret.jane" in low


def _texts(error: BaseException) -> list[str]:
    """What a log line or an error report could show of ``error`` and its chain."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        if isinstance(current, LoyaltyError):
            texts += [current.message, repr(dict(current.details))]
            texts += [str(v) for v in current.details.values()]
        current = current.__cause__ or current.__context__
    return texts


def _assert_hidden(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    leaked = [t for t in _texts(error) if _marked(t)]
    assert [] == leaked
    assert [] == [r.getMessage() for r in caplog.records if _marked(r.getMessage())]
    assert not _marked(caplog.text)


# -- values refused before any call ------------------------------------------------------

VALUES: list[tuple[str, Callable[[], object]]] = [
    ("two @", lambda: Identity(email="secret.jane@@example.com")),
    ("no @", lambda: normalise_email("secretjane.example.com")),
    ("no domain", lambda: Identity(email="Secret.Jane@")),
    ("no mailbox after the tag", lambda: Identity(email="+secretjane@gmail.com")),
    ("too long", lambda: Identity(email="secretjane" * 40 + "@example.com")),
    ("lone surrogate", lambda: Identity(email="secretjane\ud800@example.com")),
    ("bytes e-mail", lambda: Identity(email=_any(b"secretjane@example.com"))),
    ("list e-mail", lambda: normalise_email(_any(["secretjane@example.com"]))),
    ("long payment", lambda: Identity(payment="tok_secretjane" * 100)),
    ("payment surrogate", lambda: Identity(payment="tok_secretjane\udfff")),
    ("bytes device", lambda: Identity(device=_any(b"dev-secretjane"))),
    ("secret not bytes", lambda: JANE.digests(_any("secretjane-secret-0123456789"))),
]


@pytest.mark.parametrize("build", [v[1] for v in VALUES], ids=[v[0] for v in VALUES])
def test_a_refused_identity_is_not_shown(build: Callable[[], object],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidInput) as refused:
        build()
    assert isinstance(refused.value, ValueError)
    _assert_hidden(refused.value, caplog)


def test_an_identity_does_not_show_its_values() -> None:
    assert "Identity(email=<hidden>, payment=<hidden>, device=<hidden>)" == repr(JANE)
    assert "Identity(email=None, payment=None, device=<hidden>)" == repr(
        Identity(device="dev-secretjane"))


# -- the calls that take identities ------------------------------------------------------


class _World:
    def __init__(self, storage: Storage) -> None:
        def failing(case: ReferralCase) -> Verdict:
            raise RuntimeError("the review service is down")

        program = referral_program()
        assert program.referrals is not None
        self.clock = TestClock(START)
        self.loyalty = Loyalty(program, storage, clock=self.clock, secret=SECRET)
        self.failing = Loyalty(program, storage, clock=self.clock, secret=SECRET,
                               fraud_checks=[*default_checks(program.referrals), failing])
        self.unkeyed = Loyalty(program, storage, clock=self.clock)
        lo = self.loyalty
        lo.enrol("alice", identity=Identity(email="secret.jane@gmail.com"))
        self.code = lo.referrals.issue_code("alice").code
        lo.referrals.identify("alice", JANE_AGAIN, key="alice-identity")
        for m in ("bob", "dave", "erin"):
            lo.enrol(m)
        lo.enrol("carol", referral_code=self.code)
        lo.record_order(Order(id="o1", member_id="dave", placed_at=START, currency="EUR",
                              lines=(OrderLine(sku="x", quantity=1,
                                               unit_price=Money("5.00", "EUR")),)))
        self.unknown = next(c for c in ("00000000000", "11111111111", "22222222222")
                            if c != self.code and self._well_formed(c))

    def _well_formed(self, code: str) -> bool:
        try:
            self.loyalty.referrals.check_code(code)
        except InvalidCode:
            return False
        return True


CALLS: list[tuple[str, Callable[[_World], object], type[LoyaltyError]]] = [
    ("enrol: identity a dict",
     lambda w: w.loyalty.enrol("frank", identity=_any({"email": "secretjane@example.com"})),
     InvalidInput),
    ("enrol: identity a str",
     lambda w: w.loyalty.enrol("frank", identity=_any("secretjane@example.com")), InvalidInput),
    ("enrol: no secret", lambda w: w.unkeyed.enrol("frank", identity=JANE), InvalidInput),
    ("enrol: enrolled already",
     lambda w: w.loyalty.enrol("alice", key="again", identity=JANE), MemberAlreadyEnrolled),
    ("enrol: key reused", lambda w: w.loyalty.enrol("alice", identity=JANE),
     IdempotencyConflict),
    ("enrol: typo in the code",
     lambda w: w.loyalty.enrol("frank", referral_code=_typo(w.code), identity=JANE),
     InvalidCode),
    ("enrol: unknown code",
     lambda w: w.loyalty.enrol("frank", referral_code=w.unknown, identity=JANE),
     CodeNotFound),
    ("enrol: the check fails",
     lambda w: w.failing.enrol("frank", referral_code=w.code, identity=JANE), FraudCheckError),
    ("identify: not enrolled", lambda w: w.loyalty.referrals.identify("ghost", JANE),
     MemberNotFound),
    ("identify: key reused",
     lambda w: w.loyalty.referrals.identify("alice", JANE, key="alice-identity"),
     IdempotencyConflict),
    ("identify: identity a dict",
     lambda w: w.loyalty.referrals.identify("bob", _any({"payment": "tok_secretjane"})),
     InvalidInput),
    ("identify: no secret", lambda w: w.unkeyed.referrals.identify("bob", JANE), InvalidInput),
    ("refer: own code", lambda w: w.loyalty.referrals.refer("alice", w.code, identity=JANE),
     SelfReferral),
    ("refer: referred already",
     lambda w: w.loyalty.referrals.refer("carol", w.code, identity=JANE), AlreadyReferred),
    ("refer: existing customer",
     lambda w: w.loyalty.referrals.refer("dave", w.code, identity=JANE), NotReferable),
    ("refer: not enrolled", lambda w: w.loyalty.referrals.refer("ghost", w.code, identity=JANE),
     MemberNotFound),
    ("refer: unknown code",
     lambda w: w.loyalty.referrals.refer("bob", w.unknown, identity=JANE), CodeNotFound),
    ("refer: typo in the code",
     lambda w: w.loyalty.referrals.refer("bob", _typo(w.code), identity=JANE), InvalidCode),
    ("refer: identity a tuple",
     lambda w: w.loyalty.referrals.refer("bob", w.code,
                                         identity=_any(("secretjane@example.com",))),
     InvalidInput),
    ("refer: the check fails",
     lambda w: w.failing.referrals.refer("bob", w.code, identity=JANE), FraudCheckError),
]


@pytest.mark.parametrize(("call", "error"), [(c[1], c[2]) for c in CALLS],
                         ids=[c[0] for c in CALLS])
def test_no_error_path_shows_an_identity(storage: Storage, call: Callable[[_World], object],
                                         error: type[LoyaltyError],
                                         caplog: pytest.LogCaptureFixture) -> None:
    world = _World(storage)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as refused:
        call(world)
    _assert_hidden(refused.value, caplog)


def test_a_blocked_referral_is_logged_without_the_identity(
        storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    world = _World(storage)
    caplog.set_level(logging.DEBUG)
    blocked = world.loyalty.referrals.refer("erin", world.code, identity=JANE)
    assert ReferralStatus.BLOCKED == blocked.status  # the same normalised e-mail as alice
    assert [r for r in caplog.records if "erin" in r.getMessage()]  # it was logged
    assert not _marked(caplog.text)
    assert not any(_marked(reason) for reason in blocked.reasons)
