"""The evaluator: an order or an event, a policy and usage rows in, an Evaluation out."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from decimal import Decimal, getcontext, setcontext
from typing import Any

from loyaltykit._errors import (
    InvalidEvent,
    InvalidInput,
    InvalidOrder,
    InvalidProgram,
    LoyaltyError,
    shown,
)
from loyaltykit._model import RuleUsage
from loyaltykit._orders import (
    Event,
    Order,
    OrderLine,
    line_net,
)
from loyaltykit._rules.enums import (
    DECIMAL_ROUNDING,
    Stacking,
)
from loyaltykit._rules.facts import (
    Facts,
    MemberContext,
    order_facts,
)
from loyaltykit._rules.fastpath import OrderSteps, supports
from loyaltykit._rules.fields import (
    CONTEXT,
    EXACT,
    ONE,
    ZERO,
    ZONES,
    num_text,
    points_text,
    program_zone,
)
from loyaltykit._rules.limits import (
    NO_LINE,
    NOTHING,
    Run,
    not_applied,
    signed,
    spread,
)
from loyaltykit._rules.policy import (
    EVENT,
    FIXED,
    MULTIPLIER,
    RATE,
    Compiled,
    EarningPolicy,
    plan_of,
)
from loyaltykit._rules.results import (
    Evaluation,
    RuleOutcome,
    pending_evaluation,
)
from loyaltykit._rules.rules import (
    FixedRule,
    RateRule,
    StampCardRule,
)
from loyaltykit._rules.specialise import outcomes_of
from loyaltykit._values import MAX_POINTS


def _stamp_rewards(rule: StampCardRule, before: int, stamps: int) -> int:
    return (before + stamps) // rule.every - before // rule.every


def _evaluate(
    policy: EarningPolicy,
    rules: tuple[Compiled, ...],
    facts: Facts,
    run: Run,
    *,
    lines: tuple[OrderLine, ...] | None,
    shipping: Decimal,
    stamps_before: dict[str, int],
    previous: Evaluation | None,
    version: int,
    context: Mapping[str, Any],
    keep: Mapping[str, tuple[int, int]] | None = None,
    money_paid: Sequence[Decimal] | None = None,
) -> Evaluation:
    outcomes: list[RuleOutcome] = []
    append = outcomes.append
    rewards: list[str] = []
    total = ZERO
    is_order = lines is not None
    lines = lines or ()
    n = len(lines)
    empty = is_order and n == 0
    every = list(range(n))
    # an order paid partly with points earns on each line's money-paid part only
    nets = [line.net for line in lines] if money_paid is None else list(money_paid)
    keys = [(line.sku, line.category) for line in lines]
    base: list[Decimal] = [ZERO] * (n + 1)  # index n: the shipping pseudo-line
    current = base
    multiply = policy.stacking is Stacking.MULTIPLY
    old = {o.rule_id: o for o in previous.outcomes} if previous is not None else None
    capped = run.previous is not None
    phase = 0
    exclusive: str | None = None
    local = facts.local
    currency = facts.currency
    for c in rules:
        if c.phase != phase:
            if c.phase == 2:
                current = list(base)
            phase = c.phase
            exclusive = None
        if keep is not None and c.id in keep:  # a card settled over all kept stamps
            card = c.rule
            assert isinstance(card, StampCardRule)
            count, stamps = keep[c.id]
            uncapped = Decimal(count * card.points)
            points, note = run.limit(c, uncapped)
            total += points
            kept = (card.reward,) * count if card.reward is not None else ()
            rewards.extend(kept)
            append(RuleOutcome(
                c.id, c.kind, c.text, True, points, uncapped,
                f"{stamps} stamp{'s' if stamps != 1 else ''} left of the order's; it keeps "
                f"{count} reward{'s' if count != 1 else ''} (the member's kept stamps fill "
                f"them, a card of {card.every})"
                + (f" = {points_text(uncapped)}" if card.points else "") + note,
                c.group, stamps, kept, c.tracked))
            continue
        if empty:
            append(not_applied(c, NOTHING))
            continue
        if exclusive is not None:
            append(not_applied(c, f"skipped: exclusive rule {exclusive} applied"))
            continue
        if c.window is not None:
            reason = c.window.unmet(local)
            if reason is not None:
                append(not_applied(c, f"not applied: {reason}"))
                continue
        if c.cond is not None:
            reason = c.cond.unmet(facts)
            if reason is not None:
                append(not_applied(c, f"not applied: {reason}"))
                continue
        code = c.code
        if code == EVENT:
            uncapped = Decimal(c.rule.points)  # type: ignore[attr-defined]
            points, note = (run.limit(c, uncapped) if c.limited or capped
                            else (uncapped, ""))
            total += points
            append(RuleOutcome(c.id, c.kind, c.text, True, points, uncapped, c.prefix + note,
                               c.group, 0, (), c.tracked))
            if c.excl:
                exclusive = c.id
            continue
        if c.match_all:
            picked = every
        else:
            skus, cats = c.skus, c.cats
            picked = [i for i in every if keys[i][0] in skus or keys[i][1] in cats]
        stamps = 0
        won: tuple[str, ...] = ()
        if code == RATE:
            if not picked and not c.ship:
                append(not_applied(c, NO_LINE))
                continue
            rule = c.rule
            assert isinstance(rule, RateRule)
            ratio = c.ratio
            counted = uncapped = ZERO
            amounts = []
            for i in picked:
                a = nets[i]
                counted += a
                a = a * ratio if ratio is not None else a * rule.points / rule.per
                amounts.append(a)
                uncapped += a
            if c.ship:
                picked = [*picked, n]
                counted += shipping
                a = (shipping * ratio if ratio is not None
                     else shipping * rule.points / rule.per)
                amounts.append(a)
                uncapped += a
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            spread(base, picked, amounts, points, uncapped)
            explanation = (f"{c.prefix} {currency} on {counted!s} {currency} {c.what} = "
                           f"{uncapped!s}{note}")
        elif code == MULTIPLIER:
            if c.match_all:
                picked = [*every, n]
            elif not picked:
                append(not_applied(c, NO_LINE))
                continue
            source = current if multiply else base
            if c.kind == "tier_multiplier":
                factor = facts.earn_multiplier if facts.earn_multiplier is not None else ONE
                prefix = f"x{num_text(factor)} (tier {facts.tier}) on "
            else:
                factor = c.rule.factor  # type: ignore[attr-defined]
                prefix = c.prefix
            less = factor - ONE
            counted = uncapped = ZERO
            amounts = []
            for i in picked:
                a = source[i]
                counted += a
                a = a * less
                amounts.append(a)
                uncapped += a
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            if multiply:
                spread(current, picked, amounts, points, uncapped)
            explanation = f"{prefix}{counted!s} points{c.what} = {signed(uncapped)}{note}"
        elif code == FIXED:
            if not picked:
                append(not_applied(c, NO_LINE))
                continue
            rule_ = c.rule
            assert isinstance(rule_, FixedRule)
            if rule_.per_item:
                items = sum(lines[i].quantity for i in picked)
                uncapped = Decimal(rule_.points * items)
                explanation = f"{c.prefix}{items} items = {uncapped!s}"
            else:
                uncapped = Decimal(rule_.points)
                explanation = c.prefix
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            explanation += note
        else:
            card = c.rule
            assert isinstance(card, StampCardRule)
            if is_order:
                if not picked:
                    append(not_applied(c, NO_LINE))
                    continue
                stamps = (sum(lines[i].quantity for i in picked) if card.counts == "items"
                          else 1)
            else:
                stamps = 1
            before = stamps_before.get(c.id)
            if before is None:
                before = stamps_before[c.id] = (
                    0 if capped else sum(r.stamps for r in run.rows(c.id) or ()))
            count = _stamp_rewards(card, before, stamps)
            if old is not None:
                was = old.get(c.id)
                stamps = min(stamps, was.stamps if was is not None else 0)
                count = _stamp_rewards(card, before, stamps)
                if was is not None and card.reward is not None:
                    count = min(count, len(was.rewards))
            uncapped = Decimal(count * card.points)
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            won = (card.reward,) * count if card.reward is not None else ()
            rewards.extend(won)
            explanation = (f"{stamps} stamp{'s' if stamps != 1 else ''} "
                           f"({before} -> {before + stamps}, a card of {card.every}): "
                           f"{count} reward{'s' if count != 1 else ''}"
                           + (f" = {points_text(uncapped)}" if card.points else "") + note)
        total += points
        append(RuleOutcome(c.id, c.kind, c.text, True, points, uncapped, explanation, c.group,
                           stamps, won, c.tracked))
        if c.excl:
            exclusive = c.id
    # the exact sum: outcomes carry up to 34 digits each, and their running sum in the
    # 34-digit context could round (a sum just below a whole point must not floor up)
    with decimal.localcontext(EXACT):
        total = sum((o.points for o in outcomes), ZERO)
    result = int(total.to_integral_value(rounding=DECIMAL_ROUNDING[policy.rounding]))
    if result < 0:
        result = 0
    limit = policy.max_points_per_order
    if limit is not None and result > limit:
        result = limit
    if previous is not None and result > previous.points:
        result = previous.points
    elif result > MAX_POINTS:  # never credited in part: the whole request is refused
        what = "order" if is_order else "event"
        raise (InvalidOrder if is_order else InvalidEvent)(
            f"points: the {what} is worth {result} points, more than one request may "
            f"carry ({MAX_POINTS})", field="points", value=result, max_points=MAX_POINTS)
    return Evaluation(result, total, facts.net if is_order else ZERO, currency,
                      tuple(outcomes), tuple(rewards), version, context)


def _check_money_paid(order: Order, money_paid: object) -> list[Decimal] | None:
    """``money_paid`` as a list of one Decimal per line, each from 0 to the line's net."""
    if money_paid is None:
        return None
    if isinstance(money_paid, str | bytes) or not isinstance(money_paid, Sequence) \
            or len(money_paid) != len(order.lines):
        raise InvalidInput("money_paid must give one amount per line of the order",
                           field="money_paid", value=shown(money_paid))
    for line, part in zip(order.lines, money_paid, strict=True):
        if not isinstance(part, Decimal) or not part.is_finite() or not ZERO <= part <= line.net:
            raise InvalidInput("money_paid: each amount must be a Decimal from 0 to its "
                               "line's net amount", field="money_paid", line_id=line.id,
                               value=shown(part))
    return list(money_paid)


