"""The console's actions through the Flask client: refund and cancel once however often the form
is sent, fulfilment, verification, keys, and the log's filters, paging and CSVs."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.console_helpers import CSRF_RE, bearer, build_world, csrf_of, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", console_insecure_cookies=True)


@pytest.fixture
def world(client, container):
    return build_world(client, container)


def test_an_admin_refunds_from_the_order_page_once_whatever_the_form_is_sent(
    client, container, world
) -> None:
    order_id = world.orders["c-1"]["id"]
    sign_in(client, world.keys["admin"])
    page = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
    assert "$44.99" in page  # 25.00 + 19.99
    review = client.post(
        f"/console/orders/{order_id}/refund/confirm",
        data={"csrf_token": csrf_of(page), "amount": "1000", "seller_id": "", "reason": "damaged"},
    )
    html = review.get_data(as_text=True)
    assert review.status_code == 200 and "Refund <strong>$10.00</strong>" in html
    form = dict(
        (name, value)
        for name, value in re.findall(r'name="([a-z_]+)" value="([^"]*)"', html)
        if name != "csrf_token"
    )
    form["csrf_token"] = csrf_of(html)
    assert len(form["idempotency_key"]) >= 16
    first = client.post(f"/console/orders/{order_id}/refund", data=form)
    again = client.post(f"/console/orders/{order_id}/refund", data=form)
    assert first.status_code == again.status_code == 303
    order = container.marketplace.get_order(order_id)
    assert order.refunded_amount == 1000 and len(order.refunds) == 1
    shown = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
    assert "Refund" in shown and "recorded" in shown and "$10.00" in shown


def test_an_admin_cancels_an_order_after_confirming(client, container, world) -> None:
    order_id = world.orders["c-2"]["id"]
    sign_in(client, world.keys["admin"])
    page = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
    review = client.post(
        f"/console/orders/{order_id}/cancel/confirm", data={"csrf_token": csrf_of(page), "reason": "fraud"}
    ).get_data(as_text=True)
    key = review.split('name="idempotency_key" value="')[1].split('"')[0]
    form = {"csrf_token": csrf_of(review), "idempotency_key": key, "reason": "fraud"}
    assert client.post(f"/console/orders/{order_id}/cancel", data=form).status_code == 303
    assert client.post(f"/console/orders/{order_id}/cancel", data=form).status_code == 303  # nothing twice
    order = container.marketplace.get_order(order_id)
    assert order.refunded_amount == 4200
    assert "Cancelled the parts of s-2" in client.get(f"/console/orders/{order_id}").get_data(as_text=True)


def test_a_seller_accepts_ships_and_delivers_its_part(client, container, world) -> None:
    order_id = world.orders["c-1"]["id"]
    sign_in(client, world.keys["s-2"])
    base = f"/console/sellers/s-2/orders/{order_id}"
    page = client.get("/console/sellers/s-2/orders").get_data(as_text=True)
    token = csrf_of(page)
    assert client.post(f"{base}/accept", data={"csrf_token": token}).status_code == 303
    shipped = client.post(
        f"{base}/ship", data={"csrf_token": token, "carrier": "UPS", "tracking_number": "1Z9"}
    )
    assert shipped.status_code == 303
    assert client.post(f"{base}/deliver", data={"csrf_token": token}).status_code == 303
    container.read_models.catch_up()
    listed = client.get("/console/sellers/s-2/orders?status=delivered").get_data(as_text=True)
    assert order_id[:8] in listed and "UPS 1Z9" in listed
    # delivering twice is the API's 409, shown as a page; s-2 may not act on s-1's part
    assert client.post(f"{base}/deliver", data={"csrf_token": token}).status_code == 409
    assert (
        client.post(f"/console/sellers/s-1/orders/{order_id}/accept", data={"csrf_token": token}).status_code
        == 403
    )


def test_an_admin_requests_a_verification_and_sees_its_verdict(client, container, world) -> None:
    sign_in(client, world.keys["admin"])
    chain = client.get("/console/audit/chain").get_data(as_text=True)
    response = client.post("/console/audit/verifications", data={"csrf_token": csrf_of(chain)})
    assert response.status_code == 303 and "/console/audit/verifications/" in response.headers["Location"]
    from tests.integration.read_side_helpers import run_worker_burst

    run_worker_burst(container)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "the books hold" in page
    assert "the books hold" not in client.get("/console/audit/chain").get_data(as_text=True)  # summary row
    assert "Events since" in client.get("/console/audit/chain").get_data(as_text=True)


def test_keys_are_created_shown_once_and_revoked(client, container, world) -> None:
    sign_in(client, world.keys["admin"])
    page = client.get("/console/keys").get_data(as_text=True)
    created = client.post(
        "/console/keys/new", data={"csrf_token": csrf_of(page), "role": "seller", "subject": "s-9"}
    )
    html = created.get_data(as_text=True)
    assert created.status_code == 201
    new_key = html.split('id="newkey" readonly value="')[1].split('"')[0]
    assert client.get("/api/sellers/s-9/payouts", headers=bearer(new_key)).status_code == 200
    assert new_key not in client.get("/console/keys").get_data(as_text=True)  # never again
    key_id = new_key[3:].split(".")[0]
    revoked = client.post(f"/console/keys/{key_id}/revoke", data={"csrf_token": csrf_of(html)})
    assert revoked.status_code == 303
    time.sleep(1.1)
    assert client.get("/api/sellers/s-9/payouts", headers=bearer(new_key)).status_code == 401


def test_the_log_filters_pages_and_downloads_as_csv(client, world) -> None:
    sign_in(client, world.keys["auditor"])
    placed = client.get("/console/audit/events?type=Order.Placed").get_data(as_text=True)
    assert placed.count("<td>Order.Placed</td>") == 2
    first = client.get("/console/audit/events?limit=3").get_data(as_text=True)
    assert 'rel="next"' in first and "after=3" in first
    stream = world.orders["c-1"]["id"]
    narrowed = client.get(f"/console/audit/events?stream={stream}").get_data(as_text=True)
    assert "Order.Placed" in narrowed and world.orders["c-2"]["id"][:8] not in narrowed
    csv = client.get(f"/console/audit/events.csv?stream={stream}")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]
    lines = csv.get_data(as_text=True).splitlines()
    assert lines[0].startswith("position,") and len(lines) >= 2 and all(stream in line for line in lines[1:])
    future = client.get("/console/audit/events?since=2999-01-01T00:00").get_data(as_text=True)
    assert "No events match." in future
    assert client.get("/console/audit/events?since=yesterday").status_code == 400


def test_forms_carry_the_sessions_token(client, world) -> None:
    sign_in(client, world.keys["admin"])
    page = client.get(f"/console/orders/{world.orders['c-1']['id']}").get_data(as_text=True)
    tokens = set(CSRF_RE.findall(page))
    assert len(tokens) == 1 and page.count('name="csrf_token"') == 3  # sign-out, refund, cancel


def test_every_view_downloads_as_csv_with_formulas_neutralised(client, world) -> None:
    order_id = world.orders["c-1"]["id"]
    sign_in(client, world.keys["admin"])
    page = client.get(f"/console/orders/{order_id}").get_data(as_text=True)
    review = client.post(
        f"/console/orders/{order_id}/refund/confirm",
        data={"csrf_token": csrf_of(page), "amount": "100", "reason": "=HYPERLINK(1)"},
    ).get_data(as_text=True)
    key = review.split('name="idempotency_key" value="')[1].split('"')[0]
    form = {"csrf_token": csrf_of(review), "idempotency_key": key, "amount": "100", "reason": "=HYPERLINK(1)"}
    assert client.post(f"/console/orders/{order_id}/refund", data=form).status_code == 303
    log = client.get(f"/console/audit/events.csv?stream={order_id}").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in log and ",=HYPERLINK" not in log
    stream = client.get(f"/console/audit/streams.csv?stream_id={order_id}")
    lines = stream.get_data(as_text=True).splitlines()
    assert stream.mimetype == "text/csv" and lines[0] == "version,type,timestamp,data"
    assert "Order.Placed" in lines[1] and "Order.RefundRecorded" in stream.get_data(as_text=True)
    verifications = client.get("/console/audit/verifications.csv").get_data(as_text=True)
    assert verifications.splitlines()[0].startswith("id,status,ok,head_position")
    balance = client.get("/console/audit/balances.csv?seller_id=s-2").get_data(as_text=True).splitlines()
    assert balance[0].startswith("kind,allocation_id,order_id") and len(balance) == 3  # two orders of s-2
    statement = client.get(f"/console/sellers/s-1/settlements/{world.settlement['id']}/statement.csv")
    assert statement.get_data(as_text=True).splitlines()[0].startswith("kind,")
    assert client.get("/console/audit/streams.csv?stream_id=nope").status_code == 404


def test_settlement_runs_and_their_results(client, container, world) -> None:
    from tests.e2e.console_helpers import PERIOD
    from tests.integration.read_side_helpers import run_worker_burst

    requested = client.post(
        "/api/settlements/runs",
        json={"period_start": PERIOD[0], "period_end": PERIOD[1]},
        headers={**bearer(world.keys["admin"]), "Idempotency-Key": "console-run"},
    )
    assert requested.status_code == 202, requested.get_data(as_text=True)
    run_worker_burst(container)
    sign_in(client, world.keys["auditor"])
    runs = client.get("/console/settlement-runs").get_data(as_text=True)
    run_id = requested.json["id"]
    assert f'href="/console/settlement-runs/{run_id}"' in runs
    page = client.get(f"/console/settlement-runs/{run_id}").get_data(as_text=True)
    assert "done" in page and "s-2" in page  # s-2 was still owed: this run paid it
    assert "/statement" in page
