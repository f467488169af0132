"""A program in words: :func:`describe_program`, what ``loyaltykit program check`` prints.

One line per fact an operator or a reviewer checks before a program goes live: the
wallets and what a point is worth, how points are earned (each rule), when they become
spendable and when they expire, the spend order and what a clawback does, then the
tiers, referrals, rewards, points as payment and the outbox's policy, each when the
program has them. Read only; nothing here is needed to run a program.
"""

from __future__ import annotations

from decimal import Decimal

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._outbox import EventPolicy
from loyaltykit._payment import PaymentPolicy
from loyaltykit._program import ExpiryRounding, ExpiryStart, LedgerPolicy, Program
from loyaltykit._referrals import ReferralPolicy, ReferralReward
from loyaltykit._rewards import FixedDiscount, FreeItem, PercentDiscount, RewardPolicy
from loyaltykit._rules import (
    EarningPolicy,
    EventBonusRule,
    FixedRule,
    MultiplierRule,
    RateRule,
    Rule,
    StampCardRule,
    TierMultiplierRule,
)
from loyaltykit._tiers import TierPolicy

__all__ = ["describe_program"]


def describe_program(program: Program) -> list[str]:
    """What ``program`` means, in plain English: one line per fact (wallets and point
    value, earning rules, pending period, expiry, spend order, clawback, then tiers,
    referrals, rewards, points as payment and the outbox's policy, where the program has
    them). Lines of a section's detail start with two spaces.

    >>> from loyaltykit import Money, Program
    >>> lines = describe_program(Program(id="shop", time_zone="Europe/Berlin",
    ...                                  currency="EUR", point_value=Money("0.01", "EUR")))
    >>> for line in lines[:2]:
    ...     print(line)
    Program shop, version 1 (EUR, times in Europe/Berlin).
    Wallet: points; 1 point is worth 0.01 EUR.

    Anything but a :class:`~loyaltykit.Program` raises :class:`~loyaltykit.InvalidInput`.
    """
    if not isinstance(program, Program):
        raise InvalidInput("program must be a Program", program=shown(program))
    wallets = ", ".join(program.wallets)
    label = "Wallets" if len(program.wallets) > 1 else "Wallet"
    since = ("" if program.effective_from is None
             else f", in force from {program.effective_from.isoformat()}")
    lines = [
        f"Program {program.id}, version {program.version}{since} "
        f"({program.currency}, times in {program.time_zone}).",
        f"{label}: {wallets}; 1 point is worth {program.point_value.amount} "
        f"{program.point_value.currency}.",
    ]
    lines += _earning(program.earning, program.currency)
    lines += _ledger(program.ledger)
    if program.tiers is not None:
        lines += _tiers(program.tiers)
    if program.referrals is not None:
        lines += _referrals(program.referrals)
    if program.rewards is not None:
        lines += _rewards(program.rewards)
    if program.payments is not None:
        lines += _payments(program.payments)
    if program.events is not None:
        lines += _events(program.events)
    return lines


def _number(value: Decimal | int) -> str:
    """A decimal without trailing zeros (``1.50`` -> ``1.5``, ``10`` -> ``10``)."""
    return format(Decimal(value).normalize(), "f")


def _earning(policy: EarningPolicy, currency: str) -> list[str]:
    if not policy.rules:
        return ["Earning: no rules (points are earned only by explicit earn calls)."]
    lines = [f"Earning ({len(policy.rules)} rule{'s' if len(policy.rules) > 1 else ''}, "
             f"points rounded {policy.rounding.value}, multipliers {policy.stacking.value}):"]
    lines += [f"  - {_rule(rule, currency)}" for rule in policy.rules]
    if policy.max_points_per_order is not None:
        lines.append(f"  at most {policy.max_points_per_order} points per order")
    return lines


def _rule(rule: Rule, currency: str) -> str:
    if isinstance(rule, RateRule):
        base = rule.base.value.replace("_", " ")
        points = _number(rule.points)
        what = (f"{points} point{'' if points == '1' else 's'} per {_number(rule.per)} "
                f"{currency} of {base}")
    elif isinstance(rule, TierMultiplierRule):
        what = "the member's tier multiplier"
    elif isinstance(rule, MultiplierRule):
        what = f"x{_number(rule.factor)} multiplier"
    elif isinstance(rule, FixedRule):
        what = f"{rule.points} points {'per item' if rule.per_item else 'per order'}"
    elif isinstance(rule, StampCardRule):
        prize = f"{rule.points} points" if rule.points else f"reward {rule.reward}"
        what = f"stamp card: every {rule.every} {rule.counts} give {prize}"
    elif isinstance(rule, EventBonusRule):
        what = f"{rule.points} points on the event {rule.event!r}"
    else:  # a rule type added later: its JSON type at least
        what = f"a {type(rule).type or type(rule).__name__} rule"
    extras = []
    if getattr(rule, "match", None) is not None:
        extras.append("on matching lines only")
    if rule.condition is not None:
        extras.append(f"if: {rule.condition.type.replace('_', ' ')}")
    if rule.window is not None:
        extras.append("within a date window")
    if rule.caps:
        extras.append(f"{len(rule.caps)} cap{'s' if len(rule.caps) > 1 else ''}")
    if rule.exclusive:
        extras.append("exclusive")
    described = f" ({rule.description})" if rule.description else ""
    more = f" [{', '.join(extras)}]" if extras else ""
    return f"{rule.id}: {what}{more}{described}"


