"""Stripe webhooks: the signature verified on the raw body, the event returned as plain JSON."""

from __future__ import annotations

import json
from typing import Any

import stripe


class WebhookSignatureError(Exception):
    """The webhook's signature is missing, malformed, wrong or too old."""


def verify_webhook(payload: bytes, signature: str, secret: str) -> dict[str, Any]:
    """Verify a Stripe-Signature header on the raw body and return the event as a dict."""
    stripe.Webhook.construct_event(payload, signature, secret)  # verifies; refuses bodies that are not events
    # The event as plain JSON: the SDK's to_dict() leaves StripeObjects inside nested lists,
    # which json.dumps (storing the event) then fails on.
    event: dict[str, Any] = json.loads(payload)
    return event


def check_webhook(payload: bytes, signature: str | None, secret: str | None) -> dict[str, Any]:
    if not secret:
        raise WebhookSignatureError("webhooks are not configured (STRIPE_WEBHOOK_SECRET unset)")
    if not signature:
        raise WebhookSignatureError("missing Stripe-Signature header")
    try:
        return verify_webhook(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise WebhookSignatureError("signature verification failed") from None
    except (ValueError, TypeError, AttributeError, RecursionError):
        # not JSON, or JSON that is not an object (the SDK fails on `[]` with AttributeError)
        raise WebhookSignatureError("body is not a Stripe event") from None
