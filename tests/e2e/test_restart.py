"""Events are durable: a new Container and app on the same settings see exactly what was written."""

from __future__ import annotations

import pytest

from app import create_app
from app.bootstrap import Container
from tests.conftest import checkout_body
from tests.e2e.helpers import confirm, create_session, event_count, place_order

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)
def test_orders_and_payments_survive_a_restart(settings, container, make_key, admin):
    customer = make_key("customer", "c-1")
    client = create_app(container=container).test_client()
    placed = place_order(client, customer)
    order_id, payment_id = placed["order"]["id"], placed["payment"]["id"]
    refund = client.post(f"/api/orders/{order_id}/refunds", json={"amount": 1000}, headers=admin)
    assert refund.status_code == 201
    declined_session = create_session(client, customer, checkout_body(customer_id="c-1"))
    declined = confirm(client, customer, declined_session["id"], "pm_card_chargeDeclined")
    assert declined.status_code == 402
    failed_payment_id = declined.json["payment_id"]

    urls = [
        f"/api/orders/{order_id}",
        f"/api/payments/{payment_id}",
        f"/api/payments/{failed_payment_id}",
        f"/api/checkout/sessions/{placed['session']['id']}",
    ]
    before = {url: client.get(url, headers=customer) for url in urls}
    assert all(r.status_code == 200 for r in before.values())
    assert before[urls[0]].json["status"] == "partially_refunded"
    events_before = event_count(container)
    container.close()

    restarted = Container(settings)
    try:
        client = create_app(container=restarted).test_client()
        for url in urls:
            after = client.get(url, headers=customer)  # the key, too, survived
            assert after.status_code == 200, url
            assert after.json == before[url].json, url
        assert event_count(restarted) == events_before
        # The rebuilt aggregates carry on: refund the rest, and the totals still add up.
        rest = client.post(f"/api/orders/{order_id}/refunds", json={"amount": 3499}, headers=admin)
        assert rest.status_code == 201, rest.json
        order = client.get(f"/api/orders/{order_id}", headers=admin).json
        assert order["status"] == "refunded" and order["refunded_amount"] == 4499
        assert client.get(f"/api/payments/{payment_id}", headers=admin).json["status"] == "refunded"
        # The completed session cannot be confirmed again after the restart either.
        assert confirm(client, customer, placed["session"]["id"]).status_code == 409
    finally:
        restarted.close()
