"""The Marketplace's other transactions: verifications of the books, sellers' payout accounts,
retries after a conflicting save, and the causes every event carries."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from domain import ids
from domain.cause import Cause
from domain.errors import (
    AllocationStateError,
    InvalidSellerAccountError,
    OrderNotFoundError,
    VerificationNotFoundError,
)
from domain.order import Order
from domain.payment import Payment
from domain.services import Marketplace
from domain.verification import DONE, FAILED, QUEUED, RUNNING, Verification
from tests.unit.conftest import last_position, make_cause, recorded_events

pytestmark = pytest.mark.unit

VERDICT: dict[str, Any] = {
    "head_position": 42,
    "head_hash": "abc",
    "ok": True,
    "breaches": [],
    "checked": {"orders": 1},
}


class TestVerifications:
    def test_a_verification_is_queued_then_running_then_done_with_its_verdict(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        vid = str(marketplace.request_verification(cause).id)
        assert marketplace.get_verification(vid).status == QUEUED

        assert marketplace.record_verification_started(vid) is True
        assert marketplace.get_verification(vid).status == RUNNING
        done = marketplace.record_verification_finished(vid, VERDICT)

        assert (done.status, done.head_position, done.head_hash, done.ok) == (DONE, 42, "abc", True)
        assert (done.breaches, done.checked) == ([], {"orders": 1})

    def test_a_verification_with_a_verdict_is_not_run_again_nor_given_another(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        vid = str(marketplace.request_verification(cause).id)
        marketplace.record_verification_started(vid)
        marketplace.record_verification_finished(vid, VERDICT)
        before = last_position(marketplace)

        assert marketplace.record_verification_started(vid) is False
        again = marketplace.record_verification_finished(vid, {**VERDICT, "ok": False})

        assert again.ok is True
        assert last_position(marketplace) == before

    def test_a_run_that_fails_records_the_error_and_can_be_run_again(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        vid = str(marketplace.request_verification(cause).id)
        marketplace.record_verification_started(vid)
        failed = marketplace.record_verification_finished(vid, None, "database down")
        assert (failed.status, failed.error) == (FAILED, "database down")

        assert marketplace.record_verification_started(vid) is True
        rerun = marketplace.get_verification(vid)
        assert (rerun.status, rerun.error) == (RUNNING, None)
        assert marketplace.record_verification_finished(vid, None).error == "unknown error"

    def test_a_keyed_verification_requested_again_is_the_same_one(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        first = marketplace.request_verification(cause, key="daily/2026-11-30")
        before = last_position(marketplace)
        again = marketplace.request_verification(make_cause("req-2"), key="daily/2026-11-30")
        assert again.id == first.id == ids.verification_id("daily/2026-11-30")
        assert last_position(marketplace) == before
        assert marketplace.request_verification(cause).id != marketplace.request_verification(cause).id

    def test_a_keyed_verification_requested_at_the_same_moment_elsewhere_is_that_one(
        self, marketplace: Marketplace, cause: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = "daily/2026-12-01"
        original_find = marketplace._find
        seen: list[bool] = []

        def find_before_the_other_saves(aggregate_id: Any, kind: Any) -> Any:
            found = original_find(aggregate_id, kind)
            if not seen:  # the other request saves between our look and our save
                seen.append(True)
                marketplace.save(Verification(cause=make_cause("req-2"), key=key))
            return found

        monkeypatch.setattr(marketplace, "_find", find_before_the_other_saves)
        verification = marketplace.request_verification(cause, key=key)

        assert verification.id == ids.verification_id(key)
        assert verification.version == 1  # the other request's, not a second one

    def test_an_unknown_verification_is_not_found(self, marketplace: Marketplace) -> None:
        with pytest.raises(VerificationNotFoundError):
            marketplace.get_verification(str(uuid.uuid4()))


class TestSellerAccounts:
    def test_linking_a_seller_records_its_payout_account_once(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        account, changed = marketplace.link_seller_account("s-1", "stripe", "acct_1", cause)
        assert changed and (account.seller_id, account.provider, account.account_id) == (
            "s-1",
            "stripe",
            "acct_1",
        )
        before = last_position(marketplace)

        same, changed_again = marketplace.link_seller_account("s-1", "stripe", "acct_1", cause)

        assert (same.id, changed_again) == (account.id, False)
        assert last_position(marketplace) == before
        assert marketplace.get_seller_account("s-1") is not None
        assert marketplace.get_seller_account("s-unknown") is None

    def test_relinking_keeps_the_previous_account_in_the_history(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        marketplace.link_seller_account("s-1", "stripe", "acct_1", cause)
        before = last_position(marketplace)

        account, changed = marketplace.link_seller_account("s-1", "stripe", "acct_2", cause)

        (event,) = recorded_events(marketplace, after=before)
        assert type(event).__qualname__ == "SellerAccount.Relinked"
        assert (event.account_id, event.previous_account_id) == ("acct_2", "acct_1")
        assert changed and account.account_id == "acct_2"

    def test_an_empty_account_id_is_refused(self, marketplace: Marketplace, cause: dict) -> None:
        marketplace.link_seller_account("s-1", "stripe", "acct_1", cause)
        with pytest.raises(InvalidSellerAccountError):
            marketplace.link_seller_account("s-1", "stripe", "", cause)


class TestConflicts:
    def test_a_refund_whose_save_conflicts_is_retried_from_fresh_reads_and_recorded_once(
        self,
        marketplace: Marketplace,
        placed: tuple[Payment, Order],
        cause: dict,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        _, order = placed
        original_save = marketplace.save
        conflicts = [IntegrityError("someone else saved first")]

        def save_conflicting_once(*aggregates: Any, **kwargs: Any) -> Any:
            if conflicts:
                raise conflicts.pop()
            return original_save(*aggregates, **kwargs)

        monkeypatch.setattr(marketplace, "save", save_conflicting_once)

        result = marketplace.refund_order(str(order.id), 100, None, "r-1", cause)

        assert result["amount"] == 100
        assert marketplace.get_order(order.id).refunded_amount == 100

    def test_a_conflict_that_never_clears_is_raised_after_the_last_attempt(
        self,
        marketplace: Marketplace,
        placed: tuple[Payment, Order],
        cause: dict,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        _, order = placed
        attempts: list[int] = []

        def always_conflicting(*aggregates: Any, **kwargs: Any) -> Any:
            attempts.append(1)
            raise IntegrityError("conflict")

        monkeypatch.setattr(marketplace, "save", always_conflicting)
        monkeypatch.setattr("domain.marketplace.base.sleep", lambda seconds: None)

        with pytest.raises(IntegrityError):
            marketplace.refund_order(str(order.id), 100, None, "r-1", cause)  # the decorator's loop
        assert len(attempts) == 30
        with pytest.raises(IntegrityError):
            marketplace.link_seller_account("s-9", "stripe", "acct_9", cause)  # the command loop
        assert len(attempts) == 60

    def test_an_allocation_id_that_names_another_aggregate_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(AllocationStateError):
            marketplace.settle_allocation(str(payment.id), "st-1", cause)
        with pytest.raises(OrderNotFoundError):
            marketplace.reverse_failed_refund(str(uuid.uuid4()), "r-1", "failed", cause)


class TestCauses:
    def test_a_cause_says_who_in_which_request_and_why(self) -> None:
        cause = Cause("key-1", "admin", "req-1")
        assert cause.with_reason("damaged").to_dict() == {
            "actor_id": "key-1",
            "actor_role": "admin",
            "request_id": "req-1",
            "reason": "damaged",
        }
        assert Cause.system("job-1", "schedule") == Cause("system", "system", "job-1", "schedule")
        assert Cause.webhook("evt_1") == Cause("webhook", "webhook", "evt_1")


class TestIds:
    def test_natural_keys_give_the_same_id_every_time_and_different_keys_different_ids(self) -> None:
        order_id = uuid.uuid4()
        assert (
            ids.refund_id(order_id, "key") == ids.refund_id(order_id, "key") != ids.refund_id(order_id, "k2")
        )
        assert ids.provider_refund_id("re_1") != ids.provider_refund_id("re_2")
        assert ids.dispute_restore_id("dp", "a") != ids.dispute_reversal_id("dp", "a")
        assert ids.transfer_reversal_id("r", "a") != ids.refund_failure_id("r", "a")
        assert ids.seller_account_id("s-1") == ids.seller_account_id("s-1")
