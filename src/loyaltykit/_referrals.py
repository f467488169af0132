"""Referrals as data and as pure decisions: the policy, the stored records, identity
marks, and the fraud checks.

Nothing here reads a clock or storage: the facade gathers a :class:`ReferralCase`
(what storage knows about the referrer and the referee) and the checks judge it.

In the shop's words:

* A member shares a **code**; a new customer (the **referee**) enrols with it, or
  attaches it within ``attach_within_days`` of enrolling. One referral per referee,
  whatever becomes of it; one's own code is refused, and so (by default) is a member
  who has already ordered.
* The referee's **qualifying order** (the first with net goods of at least
  ``min_net``, or only the ``order_number``-th order) placed within
  ``qualify_within_days`` of the attribution pays both sides: points issued **pending**
  until the order's return window (``return_window_days``) closes. A return within it
  that leaves the order below ``min_net`` (or cancels it) voids both.
* The referrer is paid at most ``cap.count`` times per period; past the cap the
  referee is still paid. The code's **source** (customer, employee, partner, vendor)
  picks the reward; a **campaign** running when the referral was attributed overrides
  it.
* **Fraud checks** judge every attribution: pass, flag (waits for an approve or
  reject call) or block (recorded, never paid), with reasons.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from loyaltykit._calendar import add_days as add_days  # where the service looks for it
from loyaltykit._calendar import calendar_period
from loyaltykit._codes import CodeSpec
from loyaltykit._errors import (
    FraudCheckError,
    InvalidInput,
    InvalidProgram,
    NaiveDatetime,
    shown,
)
from loyaltykit._json import JsonForm
from loyaltykit._rules import CapPeriod
from loyaltykit._validate import (
    MAX_REASON_LENGTH,
    check_bool,
    check_count,
    check_enum,
    check_instance,
    check_instant,
    check_int,
    check_keys,
    field_name,
    invalid,
    plain_text,
    storable_text,
)
from loyaltykit._values import Money

__all__ = [
    "Campaign",
    "Cycle",
    "FraudCheck",
    "Identity",
    "Outcome",
    "Referral",
    "ReferralCap",
    "ReferralCase",
    "ReferralCode",
    "ReferralMark",
    "ReferralPolicy",
    "ReferralReward",
    "ReferralStatus",
    "ReferrerStats",
    "SameEmail",
    "SameFingerprint",
    "Source",
    "Velocity",
    "Verdict",
    "default_checks",
    "judge",
    "normalise_email",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")
_MAX_DAYS = 3660


def _count(value: object, field: str, *, low: int = 0, high: int = 10**9) -> None:
    check_int(value, f"referrals.{field}", low, high)


class Source(enum.Enum):
    """Who shares a code. Each source may carry its own reward."""

    CUSTOMER = "customer"
    EMPLOYEE = "employee"
    PARTNER = "partner"
    VENDOR = "vendor"


class ReferralStatus(enum.Enum):
    """Where a referral stands. Pending and rewarded, and expired, are read off a
    status and an instant (:meth:`Referral.state_at`)."""

    #: Attributed; waiting for the referee's qualifying order.
    WAITING = "waiting"
    #: A fraud check flagged it: waits for an approve or reject call (an order that
    #: would qualify meanwhile is noted and paid on approval).
    FLAGGED = "flagged"
    #: A fraud check blocked it: never paid.
    BLOCKED = "blocked"
    #: Flagged, then rejected: never paid.
    REJECTED = "rejected"
    #: The qualifying order paid both sides (pending until ``settles_at``).
    QUALIFIED = "qualified"
    #: The qualifying order was returned within its window: both rewards taken back.
    VOIDED = "voided"


class Outcome(enum.Enum):
    """A fraud check's verdict, mildest first."""

    PASS = "pass"
    FLAG = "flag"
    BLOCK = "block"


_SEVERITY = {Outcome.PASS: 0, Outcome.FLAG: 1, Outcome.BLOCK: 2}
_FINGERPRINTS = ("payment", "device")


