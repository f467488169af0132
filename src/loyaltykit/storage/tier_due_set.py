"""A tier evaluation whose outbox events the store appends itself: the request.

Due work's tier evaluation (:meth:`~loyaltykit.storage.tiers.TierStore.evaluate_tiers`)
moves a batch of tier states on and appends a history line for each member whose tier
changed; the service then raised each line as a
:class:`~loyaltykit._tiers.TierChanged`, which the outbox recorded as one
``tier.changed`` event (:mod:`loyaltykit._services.tier_events`). Where the outbox is
the only listener, every field of those events follows from the history line, the
state after it and the ladder, so a store can append them itself in the same unit of
work, with no Python object per member: :class:`TierOutbox` is what it is given, and a
store that can answers ``tiers.evaluate_tiers_recorded(job, outbox)`` (see
:class:`TierOutboxStore`).

The events are the ones the mapper builds, field for field (the payload's keys in its
order): ``from``, ``to`` (the line's tiers), ``direction`` (``"up"`` / ``"down"`` by the
ranks), ``reason`` (``"evaluation"``), ``note`` (``""``), ``changed_at``
(:attr:`TierOutbox.changed_at`), ``metric`` (:attr:`TierOutbox.metric`),
``qualifying`` (the line's metric, an int), ``threshold`` and ``benefits`` (of the new
tier: :attr:`TierOutbox.ladder`), ``protected_until`` (the state's after the line, as
UTC ISO text, None unless later than the evaluation) and ``next_evaluation``
(:attr:`TierOutbox.next_evaluation`). They come in the order of the history lines,
each with the next of ``new_ids``, dated at the evaluation and recorded at
:attr:`TierOutbox.recorded_at`, type :attr:`TierOutbox.type`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from loyaltykit._tiers import TierJob

__all__ = ["TierOutbox", "TierOutboxStore", "TierRung"]


@attrs.frozen
class TierRung:
    """What a ``tier.changed`` event says of the tier it moves to: its name, its
    threshold as the payload shows it (an int: points or orders) and its benefits (a
    JSON-compatible dict)."""

    name: str
    threshold: int
    benefits: Mapping[str, Any]


@attrs.frozen
class TierOutbox:
    """The ``tier.changed`` events of one tier evaluation's changes, for
    :meth:`TierOutboxStore.evaluate_tiers_recorded` (see the module docstring).

    ``ladder`` holds each rank's :class:`TierRung`; ``changed_at`` and
    ``next_evaluation`` are the job's instants as the payload shows them (UTC ISO
    text); ``recorded_at`` is the write's now; ``new_ids(n)`` the write's id source.
    """

    type: str
    version: int
    metric: str
    ladder: Sequence[TierRung]
    changed_at: str
    next_evaluation: str | None
    recorded_at: dt.datetime
    new_ids: Callable[[int], list[uuid.UUID]]


@runtime_checkable
class TierOutboxStore(Protocol):
    """A tiers store that can append an evaluation's outbox events itself."""

    def evaluate_tiers_recorded(self, job: TierJob, outbox: TierOutbox
                                ) -> tuple[int, int] | None:
        """Do what :meth:`~loyaltykit.storage.tiers.TierStore.evaluate_tiers` does and
        append the outbox event of each history line it appends (``outbox``); return
        how many states were evaluated and how many lines were appended. None: the
        store cannot, and has written nothing and drawn no id (the caller evaluates
        with ``evaluate_tiers`` and raises the events)."""
        ...