def _check_policy(policy: object) -> EarningPolicy:
    if not isinstance(policy, EarningPolicy):
        raise InvalidProgram("policy must be an EarningPolicy", field="earning",
                             value=shown(policy))
    return policy


def _member_from(context: Mapping[str, Any]) -> tuple[MemberContext, dict[str, int]]:
    try:
        raw = context["member"]
        member = MemberContext(
            member_id=raw["member_id"],
            enrolled_at=dt.datetime.fromisoformat(raw["enrolled_at"]),
            attributes=dict(raw.get("attributes") or {}), tier=raw.get("tier"),
            first_order=bool(raw.get("first_order", False)),
            earn_multiplier=(Decimal(raw["earn_multiplier"])
                             if raw.get("earn_multiplier") is not None else None),
        )
        stamps = {str(k): int(v) for k, v in dict(context.get("stamps_before", {})).items()}
    except (KeyError, TypeError, ValueError, AttributeError, LoyaltyError) as exc:
        raise InvalidInput(f"previous evaluation has no usable context: {shown(exc)}",
                           field="previous.context", value=None) from None
    return member, stamps


def _check_inputs(member: object, usage: object, version: object) -> None:
    """Refuse a member, usage rows or version that cannot be what they say."""
    if not isinstance(member, MemberContext):
        raise InvalidInput("member must be a MemberContext", field="member",
                           value=shown(member))
    # a list or tuple is checked row by row; another Sequence (the service's rows, built
    # on first use) is taken as it is
    if type(usage) is tuple or type(usage) is list:  # (the common cases first: quicker)
        if usage and not all(isinstance(u, RuleUsage) for u in usage):
            raise InvalidInput("usage must be a list of RuleUsage rows", field="usage",
                               value=shown(usage))
    elif isinstance(usage, str | bytes) or not isinstance(usage, Sequence) or (
            isinstance(usage, list | tuple) and not all(isinstance(u, RuleUsage) for u in usage)):
        raise InvalidInput("usage must be a list of RuleUsage rows", field="usage",
                           value=shown(usage))
    if type(version) is not int and (isinstance(version, bool)
                                     or not isinstance(version, int)):
        raise InvalidInput(f"version must be an int from 1 to {_MAX_VERSION}",
                           field="version", value=shown(version))
    if not 1 <= version <= _MAX_VERSION:
        raise InvalidInput(f"version must be an int from 1 to {_MAX_VERSION}",
                           field="version", value=shown(version))


