"""The ledger store's part of erasure in SQL: a member's attributes emptied, and the
erased member's name written into the other halves of its transfers."""

from __future__ import annotations

import functools
import uuid

import sqlalchemy as sa

from loyaltykit._model import Kind
from loyaltykit.sql._errors import translated
from loyaltykit.sql._scrub import replaced
from loyaltykit.sql._shared import Store, claimed_by
from loyaltykit.sql.schema import members, transactions

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_hex: sa.BindParameter[str] = sa.bindparam("hex", type_=sa.String())

_ERASE_MEMBER = members.update().where(
    members.c.program_id == _p, members.c.member_id == _m).values(attributes={})
_SEL_TRANSFERS = sa.select(transactions.c.metadata, transactions.c.idempotency_key).where(
    transactions.c.program_id == _p, transactions.c.member_id == _m,
    transactions.c.kind == Kind.TRANSFER.value)


@functools.cache
def _rename_counterpart(dialect: str) -> sa.Executable:
    """The UPDATE naming an erased member in the other half of one of its transfers,
    run once per half (one executemany). The half is another member's row: its member
    is the one that claimed its id in lk_lookups (every transfer's halves are claimed
    by the write that posts them), so a distributed engine answers the claim on the
    id's node and updates the row on its member's only. Not the half's own
    ``counterpart_member_id``: once that member is erased it holds a name, not a key."""
    return transactions.update().where(
        transactions.c.program_id == _p, transactions.c.id == sa.bindparam("tx_id"),
        transactions.c.member_id == claimed_by("tx", _hex, _p),
    ).values(metadata=replaced(transactions.c.metadata, dialect, [
        (("counterpart_member_id",), sa.bindparam("name", type_=sa.Text()))]))


class SQLLedgerPrivacy(Store):
    """Erasure's statements of :class:`~loyaltykit.sql.ledger.SQLLedgerStore`."""

    @translated
    def erase(self, member_id: str) -> None:
        """Empty the member's ``attributes``."""
        self._c().execute(_ERASE_MEMBER, {"p": self.program_id, "m": member_id})

    @translated
    def rename_counterpart(self, member_id: str, name: str) -> list[str]:
        """Two statements: the member's transfers (their other halves' ids), then one
        UPDATE of those halves' metadata, executed once per half (each routed by the
        half's member, found through its claim)."""
        conn = self._c()
        rows = conn.execute(_SEL_TRANSFERS, {"p": self.program_id, "m": member_id}).all()
        others = sorted({uuid.UUID(str(row.metadata["counterpart_id"])) for row in rows
                         if "counterpart_id" in row.metadata})
        if others:
            conn.execute(_rename_counterpart(conn.dialect.name), [
                {"p": self.program_id, "tx_id": other, "hex": other.hex, "name": name}
                for other in others])
        return sorted({row.idempotency_key for row in rows
                       if row.idempotency_key is not None})
