"""Every dispute event type Stripe sends (charge.dispute.created, .updated, .funds_withdrawn,
.funds_reinstated, .closed) with every status its Dispute object documents (warning_needs_response,
warning_under_review, warning_closed, needs_response, under_review, appeal_needs_response,
appeal_under_review, won, lost, prevented), applied to
the payment and its sellers' allocations: inquiries (warning_*) and prevented disputes move no
money, a chargeback withdraws it from the sellers pro rata, a won one gives it back, a lost one
keeps it withdrawn unless an appeal wins it back, and a closed dispute changes no more otherwise."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e

OWED = {"s-1": 2250, "s-2": 1799}  # the contract's checkout: 2500 and 1999 less a 10 % fee


@pytest.fixture
def paid(client, customer) -> dict:
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


@pytest.fixture
def dispute(stub, paid) -> dict:
    """A dispute of the whole charge, as Stripe's Dispute object carries it (before any event)."""
    return stub.open_dispute(paid["payment"]["provider_reference"])


def withdrawal(stub, amount: int) -> list[dict]:
    return [stub._balance_transaction(-amount, 1500)]


def reinstatement(stub, amount: int) -> list[dict]:
    return [*withdrawal(stub, amount), stub._balance_transaction(amount, -1500)]


class Books:
    def __init__(self, client, admin, stub, container, paid) -> None:
        self.client, self.admin, self.stub, self.container = client, admin, stub, container
        self.payment_id, self.order_id = paid["payment"]["id"], paid["order"]["id"]

    def deliver(self, kind: str, dispute: dict, **changes) -> dict:
        response = self.stub.deliver(self.client, self.stub.event(kind, {**dispute, **changes}))
        assert response.status_code == 200 and response.json["outcome"] == "applied", response.json
        [seen] = self.client.get(f"/api/payments/{self.payment_id}", headers=self.admin).json["disputes"]
        return seen

    def owed(self) -> dict[str, int]:
        catch_up_read_models(self.container)
        return {
            seller: sum(
                b["pending_payout_amount"]
                for b in self.client.get(f"/api/sellers/{seller}/payouts", headers=self.admin).json[
                    "balances"
                ]
            )
            for seller in OWED
        }

    def reversals(self) -> tuple[int, int]:
        return (
            len(events_named(self.container, "Allocation.DisputeReversed")),
            len(events_named(self.container, "Allocation.DisputeRestored")),
        )


@pytest.fixture
def books(client, admin, stub, container, paid) -> Books:
    return Books(client, admin, stub, container, paid)


def test_an_inquiry_is_recorded_through_every_warning_status_and_moves_no_money(books, dispute):
    inquiry = {**dispute, "balance_transactions": []}
    seen = books.deliver("charge.dispute.created", inquiry, status="warning_needs_response")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("warning_needs_response", "kept", False)
    seen = books.deliver("charge.dispute.updated", inquiry, status="warning_under_review")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("warning_under_review", "kept", False)
    assert books.owed() == OWED
    seen = books.deliver("charge.dispute.closed", inquiry, status="warning_closed")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("warning_closed", "kept", True)
    assert books.owed() == OWED and books.reversals() == (0, 0)


def test_a_chargeback_withdraws_once_moves_to_under_review_and_a_won_one_reinstates(books, stub, dispute):
    amount = dispute["amount"]
    seen = books.deliver("charge.dispute.created", dispute, status="needs_response")
    assert (seen["status"], seen["funds"], seen["withdrawn_amount"]) == (
        "needs_response",
        "withdrawn",
        amount,
    )
    assert books.owed() == {"s-1": 0, "s-2": 0}
    seen = books.deliver(
        "charge.dispute.funds_withdrawn",
        dispute,
        status="needs_response",
        balance_transactions=withdrawal(stub, amount),
    )
    assert seen["funds"] == "withdrawn" and books.reversals() == (2, 0)  # not withdrawn twice
    seen = books.deliver("charge.dispute.updated", dispute, status="under_review")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("under_review", "withdrawn", False)
    seen = books.deliver(
        "charge.dispute.funds_reinstated",
        dispute,
        status="won",
        balance_transactions=reinstatement(stub, amount),
    )
    assert seen["funds"] == "reinstated" and books.owed() == OWED
    seen = books.deliver(
        "charge.dispute.closed", dispute, status="won", balance_transactions=reinstatement(stub, amount)
    )
    assert (seen["status"], seen["funds"], seen["closed"]) == ("won", "reinstated", True)
    assert books.owed() == OWED and books.reversals() == (2, 2)


