"""The janitor on fakes: what is left in flight is finished from what the provider holds, once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app.commands.checkout import create_checkout_session
from app.commands.janitor import repair_in_flight
from app.commands.settlement import settle_seller
from domain.payment import Payment
from domain.ports import (
    CHARGE_FAILED,
    CHARGE_PROCESSING,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    PayoutResult,
)
from tests.fakes import FakeDeps
from tests.unit.commands.test_checkout import CART
from tests.unit.commands.test_refunds_and_provider_events import paid_order
from tests.unit.conftest import make_cause

LATER = datetime.now(UTC) + timedelta(hours=1)


def crashed_payment(deps: FakeDeps) -> Payment:
    """A payment recorded before the provider call, whose process died before the answer was saved."""
    session = create_checkout_session(deps, CART)
    payment = deps.marketplace.start_payment(session, "pm_card_visa", "fake", make_cause())
    deps.sessions.update(session["id"], payment_id=str(payment.id))
    return payment


def test_a_payment_the_provider_took_places_its_order(deps: FakeDeps) -> None:
    payment = crashed_payment(deps)
    deps.gateway.held_payments[str(payment.id)] = ChargeResult(CHARGE_SUCCEEDED, "pi_1")
    report = repair_in_flight(deps, now=LATER)
    assert report.completed == [str(payment.id)]
    assert deps.marketplace.get_payment(str(payment.id)).outcome == "succeeded"
    assert deps.marketplace.order_exists_for_session(payment.session_id)
    assert deps.sessions.get(payment.session_id)["status"] == "completed"
    assert deps.gateway.calls_to("charge") == []  # looked up, never charged again
    assert repair_in_flight(deps, now=LATER).completed == []  # nothing left on a second pass


def test_a_payment_the_provider_does_not_hold_fails_as_a_provider_error(deps: FakeDeps) -> None:
    payment = crashed_payment(deps)
    report = repair_in_flight(deps, now=LATER)
    assert report.failed == [str(payment.id)]
    failed = deps.marketplace.get_payment(str(payment.id))
    assert (failed.outcome, failed.failure_reason) == ("failed", "provider_error")
    assert failed.order_id is None


def test_a_declined_or_waiting_payment_is_recorded_as_the_provider_says(deps: FakeDeps) -> None:
    declined, waiting = crashed_payment(deps), crashed_payment(deps)
    deps.gateway.held_payments[str(declined.id)] = ChargeResult(
        CHARGE_FAILED, "pi_d", failure_reason="expired_card"
    )
    deps.gateway.held_payments[str(waiting.id)] = ChargeResult(
        CHARGE_REQUIRES_ACTION, "pi_w", client_secret="s"
    )
    report = repair_in_flight(deps, now=LATER)
    assert report.failed == [str(declined.id)] and report.awaiting_action == [str(waiting.id)]
    assert deps.marketplace.get_payment(str(declined.id)).failure_reason == "expired_card"
    assert deps.marketplace.get_payment(str(waiting.id)).outcome == "requires_action"


def test_nothing_is_decided_while_the_provider_cannot_be_asked(deps: FakeDeps) -> None:
    payment = crashed_payment(deps)
    deps.gateway.lookups_fail = True
    assert repair_in_flight(deps, now=LATER).unresolved == [str(payment.id)]
    assert deps.marketplace.get_payment(str(payment.id)).outcome == "pending"


def test_young_payments_are_left_to_their_own_request(deps: FakeDeps) -> None:
    crashed_payment(deps)
    assert repair_in_flight(deps).failed == []
    assert deps.gateway.calls_to("find_payment") == []


def test_a_settlement_left_processing_adopts_the_transfer_the_provider_made(deps: FakeDeps) -> None:
    paid_order(deps)
    deps.gateway.unavailable.add("payout")
    try:
        settle_seller(deps, "s-1", date(2000, 1, 1), date(2999, 12, 31), make_cause())
    except Exception:  # the transfer's answer was lost: the settlement stays processing
        pass
    [settlement_id] = deps.read_models.settlements_in_flight()
    deps.gateway.unavailable.clear()
    settlement = deps.marketplace.get_settlement(settlement_id)
    assert settlement is not None
    [line] = settlement.transfer_lines
    deps.gateway.held_payouts[f"{settlement_id}:{line['allocation_id']}"] = PayoutResult(True, "tr_made")
    report = repair_in_flight(deps, now=LATER)
    assert report.settled == [settlement_id]
    settlement = deps.marketplace.get_settlement(settlement_id)
    assert settlement is not None
    assert (settlement.status, settlement.provider_reference) == ("paid", "tr_made")
    assert len(deps.gateway.calls_to("payout")) == 1  # the lost one only: none made again
    assert deps.read_models.settlements_in_flight() == []


def test_a_payment_still_processing_at_the_provider_is_left_to_its_webhook(deps: FakeDeps) -> None:
    payment = crashed_payment(deps)
    deps.gateway.held_payments[str(payment.id)] = ChargeResult(CHARGE_PROCESSING, "pi_p")
    assert repair_in_flight(deps, now=LATER).awaiting_action == [str(payment.id)]
    assert deps.marketplace.get_payment(str(payment.id)).outcome == "pending"
