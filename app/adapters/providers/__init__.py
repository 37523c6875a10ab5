"""Payment providers behind the PaymentGateway port: the built-in mock and Stripe.

Stripe's SDK is imported only by ``stripe_gateway`` and ``stripe_webhooks``, and only when the
Stripe provider is configured or a Stripe webhook arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.adapters.providers.mock import MockGateway
from domain.ports import PaymentGateway

if TYPE_CHECKING:  # pragma: nocover
    from app.config import Settings


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.payment_provider == "stripe":
        if not settings.stripe_api_key:
            raise ValueError("PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY")
        from app.adapters.providers.stripe_gateway import StripeGateway

        return StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    return MockGateway()
