"""Who caused an event, in which request, and why: carried by every event as a plain dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """The actor (API key id and role, or ``webhook`` / ``system``), request id and reason."""

    actor_id: str
    actor_role: str
    request_id: str
    reason: str | None = None

    def with_reason(self, reason: str | None) -> Cause:
        return Cause(self.actor_id, self.actor_role, self.request_id, reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def system(cls, request_id: str, reason: str | None = None) -> Cause:
        return cls("system", "system", request_id, reason)

    @classmethod
    def webhook(cls, provider_event_id: str) -> Cause:
        return cls("webhook", "webhook", provider_event_id)
