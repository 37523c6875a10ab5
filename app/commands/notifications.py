"""Seller notifications by e-mail: each claimed before it is sent, so none is sent twice."""

from __future__ import annotations

import json
import logging

from app.commands.deps import Deps
from domain.ports import MailMessage, MailNotSentError, PendingNotification

log = logging.getLogger(__name__)


def _message(notification: PendingNotification) -> MailMessage:
    seller = notification.seller_id
    return MailMessage(
        to=seller if "@" in seller else f"{seller}@sellers.invalid",
        subject=f"tally: {notification.kind.replace('_', ' ')}",
        body=json.dumps(notification.data, indent=2, sort_keys=True),
        headers={"X-Tally-Notification-Id": notification.notification_id},
    )


def deliver_notifications(deps: Deps, limit: int = 200) -> int:
    """E-mail every notification not yet claimed; returns how many were sent."""
    mailer = deps.mailer
    if mailer is None:
        return 0
    deps.read_models.catch_up("notifications")
    outbox = deps.outbox
    sent = 0
    for notification in outbox.unsent(limit):
        if not outbox.claim(notification.notification_id):
            continue  # another sender has it
        try:
            mailer.send(_message(notification))
        except MailNotSentError as exc:
            outbox.mark_failed(notification.notification_id, str(exc))
            log.warning("notification %s not sent: %s", notification.notification_id, exc)
            continue
        outbox.mark_sent(notification.notification_id)
        sent += 1
    return sent
