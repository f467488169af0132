"""The storage contract: one test suite every storage backend must pass.

The suite drives the public facade (:class:`loyaltykit.Loyalty` with a
:class:`loyaltykit.TestClock`) through every rule of the points ledger (DESIGN §3) and
checks the ledger's invariants on the way, plus direct checks of the storage port (a
unit of work rolls back unless committed, unique rules raise
:class:`~loyaltykit.DuplicateKey`, programs are isolated, program versions, recorded
orders and earning-rule usage are stored and read back exactly), tiers and referrals.

It is split by capability, one part per module; :class:`StorageContract` composes them
all:

* :mod:`~loyaltykit.testing.contract.ledger` -- :class:`LedgerContract`: members, earn,
  spend order, pending points, expiry and due work, bulk earn; it composes
  :mod:`~loyaltykit.testing.contract.ledger_holds` (holds),
  :mod:`~loyaltykit.testing.contract.ledger_corrections` (reversals, adjustments,
  transfers, clawbacks), :mod:`~loyaltykit.testing.contract.ledger_views` (balances,
  statements, wallets) and :mod:`~loyaltykit.testing.contract.ledger_writes`
  (idempotency, concurrency, the unit of work);
* :mod:`~loyaltykit.testing.contract.orders` -- :class:`OrderContract`: program versions,
  recorded orders, returns and cancellations, earning-rule usage, account activity;
* :mod:`~loyaltykit.testing.contract.tiers` -- :class:`TierContract`;
* :mod:`~loyaltykit.testing.contract.referrals` -- :class:`ReferralContract`;
* :mod:`~loyaltykit.testing.contract.rewards` -- :class:`RewardContract`: redemption,
  vouchers, refusals that write nothing, expiry, the guarded stock counter;
* :mod:`~loyaltykit.testing.contract.outbox` -- :class:`OutboxContract`: every change's
  events in the same unit of work, consumers' positions, pruning, erasure (scenario O1);
* :mod:`~loyaltykit.testing.contract.notices` -- :class:`NoticeContract`: due work's
  notices ("points expiring", "voucher expiring", "tier will drop"), each once per
  subject (scenario O2);
* :mod:`~loyaltykit.testing.contract.tier_events` -- :class:`TierEventContract`:
  ``tier.changed``, one per line of tier history;
* :mod:`~loyaltykit.testing.contract.referral_events` -- :class:`ReferralEventContract`:
  ``referral.*``, one per side and status change;
* :mod:`~loyaltykit.testing.contract.reward_events` -- :class:`RewardEventContract`:
  ``reward.redeemed`` and ``voucher.*`` events, their payloads and order;
* :mod:`~loyaltykit.testing.contract.privacy` -- :class:`PrivacyContract`: member keys,
  erasure and export (its :meth:`~PrivacyContract.stored_text` hook searches what a
  backend stores; override it for a third-party backend);
* :mod:`~loyaltykit.testing.contract.reports_ledger` -- :class:`LedgerReportContract`:
  program totals and their identity, points per period, members, counts, the tier
  distribution, breakage and liability (scenario A2);
* :mod:`~loyaltykit.testing.contract.base` -- :class:`ContractPart`, the base of every
  part (the backend hooks and the ``storage`` fixture), and the shared helpers
  (:class:`Shop`, :func:`make_program`, :func:`check_ledger`, ...).

Use it to test a backend, the library's own or yours: subclass
:class:`StorageContract` in a module pytest collects and say how to make a fresh,
empty storage::

    from loyaltykit.testing.contract import StorageContract

    class TestMyBackend(StorageContract):
        def make_storage(self):
            return MyStorage.connect(...)

        def dispose_storage(self, storage):  # optional: release connections, files
            storage.close()

To run one capability's part only (while a backend grows, or to spread the suite over
files), subclass that part the same way::

    from loyaltykit.testing.contract import TierContract

    class TestMyBackendTiers(TierContract):
        def make_storage(self):
            return MyStorage.connect(...)

pytest collects the ``test_*`` methods on your subclass; the parts themselves are
not collected (their names do not start with ``Test``). ``make_storage`` is called
once per test; ``self.tmp_path`` is then a fresh temporary directory for files of
that test. To build the storage from your own fixtures instead, override the
``storage`` fixture in the subclass.

Every facade the contract drives is built by :meth:`ContractPart.make_loyalty`
(``(program, storage, **options)``, the arguments of :class:`~loyaltykit.Loyalty`;
default: ``Loyalty(program, storage, **options)``), so the same suite proves another
facade that looks like :class:`~loyaltykit.Loyalty`. The async facade comes ready:
:class:`~loyaltykit.testing.contract.asynchronous.AsyncFacade`, mixed in first, makes
every facade an :class:`~loyaltykit.aio.AsyncLoyalty` on an async engine to the test
storage's database (the storage itself serves the contract's direct checks)::

    from loyaltykit.testing.contract import StorageContract
    from loyaltykit.testing.contract.asynchronous import AsyncFacade

    class TestMyBackendAsync(AsyncFacade, StorageContract):
        def make_storage(self):
            return SQLStorage.from_url(MY_URL)  # sync; async_url() derives the async URL

Only two tests keep the sync :class:`~loyaltykit.Loyalty` whatever the hook gives, as
their subject is a wrapper around the storage (one failing mid-write, one counting
units of work) that a facade building its own storage could not honour.

For pytest's detailed assertion messages from the shipped checks, register the
package for assertion rewriting in your ``conftest.py`` before anything imports it::

    pytest.register_assert_rewrite("loyaltykit.testing")

This package imports pytest (it is a test helper; install the ``test`` extra).
Importing :mod:`loyaltykit` itself never imports pytest.
"""

