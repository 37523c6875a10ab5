"""`flask --app wsgi reconcile`: Stripe's PaymentIntents, Refunds and Transfers against tally's
records; every planted difference is reported and the command exits 1, a clean one exits 0."""

from __future__ import annotations

from datetime import date

import pytest

from tests.e2e.helpers import confirm, create_session

pytestmark = pytest.mark.e2e

TODAY = date.today()


@pytest.fixture
def books(client, admin, make_key, stub) -> dict:
    """A little of everything: a paid order refunded twice (via tally and in the dashboard), a
    decline, a payment awaiting 3-D Secure, and a settlement paid by transfer."""
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    assert confirm(client, customer, session["id"], "pm_card_chargeDeclined").status_code == 402
    placed = confirm(client, customer, session["id"], "pm_card_visa").json
    waiting = confirm(
        client, customer, create_session(client, customer)["id"], "pm_card_authenticationRequired"
    )
    assert waiting.status_code == 202
    refund = client.post(f"/api/orders/{placed['order']['id']}/refunds", json={"amount": 500}, headers=admin)
    assert refund.status_code == 201
    reference = placed["payment"]["provider_reference"]
    stub.refund_from_dashboard(reference, 300)
    assert (
        stub.deliver(client, stub.event("charge.refunded", stub.charge_of(reference))).json["outcome"]
        == "applied"
    )
    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    settled = client.post(
        f"/api/sellers/s-1/settlements?period_start={TODAY.replace(day=1)}&period_end={TODAY}", headers=admin
    )
    assert settled.json["settlements"][0]["status"] == "paid"
    return {
        "placed": placed,
        "waiting": waiting.json["payment"],
        "settlement": settled.json["settlements"][0],
    }


def reconcile(app, *args: str):
    return app.test_cli_runner().invoke(args=["reconcile", *args])


def test_reconcile_is_clean_when_stripe_and_tally_agree(app, stub, books):
    result = reconcile(app, "--since", TODAY.isoformat())
    assert result.exit_code == 0, result.output
    assert "OK: Stripe and tally agree." in result.output
    assert "checked        3 payment intents" in result.output
    assert "checked        2 refunds" in result.output and "checked        1 transfers" in result.output
    assert reconcile(app).exit_code == 0  # the default window (30 days) holds the same


def test_reconcile_reports_every_planted_mismatch(app, client, stub, books):
    paid = books["placed"]["payment"]["provider_reference"]
    stub.intents[paid]["amount"] += 1  # amounts differ
    foreign = stub.handle(  # a payment someone else took on the same account
        "POST",
        "/v1/payment_intents",
        {
            "amount": "1200",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
        },
    )[1]
    assert (
        stub.deliver(client, stub.event("payment_intent.succeeded", foreign)).json["outcome"] == "unmatched"
    )
    unseen = stub.refund_from_dashboard(paid, 100)  # its webhook never arrived
    stub.intents[books["waiting"]["provider_reference"]]["status"] = "canceled"  # statuses differ
    stub.transfers.clear()  # tally paid a settlement Stripe knows nothing of

    result = reconcile(app, "--since", TODAY.isoformat())
    assert result.exit_code == 1, result.output
    report = result.output
    assert "MISMATCH: 6 difference(s)" in report
    assert f"PaymentIntent {paid} (succeeded, 4500 USD): amount differs" in report
    assert f"PaymentIntent {foreign['id']} (succeeded, 1200 USD): no payment in tally" in report
    assert f"PaymentIntent {books['waiting']['provider_reference']} (canceled" in report
    assert "status differs, tally's payment" in report
    assert f"Refund {unseen['id']} (succeeded, 100) of {paid}: no refund in tally" in report
    settlement = books["settlement"]
    assert (
        f"transfer {settlement['provider_reference']} ({settlement['total_payout_amount']} USD) of "
        f"settlement {settlement['id']}: missing at Stripe"
    ) in report
    assert "(payment_intent.succeeded) is unmatched: no payment for PaymentIntent" in report


def test_reconcile_refuses_the_mock_provider_and_bad_dates(make_settings, stub):
    from app import create_app
    from app.bootstrap import Container

    container = Container(make_settings("pg"))
    try:
        result = create_app(container=container).test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 2 and "PAYMENT_PROVIDER=stripe" in result.output
        result = (
            create_app(container=container).test_cli_runner().invoke(args=["reconcile", "--since", "May"])
        )
        assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
    finally:
        container.close()


def test_reconcile_exits_3_and_compares_nothing_when_stripe_answers_only_errors(app, stub, books):
    for path in ("/v1/payment_intents", "/v1/refunds", "/v1/transfers"):
        stub.fail_next("GET", path, status=503, times=10)  # the SDK's retries included
    result = reconcile(app, "--since", TODAY.isoformat())
    assert result.exit_code == 3, result.output  # could not run
    assert "Stripe is unavailable" in result.output and "nothing was compared" in result.output
    assert "OK:" not in result.output and "MISMATCH" not in result.output


def test_reconcile_exits_3_when_stripe_cannot_be_reached(make_settings, stub):
    import socket

    from app import create_app
    from app.bootstrap import Container
    from tests.stripe_stub import stripe_changes

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    container = Container(make_settings("pg", **stripe_changes(stub, stripe_api_base=closed)))
    try:
        result = create_app(container=container).test_cli_runner().invoke(args=["reconcile"])
        assert result.exit_code == 3, result.output
        assert "Stripe is unavailable" in result.output and "OK:" not in result.output
    finally:
        container.close()
