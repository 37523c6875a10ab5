"""A projection: a name, the tables it owns, and a dispatcher from event type to row changes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.utils import get_topic
from sqlalchemy import Table
from sqlalchemy.engine import Connection


def dumps(document: Any) -> str:
    return json.dumps(document, default=_default, separators=(",", ":"), sort_keys=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class Projection:
    """Subclasses define their own ``process_event`` (a ``singledispatchmethod`` whose default
    does nothing), register one handler per event class, and list those classes."""

    name: ClassVar[str]
    tables: ClassVar[list[Table]]
    event_classes: ClassVar[tuple[type, ...]]

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(get_topic(cls) for cls in self.event_classes)

    def process_event(self, event: Any, conn: Connection, position: int) -> None:  # pragma: nocover
        raise NotImplementedError

    def apply(self, notification: Any, app: Any, conn: Connection) -> None:
        """Apply one notification of the global log (decoded unless a subclass wants the raw record)."""
        self.process_event(app.mapper.to_domain_event(notification), conn, notification.id)
