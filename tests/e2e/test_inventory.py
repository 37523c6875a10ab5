"""Inventory through the API: who sets and reads stock, the 409 naming what is short."""

from __future__ import annotations

import pytest

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem

pytestmark = pytest.mark.e2e

MUG = "/api/sellers/s-1/inventory/mug"


def test_stock_is_set_by_the_seller_or_an_admin_and_a_short_cart_is_a_409(client, admin, make_key):
    seller = make_key("seller", "s-1")
    assert client.put(MUG, json={"on_hand": 2}, headers=seller).json == {
        "seller_id": "s-1",
        "sku": "mug",
        "on_hand": 2,
        "reserved": 0,
        "available": 2,
    }
    session = client.post("/api/checkout/sessions", json=checkout_body(), headers=admin)
    assert session.status_code == 201
    assert client.get(MUG, headers=make_key("auditor")).json["available"] == 0
    short = assert_problem(client.post("/api/checkout/sessions", json=checkout_body(), headers=admin), 409)
    assert short["insufficient_stock"] == [{"seller_id": "s-1", "sku": "mug", "requested": 2, "available": 0}]
    assert client.put(MUG, json={"on_hand": 4}, headers=admin).json["available"] == 2


def test_who_may_not_touch_stock_and_bad_levels(client, admin, make_key):
    assert_problem(client.put(MUG, json={"on_hand": 1}, headers=make_key("seller", "s-2")), 403)
    assert_problem(client.put(MUG, json={"on_hand": 1}, headers=make_key("auditor")), 403)
    assert_problem(client.put(MUG, json={"on_hand": 1}, headers=make_key("customer", "c-1")), 403)
    assert_problem(client.get(MUG, headers=make_key("seller", "s-2")), 403)
    assert_problem(client.get(MUG, headers=make_key("customer", "c-1")), 403)
    assert_problem(client.get(MUG, headers=admin), 404)
    for bad in (-1, 1.5, "3", None):
        assert_problem(client.put(MUG, json={"on_hand": bad}, headers=admin), 422)
    assert client.get("/api/sellers/s-1/inventory/tee", headers=make_key("seller", "s-1")).status_code == 404
