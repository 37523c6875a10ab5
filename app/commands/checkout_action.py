"""The second step of a payment that required the customer's action at the provider (Razorpay
Checkout's signed answer): the proof is checked by the gateway, then the payment is applied as a
first confirm's would be. A proof that does not hold changes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.commands.checkout import Outcome, apply_charge_result
from app.commands.deps import Deps
from domain import payment as payment_status
from domain.checkout import SESSION_AWAITING_ACTION, SESSION_COMPLETED
from domain.errors import ActionProofError, CheckoutConflictError
from domain.order import Order
from domain.payment import Payment


def complete_checkout_action(
    deps: Deps, session_id: str, proof: Mapping[str, str], cause: dict[str, Any]
) -> tuple[Outcome, Payment, Order | None]:
    """Complete the session's payment awaiting action with the provider's ``proof``.

    ActionProofError (nothing changes) when the proof is forged or names another payment or amount;
    ProviderUnavailableError leaves the payment awaiting action (a retry, or the provider's webhook,
    completes it); a failed payment is recorded and raised as PaymentDeclinedError.
    """
    sessions, marketplace = deps.sessions, deps.marketplace
    with sessions.lock(session_id):
        session = sessions.get(session_id)
        if session["status"] == SESSION_COMPLETED or marketplace.order_exists_for_session(session_id):
            raise CheckoutConflictError("this checkout session is already completed")
        payment_id = session.get("payment_id")
        if session["status"] != SESSION_AWAITING_ACTION or not payment_id:
            raise ActionProofError("no payment of this checkout session awaits the customer's action")
        payment = marketplace.get_payment(payment_id)
        if payment.outcome != payment_status.REQUIRES_ACTION or not payment.provider_reference:
            raise ActionProofError(f"payment {payment_id} is {payment.outcome}, not awaiting action")
        result = deps.gateway.complete_action(
            payment_id=payment_id,
            provider_reference=payment.provider_reference,
            amount=payment.amount,
            currency=payment.currency,
            proof=proof,
            idempotency_key=f"{payment_id}:action",
        )
        return apply_charge_result(deps, session, payment, result, cause)
