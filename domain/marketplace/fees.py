"""Fee rates per seller: set one, read one, and the rates a quote uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.ids import seller_fee_id
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.seller_fee import SellerFee


class FeeTransactions(MarketplaceBase):
    """Fee rates per seller: set one, read one, and the rates a quote uses."""

    def get_seller_fee(self, seller_id: str) -> SellerFee | None:
        return self.hot.get_many([seller_fee_id(seller_id)], SellerFee).get(seller_fee_id(seller_id))

    @_retry_on_conflict
    def set_seller_fee(self, seller_id: str, fee_bps: int, cause: dict[str, Any]) -> SellerFee:
        fee = self.get_seller_fee(seller_id)
        if fee is None:
            fee = SellerFee.start(seller_id, fee_bps, cause)
        elif not fee.change(fee_bps, cause):
            return fee
        self.save(fee)
        return fee

    def fee_rates(self, seller_ids: Iterable[str]) -> dict[str, int]:
        """The negotiated rate in force now of each seller that has one (one read for all)."""
        ids = {seller_fee_id(seller_id): seller_id for seller_id in seller_ids}
        found = self.hot.peek_many(list(ids), SellerFee)
        return {ids[fee_id]: fee.fee_bps for fee_id, fee in found.items()}
