"""Domain events: what a use case raises inside its unit of work, and who listens.

A service raises an event the moment the change it describes is made
(:meth:`loyaltykit._pipeline.Work.publish`); the :class:`~loyaltykit._pipeline.EventBus`
hands it at once to every subscriber of its type, in the same unit of work and before
commit, so a reaction (tiers re-qualifying on a return, a referral qualifying on a
first order) is written atomically with its cause or not at all. Subscribers are wired
by the facade; no service calls into another's internals.

Events raised today, and who subscribes (the outbox, :mod:`loyaltykit._services.events`,
records every one of them as outbox events, and is subscribed first):

===================  ========================================  =====================
event                raised by                                 subscribers
===================  ========================================  =====================
``MemberEnrolled``   ledger: ``enrol``                          tiers, referrals
``MemberErased``     privacy: ``erase``                         outbox (scrubs)
``PointsPosted``     ledger: every transaction posted           tiers, rewards
``DuePosted``        due work: releases, activations, expiries  (outbox only)
                     posted set-based (:mod:`loyaltykit._due_bulk`)
``OrderRecorded``    orders: ``record_order``                   tiers, referrals,
                                                                rewards
``OrderReturned``    orders: ``record_return``/``cancel_order`` tiers, referrals
===================  ========================================  =====================

A capability adds its own event classes in its own module; the bus dispatches by type:
``TierChanged`` (:mod:`loyaltykit._tiers`, a line of tier history),
``ReferralChanged`` (:mod:`loyaltykit._services.referral_events`, a referral recorded
or its status changed) and ``RewardRedeemed``, ``VoucherUsed``, ``VoucherCancelled``,
``VoucherExpired`` (:mod:`loyaltykit._rewards`); today only the outbox records them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from loyaltykit._model import Member, OrderRecord, Transaction
from loyaltykit._orders import Order

__all__ = ["DuePosted", "DueRecord", "MemberEnrolled", "MemberErased", "OrderRecorded",
           "OrderReturned", "PointsPosted"]

@attrs.frozen
class MemberEnrolled:
    """A member was enrolled; ``referral_code`` (normalised) and ``digests`` (keyed
    hashes of their identity: sorted (kind, digest) pairs, one per kind and secret) are
    what the enrolment carried for referrals."""

    member: Member
    referral_code: str | None = None
    digests: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class MemberErased:
    """A member was erased: its member key and when (nothing that identifies the
    person); its rows now go by ``"erased:<member_key>"``."""

    member_key: str
    erased_at: dt.datetime


@attrs.frozen
class PointsPosted:
    """A ledger transaction was posted (any kind)."""

    transaction: Transaction


#: One due transaction posted set-based, as :class:`DuePosted` carries it: (event id
#: drawn for its outbox event, transaction id, member id, wallet, kind value,
#: occurred_at, postings as (account value, amount) in order, the wallet's (available,
#: pending, held, debt) running totals after it, reason, metadata).
DueRecord = tuple[uuid.UUID | None, uuid.UUID, str, str, str, dt.datetime,
                  tuple[tuple[str, int], ...], tuple[int, int, int, int], str,
                  dict[str, Any]]


@attrs.frozen
class DuePosted:
    """Due transactions (stale hold releases, activations, expiries) were posted
    set-based, in this order (:mod:`loyaltykit._due_bulk`): for each, what
    :class:`PointsPosted` stands for, as a row. A subscriber to :class:`PointsPosted`
    that reacts to a release, an activation or an expiry must subscribe to this too
    (tiers and rewards do not react to them; the outbox records them)."""

    records: Sequence[DueRecord]


@attrs.frozen
class OrderRecorded:
    """An order was recorded and priced; ``record`` is its stored row, ``wallet`` the
    wallet its points went to, ``payments`` the transactions its ``paid_with`` named
    (as read under the member's lock)."""

    order: Order
    record: OrderRecord
    wallet: str
    payments: tuple[Transaction, ...] = ()


@attrs.frozen
class OrderReturned:
    """Lines of an order were returned (``cancelled``: the whole order was cancelled).

    ``record`` is the order's row before the return, ``before`` the order as it stood
    then and ``after`` as it stands now; ``at`` is the return's business instant."""

    record: OrderRecord
    before: Order
    after: Order
    at: dt.datetime
    wallet: str
    cancelled: bool
