"""Deterministic ids for natural keys, so re-running a command conflicts instead of doubling."""

from __future__ import annotations

from functools import lru_cache
from hashlib import sha1
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1d5a8e-3c2b-4f7a-9a51-7d0c1e2b3a40")
_NAMESPACE_BYTES = NAMESPACE.bytes


def name_id_text(name: str) -> str:
    """``str(uuid5(NAMESPACE, name))``, five times faster: without a UUID object in between.
    The read models derive an id like this per row, a full rebuild hundreds of thousands."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def order_id_for_session(session_id: str) -> UUID:
    """The one order a checkout session can ever place."""
    return uuid5(NAMESPACE, f"order/{session_id}")


def allocation_id(order_id: UUID, seller_id: str) -> UUID:
    """The allocation of one order to one seller."""
    return uuid5(NAMESPACE, f"allocation/{order_id}/{seller_id}")


def settlement_id(seller_id: str, currency: str, period_start: str, period_end: str) -> UUID:
    """The settlement of one seller, currency and period."""
    return uuid5(NAMESPACE, f"settlement/{seller_id}/{currency}/{period_start}/{period_end}")


def refund_id(order_id: UUID, key: str) -> UUID:
    """A refund of an order, keyed by the caller's idempotency key or a random token."""
    return uuid5(NAMESPACE, f"refund/{order_id}/{key}")


def provider_refund_id(provider_reference: str) -> UUID:
    """tally's id for a refund first seen at the provider (e.g. made in Stripe's dashboard)."""
    return uuid5(NAMESPACE, f"provider-refund/{provider_reference}")


def refund_failure_id(refund_id: str, allocation_id: str) -> UUID:
    """What gives one allocation back its part of a refund that failed at the provider."""
    return uuid5(NAMESPACE, f"refund-failure/{refund_id}/{allocation_id}")


def dispute_reversal_id(dispute_id: str, allocation_id: str) -> UUID:
    """The reversal of one allocation when a dispute withdraws the funds."""
    return uuid5(NAMESPACE, f"dispute-reversal/{dispute_id}/{allocation_id}")


def dispute_restore_id(dispute_id: str, allocation_id: str) -> UUID:
    """The restoration of one allocation when a won dispute reinstates the funds."""
    return uuid5(NAMESPACE, f"dispute-restore/{dispute_id}/{allocation_id}")


def transfer_reversal_id(refund_id: str, allocation_id: str) -> UUID:
    """The one transfer reversal that recovers one refund's paid-out part of one allocation
    (the provider's idempotency key)."""
    return uuid5(NAMESPACE, f"transfer-reversal/{refund_id}/{allocation_id}")


def verification_id(key: str) -> UUID:
    """The one verification of the books a key names (the schedule's: one a day)."""
    return uuid5(NAMESPACE, f"verification/{key}")


def seller_account_id(seller_id: str) -> UUID:
    """The one payout-account link a seller has."""
    return uuid5(NAMESPACE, f"seller-account/{seller_id}")


def contact_id(role: str, subject_id: str) -> UUID:
    """The one contact record of a customer, a seller or the platform."""
    return uuid5(NAMESPACE, f"contact/{role}/{subject_id}")


def alert_id(kind: str, key: str) -> UUID:
    """One platform alert per kind and subject: raised again, it conflicts instead of repeating."""
    return uuid5(NAMESPACE, f"alert/{kind}/{key}")


def transfer_undo_id(settlement_id: str, allocation_id: str) -> UUID:
    """The reversal that takes a settlement line's transfer back when another line failed for good."""
    return uuid5(NAMESPACE, f"transfer-undo/{settlement_id}/{allocation_id}")


def fulfilment_id(allocation_id: str) -> UUID:
    """The one fulfilment of one allocation (a seller's part of an order)."""
    return uuid5(NAMESPACE, f"fulfilment/{allocation_id}")


def cancellation_refund_key(allocation_id: str) -> str:
    """The refund key of a part's cancellation: a part is cancelled once, so a retried cancel
    (after a crash, from anyone) makes and records the same refund, never a second one."""
    return f"cancellation/{allocation_id}"


@lru_cache(maxsize=65_536)
def seller_fee_id(seller_id: str) -> UUID:
    """The one fee-rate history a seller has (kept: every quote asks, for every seller in it)."""
    return uuid5(NAMESPACE, f"seller-fee/{seller_id}")


@lru_cache(maxsize=65_536)
def stock_id(seller_id: str, sku: str) -> UUID:
    """The one stock record of a seller's SKU (kept: a checkout asks several times per SKU)."""
    return uuid5(NAMESPACE, f"stock/{seller_id}/{sku}")
