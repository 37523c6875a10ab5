"""The audit log: every event in commit order with a gap-free position and a hash chain.

The store's notification ids are ordered but have gaps (a rolled-back insert burns
one), so tally numbers the log itself: this projection is the only writer of
``audit_log`` (its position row is locked), and each event gets ``last position + 1``.
Each row's hash is ``sha256(previous hash || canonical bytes of the stored event)``,
where the canonical bytes are the stream id, version, topic and the stored state
exactly as the event store holds them. Editing, deleting or reordering any stored
event therefore breaks the chain from that point on, which ``audit verify`` reports.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from projections.base import Projection, RowWriter
from projections.tables import audit_log

GENESIS = "0" * 64


def canonical_bytes(stream_id: str, version: int, topic: str, state: bytes) -> bytes:
    return f"{stream_id}\n{version}\n{topic}\n".encode() + bytes(state)


def chain(previous_hash: str, stream_id: str, version: int, topic: str, state: bytes) -> str:
    return hashlib.sha256(
        bytes.fromhex(previous_hash) + canonical_bytes(stream_id, version, topic, state)
    ).hexdigest()


def names(topic: str) -> tuple[str, str]:
    """(stream type, event type) of a stored event's topic, e.g. ("Order", "Order.Placed")."""
    qualname = topic.split(":", 1)[-1]
    return qualname.split(".", 1)[0], qualname


def _timestamp(raw: str) -> datetime | None:
    """A stored ISO 8601 timestamp (UTC when it names no zone), or None if unreadable."""
    try:
        timestamp = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)


def describe(topic: str, state: bytes) -> tuple[str, str, datetime | None, dict[str, Any]]:
    """(stream type, event type, timestamp, payload) of a stored event."""
    stream_type, qualname = names(topic)
    try:
        payload = json.loads(bytes(state))
    except (ValueError, UnicodeDecodeError):
        return stream_type, qualname, None, {"_undecodable": True}
    raw = payload.pop("timestamp", None)
    if isinstance(raw, dict):  # the library's transcoded datetime {"_type_": ..., "_data_": iso}
        raw = raw.get("_data_")
    timestamp = _timestamp(raw) if isinstance(raw, str) else None
    payload.pop("originator_id", None)
    payload.pop("originator_version", None)
    return stream_type, qualname, timestamp, _plain(payload)


def payload(data: str) -> dict[str, Any]:
    """What readers see of an audit row's stored event: its fields, transcodings undone."""
    return describe("", data.encode())[3]


def _plain(value: Any) -> Any:
    """Undo the library's JSON transcodings ({"_type_": "uuid_hex", "_data_": ...}) for readers."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            kind, data = value["_type_"], value["_data_"]
            if kind == "uuid_hex" and isinstance(data, str) and len(data) == 32:
                return f"{data[:8]}-{data[8:12]}-{data[12:16]}-{data[16:20]}-{data[20:]}"
            return _plain(data)
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_TIMESTAMP = re.compile(rb'"timestamp":\{"_type_":"datetime_iso","_data_":"([^"]+)"\}')


def stored_timestamp(state: bytes) -> datetime | None:
    """The event's timestamp as the store holds it, without decoding the whole event."""
    found = _TIMESTAMP.search(state)
    if found is None:
        return describe("", state)[2]
    return _timestamp(found.group(1).decode())


def stored_text(state: bytes) -> str:
    """The stored event state as text (JSON), exactly as the event store holds it."""
    return bytes(state).decode("utf-8", errors="backslashreplace")


class AuditLogProjection(Projection):
    """Each row keeps the stored event (``data``: its state as the store holds it, so the row's
    hash can be recomputed from the row alone); readers get the decoded payload from
    :func:`describe`."""

    name = "audit_log"
    tables = [audit_log]
    event_classes = ()  # every event
    decoded = False

    def __init__(self) -> None:
        self._last: tuple[int, str] | None = None
        self._conn: object | None = None

    def reset(self, conn: Connection) -> None:
        self._last, self._conn = (0, GENESIS), conn

    def _tail(self, writer: RowWriter) -> tuple[int, str]:
        row = writer.execute(
            select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
        ).first()
        return (row.position, row.hash) if row else (0, GENESIS)

    def process_event(self, notification: Any, writer: RowWriter, position: int) -> None:
        if self._last is None or self._conn is not writer.conn:  # a new transaction: re-read the tail
            self._last = self._tail(writer)
            self._conn = writer.conn
        last, previous = self._last
        stream_id = str(notification.originator_id)
        digest = chain(
            previous, stream_id, notification.originator_version, notification.topic, notification.state
        )
        stream_type, event_type = names(notification.topic)
        writer.add(
            audit_log,
            position=last + 1,
            notification_id=notification.id,
            stream_id=stream_id,
            stream_type=stream_type,
            version=notification.originator_version,
            type=event_type,
            timestamp=stored_timestamp(notification.state),
            data=stored_text(notification.state),
            hash=digest,
            previous_hash=previous,
        )
        self._last = (last + 1, digest)
