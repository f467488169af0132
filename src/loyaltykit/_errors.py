"""The one exception tree of loyaltykit.

Every error the library raises on purpose derives from :class:`LoyaltyError`, and each
concrete error also derives from the builtin that fits it, so ``except ValueError``
still catches a bad amount::

    LoyaltyError
    ├── InvalidInput (ValueError)
    │   ├── InvalidPoints
    │   ├── InvalidMoney
    │   ├── CurrencyMismatch
    │   ├── NaiveDatetime
    │   ├── InvalidIdempotencyKey
    │   ├── UnknownWallet
    │   ├── InvalidProgram
    │   ├── InvalidOrder
    │   ├── InvalidEvent
    │   ├── InvalidReturn
    │   ├── InvalidPayment
    │   ├── InvalidCode
    │   ├── InvalidPosition
    │   ├── InvalidSummary
    │   └── InvalidDistribution
    ├── NotFound (LookupError)
    │   ├── MemberNotFound
    │   ├── TransactionNotFound
    │   ├── HoldNotFound
    │   ├── OrderNotFound
    │   ├── CodeNotFound
    │   ├── ReferralNotFound
    │   ├── RewardNotFound
    │   └── VoucherNotFound
    ├── Conflict (ValueError)
    │   ├── IdempotencyConflict
    │   ├── MemberAlreadyEnrolled
    │   ├── InsufficientPoints
    │   ├── NotReversible
    │   ├── NotPending
    │   ├── AlreadyReversed
    │   ├── HoldNotOpen
    │   ├── HoldExpired
    │   ├── OrderAlreadyRecorded
    │   ├── OrderCancelled
    │   ├── ProgramVersionConflict
    │   ├── CodeExpired
    │   ├── CodeUsedUp
    │   ├── CodeVolumeExhausted
    │   ├── ReferralNotFlagged
    │   ├── ReferralRefused
    │   │   ├── SelfReferral
    │   │   ├── AlreadyReferred
    │   │   └── NotReferable
    │   ├── RedemptionRefused
    │   │   ├── OutOfStock
    │   │   ├── RedemptionLimitReached
    │   │   ├── RewardNotAvailable
    │   │   └── TierNotAllowed
    │   └── VoucherNotUsable
    │       └── VoucherAlreadyUsed
    ├── FraudCheckError (RuntimeError)
    ├── AnalyticsUnavailable (ImportError)
    ├── PlotsUnavailable (ImportError)
    └── StorageError (RuntimeError)
        ├── DuplicateKey
        ├── SerializationFailure
        └── RetryLimitExceeded

Each error carries a stable machine-readable :attr:`~LoyaltyError.code` and the
offending values in :attr:`~LoyaltyError.details`; ``str(error)`` reads well in a log
line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AlreadyReferred",
    "AnalyticsUnavailable",
    "AlreadyReversed",
    "CodeExpired",
    "CodeNotFound",
    "CodeUsedUp",
    "CodeVolumeExhausted",
    "Conflict",
    "CurrencyMismatch",
    "DuplicateKey",
    "FraudCheckError",
    "HoldExpired",
    "HoldNotFound",
    "HoldNotOpen",
    "IdempotencyConflict",
    "InsufficientPoints",
    "InvalidCode",
    "InvalidDistribution",
    "InvalidEvent",
    "InvalidPayment",
    "InvalidPosition",
    "InvalidIdempotencyKey",
    "InvalidInput",
    "InvalidMoney",
    "InvalidOrder",
    "InvalidPoints",
    "InvalidProgram",
    "InvalidReturn",
    "InvalidSummary",
    "LoyaltyError",
    "MemberAlreadyEnrolled",
    "MemberNotFound",
    "NaiveDatetime",
    "NotFound",
    "NotPending",
    "NotReferable",
    "NotReversible",
    "OrderAlreadyRecorded",
    "OrderCancelled",
    "OrderNotFound",
    "OutOfStock",
    "PlotsUnavailable",
    "ProgramVersionConflict",
    "RedemptionLimitReached",
    "RedemptionRefused",
    "ReferralNotFlagged",
    "ReferralNotFound",
    "ReferralRefused",
    "RetryLimitExceeded",
    "RewardNotAvailable",
    "RewardNotFound",
    "SelfReferral",
    "SerializationFailure",
    "StorageError",
    "TierNotAllowed",
    "TransactionNotFound",
    "UnknownWallet",
    "VoucherAlreadyUsed",
    "VoucherNotFound",
    "VoucherNotUsable",
]


class LoyaltyError(Exception):
    """Root of every error loyaltykit raises.

    ``code`` is a stable identifier for programs (``"insufficient_points"``);
    ``details`` holds the offending values; ``message`` is for people.
    """

    code: ClassVar[str] = "loyalty_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: Mapping[str, Any] = dict(details)

    def __str__(self) -> str:
        # a log line must never fail: each value is shown as far as it can be, shortened
        if not self.details:
            return f"{self.code}: {self.message}"
        extra = ", ".join(f"{k}={shown(v)}" for k, v in self.details.items())
        return f"{self.code}: {self.message} ({extra})"

    def to_dict(self) -> dict[str, Any]:
        """This error as JSON-compatible data, ``{"code", "message", "details"}`` (the
        details in the form of docs/json.md; a value that has none is shown as its
        shortened ``repr``): what an HTTP error body or an import's report can hold."""
        from loyaltykit._json import to_data

        def plain(value: Any) -> Any:
            data = to_data(value)
            try:
                json.dumps(data)
            except (TypeError, ValueError):  # a hostile value: never fail, show it
                return shown(value)
            return data

        return {"code": self.code, "message": self.message,
                "details": {str(k): plain(v) for k, v in self.details.items()}}


