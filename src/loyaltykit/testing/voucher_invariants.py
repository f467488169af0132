"""Invariant (v) of :mod:`loyaltykit.testing.invariants`: a program's vouchers agree with
the reward counters, the stock and limits of their rewards, and their spends.

The limits are counted here independently of the rewards' service (a window per
redemption), so a counting bug in the service does not hide itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from loyaltykit._calendar import add_days, calendar_period, zone
from loyaltykit._errors import LoyaltyError
from loyaltykit._model import Kind, Transaction
from loyaltykit._program import Program
from loyaltykit._rewards import RewardLimit, Voucher, VoucherStatus
from loyaltykit._rules import CapPeriod

if TYPE_CHECKING:
    from loyaltykit.testing.invariants import LedgerSnapshot

__all__ = ["voucher_problems"]


def _voucher_fields(v: Voucher, at: dt.datetime | None) -> Iterable[str]:
    """What is wrong with the fields of ``v`` for its status (nothing: empty)."""
    status = v.status
    end = v.expires_at
    if v.expires_at is not None and v.expires_at <= v.issued_at:
        yield f"expires at {v.expires_at}, not after its issue {v.issued_at}"
    if (v.used_at is not None) != (status is VoucherStatus.USED) \
            or (v.order_id is not None) != (status is VoucherStatus.USED):
        yield f"is {status.value} with used_at {v.used_at} and order_id {v.order_id!r}"
    if (v.cancelled_at is not None) != (status is VoucherStatus.CANCELLED):
        yield f"is {status.value} with cancelled_at {v.cancelled_at}"
    if (v.expired_at is not None) != (status is VoucherStatus.EXPIRED):
        yield f"is {status.value} with expired_at {v.expired_at}"
    if status is VoucherStatus.EXPIRED and (v.expired_at != end or end is None
                                             or (at is not None and end > at)):
        yield f"is expired at {v.expired_at} (it expires {end}, now is {at})"
    for name in ("used_at", "cancelled_at"):
        when = getattr(v, name)
        if when is not None and (when < v.issued_at or (end is not None and when >= end)):
            yield f"has {name} {when} outside its life [{v.issued_at}, {end})"
    if status in (VoucherStatus.ISSUED, VoucherStatus.USED) and v.refund_id is not None:
        yield f"is {status.value} but names the refund {v.refund_id}"


def _in_window(limit: RewardLimit, end: dt.datetime, tz_name: str,
               issued: Sequence[dt.datetime]) -> int:
    """How many of ``issued`` lie in the period of ``limit`` holding ``end``: the
    calendar period, or for a rolling limit the ``days`` days of wall clock up to
    ``end`` (every rolling window that counts ends at some redemption)."""
    if limit.period is CapPeriod.LIFETIME:
        return len(issued)
    tz = zone(tz_name)
    if limit.period is CapPeriod.ROLLING:
        start = add_days(end, -(limit.days or 0), tz)
        return sum(1 for t in issued if start < t <= end)
    first, stop = calendar_period(limit.period.value, end.astimezone(tz).date(), tz)
    return sum(1 for t in issued if first <= t < stop)


def voucher_problems(snapshot: LedgerSnapshot, program: Program, at: dt.datetime | None
                     ) -> Iterable[str]:
    """What breaks invariant (v) in ``snapshot`` (see :mod:`loyaltykit.testing.invariants`):
    each problem as a message. ``at`` lets it check that expired vouchers' expiry has
    come."""
    policy = program.rewards
    if policy is None:
        return
    by_reward: dict[str, list[Voucher]] = {}
    codes: dict[str, uuid.UUID] = {}
    for v in snapshot.vouchers.values():
        by_reward.setdefault(v.reward_id, []).append(v)
        if codes.setdefault(v.code, v.id) != v.id:
            yield (f"vouchers {codes[v.code]} and {v.id} share code {v.code!r}")
        for wrong in _voucher_fields(v, at):
            yield (f"voucher {v.shown} of member {v.member_id!r} {wrong}")
        if v.version != program.version:
            continue
        try:
            normal = policy.code.parse(v.shown) == v.code == policy.code.parse(v.code) \
                and policy.code.display(v.code) == v.shown
        except LoyaltyError:
            normal = False
        if not normal:
            yield (f"voucher {v.id}: code {v.code!r} shown as {v.shown!r} is "
                                 f"not stored normalised")
    txs = {tx.id: tx for w in snapshot.wallets.values() for tx in w.transactions}
    reversal = {tx.reverses_id: tx for tx in txs.values() if tx.reverses_id is not None}
    for v in snapshot.vouchers.values():
        if (v.member_id, v.wallet) not in snapshot.wallets:
            continue  # a wallet of another version
        yield from _check_voucher_spend(v, program, txs.get(v.transaction_id),
                                        reversal.get(v.transaction_id))
    catalogue = policy.by_id
    for reward_id, (held, redeemed) in snapshot.reward_counters.items():
        found = by_reward.get(reward_id, [])
        holding = sum(1 for v in found
                      if v.status in (VoucherStatus.ISSUED, VoucherStatus.USED))
        counted = [v for v in found if v.status is not VoucherStatus.CANCELLED]
        if (held, redeemed) != (holding, len(counted)):
            yield (f"reward {reward_id!r}: counters (held, redeemed) are "
                                 f"{(held, redeemed)}, the vouchers say "
                                 f"{(holding, len(counted))}")
        reward = catalogue.get(reward_id)
        if reward is None or any(v.version != program.version for v in found):
            continue  # limits of another version
        if reward.stock is not None and holding > reward.stock:
            yield (f"reward {reward_id!r}: {holding} vouchers hold an item "
                                 f"of a stock of {reward.stock}")
        if reward.global_limit is not None and len(counted) > reward.global_limit:
            yield (f"reward {reward_id!r}: {len(counted)} redemptions, the "
                                 f"global limit is {reward.global_limit}")
        limit = reward.per_member
        if limit is None:
            continue
        issued: dict[str, list[dt.datetime]] = {}
        for v in counted:
            issued.setdefault(v.member_id, []).append(v.issued_at)
        for member_id, times in issued.items():
            worst = max(times, key=lambda t: _in_window(limit, t, program.time_zone, times))
            n = _in_window(limit, worst, program.time_zone, times)
            if n > limit.count:
                yield (f"reward {reward_id!r}: member {member_id!r} has {n} "
                                     f"vouchers in the {limit.period.value} period holding "
                                     f"{worst.isoformat()}, the limit is {limit.count}")


def _check_voucher_spend(v: Voucher, program: Program, spend: Transaction | None,
                         reversal: Transaction | None) -> Iterable[str]:
    """A voucher's spend took its cost, and is reversed if and only if the voucher
    was cancelled or expired with a refund (a direct reverse of it is refused)."""
    who = f"voucher {v.shown} ({v.status.value}) of member {v.member_id!r}"
    if spend is None:
        yield (f"{who}: its spend {v.transaction_id} is not in its wallet")
        return
    if (spend.kind, spend.points, spend.wallet) != (Kind.SPEND, -v.cost, v.wallet) \
            or spend.metadata.get("voucher_id") != str(v.id):
        yield (f"{who}: its spend {spend.id} is a {spend.kind.value} of "
                             f"{spend.points} in {spend.wallet!r} for "
                             f"{spend.metadata.get('voucher_id')}, not of {-v.cost} for it")
    by_voucher = reversal is not None and reversal.metadata.get("voucher_id") == str(v.id)
    if v.refund_id is not None and (reversal is None or reversal.id != v.refund_id):
        yield (f"{who}: names the refund {v.refund_id}, but the spend's "
                             f"reversal is {reversal.id if reversal else None}")
    policy = program.rewards
    reward = policy.by_id.get(v.reward_id) if policy is not None else None
    refunds = v.status is VoucherStatus.CANCELLED or (
        v.status is VoucherStatus.EXPIRED and reward is not None and reward.refund_on_expiry
        and v.version == program.version)
    if refunds and reversal is None:
        yield (f"{who}: its spend {spend.id} is not reversed")
    elif refunds and (v.refund_id is None) == by_voucher:
        yield (f"{who}: refund {v.refund_id}, but the spend's reversal "
                             f"{reversal.id if reversal else None} is "
                             f"{'' if by_voucher else 'not '}the voucher's")
    elif not refunds and v.status is not VoucherStatus.EXPIRED and reversal is not None:
        yield (f"{who}: its spend {spend.id} was given back "
                             f"({reversal.id}) while the voucher stands")
    elif not refunds and v.status is VoucherStatus.EXPIRED and by_voucher \
            and v.version == program.version:
        yield (f"{who}: its reward does not refund on expiry, but the spend "
                             f"was given back ({reversal.id if reversal else None})")
