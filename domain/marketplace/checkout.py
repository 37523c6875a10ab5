"""Checkout: a payment first, then its order and allocations in one save."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain import payment as payment_status
from domain.allocation import Allocation
from domain.cause import Cause
from domain.errors import (
    CheckoutConflictError,
    PaymentStateError,
)
from domain.ids import (
    order_id_for_session,
    stock_id,
)
from domain.inventory import StockItem
from domain.marketplace.base import MarketplaceBase
from domain.order import Order
from domain.payment import Payment

# How many times placing an order also tries to sell the session's reserved stock in its save.
SELL_WITH_ORDER_ATTEMPTS = 3


class CheckoutTransactions(MarketplaceBase):
    """Checkout: a payment first, then its order and allocations in one save."""

    def start_payment(
        self, session: dict[str, Any], payment_method: str, provider: str, cause: dict[str, Any]
    ) -> Payment:
        """Record a payment attempt before the provider is asked, so no charge is ever unrecorded."""
        checkout = {
            "session_id": session["id"],
            "customer_id": session["customer_id"],
            "currency": session["currency"],
            "total_amount": session["total_amount"],
            "platform_fee_amount": session["platform_fee_amount"],
            "sellers": session["sellers"],
            "delivery_address": session.get("delivery_address") or {},
            "granularity": session.get("granularity", 1),
        }
        payment = Payment(
            session_id=session["id"],
            customer_id=session["customer_id"],
            currency=session["currency"],
            amount=session["total_amount"],
            payment_method=payment_method,
            provider=provider,
            checkout=checkout,
            cause=cause,
        )
        self.save(payment)
        return payment

    def record_action_required(
        self,
        payment_id: str,
        provider_reference: str,
        client_secret: str,
        cause: dict[str, Any],
        payment: Payment | None = None,
    ) -> Payment:
        def command(attempt: int) -> Payment:
            current = self._current(payment_id, payment, attempt)
            current.require_action(provider_reference, client_secret, cause)
            self.save(current)
            return current

        return self._with_retry(command)

    def record_failure(
        self,
        payment_id: str,
        provider_reference: str | None,
        reason: str,
        cause: dict[str, Any],
        payment: Payment | None = None,
    ) -> Payment:
        """Fail a pending payment; a late failure of a finished payment changes nothing."""

        def command(attempt: int) -> Payment:
            current = self._current(payment_id, payment, attempt)
            if current.is_final:
                return current
            current.fail(provider_reference, reason, cause)
            self.save(current)
            return current

        return self._with_retry(command)

    def complete_payment(
        self,
        payment_id: str,
        provider_reference: str,
        cause: dict[str, Any],
        payment: Payment | None = None,
    ) -> tuple[Payment, Order]:
        """Mark the payment succeeded and place its order and allocations in one atomic save.

        Completing an already completed payment returns what it placed (webhook redelivery).
        A caller that passes the ``payment`` it just saved (and has checked that the session
        placed no order yet) saves a read; after any conflict everything is reloaded.
        """
        payment, order, _ = self.complete_checkout(payment_id, provider_reference, cause, payment, [])
        return payment, order

    def complete_checkout(
        self,
        payment_id: str,
        provider_reference: str,
        cause: dict[str, Any],
        payment: Payment | None,
        reserved: list[tuple[str, str]],
    ) -> tuple[Payment, Order, bool]:
        """:meth:`complete_payment`, selling the session's ``reserved`` (seller, SKU)s in the same
        save; True when it did. After ``SELL_WITH_ORDER_ATTEMPTS`` conflicting saves (other
        checkouts busy on the same stock) the order is placed without them, so stock contention
        never holds up a paid order: the caller, or the sweep, sells them then."""

        def command(attempt: int) -> tuple[Payment, Order, bool]:
            current = self._current(payment_id, payment, attempt)
            selling = reserved if attempt < SELL_WITH_ORDER_ATTEMPTS else []
            placing = current.outcome != payment_status.SUCCEEDED  # else: placed before
            paid, order = self._complete(
                current,
                provider_reference,
                cause,
                check_order=payment is None or attempt > 0,
                reserved=selling,
            )
            return paid, order, placing and bool(selling)

        return self._with_retry(command)

    def _complete(
        self,
        payment: Payment,
        provider_reference: str,
        cause: dict[str, Any],
        check_order: bool,
        reserved: list[tuple[str, str]] | None = None,
    ) -> tuple[Payment, Order]:
        if payment.outcome == payment_status.SUCCEEDED:
            return payment, self.get_order(self._order_id_of(payment))
        if payment.outcome == payment_status.FAILED:
            raise PaymentStateError("payment already failed")
        order_id = order_id_for_session(payment.checkout["session_id"])
        if check_order and order_id in self.repository:
            raise CheckoutConflictError("this checkout session already placed an order")
        return self._place_order(payment, provider_reference, cause, reserved or [])

    def _place_order(
        self,
        payment: Payment,
        provider_reference: str,
        cause: dict[str, Any],
        reserved: list[tuple[str, str]] | None = None,
    ) -> tuple[Payment, Order]:
        """Succeed the payment and place its order and allocations (and sell the ``reserved``
        stock) in one atomic save."""
        order, allocations = order_for(payment, cause, payment_reference=provider_reference)
        if payment.outcome == payment_status.FAILED:
            payment.succeed_after_failure(provider_reference, str(order.id), cause)
        else:
            payment.succeed(provider_reference, str(order.id), cause)
        # A store that can keeps the reference -> payment row in this same transaction.
        references = [(provider_reference, str(payment.id))] if provider_reference else []
        stock = [stock_id(seller_id, sku) for seller_id, sku in reserved or []]
        with self.hot.serialised(stock):
            sold = self._sold(payment, str(order.id), stock)
            self.save(payment, order, *allocations, *sold, payment_references=references)
        return payment, order

    def _sold(self, payment: Payment, order_id: str, stock: list[UUID]) -> list[StockItem]:
        """The session's reserved stock records, each with its reservation sold to ``order_id``."""
        if not stock:
            return []
        session_id = payment.checkout["session_id"]
        cause = Cause.system(session_id, f"order {order_id} placed").to_dict()
        items = self.hot.get_many(stock, StockItem).values()
        return [item for item in items if item.sell(session_id, order_id, cause)]

    def complete_late_payment(
        self, payment_id: str, provider_reference: str, cause: dict[str, Any]
    ) -> tuple[Payment, Order | None]:
        """The provider reports a success, possibly after this payment was failed (a 3-D Secure
        attempt that failed, then passed on the same payment intent).

        If the checkout session has no order yet, the payment succeeds (``Payment.Succeeded``,
        after its ``Payment.Failed`` in the log) and places the order and allocations in one
        atomic save, exactly as :meth:`complete_payment`; returns (payment, order). If another
        payment already placed the session's order, the payment is recorded as succeeded without
        an order (``Payment.Orphaned``, status ``orphaned``) and (payment, None) is returned: the
        caller refunds the whole amount at the provider, then calls :meth:`record_orphan_refund`.
        Redelivery returns the same answer and records nothing more.
        """

        def command(attempt: int) -> tuple[Payment, Order | None]:
            payment = self.get_payment(payment_id)
            if payment.outcome == payment_status.SUCCEEDED:
                return payment, self.get_order(self._order_id_of(payment))
            if payment.outcome == payment_status.ORPHANED:
                return payment, None
            order_id = order_id_for_session(payment.checkout["session_id"])
            if order_id in self.repository:
                payment.orphan(provider_reference, str(order_id), cause)
                self.save(payment)
                return payment, None
            return self._place_order(payment, provider_reference, cause)

        return self._with_retry(command)

    def record_orphan_refund(
        self, payment_id: str, refund_id: str, provider_reference: str, cause: dict[str, Any]
    ) -> Payment:
        """Record that the whole amount of an orphaned payment (see :meth:`complete_late_payment`)
        went back to the customer (``Payment.OrphanRefunded``; status ``refunded``). Recording the
        same ``refund_id`` again changes nothing; any other payment is a PaymentStateError."""

        def command(attempt: int) -> Payment:
            payment = self.get_payment(payment_id)
            if payment.outcome == payment_status.ORPHANED and refund_id in payment.refund_ids:
                return payment
            payment.refund_orphan(refund_id, provider_reference, cause)
            self.save(payment)
            return payment

        return self._with_retry(command)


