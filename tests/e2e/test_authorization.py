"""Roles and subjects, endpoint by endpoint: a customer acts only for itself, sellers read
no orders or payments, auditors read everything and write nothing, admins do everything."""

from __future__ import annotations

import pytest

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, confirm, create_session, event_count, place_order
from tests.integration.read_side_helpers import run_worker_burst

pytestmark = pytest.mark.e2e

both_backends = pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)


@pytest.fixture
def keys(make_key, admin):
    return {
        "c-1": make_key("customer", "c-1"),
        "c-2": make_key("customer", "c-2"),
        "s-1": make_key("seller", "s-1"),
        "s-2": make_key("seller", "s-2"),
        "auditor": make_key("auditor"),
        "admin": admin,
    }


@pytest.fixture
def world(client, keys):
    """c-2 owns an open session, a placed order (with its payment) and a declined payment."""
    open_session = create_session(client, keys["c-2"], customer_id="c-2")
    placed = place_order(client, keys["c-2"], checkout_body("c-2"))
    declined_session = create_session(client, keys["c-2"], customer_id="c-2")
    declined = confirm(client, keys["c-2"], declined_session["id"], "pm_card_chargeDeclined")
    assert declined.status_code == 402
    return {
        "open_session": open_session,
        "order": placed["order"],
        "payment": placed["payment"],
        "placed_session": placed["session"],
        "failed_payment_id": declined.json["payment_id"],
    }


# ---- POST /checkout/sessions ---------------------------------------------------------------


def test_create_session_customer_only_for_itself(client, keys):
    assert_problem(client.post("/api/checkout/sessions", json=checkout_body("c-2"), headers=keys["c-1"]), 403)
    own = client.post("/api/checkout/sessions", json=checkout_body("c-1"), headers=keys["c-1"])
    assert own.status_code == 201 and own.json["customer_id"] == "c-1"


def test_create_session_forbidden_to_sellers_and_auditors_allowed_to_admin(client, keys):
    for who in ("s-1", "s-2", "auditor"):
        for customer in ("c-1", "s-1"):
            assert_problem(
                client.post("/api/checkout/sessions", json=checkout_body(customer), headers=keys[who]), 403
            )
    for customer in ("c-1", "c-2", "anyone"):
        made = client.post("/api/checkout/sessions", json=checkout_body(customer), headers=keys["admin"])
        assert made.status_code == 201 and made.json["customer_id"] == customer


# ---- GET /checkout/sessions/{id} -----------------------------------------------------------


def test_get_session_isolation(client, keys, world):
    url = f"/api/checkout/sessions/{world['open_session']['id']}"
    assert_problem(client.get(url, headers=keys["c-1"]), 403)
    assert_problem(client.get(url, headers=keys["s-1"]), 403)
    assert_problem(client.get(url, headers=keys["s-2"]), 403)
    for who in ("c-2", "auditor", "admin"):
        response = client.get(url, headers=keys[who])
        assert response.status_code == 200, who
        assert response.json["id"] == world["open_session"]["id"] and response.json["customer_id"] == "c-2"


# ---- POST /checkout/sessions/{id}/confirm --------------------------------------------------


def test_confirm_isolation(client, keys, world, container):
    session_id = world["open_session"]["id"]
    before = event_count(container)
    for who in ("c-1", "s-1", "s-2", "auditor"):
        assert_problem(confirm(client, keys[who], session_id), 403)
        assert_problem(confirm(client, keys[who], session_id, "pm_card_chargeDeclined"), 403)
    assert event_count(container) == before
    assert client.get(f"/api/checkout/sessions/{session_id}", headers=keys["admin"]).json["status"] == "open"
    # The admin may confirm on the customer's behalf.
    done = confirm(client, keys["admin"], session_id)
    assert done.status_code == 201 and done.json["order"]["customer_id"] == "c-2"


def test_owner_confirms_own_session(client, keys, world):
    done = confirm(client, keys["c-2"], world["open_session"]["id"])
    assert done.status_code == 201 and done.json["order"]["customer_id"] == "c-2"


