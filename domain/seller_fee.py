"""A seller's negotiated platform fee rate, and its history (PUT /sellers/{id}/fee).

Quotes read the rate in force when the session is opened and the allocation keeps it; a change
never touches sessions already open or orders already placed. Sellers without one pay the
platform's rate (``PLATFORM_FEE_BPS``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError
from domain.ids import seller_fee_id

MAX_FEE_BPS = 10_000


class InvalidFeeError(DomainError):
    """A fee rate outside 0-10000 basis points."""

    field = "fee_bps"


def check_fee_bps(fee_bps: int) -> None:
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int) or not 0 <= fee_bps <= MAX_FEE_BPS:
        raise InvalidFeeError(f"fee_bps must be an integer from 0 to {MAX_FEE_BPS}, got {fee_bps!r}")


class SellerFee(Aggregate):
    """The fee rates one seller was charged at, each from the moment it was set."""

    @staticmethod
    def create_id(seller_id: str, **_: Any) -> UUID:
        return seller_fee_id(seller_id)

    @classmethod
    def start(cls, seller_id: str, fee_bps: int, cause: dict[str, Any]) -> SellerFee:
        check_fee_bps(fee_bps)
        return cls(seller_id=seller_id, fee_bps=fee_bps, set_at=datetime.now(UTC), cause=cause)

    @event("Set")
    def __init__(self, seller_id: str, fee_bps: int, set_at: datetime, cause: dict[str, Any]) -> None:
        self.seller_id = seller_id
        self.fee_bps = fee_bps
        self.history: list[dict[str, Any]] = [{"fee_bps": fee_bps, "set_at": set_at}]

    def change(self, fee_bps: int, cause: dict[str, Any]) -> bool:
        """Set a new rate; the rate already in force changes nothing (False)."""
        check_fee_bps(fee_bps)
        if fee_bps == self.fee_bps:
            return False
        self._changed(fee_bps, datetime.now(UTC), cause)
        return True

    @event("Changed")
    def _changed(self, fee_bps: int, set_at: datetime, cause: dict[str, Any]) -> None:
        self.fee_bps = fee_bps
        self.history.append({"fee_bps": fee_bps, "set_at": set_at})
