"""Fulfilment per seller part through the API: transitions and their 409s, who may do what,
cancellation refunding what is left of a part, the seller's order list, order-level status."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import assert_problem, place_order

pytestmark = pytest.mark.e2e


@pytest.fixture
def keys(make_key, admin):
    return {
        "admin": admin,
        "auditor": make_key("auditor"),
        "c-1": make_key("customer", "c-1"),
        "c-2": make_key("customer", "c-2"),
        "s-1": make_key("seller", "s-1"),
        "s-2": make_key("seller", "s-2"),
    }


@pytest.fixture
def order(client, keys, container):
    placed = place_order(client, keys["c-1"])["order"]
    container.read_models.catch_up()
    return placed


def part(order_id: str, seller_id: str, action: str) -> str:
    return f"/api/orders/{order_id}/sellers/{seller_id}/{action}"


SHIPMENT = {"carrier": "UPS", "tracking_number": "1Z999"}


def test_a_part_goes_placed_accepted_shipped_delivered(client, keys, order, container):
    oid = order["id"]
    assert order["fulfillment_status"] == "unfulfilled"
    assert [s["fulfillment_status"] for s in order["sellers"]] == ["placed", "placed"]
    accepted = client.post(part(oid, "s-1", "accept"), headers=keys["s-1"])
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["fulfillment_status"] == "accepted"
    shipped = client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"])
    assert shipped.status_code == 201, shipped.json
    assert shipped.json["fulfillment_status"] == "shipped"
    assert shipped.json["shipments"][0]["carrier"] == "UPS"
    assert shipped.json["shipments"][0]["tracking_number"] == "1Z999"
    view = client.get(f"/api/orders/{oid}", headers=keys["c-1"]).json
    assert view["fulfillment_status"] == "partially_fulfilled"
    delivered = client.post(part(oid, "s-1", "delivery"), headers=keys["s-1"])
    assert delivered.status_code == 200
    assert delivered.json["fulfillment_status"] == "delivered"
    assert delivered.json["delivered_at"].endswith("Z")
    # a placed part is accepted by shipping it
    assert client.post(part(oid, "s-2", "shipments"), json=SHIPMENT, headers=keys["admin"]).status_code == 201
    assert client.post(part(oid, "s-2", "delivery"), headers=keys["admin"]).status_code == 200
    assert client.get(f"/api/orders/{oid}", headers=keys["c-1"]).json["fulfillment_status"] == "fulfilled"
    container.read_models.catch_up()
    listed = client.get("/api/customers/c-1/orders", headers=keys["c-1"]).json["orders"][0]
    assert listed["fulfillment_status"] == "fulfilled"
    assert {s["fulfillment_status"] for s in listed["sellers"]} == {"delivered"}
    assert listed["sellers"][0]["shipments"][0]["shipped_at"].endswith("Z")


def test_disallowed_and_repeated_transitions_are_409s_naming_the_state(client, keys, order, container):
    oid = order["id"]
    body = assert_problem(client.post(part(oid, "s-1", "delivery"), headers=keys["s-1"]), 409)
    assert "placed" in body["detail"]
    assert client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]).status_code == 200
    body = assert_problem(client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]), 409)
    assert "accepted" in body["detail"]
    assert client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]).status_code == 201
    body = assert_problem(client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]), 409)
    assert "shipped" in body["detail"]
    body = assert_problem(client.post(part(oid, "s-1", "cancel"), json={}, headers=keys["s-1"]), 409)
    assert "shipped" in body["detail"]
    events_before = container.marketplace.recorder.max_notification_id()
    assert_problem(client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]), 409)
    assert container.marketplace.recorder.max_notification_id() == events_before


def test_same_idempotency_key_replays_the_first_answer(client, keys, order):
    oid = order["id"]
    headers = {**keys["s-1"], "Idempotency-Key": "accept-1"}
    first = client.post(part(oid, "s-1", "accept"), headers=headers)
    again = client.post(part(oid, "s-1", "accept"), headers=headers)
    assert (again.status_code, again.json) == (first.status_code, first.json)
    assert_problem(client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]), 409)


@pytest.mark.parametrize(
    ("who", "action"),
    [
        ("s-2", "accept"),
        ("c-1", "accept"),
        ("auditor", "accept"),
        ("s-2", "shipments"),
        ("c-1", "shipments"),
        ("auditor", "shipments"),
        ("s-2", "delivery"),
        ("c-1", "delivery"),
        ("auditor", "delivery"),
        ("s-2", "cancel"),
        ("c-2", "cancel"),
        ("auditor", "cancel"),
    ],
)
def test_who_may_never_act_on_a_part_gets_a_403(client, keys, order, container, who, action):
    before = container.marketplace.recorder.max_notification_id()
    body = SHIPMENT if action == "shipments" else {}
    assert_problem(client.post(part(order["id"], "s-1", action), json=body, headers=keys[who]), 403)
    assert container.marketplace.recorder.max_notification_id() == before


@pytest.mark.parametrize(("who", "status"), [("s-1", 403), ("auditor", 403), ("c-2", 403)])
def test_who_may_not_cancel_an_order_gets_a_403(client, keys, order, who, status):
    assert_problem(client.post(f"/api/orders/{order['id']}/cancel", json={}, headers=keys[who]), status)


def test_unknown_order_or_seller_is_a_404_and_bad_bodies_are_422s(client, keys, order):
    assert_problem(client.post(part(order["id"], "s-9", "accept"), headers=keys["admin"]), 404)
    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(client.post(part(missing, "s-1", "accept"), headers=keys["admin"]), 404)
    assert_problem(client.post(part(order["id"], "s-1", "shipments"), json={}, headers=keys["s-1"]), 422)
    bad = {"carrier": "UPS", "tracking_number": "1Z", "extra": 1}
    assert_problem(client.post(part(order["id"], "s-1", "shipments"), json=bad, headers=keys["s-1"]), 422)


def test_cancelling_a_part_refunds_what_is_left_of_it_at_its_own_rate(client, keys, order, container):
    oid = order["id"]
    refund = client.post(
        f"/api/orders/{oid}/refunds", json={"amount": 500, "seller_id": "s-1"}, headers=keys["admin"]
    )
    assert refund.status_code == 201
    cancelled = client.post(part(oid, "s-1", "cancel"), json={"reason": "out of stock"}, headers=keys["s-1"])
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["fulfillment_status"] == "cancelled"
    assert cancelled.json["refunded_amount"] == 2500
    allocation = container.marketplace._allocation(order["sellers"][0]["allocation_id"])
    assert allocation.refunded_amount == 2500
    assert allocation.platform_fee_reversed_amount == allocation.platform_fee_amount == 250
    assert allocation.payout_reversed_amount == 2250
    view = client.get(f"/api/orders/{oid}", headers=keys["c-1"]).json
    assert view["status"] == "partially_refunded"
    assert view["refunded_amount"] == 2500
    assert view["fulfillment_status"] == "unfulfilled"  # s-2 still placed
    assert len(client.get(f"/api/orders/{oid}", headers=keys["admin"]).json["sellers"]) == 2
    events = container.marketplace.recorder.max_notification_id()
    body = assert_problem(client.post(part(oid, "s-1", "cancel"), json={}, headers=keys["admin"]), 409)
    assert "cancelled" in body["detail"]
    assert_problem(client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]), 409)
    assert container.marketplace.recorder.max_notification_id() == events


def test_customer_cancels_only_while_placed_and_admin_until_delivered(client, keys, order):
    oid = order["id"]
    assert client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]).status_code == 200
    body = assert_problem(client.post(part(oid, "s-1", "cancel"), json={}, headers=keys["c-1"]), 409)
    assert "accepted" in body["detail"]
    assert client.post(part(oid, "s-2", "cancel"), json={}, headers=keys["c-1"]).status_code == 200
    assert client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]).status_code == 201
    returned = client.post(part(oid, "s-1", "cancel"), json={"reason": "return"}, headers=keys["admin"])
    assert returned.status_code == 200
    view = client.get(f"/api/orders/{oid}", headers=keys["c-1"]).json
    assert view["fulfillment_status"] == "cancelled"
    assert view["status"] == "refunded"


def test_cancelling_an_order_cancels_every_part_the_caller_may(client, keys, order):
    oid = order["id"]
    assert client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]).status_code == 200
    response = client.post(
        f"/api/orders/{oid}/cancel", json={"reason": "changed my mind"}, headers=keys["c-1"]
    )
    assert response.status_code == 200, response.json
    states = {s["seller_id"]: s["fulfillment_status"] for s in response.json["sellers"]}
    assert states == {"s-1": "accepted", "s-2": "cancelled"}
    assert_problem(client.post(f"/api/orders/{oid}/cancel", json={}, headers=keys["c-1"]), 409)
    everything = client.post(f"/api/orders/{oid}/cancel", json={}, headers=keys["admin"])
    assert everything.json["fulfillment_status"] == "cancelled"
    assert everything.json["status"] == "refunded"


def test_a_cancel_retried_after_a_crash_finishes_the_same_refund(client, keys, order, container, monkeypatch):
    oid = order["id"]
    marketplace = container.marketplace
    complete = marketplace.complete_part_cancellation

    def crash(*args, **kwargs):
        raise RuntimeError("process killed")

    refunds_at_provider = []
    refund = container.gateway.refund

    def counted(**kwargs):
        refunds_at_provider.append(kwargs["refund_id"])
        return refund(**kwargs)

    monkeypatch.setattr(container.gateway, "refund", counted)
    monkeypatch.setattr(marketplace, "complete_part_cancellation", crash)
    assert_problem(client.post(part(oid, "s-1", "cancel"), json={}, headers=keys["s-1"]), 500)
    monkeypatch.setattr(marketplace, "complete_part_cancellation", complete)
    # the part is neither shippable nor cancelled yet; a retry finishes the very same refund
    assert_problem(client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]), 409)
    assert client.post(part(oid, "s-1", "cancel"), json={}, headers=keys["s-1"]).status_code == 200
    order_now = marketplace.get_order(oid)
    assert [r["amount"] for r in order_now.refunds] == [2500]
    assert refunds_at_provider == [order_now.refunds[0]["id"]]


def test_the_seller_lists_its_parts_with_address_filter_and_pages(client, keys, container):
    orders = [place_order(client, keys["c-1"])["order"] for _ in range(3)]
    container.read_models.catch_up()
    assert (
        client.post(part(orders[0]["id"], "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]).status_code
        == 201
    )
    container.read_models.catch_up()
    listed = client.get("/api/sellers/s-1/orders", headers=keys["s-1"]).json
    assert [o["order_id"] for o in listed["orders"]] == [o["id"] for o in reversed(orders)]
    assert listed["has_more"] is False
    first = listed["orders"][0]
    assert first["delivery_address"]["city"] == "Springfield"
    assert first["items"][0]["sku"] == "mug"
    assert first["payout_amount"] == 2250
    placed = client.get("/api/sellers/s-1/orders?fulfillment_status=placed", headers=keys["s-1"]).json
    assert len(placed["orders"]) == 2
    shipped = client.get("/api/sellers/s-1/orders?fulfillment_status=shipped", headers=keys["admin"]).json
    assert [o["order_id"] for o in shipped["orders"]] == [orders[0]["id"]]
    page = client.get("/api/sellers/s-1/orders?limit=2", headers=keys["auditor"]).json
    assert len(page["orders"]) == 2 and page["has_more"] is True
    rest = client.get(f"/api/sellers/s-1/orders?limit=2&after={page['next_after']}", headers=keys["s-1"]).json
    assert [o["order_id"] for o in rest["orders"]] == [orders[0]["id"]]
    assert rest["has_more"] is False
    assert_problem(client.get("/api/sellers/s-1/orders", headers=keys["s-2"]), 403)
    assert_problem(client.get("/api/sellers/s-1/orders", headers=keys["c-1"]), 403)
    assert_problem(client.get("/api/sellers/s-1/orders?limit=1001", headers=keys["s-1"]), 422)
    assert_problem(client.get("/api/sellers/s-1/orders?after=xyz", headers=keys["s-1"]), 422)
    assert_problem(client.get("/api/sellers/s-1/orders?fulfillment_status=lost", headers=keys["s-1"]), 422)


def test_transitions_are_in_the_audit_log_with_causes_and_as_of(client, keys, order, container):
    oid = order["id"]
    assert client.post(part(oid, "s-1", "accept"), headers=keys["s-1"]).status_code == 200
    shipped = client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]).json
    fulfilment = container.marketplace.get_fulfilment(shipped["allocation_id"])
    stream = client.get(f"/api/audit/streams/{fulfilment.id}", headers=keys["auditor"]).json
    assert stream["stream_type"] == "Fulfilment"
    types = [e["type"] for e in stream["events"]]
    assert types == ["Fulfilment.Opened", "Fulfilment.Accepted", "Fulfilment.Shipped"]
    assert all(e["data"]["cause"]["actor_role"] == "seller:s-1" for e in stream["events"])
    as_of = stream["events"][1]["timestamp"]
    then = client.get(f"/api/audit/streams/{fulfilment.id}?as_of={as_of}", headers=keys["auditor"]).json
    assert then["state"]["status"] == "accepted"
    container.read_models.catch_up()
    logged = client.get("/api/audit/events?limit=1000", headers=keys["auditor"]).json["events"]
    assert "Fulfilment.Shipped" in {e["type"] for e in logged}


def test_shipments_deliveries_and_cancels_are_told_to_people_and_to_the_marketplace(
    client, keys, order, container
):
    from sqlalchemy import select

    from projections.tables import webhook_events_view

    oid = order["id"]
    assert client.post(part(oid, "s-1", "shipments"), json=SHIPMENT, headers=keys["s-1"]).status_code == 201
    assert client.post(part(oid, "s-1", "delivery"), headers=keys["s-1"]).status_code == 200
    cancelled = client.post(part(oid, "s-2", "cancel"), json={}, headers=keys["s-2"])
    assert cancelled.status_code == 200, cancelled.json
    container.read_models.catch_up()

    def kinds(path: str, headers: dict[str, str]) -> list[tuple[str, dict]]:
        listed = client.get(path, headers=headers).json["notifications"]
        return [(n["kind"], n["data"]) for n in listed]

    customer = dict(kinds("/api/customers/c-1/notifications", keys["c-1"]))
    assert (
        customer["order_shipped"]["carrier"] == "UPS"
        and customer["order_shipped"]["tracking_number"] == "1Z999"
    )
    assert customer["order_delivered"] == {"order_id": oid, "seller_id": "s-1"}
    assert customer["order_cancelled"]["seller_id"] == "s-2"
    seller = dict(kinds("/api/sellers/s-2/notifications", keys["s-2"]))
    assert seller["order_cancelled"]["order_id"] == oid
    assert "order_cancelled" not in dict(kinds("/api/sellers/s-1/notifications", keys["s-1"]))

    with container.engine.connect() as conn:
        events = conn.execute(
            select(webhook_events_view.c.type, webhook_events_view.c.data).order_by(
                webhook_events_view.c.position
            )
        ).all()
    types = [t for t, _ in events]
    assert types.count("fulfillment.updated") == 2  # shipped, delivered
    assert types.count("order.cancelled") == 1
