"""Customers racing for the last unit of a SKU, on PostgreSQL, from separate processes (as from
several gunicorn workers): exactly one checkout session gets it, the others are 409s naming the
SKU, and available never goes below zero."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

import pytest

from tests.conftest import checkout_body

pytestmark = pytest.mark.integration

PROCESSES = 5


def _open_session(settings: Any, headers: dict[str, str], barrier: Any, results: Any) -> None:
    """One process: its own container (event store pool, caches), then a session at the barrier."""
    from app import create_app
    from app.bootstrap import Container

    container = Container(settings)
    try:
        client = create_app(container=container).test_client()
        body = checkout_body(
            items=[
                {
                    "seller_id": "s-1",
                    "sku": "last",
                    "description": "Last one",
                    "unit_amount": 500,
                    "quantity": 1,
                }
            ]
        )
        barrier.wait(60)
        response = client.post("/api/checkout/sessions", json=body, headers=headers)
        results.put((response.status_code, response.get_json()))
    finally:
        container.close()


@pytest.mark.parametrize("round_", range(2))
def test_exactly_one_session_gets_the_last_unit(settings, container, admin, client, round_):
    assert (
        client.put("/api/sellers/s-1/inventory/last", json={"on_hand": 1}, headers=admin).status_code == 200
    )
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=_open_session, args=(settings, admin, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert Counter(status for status, _ in answers) == {201: 1, 409: PROCESSES - 1}, answers
    for status, body in answers:
        if status == 409:
            assert body["insufficient_stock"] == [
                {"seller_id": "s-1", "sku": "last", "requested": 1, "available": 0}
            ]
    stock = client.get("/api/sellers/s-1/inventory/last", headers=admin).json
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (1, 1, 0)
