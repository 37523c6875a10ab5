"""Outbound webhooks: each event posted to each subscribed endpoint, signed, until a 2xx.

Every attempt is claimed first, so two workers never post one delivery at once; a worker that
dies mid-delivery leaves the claim to run out and the delivery is posted again (receivers
deduplicate by the event's ``evt_`` id, which never changes). A delivery without a 2xx is
retried with exponential backoff and jitter for 3 days, then failed; an endpoint failing for
3 days is disabled and the platform alerted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.commands.deps import Deps
from domain.ports import WebhookDelivery, WebhookNotDeliveredError

log = logging.getLogger(__name__)

RETRY_FOR = timedelta(days=3)
DISABLE_AFTER = timedelta(days=3)
FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 6 * 3600
CLAIM_FOR = timedelta(seconds=60)  # a batch's claim
ATTEMPT_BUDGET = timedelta(seconds=25)  # the longest one POST takes (10 s to connect, 10 s per read)
CLAIM_BATCH = 25
SIGNATURE_HEADER = "Tally-Signature"
ENDPOINT_DISABLED = "webhook_endpoint_disabled"
MAX_ROUNDS = 50


def signature(secret: str, timestamp: int, body: str) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the whole secret>``:
    Stripe's scheme, so a receiver's Stripe verification code works unchanged."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff(attempts: int, jitter: float) -> timedelta:
    """The wait after the ``attempts``-th failure: 30 s doubling to at most 6 h, times ``jitter``
    (0.5-1.0, drawn per attempt) so many deliveries failing together do not return together."""
    base = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_WAIT_SECONDS)
    return timedelta(seconds=base * jitter)


def deliver_webhooks(
    deps: Deps,
    limit: int = 200,
    clock: Callable[[], datetime] | None = None,
    jitter: Callable[[], float] | None = None,
) -> int:
    """Fan new events out to their endpoints and post every delivery that is due; returns how
    many got a 2xx."""
    now = clock or (lambda: datetime.now(UTC))
    draw = jitter or (lambda: random.uniform(0.5, 1.0))
    delivered = 0
    for round_ in range(MAX_ROUNDS):
        deps.read_models.catch_up("webhook_events")
        deps.webhooks.fan_out(now())
        due = deps.webhooks.due(now(), limit)
        if round_ == 0 and len(due) == limit:
            deps.jobs.webhooks_changed()  # a backlog: another worker may share it (claims keep them apart)
        for start in range(0, len(due), CLAIM_BATCH):
            delivered += _attempt_batch(deps, due[start : start + CLAIM_BATCH], now, draw)
        if len(due) < limit:
            break
    return delivered


def _attempt_batch(
    deps: Deps, batch: list[WebhookDelivery], now: Callable[[], datetime], draw: Callable[[], float]
) -> int:
    """Claim a batch in one transaction, post each in turn, mark the 2xx ones in one more. A
    delivery left too close to the claim's end is given back unposted (never posted by two)."""
    store = deps.webhooks
    started = now()
    claimed_until = started + CLAIM_FOR
    claimed = store.claim(batch, started, claimed_until)
    delivered: list[tuple[str, int]] = []
    disabled: set[str] = set()  # endpoints disabled meanwhile: their deliveries were failed
    for index, delivery in enumerate(claimed):
        if now() + ATTEMPT_BUDGET > claimed_until:
            store.release([d.delivery_id for d in claimed[index:]])
            break
        if delivery.endpoint_id in disabled:
            continue
        status, endpoint_disabled = _attempt(deps, delivery, now, draw)
        if status is not None:
            delivered.append((delivery.delivery_id, status))
        if endpoint_disabled:
            disabled.add(delivery.endpoint_id)
    store.mark_delivered(delivered, now())
    return len(delivered)


def _attempt(
    deps: Deps, delivery: WebhookDelivery, now: Callable[[], datetime], draw: Callable[[], float]
) -> tuple[int | None, bool]:
    """Post one claimed delivery: (its 2xx status, or None after recording the failure; whether
    its endpoint was disabled for failing too long)."""
    store = deps.webhooks
    started = now()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tally-webhooks/1",
        SIGNATURE_HEADER: signature(delivery.secret, int(started.timestamp()), delivery.body),
    }
    status: int | None = None
    try:
        status = deps.webhook_sender.post(delivery.url, delivery.body.encode(), headers)
    except WebhookNotDeliveredError as exc:
        error = str(exc)
    else:
        if 200 <= status < 300:
            return status, False
        error = f"HTTP {status}"
    attempts = delivery.attempts + 1
    log.warning(
        "webhook %s to endpoint %s not delivered, attempt %s: %s",
        delivery.event_id,
        delivery.endpoint_id,
        attempts,
        error,
    )
    first = delivery.first_attempt_at or started
    retry_at = started + backoff(attempts, draw())
    if retry_at - first <= RETRY_FOR:
        failing_since = store.mark_retry(delivery.delivery_id, status, error, retry_at, started)
        disable = started - failing_since >= DISABLE_AFTER
    else:
        # Given up after its 3 days: with no success anywhere on the endpoint since its first
        # attempt, the endpoint has been failing for as long.
        failing_since = store.mark_failed(delivery.delivery_id, status, error, started)
        disable = failing_since <= first
    url = store.disable_endpoint(delivery.endpoint_id, started) if disable else None
    if url is not None:
        log.error("webhook endpoint %s disabled after failing since %s", delivery.endpoint_id, failing_since)
        deps.marketplace.raise_alert(
            ENDPOINT_DISABLED,
            f"{delivery.endpoint_id}/{started.isoformat()}",
            {
                "endpoint_id": delivery.endpoint_id,
                "url": url,
                "failing_since": failing_since.isoformat(),
                "last_error": error,
            },
        )
    return None, url is not None