# ---- GET /orders/{id} and GET /payments/{id} -----------------------------------------------


@both_backends
def test_order_and_payment_reads(client, keys, world):
    urls = [
        f"/api/orders/{world['order']['id']}",
        f"/api/payments/{world['payment']['id']}",
        f"/api/payments/{world['failed_payment_id']}",
    ]
    for url in urls:
        for who in ("c-1", "s-1", "s-2"):
            assert_problem(client.get(url, headers=keys[who]), 403)
        for who in ("c-2", "auditor", "admin"):
            response = client.get(url, headers=keys[who])
            assert response.status_code == 200, (who, url)
            assert response.json["id"] == url.rsplit("/", 1)[1]
    # Everybody who may read sees the same thing.
    for url in urls:
        bodies = [client.get(url, headers=keys[who]).json for who in ("c-2", "auditor", "admin")]
        assert bodies[0] == bodies[1] == bodies[2]


def test_sellers_in_the_order_still_cannot_read_it(client, keys, world):
    """s-1 is paid from c-2's order, yet orders and payments are not for seller keys."""
    assert {s["seller_id"] for s in world["order"]["sellers"]} == {"s-1", "s-2"}
    assert_problem(client.get(f"/api/orders/{world['order']['id']}", headers=keys["s-1"]), 403)
    assert_problem(client.get(f"/api/payments/{world['payment']['id']}", headers=keys["s-1"]), 403)


# ---- POST /orders/{id}/refunds ---------------------------------------------------------------


def test_refund_admin_only(client, keys, world, container):
    url = f"/api/orders/{world['order']['id']}/refunds"
    before = event_count(container)
    for who in ("c-1", "c-2", "s-1", "s-2", "auditor"):
        assert_problem(client.post(url, json={"amount": 100}, headers=keys[who]), 403)
        assert_problem(client.post(url, json={"amount": 100, "seller_id": "s-1"}, headers=keys[who]), 403)
    assert event_count(container) == before
    refund = client.post(url, json={"amount": 100}, headers=keys["admin"])
    assert refund.status_code == 201 and refund.json["amount"] == 100


# ---- the auditor writes nothing at all --------------------------------------------------------


def test_auditor_reads_everything_and_every_write_route_is_403(app, client, keys, world, container):
    """Every route with a method other than GET, taken from the app's own url_map (so a new
    one is covered the day it is added), refuses an auditor key with and without an
    Idempotency-Key, and nothing is written."""
    auditor = keys["auditor"]
    for url in (
        f"/api/checkout/sessions/{world['open_session']['id']}",
        f"/api/checkout/sessions/{world['placed_session']['id']}",
        f"/api/orders/{world['order']['id']}",
        f"/api/payments/{world['payment']['id']}",
        f"/api/payments/{world['failed_payment_id']}",
    ):
        assert client.get(url, headers=auditor).status_code == 200, url
    values = {
        "session_id": world["open_session"]["id"],
        "order_id": world["order"]["id"],
        "seller_id": "s-1",
        "customer_id": "c-2",
    }
    bodies = {
        "checkout.create_session": checkout_body("c-2"),
        "checkout.confirm_session": {"payment_method": "pm_card_visa"},
        "orders.refund_order": {"amount": 1},
        "accounts.link_account": {"stripe_account_id": "acct_1Auditor"},
        "sellers.request_run": {"period_start": "2026-01-01", "period_end": "2026-01-31"},
    }
    # The Stripe webhook is authenticated by Stripe's signature, not by an API key.
    signed_not_keyed = {"webhooks.stripe_webhook", "webhooks.razorpay_webhook"}
    before = event_count(container)
    tried = set()
    for rule in app.url_map.iter_rules():
        # The API's routes (the console's forms are its session's, refused without a CSRF token:
        # tests/e2e/test_console.py).
        if rule.endpoint in signed_not_keyed or not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            url = rule.build({name: values.get(name, "x") for name in rule.arguments}, append_unknown=False)[
                1
            ]
            query = "?period_start=2026-01-01&period_end=2026-01-31" if "settlements" in url else ""
            body = bodies.get(rule.endpoint, {})
            for headers in (auditor, {**auditor, "Idempotency-Key": f"auditor-{method}-{url}"}):
                response = client.open(url + query, method=method, json=body, headers=headers)
                assert_problem(response, 403)
            tried.add(f"{method} {rule.rule}")
    assert {
        "POST /api/checkout/sessions",
        "POST /api/orders/<order_id>/refunds",
        "PUT /api/sellers/<seller_id>/account",
        "POST /api/sellers/<seller_id>/settlements",
        "POST /api/settlements/runs",
        "POST /api/audit/verifications",
    } <= tried, tried
    assert event_count(container) == before
    assert_problem(client.get("/api/sellers/s-1/account", headers=keys["admin"]), 404)  # never linked


