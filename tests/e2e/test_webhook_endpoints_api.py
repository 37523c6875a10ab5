"""The webhook endpoint registry through HTTP; deliveries in the embedded default (inline jobs)."""

from __future__ import annotations

import pytest

from app import create_app
from app.bootstrap import Container
from tests.e2e.helpers import place_order
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://127.0.0.1/hook", "events": ["*"]}, "url"),
        ({"url": "https://169.254.169.254/", "events": ["*"]}, "url"),
        ({"url": "http://93.184.215.14/", "events": ["*"]}, "url"),
        ({"url": "https://93.184.215.14/", "events": ["order.shipped"]}, "events"),
        ({"url": "https://93.184.215.14/", "events": []}, "events"),
        ({"url": "https://93.184.215.14/"}, "events"),
    ],
)
def test_unsafe_urls_and_unknown_event_types_are_422(client, admin, body, field):
    answer = client.post("/api/webhook-endpoints", json=body, headers=admin)
    assert answer.status_code == 422, answer.json
    assert any(key.split(".")[0] == field for key in answer.json["errors"]), answer.json


def test_only_admins_register_and_unknown_ids_are_404(client, admin, make_key):
    seller = make_key("seller", "s-1")
    body = {"url": "https://93.184.215.14/", "events": ["*"]}
    assert client.post("/api/webhook-endpoints", json=body, headers=seller).status_code == 403
    assert client.get("/api/webhook-endpoints/nope", headers=admin).status_code == 404
    assert client.get("/api/webhook-endpoints/nope/deliveries", headers=admin).status_code == 404
    assert client.delete("/api/webhook-endpoints/nope", headers=admin).status_code == 404
    assert client.post("/api/webhook-deliveries/nope/retry", headers=admin).status_code == 404
    created = client.post("/api/webhook-endpoints", json=body, headers=admin)
    assert created.status_code == 201 and created.json["events"] == ["*"]


def test_the_embedded_default_delivers_inline_with_no_worker(make_settings):
    settings = make_settings("sqlite", webhooks_allow_private=True)
    container = Container(settings)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    client = app.test_client()
    from app.auth import create_key

    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
    try:
        with Receiver() as receiver:
            created = client.post(
                "/api/webhook-endpoints",
                json={"url": receiver.url, "events": ["order.placed"]},
                headers=admin,
            )
            assert created.status_code == 201
            order = place_order(client, customer)
            [event] = receiver.events()
            assert event["type"] == "order.placed" and event["data"]["order_id"] == order["order"]["id"]
            page = client.get(f"/api/webhook-endpoints/{created.json['id']}/deliveries", headers=admin).json
            assert [d["status"] for d in page["deliveries"]] == ["delivered"] and page["has_more"] is False
    finally:
        container.close()
