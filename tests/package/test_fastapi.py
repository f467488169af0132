"""A FastAPI app returns loyaltykit's results as they are (issue 24, "JSON-ready
results"): the classes are valid return annotations, the response body is their
``to_dict()``, and the OpenAPI document builds. On SQLite and PostgreSQL facades."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.conftest import make_storage_factory

from loyaltykit import (
    Balance,
    EventPolicy,
    Liability,
    Loyalty,
    Money,
    OutboxEvent,
    Program,
    TestClock,
    TransactionResult,
)

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def loyalty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Loyalty]:
    factory, cleanups = make_storage_factory(request.param, tmp_path)
    program = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"), events=EventPolicy())
    yield Loyalty(program, factory(), clock=TestClock(NOW))
    for cleanup in cleanups:
        cleanup()


def shop_app(loyalty: Loyalty) -> FastAPI:
    """A shop's routes, annotated with loyaltykit's own result types."""
    app = FastAPI()

    @app.post("/members/{member_id}/earn")
    def earn(member_id: str, points: int, key: str) -> TransactionResult:
        return loyalty.earn(member_id, points, key=key)

    @app.get("/members/{member_id}/balance")
    def balance(member_id: str) -> Balance:
        return loyalty.balance(member_id)

    @app.get("/events", response_model=list[OutboxEvent])
    def events() -> Any:
        return loyalty.events.read("api")

    @app.get("/reports/liability")
    def liability() -> Liability:
        return loyalty.reports.liability()

    return app


def test_routes_return_the_results_to_dict(loyalty: Loyalty) -> None:
    loyalty.enrol("alice")
    client = TestClient(shop_app(loyalty))

    earned = client.post("/members/alice/earn", params={"points": 120, "key": "o-1"})
    assert earned.status_code == 200, earned.text
    # the same request again is an idempotent replay: the very result, read back
    replay = loyalty.earn("alice", 120, key="o-1")
    assert earned.json() == replay.to_dict()
    assert earned.json()["balance"]["available"] == 120
    assert earned.json()["occurred_at"] == "2026-03-02T09:30:00+00:00"

    balance = client.get("/members/alice/balance")
    assert balance.status_code == 200, balance.text
    assert balance.json() == loyalty.balance("alice").to_dict()

    events = client.get("/events")
    assert events.status_code == 200, events.text
    expected = [e.to_dict() for e in loyalty.events.read("api")]
    assert [e["type"] for e in expected] == ["member.enrolled", "points.earned"]
    assert events.json() == expected

    liability = client.get("/reports/liability")
    assert liability.status_code == 200, liability.text
    assert liability.json() == loyalty.reports.liability().to_dict()
    assert liability.json()["face_value"] == {"amount": "1.20", "currency": "EUR"}


def test_openapi_document_shows_the_results_as_objects(loyalty: Loyalty) -> None:
    document = TestClient(shop_app(loyalty)).get("/openapi.json")
    assert document.status_code == 200, document.text
    schemas = document.json()["components"]["schemas"]
    assert schemas["Balance"]["type"] == "object"
    assert schemas["TransactionResult"]["type"] == "object"
    route = document.json()["paths"]["/members/{member_id}/balance"]["get"]
    body = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Balance"}
