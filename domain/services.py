"""Marketplace: the write model. Load aggregates, call their verbs, save once, atomically."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from random import random
from time import sleep
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from domain import order as order_status
from domain import payment as payment_status
from domain import settlement as settlement_status
from domain.allocation import Allocation
from domain.errors import (
    AllocationStateError,
    CheckoutConflictError,
    InvalidRefundError,
    OrderNotFoundError,
    PaymentNotFoundError,
    PaymentStateError,
    RefundExceedsRemainingError,
    SettlementRunNotFoundError,
    SettlementStateError,
    VerificationNotFoundError,
)
from domain.ids import (
    allocation_id,
    dispute_restore_id,
    dispute_reversal_id,
    order_id_for_session,
    refund_failure_id,
    seller_account_id,
    settlement_id,
)
from domain.money import is_positive_amount, split_proportionally
from domain.order import Order
from domain.payment import Payment
from domain.seller_account import SellerAccount
from domain.settlement import Settlement, SettlementRun
from domain.verification import FAILED, QUEUED, RUNNING, Verification

T = TypeVar("T")
P = ParamSpec("P")

_MAX_ATTEMPTS = 30


def _pause() -> None:
    """Wait a little, jittered, before the next attempt after a conflict."""
    sleep(0.01 * (1 + random()))


def _retry_on_conflict(method: Callable[P, T]) -> Callable[P, T]:
    """Run ``method`` again, from its reads, when its save conflicts with a concurrent one
    (an IntegrityError), up to ``_MAX_ATTEMPTS`` times; keeps the method's signature for callers."""

    @wraps(method)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise
                _pause()
        raise AssertionError("unreachable")  # pragma: nocover

    return retrying


def _as_uuid(value: str | UUID) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


