"""Refunds and provider webhooks on fakes: the provider first, each refund and event recorded once."""

from __future__ import annotations

from typing import Any

import pytest

from app.commands.checkout import confirm_checkout, create_checkout_session
from app.commands.provider_events import receive_provider_event
from app.commands.refunds import refund_order
from app.commands.settlement import settle_seller
from domain.errors import ConcurrentChangeError
from domain.order import Order
from domain.payment import DISPUTE_FUNDS_WITHDRAWN, Payment
from domain.ports import (
    DisputeReported,
    NotUsed,
    PaymentFailed,
    PaymentSucceeded,
    ProviderEvent,
    ProviderFact,
    ProviderRefund,
    RefundsReported,
)
from tests.fakes import FakeDeps
from tests.unit.commands.test_checkout import CART
from tests.unit.conftest import make_cause


def paid_order(deps: FakeDeps, method: str = "pm_card_visa") -> tuple[str, Payment, Order | None]:
    session_id = str(create_checkout_session(deps, CART)["id"])
    _, payment, order = confirm_checkout(deps, session_id, method, make_cause())
    return session_id, payment, order


def event(fact: ProviderFact, event_id: str = "evt_1", kind: str = "x.y") -> ProviderEvent:
    return ProviderEvent(event_id, "fake", kind, "{}", fact, reference_kind="PaymentIntent")


def test_a_refund_goes_to_the_provider_then_reverses_fee_and_payout_per_seller(deps: FakeDeps) -> None:
    _, payment, order = paid_order(deps)
    assert order is not None
    refund = refund_order(deps, str(order.id), 2500, "s-1", "damaged", make_cause())
    [call] = deps.gateway.calls_to("refund")
    assert call["amount"] == 2500 and call["provider_reference"] == payment.provider_reference
    [part] = refund["allocations"]
    assert (part["amount"], part["platform_fee_reversed_amount"], part["payout_reversed_amount"]) == (
        2500,
        250,
        2250,
    )
    assert deps.marketplace.get_payment(str(payment.id)).refunded_amount == 2500
    assert deps.records.refunds[next(iter(deps.records.refunds))]["origin"] == "tally"


def test_a_refund_the_provider_did_not_answer_records_nothing(deps: FakeDeps) -> None:
    _, _, order = paid_order(deps)
    assert order is not None
    deps.gateway.unavailable.add("refund")
    with pytest.raises(Exception, match="refund"):
        refund_order(deps, str(order.id), 100, None, None, make_cause())
    assert deps.marketplace.get_order(str(order.id)).refunds == []
    assert deps.records.refunds == {}


def test_refunds_of_one_order_are_serialised(deps: FakeDeps) -> None:
    _, _, order = paid_order(deps)
    assert order is not None
    with deps.locks.order_refunds(str(order.id)), pytest.raises(ConcurrentChangeError):
        refund_order(deps, str(order.id), 100, None, None, make_cause())
    assert deps.gateway.calls_to("refund") == []


def test_an_event_is_applied_once_and_a_redelivery_is_a_duplicate(deps: FakeDeps) -> None:
    _, payment, _ = paid_order(deps, "pm_card_authenticationRequired")
    succeeded = event(PaymentSucceeded(payment.provider_reference, None))
    assert receive_provider_event(deps, succeeded) == "applied"
    assert receive_provider_event(deps, succeeded) == "duplicate"
    assert deps.marketplace.get_payment(str(payment.id)).outcome == "succeeded"
    assert deps.sessions.get(payment.session_id)["status"] == "completed"


def test_an_unknown_payment_is_kept_unmatched_and_an_unused_type_ignored(deps: FakeDeps) -> None:
    assert receive_provider_event(deps, event(PaymentSucceeded("pi_nobody", None), "evt_a")) == "unmatched"
    _, detail = deps.records.events["evt_a"][1:]
    assert detail == "no payment for PaymentIntent pi_nobody"
    assert receive_provider_event(deps, event(NotUsed(), "evt_b", "customer.created")) == "ignored"


def test_a_failure_after_authentication_reopens_the_session(deps: FakeDeps) -> None:
    session_id, payment, _ = paid_order(deps, "pm_card_authenticationRequired")
    failed = PaymentFailed(payment.provider_reference, None, "authentication_failed")
    assert receive_provider_event(deps, event(failed)) == "applied"
    assert deps.marketplace.get_payment(str(payment.id)).failure_reason == "authentication_failed"
    assert deps.sessions.get(session_id)["status"] == "open"


def test_a_success_after_a_failure_places_the_order_when_nothing_else_paid_for_the_cart(
    deps: FakeDeps,
) -> None:
    _, payment, _ = paid_order(deps, "pm_card_authenticationRequired")
    receive_provider_event(deps, event(PaymentFailed(payment.provider_reference, None, "x"), "evt_1"))
    outcome = receive_provider_event(deps, event(PaymentSucceeded(payment.provider_reference, None), "evt_2"))
    assert outcome == "applied"
    assert deps.marketplace.order_exists_for_session(payment.session_id)
    assert deps.marketplace.get_payment(str(payment.id)).order_id is not None
    assert deps.sessions.get(payment.session_id)["status"] == "completed"
    assert deps.gateway.calls_to("refund") == []