def order_for(
    payment: Payment, cause: dict[str, Any], *, payment_reference: str
) -> tuple[Order, list[Allocation]]:
    """The order and per-seller allocations a paid checkout places (not saved; the caller saves
    them with the payment's success by ``payment_reference``, in one atomic save)."""
    checkout = payment.checkout
    order_id = order_id_for_session(checkout["session_id"])
    sellers = []
    allocations = []
    for seller in checkout["sellers"]:
        alloc = Allocation(
            order_id=str(order_id),
            seller_id=seller["seller_id"],
            customer_id=checkout["customer_id"],
            payment_id=str(payment.id),
            currency=checkout["currency"],
            subtotal_amount=seller["subtotal_amount"],
            fee_bps=seller["fee_bps"],
            platform_fee_amount=seller["platform_fee_amount"],
            payout_amount=seller["payout_amount"],
            items=seller["items"],
            cause=cause,
            # Payments started before granular currencies were quoted carry none: they could not be.
            granularity=checkout.get("granularity", 1),
            payment_reference=payment_reference,
        )
        allocations.append(alloc)
        sellers.append(
            {
                "seller_id": seller["seller_id"],
                "allocation_id": str(alloc.id),
                "subtotal_amount": seller["subtotal_amount"],
                "fee_bps": seller["fee_bps"],
                "platform_fee_amount": seller["platform_fee_amount"],
                "payout_amount": seller["payout_amount"],
                "items": seller["items"],
            }
        )
    order = Order(
        session_id=checkout["session_id"],
        customer_id=checkout["customer_id"],
        currency=checkout["currency"],
        total_amount=checkout["total_amount"],
        platform_fee_amount=checkout["platform_fee_amount"],
        payment_id=str(payment.id),
        sellers=sellers,
        delivery_address=checkout["delivery_address"],
        cause=cause,
    )
    return order, allocations
