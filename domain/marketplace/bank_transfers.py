"""Bank transfers confirmed by an admin: receipts that accumulate on the payment, and refunds an
admin sends back by hand."""

from __future__ import annotations

from typing import Any

from domain.marketplace.base import MarketplaceBase
from domain.order import Order
from domain.payment import Payment


class BankTransferTransactions(MarketplaceBase):
    """Receipts of money sent by bank transfer, and refunds marked paid."""

    def record_receipt(
        self, payment_id: str, amount: int, bank_reference: str, received_at: str, cause: dict[str, Any]
    ) -> Payment:
        """One more receipt on the payment (a bank reference recorded already changes nothing)."""

        def command(attempt: int) -> Payment:
            payment = self.get_payment(payment_id)
            if payment.record_receipt(amount, bank_reference, received_at, cause):
                self.save(payment)
            return payment

        return self._with_retry(command)

    def mark_refund_paid(
        self, order_id: str, refund_id: str, paid_reference: str, cause: dict[str, Any]
    ) -> Order:
        """An admin sent a refund waiting to be paid by hand (marking it twice changes nothing)."""

        def command(attempt: int) -> Order:
            order = self.get_order(order_id)
            if order.mark_refund_paid(refund_id, paid_reference, cause):
                self.save(order)
            return order

        return self._with_retry(command)
