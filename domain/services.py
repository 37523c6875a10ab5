"""Marketplace: the write model. Load aggregates, call their verbs, save once, atomically.

One eventsourcing Application, its transactions grouped by kind in ``domain/marketplace/``.
"""

from __future__ import annotations

from domain.ids import allocation_id
from domain.marketplace.checkout import CheckoutTransactions
from domain.marketplace.fees import FeeTransactions
from domain.marketplace.fulfilment import FulfilmentTransactions
from domain.marketplace.inventory import InventoryTransactions
from domain.marketplace.operations import OperationsTransactions
from domain.marketplace.refunds import RefundTransactions
from domain.marketplace.settlement import SettlementTransactions


class Marketplace(
    CheckoutTransactions,
    RefundTransactions,
    SettlementTransactions,
    OperationsTransactions,
    FulfilmentTransactions,
    FeeTransactions,
    InventoryTransactions,
):
    """Payments, orders and the sellers' allocations of a multi-seller marketplace."""

    name = "Marketplace"  # the application's name: its tables and settings are named after it


__all__ = ["Marketplace", "allocation_id"]
