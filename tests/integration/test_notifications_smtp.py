"""Notifications through a real local SMTP server (aiosmtpd): contacts, receipts, alerts, paging,
a server that is down and comes back."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.bootstrap import Container
from app.commands.notifications import deliver_notifications
from tests.conftest import checkout_body
from tests.e2e.helpers import place_order
from tests.integration.read_side_helpers import item, order_for
from tests.integration.test_workers_jobs import Sink, _free_port

pytestmark = pytest.mark.integration


def _start(sink: Sink, port: int):
    from aiosmtpd.controller import Controller

    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def world(make_settings):
    """An app on PostgreSQL + Redis whose SMTP_URL names a port (the server is up to each test)."""
    port = _free_port()
    settings = make_settings("pg", smtp_url=f"smtp://127.0.0.1:{port}", admin_email="ops@platform.example")
    container = Container(settings)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    client = app.test_client()
    from app.auth import create_key

    keys = {
        role: {"Authorization": f"Bearer {create_key(container.engine, role, subject)[1]}"}
        for role, subject in (("admin", None), ("customer", "c-1"), ("seller", "s-1"))
    }
    yield container, client, keys, port
    container.close()


def test_receipts_go_to_the_checkout_address_and_sellers_to_their_profile(world):
    container, client, keys, port = world
    sink = Sink()
    controller = _start(sink, port)
    try:
        put = client.put(
            "/api/sellers/s-1/profile",
            json={"name": "Mugs & Co", "email": "orders@mugs.example"},
            headers=keys["seller"],
        )
        assert put.status_code == 200 and put.json["email"] == "orders@mugs.example"
        bad = client.put(
            "/api/sellers/s-1/profile", json={"name": "x", "email": "nope"}, headers=keys["seller"]
        )
        assert bad.status_code == 422 and "email" in bad.json["errors"]
        refused = client.post(
            "/api/checkout/sessions",
            json=checkout_body(customer_email="not an address"),
            headers=keys["customer"],
        )
        assert refused.status_code == 422 and "customer_email" in refused.json["errors"]
        body = checkout_body(customer_email="ann@example.com")
        body["items"] = [item("s-1", 123456)]
        order = place_order(client, keys["customer"], body)
        assert deliver_notifications(container) == 2
        assert deliver_notifications(container) == 0
        by_to = {m["To"]: m for m in sink.messages}
        assert set(by_to) == {"ann@example.com", "orders@mugs.example"}
        receipt = by_to["ann@example.com"]
        assert receipt["Subject"] == "Your order is confirmed: $1,234.56"
        assert receipt.is_multipart()
        types = [part.get_content_type() for part in receipt.walk() if not part.is_multipart()]
        assert types == ["text/plain", "text/html"]
        assert receipt["Message-ID"].endswith("@tally.notifications>")
        listed = client.get("/api/customers/c-1/notifications", headers=keys["customer"]).json
        [confirmed] = listed["notifications"]
        assert confirmed["kind"] == "order_confirmed" and confirmed["status"] == "sent"
        assert confirmed["attempts"] == 1 and confirmed["data"]["order_id"] == order["order"]["id"]
        assert listed["has_more"] is False
        other = client.get("/api/customers/c-2/notifications", headers=keys["customer"])
        assert other.status_code == 403
    finally:
        controller.stop()


def test_a_failed_refund_alerts_the_platform_and_lists_page(world):
    container, client, keys, port = world
    sink = Sink()
    controller = _start(sink, port)
    try:
        placed = [order_for(client, keys["customer"], "c-1", [item("s-1", 1000 + n)]) for n in range(3)]
        order_id = placed[0]["order"]["id"]
        refund = client.post(f"/api/orders/{order_id}/refunds", json={"amount": 400}, headers=keys["admin"])
        assert refund.status_code == 201
        container.marketplace.reverse_failed_refund(
            order_id, refund.json["id"], "card expired", {"actor_id": "test", "reason": "failed"}
        )
        deliver_notifications(container)
        alerts = [m for m in sink.messages if m["To"] == "ops@platform.example"]
        assert [m["Subject"] for m in alerts] == ["ALERT: refund of $4.00 failed at the provider"]
        # The seller's list, two at a time, newest first, nothing cut off.
        seen, after = [], None
        while True:
            query = {"limit": 2} | ({"after": after} if after else {})
            page = client.get(
                "/api/sellers/s-1/notifications", query_string=query, headers=keys["seller"]
            ).json
            seen += page["notifications"]
            after = page["next_after"]
            if not page["has_more"]:
                break
        assert Counter(n["kind"] for n in seen) == Counter({"order_placed": 3, "order_refunded": 1})
        assert len({n["id"] for n in seen}) == 4 and seen[0]["kind"] == "order_refunded"
        bad = client.get("/api/sellers/s-1/notifications?after=zzz", headers=keys["seller"])
        assert bad.status_code == 422
    finally:
        controller.stop()


def test_a_server_that_is_down_and_comes_back_receives_everything_once(world, caplog):
    caplog.set_level(logging.DEBUG, logger="app")
    container, client, keys, port = world
    client.put(
        "/api/sellers/s-1/profile", json={"name": "S1", "email": "s1@example.com"}, headers=keys["admin"]
    )
    for n in range(3):
        body = checkout_body(customer_email="ann@example.com", items=[item("s-1", 500 + n)])
        place_order(client, keys["customer"], body)
    now = datetime.now(UTC)
    assert deliver_notifications(container, clock=lambda: now) == 0  # nobody listens
    listed = client.get("/api/sellers/s-1/notifications", headers=keys["seller"]).json["notifications"]
    assert {(n["status"], n["attempts"]) for n in listed} == {("pending", 1)}
    assert all(n["next_attempt_at"] for n in listed)
    sink = Sink()
    controller = _start(sink, port)
    try:
        assert deliver_notifications(container, clock=lambda: now + timedelta(seconds=30)) == 0  # not due
        assert deliver_notifications(container, clock=lambda: now + timedelta(minutes=2)) == 6
        assert deliver_notifications(container, clock=lambda: now + timedelta(hours=2)) == 0
        assert sorted(Counter(m["To"] for m in sink.messages).items()) == [
            ("ann@example.com", 3),
            ("s1@example.com", 3),
        ]
        assert len({m["Message-ID"] for m in sink.messages}) == 6
        listed = client.get("/api/sellers/s-1/notifications", headers=keys["seller"]).json["notifications"]
        assert {(n["status"], n["attempts"]) for n in listed} == {("sent", 2)}
        # The logs name notifications by id and kind: no address, no words of a message.
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("app", "workers")))
        assert "not sent, attempt 1" in ours and ") sent" in ours
        assert "@example.com" not in ours and "$5.0" not in ours and "Springfield" not in ours
    finally:
        controller.stop()
