"""Assertions for a shop's own test suite: is the ledger still sound after my flows?

:func:`assert_invariants` takes a :class:`~loyaltykit.Loyalty` (any backend) and checks
every ledger invariant of :mod:`loyaltykit.testing.invariants` over all the members of
its program, listed through the facade's reports, so a shop's test needs to know
nothing of member ids or storage ports::

    from loyaltykit.testing import assert_invariants

    def test_checkout_then_return(loyalty):
        ...  # the shop's own flow
        assert_invariants(loyalty)

Needs nothing beyond loyaltykit itself (no pytest, no Hypothesis).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._facade import Loyalty
from loyaltykit._validate import check_instant
from loyaltykit.testing.invariants import check_invariants, read_ledger

__all__ = ["all_member_ids", "assert_invariants"]

#: Members per page while listing a program's members (the reports' largest page).
_PAGE = 1000


def all_member_ids(loyalty: Loyalty) -> list[str]:
    """Every member of ``loyalty``'s program in enrolment order, an erased one under
    its erased name (``"erased:<key>"``), as :meth:`loyalty.reports.members
    <loyaltykit._services.reports.ReportService.members>` lists them."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = loyalty.reports.members(after=cursor, limit=_PAGE)
        ids.extend(row.member_id for row in page.members)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def assert_invariants(
    loyalty: Loyalty,
    member_ids: Iterable[str] | None = None,
    *,
    at: dt.datetime | None = None,
) -> None:
    """Raise :class:`AssertionError` naming every broken ledger invariant of
    ``loyalty``'s program; return None when the ledger is sound.

    Checks what :func:`~loyaltykit.testing.invariants.check_invariants` checks
    (postings balance, running totals match postings, lots match balances, holds
    match lots, program-wide sums are zero, refunds never give back more than was
    taken, vouchers match the rewards' counters, the storage's reads agree with each
    other ...), over every member of the program (:func:`all_member_ids`) unless
    ``member_ids`` narrows it (the program-wide checks then see only those). ``at``,
    an instant no earlier than any write's business time (e.g. ``loyalty.clock.now()``
    when the clock never moved backwards), also checks the as-of reads at it.

    The message has one line per violation, each naming its invariant's letter and
    rule, the member and wallet, e.g.::

        1 ledger invariant violation(s) in program 'shop':
          invariant (b) running totals equal the sum of postings: member 'alice'
          wallet 'points' stores available=75 but its postings sum to 70

    A stored row the library cannot even read back (e.g. a transaction whose
    postings no longer balance) is reported as an :class:`AssertionError` too.

    Reads only (in a unit of work that is rolled back): nothing is written, and no
    due work runs (after moving the clock, run ``loyalty.run_due()`` first if the
    test means "as of now"). Bad arguments raise :class:`~loyaltykit.InvalidInput`.
    """
    if not isinstance(loyalty, Loyalty):
        raise InvalidInput("loyalty must be a Loyalty", loyalty=shown(loyalty))
    if member_ids is None:
        ids = all_member_ids(loyalty)
    else:
        if isinstance(member_ids, str | bytes) or not isinstance(member_ids, Iterable):
            raise InvalidInput("member_ids must be an iterable of member ids (not a str)",
                               member_ids=shown(member_ids))
        ids = list(member_ids)
        if not all(isinstance(m, str) and m for m in ids):
            raise InvalidInput("member_ids must be non-empty strs", member_ids=shown(ids))
    if at is not None:
        at = check_instant(at, "at")
    program = loyalty.program
    try:
        snapshot = read_ledger(loyalty.storage, program, ids)
    except (AssertionError, ValueError) as e:  # a stored row the model refuses
        raise AssertionError(f"the ledger of program {program.id!r} cannot be read back: "
                             f"{e}") from e
    check_invariants(loyalty.storage, program, ids, at=at, snapshot=snapshot)
