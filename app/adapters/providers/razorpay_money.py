"""Razorpay refunds, Route transfers to linked accounts (``acc_…``) and their reversals, and the
lists ``reconcile`` reads. Every write carries our id in ``notes`` and is looked up by it after an
unknown outcome (see razorpay_api for what Razorpay's idempotency covers)."""

from __future__ import annotations

import logging
import re
from typing import Any

from razorpay.errors import BadRequestError

from app.adapters.providers.currencies import razorpay_rule, to_provider
from app.adapters.providers.razorpay_api import RazorpayApi, notes_of
from domain.ports import PayoutResult, ProviderRefund, RefundResult

log = logging.getLogger(__name__)

# How reconcile reads each Razorpay status, in the vocabulary it compares with tally's outcomes.
ORDER_STATUS = {"paid": "succeeded", "created": "requires_action", "attempted": "requires_payment_method"}
REFUND_STATUS = {"processed": "succeeded", "pending": "pending", "failed": "failed"}


def refund_key(key: str) -> str:
    """Our key as X-Refund-Idempotency takes it: letters, digits, ``-`` and ``_``, 10 or more
    (a later attempt's ``<refund id>:<n>`` becomes ``<refund id>_<n>``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", key).ljust(10, "_")


class RazorpayMoney(RazorpayApi):
    """Money leaving the platform: refunds to customers, transfers to sellers and back."""

    # ---- refunds ---------------------------------------------------------------------------

    def refund(
        self, *, provider_reference: str, amount: int, currency: str, refund_id: str, idempotency_key: str
    ) -> RefundResult:
        """A normal-speed refund of the order's captured payment, idempotent on our key
        (``X-Refund-Idempotency``) and carrying ``notes.refund_id``: pending until processed."""
        rzp_payment = self.payment_of(provider_reference)
        params = {
            "amount": to_provider(razorpay_rule(currency), amount),
            "speed": "normal",
            "notes": {"refund_id": refund_id, "order_reference": provider_reference},
        }

        def create() -> RefundResult:
            try:
                return self.refund_result(
                    self.call(
                        f"refund {refund_id}",
                        self.client.payment.refund,
                        rzp_payment,
                        params,
                        headers={"X-Refund-Idempotency": refund_key(idempotency_key)},
                    )
                )
            except BadRequestError as exc:  # more than is left, a payment not captured, ...
                self.refuse("the refund", exc)

        return self.write(
            f"refund {refund_id}", create, lambda: self.find_refund(provider_reference, refund_id)
        )

    def _refunds(self, provider_reference: str) -> list[dict[str, Any]]:
        rzp_payment = self.taken_payment(provider_reference)
        if rzp_payment is None:
            return []
        return self.all(
            f"refunds of {rzp_payment['id']}", self.client.payment.fetch_multiple_refund, rzp_payment["id"]
        )

    def find_refund(self, provider_reference: str, refund_id: str) -> RefundResult | None:
        for refund in self._refunds(provider_reference):
            if notes_of(refund, "refund_id") == refund_id:
                return self.refund_result(refund)
        return None

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        return [self.provider_refund(refund) for refund in self._refunds(provider_reference)]

    # ---- Route transfers to linked accounts, and their reversals ----------------------------------

    def payout(
        self,
        *,
        seller_id: str,
        amount: int,
        currency: str,
        transfer_group: str,
        settlement_id: str,
        allocation_id: str,
        source_payment: str | None,
        idempotency_key: str,
        destination: str | None = None,
    ) -> PayoutResult:
        """A transfer from the order's captured payment (``source_payment``, a Razorpay order) to the
        seller's linked account ("Create Transfers From Payments"). When the payment has less left to
        transfer than the line (the line was paid once and reversed: a reversal returns the money to
        the platform's balance) or the order was not paid through Razorpay (a bank transfer), a direct
        transfer from the balance ("Create Direct Transfers") instead. Refused (a failed result)
        without a linked account or when Razorpay says no."""
        if not destination or not destination.startswith("acc_"):
            return PayoutResult(False, None, "no_linked_account")
        provider_amount = to_provider(razorpay_rule(currency), amount)
        transfer: dict[str, Any] = {
            "account": destination,
            "amount": provider_amount,
            "currency": currency,
            "notes": {
                "settlement_id": settlement_id,
                "allocation_id": allocation_id,
                "order_id": transfer_group,
                "seller_id": seller_id,
            },
            "on_hold": False,
        }

        def create() -> PayoutResult:
            paid = self.taken_payment(source_payment) if source_payment else None
            if paid is None and (source_payment or "").startswith("order_"):
                return PayoutResult(False, None, "payment_not_captured")
            left = int(paid.get("amount") or 0) - int(paid.get("amount_transferred") or 0) if paid else 0
            try:
                if paid is not None and provider_amount <= left:
                    made = self.call(
                        f"transfer {idempotency_key}",
                        self.client.payment.transfer,
                        paid["id"],
                        {"transfers": [transfer]},
                    )
                else:  # money Razorpay did not collect (a bank transfer), or a line paid once and reversed
                    direct = {key: transfer[key] for key in ("account", "amount", "currency", "notes")}
                    made = self.call(f"transfer {idempotency_key}", self.client.transfer.create, direct)
            except BadRequestError as exc:
                log.warning("razorpay refused transfer %s to %s: %s", idempotency_key, destination, exc)
                return PayoutResult(False, None, str(exc)[:200] or "refused")
            items = made.get("items") or [made]
            return self.paid(items[0])

        return self.write(
            f"transfer {idempotency_key}",
            create,
            lambda: self.find_payout(settlement_id, transfer_group, allocation_id),
        )

    def find_payout(
        self, settlement_id: str, transfer_group: str, allocation_id: str | None
    ) -> PayoutResult | None:
        """The transfer whose notes name the settlement and the line (Razorpay lists transfers by
        time, not by notes: every transfer is read, newest first)."""
        for transfer in self.all("transfers", self.client.transfer.all):
            if notes_of(transfer, "settlement_id") == settlement_id and (
                allocation_id is None or notes_of(transfer, "allocation_id") == allocation_id
            ):
                return self.paid(transfer)
        return None

    def reverse_payout(
        self,
        *,
        provider_reference: str,
        amount: int,
        currency: str,
        reversal_id: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> PayoutResult:
        """A reversal of ``amount`` of a transfer (the linked account pays it back)."""
        params = {
            "amount": to_provider(razorpay_rule(currency), amount),
            "notes": {**metadata, "reversal_id": reversal_id},
        }

        def create() -> PayoutResult:
            try:
                return self.paid(
                    self.call(
                        f"reversal {reversal_id}", self.client.transfer.reverse, provider_reference, params
                    )
                )
            except BadRequestError as exc:
                log.warning("razorpay refused reversal %s of %s: %s", reversal_id, provider_reference, exc)
                return PayoutResult(False, None, str(exc)[:200] or "refused")

        return self.write(
            f"reversal {reversal_id}",
            create,
            lambda: self.find_payout_reversal(provider_reference, reversal_id),
        )

    def find_payout_reversal(self, payout_reference: str, reversal_id: str) -> PayoutResult | None:
        for reversal in self.all(
            f"reversals of {payout_reference}", self.client.transfer.reversals, payout_reference
        ):
            if notes_of(reversal, "reversal_id") == reversal_id:
                return self.paid(reversal)
        return None

    # ---- what reconcile reads, in the shape it compares (ids, amounts, statuses, our ids) -------

    def list_payment_intents(self, created_gte: int) -> list[dict[str, Any]]:
        """Razorpay Orders (one per tally payment, ``receipt`` = our payment id)."""
        return [
            {
                "id": order["id"],
                "amount": order.get("amount"),
                "currency": order.get("currency"),
                "status": ORDER_STATUS.get(str(order.get("status")), str(order.get("status"))),
                "created": order.get("created_at", 0),
                "metadata": {"payment_id": order.get("receipt")},
            }
            for order in self.all("orders", self.client.order.all, **{"from": created_gte})
        ]

    def list_refunds(
        self, created_gte: int | None = None, payment_intent: str | None = None
    ) -> list[dict[str, Any]]:
        listed = (
            self._refunds(payment_intent)
            if payment_intent
            else self.all("refunds", self.client.refund.all, **({"from": created_gte} if created_gte else {}))
        )
        return [
            {
                "id": refund["id"],
                "amount": refund.get("amount"),
                "status": REFUND_STATUS.get(str(refund.get("status")), str(refund.get("status"))),
                "payment_intent": refund.get("payment_id"),
                "created": refund.get("created_at", 0),
                "metadata": refund.get("notes") if isinstance(refund.get("notes"), dict) else {},
            }
            for refund in listed
        ]

    def list_transfers(self, created_gte: int) -> list[dict[str, Any]]:
        return [
            {
                "id": transfer["id"],
                "amount": transfer.get("amount"),
                "currency": transfer.get("currency"),
                "destination": transfer.get("recipient"),
                "amount_reversed": transfer.get("amount_reversed") or 0,
                "created": transfer.get("created_at", 0),
                "metadata": transfer.get("notes") if isinstance(transfer.get("notes"), dict) else {},
            }
            for transfer in self.all("transfers", self.client.transfer.all, **{"from": created_gte})
        ]