# ---- the admin does everything -----------------------------------------------------------------


def test_admin_does_everything(client, keys, world):
    admin = keys["admin"]
    session = client.post("/api/checkout/sessions", json=checkout_body("c-9"), headers=admin)
    assert session.status_code == 201
    assert client.get(f"/api/checkout/sessions/{session.json['id']}", headers=admin).status_code == 200
    placed = confirm(client, admin, session.json["id"])
    assert placed.status_code == 201
    order, payment = placed.json["order"], placed.json["payment"]
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json == order
    assert client.get(f"/api/payments/{payment['id']}", headers=admin).json["status"] == "succeeded"
    assert client.get(f"/api/orders/{world['order']['id']}", headers=admin).status_code == 200
    refund = client.post(
        f"/api/orders/{order['id']}/refunds", json={"amount": order["total_amount"]}, headers=admin
    )
    assert refund.status_code == 201
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["status"] == "refunded"


# ---- GET /customers/{id}/orders and the sellers' own reads ------------------------------------


def test_customer_order_list_isolation(client, keys, world, container):
    """With the read models brought up to date by a real worker, each customer's list holds
    exactly its own orders (c-1's one, c-2's one); no key reads another customer's list."""
    mine = place_order(client, keys["c-1"], checkout_body("c-1"))["order"]
    run_worker_burst(container)

    assert_problem(client.get("/api/customers/c-2/orders", headers=keys["c-1"]), 403)
    assert_problem(client.get("/api/customers/c-1/orders", headers=keys["c-2"]), 403)
    for who in ("s-1", "s-2"):
        for customer in ("c-1", "c-2"):
            assert_problem(client.get(f"/api/customers/{customer}/orders", headers=keys[who]), 403)
    for customer, order in (("c-1", mine), ("c-2", world["order"])):
        for who in (customer, "auditor", "admin"):
            response = client.get(f"/api/customers/{customer}/orders", headers=keys[who])
            assert response.status_code == 200, (who, response.get_data(as_text=True))
            listed = response.json["orders"]
            assert [o["id"] for o in listed] == [order["id"]], (customer, who, listed)
            assert {o["customer_id"] for o in listed} == {customer}


def test_sellers_read_only_their_own_payouts(client, keys):
    assert client.get("/api/sellers/s-1/payouts", headers=keys["s-1"]).status_code == 200
    assert_problem(client.get("/api/sellers/s-2/payouts", headers=keys["s-1"]), 403)
    assert_problem(client.get("/api/sellers/s-1/payouts", headers=keys["c-1"]), 403)
    for who in ("auditor", "admin"):
        assert client.get("/api/sellers/s-1/payouts", headers=keys[who]).status_code == 200


# ---- unknown ids are 404 before anything is revealed; subjects never leak ------------------------


def test_customer_error_does_not_reveal_foreign_data(client, keys, world):
    response = client.get(f"/api/orders/{world['order']['id']}", headers=keys["c-1"])
    assert_problem(response, 403)
    text = response.get_data(as_text=True)
    assert "c-2" not in text and "total_amount" not in text and "s-1" not in text
