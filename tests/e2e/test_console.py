"""The web console through the Flask client: sign-in per API.md ("Console and documents"), the
session (expiry, revocation, sign-out), CSRF on every form, each role's tenancy on each page,
the key never shown back, and the actions (refund, cancel, fulfilment, verification, keys)."""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from typing import Any

import pytest

from app.auth import revoke_key
from tests.e2e.console_helpers import build_world, csrf_of, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", console_insecure_cookies=True)


@pytest.fixture
def world(client, container):
    return build_world(client, container)


def session_of(client: Any) -> dict[str, Any]:
    """The console cookie's payload (signed, not encrypted: readable, so it must hold no secret)."""
    cookie = client.get_cookie("tally_console", path="/console")
    assert cookie is not None
    compressed = cookie.value.startswith(".")
    payload = cookie.value.lstrip(".").split(".")[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(zlib.decompress(data) if compressed else data)


def console_rules(app, method: str) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.") and method in r.methods]


def url_of(rule: Any, world: Any = None) -> str:
    """A concrete URL for a console rule (ids from the world where it has them)."""
    values = {
        "order_id": world.orders["c-1"]["id"] if world else "00000000-0000-0000-0000-000000000000",
        "seller_id": "s-1",
        "customer_id": "c-1",
        "settlement_id": world.settlement["id"] if world else "x",
        "verification_id": "00000000-0000-0000-0000-000000000000",
        "run_id": "00000000-0000-0000-0000-000000000000",
        "invoice_id": "x",
        "credit_note_id": "x",
        "key_id": world.key_ids["c-2"] if world else "x",
        "filename": "console.css",
    }
    path = rule.rule
    for name in rule.arguments:
        path = path.replace(f"<{name}>", values[name]).replace(f"<path:{name}>", values[name])
    return path


# ---- sign-in, the cookie, sign-out ------------------------------------------------------------


def test_the_sign_in_form_has_a_key_field_and_a_hidden_csrf_token(client) -> None:
    page = client.get("/console/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert 'name="key"' in html and 'type="hidden" name="csrf_token"' in html
    assert 'method="post"' in html


def test_a_good_key_signs_in_with_a_strict_httponly_cookie_and_goes_to_the_console(client, world) -> None:
    response = sign_in(client, world.keys["admin"])
    assert response.status_code == 302 and response.headers["Location"].endswith("/console/")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("tally_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # CONSOLE_INSECURE_COOKIES=1 in this test
    assert client.get("/console/").status_code == 200


def test_the_cookie_is_secure_unless_insecure_cookies_are_asked_for(make_settings) -> None:
    from app import create_app
    from app.bootstrap import Container

    container = Container(make_settings("pg"))
    try:
        client = create_app(container=container).test_client()
        response = client.get("/console/login", base_url="https://localhost")
        cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("tally_console="))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        container.close()


def test_a_bad_key_shows_the_form_again_with_an_error_and_401(client, world) -> None:
    for key in ("tk_nope", world.keys["admin"][:-2] + "xx", ""):
        response = sign_in(client, key)
        html = response.get_data(as_text=True)
        assert response.status_code == 401
        assert "That key is not valid." in html and 'name="key"' in html
        assert client.get("/console/").status_code == 302


def test_sign_in_without_a_valid_csrf_token_is_a_400(client, world) -> None:
    client.get("/console/login")
    assert client.post("/console/login", data={"key": world.keys["admin"]}).status_code == 400
    assert (
        client.post("/console/login", data={"key": world.keys["admin"], "csrf_token": "forged"}).status_code
        == 400
    )
    assert client.get("/console/").status_code == 302  # not signed in


def test_a_key_in_the_query_string_signs_nobody_in(client, world) -> None:
    client.get(f"/console/login?key={world.keys['admin']}")
    assert client.get("/console/").status_code == 302


def test_every_page_without_a_session_redirects_to_the_sign_in(app, client, world) -> None:
    for rule in console_rules(app, "GET"):
        if rule.endpoint in ("console.login", "console.static"):
            continue
        response = client.get(url_of(rule, world))
        assert response.status_code == 302, rule.rule
        assert response.headers["Location"].startswith("/console/login"), rule.rule


def test_sign_out_ends_the_session(client, world) -> None:
    sign_in(client, world.keys["auditor"])
    page = client.get("/console/audit/events").get_data(as_text=True)
    response = client.post("/console/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/console/login")
    assert client.get("/console/audit/events").status_code == 302


def test_the_session_expires(make_settings, world_factory) -> None:
    client, world = world_factory(console_session_seconds=1)
    sign_in(client, world.keys["admin"])
    assert client.get("/console/").status_code == 200
    time.sleep(1.2)
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert "session ended" in client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.fixture
def world_factory(make_settings):
    from app import create_app
    from app.bootstrap import Container

    containers: list[Container] = []

    def make(**changes: Any) -> tuple[Any, Any]:
        container = Container(make_settings("pg", console_insecure_cookies=True, **changes))
        containers.append(container)
        client = create_app(container=container).test_client()
        return client, build_world(client, container)

    yield make
    for container in containers:
        container.close()


def test_a_revoked_key_ends_its_session(client, container, world) -> None:
    sign_in(client, world.keys["s-1"])
    assert client.get("/console/sellers/s-1/orders").status_code == 200
    revoke_key(container.engine, world.key_ids["s-1"])
    time.sleep(1.1)  # every process refuses a revoked key within a second
    assert client.get("/console/sellers/s-1/orders").status_code == 302


# ---- CSRF on every form -----------------------------------------------------------------------


def test_every_form_without_or_with_a_wrong_csrf_token_is_a_400_and_changes_nothing(
    app, client, container, world
) -> None:
    sign_in(client, world.keys["admin"])
    events = container.marketplace.recorder.max_notification_id()
    posts = console_rules(app, "POST")
    assert {r.endpoint for r in posts} >= {
        "console.login",
        "console.logout",
        "console.confirm_refund",
        "console.refund",
        "console.confirm_cancel",
        "console.cancel",
        "console.request_verification",
        "console.create_key",
        "console.revoke_key",
        "console.accept",
        "console.ship",
        "console.deliver",
    }
    form = {
        "amount": "100",
        "idempotency_key": "k" * 16,
        "role": "admin",
        "carrier": "UPS",
        "tracking_number": "1",
    }
    for rule in posts:
        for token in ({}, {"csrf_token": "forged"}):
            response = client.post(url_of(rule, world), data={**form, **token})
            assert response.status_code == 400, (rule.rule, token, response.status_code)
    assert container.marketplace.recorder.max_notification_id() == events
    assert client.get("/console/").status_code == 200  # still signed in: sign-out needed its token too
    keys = client.get("/console/keys").get_data(as_text=True)
    assert keys.count('<td class="mono">') == 6  # no key was made, none revoked
    assert "Revoke" in keys


# ---- tenancy ----------------------------------------------------------------------------------

ROLE_PAGES = {
    # page -> roles that may open it (every other role gets a 403)
    "/console/audit/events": {"admin", "auditor"},
    "/console/audit/events.csv": {"admin", "auditor"},
    "/console/audit/chain": {"admin", "auditor"},
    "/console/audit/streams": {"admin", "auditor"},
    "/console/audit/balances?seller_id=s-1": {"admin", "auditor"},
    "/console/audit/balances.csv?seller_id=s-1": {"admin", "auditor"},
    "/console/orders": {"admin", "auditor"},
    "/console/settlement-runs": {"admin", "auditor"},
    "/console/operations": {"admin"},
    "/console/keys": {"admin"},
    "ORDER c-1": {"admin", "auditor", "c-1"},
    "ORDER c-2": {"admin", "auditor", "c-2"},
    "/console/customers/c-1/orders": {"admin", "auditor", "c-1"},
    "/console/customers/c-2/orders": {"admin", "auditor", "c-2"},
    "/console/sellers/s-1/orders": {"admin", "auditor", "s-1"},
    "/console/sellers/s-2/orders": {"admin", "auditor", "s-2"},
    "/console/sellers/s-1/payouts": {"admin", "auditor", "s-1"},
    "/console/sellers/s-2/payouts": {"admin", "auditor", "s-2"},
    "/console/sellers/s-1/settlements": {"admin", "auditor", "s-1"},
    "/console/sellers/s-2/settlements": {"admin", "auditor", "s-2"},
    "STATEMENT s-1": {"admin", "auditor", "s-1"},
    "STATEMENT CSV s-1": {"admin", "auditor", "s-1"},
    "/console/sellers/s-1/invoices": {"admin", "auditor", "s-1"},
    "/console/sellers/s-2/invoices": {"admin", "auditor", "s-2"},
}


def _page(name: str, world: Any) -> str:
    statement = f"/console/sellers/s-1/settlements/{world.settlement['id']}/statement"
    return {
        "ORDER c-1": f"/console/orders/{world.orders['c-1']['id']}",
        "ORDER c-2": f"/console/orders/{world.orders['c-2']['id']}",
        "STATEMENT s-1": statement,
        "STATEMENT CSV s-1": statement + ".csv",
    }.get(name, name)


@pytest.mark.parametrize("who", ["admin", "auditor", "c-1", "c-2", "s-1", "s-2"])
def test_each_role_opens_exactly_its_own_pages(app, world, who) -> None:
    client = app.test_client()
    sign_in(client, world.keys[who])
    for name, allowed in ROLE_PAGES.items():
        response = client.get(_page(name, world))
        expected = 200 if who in allowed else 403
        assert response.status_code == expected, (who, name, response.status_code)
        if expected == 403:
            assert world.orders["c-2"]["id"] not in response.get_data(as_text=True)


def test_a_seller_sees_only_its_own_orders_and_documents(app, world) -> None:
    client = app.test_client()
    sign_in(client, world.keys["s-1"])
    assert client.get("/console/").headers["Location"].endswith("/console/sellers/s-1/orders")
    orders = client.get("/console/sellers/s-1/orders").get_data(as_text=True)
    assert world.orders["c-1"]["id"][:8] in orders and world.orders["c-2"]["id"][:8] not in orders
    invoices = client.get("/console/sellers/s-2/invoices")
    assert invoices.status_code == 403
    own = client.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    invoice_id = own.split("/console/invoices/")[1].split('"')[0]
    assert client.get(f"/console/invoices/{invoice_id}").status_code == 200
    other = app.test_client()
    sign_in(other, world.keys["s-2"])
    assert other.get(f"/console/invoices/{invoice_id}").status_code == 403
    payouts = client.get("/console/sellers/s-1/payouts").get_data(as_text=True)
    assert "<svg" in payouts or "Nothing owed" in payouts


def test_a_customer_sees_only_its_own_orders(app, world) -> None:
    client = app.test_client()
    sign_in(client, world.keys["c-2"])
    assert client.get("/console/").headers["Location"].endswith("/console/customers/c-2/orders")
    mine = client.get("/console/customers/c-2/orders").get_data(as_text=True)
    assert world.orders["c-2"]["id"][:8] in mine and world.orders["c-1"]["id"][:8] not in mine
    assert "€42.00" in mine  # EUR in its own format, right-aligned
    assert '<td class="num">€42.00</td>' in mine
    # no refund or cancel form for a customer, and none of the admin's actions work for it
    order = client.get(f"/console/orders/{world.orders['c-2']['id']}").get_data(as_text=True)
    assert "Review refund" not in order
    token = csrf_of(order)
    refused = client.post(
        f"/console/orders/{world.orders['c-2']['id']}/refund",
        data={"csrf_token": token, "amount": "1", "idempotency_key": "k" * 16},
    )
    assert refused.status_code == 403


def test_an_auditor_reads_everything_and_changes_nothing(app, container, world) -> None:
    client = app.test_client()
    sign_in(client, world.keys["auditor"])
    chain = client.get("/console/audit/chain").get_data(as_text=True)
    assert "Verify the books now" not in chain
    token = csrf_of(chain)
    events = container.marketplace.recorder.max_notification_id()
    assert client.post("/console/audit/verifications", data={"csrf_token": token}).status_code == 403
    order_id = world.orders["c-1"]["id"]
    data = {"csrf_token": token, "amount": "100", "idempotency_key": "k" * 16}
    assert client.post(f"/console/orders/{order_id}/refund", data=data).status_code == 403
    assert client.post(f"/console/sellers/s-1/orders/{order_id}/accept", data=data).status_code == 403
    assert container.marketplace.recorder.max_notification_id() == events


# ---- the key is never shown back -------------------------------------------------------------


def test_the_key_never_appears_in_a_page_a_url_the_cookie_or_the_logs(app, world, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key = world.keys["admin"]
    secret = key.split(".", 1)[1]
    client = app.test_client()
    signed = sign_in(client, key)
    assert secret not in signed.headers.get("Location", "")
    stored = session_of(client)
    assert stored["key_id"] == world.key_ids["admin"] and secret not in json.dumps(stored)
    for rule in console_rules(app, "GET"):
        response = client.get(url_of(rule, world))
        assert secret.encode() not in response.data, rule.rule
        assert secret not in response.headers.get("Location", ""), rule.rule
    assert secret not in caplog.text


def test_without_a_signing_key_the_console_says_so_and_the_api_is_untouched(app, client, world) -> None:
    from pathlib import Path

    from app.console_web import ConsoleSessions

    # CONSOLE_SECRET_KEY unset in an image whose var/ is read-only: no development key can be made
    app.session_interface = ConsoleSessions(None, Path("/proc/no-such-dir/console-secret.key"))
    page = client.get("/console/login")
    assert page.status_code == 503 and "CONSOLE_SECRET_KEY" in page.get_data(as_text=True)
    api = client.get("/api/sellers/s-1/payouts", headers={"Authorization": f"Bearer {world.keys['s-1']}"})
    assert api.status_code == 200 and "Set-Cookie" not in api.headers


def test_the_api_never_sets_a_cookie(client, world) -> None:
    sign_in(client, world.keys["admin"])
    api = client.get("/api/audit/head", headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert api.status_code == 200 and "Set-Cookie" not in api.headers


def test_a_cursor_that_is_not_one_is_a_400_page(client, world) -> None:
    sign_in(client, world.keys["admin"])
    for url in (
        "/console/operations?after=garbage",
        "/console/orders?after=x",
        "/console/audit/events?after=-1",
        "/console/sellers/s-1/orders?after=x",
        "/console/sellers/s-1/settlements?after=x",
        "/console/customers/c-1/orders?after=x",
        "/console/sellers/s-1/invoices?after=x",
    ):
        response = client.get(url)
        assert response.status_code == 400, (url, response.status_code)
        assert "text/html" in response.content_type
