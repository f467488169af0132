"""What an evaluation returns: each rule's outcome and the evaluation as a whole."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from loyaltykit._errors import InvalidInput, LoyaltyError, shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import parse_decimal


@attrs.frozen(slots=False)  # a dict instance is quicker to build: hot path
class RuleOutcome(JsonForm):
    """What one rule did for one order or event.

    ``points`` is the exact contribution after caps (0 if not applied), ``uncapped``
    before caps; ``explanation`` says why, in words. ``stamps`` and ``rewards`` are
    for stamp cards; ``tracked`` says whether the contribution is kept as a usage row
    (caps and stamp cards count those).
    """

    rule_id: str
    kind: str
    description: str
    applied: bool
    points: Decimal
    uncapped: Decimal
    explanation: str
    group: str | None = None
    stamps: int = 0
    rewards: tuple[str, ...] = ()
    tracked: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (amounts as decimal strings). Fields at their
        default (``uncapped`` equal to ``points``, no group, stamps, rewards, not
        tracked) are left out: every order stores its breakdown, so it is kept small."""
        data: dict[str, Any] = {
            "rule_id": self.rule_id, "kind": self.kind, "description": self.description,
            "applied": self.applied, "points": str(self.points),
            "explanation": self.explanation,
        }
        if self.uncapped != self.points:
            data["uncapped"] = str(self.uncapped)
        if self.group is not None:
            data["group"] = self.group
        if self.stamps:
            data["stamps"] = self.stamps
        if self.rewards:
            data["rewards"] = list(self.rewards)
        if self.tracked:
            data["tracked"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleOutcome:
        """Inverse of :meth:`to_dict`; a malformed dict raises InvalidInput."""
        outcome: RuleOutcome = _load(_outcome_from_dict, data, "outcome")
        return outcome


def _outcome_from_dict(data: Mapping[str, Any]) -> RuleOutcome:
    stamps = data.get("stamps", 0)
    rewards = data.get("rewards", ())
    tracked = data.get("tracked", False)
    if (isinstance(stamps, bool) or not isinstance(stamps, int)
            or not isinstance(rewards, list | tuple) or not isinstance(tracked, bool)):
        raise TypeError("stamps, rewards or tracked")
    fields = (data["rule_id"], data["kind"], data["description"], data["explanation"])
    if not all(isinstance(f, str) for f in fields) or not isinstance(data["applied"], bool):
        raise TypeError("rule_id, kind, description, explanation or applied")
    group = data.get("group")
    if group is not None and not isinstance(group, str):
        raise TypeError("group")
    return RuleOutcome(
        rule_id=data["rule_id"], kind=data["kind"], description=data["description"],
        applied=data["applied"], points=(points := parse_decimal(data["points"], "points")),
        uncapped=parse_decimal(data["uncapped"], "uncapped") if "uncapped" in data else points,
        explanation=data["explanation"], group=group, stamps=stamps,
        rewards=tuple(str(r) for r in rewards), tracked=tracked,
    )


def _load(build: Any, data: object, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} must be a dict", field=what, value=shown(data))
    try:
        return build(data)
    except KeyError as exc:
        raise InvalidInput(f"malformed {what}: {exc.args[0]} is required",
                           field=f"{what}.{exc.args[0]}", value=None) from None
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, LoyaltyError):
            details = dict(exc.details)
            field = details.pop("field", what)
            raise InvalidInput(f"malformed {what}: {exc.message}", field=field,
                               value=details.get("value")) from None
        raise InvalidInput(f"malformed {what}: {exc}", field=what, value=None) from None


