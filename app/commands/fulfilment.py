"""Fulfilment of a seller's part: accept, ship, deliver, and cancel (which refunds what is left)."""

from __future__ import annotations

from typing import Any

from app.commands import refunds
from app.commands.deps import Deps
from domain.fulfilment import ACCEPTED, CANCELLABLE_BY, CANCELLED, PLACED, Fulfilment, FulfilmentStateError


def accept(deps: Deps, order_id: str, seller_id: str, cause: dict[str, Any]) -> Fulfilment:
    return deps.marketplace.accept_part(order_id, seller_id, cause)


def ship(
    deps: Deps, order_id: str, seller_id: str, carrier: str, tracking_number: str, cause: dict[str, Any]
) -> Fulfilment:
    return deps.marketplace.ship_part(order_id, seller_id, carrier, tracking_number, cause)


def deliver(deps: Deps, order_id: str, seller_id: str, cause: dict[str, Any]) -> Fulfilment:
    return deps.marketplace.deliver_part(order_id, seller_id, cause)


def cancel_part(
    deps: Deps, order_id: str, seller_id: str, role: str, reason: str | None, cause: dict[str, Any]
) -> Fulfilment:
    """Cancel one seller's part and refund what was left of it, in three steps that a retry
    (after a crash anywhere, by anyone allowed to cancel) always finishes the same way:

    1. the intent (``Fulfilment.CancellationRequested``) names the refund: its key derives from
       the allocation, and its amount is what was left to refund of the part; from now on the
       part can only be cancelled;
    2. the refund goes through :func:`app.commands.refunds.refund_order` with ``seller_id``, as
       ``POST /orders/{id}/refunds`` would (provider first, fee reversed at the allocation's own
       rate, a negative adjustment or transfer reversal if already settled); its id derives from
       the key, so a retried step finds the provider's refund and the recorded one;
    3. a part that was not shipped restocks its tracked SKUs (once per allocation), then
       ``Fulfilment.Cancelled`` names the refund.
    """
    cause = {**cause, "reason": reason}
    fulfilment = deps.marketplace.request_part_cancellation(order_id, seller_id, role, reason, cause)
    if fulfilment.status == CANCELLED:  # pragma: nocover - the request refuses a cancelled part
        raise FulfilmentStateError(fulfilment.status, "it is cancelled already")
    intent = fulfilment.cancellation
    assert intent is not None
    refund_id = None
    if intent["amount"] > 0:
        refund = refunds.refund_order(
            deps,
            order_id,
            intent["amount"],
            seller_id,
            intent["reason"],
            cause,
            retry_key=intent["refund_key"],
        )
        refund_id = refund["id"]
    if intent["from_status"] in (PLACED, ACCEPTED):  # not shipped: back on the shelf, once
        deps.marketplace.restock_part(fulfilment.allocation_id, cause)
    return deps.marketplace.complete_part_cancellation(order_id, seller_id, refund_id, cause)


def cancel_order(
    deps: Deps, order_id: str, role: str, reason: str | None, cause: dict[str, Any]
) -> list[str]:
    """Cancel every part ``role`` may still cancel (and finish any cancellation under way);
    the sellers whose parts were cancelled. None at all is a 409 naming the parts' states."""
    marketplace = deps.marketplace
    order = marketplace.get_order(order_id)
    cancelled: list[str] = []
    states: list[str] = []
    for seller_id, fulfilment in marketplace.fulfilments_of(order).items():
        status = fulfilment.status if fulfilment is not None else "placed"
        pending = fulfilment is not None and fulfilment.cancellation_pending
        states.append(f"{seller_id}: {status}")
        if pending or role in CANCELLABLE_BY.get(status, ()):
            cancel_part(deps, order_id, seller_id, role, reason, cause)
            cancelled.append(seller_id)
    if not cancelled:
        raise FulfilmentStateError(
            ", ".join(states), f"no part may be cancelled by {role}s", subject="the parts are"
        )
    return cancelled
