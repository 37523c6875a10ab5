"""Unit fixtures: an in-memory Marketplace, checkout sessions priced like the handler does, frozen time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder
from freezegun.api import FakeDatetime

from domain.order import Order
from domain.payment import Payment
from domain.pricing import quote
from domain.services import Marketplace

POPO_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}

ITEMS: list[dict[str, Any]] = [
    {"seller_id": "s-1", "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2},
    {"seller_id": "s-2", "sku": "tee", "description": "T-shirt", "unit_amount": 1999, "quantity": 1},
]
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


class FakeDatetimeAsISO(DatetimeAsISO):
    """Stores freezegun's FakeDatetime like a datetime, so aggregates can be saved inside freeze_time."""

    type = FakeDatetime
    name = "fake_datetime_iso"


class FrozenTimeMarketplace(Marketplace):
    """A Marketplace whose transcoder also knows freezegun's FakeDatetime (tests only)."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(FakeDatetimeAsISO())


def make_cause(request_id: str = "req-1", reason: str | None = None) -> dict[str, Any]:
    return {"actor_id": "key-1", "actor_role": "admin", "request_id": request_id, "reason": reason}


def make_session(
    items: list[dict[str, Any]] | None = None,
    currency: str = "USD",
    fee_bps: int = 1000,
    customer_id: str = "c-1",
    granularity: int = 1,
) -> dict[str, Any]:
    """A checkout session shaped like app.commands.checkout.create_checkout_session builds it."""
    return {
        "id": str(uuid.uuid4()),
        "status": "open",
        "customer_id": customer_id,
        **quote(currency, items if items is not None else ITEMS, fee_bps, granularity).to_dict(),
        "granularity": granularity,
        "delivery_address": dict(ADDRESS),
        "order_id": None,
        "payment_id": None,
    }


def place_order(
    marketplace: Marketplace, session: dict[str, Any], cause: dict[str, Any] | None = None
) -> tuple[Payment, Order]:
    """Pay for a session and place its order, as a successful confirm does."""
    cause = cause or make_cause()
    payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
    return marketplace.complete_payment(str(payment.id), f"pi_{payment.id.hex}", cause)


def recorded_events(marketplace: Marketplace, after: int = 0) -> list[DomainEventProtocol[uuid.UUID]]:
    """Every stored event after a notification position, in log order."""
    notifications = marketplace.recorder.select_notifications(after + 1, 10_000)
    return [marketplace.mapper.to_domain_event(n) for n in notifications]


def last_position(marketplace: Marketplace) -> int:
    return marketplace.recorder.max_notification_id() or 0


@pytest.fixture
def marketplace() -> Iterator[Marketplace]:
    app = Marketplace(env=POPO_ENV)
    yield app
    app.close()


@pytest.fixture
def frozen_marketplace() -> Iterator[FrozenTimeMarketplace]:
    app = FrozenTimeMarketplace(env=POPO_ENV)
    yield app
    app.close()


@pytest.fixture
def cause() -> dict[str, Any]:
    return make_cause()


@pytest.fixture
def placed(marketplace: Marketplace, cause: dict[str, Any]) -> tuple[Payment, Order]:
    """A paid two-seller order (s-1: 2500, s-2: 1999, 10% fee)."""
    return place_order(marketplace, make_session(), cause)