def _ledger(ledger: LedgerPolicy) -> list[str]:
    lines = []
    pending = ledger.pending
    if pending.manual:
        lines.append("Pending: earned points stay pending until activated by hand.")
    elif pending.days:
        lines.append(f"Pending: earned points become spendable after {pending.days} days.")
    else:
        lines.append("Pending: none (earned points are spendable at once).")
    expiry = ledger.expiry
    if expiry.days is None and expiry.months is None:
        lines.append("Expiry: points never expire.")
    else:
        span = (f"{expiry.months} months" if expiry.months is not None
                else f"{expiry.days} days")
        start = ("activated" if expiry.counted_from is ExpiryStart.ACTIVATION
                 else "earned")
        rounded = ("" if expiry.round_up_to is ExpiryRounding.NONE
                   else f", rounded up to the start of the next {expiry.round_up_to.value}")
        lines.append(f"Expiry: points expire {span} after they were {start}{rounded}.")
    lines.append(f"Spending uses {ledger.spend_order.value.replace('_', ' ')} lots first; "
                 f"a clawback beyond the balance: {ledger.clawback.value.replace('_', ' ')}.")
    return lines


def _tiers(policy: TierPolicy) -> list[str]:
    window = policy.window.kind.value.replace("_", " ")
    if policy.window.months is not None:
        window += f" ({policy.window.months} months)"
    lines = [f"Tiers by {policy.metric.value} over a {window} window "
             f"(downgrade {policy.downgrade.value.replace('_', ' ')}, "
             f"{policy.grace_periods} grace period(s), notice {policy.notice_days} days):"]
    for tier in policy.tiers:
        threshold = tier.threshold
        shown_threshold = (str(threshold) if isinstance(threshold, int)
                           else f"{threshold.amount} {threshold.currency}")
        lifetime = ", for life" if tier.lifetime else ""
        lines.append(f"  - {tier.name}: from {shown_threshold}{lifetime}")
    return lines


def _reward_text(reward: ReferralReward) -> str:
    return f"referrer +{reward.referrer}, referee +{reward.referee}"


def _referrals(policy: ReferralPolicy) -> list[str]:
    lines = [f"Referrals: {_reward_text(policy.reward)} once the referee's qualifying "
             f"order is past its {policy.return_window_days}-day return window "
             f"(qualify within {policy.qualify_within_days} days).",
             ]
    if policy.min_net is not None:
        lines.append(f"  a qualifying order is at least {policy.min_net.amount} "
                     f"{policy.min_net.currency}")
    for source, reward in policy.sources:
        lines.append(f"  from {getattr(source, 'value', source)}: {_reward_text(reward)}")
    if policy.campaigns:
        lines.append(f"  {len(policy.campaigns)} campaign(s)")
    return lines


def _rewards(policy: RewardPolicy) -> list[str]:
    if not policy.catalogue:
        return ["Rewards: an empty catalogue."]
    lines = [f"Rewards ({len(policy.catalogue)} in the catalogue):"]
    for reward in policy.catalogue:
        kind = reward.kind
        if isinstance(kind, FixedDiscount):
            gives = f"{kind.amount.amount} {kind.amount.currency} off"
        elif isinstance(kind, PercentDiscount):
            gives = f"{_number(kind.percent)}% off"
        elif isinstance(kind, FreeItem):
            gives = f"{kind.quantity} x {kind.sku} free"
        else:
            gives = type(kind).__name__
        stock = "" if reward.stock is None else f", stock {reward.stock}"
        lines.append(f"  - {reward.id} ({reward.name}): {reward.cost} points for {gives}"
                     f"{stock}")
    return lines


def _payments(policy: PaymentPolicy) -> list[str]:
    return [f"Points as payment: {policy.points} points pay {policy.money.amount} "
            f"{policy.money.currency}, at least {policy.min_points} points, in steps of "
            f"{policy.step}, up to {_number(policy.max_share * 100)}% of an order."]


def _events(policy: EventPolicy) -> list[str]:
    kept = ("until pruned by hand" if policy.retention_days is None
            else f"{policy.retention_days} days once acknowledged")
    notices = []
    if policy.points_expiring_days is not None:
        notices.append(f"points expiring in {policy.points_expiring_days} days")
    if policy.voucher_expiring_days is not None:
        notices.append(f"vouchers expiring in {policy.voucher_expiring_days} days")
    if policy.tier_will_drop:
        notices.append("tier about to drop")
    told = f"; notices: {', '.join(notices)}" if notices else ""
    return [f"Events: kept {kept}{told}."]
