"""Refunds and disputes: money back, reversed on order, payment and allocations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain import order as order_status
from domain import payment as payment_status
from domain.allocation import Allocation
from domain.errors import (
    InvalidRefundError,
    RefundExceedsRemainingError,
)
from domain.ids import (
    dispute_restore_id,
    dispute_reversal_id,
    refund_failure_id,
)
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.money import is_positive_amount, split_proportionally
from domain.order import Order
from domain.payment import Payment


class RefundTransactions(MarketplaceBase):
    """Refunds and disputes: money back, reversed on order, payment and allocations."""

    def plan_refund(
        self, order_id: str, amount: int, seller_id: str | None
    ) -> tuple[Order, list[tuple[Allocation, int]]]:
        """Check a refund and work out how much comes off each allocation."""
        order = self.get_order(order_id)
        if not is_positive_amount(amount):
            raise InvalidRefundError("refund amount must be a positive integer")
        allocations = [self._allocation(s["allocation_id"]) for s in order.sellers]
        granularity = allocations[0].granularity if allocations else 1
        if amount % granularity:
            raise InvalidRefundError(
                f"the payment provider takes {order.currency} only in multiples of {granularity} "
                f"minor units; a refund of {amount} is not one"
            )
        if seller_id is not None:
            targets = [a for a in allocations if a.seller_id == seller_id]
            if not targets:
                raise InvalidRefundError(f"seller {seller_id} has no part in this order", field="seller_id")
            allocation = targets[0]
            if amount > allocation.refundable_amount:
                raise RefundExceedsRemainingError(
                    f"refund of {amount} exceeds the {allocation.refundable_amount} "
                    f"left to refund for seller {seller_id}"
                )
            return order, [(allocation, amount)]
        if amount > order.refundable_amount:
            raise RefundExceedsRemainingError(
                f"refund of {amount} exceeds the {order.refundable_amount} left to refund"
            )
        left = [a.refundable_amount for a in allocations]
        if amount > sum(left):  # disputes withdrew the rest
            raise RefundExceedsRemainingError(f"refund of {amount} exceeds the {sum(left)} left to refund")
        parts = split_proportionally(amount, left, granularity)
        return order, [(a, part) for a, part in zip(allocations, parts, strict=True) if part > 0]

    @_retry_on_conflict
    def refund_order(
        self,
        order_id: str,
        amount: int,
        seller_id: str | None,
        refund_id: str,
        cause: dict[str, Any],
    ) -> dict[str, Any]:
        """Record a refund on the order, its payment and the allocations it reverses."""
        existing = self.get_order(order_id)
        for refund in existing.refunds:
            if refund["id"] == refund_id:
                return self.refund_view(existing, refund)
        order, plan = self.plan_refund(order_id, amount, seller_id)
        reversals = [allocation.refund(refund_id, part, cause) for allocation, part in plan]
        order.record_refund(refund_id, amount, reversals, cause)
        payment = self.get_payment(order.payment_id)
        payment.record_refund(refund_id, amount, cause)
        self.save(order, payment, *(allocation for allocation, _ in plan))
        return self.refund_view(order, order.refunds[-1])

    def reverse_failed_refund(
        self, order_id: str, refund_id: str, reason: str, cause: dict[str, Any]
    ) -> dict[str, Any]:
        """A refund recorded as done failed at the provider: undo its booking in one atomic save.

        Each allocation gives back the refund's part (``Allocation.RefundFailed``: amount, fee and
        payout, the fee back to what the rule gives for what stays refunded; once settled, a
        positive adjustment owed to the seller), the order (``Order.RefundFailed``; the refund's
        status becomes ``failed``) and the payment (``Payment.RefundFailed``) no longer count it.
        Returns the refund as :meth:`refund_view` shows it. A refund that already failed changes
        nothing; a refund id the order does not have is a RefundNotFoundError.
        """

        def command(attempt: int) -> dict[str, Any]:
            order = self.get_order(order_id)
            refund = order.refund(refund_id)
            if refund["status"] == order_status.REFUND_FAILED:
                return self.refund_view(order, refund)
            allocations = [self._allocation(part["allocation_id"]) for part in refund["allocations"]]
            given_back = [
                allocation.fail_refund(
                    refund_id, str(refund_failure_id(refund_id, str(allocation.id))), cause
                )
                for allocation in allocations
            ]
            order.fail_refund(refund_id, given_back, reason, cause)
            payment = self.get_payment(order.payment_id)
            payment.fail_refund(refund_id, refund["amount"], cause)
            self.save(order, payment, *allocations)
            return self.refund_view(order, order.refund(refund_id))

        return self._with_retry(command)

    @staticmethod
    def refund_view(order: Order, refund: dict[str, Any]) -> dict[str, Any]:
        """A refund as the API shows it; ``status`` is ``succeeded`` or (after the provider failed
        it) ``failed``."""
        return {
            "id": refund["id"],
            "order_id": str(order.id),
            "status": refund.get("status", order_status.REFUND_SUCCEEDED),
            "amount": refund["amount"],
            "currency": order.currency,
            "reason": refund.get("reason"),
            "allocations": [
                {
                    "seller_id": a["seller_id"],
                    "allocation_id": a["allocation_id"],
                    "amount": a["amount"],
                    "platform_fee_reversed_amount": a["platform_fee_reversed_amount"],
                    "payout_reversed_amount": a["payout_reversed_amount"],
                    "carried_as_adjustment": a["carried_as_adjustment"],
                }
                for a in refund["allocations"]
            ],
        }

    def record_dispute(
        self,
        payment_id: str,
        dispute_id: str,
        amount: int,
        reason: str,
        status: str,
        funds: str,
        closed: bool,
        cause: dict[str, Any],
        appealed: bool = False,
    ) -> Payment:
        """Bring a dispute forward to what the provider reports, never backwards.

        ``funds`` is where the provider says the money is (kept, withdrawn, reinstated).
        Withdrawn funds are reversed on the allocations as a refund would reverse them
        (in proportion to what each has left); reinstated funds give each allocation back the
        amount withdrawn from it, the fee reversed going back to what the fee rule gives for what
        stays refunded or withdrawn. A closed dispute changes no more, except that a lost one
        opens again when appealed, and funds the provider reinstates (an appeal won) always come
        back. Redeliveries and stale reports change nothing.
        """
        rank = {
            payment_status.DISPUTE_FUNDS_KEPT: 0,
            payment_status.DISPUTE_FUNDS_WITHDRAWN: 1,
            payment_status.DISPUTE_FUNDS_REINSTATED: 2,
        }
        if funds not in rank:
            raise ValueError(f"unknown dispute funds state {funds!r}")

        def command(attempt: int) -> Payment:
            payment = self.get_payment(payment_id)
            dispute = payment.disputes.get(dispute_id)
            if dispute is not None and dispute["closed"]:
                reinstated = rank[funds] == 2 and dispute["funds"] == payment_status.DISPUTE_FUNDS_WITHDRAWN
                if not (appealed or reinstated) or not payment.reopen_dispute(dispute_id, status, cause):
                    return payment
            if dispute is None:
                payment.open_dispute(dispute_id, amount, reason, status, cause)
                dispute = payment.disputes[dispute_id]
            changed: dict[UUID, Allocation] = {}
            if rank[funds] >= 1 and dispute["funds"] == payment_status.DISPUTE_FUNDS_KEPT:
                allocations = self._allocations_of(payment)
                left = [a.refundable_amount for a in allocations]
                withdrawn = min(dispute["amount"], sum(left))
                payment.withdraw_dispute_funds(dispute_id, withdrawn, cause)
                parts = _dispute_parts(withdrawn, left, allocations)
                for allocation, part in zip(allocations, parts, strict=True):
                    if part > 0:
                        reversal = str(dispute_reversal_id(dispute_id, str(allocation.id)))
                        allocation.reverse_for_dispute(dispute_id, reversal, part, cause)
                        changed[allocation.id] = allocation
            if rank[funds] == 2 and dispute["funds"] == payment_status.DISPUTE_FUNDS_WITHDRAWN:
                payment.reinstate_dispute_funds(dispute_id, cause)
                for allocation in list(changed.values()) or self._allocations_of(payment):
                    if dispute_id in allocation.dispute_reversals:
                        restore = str(dispute_restore_id(dispute_id, str(allocation.id)))
                        allocation.restore_dispute(dispute_id, restore, cause)
                        changed[allocation.id] = allocation
            if closed:
                payment.close_dispute(dispute_id, status, cause)
            elif rank[funds] >= rank[dispute["funds"]]:  # a report behind on the funds is stale
                payment.update_dispute_status(dispute_id, status, cause)
            self.save(payment, *changed.values())
            return payment

        return self._with_retry(command)


def _dispute_parts(withdrawn: int, left: list[int], allocations: list[Allocation]) -> list[int]:
    """What a dispute withdraws from each allocation: by largest remainder over what each has
    left, in multiples of the currency's granularity when the provider's amount is one (it always
    is for the provider's own disputes; else at one minor unit, as the provider reported it)."""
    if not withdrawn:
        return [0] * len(allocations)
    granularity = allocations[0].granularity
    return split_proportionally(withdrawn, left, granularity if withdrawn % granularity == 0 else 1)