#: The largest program version (as :class:`~loyaltykit.Program` allows).
_MAX_VERSION = 1_000_000


def _stamp_counts(stamps: Mapping[str, int] | None) -> dict[str, int]:
    if stamps is None:
        return {}
    if not isinstance(stamps, Mapping):
        raise InvalidInput("stamps must map rule ids to counts", field="stamps",
                           value=shown(stamps))
    counts = {}
    for rule_id, count in stamps.items():
        if not isinstance(rule_id, str):
            raise InvalidInput("stamps are keyed by rule id", field="stamps",
                               value=shown(rule_id))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput("stamp counts are non-negative ints", field="stamps",
                               value={rule_id: shown(count)})
        counts[rule_id] = count
    return counts


def rewards_of(card: StampCardRule, outcome: RuleOutcome | None) -> int:
    """How many times the stamp-card outcome ``outcome`` filled ``card``."""
    if outcome is None or not outcome.applied:
        return 0
    if card.reward is not None:
        return len(outcome.rewards)
    return int(outcome.uncapped) // card.points


def reevaluate_order(
    policy: EarningPolicy,
    time_zone: str,
    order: Order,
    previous: Evaluation,
    *,
    version: int,
    keep: Mapping[str, tuple[int, int]],
    money_paid: Sequence[Decimal] | None = None,
) -> Evaluation:
    """:func:`evaluate_order` with ``previous``, except that each stamp card named in
    ``keep`` (``card id -> (rewards, stamps)``) applies with that many rewards and
    stamps, whatever the order's own lines give now (its points still at most what it
    gave before): the orders' service settles a card over all of the member's kept
    stamps (see :meth:`~loyaltykit.Loyalty.record_return`), and the order keeps what
    the settlement leaves it. ``money_paid`` is as for :func:`evaluate_order`."""
    plan = plan_of(_check_policy(policy))
    zone = program_zone(time_zone)
    with decimal.localcontext(CONTEXT):
        member, before = _member_from(previous.context)
        old = {o.rule_id: o for o in previous.outcomes}
        facts = Facts(order.placed_at, zone, order.net_goods, order.currency, member,
                      order.attributes, None, order.channel, order.store)
        run = Run(order.placed_at, zone, facts.local, (), f"order:{order.id}", old)
        shipping = order.shipping.amount if order.shipping is not None else ZERO
        return _evaluate(policy, plan.order_rules, facts, run, lines=order.lines,
                         shipping=shipping, stamps_before=before, previous=previous,
                         version=version, context=previous.context, keep=keep,
                         money_paid=_check_money_paid(order, money_paid))


