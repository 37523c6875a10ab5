"""A settlement pays one transfer per order line, drawn on that order's payment, all or none."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from app.commands.janitor import repair_in_flight
from app.commands.refunds import refund_order
from app.commands.settlement import settle_seller
from domain.ports import PayoutResult, ProviderUnavailableError
from domain.settlement import Settlement
from tests.fakes import FakeDeps
from tests.unit.commands.test_janitor import LATER
from tests.unit.commands.test_refunds_and_provider_events import paid_order
from tests.unit.conftest import make_cause

FIRST = (date(2000, 1, 1), date(2999, 12, 30))
SECOND = (date(2000, 1, 1), date(2999, 12, 31))


def settle(deps: FakeDeps, period: tuple[date, date] = SECOND) -> Settlement:
    [settlement], _ = settle_seller(deps, "s-1", *period, make_cause())
    return settlement


def test_each_order_is_paid_by_its_own_transfer_in_the_orders_group(deps: FakeDeps) -> None:
    _, first, _ = paid_order(deps)
    _, second, _ = paid_order(deps)
    settlement = settle(deps)
    calls = deps.gateway.calls_to("payout")
    assert settlement.status == "paid" and [c["amount"] for c in calls] == [2250, 2250]
    assert {c["source_payment"] for c in calls} == {first.provider_reference, second.provider_reference}
    assert {c["transfer_group"] for c in calls} == {line["order_id"] for line in settlement.allocations}
    assert sorted(t["amount"] for t in settlement.transfers.values()) == [2250, 2250]
    assert settlement.provider_reference == settlement.transfers[calls[0]["allocation_id"]]["reference"]


def test_a_carried_adjustment_is_taken_from_the_lines_in_order_and_the_sum_holds(deps: FakeDeps) -> None:
    _, _, order = paid_order(deps)
    assert order is not None
    settle(deps, FIRST)
    refund_order(deps, str(order.id), 2500, "s-1", None, make_cause())  # carried: -2250
    paid_order(deps)
    paid_order(deps)
    settlement = settle(deps)
    assert settlement.total_payout_amount == 2250
    lines = settlement.transfer_lines
    assert [line["amount"] for line in lines] == [2250]  # the first line gave all it had
    assert lines[0]["allocation_id"] == settlement.allocations[1]["allocation_id"]
    assert sum(t["amount"] for t in settlement.transfers.values()) == settlement.total_payout_amount


def test_a_line_refused_for_good_takes_back_the_lines_already_paid(deps: FakeDeps) -> None:
    paid_order(deps)
    paid_order(deps)
    deps.gateway.payout_answers = [
        PayoutResult(True, "tr_first"),
        PayoutResult(False, None, "account_closed"),
    ]
    settlement = settle(deps)
    assert (settlement.status, settlement.failure_reason, settlement.transfers) == (
        "failed",
        "account_closed",
        {},
    )
    [undo] = deps.gateway.calls_to("reverse_payout")
    assert (undo["provider_reference"], undo["amount"]) == ("tr_first", 2250)
    # Released: the next run pays both lines again.
    again = settle(deps, (date(2000, 1, 2), date(2999, 12, 31)))
    assert again.status == "paid" and again.total_payout_amount == 4500


def test_a_transfer_that_cannot_be_taken_back_leaves_the_settlement_for_the_janitor(deps: FakeDeps) -> None:
    paid_order(deps)
    paid_order(deps)
    deps.gateway.payout_answers = [
        PayoutResult(True, "tr_first"),
        PayoutResult(False, None, "account_restricted"),
    ]
    deps.gateway.unavailable.add("reverse_payout")
    settlement = settle(deps)
    assert settlement.status == "processing" and len(settlement.transfers) == 1
    deps.gateway.unavailable.clear()
    report = repair_in_flight(deps, now=LATER)  # the refused line is tried again first, and now passes
    assert report.settled == [str(settlement.id)]
    done = deps.marketplace.get_settlement(str(settlement.id))
    assert done is not None and done.status == "paid" and len(done.transfers) == 2
    assert len(deps.gateway.calls_to("payout")) == 3


def test_a_lost_answer_is_looked_up_and_the_lines_already_made_are_not_made_again(deps: FakeDeps) -> None:
    paid_order(deps)
    paid_order(deps)
    deps.gateway.payout_answers = [PayoutResult(True, "tr_first")]
    original = deps.gateway.payout

    def second_lost(**kwargs: object) -> PayoutResult:
        if len(deps.gateway.calls_to("payout")) == 1:
            return original(**kwargs)
        deps.gateway.calls.append(("payout", dict(kwargs)))
        deps.gateway.held_payouts[f"{kwargs['settlement_id']}:{kwargs['allocation_id']}"] = PayoutResult(
            True, "tr_second"
        )
        raise ProviderUnavailableError("timeout")

    deps.gateway.payout = second_lost  # type: ignore[method-assign]
    with pytest.raises(ProviderUnavailableError):
        settle(deps)
    [settlement_id] = deps.read_models.settlements_in_flight()
    deps.gateway.payout = original  # type: ignore[method-assign]
    repair_in_flight(deps, now=LATER)
    settlement = deps.marketplace.get_settlement(settlement_id)
    assert settlement is not None and settlement.status == "paid"
    assert sorted(t["reference"] for t in settlement.transfers.values()) == ["tr_first", "tr_second"]
    assert len(deps.gateway.calls_to("payout")) == 2  # nothing made twice


def test_a_settlement_paid_by_one_transfer_before_lines_existed_adopts_it(deps: FakeDeps) -> None:
    paid_order(deps)
    deps.gateway.unavailable.add("payout")
    with pytest.raises(ProviderUnavailableError):
        settle(deps)
    [settlement_id] = deps.read_models.settlements_in_flight()
    deps.gateway.unavailable.clear()
    deps.gateway.held_payouts[settlement_id] = PayoutResult(True, "tr_whole")  # keyed by the settlement alone
    repair_in_flight(deps, now=LATER)
    settlement = deps.marketplace.get_settlement(settlement_id)
    assert settlement is not None and (settlement.status, settlement.provider_reference) == (
        "paid",
        "tr_whole",
    )
    assert len(deps.gateway.calls_to("payout")) == 1


def test_a_refund_after_payout_reverses_that_orders_own_transfer(deps: FakeDeps) -> None:
    from dataclasses import replace

    deps.policy = replace(deps.policy, reverse_payouts_on_refund=True)
    _, _, order = paid_order(deps)
    paid_order(deps)
    assert order is not None
    settlement = settle(deps)
    refund_order(deps, str(order.id), 2500, "s-1", None, make_cause())
    [reversal] = deps.gateway.calls_to("reverse_payout")
    line = next(x for x in settlement.allocations if x["order_id"] == str(order.id))
    assert reversal["provider_reference"] == settlement.transfers[line["allocation_id"]]["reference"]


def test_a_reversal_whose_answer_was_lost_keeps_its_adjustment_from_the_next_settlement(
    deps: FakeDeps,
) -> None:
    from dataclasses import replace

    deps.policy = replace(deps.policy, reverse_payouts_on_refund=True)
    _, _, order = paid_order(deps)
    assert order is not None
    settle(deps, FIRST)
    deps.gateway.unavailable.add("reverse_payout")  # the reversal is made, its answer lost
    deps.gateway.lookups_fail = True  # and Stripe cannot be asked either
    refund_order(deps, str(order.id), 2500, "s-1", None, make_cause())
    [call] = deps.gateway.calls_to("reverse_payout")
    deps.gateway.held_reversals[call["reversal_id"]] = PayoutResult(True, "trr_made")
    paid_order(deps)
    later = settle(deps)
    assert later.adjustments == [] and later.total_payout_amount == 2250  # the adjustment is not taken
    deps.gateway.unavailable.clear()
    deps.gateway.lookups_fail = False
    report = repair_in_flight(deps, now=LATER)
    assert len(report.reversed) == 1
    assert len(deps.gateway.calls_to("reverse_payout")) == 1  # found, not made again
    allocation = deps.marketplace._allocation(call["metadata"]["allocation_id"])
    [refund] = allocation.refunds
    assert refund["transfer_reversed_by"] == "trr_made" and not allocation.unsettled_adjustments


def test_a_reversal_the_provider_surely_did_not_make_is_carried_to_the_next_settlement(
    deps: FakeDeps,
) -> None:
    from dataclasses import replace

    deps.policy = replace(deps.policy, reverse_payouts_on_refund=True)
    _, _, order = paid_order(deps)
    assert order is not None
    settle(deps, FIRST)
    deps.gateway.unavailable.add("reverse_payout")  # looked up after the timeout: nothing there
    deps.gateway.surely_nothing_done = True
    refund_order(deps, str(order.id), 2500, "s-1", None, make_cause())
    paid_order(deps)
    later = settle(deps)
    assert [a["amount"] for a in later.adjustments] == [-2250] and later.total_payout_amount == 0


def test_the_lines_draw_on_the_payment_the_allocations_carry_without_reading_orders_or_payments(
    deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first, _ = paid_order(deps)
    _, second, _ = paid_order(deps)
    for read in ("get_order", "get_orders", "get_payment", "get_payments"):
        monkeypatch.setattr(deps.marketplace, read, _refused)
    settlement = settle(deps)
    assert {item["payment_reference"] for item in settlement.allocations} == {
        first.provider_reference,
        second.provider_reference,
    }
    calls = deps.gateway.calls_to("payout")
    assert {c["source_payment"] for c in calls} == {first.provider_reference, second.provider_reference}
    assert settlement.status == "paid"


def test_allocations_placed_before_they_carried_their_payment_are_paid_from_the_payment(
    deps: FakeDeps,
) -> None:
    _, old, old_order = paid_order(deps)
    _, new, _ = paid_order(deps)
    assert old_order is not None
    _stored_as_version_2(deps, [s["allocation_id"] for s in old_order.sellers])
    settlement = settle(deps)
    lines = {item["order_id"]: item for item in settlement.allocations}
    assert "payment_reference" not in lines[str(old_order.id)]
    calls = {c["transfer_group"]: c["source_payment"] for c in deps.gateway.calls_to("payout")}
    assert calls[str(old_order.id)] == old.provider_reference
    assert set(calls.values()) == {old.provider_reference, new.provider_reference}
    assert settlement.status == "paid"


def test_a_settlement_opened_before_lines_carried_the_payment_resumes_from_the_payment(
    deps: FakeDeps,
) -> None:
    _, payment, order = paid_order(deps)
    assert order is not None
    _stored_as_version_2(deps, [s["allocation_id"] for s in order.sellers])
    deps.gateway.unavailable.add("payout")
    with pytest.raises(ProviderUnavailableError):
        settle(deps)
    deps.gateway.unavailable.clear()
    settlement = settle(deps)  # resumed: its line has no reference, its order's payment has
    assert settlement.status == "paid"
    assert {c["source_payment"] for c in deps.gateway.calls_to("payout")} == {payment.provider_reference}


def _refused(*_: object, **__: object) -> None:
    raise AssertionError("the settlement read an order or a payment")


def _stored_as_version_2(deps: FakeDeps, allocation_ids: list[str]) -> None:
    """Rewrite these allocations' Created events as stored before version 3 (no payment reference)."""
    recorder: Any = deps.marketplace.recorder
    transcoder = deps.marketplace.mapper.transcoder
    for aid in allocation_ids:
        position = recorder._stored_events_index[aid][1]
        stored = recorder._stored_events[position]
        state = transcoder.decode(stored.state)
        assert state.pop("class_version") == 3
        del state["payment_reference"]
        state["class_version"] = 2
        recorder._stored_events[position] = type(stored)(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=transcoder.encode(state),
        )
        assert deps.marketplace.repository.get(UUID(aid)).payment_reference is None
