"""The rewards' store: vouchers and each reward's counters (stock taken, redemptions)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

import attrs

from loyaltykit._rewards import Voucher

__all__ = ["RewardChanges", "RewardStore"]


@attrs.define
class RewardChanges:
    """What one unit of work writes to the rewards' store.

    ``vouchers`` holds the final state of every touched voucher by id: ids in
    ``new_vouchers`` are inserted (a code already issued in the program is a
    :class:`~loyaltykit.DuplicateKey` with ``details["code"]``), the others updated, and
    only if they are still ``issued`` in storage (every change of a voucher starts from
    issued; one that is not any more is a concurrent change:
    :class:`~loyaltykit.SerializationFailure`, and the pipeline runs the write again).
    The counters are not part of it: :meth:`RewardStore.take` and
    :meth:`RewardStore.release` write at once.
    """

    vouchers: dict[uuid.UUID, Voucher] = attrs.field(factory=dict)
    new_vouchers: set[uuid.UUID] = attrs.field(factory=set)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not self.vouchers

    def write_to(self, uow: _WithRewards) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.rewards.write(self)


class RewardStore(Protocol):
    """Vouchers and reward counters inside one unit of work.

    Each reward of a program has one counter row: ``held``, the vouchers that took an
    item of stock (issued and used ones), and ``redeemed``, the redemptions that count
    against its global limit (every voucher not cancelled). A reward's stock left is
    its catalogue ``stock`` minus ``held``.
    """

    def get_voucher(self, code: str) -> Voucher | None:
        """Return the voucher with this (normalised) code, or None."""

    def member_vouchers(self, member_id: str) -> list[Voucher]:
        """Return the member's vouchers, oldest first (by ``issued_at``, then id)."""

    def count_redeemed(self, member_id: str, reward_id: str, start: dt.datetime | None,
                       end: dt.datetime) -> int:
        """Count the member's vouchers of ``reward_id`` that are not cancelled and were
        issued in ``[start, end)`` (``start`` None: no lower bound)."""

    def counters(self, reward_id: str) -> tuple[int, int]:
        """Return the reward's ``(held, redeemed)``; ``(0, 0)`` before its first
        redemption."""

    def take(self, reward_id: str, stock: int | None, global_limit: int | None) -> bool:
        """Count one more redemption of the reward if ``held < stock`` and ``redeemed <
        global_limit`` (None: no bound): add one to both and return True; else change
        nothing and return False.

        Written at once, in this unit of work, and held until it ends: of concurrent
        units of work taking the last item, exactly one gets True (the others wait for
        it, then see the condition on the row it left). The SQL backend takes it with
        one guarded ``UPDATE`` (the row is created first if missing), never a read
        followed by a write."""

    def release(self, reward_id: str, held: int, redeemed: int) -> None:
        """Subtract ``held`` and ``redeemed`` from the reward's counters (a cancelled
        voucher gives both back; an expired one its item of stock only). Written at
        once, in this unit of work."""

    def due_vouchers(self, at: dt.datetime, limit: int) -> list[Voucher]:
        """Return up to ``limit`` issued vouchers whose ``expires_at`` is at or before
        ``at``, by ``expires_at`` then id."""

    def expiring_vouchers(self, start: dt.datetime, end: dt.datetime, *,
                          after: tuple[dt.datetime, uuid.UUID] | None, limit: int
                          ) -> list[Voucher]:
        """Return up to ``limit`` issued vouchers whose ``expires_at`` is in ``(start,
        end]``, by ``expires_at`` then id, strictly after ``after`` in that order when
        given ("voucher expiring" notices)."""

    def write(self, changes: RewardChanges) -> None:
        """Insert the new vouchers (a code already issued in the program is a
        :class:`~loyaltykit.DuplicateKey` with ``details["code"]``; so is an id) and
        update the others where they are still issued (else
        :class:`~loyaltykit.SerializationFailure`)."""


class _WithRewards(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def rewards(self) -> RewardStore: ...