def evaluate_order(
    policy: EarningPolicy,
    time_zone: str,
    order: Order,
    member: MemberContext,
    *,
    usage: Sequence[RuleUsage] = (),
    version: int = 1,
    previous: Evaluation | None = None,
    stamps: Mapping[str, int] | None = None,
    money_paid: Sequence[Decimal] | None = None,
) -> Evaluation:
    """Price ``order`` for ``member`` under ``policy`` in the program's ``time_zone``.

    ``usage`` holds the member's usage rows that :func:`usage_queries` asked for;
    ``version`` is recorded in the result. With ``previous`` (the evaluation of the
    order as placed) this is a re-evaluation after a return: ``order`` is the order
    as it stands, ``previous.context`` replaces ``member`` and ``usage``, and no rule
    gives more than it gave before. ``stamps`` may give stamp cards' lifetime stamp
    counts (see :func:`stamp_card_ids`) instead of their usage rows. ``money_paid``
    gives, per line, the part of its net amount paid in money when points paid for the
    rest: rate rules then earn on it instead of the net (conditions such as a minimum
    order still test the order's net goods). Pure: no clock, no I/O.
    """
    if not isinstance(policy, EarningPolicy):
        _check_policy(policy)
    if not isinstance(order, Order):
        raise InvalidInput("order must be an Order", field="order", value=shown(order))
    if type(member) is not MemberContext or type(usage) is not tuple or usage or type(
            version) is not int or not 1 <= version <= _MAX_VERSION:  # (else: no call)
        _check_inputs(member, usage, version)
    if previous is not None and not isinstance(previous, Evaluation):
        raise InvalidInput("previous must be an Evaluation or None", field="previous",
                           value=shown(previous))
    if previous is None:
        return first_evaluation(policy, time_zone, order, member, usage, version, stamps,
                                money_paid)  # (positional: a quicker call)
    # a re-evaluation reads no usage rows (Run ignores them beside previous outcomes):
    # it is reevaluate_order with no card settled over kept stamps
    return reevaluate_order(policy, time_zone, order, previous, version=version, keep={},
                            money_paid=money_paid)


