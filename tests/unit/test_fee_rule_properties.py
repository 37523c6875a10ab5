"""The fee rule and exact sums under random mixes of refunds (whole order or one seller), refunds
that fail later, disputes withdrawn, won (reinstated) or lost, settlements paid or failed, and
transfer reversals, on random orders; checked after every step.

Fee reversed on an allocation = round-half-up(fee x net / subtotal), where net is what is refunded
(failed refunds excluded) plus what disputes withdrew and did not reinstate; rounded once on the
cumulative amount. Restated here, not taken from the domain. The same machine runs in granular
currencies (KWD at Stripe: multiples of 10; MGA: of 100), where the rule rounds to the granularity
and every amount, part, reversal, settlement and transfer reversal must be a multiple of it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.allocation import Allocation
from domain.order import Order
from domain.payment import Payment
from domain.services import Marketplace
from tests.unit.conftest import POPO_ENV, make_cause, make_session, place_order

pytestmark = pytest.mark.unit

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def rule_fee_reversed(fee: int, net: int, subtotal: int, granularity: int = 1) -> int:
    """round-half-up(fee x net / subtotal) to the granularity, in integers."""
    return (2 * (fee // granularity) * net + subtotal) // (2 * subtotal) * granularity


class RefundsDisputesAndSettlements(RuleBasedStateMachine):
    currency = "USD"
    granularity = 1

    def __init__(self) -> None:
        super().__init__()
        self.marketplace = Marketplace(env=POPO_ENV)
        self.cause = make_cause()
        self.steps = 0
        self.refunds: dict[str, int] = {}  # refund id -> amount, while it counts
        self.withdrawn: list[str] = []  # disputes whose funds are withdrawn and still open
        self.disputes = 0

    def teardown(self) -> None:
        self.marketplace.close()

    @initialize(
        subtotals=st.lists(st.integers(min_value=1, max_value=3_000), min_size=1, max_size=3),
        fee_bps=st.integers(min_value=0, max_value=10_000),
    )
    def place(self, subtotals: list[int], fee_bps: int) -> None:
        items = [
            {
                "seller_id": f"s-{i}",
                "sku": "x",
                "description": "",
                "unit_amount": amount * self.granularity,
                "quantity": 1,
            }
            for i, amount in enumerate(subtotals)
        ]
        session = make_session(items, self.currency, fee_bps, granularity=self.granularity)
        payment, order = place_order(self.marketplace, session, self.cause)
        self.payment_id, self.order_id = str(payment.id), str(order.id)
        self.sellers = [s["seller_id"] for s in order.sellers]

    # ---- reads -------------------------------------------------------------------------------

    def order(self) -> Order:
        return self.marketplace.get_order(self.order_id)

    def payment(self) -> Payment:
        return self.marketplace.get_payment(self.payment_id)

    def allocations(self) -> list[Allocation]:
        return [self.marketplace.repository.get(uuid.UUID(s["allocation_id"])) for s in self.order().sellers]

    def allocation(self, seller_id: str) -> Allocation:
        (found,) = [a for a in self.allocations() if a.seller_id == seller_id]
        return found

    def draw_amount(self, data: st.DataObject, most: int, label: str) -> int:
        """1 .. ``most`` minor units, a multiple of the granularity."""
        return self.granularity * data.draw(st.integers(1, most // self.granularity), label=label)

    def next_id(self, prefix: str) -> str:
        self.steps += 1
        return f"{prefix}-{self.steps}"

    # ---- refunds -----------------------------------------------------------------------------

    @rule(data=st.data())
    def refund_the_order(self, data: st.DataObject) -> None:
        left = min(self.order().refundable_amount, sum(a.refundable_amount for a in self.allocations()))
        if left == 0:
            return
        amount = self.draw_amount(data, left, "order refund")
        lefts = {a.seller_id: a.refundable_amount for a in self.allocations()}
        refund_id = self.next_id("r")
        result = self.marketplace.refund_order(self.order_id, amount, None, refund_id, self.cause)
        assert sum(part["amount"] for part in result["allocations"]) == amount
        for part in result["allocations"]:
            assert 0 < part["amount"] <= lefts[part["seller_id"]]
            assert part["platform_fee_reversed_amount"] + part["payout_reversed_amount"] == part["amount"]
        self.refunds[refund_id] = amount

    @rule(data=st.data())
    def refund_one_seller(self, data: st.DataObject) -> None:
        seller_id = data.draw(st.sampled_from(self.sellers), label="seller")
        left = self.allocation(seller_id).refundable_amount
        if left == 0:
            return
        amount = self.draw_amount(data, left, "seller refund")
        refund_id = self.next_id("r")
        result = self.marketplace.refund_order(self.order_id, amount, seller_id, refund_id, self.cause)
        assert [(p["seller_id"], p["amount"]) for p in result["allocations"]] == [(seller_id, amount)]
        self.refunds[refund_id] = amount

    @precondition(lambda self: bool(self.refunds))
    @rule(data=st.data())
    def a_refund_fails_at_the_provider(self, data: st.DataObject) -> None:
        refund_id = data.draw(st.sampled_from(sorted(self.refunds)), label="failed refund")
        view = self.marketplace.reverse_failed_refund(self.order_id, refund_id, "failed", self.cause)
        assert view["status"] == "failed"
        del self.refunds[refund_id]

    # ---- disputes ----------------------------------------------------------------------------

    @rule(data=st.data())
    def a_dispute_withdraws_funds(self, data: st.DataObject) -> None:
        amount = self.draw_amount(data, self.payment().amount, "dispute")
        self.disputes += 1
        dispute_id = f"dp-{self.disputes}"
        self.marketplace.record_dispute(
            self.payment_id,
            dispute_id,
            amount,
            "fraudulent",
            "needs_response",
            "withdrawn",
            False,
            self.cause,
        )
        self.withdrawn.append(dispute_id)

    @precondition(lambda self: bool(self.withdrawn))
    @rule(data=st.data(), won=st.booleans())
    def a_dispute_closes(self, data: st.DataObject, won: bool) -> None:
        dispute_id = data.draw(st.sampled_from(self.withdrawn), label="closed dispute")
        funds, status = ("reinstated", "won") if won else ("withdrawn", "lost")
        self.marketplace.record_dispute(
            self.payment_id, dispute_id, 1, "fraudulent", status, funds, True, self.cause
        )
        self.withdrawn.remove(dispute_id)

    # ---- settlement and transfer reversals ------------------------------------------------------

    @rule(data=st.data(), paid=st.booleans())
    def a_seller_is_settled(self, data: st.DataObject, paid: bool) -> None:
        seller_id = data.draw(st.sampled_from(self.sellers), label="settled seller")
        allocation = self.allocation(seller_id)
        refs = [(str(allocation.id), r["refund_id"]) for r in allocation.unsettled_adjustments]
        period = self.next_id("p")
        settlement, opened = self.marketplace.open_settlement(
            seller_id, self.currency, period, period, FAR_FUTURE, [str(allocation.id)], refs, self.cause
        )
        if settlement is None:
            return
        assert opened and settlement.total_payout_amount >= 0
        assert settlement.total_payout_amount % self.granularity == 0
        self.marketplace.start_settlement_processing(str(settlement.id), self.cause)
        outcome = f"tr-{period}" if paid else "account_closed"
        self.marketplace.finish_settlement(str(settlement.id), paid, outcome, self.cause)

    @rule()
    def paid_out_refunds_are_recovered_by_transfer_reversals(self) -> None:
        for allocation in self.allocations():
            for entry in allocation.unsettled_adjustments:
                found = self.marketplace.transfer_recovery(str(allocation.id), entry["refund_id"])
                if found is None:
                    continue
                assert found["amount"] % self.granularity == 0
                self.marketplace.record_transfer_reversal(
                    found["allocation_id"],
                    entry["refund_id"],
                    found["settlement_id"],
                    found["amount"],
                    f"trr-{entry['refund_id']}",
                    self.cause,
                )

    # ---- after every step ------------------------------------------------------------------------

    @invariant()
    def every_allocation_reverses_the_fee_the_rule_gives_and_never_goes_negative(self) -> None:
        counted = [r for r in self.order().refunds if r["status"] == "succeeded"]
        for allocation in self.allocations():
            aid = str(allocation.id)
            refunded = sum(
                p["amount"] for r in counted for p in r["allocations"] if p["allocation_id"] == aid
            )
            assert allocation.refunded_amount == refunded
            net = refunded + allocation.disputed_amount
            fee, subtotal = allocation.platform_fee_amount, allocation.subtotal_amount
            assert allocation.platform_fee_reversed_amount == rule_fee_reversed(
                fee, net, subtotal, self.granularity
            )
            assert allocation.platform_fee_reversed_amount + allocation.payout_reversed_amount == net
            assert 0 <= allocation.refundable_amount <= subtotal
            assert 0 <= allocation.payout_reversed_amount <= allocation.payout_amount
            assert allocation.disputed_amount >= 0

    @invariant()
    def every_amount_booked_is_a_multiple_of_the_granularity(self) -> None:
        step = self.granularity
        for refund in self.order().refunds:
            assert refund["amount"] % step == 0
            for part in refund["allocations"]:
                amounts = [v for k, v in part.items() if k.endswith("_amount") or k == "amount"]
                assert amounts and all(v % step == 0 for v in amounts)
        for allocation in self.allocations():
            assert allocation.granularity == step
            for entry in allocation.refunds:
                assert entry["amount"] % step == 0
                assert entry["platform_fee_reversed_amount"] % step == 0
                assert entry["payout_reversed_amount"] % step == 0
            for reversal in allocation.dispute_reversals.values():
                assert reversal["amount"] % step == 0

    @invariant()
    def order_payment_and_allocations_agree_to_the_unit(self) -> None:
        order, payment, allocations = self.order(), self.payment(), self.allocations()
        assert sum(a.subtotal_amount for a in allocations) == order.total_amount == payment.amount
        assert sum(a.platform_fee_amount for a in allocations) == order.platform_fee_amount
        assert order.refunded_amount == sum(self.refunds.values()) == payment.refunded_amount
        assert order.refunded_amount == sum(a.refunded_amount for a in allocations)
        assert order.document()["refunded_amount"] == order.refunded_amount
        assert payment.disputed_amount == sum(a.disputed_amount for a in allocations)
        for refund in order.refunds:
            assert sum(p["amount"] for p in refund["allocations"]) == refund["amount"]

    @invariant()
    def what_the_seller_is_paid_and_owed_is_exactly_its_payout_net_of_reversals(self) -> None:
        for allocation in self.allocations():
            due = allocation.payout_amount - allocation.payout_reversed_amount
            if allocation.settlement_id is None:
                assert all(r["adjustment_of"] is None for r in allocation.refunds)
                continue
            settlement = self.marketplace.get_settlement(allocation.settlement_id)
            assert settlement is not None
            (taken,) = [a for a in settlement.allocations if a["allocation_id"] == str(allocation.id)]
            carried = [r for r in allocation.refunds if r["adjustment_of"] == allocation.settlement_id]
            assert taken["payout_amount"] - sum(r["payout_reversed_amount"] for r in carried) == due


RefundsDisputesAndSettlements.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRefundsDisputesAndSettlements = RefundsDisputesAndSettlements.TestCase


class GranularRefundsDisputesAndSettlements(RefundsDisputesAndSettlements):
    """The same steps in KWD, which Stripe takes only in multiples of 10 (of 1/1000 dinar)."""

    currency = "KWD"
    granularity = 10


class WholeAriaryRefundsDisputesAndSettlements(RefundsDisputesAndSettlements):
    """The same steps in MGA, which Stripe takes only in whole ariary (100 ISO minor units)."""

    currency = "MGA"
    granularity = 100


for _machine in (GranularRefundsDisputesAndSettlements, WholeAriaryRefundsDisputesAndSettlements):
    _machine.TestCase.settings = RefundsDisputesAndSettlements.TestCase.settings
TestGranularRefundsDisputesAndSettlements = GranularRefundsDisputesAndSettlements.TestCase
TestWholeAriaryRefundsDisputesAndSettlements = WholeAriaryRefundsDisputesAndSettlements.TestCase
