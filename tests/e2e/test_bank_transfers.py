"""Bank transfers (BANK_TRANSFER_ENABLED=1): instructions with a TLY- reference, receipts an admin
records until they cover the amount (then the order is placed), overpayment kept and shown, expiry
after BANK_TRANSFER_TTL_DAYS, refunds pending_manual until an admin marks them paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.commands.janitor import repair_in_flight
from domain.bank_transfer import is_valid_reference, reference_for
from tests.e2e.helpers import assert_problem, assert_validation_problem, create_session, event_count
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", bank_transfer_enabled=True, bank_transfer_ttl_days=7)


@pytest.fixture
def customer(make_key):
    return make_key("customer", "c-1")


def start(client, customer) -> tuple[dict, dict]:
    session = create_session(client, customer)
    response = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm",
        json={"payment_method": "bank_transfer"},
        headers=customer,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return session, response.json["payment"]


def receipt(client, admin, payment_id: str, amount: int, bank_reference: str):
    body = {"amount": amount, "bank_reference": bank_reference, "received_at": "2026-11-27T05:16:21Z"}
    return client.post(f"/api/payments/{payment_id}/receipts", json=body, headers=admin)


def verified(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_the_confirm_answers_instructions_with_a_checked_reference(client, customer):
    session, payment = start(client, customer)
    action = payment["next_action"]
    assert action["type"] == "bank_transfer_instructions"
    assert action["reference"] == payment["provider_reference"] == reference_for(payment["id"])
    assert is_valid_reference(action["reference"]) and action["reference"].startswith("TLY-")
    assert (action["amount"], action["currency"]) == (session["total_amount"], "USD")
    expires = datetime.fromisoformat(action["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert payment["status"] == "requires_action" and payment["received_amount"] == 0


def test_a_mistyped_reference_fails_its_check_character():
    reference = reference_for("some-payment")
    body = reference[4:13]
    swapped = body[1] + body[0] + body[2:] if body[0] != body[1] else body[::-1]
    assert not is_valid_reference(f"TLY-{swapped}-{reference[-1]}")
    assert is_valid_reference(reference.lower())


def test_partial_receipts_accumulate_and_the_order_is_placed_when_they_cover_the_amount(
    app, client, customer, admin, container
):
    session, payment = start(client, customer)
    partial = receipt(client, admin, payment["id"], 2000, "BANK-1")
    assert partial.status_code == 201, partial.get_data(as_text=True)
    assert partial.json["order"] is None and partial.json["payment"]["received_amount"] == 2000
    assert partial.json["payment"]["status"] == "requires_action"
    assert events_named(container, "Order.Placed") == []

    full = receipt(client, admin, payment["id"], session["total_amount"] - 2000, "BANK-2")
    assert full.status_code == 201 and full.json["order"]["status"] == "paid"
    assert full.json["payment"]["status"] == "succeeded" and full.json["payment"]["overpaid_amount"] == 0
    assert (
        client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"
    )
    before = event_count(container)
    again = receipt(client, admin, payment["id"], 999, "BANK-2")  # the same bank credit recorded twice
    assert again.status_code == 201 and again.json["payment"]["received_amount"] == session["total_amount"]
    assert event_count(container) == before
    catch_up_read_models(container)
    verified(app)


def test_an_overpayment_is_kept_and_shown(app, client, customer, admin):
    session, payment = start(client, customer)
    over = receipt(client, admin, payment["id"], session["total_amount"] + 500, "BANK-9")
    assert over.json["payment"]["status"] == "succeeded" and over.json["payment"]["overpaid_amount"] == 500
    shown = client.get(f"/api/payments/{payment['id']}", headers=customer).json
    assert shown["overpaid_amount"] == 500 and shown["received_amount"] == session["total_amount"] + 500
    verified(app)


def test_an_uncovered_instruction_expires_and_fails_the_payment(app, client, customer, admin, container):
    _, payment = start(client, customer)
    receipt(client, admin, payment["id"], 100, "BANK-1")
    assert repair_in_flight(container, datetime.now(UTC) + timedelta(days=6)).failed == []
    report = repair_in_flight(container, datetime.now(UTC) + timedelta(days=7, minutes=1))
    assert report.failed == [payment["id"]]
    shown = client.get(f"/api/payments/{payment['id']}", headers=admin).json
    assert shown["status"] == "failed" and shown["failure_reason"] == "expired"
    assert_problem(receipt(client, admin, payment["id"], 100, "BANK-late"), 409)
    assert events_named(container, "Order.Placed") == []
    verified(app)


def test_the_janitor_leaves_a_waiting_bank_transfer_alone(client, customer, container):
    _, payment = start(client, customer)
    report = repair_in_flight(container, datetime.now(UTC) + timedelta(hours=1))
    assert report.failed == [] and payment["id"] in report.awaiting_action


def test_a_refund_waits_for_an_admin_and_is_marked_paid(app, client, customer, admin, container):
    session, payment = start(client, customer)
    order = receipt(client, admin, payment["id"], session["total_amount"], "BANK-1").json["order"]
    refunded = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 1000}, headers=admin)
    assert refunded.status_code == 201 and refunded.json["status"] == "pending_manual"
    paid = client.post(
        f"/api/refunds/{refunded.json['id']}/paid", json={"bank_reference": "OUT-1"}, headers=admin
    )
    assert paid.status_code == 200, paid.get_data(as_text=True)
    assert paid.json["status"] == "paid" and paid.json["paid_reference"] == "OUT-1"
    again = client.post(f"/api/refunds/{refunded.json['id']}/paid", json={}, headers=admin)
    assert again.status_code == 200 and again.json["status"] == "paid"
    assert len(events_named(container, "Order.RefundPaidManually")) == 1
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 1000
    assert_problem(
        client.post("/api/refunds/00000000-0000-0000-0000-000000000000/paid", json={}, headers=admin), 404
    )
    catch_up_read_models(container)
    verified(app)


def test_the_new_endpoints_are_for_admins_only(client, customer, make_key):
    _, payment = start(client, customer)
    body = {"amount": 1, "bank_reference": "B", "received_at": "2026-11-27T05:16:21Z"}
    for who in (customer, make_key("auditor"), make_key("seller", "s-1")):
        assert_problem(client.post(f"/api/payments/{payment['id']}/receipts", json=body, headers=who), 403)
        assert_problem(client.post("/api/refunds/x/paid", json={}, headers=who), 403)
    assert_problem(client.post(f"/api/payments/{payment['id']}/receipts", json=body), 401)


def test_a_receipt_needs_a_positive_amount_and_a_reference(client, customer, admin):
    _, payment = start(client, customer)
    bad = {"amount": 0, "received_at": "2026-11-27T05:16:21Z"}
    assert_validation_problem(
        client.post(f"/api/payments/{payment['id']}/receipts", json=bad, headers=admin),
        "amount",
        "bank_reference",
    )


def test_bank_transfers_are_refused_unless_enabled(make_settings):
    from app import create_app
    from app.auth import create_key
    from app.bootstrap import Container

    container = Container(make_settings("pg"))
    try:
        client = create_app(container=container).test_client()
        _, key = create_key(container.engine, "customer", "c-1")
        headers = {"Authorization": f"Bearer {key}"}
        session = create_session(client, headers)
        refused = client.post(
            f"/api/checkout/sessions/{session['id']}/confirm",
            json={"payment_method": "bank_transfer"},
            headers=headers,
        )
        assert_validation_problem(refused, "payment_method")
    finally:
        container.close()


def test_an_admin_finds_the_payment_by_the_reference_on_the_bank_statement(client, customer, admin, make_key):
    _, payment = start(client, customer)
    reference = payment["provider_reference"]
    for typed in (reference, reference.lower().replace("-", ""), " ".join(reference.split("-"))):
        found = client.get(f"/api/bank-transfers/{typed}", headers=admin)
        assert found.status_code == 200 and found.json["id"] == payment["id"], typed
    mistyped = reference[:-1] + ("0" if reference[-1] != "0" else "1")
    assert_problem(client.get(f"/api/bank-transfers/{mistyped}", headers=admin), 404)
    assert client.get(f"/api/bank-transfers/{reference}", headers=make_key("auditor")).status_code == 200
    assert_problem(client.get(f"/api/bank-transfers/{reference}", headers=customer), 403)


def test_a_card_refund_cannot_be_marked_paid_by_hand(client, customer, admin):
    from tests.e2e.helpers import confirm

    paid = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    refund = client.post(
        f"/api/orders/{paid.json['order']['id']}/refunds", json={"amount": 100}, headers=admin
    )
    assert refund.json["status"] == "succeeded"
    assert_problem(client.post(f"/api/refunds/{refund.json['id']}/paid", json={}, headers=admin), 409)