def test_a_success_after_a_failure_is_refunded_when_another_payment_placed_the_order(deps: FakeDeps) -> None:
    session_id, late, _ = paid_order(deps, "pm_card_authenticationRequired")
    receive_provider_event(deps, event(PaymentFailed(late.provider_reference, None, "x"), "evt_1"))
    _, other, order = confirm_checkout(
        deps, session_id, "pm_card_visa", make_cause()
    )  # paid with another card
    assert order is not None
    outcome = receive_provider_event(deps, event(PaymentSucceeded(late.provider_reference, None), "evt_2"))
    assert outcome == "applied"
    [refund] = deps.gateway.calls_to("refund")
    assert (refund["amount"], refund["provider_reference"]) == (late.amount, late.provider_reference)
    assert deps.marketplace.get_payment(str(late.id)).status == "refunded"
    assert deps.marketplace.get_order(str(order.id)).payment_id == str(other.id)  # the order is untouched
    receive_provider_event(deps, event(PaymentSucceeded(late.provider_reference, None), "evt_3"))  # again
    assert len(deps.gateway.calls_to("refund")) == 1


def test_a_dashboard_refund_is_recorded_once_and_our_own_echo_not_again(deps: FakeDeps) -> None:
    _, payment, order = paid_order(deps)
    assert order is not None
    ours = refund_order(deps, str(order.id), 1000, None, None, make_cause())
    [ours_ref] = deps.records.refunds
    listed = (
        ProviderRefund(ours_ref, 1000, True),
        ProviderRefund("re_dash", 500, True),
        ProviderRefund("re_x", 7, False),
    )
    reported = RefundsReported(payment.provider_reference, None, "ch_1", listed, 1500)
    assert receive_provider_event(deps, event(reported, "evt_1")) == "applied"
    assert receive_provider_event(deps, event(reported, "evt_2")) == "applied"  # the same refunds, again
    refunds = deps.marketplace.get_order(str(order.id)).refunds
    assert [r["amount"] for r in refunds] == [1000, 500]
    assert refunds[0]["id"] == ours["id"]
    assert deps.records.refunds["re_dash"]["origin"] == "provider"


def test_refunds_not_listed_in_the_event_are_asked_of_the_provider(deps: FakeDeps) -> None:
    _, payment, order = paid_order(deps)
    assert order is not None
    deps.gateway.listed_refunds[str(payment.provider_reference)] = [ProviderRefund("re_d", 300, True)]
    reported = RefundsReported(payment.provider_reference, None, "ch_1", None, 300)
    assert receive_provider_event(deps, event(reported)) == "applied"
    assert [r["amount"] for r in deps.marketplace.get_order(str(order.id)).refunds] == [300]


def test_without_a_list_the_cumulative_total_is_recorded(deps: FakeDeps) -> None:
    _, payment, order = paid_order(deps)
    assert order is not None
    reported = RefundsReported(payment.provider_reference, None, "ch_1", None, 400)
    receive_provider_event(deps, event(reported, "evt_1"))
    receive_provider_event(
        deps, event(RefundsReported(payment.provider_reference, None, "ch_1", None, 400), "evt_2")
    )
    assert [r["amount"] for r in deps.marketplace.get_order(str(order.id)).refunds] == [400]


def dispute(payment: Payment, status: str, funds: str, closed: bool = False) -> DisputeReported:
    return DisputeReported(
        "dp_1", payment.provider_reference, None, 4499, "fraudulent", status, funds, closed
    )


def test_a_dispute_withdrawing_funds_is_recorded_on_the_payment(deps: FakeDeps) -> None:
    _, payment, _ = paid_order(deps)
    assert (
        receive_provider_event(deps, event(dispute(payment, "needs_response", DISPUTE_FUNDS_WITHDRAWN)))
        == "applied"
    )
    recorded = deps.marketplace.get_payment(str(payment.id))
    assert recorded.disputed_amount == 4499
    assert recorded.disputes["dp_1"]["funds"] == DISPUTE_FUNDS_WITHDRAWN


def test_a_dispute_of_a_failed_payment_is_kept_for_review(deps: FakeDeps) -> None:
    session_id = str(create_checkout_session(deps, CART)["id"])
    with pytest.raises(Exception, match="declined"):
        confirm_checkout(deps, session_id, "pm_card_chargeDeclined", make_cause())
    payment_id = deps.sessions.get(session_id)["payment_id"]
    payment = deps.marketplace.get_payment(payment_id)
    fact = DisputeReported(
        "dp_9", None, payment_id, 10, "general", "needs_response", DISPUTE_FUNDS_WITHDRAWN, False
    )
    assert receive_provider_event(deps, event(fact)) == "unmatched"
    assert payment.disputes == {}


def test_refunds_of_paid_out_money_reverse_the_payout_when_the_policy_says_so(deps: FakeDeps) -> None:
    from dataclasses import replace
    from datetime import date

    deps.policy = replace(deps.policy, reverse_payouts_on_refund=True)
    _, _, order = paid_order(deps)
    assert order is not None
    settle_seller(deps, "s-1", date(2000, 1, 1), date(2999, 12, 31), make_cause())
    refund: dict[str, Any] = refund_order(deps, str(order.id), 2500, "s-1", None, make_cause())
    [part] = refund["allocations"]
    assert part["recovered_by_transfer_reversal"] is True and part["carried_as_adjustment"] is False
    [reversal] = deps.gateway.calls_to("reverse_payout")
    assert reversal["amount"] == 2250


def test_a_provider_event_that_fails_alerts_the_platform_once(deps: FakeDeps, monkeypatch) -> None:
    import app.commands.provider_events as provider_events

    def broken(*_args: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(provider_events, "_apply", broken)
    for _ in range(2):  # the provider delivers it again
        with pytest.raises(RuntimeError):
            receive_provider_event(deps, event(NotUsed(), "evt_broken"))
    alerts = [
        deps.marketplace.mapper.to_domain_event(n)
        for n in deps.marketplace.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith("Alert.Raised")
    ]
    assert [(a.kind, a.key, a.data["error"]) for a in alerts] == [
        ("provider_event_failed", "evt_broken", "RuntimeError")
    ]
