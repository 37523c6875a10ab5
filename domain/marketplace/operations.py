"""Verifications of the books and sellers' payout accounts."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import IntegrityError

from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.seller_account import SellerAccount
from domain.verification import FAILED, QUEUED, RUNNING, Verification


class OperationsTransactions(MarketplaceBase):
    """Verifications of the books and sellers' payout accounts."""

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
