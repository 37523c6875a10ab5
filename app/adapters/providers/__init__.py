"""Payment providers behind the PaymentGateway port: the built-in mock, Stripe and Razorpay.

Stripe's SDK is imported only by ``stripe_gateway`` and ``stripe_webhooks``, Razorpay's only by
``razorpay_gateway``, and each only when its provider is configured (or its webhook arrives).
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
    if settings.payment_provider == "razorpay":
        if not (settings.razorpay_key_id and settings.razorpay_key_secret):
            raise ValueError("PAYMENT_PROVIDER=razorpay needs RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET")
        from app.adapters.providers.razorpay_gateway import RazorpayGateway

        return RazorpayGateway(
            settings.razorpay_key_id, settings.razorpay_key_secret, settings.razorpay_api_base
        )
    return MockGateway()
