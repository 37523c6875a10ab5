"""audit verify's books for bank transfers: receipts = amount + overpaid, overpaid never negative;
a receipt only on a bank transfer and never after it failed."""

from __future__ import annotations

import pytest

from app.audit.books import Books
from app.audit.report import Report
from domain.bank_transfer import BANK_TRANSFER
from domain.payment import Payment

pytestmark = pytest.mark.unit


def payment(method: str = BANK_TRANSFER) -> Payment:
    return Payment(
        session_id="s", customer_id="c-1", currency="USD", amount=1000, payment_method=method,
        provider=method, checkout={}, cause={"kind": "test"},
    )  # fmt: skip


def folded(aggregate: Payment) -> Report:
    books, report = Books(), Report()
    for event in aggregate.collect_events():
        books.fold(event, report)
    return report


def test_a_bank_transfer_covered_by_its_receipts_and_overpaid_is_in_order():
    p = payment()
    p.require_action("TLY-X", "", {})
    p.record_receipt(400, "B-1", "2026-11-27T05:16:21Z", {})
    p.record_receipt(700, "B-2", "2026-11-27T05:16:21Z", {})
    p.succeed("TLY-X", "order-1", {})
    assert p.overpaid_amount == 100 and p.received_amount == p.amount + p.overpaid_amount
    assert folded(p).breaches == []


def test_a_bank_transfer_that_succeeded_short_of_its_amount_is_a_breach():
    p = payment()
    p.require_action("TLY-X", "", {})
    p.record_receipt(400, "B-1", "2026-11-27T05:16:21Z", {})
    p.succeed("TLY-X", "order-1", {})  # the domain allows it; the books must not
    assert any("bank transfer succeeded with 400 of 1000" in b for b in folded(p).breaches)


def test_a_receipt_is_refused_on_a_card_payment_and_after_a_failure():
    from domain.errors import PaymentStateError

    with pytest.raises(PaymentStateError):
        payment("pm_card_visa").record_receipt(100, "B-1", "2026-11-27T05:16:21Z", {})
    p = payment()
    p.fail("TLY-X", "expired", {})
    with pytest.raises(PaymentStateError):
        p.record_receipt(100, "B-1", "2026-11-27T05:16:21Z", {})
