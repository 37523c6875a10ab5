"""Stripe webhooks: each event id applied once (also when 50 events arrive 3 times at once),
the raw verified body kept, late and out-of-order events never moving a payment backwards,
and a success for an unknown PaymentIntent kept and reported."""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter

import pytest
from sqlalchemy import select
from stripe import WebhookSignature

from app.adapters.tables import provider_events
from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import events_named

pytestmark = pytest.mark.e2e


def start_3ds(client, customer) -> dict:
    session = create_session(client, customer)
    response = confirm(client, customer, session["id"], "pm_card_authenticationRequired")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.json["payment"]


def pay(client, customer) -> dict:
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def stored_events(container) -> dict[str, dict]:
    with container.engine.connect() as conn:
        rows = conn.execute(select(provider_events)).all()
    return {row.id: row._asdict() for row in rows}


def test_redeliveries_and_late_events_never_move_a_payment_backwards(client, customer, stub, container):
    payment = start_3ds(client, customer)
    stale = stub.event("payment_intent.payment_failed", stub.fail_action(payment["provider_reference"]))
    stale["created"] -= 60  # happened before the success below, arrives after it
    stub.intents[payment["provider_reference"]]["status"] = "requires_action"
    succeeded = stub.event("payment_intent.succeeded", stub.complete_action(payment["provider_reference"]))

    assert stub.deliver(client, succeeded).json["outcome"] == "applied"
    after_success = len(events_named(container, ""))
    assert stub.deliver(client, succeeded).json["outcome"] == "duplicate"
    assert stub.deliver(client, stale).json["outcome"] == "applied"  # recorded, changes nothing
    again = copy.deepcopy(succeeded)
    again["id"] = "evt_same_success_other_id"
    assert stub.deliver(client, again).json["outcome"] == "applied"
    assert len(events_named(container, "")) == after_success

    paid = client.get(f"/api/payments/{payment['id']}", headers=customer).json
    assert paid["status"] == "succeeded" and paid["failure_reason"] is None
    assert len(events_named(container, "Order.Placed")) == 1
    kept = stored_events(container)
    assert kept[succeeded["id"]]["state"] == "applied" and kept[succeeded["id"]]["attempts"] == 1
    assert "late failure changes nothing" in kept[stale["id"]]["detail"]


def test_the_raw_verified_body_is_kept_and_an_unknown_success_is_kept_unmatched(
    client, stub, container, caplog
):
    foreign = {
        "id": "pi_made_elsewhere",
        "object": "payment_intent",
        "amount": 1200,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {},
    }
    event = stub.event("payment_intent.succeeded", foreign)
    payload = json.dumps(event, indent=2)  # Stripe's own layout: kept byte for byte
    header = WebhookSignature.generate_signature_header(payload, stub.webhook_secret)
    with caplog.at_level("WARNING"):
        response = client.post(
            "/api/webhooks/stripe",
            data=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
    assert response.status_code == 200 and response.json["outcome"] == "unmatched"
    assert any("pi_made_elsewhere" in r.getMessage() for r in caplog.records)
    row = stored_events(container)[event["id"]]
    assert row["state"] == "unmatched" and row["payload"] == payload
    assert json.loads(row["payload"]) == event
    assert events_named(container, "") == []


def test_a_webhook_storm_applies_each_of_50_events_once(app, client, customer, admin, stub, container):
    # 20 payments awaiting 3-D Secure; 15 paid orders refunded in the dashboard; 15 paid orders disputed.
    actions = [start_3ds(client, customer) for _ in range(20)]
    refunded = [pay(client, customer) for _ in range(15)]
    disputed = [pay(client, customer) for _ in range(15)]
    events = [
        stub.event("payment_intent.succeeded", stub.complete_action(p["provider_reference"])) for p in actions
    ]
    for placed in refunded:
        reference = placed["payment"]["provider_reference"]
        stub.refund_from_dashboard(reference, 500)
        events.append(stub.event("charge.refunded", stub.charge_of(reference)))
    for placed in disputed:
        events.append(
            stub.event("charge.dispute.created", stub.open_dispute(placed["payment"]["provider_reference"]))
        )
    assert len(events) == 50
    before = Counter(n.topic.rsplit(":", 1)[-1] for n in events_named(container, ""))

    deliveries = [event for event in events for _ in range(3)]
    outcomes: dict[str, list[str]] = {event["id"]: [] for event in events}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def deliver(share: list[dict]) -> None:
        local = app.test_client()
        start.wait()
        for event in share:
            try:
                response = stub.deliver(local, event)
                assert response.status_code == 200, response.get_data(as_text=True)
                with lock:
                    outcomes[event["id"]].append(response.json["outcome"])
            except BaseException as exc:
                errors.append(exc)

    # Each thread takes every 8th delivery: the three copies of an event land in different threads.
    threads = [threading.Thread(target=deliver, args=(deliveries[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert all(sorted(o) == ["applied", "duplicate", "duplicate"] for o in outcomes.values()), outcomes

    kept = stored_events(container)
    assert len(kept) == 50 and {row["state"] for row in kept.values()} == {"applied"}
    after = Counter(n.topic.rsplit(":", 1)[-1] for n in events_named(container, ""))
    added = {
        topic: after[topic] - before.get(topic, 0) for topic in after if after[topic] != before.get(topic, 0)
    }
    assert added["Payment.Succeeded"] == 20 and added["Order.Placed"] == 20
    assert added["Allocation.Created"] == 40
    assert added["Payment.Refunded"] == 15 and added["Order.RefundRecorded"] == 15
    assert added["Payment.Disputed"] == 15 and added["Payment.DisputeFundsWithdrawn"] == 15
    assert added["Allocation.DisputeReversed"] == 30
    for placed in refunded:
        assert (
            client.get(f"/api/orders/{placed['order']['id']}", headers=admin).json["refunded_amount"] == 500
        )
    for placed in disputed:
        order = client.get(f"/api/orders/{placed['order']['id']}", headers=admin).json
        [dispute] = order["disputes"]
        assert dispute["funds"] == "withdrawn" and order["disputed_amount"] == order["total_amount"]


def test_an_event_that_fails_half_way_is_kept_and_applied_by_its_redelivery(
    client, customer, admin, stub, container
):
    placed = pay(client, customer)
    reference = placed["payment"]["provider_reference"]
    stub.refund_from_dashboard(reference, 800)
    event = stub.event("charge.refunded", stub.charge_of(reference))
    stub.fail_next("GET", "/v1/refunds", status=503, times=3)  # Stripe cannot list the refunds right now

    failed = stub.deliver(client, event)
    assert failed.status_code == 503  # not a 2xx: Stripe delivers it again later
    row = stored_events(container)[event["id"]]
    assert row["state"] == "failed" and "ProviderUnavailableError" in row["detail"]
    assert client.get(f"/api/orders/{placed['order']['id']}", headers=admin).json["refunded_amount"] == 0

    retried = stub.deliver(client, event)
    assert retried.status_code == 200 and retried.json["outcome"] == "applied"
    assert stored_events(container)[event["id"]]["attempts"] == 2
    assert client.get(f"/api/orders/{placed['order']['id']}", headers=admin).json["refunded_amount"] == 800
    assert stub.deliver(client, event).json["outcome"] == "duplicate"
