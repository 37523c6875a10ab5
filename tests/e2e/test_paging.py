"""Lists and paging: limit/after, has_more and next_after on every list this service keeps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e.helpers import assert_problem, place_order

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date().isoformat()


def walk(client, headers, path: str, key: str, limit: int) -> list[list[dict]]:
    pages, after = [], None
    while True:
        query = f"limit={limit}" + (f"&after={after}" if after else "")
        body = client.get(f"{path}?{query}", headers=headers).json
        pages.append(body[key])
        assert body["next_after"] is not None or not body[key]
        if not body["has_more"]:
            empty = client.get(f"{path}?limit={limit}&after={body['next_after']}", headers=headers).json
            assert empty[key] == [] and empty["has_more"] is False
            assert empty["next_after"] == body["next_after"]  # an empty page gives the after back
            return pages
        after = body["next_after"]


def test_customer_orders_invoices_and_settlements_page_without_gaps_or_repeats(client, admin, container):
    orders = [place_order(client, admin)["order"]["id"] for _ in range(5)]
    container.read_models.catch_up()
    pages = walk(client, admin, "/api/customers/c-1/orders", "orders", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [o["id"] for p in pages for o in p] == list(reversed(orders))
    invoices = walk(client, admin, "/api/sellers/s-1/invoices", "invoices", 2)
    numbers = [i["number"] for p in invoices for i in p]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 5
    for day in ("01", "02", "03"):
        url = f"/api/sellers/s-1/settlements?period_start=2000-01-{day}&period_end={TODAY}"
        client.post(url, headers=admin)
        place_order(client, admin)
    container.read_models.catch_up()
    settlements = walk(client, admin, "/api/sellers/s-1/settlements", "settlements", 1)
    ids = [s["id"] for p in settlements for s in p]
    assert len(ids) == len(set(ids)) == 3
    events = client.get("/api/audit/events?limit=5", headers=admin).json
    assert events["has_more"] is True and events["next_after"] == 5


@pytest.mark.parametrize(
    "path",
    [
        "/api/customers/c-1/orders",
        "/api/sellers/s-1/invoices",
        "/api/sellers/s-1/settlements",
        "/api/sellers/s-1/orders",
        "/api/audit/events",
    ],
)
def test_a_limit_over_1000_or_a_foreign_cursor_is_a_422(client, admin, path):
    assert_problem(client.get(f"{path}?limit=1001", headers=admin), 422)
    assert_problem(client.get(f"{path}?after=not-a-cursor", headers=admin), 422)
    assert client.get(f"{path}?limit=1000", headers=admin).status_code == 200
