"""Racing confirms of one checkout session: one wins, the rest are 409, one order, one charge."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from tests.conftest import checkout_body

pytestmark = pytest.mark.integration

THREADS = 8


def _race_confirm(app, headers: dict, session_id: str, methods: list[str]) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(methods))
    results: list = [None] * len(methods)

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/checkout/sessions/{session_id}/confirm",
            json={"payment_method": methods[i]},
            headers=headers,
        )
        results[i] = (response.status_code, json.loads(response.get_data(as_text=True)), response.mimetype)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(methods))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results), "a confirm never answered"
    return results


def _events(container) -> list:
    return list(container.marketplace.recorder.select_notifications(start=1, limit=10_000))


@pytest.mark.parametrize("backend", ["pg", "sqlite"], indirect=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_confirms_place_exactly_one_order(app, make_key, container, round_):
    customer = make_key("customer", "c-1")
    client = app.test_client()
    session = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).json

    results = _race_confirm(app, customer, session["id"], ["pm_card_visa"] * THREADS)

    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 409: THREADS - 1}, statuses
    for status, body, mimetype in results:
        if status == 409:
            assert mimetype == "application/problem+json" and body["status"] == 409
    winner = next(body for status, body, _ in results if status == 201)

    events = _events(container)
    placed = [e for e in events if e.topic.endswith("Order.Placed")]
    succeeded = [e for e in events if e.topic.endswith("Payment.Succeeded")]
    assert len(placed) == 1
    assert len(succeeded) == 1
    assert str(placed[0].originator_id) == winner["order"]["id"]
    assert str(succeeded[0].originator_id) == winner["payment"]["id"]
    # Every payment that was started either succeeded (the winner) or is not a charge at all.
    initiated = [e for e in events if e.topic.endswith("Payment.Initiated")]
    assert len(initiated) == 1
    allocations = [e for e in events if e.topic.endswith("Allocation.Created")]
    assert len(allocations) == 2

    final = client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json
    assert final["status"] == "completed" and final["order_id"] == winner["order"]["id"]


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_concurrent_confirms_with_declines_mixed_in_never_place_two_orders(app, make_key, container):
    customer = make_key("customer", "c-1")
    client = app.test_client()
    session = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).json
    methods = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_mastercard", "pm_card_chargeDeclined"] * 2

    results = _race_confirm(app, customer, session["id"], methods)

    statuses = Counter(status for status, _, _ in results)
    assert set(statuses) <= {201, 402, 409}, statuses
    assert statuses[201] <= 1
    events = _events(container)
    assert len([e for e in events if e.topic.endswith("Order.Placed")]) == statuses[201]
    assert len([e for e in events if e.topic.endswith("Payment.Succeeded")]) == statuses[201]
    # Retrying until done always ends with exactly one order.
    if statuses[201] == 0:
        done = client.post(
            f"/api/checkout/sessions/{session['id']}/confirm",
            json={"payment_method": "pm_card_visa"},
            headers=customer,
        )
        assert done.status_code == 201
    assert len([e for e in _events(container) if e.topic.endswith("Order.Placed")]) == 1


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_concurrent_refunds_never_refund_more_than_was_paid(app, make_key, admin, container):
    customer = make_key("customer", "c-1")
    client = app.test_client()
    session = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).json
    order = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers=customer,
    ).json["order"]
    barrier = threading.Barrier(THREADS)
    statuses: list = [None] * THREADS

    def worker(i: int) -> None:
        c = app.test_client()
        barrier.wait()
        statuses[i] = c.post(
            f"/api/orders/{order['id']}/refunds", json={"amount": 1000}, headers=admin
        ).status_code

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    counts = Counter(statuses)
    assert counts == {201: 4, 422: THREADS - 4}, counts  # 4 x 1000 fit in 4499, a fifth does not
    final = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert final["refunded_amount"] == 4000 and final["status"] == "partially_refunded"
    assert sum(s["refunded_amount"] for s in final["sellers"]) == 4000
    refunded = [e for e in _events(container) if e.topic.endswith("Order.RefundRecorded")]
    assert len(refunded) == 4