def test_a_lost_chargeback_keeps_the_funds_withdrawn_and_a_closed_dispute_changes_no_more(
    books, stub, dispute
):
    books.deliver("charge.dispute.created", dispute, status="needs_response")
    seen = books.deliver("charge.dispute.closed", dispute, status="lost")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("lost", "withdrawn", True)
    assert books.owed() == {"s-1": 0, "s-2": 0}
    stale = books.deliver("charge.dispute.updated", dispute, status="under_review")
    assert (stale["status"], stale["funds"], stale["closed"]) == ("lost", "withdrawn", True)
    assert books.owed() == {"s-1": 0, "s-2": 0} and books.reversals() == (2, 0)


def test_a_lost_chargeback_appealed_opens_again_and_an_appeal_won_gives_the_funds_back(books, stub, dispute):
    """Stripe's Dispute.status also documents appeal_needs_response and appeal_under_review
    (stripe-python 16): a lost dispute the merchant appeals; if the appeal is won the funds are
    reinstated (a positive balance transaction) and the books follow the money."""
    amount = dispute["amount"]
    books.deliver("charge.dispute.created", dispute, status="needs_response")
    books.deliver("charge.dispute.closed", dispute, status="lost")
    seen = books.deliver("charge.dispute.updated", dispute, status="appeal_needs_response")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("appeal_needs_response", "withdrawn", False)
    seen = books.deliver("charge.dispute.updated", dispute, status="appeal_under_review")
    assert (seen["status"], seen["closed"]) == ("appeal_under_review", False)
    assert books.owed() == {"s-1": 0, "s-2": 0}
    seen = books.deliver(
        "charge.dispute.funds_reinstated",
        dispute,
        status="won",
        balance_transactions=reinstatement(stub, amount),
    )
    assert (seen["status"], seen["funds"], seen["closed"]) == ("won", "reinstated", True)
    assert books.owed() == OWED and books.reversals() == (2, 2)
    assert len(events_named(books.container, "Payment.DisputeReopened")) == 1


def test_an_appeal_won_that_arrives_without_the_appeal_events_still_gives_the_funds_back(
    books, stub, dispute
):
    books.deliver("charge.dispute.created", dispute, status="needs_response")
    books.deliver("charge.dispute.closed", dispute, status="lost")
    seen = books.deliver(
        "charge.dispute.funds_reinstated",
        dispute,
        status="won",
        balance_transactions=reinstatement(stub, dispute["amount"]),
    )
    assert (seen["status"], seen["funds"], seen["closed"]) == ("won", "reinstated", True)
    assert books.owed() == OWED and books.reversals() == (2, 2)


def test_a_prevented_dispute_is_closed_without_money_moving(books, dispute):
    seen = books.deliver("charge.dispute.closed", {**dispute, "balance_transactions": []}, status="prevented")
    assert (seen["status"], seen["funds"], seen["closed"]) == ("prevented", "kept", True)
    assert books.owed() == OWED and books.reversals() == (0, 0)


def test_a_partial_chargeback_withdraws_pro_rata_at_each_sellers_fee_rate(books, stub, paid):
    partial = stub.open_dispute(paid["payment"]["provider_reference"], amount=1000)
    seen = books.deliver("charge.dispute.created", partial, status="needs_response")
    assert seen["withdrawn_amount"] == 1000
    # 1000 of 4499 split by largest remainder over 2500 and 1999: 556 and 444; each reverses its fee.
    assert books.owed() == {"s-1": 2250 - (556 - 56), "s-2": 1799 - (444 - 44)}


@pytest.mark.parametrize(
    ("first", "then", "funds"),
    [("warning_needs_response", "warning_under_review", []), ("needs_response", "under_review", None)],
)
def test_an_updated_event_records_the_disputes_new_status(books, dispute, first, then, funds):
    changes = {} if funds is None else {"balance_transactions": funds}
    books.deliver("charge.dispute.created", dispute, status=first, **changes)
    assert books.deliver("charge.dispute.updated", dispute, status=then, **changes)["status"] == then
