"""Marketplace: the write model. Load aggregates, call their verbs, save once, atomically.

One eventsourcing Application, its transactions grouped by kind in ``domain/marketplace/``.
"""

from __future__ import annotations

from domain.ids import allocation_id
from domain.marketplace.bank_transfers import BankTransferTransactions
from domain.marketplace.checkout import CheckoutTransactions
from domain.marketplace.contacts import ContactTransactions
from domain.marketplace.fees import FeeTransactions
from domain.marketplace.fulfilment import FulfilmentTransactions
from domain.marketplace.inventory import InventoryTransactions
from domain.marketplace.operations import OperationsTransactions
from domain.marketplace.refunds import RefundTransactions
from domain.marketplace.settlement import SettlementTransactions
from domain.marketplace.settlement_runs import SettlementRunTransactions


class Marketplace(
    CheckoutTransactions,
    RefundTransactions,
    SettlementTransactions,
    SettlementRunTransactions,
    OperationsTransactions,
    FulfilmentTransactions,
    FeeTransactions,
    InventoryTransactions,
    ContactTransactions,
    BankTransferTransactions,
):
    """Payments, orders and the sellers' allocations of a multi-seller marketplace."""

    name = "Marketplace"  # the application's name: its tables and settings are named after it


__all__ = ["Marketplace", "allocation_id"]
