"""In-memory reports over the ledger, tiers and members (the SQL reads' twin)."""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence

from loyaltykit._model import Kind
from loyaltykit._reports_ledger import FLOW_NAMES, flow_of
from loyaltykit._tiers import TierChange
from loyaltykit.memory.ledger import LedgerTables
from loyaltykit.memory.ledger_rows import KeptTx
from loyaltykit.memory.tables import Tables, UndoLog
from loyaltykit.memory.tiers import TierTables
from loyaltykit.storage.report_ledger import (
    Bounds,
    CohortSums,
    FlowSums,
    MemberFact,
    TierTally,
)

__all__ = ["MemoryLedgerReports"]

_COHORT_KINDS = frozenset({Kind.EARN, Kind.ADJUST})
_EXPIRING = frozenset({Kind.EXPIRE, Kind.RELEASE})


def _period(periods: Bounds, at: dt.datetime) -> int:
    """The index of the period of ``periods`` (consecutive) holding ``at``, or -1."""
    if not periods or at < periods[0][0] or at >= periods[-1][1]:
        return -1
    return bisect.bisect_right([end for _, end in periods], at)


class MemoryLedgerReports:
    """:class:`~loyaltykit.storage.report_ledger.LedgerReportReads` in memory."""

    _uow: UndoLog
    _tables: Tables

    def _transactions(self) -> Iterator[KeptTx]:
        program_id = self._uow.program_id
        return (tx for tx in self._tables.of(LedgerTables).transactions.values()
                if tx.program_id == program_id)

    def ledger_flows(self, *, as_of: dt.datetime | None, periods: Bounds | None,
                     wallet: str | None) -> list[FlowSums]:
        txs = self._tables.of(LedgerTables).transactions
        found: dict[tuple[str, int], dict[str, int]] = {}
        for tx in self._transactions():
            if wallet is not None and tx.wallet != wallet:
                continue
            if periods is not None:
                index = _period(periods, tx.occurred_at)
                if index < 0:
                    continue
            else:
                index = -1
                if as_of is not None and tx.occurred_at > as_of:
                    continue
            if not tx.postings:
                continue
            reversed_kind = None
            if tx.reverses_id is not None:
                original = txs.get(tx.reverses_id)
                reversed_kind = original.kind.value if original is not None else ""
            sums = found.setdefault((tx.wallet, index), dict.fromkeys(FLOW_NAMES, 0))
            for p in tx.postings:
                name, value = flow_of(tx.kind.value, reversed_kind, p.account.value,
                                      p.amount)
                sums[name] += value
        return [FlowSums(w, i, sums) for (w, i), sums in sorted(found.items())]

    def wallet_members(self, as_of: dt.datetime | None) -> dict[str, int]:
        t = self._tables.of(LedgerTables)
        program_id = self._uow.program_id
        found: dict[str, int] = {}
        for (p, wallet, member_id) in t.accounts:
            if p != program_id:
                continue
            member = t.members.get((p, member_id))
            if member is None or (as_of is not None and member.enrolled_at > as_of):
                continue
            found[wallet] = found.get(wallet, 0) + 1
        return found

    def _facts(self, activity: Sequence[str]) -> list[MemberFact]:
        t = self._tables.of(LedgerTables)
        states = self._tables.of(TierTables).tier_states
        program_id = self._uow.program_id
        kinds = set(activity)
        last: dict[str, dt.datetime] = {}
        for tx in self._transactions():
            if tx.kind.value in kinds:
                seen = last.get(tx.member_id)
                if seen is None or tx.occurred_at > seen:
                    last[tx.member_id] = tx.occurred_at
        facts = []
        for (p, member_id), member in t.members.items():
            if p != program_id:
                continue
            state = states.get((p, member_id))
            facts.append(MemberFact(member_id, member.enrolled_at,
                                    state.rank if state is not None else None,
                                    last.get(member_id)))
        facts.sort(key=lambda f: (f.enrolled_at, f.member_id))
        return facts

    @staticmethod
    def _keep(fact: MemberFact, rank: int | None, active_since: dt.datetime | None,
              inactive_since: dt.datetime | None) -> bool:
        if rank is not None and fact.rank != rank:
            return False
        last = fact.last_active_at
        if active_since is not None and (last is None or last < active_since):
            return False
        return inactive_since is None or last is None or last < inactive_since

    def member_facts(self, *, rank: int | None, active_since: dt.datetime | None,
                     inactive_since: dt.datetime | None,
                     after: tuple[dt.datetime, str] | None, limit: int | None,
                     activity: Sequence[str]) -> list[MemberFact]:
        out = []
        for fact in self._facts(activity):
            if after is not None and (fact.enrolled_at, fact.member_id) <= after:
                continue
            if self._keep(fact, rank, active_since, inactive_since):
                out.append(fact)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def count_members(self, *, rank: int | None, active_since: dt.datetime | None,
                      inactive_since: dt.datetime | None, activity: Sequence[str]) -> int:
        return sum(1 for fact in self._facts(activity)
                   if self._keep(fact, rank, active_since, inactive_since))

    def tier_ranks(self) -> dict[int | None, int]:
        states = self._tables.of(TierTables).tier_states
        program_id = self._uow.program_id
        found: dict[int | None, int] = {}
        for (p, member_id) in self._tables.of(LedgerTables).members:
            if p != program_id:
                continue
            state = states.get((p, member_id))
            rank = state.rank if state is not None else None
            found[rank] = found.get(rank, 0) + 1
        return found

    def tiers_as_of(self, at: dt.datetime) -> list[TierTally]:
        tiers = self._tables.of(TierTables)
        program_id = self._uow.program_id
        found: dict[tuple[str | None, bool], int] = {}
        for (p, member_id), member in self._tables.of(LedgerTables).members.items():
            if p != program_id or member.enrolled_at > at:
                continue
            latest: TierChange | None = None
            for change in tiers.tier_history.get((p, member_id), ()):
                if change.at <= at and (latest is None or change.at >= latest.at):
                    latest = change
            key = (latest.to_tier if latest is not None else None,
                   (p, member_id) in tiers.tier_states)
            found[key] = found.get(key, 0) + 1
        return [TierTally(tier, has_state, n)
                for (tier, has_state), n in sorted(found.items(),
                                                   key=lambda i: (i[0][0] or "", i[0][1]))]

    def first_lot_at(self, wallet: str, as_of: dt.datetime) -> dt.datetime | None:
        program_id = self._uow.program_id
        found = [lot.earned_at for lot in self._tables.of(LedgerTables).lots.values()
                 if lot.program_id == program_id and lot.wallet == wallet
                 and lot.earned_at <= as_of]
        return min(found) if found else None

    def lot_cohorts(self, wallet: str, months: Bounds, as_of: dt.datetime
                    ) -> list[CohortSums]:
        t = self._tables.of(LedgerTables)
        program_id = self._uow.program_id
        remaining: dict[uuid.UUID, int] = {}
        expired: dict[uuid.UUID, int] = {}
        for tx in self._transactions():
            if tx.wallet != wallet or tx.occurred_at > as_of:
                continue
            for move in tx.movements:
                remaining[move.lot_id] = remaining.get(move.lot_id, 0) + move.delta
                if tx.kind in _EXPIRING:
                    expired[move.lot_id] = expired.get(move.lot_id, 0) - move.delta
        found: dict[int, list[int]] = {}
        for lot in t.lots.values():
            if lot.program_id != program_id or lot.wallet != wallet or lot.earned_at > as_of:
                continue
            origin = t.transactions.get(lot.transaction_id)
            if origin is None or origin.kind not in _COHORT_KINDS:
                continue
            index = _period(months, lot.earned_at)
            if index < 0:
                continue
            sums = found.setdefault(index, [0, 0, 0, 0])
            sums[0] += lot.amount
            sums[1] += expired.get(lot.id, 0)
            sums[2] += remaining.get(lot.id, 0)
            sums[3] += 1
        return [CohortSums(i, *sums) for i, sums in sorted(found.items())]
