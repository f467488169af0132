"""An order's outbox events (its earn's ``points.earned``, its ``order.recorded``) and an
enrolment's are appended straight from their fields, with no draft per event (a history
import raises them for every order and new member), and every other subscriber still
gets every event raised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from _small_shop import T0, small_loyalty, small_orders
from loyaltykit._events import OrderRecorded, PointsPosted
from loyaltykit._outbox import EventDraft
from loyaltykit._pipeline import Work


@pytest.fixture
def drafts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The type of every EventDraft built while the test runs."""
    built: list[str] = []
    init = EventDraft.__init__

    def counting(self: EventDraft, type: str, *args: Any, **kwargs: Any) -> None:
        built.append(type)
        init(self, type, *args, **kwargs)

    monkeypatch.setattr(EventDraft, "__init__", counting)
    yield built


def test_an_import_builds_no_draft_per_order_nor_member(drafts: list[str]) -> None:
    loyalty = small_loyalty()
    result = loyalty.record_orders(small_orders(12), enrol=True)
    assert (result.recorded, result.enrolled) == (12, 3)
    assert drafts == []  # 27 on the mapping path: one per enrolment, earn and order
    events = loyalty.events.read("c", limit=100)
    assert [e.type for e in events] == ["member.enrolled"] * 3 + [
        "points.earned", "order.recorded"] * 12


def test_record_order_builds_no_draft(drafts: list[str]) -> None:
    loyalty = small_loyalty()
    loyalty.enrol("m0", at=T0)
    drafts.clear()
    loyalty.record_order(small_orders(1)[0])
    assert drafts == []


def test_another_subscriber_gets_every_event_of_an_import() -> None:
    """A subscriber besides the outbox (here to both event types an order raises) is
    handed every event, in order, and the outbox is as without it."""
    plain, watched = small_loyalty(), small_loyalty()
    seen: list[tuple[str, str]] = []

    def posted(work: Work, event: PointsPosted) -> None:
        seen.append(("posted", str(event.transaction.metadata.get("order_id"))))

    def recorded(work: Work, event: OrderRecorded) -> None:
        seen.append(("recorded", event.record.order_id))

    watched._c.bus.subscribe(PointsPosted, posted)
    watched._c.bus.subscribe(OrderRecorded, recorded)
    for loyalty in (plain, watched):
        loyalty.record_orders(small_orders(9), enrol=True, batch_size=4)
    assert seen == [(kind, f"o{i}") for i in range(9) for kind in ("posted", "recorded")]
    shown = [[(e.type, e.member_id, e.occurred_at, dict(e.payload)) for e in
              loyalty.events.read("c", limit=100)] for loyalty in (plain, watched)]
    for events in shown:  # ids differ between the two programs
        for _, _, _, payload in events:
            for key in ("transaction_id", "earn_id", "lots"):
                payload.pop(key, None)
    assert shown[0] == shown[1]
    assert len(shown[0]) == 3 + 2 * 9
