"""Razorpay webhook bodies into provider-neutral facts: what each event type means to tally, and
signed bodies that are malformed become facts with what could be read (never an exception)."""

from __future__ import annotations

import json

import pytest

from app.adapters.providers.razorpay_events import (
    WebhookSignatureError,
    check_webhook,
    signature,
    translate,
)
from domain.ports import NotUsed, PaymentFailed, PaymentSucceeded, RefundChanged, RefundsReported

pytestmark = pytest.mark.unit

PAYMENT = {"id": "pay_1", "entity": "payment", "order_id": "order_1", "amount": 4499, "currency": "INR"}


def event(kind: str, **entities: dict) -> dict:
    return {"entity": "event", "event": kind, "payload": {k: {"entity": v} for k, v in entities.items()}}


def test_a_captured_payment_is_a_success_of_its_order_with_the_amount_taken():
    fact = translate(event("payment.captured", payment=PAYMENT), "evt_1", b"{}").fact
    assert fact == PaymentSucceeded("order_1", None, 4499, "INR")


def test_order_paid_echoes_our_payment_id_as_the_receipt():
    order = {"id": "order_1", "receipt": "our-payment", "amount": 4499}
    fact = translate(event("order.paid", payment=PAYMENT, order=order), "evt_1", b"{}").fact
    assert isinstance(fact, PaymentSucceeded) and (fact.provider_reference, fact.payment_id) == (
        "order_1",
        "our-payment",
    )


def test_a_failed_payment_carries_razorpays_reason():
    failed = {
        **PAYMENT,
        "status": "failed",
        "error_code": "BAD_REQUEST_ERROR",
        "error_reason": "payment_failed",
    }
    assert translate(event("payment.failed", payment=failed), "e", b"{}").fact == PaymentFailed(
        "order_1", None, "payment_failed"
    )


@pytest.mark.parametrize(("kind", "status"), [("refund.processed", "succeeded"), ("refund.failed", "failed")])
def test_refund_events_settle_our_refund_by_its_notes(kind, status):
    refund = {"id": "rfnd_1", "payment_id": "pay_1", "amount": 100, "notes": {"refund_id": "ours"}}
    fact = translate(event(kind, refund=refund, payment=PAYMENT), "e", b"{}").fact
    assert isinstance(fact, RefundChanged)
    assert (fact.refund_reference, fact.provider_reference, fact.refund_id, fact.status) == (
        "rfnd_1", "order_1", "ours", status,
    )  # fmt: skip


def test_a_dashboard_refund_asks_for_the_payments_refunds():
    refund = {"id": "rfnd_2", "payment_id": "pay_1", "amount": 100, "notes": []}
    fact = translate(
        event("refund.created", refund=refund, payment={**PAYMENT, "amount_refunded": 100}), "e", b"{}"
    )
    assert fact.fact == RefundsReported("order_1", None, "pay_1", None, 100)


@pytest.mark.parametrize(
    "body",
    [
        event("payment.captured"),
        event("payment.captured", payment={"id": 5, "amount": "x"}),
        event("refund.failed", refund={"notes": "x"}),
        event("subscription.charged", payment=PAYMENT),
    ],
)
def test_malformed_or_unused_events_become_facts_with_what_could_be_read(body):
    fact = translate(body, "e", b"{}").fact
    assert isinstance(fact, (NotUsed, PaymentSucceeded))


def test_the_event_id_header_names_the_event_and_a_digest_of_the_body_stands_in_without_it():
    assert translate(event("payment.captured", payment=PAYMENT), "evt_9", b"{}").id == "evt_9"
    first = translate(event("payment.captured"), None, b'{"a": 1}')
    assert (
        first.id.startswith("rzp_body_")
        and first.id == translate(event("payment.captured"), "", b'{"a": 1}').id
    )
    assert translate({"event": 5}, "e", b"{}") is None


def test_the_signature_is_checked_over_the_raw_body():
    body = json.dumps(event("payment.captured", payment=PAYMENT)).encode()
    assert check_webhook(body, signature("whsec", body), "whsec")["event"] == "payment.captured"
    for sig, secret in ((None, "whsec"), ("00", "whsec"), (signature("other", body), "whsec"), ("x", None)):
        with pytest.raises(WebhookSignatureError):
            check_webhook(body, sig, secret)
    with pytest.raises(WebhookSignatureError):
        check_webhook(b"[1]", signature("whsec", b"[1]"), "whsec")