@attrs.frozen
class ReferralReward(JsonForm):
    """Points paid for one qualifying referral, to each side."""

    referrer: int = 0
    referee: int = 0

    def __attrs_post_init__(self) -> None:
        _count(self.referrer, "reward.referrer", high=10**12)
        _count(self.referee, "reward.referee", high=10**12)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"referrer": self.referrer, "referee": self.referee}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferralReward:
        """The inverse of :meth:`to_dict`."""
        data = check_keys(data, frozenset({"referrer", "referee"}))
        return cls(referrer=data.get("referrer", 0), referee=data.get("referee", 0))


@attrs.frozen
class ReferralCap(JsonForm):
    """At most ``count`` paid referrals per referrer per ``period`` (a calendar month,
    quarter or year in the program's time zone, ``ROLLING`` over ``days``, or
    ``LIFETIME``), counted by when they qualified; voided ones do not count."""

    count: int
    period: CapPeriod = CapPeriod.YEAR
    days: int | None = None

    def __attrs_post_init__(self) -> None:
        _count(self.count, "cap.count", low=1)
        if not isinstance(self.period, CapPeriod) or self.period in (
                CapPeriod.ORDER, CapPeriod.DAY, CapPeriod.WEEK):
            raise invalid("referrals.cap.period",
                          "must be MONTH, QUARTER, YEAR, ROLLING or LIFETIME", self.period)
        if self.period is CapPeriod.ROLLING:
            _count(self.days, "cap.days", low=1, high=_MAX_DAYS)
        elif self.days is not None:
            raise invalid("referrals.cap.days", "only a ROLLING cap has days", self.days)

    def bounds(self, at: dt.datetime, zone: Any) -> tuple[dt.datetime | None, dt.datetime]:
        """[start, end) of the period that counts for a referral qualifying at ``at``."""
        if self.period is CapPeriod.LIFETIME:
            return None, at + dt.timedelta(microseconds=1)
        if self.period is CapPeriod.ROLLING:
            return at - dt.timedelta(days=self.days or 0), at + dt.timedelta(microseconds=1)
        return calendar_period(self.period.value, at.astimezone(zone).date(), zone)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"count": self.count, "period": self.period.value, "days": self.days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferralCap:
        """The inverse of :meth:`to_dict`."""
        data = check_keys(data, frozenset({"count", "period", "days"}), ("count",))
        try:
            period = CapPeriod(data.get("period", "year"))
        except Exception:  # ValueError; an unhashable or hostile value fails otherwise
            raise invalid("referrals.cap.period", "unknown period", data.get("period")) from None
        return cls(count=data["count"], period=period, days=data.get("days"))


@attrs.frozen
class Campaign(JsonForm):
    """A time-boxed reward (holiday, seasonal) that overrides the source's reward for
    referrals attributed in ``[starts_at, ends_at)``; ``sources`` limits it (empty:
    every source)."""

    name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reward: ReferralReward
    sources: tuple[Source, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise invalid("referrals.campaigns.name",
                          "must be a lower-case name up to 64 characters", self.name)
        for field in ("starts_at", "ends_at"):
            value = getattr(self, field)
            try:
                utc = check_instant(value, f"referrals.campaigns.{field}", error=InvalidProgram)
            except NaiveDatetime:
                raise invalid(f"referrals.campaigns.{field}", "must be a timezone-aware datetime",
                              shown(value)) from None
            object.__setattr__(self, field, utc)
        if self.ends_at <= self.starts_at:
            raise invalid("referrals.campaigns.ends_at", "must be after starts_at",
                          self.ends_at.isoformat())
        if not isinstance(self.reward, ReferralReward):
            raise invalid("referrals.campaigns.reward", "must be a ReferralReward",
                          shown(self.reward))
        if not isinstance(self.sources, tuple) or not all(
                isinstance(s, Source) for s in self.sources):
            raise invalid("referrals.campaigns.sources", "must be a tuple of Source",
                          shown(self.sources))

    def runs_for(self, at: dt.datetime, source: Source) -> bool:
        """True if the campaign covers a referral of ``source`` attributed at ``at``."""
        return self.starts_at <= at < self.ends_at and (
            not self.sources or source in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {"name": self.name, "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat(), "reward": self.reward.to_dict(),
                "sources": [s.value for s in self.sources]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Campaign:
        """The inverse of :meth:`to_dict`."""
        data = check_keys(data, frozenset({"name", "starts_at", "ends_at", "reward", "sources"}),
                          ("name", "starts_at", "ends_at", "reward"))

        def instant(v: object, field: str) -> object:
            try:
                return dt.datetime.fromisoformat(v) if isinstance(v, str) else v
            except ValueError:
                raise invalid(field, "must be an ISO 8601 datetime with offset", v) from None

        raw_sources = data.get("sources", ())
        if not isinstance(raw_sources, list | tuple):
            raise invalid("sources", "must be a list of sources", shown(raw_sources))
        return cls(name=data["name"],
                   starts_at=instant(data["starts_at"], "starts_at"),  # type: ignore[arg-type]
                   ends_at=instant(data["ends_at"], "ends_at"),  # type: ignore[arg-type]
                   reward=ReferralReward.from_dict(data["reward"]),
                   sources=tuple(_source(s, "sources") for s in raw_sources))


def _source(value: object, field: str) -> Source:
    source: Source = check_enum(Source, value, field)
    return source


def _sources(value: object) -> tuple[tuple[Source, ReferralReward], ...]:
    if isinstance(value, Mapping):
        value = tuple(value.items())
    if not isinstance(value, tuple):
        raise invalid("referrals.sources", "must map Source to ReferralReward", shown(value))
    pairs = []
    for item in value:
        if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], Source)
                or not isinstance(item[1], ReferralReward)):
            raise invalid("referrals.sources", "must map Source to ReferralReward", shown(item))
        pairs.append(item)
    return tuple(sorted(dict(pairs).items(), key=lambda p: p[0].value))


