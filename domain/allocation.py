"""Allocation: what one seller is owed from one order, net of refunds."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import AllocationStateError, RefundExceedsRemainingError
from domain.ids import allocation_id
from domain.money import is_positive_amount, prorate
from domain.order import REFUND_FAILED, REFUND_SUCCEEDED

# Where an allocation's payout is: still owed to the seller, or taken by a settlement.
PENDING = "pending"
SETTLED = "settled"


class Allocation(Aggregate):
    """One order's share for one seller, charged at a fixed fee rate."""

    @staticmethod
    def create_id(order_id: str, seller_id: str, **_: Any) -> UUID:
        return allocation_id(UUID(order_id), seller_id)

    class Created(Aggregate.Created):
        """Version 2 adds ``granularity``: the provider takes the currency only in multiples of it.
        Version 3 adds ``payment_reference``: the provider's reference of the payment that placed it."""

        class_version = 3
        order_id: str
        seller_id: str
        customer_id: str
        payment_id: str
        currency: str
        subtotal_amount: int
        fee_bps: int
        platform_fee_amount: int
        payout_amount: int
        items: list[dict[str, Any]]
        cause: dict[str, Any]
        granularity: int
        payment_reference: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["granularity"] = 1  # stored before granular currencies were charged at all

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["payment_reference"] = None  # not carried then: the payment itself says

    @event("Created")
    def __init__(
        self,
        order_id: str,
        seller_id: str,
        customer_id: str,
        payment_id: str,
        currency: str,
        subtotal_amount: int,
        fee_bps: int,
        platform_fee_amount: int,
        payout_amount: int,
        items: list[dict[str, Any]],
        cause: dict[str, Any],
        granularity: int,
        payment_reference: str | None = None,
    ) -> None:
        self.order_id = order_id
        self.seller_id = seller_id
        self.customer_id = customer_id
        self.payment_id = payment_id
        self.currency = currency
        self.subtotal_amount = subtotal_amount
        self.fee_bps = fee_bps
        self.platform_fee_amount = platform_fee_amount
        self.payout_amount = payout_amount
        self.items = items
        self.granularity = granularity  # refunds and fee reversals are multiples of it
        # The succeeded payment's provider reference (fixed once it succeeded), which the seller's
        # transfers draw on; None when placed before allocations carried it (read the payment).
        self.payment_reference = payment_reference
        self.refunded_amount = 0
        self.platform_fee_reversed_amount = 0
        self.payout_reversed_amount = 0
        self.settlement_id: str | None = None
        self.refunds: list[dict[str, Any]] = []
        self.disputed_amount = 0
        self.dispute_reversals: dict[str, dict[str, Any]] = {}
        self.failed_refund_ids: list[str] = []

    @property
    def refundable_amount(self) -> int:
        return self.subtotal_amount - self.refunded_amount - self.disputed_amount

    @property
    def net_reversed_amount(self) -> int:
        """What is gone from this allocation: refunds plus dispute withdrawals, net of
        reinstatements and failed refunds. The fee rule is stated on this amount."""
        return self.refunded_amount + self.disputed_amount

    @property
    def is_settled(self) -> bool:
        return self.settlement_id is not None

    @property
    def status(self) -> str:
        """Whether this allocation's payout is still owed (``pending``) or taken by a settlement."""
        return SETTLED if self.is_settled else PENDING

    def fee_reversed_at(self, net_reversed: int) -> int:
        """The fee rule: the platform fee reversed once ``net_reversed`` of the subtotal is gone,
        ``round-half-up(fee * net_reversed / subtotal)``, rounded once on the cumulative amount
        (to the allocation's granularity)."""
        if self.subtotal_amount == 0:
            return 0
        return prorate(self.platform_fee_amount, net_reversed, self.subtotal_amount, self.granularity)

    def reversal_for(self, amount: int) -> tuple[int, int]:
        """(fee reversed, payout reversed) for refunding ``amount`` more.

        Whatever came before (refunds, disputes withdrawn or reinstated, failed refunds), the fee
        reversed afterwards is what the rule gives for the new net amount, at this allocation's
        own rate; the payout takes the rest, so the two always sum to ``amount``.
        """
        if not is_positive_amount(amount) or amount > self.refundable_amount:
            raise RefundExceedsRemainingError(
                f"refund of {amount} exceeds the {self.refundable_amount} left to refund "
                f"for seller {self.seller_id}"
            )
        fee_total = self.fee_reversed_at(self.net_reversed_amount + amount)
        fee_reversed = fee_total - self.platform_fee_reversed_amount
        return fee_reversed, amount - fee_reversed

    def restoration_for(self, amount: int) -> tuple[int, int]:
        """(fee restored, payout restored) when ``amount`` of what is gone comes back (a won
        dispute, a refund that failed): the fee reversed goes back to what the rule gives for
        the smaller net amount, which need not be what the returning part itself reversed."""
        if not is_positive_amount(amount) or amount > self.net_reversed_amount:
            raise AllocationStateError(
                f"cannot give back {amount}: only {self.net_reversed_amount} is refunded or withdrawn"
            )
        fee_restored = self.platform_fee_reversed_amount - self.fee_reversed_at(
            self.net_reversed_amount - amount
        )
        return fee_restored, amount - fee_restored

    def refund(self, refund_id: str, amount: int, cause: dict[str, Any]) -> dict[str, Any]:
        fee_reversed, payout_reversed = self.reversal_for(amount)
        self._refunded(refund_id, amount, fee_reversed, payout_reversed, self.settlement_id, cause)
        return {
            "seller_id": self.seller_id,
            "allocation_id": str(self.id),
            "amount": amount,
            "platform_fee_reversed_amount": fee_reversed,
            "payout_reversed_amount": payout_reversed,
            "carried_as_adjustment": self.is_settled,
        }

    @event("Refunded")
    def _refunded(
        self,
        refund_id: str,
        amount: int,
        platform_fee_reversed_amount: int,
        payout_reversed_amount: int,
        settled_by: str | None,
        cause: dict[str, Any],
    ) -> None:
        """A refund; when ``settled_by`` is set the payout was already settled and the
        reversal is a negative adjustment owed by the seller's next settlement."""
        self.refunded_amount += amount
        self.platform_fee_reversed_amount += platform_fee_reversed_amount
        self.payout_reversed_amount += payout_reversed_amount
        self.refunds.append(
            {
                "refund_id": refund_id,
                "amount": amount,
                "platform_fee_reversed_amount": platform_fee_reversed_amount,
                "payout_reversed_amount": payout_reversed_amount,
                "adjustment_of": settled_by,
            }
        )

    def fail_refund(self, refund_id: str, failure_id: str, cause: dict[str, Any]) -> dict[str, Any]:
        """The provider failed ``refund_id`` after it was recorded: its amount is no longer refunded.

        The fee reversed goes back to what the rule gives for what stays refunded or withdrawn
        (the refund's own fee reversal when nothing came after it); the payout reversed goes back
        by the rest. Once settled, that payout is a positive adjustment (entry ``failure_id``)
        owed to the seller by the next settlement, offsetting any negative adjustment the refund
        carried. Returns what was given back, shaped like :meth:`refund`'s reversal.
        """
        refund = self.refund_entry(refund_id)
        if refund is None:
            raise AllocationStateError(f"no refund {refund_id} on this allocation")
        if refund_id in self.failed_refund_ids:
            raise AllocationStateError(f"refund {refund_id} already failed on this allocation")
        amount = refund["amount"]
        fee_restored, payout_restored = self.restoration_for(amount)
        self._refund_failed(
            refund_id, failure_id, amount, fee_restored, payout_restored, self.settlement_id, cause
        )
        return {
            "seller_id": self.seller_id,
            "allocation_id": str(self.id),
            "amount": amount,
            "platform_fee_restored_amount": fee_restored,
            "payout_restored_amount": payout_restored,
            "carried_as_adjustment": self.is_settled,
        }

    def refund_entry(self, refund_id: str) -> dict[str, Any] | None:
        """The refund ``refund_id`` as this allocation booked it (not a dispute's or a failure's
        entry), if any."""
        return next(
            (
                r
                for r in self.refunds
                if r["refund_id"] == refund_id and "dispute_id" not in r and "failure_of" not in r
            ),
            None,
        )

    def refund_status(self, refund_id: str) -> str | None:
        """``succeeded`` or ``failed`` for a refund this allocation booked, else None."""
        if self.refund_entry(refund_id) is None:
            return None
        return REFUND_FAILED if refund_id in self.failed_refund_ids else REFUND_SUCCEEDED

    @event("RefundFailed")
    def _refund_failed(
        self,
        refund_id: str,
        failure_id: str,
        amount: int,
        platform_fee_restored_amount: int,
        payout_restored_amount: int,
        settled_by: str | None,
        cause: dict[str, Any],
    ) -> None:
        self.refunded_amount -= amount
        self.platform_fee_reversed_amount -= platform_fee_restored_amount
        self.payout_reversed_amount -= payout_restored_amount
        self.failed_refund_ids.append(refund_id)
        # Kept like a won dispute's entry, negative: once settled, owed to the seller.
        self.refunds.append(
            {
                "refund_id": failure_id,
                "amount": -amount,
                "platform_fee_reversed_amount": -platform_fee_restored_amount,
                "payout_reversed_amount": -payout_restored_amount,
                "adjustment_of": settled_by,
                "failure_of": refund_id,
            }
        )

    def settle(self, settlement_id: str, cause: dict[str, Any]) -> None:
        if self.settlement_id is not None:
            raise AllocationStateError(f"allocation already settled by {self.settlement_id}")
        self._settled(settlement_id, self.payout_amount - self.payout_reversed_amount, cause)

    @event("Settled")
    def _settled(self, settlement_id: str, payout_amount: int, cause: dict[str, Any]) -> None:
        self.settlement_id = settlement_id

    @property
    def unsettled_adjustments(self) -> list[dict[str, Any]]:
        """Refunds after settlement whose negative adjustment no settlement has taken yet."""
        return [
            r
            for r in self.refunds
            if r["adjustment_of"] and not r.get("adjusted_by") and not r.get("transfer_reversed_by")
        ]

    @property
    def settleable_adjustments(self) -> list[dict[str, Any]]:
        """Unsettled adjustments a settlement may take: not those whose payout a transfer reversal
        requested (and not yet resolved) may already have recovered at the provider."""
        return [r for r in self.unsettled_adjustments if not r.get("reversal_requested")]

    def request_transfer_reversal(self, refund_id: str, reversal_id: str, cause: dict[str, Any]) -> None:
        """The reversal ``reversal_id`` is about to be asked of the provider: until it is recorded
        or abandoned, no settlement takes the adjustment (the seller would pay it twice)."""
        adjustment = self.recoverable_adjustment(refund_id)
        if adjustment is None:
            raise AllocationStateError(f"no unsettled negative adjustment for refund {refund_id} to recover")
        refund = next(r for r in self.refunds if r["refund_id"] == refund_id)
        if refund.get("reversal_requested") != reversal_id:
            self._transfer_reversal_requested(refund_id, reversal_id, adjustment["amount"], cause)

    @event("TransferReversalRequested")
    def _transfer_reversal_requested(
        self, refund_id: str, reversal_id: str, amount: int, cause: dict[str, Any]
    ) -> None:
        for refund in self.refunds:
            if refund["refund_id"] == refund_id:
                refund["reversal_requested"] = reversal_id

    def abandon_transfer_reversal(self, refund_id: str, reason: str, cause: dict[str, Any]) -> None:
        """The provider holds no such reversal (refused, or looked up and absent): the adjustment is
        carried to the next settlement again."""
        refund = next((r for r in self.refunds if r["refund_id"] == refund_id), None)
        if refund is not None and refund.get("reversal_requested") and not refund.get("transfer_reversed_by"):
            self._transfer_reversal_abandoned(refund_id, refund["reversal_requested"], reason, cause)

    @event("TransferReversalAbandoned")
    def _transfer_reversal_abandoned(
        self, refund_id: str, reversal_id: str, reason: str, cause: dict[str, Any]
    ) -> None:
        for refund in self.refunds:
            if refund["refund_id"] == refund_id:
                refund["reversal_requested"] = None

    def recoverable_adjustment(self, refund_id: str) -> dict[str, Any] | None:
        """The unsettled negative adjustment of ``refund_id`` that a reversal of the paid-out
        settlement's transfer could recover instead: {refund_id, settlement_id, amount}, else None."""
        refund = next((r for r in self.unsettled_adjustments if r["refund_id"] == refund_id), None)
        if refund is None or refund["payout_reversed_amount"] <= 0:
            return None
        return {
            "refund_id": refund_id,
            "settlement_id": refund["adjustment_of"],
            "amount": refund["payout_reversed_amount"],
        }

    def reverse_transfer(
        self, refund_id: str, settlement_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        """The payout reversed by ``refund_id`` was taken back from the seller by reversing the
        transfer that paid ``settlement_id``: its negative adjustment is recovered, no settlement
        takes it again."""
        adjustment = self.recoverable_adjustment(refund_id)
        if adjustment is None:
            raise AllocationStateError(f"no unsettled negative adjustment for refund {refund_id} to recover")
        if adjustment["settlement_id"] != settlement_id:
            raise AllocationStateError(
                f"refund {refund_id} adjusts settlement {adjustment['settlement_id']}, not {settlement_id}"
            )
        if amount != adjustment["amount"]:
            raise AllocationStateError(
                f"a transfer reversal of {amount} does not recover the {adjustment['amount']} "
                f"owed for refund {refund_id}"
            )
        if not provider_reference:
            raise AllocationStateError("a transfer reversal needs the provider's reference")
        self._transfer_reversed(refund_id, settlement_id, amount, provider_reference, cause)

    @event("TransferReversed")
    def _transfer_reversed(
        self, refund_id: str, settlement_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        for refund in self.refunds:
            if refund["refund_id"] == refund_id:
                refund["transfer_reversed_by"] = provider_reference

    def settle_adjustment(self, refund_id: str, settlement_id: str, cause: dict[str, Any]) -> None:
        refund = next((r for r in self.settleable_adjustments if r["refund_id"] == refund_id), None)
        if refund is None:
            raise AllocationStateError(f"no unsettled adjustment for refund {refund_id}")
        self._adjustment_settled(refund_id, settlement_id, -refund["payout_reversed_amount"], cause)

    @event("AdjustmentSettled")
    def _adjustment_settled(
        self, refund_id: str, settlement_id: str, amount: int, cause: dict[str, Any]
    ) -> None:
        for refund in self.refunds:
            if refund["refund_id"] == refund_id:
                refund["adjusted_by"] = settlement_id

    def release(self, settlement_id: str, cause: dict[str, Any]) -> None:
        """A failed payout: what this settlement took becomes payable again."""
        if self.settlement_id != settlement_id and not any(
            r.get("adjusted_by") == settlement_id for r in self.refunds
        ):
            raise AllocationStateError(f"allocation is not part of settlement {settlement_id}")
        self._released(settlement_id, cause)

    @event("Released")
    def _released(self, settlement_id: str, cause: dict[str, Any]) -> None:
        if self.settlement_id == settlement_id:
            self.settlement_id = None
        for refund in self.refunds:
            if refund.get("adjusted_by") == settlement_id:
                refund["adjusted_by"] = None
            if refund["adjustment_of"] == settlement_id:
                # The payout it would have adjusted never happened: the refund simply
                # reduces what is pending again.
                refund["adjustment_of"] = None

    # ---- disputes: withdrawn funds come off like a refund, reinstated funds go back ------------

    def reverse_for_dispute(
        self, dispute_id: str, reversal_id: str, amount: int, cause: dict[str, Any]
    ) -> dict[str, Any]:
        """A dispute took ``amount`` of this allocation's money back: reverse it as a refund would
        (fee at this allocation's rate; once settled, a negative adjustment of that settlement)."""
        if dispute_id in self.dispute_reversals:
            raise AllocationStateError(f"dispute {dispute_id} is already reversed on this allocation")
        fee_reversed, payout_reversed = self.reversal_for(amount)
        self._dispute_reversed(
            dispute_id, reversal_id, amount, fee_reversed, payout_reversed, self.settlement_id, cause
        )
        return {
            "seller_id": self.seller_id,
            "allocation_id": str(self.id),
            "amount": amount,
            "platform_fee_reversed_amount": fee_reversed,
            "payout_reversed_amount": payout_reversed,
            "carried_as_adjustment": self.is_settled,
        }

    @event("DisputeReversed")
    def _dispute_reversed(
        self,
        dispute_id: str,
        reversal_id: str,
        amount: int,
        platform_fee_reversed_amount: int,
        payout_reversed_amount: int,
        settled_by: str | None,
        cause: dict[str, Any],
    ) -> None:
        self.disputed_amount += amount
        self.platform_fee_reversed_amount += platform_fee_reversed_amount
        self.payout_reversed_amount += payout_reversed_amount
        self.refunds.append(
            {
                "refund_id": reversal_id,
                "amount": amount,
                "platform_fee_reversed_amount": platform_fee_reversed_amount,
                "payout_reversed_amount": payout_reversed_amount,
                "adjustment_of": settled_by,
                "dispute_id": dispute_id,
            }
        )
        self.dispute_reversals[dispute_id] = {
            "reversal_id": reversal_id,
            "amount": amount,
            "platform_fee_reversed_amount": platform_fee_reversed_amount,
            "payout_reversed_amount": payout_reversed_amount,
            "restored": False,
        }

    def restore_dispute(self, dispute_id: str, restore_id: str, cause: dict[str, Any]) -> None:
        """A won dispute gave the money back: the amount its reversal took comes back, and the fee
        reversed returns to what the rule gives for what is still refunded or withdrawn (so the
        fee and payout given back need not mirror the reversal's, when refunds came in between).
        Once settled, the payout given back is a positive adjustment owed by the next settlement."""
        reversal = self.dispute_reversals.get(dispute_id)
        if reversal is None or reversal["restored"]:
            raise AllocationStateError(f"no reversal of dispute {dispute_id} to restore on this allocation")
        fee_restored, payout_restored = self.restoration_for(reversal["amount"])
        self._dispute_restored(
            dispute_id,
            restore_id,
            reversal["amount"],
            fee_restored,
            payout_restored,
            self.settlement_id,
            cause,
        )

    @event("DisputeRestored")
    def _dispute_restored(
        self,
        dispute_id: str,
        restore_id: str,
        amount: int,
        platform_fee_restored_amount: int,
        payout_restored_amount: int,
        settled_by: str | None,
        cause: dict[str, Any],
    ) -> None:
        self.disputed_amount -= amount
        self.platform_fee_reversed_amount -= platform_fee_restored_amount
        self.payout_reversed_amount -= payout_restored_amount
        # Kept like a reversal with negative amounts, so settlement, release and adjustments
        # treat both alike: once settled it is owed to the seller by the next settlement.
        self.refunds.append(
            {
                "refund_id": restore_id,
                "amount": -amount,
                "platform_fee_reversed_amount": -platform_fee_restored_amount,
                "payout_reversed_amount": -payout_restored_amount,
                "adjustment_of": settled_by,
                "dispute_id": dispute_id,
            }
        )
        self.dispute_reversals[dispute_id]["restored"] = True
