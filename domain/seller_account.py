"""SellerAccount: where a seller's payouts go (its connected account at the payment provider)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidSellerAccountError
from domain.ids import seller_account_id


class SellerAccount(Aggregate):
    """A seller's payout destination; every change of it stays in the history."""

    @staticmethod
    def create_id(seller_id: str, **_: Any) -> UUID:
        return seller_account_id(seller_id)

    @event("Linked")
    def __init__(self, seller_id: str, provider: str, account_id: str, cause: dict[str, Any]) -> None:
        self.seller_id = seller_id
        self.provider = provider
        self.account_id = account_id

    def link(self, provider: str, account_id: str, cause: dict[str, Any]) -> bool:
        """Point payouts at another account; returns whether anything changed."""
        if not account_id:
            raise InvalidSellerAccountError("an account id is required")
        if (provider, account_id) == (self.provider, self.account_id):
            return False
        self._relinked(provider, account_id, self.account_id, cause)
        return True

    @event("Relinked")
    def _relinked(
        self, provider: str, account_id: str, previous_account_id: str, cause: dict[str, Any]
    ) -> None:
        self.provider = provider
        self.account_id = account_id
