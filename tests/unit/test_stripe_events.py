"""The Stripe adapter turns webhook payloads into provider-neutral facts (and nothing raises)."""

from __future__ import annotations

from typing import Any

import pytest

from app.adapters.providers.stripe_events import translate
from domain.payment import DISPUTE_FUNDS_KEPT, DISPUTE_FUNDS_REINSTATED, DISPUTE_FUNDS_WITHDRAWN
from domain.ports import (
    DisputeReported,
    NotUsed,
    PaymentFailed,
    PaymentSucceeded,
    ProviderRefund,
    RefundChanged,
    RefundsReported,
)


def stripe_event(kind: str, obj: Any, event_id: str = "evt_1") -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


def test_a_succeeded_payment_intent_names_the_intent_and_our_payment_id() -> None:
    event = translate(
        stripe_event("payment_intent.succeeded", {"id": "pi_1", "metadata": {"payment_id": "p-1"}})
    )
    assert event is not None and event.provider == "stripe" and event.reference_kind == "PaymentIntent"
    assert event.fact == PaymentSucceeded("pi_1", "p-1")


def test_a_failed_payment_intent_carries_the_decline_code_or_error_code() -> None:
    declined = {
        "id": "pi_1",
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
    }
    event = translate(stripe_event("payment_intent.payment_failed", declined))
    assert event is not None and event.fact == PaymentFailed("pi_1", None, "insufficient_funds")
    bare = translate(stripe_event("payment_intent.payment_failed", {"id": "pi_1"}))
    assert bare is not None and bare.fact == PaymentFailed("pi_1", None, "payment_failed")


def test_a_refunded_charge_lists_its_refunds_only_when_the_list_is_complete() -> None:
    refunds = {
        "data": [
            {"id": "re_1", "amount": 300, "status": "succeeded"},
            {"id": "re_2", "amount": 200, "status": "failed"},
            {"id": "re_3", "amount": True},
        ],
        "has_more": False,
    }
    charge = {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 300, "refunds": refunds}
    event = translate(stripe_event("charge.refunded", charge))
    assert event is not None
    assert event.fact == RefundsReported(
        "pi_1", None, "ch_1", (ProviderRefund("re_1", 300, True), ProviderRefund("re_2", 200, False)), 300
    )
    partial = translate(stripe_event("charge.refunded", {**charge, "refunds": {**refunds, "has_more": True}}))
    assert partial is not None and isinstance(partial.fact, RefundsReported) and partial.fact.refunds is None


@pytest.mark.parametrize(
    ("status", "balance_transactions", "funds", "closed"),
    [
        ("warning_needs_response", [], DISPUTE_FUNDS_KEPT, False),
        ("warning_under_review", None, DISPUTE_FUNDS_KEPT, False),
        ("warning_closed", None, DISPUTE_FUNDS_KEPT, True),
        ("needs_response", None, DISPUTE_FUNDS_WITHDRAWN, False),
        ("under_review", [{"amount": -4499}], DISPUTE_FUNDS_WITHDRAWN, False),
        ("won", [{"amount": -4499}, {"amount": 4499}], DISPUTE_FUNDS_REINSTATED, True),
        ("lost", [{"amount": -4499}], DISPUTE_FUNDS_WITHDRAWN, True),
        ("prevented", None, DISPUTE_FUNDS_KEPT, True),
    ],
)
def test_a_dispute_says_where_the_money_is_and_whether_it_closed(
    status: str, balance_transactions: Any, funds: str, closed: bool
) -> None:
    obj = {"id": "dp_1", "payment_intent": "pi_1", "amount": 4499, "reason": "fraudulent", "status": status}
    if balance_transactions is not None:
        obj["balance_transactions"] = balance_transactions
    event = translate(stripe_event("charge.dispute.updated", obj))
    assert event is not None
    assert event.fact == DisputeReported("dp_1", "pi_1", None, 4499, "fraudulent", status, funds, closed)


def test_types_tally_does_not_use_are_not_used_and_unstorable_ids_are_no_events() -> None:
    event = translate(stripe_event("customer.created", {"id": "cus_1"}))
    assert event is not None and event.fact == NotUsed()
    assert translate(stripe_event("payment_intent.succeeded", {}, event_id="evt\x00")) is None
    assert translate({"type": "payment_intent.succeeded"}) is None


def test_malformed_objects_become_facts_with_what_could_be_read() -> None:
    event = translate({"id": "evt_1", "type": "charge.dispute.created", "data": ["not", "an", "object"]})
    assert event is not None
    assert event.fact == DisputeReported(
        None, None, None, None, "general", "needs_response", DISPUTE_FUNDS_WITHDRAWN, False
    )
    weird = translate(stripe_event("payment_intent.succeeded", {"id": 42, "metadata": {"payment_id": ["x"]}}))
    assert weird is not None and weird.fact == PaymentSucceeded(None, None)


def test_the_raw_body_is_kept_as_received() -> None:
    event = translate(stripe_event("customer.created", {}), raw='{"id": "evt_1"}')
    assert event is not None and event.payload == '{"id": "evt_1"}'


@pytest.mark.parametrize("kind", ["charge.refund.updated", "refund.updated", "refund.failed"])
def test_a_refund_that_changed_names_the_refund_our_id_and_its_status(kind: str) -> None:
    refund = {
        "id": "re_1",
        "object": "refund",
        "payment_intent": "pi_1",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
        "metadata": {"refund_id": "r-1"},
    }
    event = translate(stripe_event(kind, refund))
    assert event is not None
    assert event.fact == RefundChanged("re_1", "pi_1", None, "r-1", "failed", "expired_or_canceled_card")
    unnamed = translate(stripe_event(kind, {"status": "failed"}))
    assert unnamed is not None and unnamed.fact == NotUsed()
