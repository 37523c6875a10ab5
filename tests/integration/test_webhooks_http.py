"""Outbound webhooks to a real local HTTP receiver, on PostgreSQL + Redis: delivered once, signed
as Stripe signs (checked with Stripe's own verifier), retried with the same event id, never lost
when a worker is killed mid-delivery, given up after 3 days with the endpoint disabled."""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import create_app
from app.adapters.tables import idempotency_keys, webhook_deliveries, webhook_endpoints
from app.bootstrap import Container
from app.commands.webhooks import deliver_webhooks
from tests.integration.read_side_helpers import (
    FLASK,
    ROOT,
    LoggedProcess,
    child_env,
    event_topics,
    item,
    order_for,
    run_worker_burst,
    worker_log,
)
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.integration
KEY = Fernet.generate_key().decode()


@pytest.fixture
def world(make_settings):
    settings = make_settings("pg", webhooks_allow_private=True, webhook_secret_key=KEY)
    container = Container(settings)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    client = app.test_client()
    from app.auth import create_key

    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
    with Receiver() as receiver:
        yield container, client, admin, customer, receiver
    container.close()


def register(client, admin, url: str, events: list[str], **headers: str) -> dict:
    answer = client.post(
        "/api/webhook-endpoints", json={"url": url, "events": events}, headers=admin | headers
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def deliveries(client, admin, endpoint_id: str) -> list[dict]:
    return client.get(f"/api/webhook-endpoints/{endpoint_id}/deliveries", headers=admin).json["deliveries"]


def verify(request: dict, secret: str) -> None:
    """Stripe's own verifier, given our header under its name: the schemes cannot drift apart."""
    header = request["headers"]["Tally-Signature"]
    assert stripe.WebhookSignature.verify_header(request["body"], header, secret, tolerance=300)


def test_an_event_reaches_its_endpoint_once_signed_as_stripe_signs(world):
    container, client, admin, customer, receiver = world
    endpoint = register(client, admin, receiver.url, ["order.placed"], **{"Idempotency-Key": "hook-1"})
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and endpoint["status"] == "enabled"
    listed = client.get("/api/webhook-endpoints", headers=admin).json["webhook_endpoints"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    # The secret is kept only sealed, and a replay of the creating POST does not show it again.
    with container.engine.connect() as conn:
        sealed = conn.execute(select(webhook_endpoints.c.secret_encrypted)).scalar_one()
        stored = conn.execute(select(idempotency_keys.c.response_body)).scalars().all()
    assert secret not in sealed and all(secret not in body for body in stored)
    replay = client.post(
        "/api/webhook-endpoints",
        json={"url": receiver.url, "events": ["order.placed"]},
        headers=admin | {"Idempotency-Key": "hook-1"},
    )
    assert replay.status_code == 201 and replay.json["id"] == endpoint["id"] and secret not in replay.text

    order = order_for(client, customer, "c-1", [item("s-1", 2500)])
    assert deliver_webhooks(container) == 1
    assert deliver_webhooks(container) == 0
    [request] = receiver.requests
    verify(request, secret)
    assert request["path"] == "/hooks/tally"
    [event] = receiver.events()
    assert event["id"].startswith("evt_") and event["type"] == "order.placed"
    assert event["data"]["order_id"] == order["order"]["id"] and isinstance(event["created"], int)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            request["body"] + " ", request["headers"]["Tally-Signature"], secret
        )
    [delivery] = deliveries(client, admin, endpoint["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["event_id"] == event["id"]

    # Through the workers: a new order -> catch-up job -> delivery job -> one more POST.
    order_for(client, customer, "c-1", [item("s-1", 900)])
    run_worker_burst(container)
    run_worker_burst(container)
    assert len(receiver.requests) == 2 and len({e["id"] for e in receiver.events()}) == 2

    # A manual retry sends it once more, with the same event id.
    retried = client.post(f"/api/webhook-deliveries/{delivery['id']}/retry", headers=admin)
    assert retried.status_code == 202
    deliver_webhooks(container)
    assert [e["id"] for e in receiver.events()].count(event["id"]) == 2
    assert client.delete(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin).status_code == 404


def test_a_receiver_answering_500_then_200_gets_the_same_event_twice_and_nothing_more(world, caplog):
    caplog.set_level(logging.DEBUG)
    container, client, admin, customer, receiver = world
    endpoint = register(client, admin, receiver.url, ["*"])
    receiver.statuses = [500]
    order_for(client, customer, "c-1", [item("s-1", 2500)])
    now = datetime.now(UTC)
    assert deliver_webhooks(container, clock=lambda: now) == 0
    [delivery] = deliveries(client, admin, endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 500)
    assert delivery["next_attempt_at"] is not None
    assert deliver_webhooks(container, clock=lambda: now + timedelta(seconds=5)) == 0  # not yet due
    assert deliver_webhooks(container, clock=lambda: now + timedelta(minutes=1)) == 1
    for later in (timedelta(hours=1), timedelta(days=4)):
        assert deliver_webhooks(container, clock=lambda later=later: now + later) == 0
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 2 and ids[0] == ids[1]
    secret = endpoint_secret(container, endpoint["id"])
    for request in receiver.requests:
        verify(request, secret)
    assert "not delivered, attempt 1: HTTP 500" in caplog.text
    assert secret not in caplog.text and "v1=" not in caplog.text and "Springfield" not in caplog.text


def endpoint_secret(container, endpoint_id: str) -> str:
    with container.engine.connect() as conn:
        sealed = conn.execute(
            select(webhook_endpoints.c.secret_encrypted).where(webhook_endpoints.c.id == endpoint_id)
        ).scalar_one()
    return container.secret_box.open(sealed)


def test_a_worker_killed_mid_delivery_loses_nothing(world):
    container, client, admin, customer, receiver = world
    endpoint = register(client, admin, receiver.url, ["order.placed"])
    order_for(client, customer, "c-1", [item("s-1", 2500)])
    receiver.hold = hold = __import__("threading").Event()
    env = child_env(container.settings, WEBHOOKS_ALLOW_PRIVATE="1", WEBHOOK_SECRET_KEY=KEY)
    worker = LoggedProcess([str(FLASK), "--app", "wsgi", "worker", "--burst"], cwd=str(ROOT), env=env)
    try:
        assert receiver.arrived.wait(60), worker_log(worker)
        os.kill(worker.pid, signal.SIGKILL)  # mid-delivery: the POST is sent, no answer heard
        worker.wait(30)
    finally:
        hold.set()
        if worker.poll() is None:
            worker.kill()
    [delivery] = deliveries(client, admin, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 1  # claimed, never marked
    soon = datetime.now(UTC) + timedelta(seconds=5)
    assert deliver_webhooks(container, clock=lambda: soon) == 0  # the dead worker's claim holds
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert deliver_webhooks(container, clock=lambda: later) == 1
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 2 and len(set(ids)) == 1
    [delivery] = deliveries(client, admin, endpoint["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2


def test_three_days_of_failures_fail_the_delivery_disable_the_endpoint_and_alert(world):
    container, client, admin, customer, receiver = world
    endpoint = register(client, admin, receiver.url, ["order.placed"])
    receiver.statuses = [503] * 1000
    order_for(client, customer, "c-1", [item("s-1", 2500)])
    start = datetime.now(UTC)
    at = start
    for _ in range(100):
        deliver_webhooks(container, clock=lambda at=at: at, jitter=lambda: 1.0)
        with container.engine.connect() as conn:
            row = conn.execute(
                select(webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
            ).one()
        if row.status != "pending":
            break
        at = (
            row.next_attempt_at.replace(tzinfo=UTC)
            if row.next_attempt_at.tzinfo is None
            else row.next_attempt_at
        )
    assert row.status == "failed"
    assert timedelta(days=2, hours=18) <= at - start <= timedelta(days=3)
    waits = [r for r in receiver.requests]
    assert 15 <= len(waits) <= 25  # 30 s doubling to 6 h: about twenty attempts in three days
    [delivery] = deliveries(client, admin, endpoint["id"])
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 503
    assert client.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin).json["status"] == "disabled"
    assert any(topic.endswith("Alert.Raised") for topic in event_topics(container))
    # Nothing more is sent to a disabled endpoint.
    order_for(client, customer, "c-1", [item("s-1", 100)])
    assert deliver_webhooks(container, clock=lambda: at + timedelta(hours=1)) == 0
    assert len(receiver.requests) == len(waits)
    retried = client.post(f"/api/webhook-deliveries/{delivery['id']}/retry", headers=admin)
    assert retried.status_code == 409
