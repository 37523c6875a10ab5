"""Notifications by e-mail: claimed before each attempt, marked sent once the server accepted it,
retried with exponential backoff for 24 hours, then failed (and the platform alerted).

A sender that dies between the server's acceptance and the mark leaves the claim to run out:
the next attempt sends the message again with the same Message-ID, so a crash at that exact
moment costs at most one duplicate, which the Message-ID lets a server or reader drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.commands.deps import Deps
from domain.contact import PLATFORM, SELLER
from domain.ports import Mailer, MailMessage, MailNotSentError, PendingNotification

log = logging.getLogger(__name__)

RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 60
LONGEST_WAIT_SECONDS = 3600
CLAIM_FOR = timedelta(minutes=2)  # longer than one SMTP conversation (its timeout is 10 s a step)
NOTIFICATION_FAILED = "notification_failed"
MAX_ROUNDS = 50


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: 1, 2, 4 … minutes, at most an hour."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_WAIT_SECONDS))


def address_of(notification: PendingNotification, admin_email: str | None) -> str | None:
    """Where it goes: the platform's ADMIN_EMAIL, the recipient's contact, or for a seller without
    one its id when that is an address (else ``<id>@sellers.invalid``, as before profiles)."""
    if notification.recipient_role == PLATFORM:
        return admin_email
    if notification.email:
        return notification.email
    if notification.recipient_role == SELLER:
        seller = notification.recipient_id
        return seller if "@" in seller else f"{seller}@sellers.invalid"
    return None


def message_id(notification_id: str) -> str:
    return f"<{notification_id}@tally.notifications>"


def deliver_notifications(deps: Deps, limit: int = 200, clock: Callable[[], datetime] | None = None) -> int:
    """E-mail every notification that is due; returns how many the server accepted."""
    mailer = deps.mailer
    if mailer is None:
        return 0
    now = clock or (lambda: datetime.now(UTC))
    sent = 0
    for _ in range(MAX_ROUNDS):
        deps.read_models.catch_up("notifications")
        due = deps.outbox.due(now(), limit)
        alerted = False
        for notification in due:
            outcome = _deliver_one(deps, mailer, notification, now)
            sent += outcome == "sent"
            alerted = alerted or outcome == "alerted"
        if len(due) < limit and not alerted:
            break
    return sent


def _deliver_one(
    deps: Deps, mailer: Mailer, notification: PendingNotification, now: Callable[[], datetime]
) -> str:
    outbox = deps.outbox
    started = now()
    if not outbox.claim(notification, started, started + CLAIM_FOR):
        return "taken"  # another sender has it
    address = address_of(notification, deps.policy.admin_email)
    if address is None:
        outbox.mark_failed(notification.notification_id, "no e-mail address", started)
        return "failed"
    recipient = {
        "role": notification.recipient_role,
        "id": notification.recipient_id,
        "name": notification.name,
    }
    rendered = deps.templates.render(notification.kind, notification.data, recipient)
    message = MailMessage(
        to=address,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id(notification.notification_id),
        headers={"X-Tally-Notification-Id": notification.notification_id},
    )
    try:
        mailer.send(message)
    except MailNotSentError as exc:
        return _not_sent(deps, notification, started, str(exc))
    outbox.mark_sent(notification.notification_id, now())
    log.info("notification %s (%s) sent", notification.notification_id, notification.kind)
    return "sent"


def _not_sent(deps: Deps, notification: PendingNotification, at: datetime, error: str) -> str:
    attempts = notification.attempts + 1
    first = notification.first_attempt_at or at
    retry_at = at + backoff(attempts)
    log.warning(
        "notification %s (%s) not sent, attempt %s: %s",
        notification.notification_id,
        notification.kind,
        attempts,
        error,
    )
    if retry_at - first <= RETRY_FOR:
        deps.outbox.mark_retry(notification.notification_id, error, retry_at)
        return "retry"
    deps.outbox.mark_failed(notification.notification_id, error, at)
    if notification.recipient_role == PLATFORM:
        return "failed"  # an alert about a failed alert would fail the same way
    deps.marketplace.raise_alert(
        NOTIFICATION_FAILED,
        notification.notification_id,
        {
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "recipient_role": notification.recipient_role,
            "recipient_id": notification.recipient_id,
            "attempts": attempts,
            "error": error,
        },
    )
    return "alerted"