@attrs.frozen
class ReferralPolicy(JsonForm):
    """A program's referral rules. See the module docstring; scenario R's policy is

    >>> from loyaltykit import CapPeriod, Money
    >>> policy = ReferralPolicy(
    ...     reward=ReferralReward(referrer=500, referee=250),
    ...     min_net=Money("20.00", "EUR"), qualify_within_days=30,
    ...     return_window_days=14, cap=ReferralCap(10, CapPeriod.YEAR))
    >>> policy.code.entropy_bits
    50

    ``reward`` is what a customer's code pays; ``sources`` overrides it per
    :class:`Source`. ``code`` is the :class:`~loyaltykit.CodeSpec`, whose ``planned``
    volume bounds how many codes the program issues. A code expires
    ``code_valid_days`` after issue (None: never) and may be used ``code_max_uses``
    times (None: no limit). ``velocity_per_hour`` / ``velocity_per_day`` bound a
    referrer's attributions before they are flagged.

    .. versionadded:: 0.2
    """

    reward: ReferralReward
    sources: tuple[tuple[Source, ReferralReward], ...] = attrs.field(
        default=(), converter=_sources)
    min_net: Money | None = None
    qualify_within_days: int = 30
    order_number: int | None = None
    return_window_days: int = 14
    attach_within_days: int = 7
    existing_customers: bool = False
    cap: ReferralCap | None = None
    campaigns: tuple[Campaign, ...] = ()
    code: CodeSpec = attrs.field(factory=CodeSpec)
    code_valid_days: int | None = None
    code_max_uses: int | None = None
    velocity_per_hour: int | None = 5
    velocity_per_day: int | None = 20

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.reward, ReferralReward):
            raise invalid("referrals.reward", "must be a ReferralReward", shown(self.reward))
        if self.min_net is not None and not isinstance(self.min_net, Money):
            raise invalid("referrals.min_net", "must be Money", shown(self.min_net))
        _count(self.qualify_within_days, "qualify_within_days", low=1, high=_MAX_DAYS)
        if self.order_number is not None:
            _count(self.order_number, "order_number", low=1, high=1000)
        _count(self.return_window_days, "return_window_days", high=_MAX_DAYS)
        _count(self.attach_within_days, "attach_within_days", high=_MAX_DAYS)
        check_bool(self.existing_customers, "referrals.existing_customers")
        if self.cap is not None and not isinstance(self.cap, ReferralCap):
            raise invalid("referrals.cap", "must be a ReferralCap", shown(self.cap))
        if not isinstance(self.campaigns, tuple) or not all(
                isinstance(c, Campaign) for c in self.campaigns):
            raise invalid("referrals.campaigns", "must be a tuple of Campaign",
                          shown(self.campaigns))
        if len({c.name for c in self.campaigns}) != len(self.campaigns):
            raise invalid("referrals.campaigns", "names must be unique",
                          [c.name for c in self.campaigns])
        if not isinstance(self.code, CodeSpec):
            raise invalid("referrals.code", "must be a CodeSpec", shown(self.code))
        if self.code_valid_days is not None:
            _count(self.code_valid_days, "code_valid_days", low=1, high=_MAX_DAYS)
        for field in ("code_max_uses", "velocity_per_hour", "velocity_per_day"):
            if getattr(self, field) is not None:
                _count(getattr(self, field), field, low=1)

    def reward_for(self, source: Source, attributed_at: dt.datetime
                   ) -> tuple[ReferralReward, str | None]:
        """The reward of a referral of ``source`` attributed at ``attributed_at`` and the
        name of the campaign that set it (None: the source's own reward)."""
        for campaign in self.campaigns:
            if campaign.runs_for(attributed_at, source):
                return campaign.reward, campaign.name
        return dict(self.sources).get(source, self.reward), None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {
            "reward": self.reward.to_dict(),
            "sources": {s.value: r.to_dict() for s, r in self.sources},
            "min_net": self.min_net.to_dict() if self.min_net is not None else None,
            "qualify_within_days": self.qualify_within_days,
            "order_number": self.order_number,
            "return_window_days": self.return_window_days,
            "attach_within_days": self.attach_within_days,
            "existing_customers": self.existing_customers,
            "cap": self.cap.to_dict() if self.cap is not None else None,
            "campaigns": [c.to_dict() for c in self.campaigns],
            "code": self.code.to_dict(),
            "code_valid_days": self.code_valid_days,
            "code_max_uses": self.code_max_uses,
            "velocity_per_hour": self.velocity_per_hour,
            "velocity_per_day": self.velocity_per_day,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferralPolicy:
        """Build a policy from :meth:`to_dict` output; bad fields raise InvalidProgram."""
        if not isinstance(data, Mapping):
            raise invalid("referrals.referrals", "must be a table", shown(data))
        known = set(attrs.fields_dict(cls))
        for name in data:
            if name not in known:
                raise invalid(f"referrals.{field_name(name)}", "unknown field", None)
        try:
            fields = dict(data)
            fields["reward"] = ReferralReward.from_dict(data["reward"])
            fields["sources"] = tuple((Source(k), ReferralReward.from_dict(v))
                                      for k, v in dict(data.get("sources") or {}).items())
            if data.get("min_net") is not None:
                fields["min_net"] = Money.from_dict(data["min_net"])
            if data.get("cap") is not None:
                fields["cap"] = ReferralCap.from_dict(data["cap"])
            fields["campaigns"] = tuple(Campaign.from_dict(c)
                                        for c in data.get("campaigns") or ())
            if "code" in data:
                fields["code"] = CodeSpec.from_dict(dict(data["code"]))
            return cls(**fields)
        except InvalidProgram:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise invalid("referrals.referrals", f"malformed definition: {shown(exc)}",
                          None) from None


# -- stored records ---------------------------------------------------------------------


@attrs.frozen
class ReferralCode(JsonForm):
    """A code a member shares. ``code`` is its stored (normalised) form, ``shown`` the
    grouped form to print; ``uses`` counts referrals attributed with it."""

    program_id: str
    code: str
    shown: str
    member_id: str
    source: Source
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    max_uses: int | None = None
    uses: int = 0


@attrs.frozen
class Referral(JsonForm):
    """One referee's referral (at most one per referee). ``reasons`` are the fraud
    checks' reasons (and a reject's); points and transaction ids are set once the
    qualifying order paid; ``settles_at`` is when the order's return window closes
    and the rewards become available."""

    program_id: str
    referee_id: str
    referrer_id: str
    code: str
    source: Source
    status: ReferralStatus
    attributed_at: dt.datetime
    updated_at: dt.datetime
    reasons: tuple[str, ...] = ()
    campaign: str | None = None
    order_id: str | None = None
    qualified_at: dt.datetime | None = None
    settles_at: dt.datetime | None = None
    referrer_points: int = 0
    referee_points: int = 0
    referrer_tx: Any = None  # uuid.UUID | None
    referee_tx: Any = None  # uuid.UUID | None
    decided_at: dt.datetime | None = None

    def state_at(self, at: dt.datetime, expires_at: dt.datetime | None = None) -> str:
        """The referral's state at ``at`` in the shop's words: ``waiting``, ``expired``
        (waiting past ``expires_at``, the end of its qualification window), ``flagged``,
        ``blocked``, ``rejected``, ``pending`` (paid, return window open), ``rewarded``
        or ``voided``."""
        if self.status is ReferralStatus.QUALIFIED:
            assert self.settles_at is not None
            return "pending" if at < self.settles_at else "rewarded"
        if self.status is ReferralStatus.WAITING and expires_at is not None \
                and at >= expires_at:
            return "expired"
        return str(self.status.value)


@attrs.frozen
class ReferralMark:
    """A keyed hash (HMAC-SHA256 with the program secret) of a member's normalised
    e-mail, payment or device fingerprint: comparable, never reversible."""

    program_id: str
    member_id: str
    kind: str
    digest: str


@attrs.frozen
class ReferrerStats(JsonForm):
    """What a referrer's referrals came to at ``at``. ``invited`` counts every
    referral attributed to the referrer; ``reasons`` counts the reasons of blocked and
    rejected ones."""

    member_id: str
    at: dt.datetime
    invited: int
    waiting: int
    expired: int
    flagged: int
    qualified: int
    pending: int
    rewarded: int
    voided: int
    rejected: int
    points_pending: int
    points_rewarded: int
    reasons: Mapping[str, int] = attrs.field(factory=dict)


# -- identity ---------------------------------------------------------------------------


#: The longest e-mail address, payment or device fingerprint an identity takes.
MAX_EMAIL_LENGTH = 320
MAX_FINGERPRINT_LENGTH = 1000


def _identity_text(value: object, field: str, limit: int) -> str:
    """``value`` if it is a non-empty str of at most ``limit`` characters that can be
    hashed (UTF-8: no lone surrogates). The error never carries the value, nor a part
    of it: an identity is personal data (only its kind and length are told)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a str", field=field, type=type(value).__name__)
    if not value or len(value) > limit:
        raise InvalidInput(f"{field} must be 1 to {limit} characters", field=field,
                           length=len(value))
    try:
        value.encode()
        hashable = True
    except UnicodeEncodeError:
        hashable = False
    if not hashable:  # raised out here: the encoder's error (holding the value) is no context
        raise InvalidInput(f"{field} holds a character that is not text (a lone surrogate)",
                           field=field, length=len(value))
    if "\x00" in value:  # as every free text: PostgreSQL keeps no NUL in text
        raise InvalidInput(f"{field} holds a NUL character", field=field, length=len(value))
    return value


def normalise_email(email: str) -> str:
    """Return the mailbox ``email`` reaches: lower case, without a ``+tag``; for Gmail
    also without dots in the local part and with ``googlemail.com`` read as
    ``gmail.com``. A malformed address raises :class:`~loyaltykit.InvalidInput`, which
    never shows the address.

    >>> normalise_email("A.Lice+promo@GMail.com")
    'alice@gmail.com'
    """
    _identity_text(email, "email", MAX_EMAIL_LENGTH)
    if email.count("@") != 1:
        raise InvalidInput("an e-mail address has one @", field="email")
    local, domain = email.strip().lower().split("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    if not local or not domain:
        raise InvalidInput("an e-mail address needs a mailbox and a domain", field="email")
    return f"{local}@{domain}"


def _hidden(value: object) -> str:
    return "None" if value is None else "<hidden>"


@attrs.frozen
class Identity(JsonForm):
    """What a shop knows of who a member is, for fraud checks. Each value is kept only
    as a keyed hash: the e-mail after :func:`normalise_email`, the payment fingerprint
    (a card or account token from the payment provider) and the device fingerprint as
    given. Each is a str (an e-mail up to 320 characters, a fingerprint up to 1000);
    its ``repr`` and the errors about it never show the values."""

    email: str | None = attrs.field(default=None, repr=_hidden)
    payment: str | None = attrs.field(default=None, repr=_hidden)
    device: str | None = attrs.field(default=None, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        for field in ("payment", "device"):
            value = getattr(self, field)
            if value is not None:
                _identity_text(value, field, MAX_FINGERPRINT_LENGTH)
        if self.email is not None:
            normalise_email(self.email)

    def digests(self, secret: bytes) -> dict[str, str]:
        """kind -> HMAC-SHA256 hex digest of each value given, keyed with ``secret``
        (bytes)."""
        if not isinstance(secret, bytes):
            raise InvalidInput("secret must be bytes", secret="(hidden)")
        values = {"email": normalise_email(self.email) if self.email is not None else None,
                  "payment": self.payment, "device": self.device}
        return {kind: str(hmac.new(secret, f"{kind}:{value}".encode(),
                                   hashlib.sha256).hexdigest())
                for kind, value in values.items() if value is not None}

    @property
    def empty(self) -> bool:
        """True if nothing is given."""
        return self.email is None and self.payment is None and self.device is None


# -- fraud checks -----------------------------------------------------------------------


@attrs.frozen
class Verdict(JsonForm):
    """A fraud check's outcome and why: an :class:`Outcome` and a tuple of reasons, each
    a str of at most 500 characters (a list is taken as a tuple). Anything else raises
    :class:`~loyaltykit.InvalidInput`."""

    outcome: Outcome = Outcome.PASS
    reasons: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        check_instance(self.outcome, Outcome, "outcome")
        object.__setattr__(self, "reasons", _reasons(self.reasons))


def _reasons(value: object) -> tuple[str, ...]:
    if not isinstance(value, tuple | list):
        raise InvalidInput("a verdict's reasons must be a tuple of str", field="reasons",
                           value=shown(value))
    reasons = []
    for reason in value:
        text = plain_text(reason, MAX_REASON_LENGTH)
        if text is None:
            raise InvalidInput(
                f"a verdict's reasons must be texts of at most {MAX_REASON_LENGTH} "
                "characters without NUL or lone surrogates", field="reasons",
                value=shown(reason))
        reasons.append(text)
    return tuple(reasons)


PASS = Verdict()


@attrs.frozen
class ReferralCase(JsonForm):
    """What the fraud checks see of one attribution. Marks are (kind, digest) pairs;
    ``last_hour`` / ``last_day`` count the referrer's earlier attributions in the hour
    and day before ``at``; ``chain`` lists who referred the referrer, and who referred
    them, and so on (nearest first)."""

    referrer_id: str
    referee_id: str
    at: dt.datetime
    source: Source
    referrer_marks: frozenset[tuple[str, str]]
    referee_marks: frozenset[tuple[str, str]]
    last_hour: int
    last_day: int
    chain: tuple[str, ...]


#: A fraud check: any callable judging a case.
FraudCheck = Callable[[ReferralCase], Verdict]


@attrs.frozen
class SameEmail(JsonForm):
    """The referee's normalised e-mail is one of the referrer's: a self-referral."""

    outcome: Outcome = Outcome.BLOCK

    def __attrs_post_init__(self) -> None:
        check_instance(self.outcome, Outcome, "outcome")

    def __call__(self, case: ReferralCase) -> Verdict:
        """Judge ``case``."""
        mine = {d for k, d in case.referrer_marks if k == "email"}
        if any(k == "email" and d in mine for k, d in case.referee_marks):
            return Verdict(self.outcome, ("self-referral: same e-mail as the referrer",))
        return PASS


@attrs.frozen
class SameFingerprint(JsonForm):
    """The referee's payment (or device) fingerprint is one of the referrer's."""

    kind: str = "payment"
    outcome: Outcome = Outcome.BLOCK

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in _FINGERPRINTS:
            raise InvalidInput("a fingerprint's kind is 'payment' or 'device'", field="kind",
                               value=shown(self.kind))
        check_instance(self.outcome, Outcome, "outcome")

    def __call__(self, case: ReferralCase) -> Verdict:
        """Judge ``case``."""
        mine = {d for k, d in case.referrer_marks if k == self.kind}
        if any(k == self.kind and d in mine for k, d in case.referee_marks):
            return Verdict(self.outcome,
                           (f"self-referral: same {self.kind} fingerprint as the referrer",))
        return PASS


@attrs.frozen
class Velocity(JsonForm):
    """More attributions to one referrer in an hour (or a day) than allowed; each limit
    is None (no limit) or an int from 1 to 10**9."""

    per_hour: int | None = None
    per_day: int | None = None
    outcome: Outcome = Outcome.FLAG

    def __attrs_post_init__(self) -> None:
        for name in ("per_hour", "per_day"):
            if getattr(self, name) is not None:
                check_count(getattr(self, name), name, 1, 10**9)
        check_instance(self.outcome, Outcome, "outcome")

    def __call__(self, case: ReferralCase) -> Verdict:
        """Judge ``case``."""
        reasons = []
        if self.per_hour is not None and case.last_hour + 1 > self.per_hour:
            reasons.append(f"velocity: more than {self.per_hour} referrals in an hour")
        if self.per_day is not None and case.last_day + 1 > self.per_day:
            reasons.append(f"velocity: more than {self.per_day} referrals in a day")
        return Verdict(self.outcome, tuple(reasons)) if reasons else PASS


@attrs.frozen
class Cycle(JsonForm):
    """The referee is already up the referrer's chain (A refers B refers A)."""

    outcome: Outcome = Outcome.BLOCK

    def __attrs_post_init__(self) -> None:
        check_instance(self.outcome, Outcome, "outcome")

    def __call__(self, case: ReferralCase) -> Verdict:
        """Judge ``case``."""
        if case.referee_id in case.chain:
            return Verdict(self.outcome, ("cycle: the referee referred the referrer",))
        return PASS


def default_checks(policy: ReferralPolicy) -> tuple[FraudCheck, ...]:
    """The built-in checks: same e-mail and same payment fingerprint block, a shared
    device flags, velocity past the policy's limits flags, a cycle blocks."""
    check_instance(policy, ReferralPolicy, "policy")
    return (SameEmail(), SameFingerprint("payment", Outcome.BLOCK),
            SameFingerprint("device", Outcome.FLAG),
            Velocity(policy.velocity_per_hour, policy.velocity_per_day), Cycle())


def judge(checks: Sequence[FraudCheck], case: ReferralCase) -> Verdict:
    """Run every check; the most severe outcome wins and every reason is kept.

    A check that raises, or returns anything but a valid :class:`Verdict`, raises
    :class:`~loyaltykit.FraudCheckError` (its exception as the cause): the attribution
    is not judged, so nothing is written."""
    outcome = Outcome.PASS
    reasons: list[str] = []
    for check in checks:
        try:
            verdict = check(case)
            given = _valid(verdict)  # a Verdict subclass's own code may run here too
        except Exception as exc:  # the shop's code: any failure is the check's
            raise FraudCheckError("a fraud check raised", check=shown(check),
                                  error=shown(exc)) from exc
        if given is None:
            raise FraudCheckError(
                "a fraud check must return a Verdict whose reasons are texts of at most "
                f"{MAX_REASON_LENGTH} characters without NUL or lone surrogates",
                check=shown(check), returned=shown(verdict))
        if given.outcome is not Outcome.PASS:
            # no reasons given: the check's repr, made storable (its own text may be
            # anything)
            reasons.extend(given.reasons or (storable_text(shown(check), MAX_REASON_LENGTH),))
            if _SEVERITY[given.outcome] > _SEVERITY[outcome]:
                outcome = given.outcome
    return Verdict(outcome, tuple(reasons))


def _valid(verdict: object) -> Verdict | None:
    """``verdict`` as its constructor leaves a Verdict (its reasons plain texts that
    every backend stores as they are), or None if it is not one: a check could have
    changed a Verdict after it was built, or returned something else."""
    if not isinstance(verdict, Verdict):
        return None
    outcome, given = verdict.outcome, verdict.reasons  # each read once
    if not isinstance(outcome, Outcome) or type(given) is not tuple:
        return None
    reasons = [plain_text(r, MAX_REASON_LENGTH) for r in given]
    if any(r is None for r in reasons):
        return None
    return Verdict(outcome, tuple(r for r in reasons if r is not None))