#: The longest a detail's value is shown in an error's text.
MAX_SHOWN = 200


def shown(value: object) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN` characters; never raises (a value whose
    ``repr`` fails or recurses too deep is named by its type)."""
    try:
        text = repr(value)
    except Exception:  # RecursionError too: it is an Exception
        return f"<{type(value).__name__} that cannot be shown>"
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN - 3]}..."


class InvalidInput(LoyaltyError, ValueError):
    """An argument is malformed: wrong type, out of range, or inconsistent."""

    code = "invalid_input"


class InvalidPoints(InvalidInput):
    """Points must be a positive ``int`` (never ``bool``, ``float`` or ``Decimal``)."""

    code = "invalid_points"


class InvalidMoney(InvalidInput):
    """A money amount is not a finite ``Decimal`` or its currency is not ISO 4217."""

    code = "invalid_money"


class CurrencyMismatch(InvalidInput):
    """Money in one currency was given where another currency is required."""

    code = "currency_mismatch"


class NaiveDatetime(InvalidInput):
    """A datetime without a time zone was given; loyaltykit needs aware datetimes."""

    code = "naive_datetime"


class InvalidIdempotencyKey(InvalidInput):
    """An idempotency key is empty, too long or not a string."""

    code = "invalid_idempotency_key"


class UnknownWallet(InvalidInput):
    """The program has no wallet of that name."""

    code = "unknown_wallet"


class InvalidProgram(InvalidInput):
    """A program definition is inconsistent; ``details["field"]`` names the field."""

    code = "invalid_program"


class InvalidOrder(InvalidInput):
    """An order is malformed (bad line, negative quantity, currency mismatch...);
    ``details["field"]`` names the field."""

    code = "invalid_order"


class InvalidEvent(InvalidInput):
    """An event (birthday, review, custom...) is malformed; ``details["field"]`` names
    the field."""

    code = "invalid_event"


class InvalidReturn(InvalidInput):
    """A return names a line the order does not have, or more than is left of it."""

    code = "invalid_return"


class InvalidPayment(InvalidInput):
    """Points offered as payment break the program's payment policy (not whole steps,
    under the minimum, over the cart's share), or the program takes none."""

    code = "invalid_payment"


class NotFound(LoyaltyError, LookupError):
    """Something referred to by id does not exist in this program."""

    code = "not_found"


class MemberNotFound(NotFound):
    """No member with that id is enrolled in the program."""

    code = "member_not_found"


class TransactionNotFound(NotFound):
    """No transaction with that id exists in the program."""

    code = "transaction_not_found"


class HoldNotFound(NotFound):
    """No hold with that id exists in the program."""

    code = "hold_not_found"


class OrderNotFound(NotFound):
    """No order with that id was recorded in the program."""

    code = "order_not_found"


class Conflict(LoyaltyError, ValueError):
    """The request is well-formed but conflicts with the ledger's current state."""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """An idempotency key was reused for a different request."""

    code = "idempotency_conflict"


class MemberAlreadyEnrolled(Conflict):
    """A member with that id is already enrolled in the program."""

    code = "member_already_enrolled"


class InsufficientPoints(Conflict):
    """The member has fewer available points than the request needs."""

    code = "insufficient_points"


class NotReversible(Conflict):
    """That kind of transaction cannot be reversed (e.g. an expiry or a hold)."""

    code = "not_reversible"


class NotPending(Conflict):
    """There is no pending lot left to activate."""

    code = "not_pending"


class AlreadyReversed(Conflict):
    """The transaction has already been reversed."""

    code = "already_reversed"


class HoldNotOpen(Conflict):
    """The hold was already captured, voided or released."""

    code = "hold_not_open"


class HoldExpired(Conflict):
    """The hold's time-to-live has run out; its points are no longer reserved."""

    code = "hold_expired"


class OrderAlreadyRecorded(Conflict):
    """An order with that id was already recorded under another idempotency key."""

    code = "order_already_recorded"


class OrderCancelled(Conflict):
    """The order was cancelled; it takes no more returns or cancellations."""

    code = "order_cancelled"


class ProgramVersionConflict(Conflict):
    """A program version is already stored with a different definition, or a new
    version changes what versions must share (time zone, currency, wallets)."""

    code = "program_version_conflict"


class InvalidCode(InvalidInput):
    """A typed code cannot be one of the program's codes: wrong length or prefix, a
    symbol outside the alphabet, or a check character that does not match (a typo).
    Told without any storage lookup."""

    code = "invalid_code"


class InvalidPosition(InvalidInput):
    """Not an event position of the outbox: text that
    :meth:`~loyaltykit.EventPosition.to_str` did not write, or an acknowledgement of a
    position past the last event a consumer can read now (``details["last"]``).
    Nothing was written.

    .. versionadded:: 0.4
    """

    code = "invalid_position"


class CodeNotFound(NotFound):
    """A well-formed code that was never issued in this program."""

    code = "code_not_found"


class ReferralNotFound(NotFound):
    """The member has no referral (was never referred)."""

    code = "referral_not_found"


class CodeExpired(Conflict):
    """The code's expiry has passed."""

    code = "code_expired"


class CodeUsedUp(Conflict):
    """The code has been used as often as it may be."""

    code = "code_used_up"


class CodeVolumeExhausted(Conflict):
    """The program has issued as many codes as its code spec plans for
    (``CodeSpec.planned``; ``details["planned"]`` and ``details["issued"]``). Past the
    plan a guess would hit an issued code too often; a new program version with a
    larger plan (and enough symbols for it) issues more."""

    code = "code_volume_exhausted"


class ReferralNotFlagged(Conflict):
    """Only a flagged referral waits for an approve or reject call."""

    code = "referral_not_flagged"


class ReferralRefused(Conflict):
    """A referral cannot be attributed; ``details["reason"]`` says why."""

    code = "referral_refused"


class SelfReferral(ReferralRefused):
    """A member used their own code."""

    code = "self_referral"


class AlreadyReferred(ReferralRefused):
    """The member already has a referral (at most one referrer per referee, whatever
    became of it)."""

    code = "already_referred"


class NotReferable(ReferralRefused):
    """The policy does not let this member be referred now: an existing customer
    (orders recorded already), or the window to attach a code has closed."""

    code = "not_referable"


class RewardNotFound(NotFound):
    """The program version in force has no reward with this id
    (``details["reward_id"]``)."""

    code = "reward_not_found"


class VoucherNotFound(NotFound):
    """No voucher with this code was issued in this program (``details["code"]``, its
    normalised form)."""

    code = "voucher_not_found"


class RedemptionRefused(Conflict):
    """A reward cannot be redeemed now; the subclass says why. Nothing was written."""

    code = "redemption_refused"


class OutOfStock(RedemptionRefused):
    """The reward's stock is used up (``details["stock"]``), or its global limit
    (``details["global_limit"]``) is reached."""

    code = "out_of_stock"


class RedemptionLimitReached(RedemptionRefused):
    """The member has redeemed the reward as often as its per-member limit allows in
    the period (``details["count"]``, ``details["period"]``)."""

    code = "redemption_limit_reached"


class RewardNotAvailable(RedemptionRefused):
    """The reward cannot be redeemed at this instant: ``details["when"]`` is
    ``"not_yet"`` (before its ``starts_at``) or ``"ended"`` (at or after its
    ``ends_at``, or its vouchers' ``valid_until`` has come)."""

    code = "reward_not_available"


class TierNotAllowed(RedemptionRefused):
    """The reward is for members of other tiers (``details["tiers"]``; the member's is
    ``details["tier"]``)."""

    code = "tier_not_allowed"


class VoucherNotUsable(Conflict):
    """The voucher cannot be used or cancelled: ``details["status"]`` is ``"used"``,
    ``"cancelled"`` or ``"expired"`` (its expiry has come, even if due work has not
    marked it yet). Nothing was written."""

    code = "voucher_not_usable"


class VoucherAlreadyUsed(VoucherNotUsable):
    """The voucher was used (on ``details["order_id"]``): it cannot be used again or
    cancelled."""

    code = "voucher_already_used"


class InvalidSummary(InvalidInput):
    """Data given to the CLV models (:mod:`loyaltykit.analytics`) cannot be a purchase
    summary: empty, of unequal lengths, not finite (NaN, infinity), a negative or
    fractional repeat count ``x``, a recency ``t_x`` outside ``0..T``, a non-positive
    average value of repeat purchases; ``details["field"]`` names the column (and
    ``details["row"]`` the first bad row).

    .. versionadded:: 0.5
    """

    code = "invalid_summary"


class InvalidDistribution(InvalidInput):
    """A distribution map (:class:`loyaltykit.sql.distribution.Distribution`) cannot be
    applied to a schema: it names a table the schema lacks or a distribution column a
    table lacks, the schema breaks the engine's rules (``details["problems"]``), its
    foreign keys form a cycle, or a table is placed otherwise on the server already.
    Nothing was written."""

    code = "invalid_distribution"


class AnalyticsUnavailable(LoyaltyError, ImportError):
    """:mod:`loyaltykit.analytics` needs numpy and scipy, which the core package does not
    install: ``pip install loyaltykit[analytics]``. ``details["missing"]`` names the
    module that failed to import; its ``ImportError`` is the ``__cause__``.

    .. versionadded:: 0.5
    """

    code = "analytics_unavailable"


class PlotsUnavailable(LoyaltyError, ImportError):
    """Drawing a picture of a report (:mod:`loyaltykit.plots`) needs matplotlib, which
    the core package does not install: ``pip install 'loyaltykit[plot]'``.
    ``details["missing"]`` names the module that failed to import; its ``ImportError``
    is the ``__cause__``. The figures behind each picture need no matplotlib.

    .. versionadded:: 0.6
    """

    code = "plots_unavailable"


class FraudCheckError(LoyaltyError, RuntimeError):
    """A fraud check given to :class:`~loyaltykit.Loyalty` raised, or returned something
    other than a valid :class:`~loyaltykit.Verdict`; ``details["check"]`` shows the
    check, and the check's own exception is the ``__cause__``. The call that attributed
    the referral (``enrol`` with a code, ``refer``) wrote nothing."""

    code = "fraud_check_error"


class StorageError(LoyaltyError, RuntimeError):
    """The storage backend failed in a way the caller may want to retry or report."""

    code = "storage_error"


class DuplicateKey(StorageError):
    """A unique constraint rejected a write (raised by backends, handled by the facade)."""

    code = "duplicate_key"


class SerializationFailure(StorageError):
    """The database aborted a unit of work because of a concurrent one (SQLSTATE 40001
    serialization failure or 40P01 deadlock). The facade retries such writes a bounded
    number of times; backends raise it, callers normally never see it."""

    code = "serialization_failure"


class RetryLimitExceeded(StorageError):
    """A write kept conflicting with concurrent writes and the retry budget ran out."""

    code = "retry_limit_exceeded"


class ReadOnlyViolation(StorageError):
    """Something tried to write through a read-only unit of work
    (:meth:`~loyaltykit.sql.SQLStorage.read_unit_of_work`, what the facade's reads
    use): a bug in the caller or the backend; nothing was written."""

    code = "read_only_violation"