from __future__ import annotations

from loyaltykit.testing.contract.base import (
    BERLIN,
    HOLD_TTL,
    L_EXPIRY,
    MINUTE,
    ContractPart,
    Shop,
    berlin,
    check_ledger,
    kinds,
    ledger_snapshot,
    lot_of,
    make_program,
    moves,
    statement_lines,
    utc,
)
from loyaltykit.testing.contract.ledger import LedgerContract
from loyaltykit.testing.contract.ledger_corrections import LedgerCorrectionContract
from loyaltykit.testing.contract.ledger_holds import LedgerHoldContract
from loyaltykit.testing.contract.ledger_views import LedgerViewContract
from loyaltykit.testing.contract.ledger_writes import LedgerWriteContract
from loyaltykit.testing.contract.notices import NoticeContract
from loyaltykit.testing.contract.orders import OrderContract
from loyaltykit.testing.contract.outbox import OutboxContract
from loyaltykit.testing.contract.privacy import PrivacyContract
from loyaltykit.testing.contract.referral_events import ReferralEventContract
from loyaltykit.testing.contract.referrals import ReferralContract
from loyaltykit.testing.contract.reports_ledger import LedgerReportContract
from loyaltykit.testing.contract.reports_orders import OrderReportContract
from loyaltykit.testing.contract.reports_revenue import RevenueReportContract
from loyaltykit.testing.contract.reward_events import RewardEventContract
from loyaltykit.testing.contract.rewards import RewardContract
from loyaltykit.testing.contract.tier_events import TierEventContract
from loyaltykit.testing.contract.tiers import TierContract

__all__ = [
    "BERLIN",
    "HOLD_TTL",
    "L_EXPIRY",
    "MINUTE",
    "ContractPart",
    "LedgerContract",
    "LedgerCorrectionContract",
    "LedgerHoldContract",
    "LedgerReportContract",
    "LedgerViewContract",
    "LedgerWriteContract",
    "NoticeContract",
    "OrderContract",
    "OrderReportContract",
    "OutboxContract",
    "PrivacyContract",
    "ReferralContract",
    "ReferralEventContract",
    "RewardEventContract",
    "RevenueReportContract",
    "RewardContract",
    "Shop",
    "StorageContract",
    "TierContract",
    "TierEventContract",
    "berlin",
    "check_ledger",
    "kinds",
    "ledger_snapshot",
    "lot_of",
    "make_program",
    "moves",
    "statement_lines",
    "utc",
]


class StorageContract(LedgerContract, OrderContract, TierContract, ReferralContract,
                      RewardContract, PrivacyContract, OutboxContract, NoticeContract,
                      TierEventContract, ReferralEventContract, RewardEventContract,
                      LedgerReportContract, OrderReportContract, RevenueReportContract):
    """The contract every storage backend must pass: every capability's part. See the
    package docstring.

    Subclasses implement :meth:`make_storage` (and optionally
    :meth:`dispose_storage`); name the subclass ``Test...`` so pytest collects it.
    """