class Marketplace(Application[UUID]):
    """Payments, orders and the sellers' allocations of a multi-seller marketplace."""

    name = "Marketplace"

    # ---- reads of the write model ------------------------------------------------

    def _find(self, aggregate_id: str | UUID, kind: type[T]) -> T | None:
        """The aggregate of this kind with this id (one read), or None for anything else."""
        uid = _as_uuid(aggregate_id)
        if uid is None:
            return None
        try:
            aggregate: object = self.repository.get(uid)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def get_payment(self, payment_id: str | UUID) -> Payment:
        payment = self._find(payment_id, Payment)
        if payment is None:
            raise PaymentNotFoundError(f"no payment {payment_id}")
        return payment

    def get_order(self, order_id: str | UUID) -> Order:
        order = self._find(order_id, Order)
        if order is None:
            raise OrderNotFoundError(f"no order {order_id}")
        return order

    def order_exists_for_session(self, session_id: str) -> bool:
        return order_id_for_session(session_id) in self.repository

    # ---- checkout ----------------------------------------------------------------

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

    def _current(self, payment_id: str, given: Payment | None, attempt: int) -> Payment:
        """The caller's copy on the first attempt (saves a read), a fresh one after a conflict."""
        if given is not None and attempt == 0:
            return given
        return self.get_payment(payment_id)

    @staticmethod
    def _with_retry(command: Callable[[int], T]) -> T:
        """``command(attempt)``, again after a conflicting save (it re-reads when ``attempt > 0``)."""
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return command(attempt)
            except IntegrityError:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise
                _pause()
        raise AssertionError("unreachable")  # pragma: nocover

    def _allocation(self, allocation_id_: str | UUID) -> Allocation:
        """The allocation with this id (AggregateNotFoundError if there is none, as ever)."""
        uid = allocation_id_ if isinstance(allocation_id_, UUID) else UUID(allocation_id_)
        aggregate: object = self.repository.get(uid)
        if not isinstance(aggregate, Allocation):
            raise AllocationStateError(f"{allocation_id_} is not an allocation")
        return aggregate

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

        def command(attempt: int) -> tuple[Payment, Order]:
            current = self._current(payment_id, payment, attempt)
            return self._complete(
                current, provider_reference, cause, check_order=payment is None or attempt > 0
            )

        return self._with_retry(command)

    def _complete(
        self, payment: Payment, provider_reference: str, cause: dict[str, Any], check_order: bool
    ) -> tuple[Payment, Order]:
        if payment.outcome == payment_status.SUCCEEDED:
            return payment, self.get_order(self._order_id_of(payment))
        if payment.outcome == payment_status.FAILED:
            raise PaymentStateError("payment already failed")
        order_id = order_id_for_session(payment.checkout["session_id"])
        if check_order and order_id in self.repository:
            raise CheckoutConflictError("this checkout session already placed an order")
        return self._place_order(payment, provider_reference, cause)

    @staticmethod
    def _order_id_of(payment: Payment) -> str:
        if payment.order_id is None:  # pragma: nocover - a succeeded payment always placed one
            raise PaymentStateError(f"payment {payment.id} placed no order")
        return payment.order_id

    def _place_order(
        self, payment: Payment, provider_reference: str, cause: dict[str, Any]
    ) -> tuple[Payment, Order]:
        """Succeed the payment and place its order and allocations in one atomic save."""
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
        if payment.outcome == payment_status.FAILED:
            payment.succeed_after_failure(provider_reference, str(order.id), cause)
        else:
            payment.succeed(provider_reference, str(order.id), cause)
        self.save(payment, order, *allocations)
        return payment, order

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

    # ---- refunds -----------------------------------------------------------------

    def plan_refund(
        self, order_id: str, amount: int, seller_id: str | None
    ) -> tuple[Order, list[tuple[Allocation, int]]]:
        """Check a refund and work out how much comes off each allocation."""
        order = self.get_order(order_id)
        if not is_positive_amount(amount):
            raise InvalidRefundError("refund amount must be a positive integer")
        allocations = [self._allocation(s["allocation_id"]) for s in order.sellers]
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
        parts = split_proportionally(amount, left)
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

    # ---- settlement ----------------------------------------------------------------

    @_retry_on_conflict
    def settle_allocation(self, allocation_id_: str, settlement_id: str, cause: dict[str, Any]) -> Allocation:
        allocation = self._allocation(allocation_id_)
        allocation.settle(settlement_id, cause)
        self.save(allocation)
        return allocation

    def get_settlement(self, settlement_id_: str | UUID) -> Settlement | None:
        return self._find(settlement_id_, Settlement)

    @_retry_on_conflict
    def open_settlement(
        self,
        seller_id: str,
        currency: str,
        period_start: str,
        period_end: str,
        before: datetime,
        allocation_ids: list[str],
        adjustment_refs: list[tuple[str, str]],
        cause: dict[str, Any],
    ) -> tuple[Settlement | None, bool]:
        """Open the settlement of (seller, currency, period) over what is still unsettled.

        Returns (settlement, opened_now). Re-running returns the existing settlement and
        settles nothing twice: the id is deterministic and every allocation refuses a
        second settlement. Negative adjustments are taken only while the total stays
        non-negative; otherwise they are carried on to a later settlement.
        """
        sid = settlement_id(seller_id, currency, period_start, period_end)
        existing = self.get_settlement(sid)
        if existing is not None:
            return existing, False
        touched: dict[str, Allocation] = {}
        taken: list[dict[str, Any]] = []
        for aid in allocation_ids:
            allocation = self._allocation(aid)
            if (
                allocation.is_settled
                or allocation.seller_id != seller_id
                or allocation.currency != currency
                or allocation.created_on >= before
            ):
                continue
            touched[aid] = allocation
            taken.append(
                {
                    "allocation_id": aid,
                    "order_id": allocation.order_id,
                    "payout_amount": allocation.payout_amount - allocation.payout_reversed_amount,
                }
            )
        adjustments: list[dict[str, Any]] = []
        for aid, refund_id in adjustment_refs:
            allocation = touched.get(aid) or self._allocation(aid)
            refund = next((r for r in allocation.unsettled_adjustments if r["refund_id"] == refund_id), None)
            if refund is None or allocation.seller_id != seller_id or allocation.currency != currency:
                continue
            adjustments.append(
                {
                    "allocation_id": aid,
                    "refund_id": refund_id,
                    "order_id": allocation.order_id,
                    "amount": -refund["payout_reversed_amount"],
                }
            )
            touched.setdefault(aid, allocation)
        total = sum(a["payout_amount"] for a in taken) + sum(a["amount"] for a in adjustments)
        if total < 0:  # the seller would owe us: carry the adjustments forward instead
            adjustments = []
            total = sum(a["payout_amount"] for a in taken)
        if not taken and not adjustments:
            return None, False
        settlement = Settlement(
            seller_id=seller_id,
            currency=currency,
            period_start=period_start,
            period_end=period_end,
            allocations=taken,
            adjustments=adjustments,
            total_payout_amount=total,
            cause=cause,
        )
        sid_str = str(settlement.id)
        changed = {}
        for item in taken:
            allocation = touched[item["allocation_id"]]
            allocation.settle(sid_str, cause)
            changed[item["allocation_id"]] = allocation
        for item in adjustments:
            allocation = touched[item["allocation_id"]]
            allocation.settle_adjustment(item["refund_id"], sid_str, cause)
            changed[item["allocation_id"]] = allocation
        self.save(settlement, *changed.values())
        return settlement, True

    @_retry_on_conflict
    def start_settlement_processing(self, settlement_id_: str, cause: dict[str, Any]) -> Settlement:
        settlement = self.get_settlement(settlement_id_)
        if settlement is None:
            raise SettlementStateError(f"no settlement {settlement_id_}")
        settlement.start_processing(cause)
        self.save(settlement)
        return settlement

    @_retry_on_conflict
    def finish_settlement(
        self, settlement_id_: str, succeeded: bool, reference_or_reason: str, cause: dict[str, Any]
    ) -> Settlement:
        """Record the payout's outcome; a failed payout makes its allocations payable again."""
        settlement = self.get_settlement(settlement_id_)
        if settlement is None:
            raise SettlementStateError(f"no settlement {settlement_id_}")
        if succeeded:
            settlement.mark_paid(reference_or_reason, cause)
            self.save(settlement)
            return settlement
        settlement.mark_failed(reference_or_reason, cause)
        released = {}
        sid = str(settlement.id)
        for item in [*settlement.allocations, *settlement.adjustments]:
            aid = item["allocation_id"]
            if aid not in released:
                allocation = self._allocation(aid)
                allocation.release(sid, cause)
                released[aid] = allocation
        self.save(settlement, *released.values())
        return settlement

    # ---- transfer reversals: recovering paid-out money from the seller's account ------------

    def transfer_recovery(self, allocation_id_: str, refund_id: str) -> dict[str, Any] | None:
        """What a reversal of the paid-out transfer would recover for ``refund_id`` on the allocation:
        {allocation_id, seller_id, refund_id, settlement_id, amount, currency, transfer_reference}; None when
        nothing is owed back or the settlement it adjusts was not paid by a transfer."""
        allocation = self._find(allocation_id_, Allocation)
        if allocation is None:
            return None
        adjustment = allocation.recoverable_adjustment(refund_id)
        if adjustment is None:
            return None
        settlement = self.get_settlement(adjustment["settlement_id"])
        if (
            settlement is None
            or settlement.status != settlement_status.PAID
            or settlement.provider_reference in (None, "", "nothing_to_pay")
        ):
            return None
        return {
            "allocation_id": str(allocation.id),
            "seller_id": allocation.seller_id,
            "refund_id": refund_id,
            "settlement_id": adjustment["settlement_id"],
            "amount": adjustment["amount"],
            "currency": allocation.currency,
            "transfer_reference": settlement.provider_reference,
        }

    @_retry_on_conflict
    def record_transfer_reversal(
        self,
        allocation_id_: str,
        refund_id: str,
        settlement_id_: str,
        amount: int,
        provider_reference: str,
        cause: dict[str, Any],
    ) -> Allocation:
        """Record that the refund's paid-out part was recovered by reversing the settlement's transfer."""
        settlement = self.get_settlement(settlement_id_)
        if settlement is None or settlement.status != settlement_status.PAID:
            raise SettlementStateError(
                f"settlement {settlement_id_} was not paid out: no transfer to reverse"
            )
        allocation = self._allocation(allocation_id_)
        allocation.reverse_transfer(refund_id, settlement_id_, amount, provider_reference, cause)
        self.save(allocation)
        return allocation

    # ---- settlement runs ------------------------------------------------------------

    def request_settlement_run(
        self, period_start: str, period_end: str, cause: dict[str, Any]
    ) -> SettlementRun:
        run = SettlementRun(period_start=period_start, period_end=period_end, cause=cause)
        self.save(run)
        return run

    def request_verification(self, cause: dict[str, Any], key: str | None = None) -> Verification:
        """A new verification; with ``key``, the one it names (requested again: the same one)."""
        verification = Verification(cause=cause, key=key)
        if key is not None:
            existing = self._find(verification.id, Verification)
            if existing is not None:
                return existing
        try:
            self.save(verification)
        except IntegrityError:  # requested at the same moment elsewhere
            if key is None:
                raise
            return self.get_verification(verification.id)
        return verification

    def get_verification(self, verification_id: str | UUID) -> Verification:
        verification = self._find(verification_id, Verification)
        if verification is None:
            raise VerificationNotFoundError(f"no verification {verification_id}")
        return verification

    @_retry_on_conflict
    def record_verification_started(self, verification_id: str) -> bool:
        """Mark it running (it may be already: a job re-delivered after its worker died runs it
        again); False if it already has a verdict, so a repeated job has nothing to do."""
        verification = self.get_verification(verification_id)
        if verification.status in (QUEUED, FAILED):  # a failed run is run again
            verification.start()
            self.save(verification)
        return verification.status == RUNNING

    @_retry_on_conflict
    def record_verification_finished(
        self, verification_id: str, verdict: dict[str, Any] | None, error: str | None = None
    ) -> Verification:
        """Record the verdict (``head_position``, ``head_hash``, ``ok``, ``breaches``, ``checked``), or
        the error that stopped the run."""
        verification = self.get_verification(verification_id)
        if verification.status != RUNNING:
            return verification
        if verdict is not None:
            verification.complete(**verdict)
        else:
            verification.fail(error or "unknown error")
        self.save(verification)
        return verification

    def get_settlement_run(self, run_id: str | UUID) -> SettlementRun:
        run = self._find(run_id, SettlementRun)
        if run is None:
            raise SettlementRunNotFoundError(f"no settlement run {run_id}")
        return run

    @_retry_on_conflict
    def record_run_started(self, run_id: str, seller_count: int) -> None:
        run = self.get_settlement_run(run_id)
        if run.status in (
            settlement_status.RUN_QUEUED,
            settlement_status.RUN_FAILED,
        ):  # a failed run is retried from the start
            run.start(seller_count)
            self.save(run)

    @_retry_on_conflict
    def record_run_finished(self, run_id: str, settlement_ids: list[str], error: str | None) -> SettlementRun:
        run = self.get_settlement_run(run_id)
        if run.status != settlement_status.RUN_RUNNING:
            return run
        if error is None:
            run.complete(settlement_ids)
        else:
            run.fail(error)
        self.save(run)
        return run

    # ---- disputes (from the provider's webhooks) -----------------------------------

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
    ) -> Payment:
        """Bring a dispute forward to what the provider reports, never backwards.

        ``funds`` is where the provider says the money is (kept, withdrawn, reinstated).
        Withdrawn funds are reversed on the allocations as a refund would reverse them
        (in proportion to what each has left); reinstated funds give each allocation back the
        amount withdrawn from it, the fee reversed going back to what the fee rule gives for what
        stays refunded or withdrawn. A closed dispute changes no more. Redeliveries and stale
        reports change nothing.
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
                parts = split_proportionally(withdrawn, left) if withdrawn else [0] * len(allocations)
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

    def _allocations_of(self, payment: Payment) -> list[Allocation]:
        order = self.get_order(self._order_id_of(payment))
        return [self._allocation(s["allocation_id"]) for s in order.sellers]

    # ---- sellers' payout accounts ---------------------------------------------------

    def get_seller_account(self, seller_id: str) -> SellerAccount | None:
        return self._find(seller_account_id(seller_id), SellerAccount)

    def link_seller_account(
        self, seller_id: str, provider: str, account_id: str, cause: dict[str, Any]
    ) -> tuple[SellerAccount, bool]:
        """Link (or re-link) a seller to its payout account; returns (account, changed)."""

        def command(attempt: int) -> tuple[SellerAccount, bool]:
            account = self.get_seller_account(seller_id)
            if account is None:
                account = SellerAccount(
                    seller_id=seller_id, provider=provider, account_id=account_id, cause=cause
                )
                self.save(account)
                return account, True
            changed = account.link(provider, account_id, cause)
            if changed:
                self.save(account)
            return account, changed

        return self._with_retry(command)


__all__ = ["Marketplace", "allocation_id"]
