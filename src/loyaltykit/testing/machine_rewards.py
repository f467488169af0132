"""The rewards steps of :class:`~loyaltykit.testing.machine.LedgerMachine`: redeeming
rewards (with top-ups, repeats against limits and old keys), using and cancelling
vouchers typed loosely, and checking each reward's stock read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    precondition,
    rule,
)

from loyaltykit._facade import Loyalty
from loyaltykit._rewards import Voucher, VoucherStatus
from loyaltykit.testing.machine_base import Backend, MachineBase

__all__ = ["RewardSteps"]


class RewardSteps(MachineBase):
    """The rules that redeem rewards and use or cancel vouchers."""

    @rule(data=st.data())
    def redeem(self, data: st.DataObject) -> None:
        """Redeem a reward: mostly one the member can pay for (or after earning what it
        costs), often again one the member has redeemed before (limits), sometimes one
        not in the catalogue, sometimes under the key of an earlier redemption (its
        replay or an IdempotencyConflict)."""
        policy = self._program.rewards
        assert policy is not None
        wallet = policy.wallet or self._program.default_wallet
        at = self._at(data)
        redeemed = sorted({(v.member_id, v.reward_id, v.issued_at) for v in self._vouchers()})
        if redeemed and data.draw(st.integers(0, 2), label="again") == 0:
            member_id, reward_id, issued_at = data.draw(st.sampled_from(redeemed),
                                                        label="again of")
            if self.backdate and data.draw(st.booleans(), label="just before"):
                # out of order: limits must hold in every period, not only up to `at`
                back = dt.timedelta(seconds=data.draw(st.integers(0, 3 * 86400),
                                                      label="seconds before"))
                at = max(issued_at - back, self.started)
            have = self._spendable(member_id, wallet)
        else:
            member_id = self._member(data)
            have = self._spendable(member_id, wallet)
            ids = [r.id for r in policy.catalogue]
            affordable = [r.id for r in policy.catalogue if r.cost <= have]
            if affordable and data.draw(st.integers(0, 3), label="affordable") > 0:
                ids = affordable
            reward_id = data.draw(st.sampled_from(ids) | st.just("no-such-reward")
                                  if data.draw(st.integers(0, 9), label="unknown") == 0
                                  else st.sampled_from(ids), label="reward_id")
        reward = policy.by_id.get(reward_id)
        if reward is not None and reward.cost > have and data.draw(st.booleans(),
                                                                   label="top up"):
            self._top_up(member_id, wallet, reward.cost - have, at)
        old = bool(self.redeem_keys) and data.draw(st.integers(0, 5), label="old key") == 0
        key = data.draw(st.sampled_from(self.redeem_keys), label="key") if old \
            else self._key("redeem")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.redeem(member_id, reward_id, key=key, at=at)

        label = f"redeem({member_id!r}, {reward_id!r}, at={at}, key={key!r})"
        if old:
            self._under_old_key(label, call, key)
            return
        result = self._run(label, call, key=key, at=at)
        if result is not None:
            self.redeem_keys.append(key)
            self._check_voucher(result.voucher)
            self._check_taken(result.transaction_id, at)

    def _vouchers(self) -> list[Voucher]:
        """Every voucher, as the reference backend stores them."""
        snapshot = self.backends[0].snapshot
        return [] if snapshot is None else list(snapshot.vouchers.values())

    def _top_up(self, member_id: str, wallet: str, points: int, at: dt.datetime | None
                ) -> None:
        """Earn ``points`` available at ``at`` (None: now), so that a redemption then
        can be paid for."""
        key = self._key("top up")
        when = at or self.clock.now()

        def call(loyalty: Loyalty) -> Any:
            return loyalty.earn(member_id, points, key=key, wallet=wallet, at=at,
                                activates_at=when, reason="top up")

        self._run(f"earn({member_id!r}, {points}, top up, at={at})", call, key=key, at=at)

    def _code(self, data: st.DataObject, issued: bool) -> str:
        """A voucher's code as a customer may type it: mostly an issued one (if
        ``issued``), else any voucher's, sometimes one never issued or malformed."""
        pool = self.issued_codes if issued and self.issued_codes and data.draw(
            st.integers(0, 3), label="issued") > 0 else self.voucher_codes
        if not pool or data.draw(st.integers(0, 15), label="bad code") == 0:
            return data.draw(st.sampled_from(["0000-0000-00", "not a code",
                                              "7K3QD-M9XWP-E"]), label="code")
        code = data.draw(st.sampled_from(pool), label="code")
        spec = self._program.rewards.code if self._program.rewards is not None else None
        assert spec is not None
        style = data.draw(st.sampled_from(("stored", "shown", "lower", "spaced")),
                          label="typed")
        if style == "shown":
            return spec.display(code)
        if style == "lower":
            return spec.display(code).lower()
        if style == "spaced":
            return " ".join(spec.display(code).split("-")).lower()
        return code

    def _check_voucher(self, voucher: Voucher) -> None:
        """A voucher a write returned is the one every backend stored."""
        for backend in self.backends:
            assert backend.snapshot is not None
            stored = backend.snapshot.vouchers.get(voucher.id)
            assert stored == voucher, (f"{backend.storage!r} stored voucher {voucher.id} as "
                                       f"{stored!r}, the write returned {voucher!r}")

    @precondition(lambda self: bool(self.voucher_codes))
    @rule(data=st.data())
    def use_voucher(self, data: st.DataObject) -> None:
        """Use a voucher on an order (typed loosely; used, cancelled, expired, unknown
        and malformed codes are refused)."""
        code, at = self._code(data, issued=True), self._at(data)
        order_id = data.draw(st.sampled_from(sorted(self.orders)) | st.just(f"u{self._steps}")
                             if self.orders else st.just(f"u{self._steps}"), label="order_id")
        key = self._key("use")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.use(code, order_id=order_id, key=key, at=at)

        result = self._run(f"use({code!r}, {order_id!r}, at={at})", call, key=key, at=at)
        if result is not None:
            self._check_voucher(result)

    @precondition(lambda self: bool(self.voucher_codes))
    @rule(data=st.data())
    def cancel_voucher(self, data: st.DataObject) -> None:
        """Cancel a voucher: its points go back, its stock and limits are released
        (a used, cancelled or expired one is refused)."""
        code, at = self._code(data, issued=True), self._at(data)
        key = self._key("cancel voucher")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.rewards.cancel(code, key=key, at=at, reason="changed mind")

        result = self._run(f"cancel_voucher({code!r}, at={at})", call, key=key, at=at)
        if result is not None:
            self._check_voucher(result)

    def _check_stock(self, backend: Backend) -> None:
        """Each reward's ``stock()`` read is its stock less the vouchers stored issued
        or used (the ones that hold an item)."""
        policy = self._program.rewards
        if policy is None or backend.snapshot is None:
            return
        vouchers = backend.snapshot.vouchers.values()
        for reward in policy.catalogue:
            holding = sum(1 for v in vouchers if v.reward_id == reward.id
                          and v.status in (VoucherStatus.ISSUED, VoucherStatus.USED))
            expected = None if reward.stock is None else reward.stock - holding
            shown = backend.loyalty.rewards.stock(reward.id)
            assert shown == expected, (f"{backend.storage!r}: stock({reward.id!r}) is "
                                       f"{shown}, {reward.stock} less {holding} vouchers "
                                       f"holding an item is {expected}")