def first_evaluation(
    policy: EarningPolicy,
    time_zone: str,
    order: Order,
    member: MemberContext,
    usage: Sequence[RuleUsage],
    version: int,
    stamps: Mapping[str, int] | None,
    money_paid: Sequence[Decimal] | None,
    fast: bool = True,
) -> Evaluation:
    """:func:`evaluate_order` without ``previous``, its arguments checked: on the fast
    path (:mod:`loyaltykit._rules.fastpath`) when the policy's order rules allow it and
    ``fast`` is true, else on the general evaluator (the same Evaluation either way)."""
    plan = policy._plan  # (what plan_of gives, without its call)
    zone = ZONES.get(time_zone) if type(time_zone) is str else None
    if zone is None:  # (a name not seen before, or not a name: program_zone checks it)
        zone = program_zone(time_zone)
    # the evaluator's decimal context, whatever the caller's (what localcontext(CONTEXT)
    # does, without copying the context for every order: nothing changes _FIRST itself)
    outer = getcontext()
    setcontext(_FIRST)
    try:
        before = _stamp_counts(stamps) if stamps is not None else {}
        context = {"member": member.snapshot(), "stamps_before": before}
        shipping = order.shipping.amount if order.shipping is not None else ZERO
        paid = _check_money_paid(order, money_paid) if money_paid is not None else None
        steps = plan.order_steps
        if steps is None:
            steps = plan.order_steps = (OrderSteps(policy, plan.order_rules)
                                        if supports(plan.order_rules) else False)
        if fast and steps:  # (no Facts: the fast path reads the order and the member)
            lines = order.lines
            n = len(lines)
            if not n:
                return Evaluation(0, ZERO, order.net_goods, order.currency, steps.nothing,
                                  (), version, context)
            outcomes, applied, rewards = steps.price(
                order, member, zone, usage,
                # (no rows: a tuple or list of none; another Sequence is read when needed)
                (type(usage) is tuple or type(usage) is list) and not usage,
                lines, shipping, before,
                list(map(line_net, lines)) if paid is None else paid, paid is None, n)
            # the exact sum (see _evaluate; the rules that did not apply add 0), in its
            # context as the current one (what EXACT.add gives, without a call per
            # outcome; nothing below reads the current context)
            setcontext(EXACT)
            unrounded = sum(applied, ZERO)
            result = int(steps.rounder.to_integral_value(unrounded))
            if result < 0:
                result = 0
            limit = policy.max_points_per_order
            if limit is not None and result > limit:
                result = limit
            elif result > MAX_POINTS:
                raise InvalidOrder(
                    f"points: the order is worth {result} points, more than one request "
                    f"may carry ({MAX_POINTS})", field="points", value=result,
                    max_points=MAX_POINTS)
            # the outcomes are built when first read (the applied rates' and multipliers'
            # texts: a caller may read only the points)
            return pending_evaluation(result, unrounded, order.net_goods, order.currency,
                                      outcomes_of, outcomes, tuple(rewards), version,
                                      context)
        facts = order_facts(order, member, zone)
        run = Run(order.placed_at, zone, facts.local, usage, f"order:{order.id}", None)
        return _evaluate(policy, plan.order_rules, facts, run, lines=order.lines,
                         shipping=shipping, stamps_before=before, previous=None,
                         version=version, context=context, money_paid=paid)
    finally:
        setcontext(outer)


#: The decimal context of first evaluations: the evaluator's, set as it is (a copy of
#: CONTEXT of its own, so that no other use of CONTEXT shares its flags)
_FIRST = CONTEXT.copy()


def evaluate_event(
    policy: EarningPolicy,
    time_zone: str,
    event: Event,
    member: MemberContext,
    *,
    usage: Sequence[RuleUsage] = (),
    version: int = 1,
    stamps: Mapping[str, int] | None = None,
) -> Evaluation:
    """Price ``event`` for ``member``: the event-bonus and event stamp-card rules of the
    event's type, with caps counted from ``usage`` (and stamp cards from ``stamps``
    when given, as for :func:`evaluate_order`). Pure: no clock, no I/O."""
    plan = plan_of(_check_policy(policy))
    if not isinstance(event, Event):
        raise InvalidInput("event must be an Event", field="event", value=shown(event))
    _check_inputs(member, usage, version)
    zone = program_zone(time_zone)
    with decimal.localcontext(CONTEXT):
        before = _stamp_counts(stamps)
        context = {"member": member.snapshot(), "stamps_before": before}
        facts = Facts(event.occurred_at, zone, ZERO, "", member, None, event.attributes,
                       None, None)
        run = Run(event.occurred_at, zone, facts.local, usage, f"event:{event.id}", None)
        return _evaluate(policy, plan.event_rules.get(event.type, ()), facts, run, lines=None,
                         shipping=ZERO, stamps_before=before, previous=None,
                         version=version, context=context)
