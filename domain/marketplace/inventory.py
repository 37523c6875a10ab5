"""Stock per seller and SKU: set it, reserve it for a session, sell, release or restock it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.ids import stock_id
from domain.inventory import InsufficientStockError, StockItem, quantities
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict


class InventoryTransactions(MarketplaceBase):
    """Stock per seller and SKU: set it, reserve it for a session, sell, release or restock it."""

    def get_stock(self, seller_id: str, sku: str) -> StockItem | None:
        found = self._tracked([(seller_id, sku)])
        return found[0] if found else None

    @_retry_on_conflict
    def set_stock(self, seller_id: str, sku: str, on_hand: int, cause: dict[str, Any]) -> StockItem:
        item = self.get_stock(seller_id, sku)
        if item is None:
            item = StockItem.record(seller_id, sku, on_hand, cause)
        else:
            item.set_on_hand(on_hand, cause)
        self.save(item)
        return item

    def _tracked(self, keys: list[tuple[str, str]]) -> list[StockItem]:
        """The stock records of these (seller, SKU)s that exist, in their order (one read)."""
        ids = [stock_id(seller_id, sku) for seller_id, sku in keys]
        found = self.hot.get_many(ids, StockItem)
        return [found[item_id] for item_id in dict.fromkeys(ids) if item_id in found]

    @_retry_on_conflict
    def reserve_stock(
        self, session_id: str, items: list[dict[str, Any]], expires_at: datetime, cause: dict[str, Any]
    ) -> list[StockItem]:
        """Reserve the cart's quantities of every tracked SKU, all or none (one atomic save; a
        concurrent reservation of the same SKU conflicts, and the retry sees what it left)."""
        wanted = quantities(items)
        with self.hot.serialised([stock_id(seller_id, sku) for seller_id, sku in wanted]):
            tracked = self._tracked(list(wanted))
            shortages = [
                short
                for item in tracked
                if (short := item.shortage(wanted[(item.seller_id, item.sku)])) is not None
            ]
            if shortages:
                raise InsufficientStockError(shortages)
            for item in tracked:
                item.reserve(session_id, wanted[(item.seller_id, item.sku)], expires_at, cause)
            if tracked:
                self.save(*tracked)
        return tracked

    @_retry_on_conflict
    def finish_reservation(
        self, session_id: str, keys: list[tuple[str, str]], order_id: str | None, cause: dict[str, Any]
    ) -> int:
        """The session placed ``order_id`` (sold) or ended without one (released); how many changed."""
        changed = []
        with self.hot.serialised([stock_id(seller_id, sku) for seller_id, sku in keys]):
            for item in self._tracked(keys):
                done = item.sell(session_id, order_id, cause) if order_id else item.release(session_id, cause)
                if done:
                    changed.append(item)
            if changed:
                self.save(*changed)
        return len(changed)

    @_retry_on_conflict
    def restock_part(self, allocation_id_: str, cause: dict[str, Any]) -> int:
        """A cancelled part that was not shipped: each tracked SKU of it back on the shelf, once."""
        allocation = self._allocation(allocation_id_)
        wanted = quantities([{**item, "seller_id": allocation.seller_id} for item in allocation.items])
        changed = [
            item
            for item in self._tracked(list(wanted))
            if item.restock(allocation_id_, wanted[(item.seller_id, item.sku)], cause)
        ]
        if changed:
            self.save(*changed)
        return len(changed)
