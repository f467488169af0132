"""The in-memory storage backend: a first-class test double with SQL's semantics.

Thread-safe. Each unit of work holds one process-wide lock from ``__enter__`` to
``__exit__`` (like SQLite, writers are serialised), keeps an undo log and rolls back
unless committed. Unique rules (idempotency key per program, member id per program,
order id per program, one reversal per transaction) raise
:class:`~loyaltykit.DuplicateKey` exactly where the SQL backend's constraints would,
and nothing of a rejected write is applied. JSON fields of program versions and orders
are kept as the SQL backend keeps them (a JSON round trip: tuples come back as lists)
and every read returns a fresh copy, so a caller cannot change what is stored.

One module per store of the port (:mod:`loyaltykit.storage`), each owning its tables:
``keys`` (idempotency records, program versions), ``ledger``, ``orders``, ``tiers``,
``referrals``, ``rewards``; ``uow`` holds the storage, the lock and the undo log; ``tables`` the
per-capability tables registry and the JSON copies; ``order_rows`` and ``ledger_rows`` the
packed rows of recorded orders and transactions (their texts in one bytes object);
``due_events`` the fixed layouts of due work's outbox payloads (no JSON text kept).

>>> from loyaltykit.memory import MemoryStorage
>>> storage = MemoryStorage()
"""

from __future__ import annotations

from loyaltykit.memory.uow import MemoryStorage, MemoryUnitOfWork

__all__ = ["MemoryStorage", "MemoryUnitOfWork"]