@attrs.frozen(slots=False)
class Evaluation(JsonForm):
    """What an order or event is worth, rule by rule.

    ``points`` is the rounded total (limited by ``max_points_per_order``);
    ``unrounded`` the exact sum of the outcomes; ``net`` the net goods as they stand
    (0 for events); ``currency`` the order's ("" for events); ``outcomes`` every rule
    relevant to the source in evaluation order, applied or not, with the reason;
    ``rewards`` the stamp-card rewards earned; ``version`` the program version;
    ``context`` a JSON snapshot (member context, stamp counts before) that a later
    re-evaluation (a return) reuses.
    """

    points: int
    unrounded: Decimal
    net: Decimal
    currency: str
    outcomes: tuple[RuleOutcome, ...]
    rewards: tuple[str, ...]
    version: int
    context: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    if not TYPE_CHECKING:  # (mypy would take every attribute name for one)
        def __getattr__(self, name: str) -> Any:
            """``outcomes`` left pending (see :func:`pending_evaluation`): built on first
            read, then kept as a field like any other."""
            fields = self.__dict__
            if name == "outcomes":
                pending = fields.get("_pending")
                if pending is not None:
                    fields.setdefault("outcomes", pending[0](pending[1]))
                    fields.pop("_pending", None)
                if "outcomes" in fields:  # (built by another thread meanwhile)
                    return fields["outcomes"]
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        """The fields (pending outcomes built): what pickle and copy keep."""
        self.outcomes  # noqa: B018 (builds them if pending)
        return {k: v for k, v in self.__dict__.items() if k != "_pending"}

    def outcome(self, rule_id: str) -> RuleOutcome | None:
        """Return the outcome of the rule ``rule_id`` (None if it was not relevant)."""
        for outcome in self.outcomes:
            if outcome.rule_id == rule_id:
                return outcome
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (amounts as decimal strings)."""
        return {
            "points": self.points, "unrounded": str(self.unrounded), "net": str(self.net),
            "currency": self.currency, "outcomes": [o.to_dict() for o in self.outcomes],
            "rewards": list(self.rewards), "version": self.version,
            "context": dict(self.context),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`; a malformed dict raises InvalidInput."""
        evaluation: Evaluation = _load(_evaluation_from_dict, data, "evaluation")
        return evaluation


def pending_evaluation(points: int, unrounded: Decimal, net: Decimal, currency: str,
                       build: Callable[[Any], tuple[RuleOutcome, ...]], pending: Any,
                       rewards: tuple[str, ...], version: int,
                       context: Mapping[str, Any]) -> Evaluation:
    """An Evaluation whose ``outcomes`` are ``build(pending)``, called when they are first
    read (the rules engine's fast path: a caller that reads only the points does not pay
    for the outcomes' texts). Its fields are written as ``__init__`` writes them,
    without the call (a guard below checks they have no converter or validator)."""
    evaluation: Evaluation = _new(Evaluation)
    _setattr(evaluation, "__dict__", {  # (its own dict: quicker than filling the shared one)
        "points": points, "unrounded": unrounded, "net": net, "currency": currency,
        "_pending": (build, pending), "rewards": rewards, "version": version,
        "context": context})
    return evaluation


_new = object.__new__
#: object's own setter (an evaluation is frozen: as attrs sets its fields)
_setattr = object.__setattr__
#: Evaluation's fields in its __init__'s order: pending_evaluation writes them (what
#: __init__ writes, without the call; a field added, or given a converter or a
#: validator, fails here, at import)
_FIELDS = ("points", "unrounded", "net", "currency", "outcomes", "rewards", "version",
           "context")
if tuple(a.name for a in attrs.fields(Evaluation)) != _FIELDS or any(
        a.converter is not None or a.validator is not None
        for a in attrs.fields(Evaluation)):  # pragma: no cover (a guard)
    raise ImportError("Evaluation's fields changed: update pending_evaluation")


def _evaluation_from_dict(data: Mapping[str, Any]) -> Evaluation:
    points, version = data["points"], data["version"]
    outcomes, rewards = data["outcomes"], data.get("rewards", ())
    context = data.get("context", {})
    if (isinstance(points, bool) or not isinstance(points, int)
            or isinstance(version, bool) or not isinstance(version, int)
            or not isinstance(outcomes, list | tuple) or not isinstance(rewards, list | tuple)
            or not isinstance(context, Mapping) or not isinstance(data["currency"], str)):
        raise TypeError("points, version, outcomes, rewards, currency or context")
    return Evaluation(
        points=points, unrounded=parse_decimal(data["unrounded"], "unrounded"),
        net=parse_decimal(data["net"], "net"), currency=data["currency"],
        outcomes=tuple(_load(_outcome_from_dict, o, "outcome") for o in outcomes),
        rewards=tuple(str(r) for r in rewards), version=version, context=dict(context),
    )
