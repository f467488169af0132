"""The shop's member ids in, member keys stored (DESIGN §11).

The facade wraps its storage in :class:`KeyedStorage`. Each of its units of work hands
the capability stores member keys where the services give the shop's member ids, and
gives the services the shop's ids back where the stores return keys; the services and
the domain speak only the shop's ids, the backends store only keys, and the shop's id
is kept once, in the ``members`` store (:mod:`loyaltykit.storage.members`).

A key is drawn (32 hex digits, from the facade's id source: a time-ordered UUID unless
one is injected) when a member row is first written for a shop id that has none, and
never changes. Drawing it from the same source as every other id keeps two backends
driven by the same calls identical, row for row. An erased member has no shop id any more: it is
named ``"erased:<key>"`` (:data:`ERASED_PREFIX`) on the way out, and that name maps back
to its key on the way in, so due work, reports and reversals keep running on its ledger.
A shop id that is not mapped reads as nothing (a key no row carries).

Cursors that only the stores interpret (a tier job's member range) pass through as keys.

The package's parts: :mod:`.names` (shop ids and keys, both ways), :mod:`.stores` (each
capability store, translating) and :mod:`.unit` (the storage and its units of work).
"""

from loyaltykit._member_keys.names import ERASED_PREFIX, Names, shop_ids
from loyaltykit._member_keys.stores import PAYLOAD_MEMBER_FIELDS
from loyaltykit._member_keys.unit import KeyedStorage, KeyedUnitOfWork

__all__ = ["ERASED_PREFIX", "PAYLOAD_MEMBER_FIELDS", "KeyedStorage", "KeyedUnitOfWork",
           "Names", "shop_ids"]
