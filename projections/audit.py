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
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from projections.base import Projection, add_row
from projections.tables import audit_log

GENESIS = "0" * 64


def canonical_bytes(stream_id: str, version: int, topic: str, state: bytes) -> bytes:
    return f"{stream_id}\n{version}\n{topic}\n".encode() + bytes(state)


def chain(previous_hash: str, stream_id: str, version: int, topic: str, state: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous_hash) + canonical_bytes(stream_id, version, topic, state)).hexdigest()


def describe(topic: str, state: bytes) -> tuple[str, str, datetime | None, dict[str, Any]]:
    """(stream type, event type, timestamp, payload) of a stored event."""
    qualname = topic.split(":", 1)[-1]
    stream_type = qualname.split(".", 1)[0]
    try:
        payload = json.loads(bytes(state))
    except (ValueError, UnicodeDecodeError):
        return stream_type, qualname, None, {"_undecodable": True}
    timestamp = None
    raw = payload.pop("timestamp", None)
    if isinstance(raw, dict):  # the library's transcoded datetime {"_type_": ..., "_data_": iso}
        raw = raw.get("_data_")
    if isinstance(raw, str):
        try:
            timestamp = datetime.fromisoformat(raw)
        except ValueError:
            timestamp = None
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    payload.pop("originator_id", None)
    payload.pop("originator_version", None)
    return stream_type, qualname, timestamp, _plain(payload)


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


class AuditLogProjection(Projection):
    name = "audit_log"
    tables = [audit_log]
    event_classes = ()  # every event

    def __init__(self) -> None:
        self._last: tuple[int, str] | None = None
        self._conn: Connection | None = None

    def _tail(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(
            select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
        ).first()
        return (row.position, row.hash) if row else (0, GENESIS)

    def apply(self, notification: Any, app: Any, conn: Connection) -> None:
        if self._last is None or self._conn is not conn:  # a new transaction: re-read the tail
            self._last = self._tail(conn)
            self._conn = conn
        position, previous = self._last
        stream_id = str(notification.originator_id)
        digest = chain(previous, stream_id, notification.originator_version, notification.topic, notification.state)
        stream_type, event_type, timestamp, payload = describe(notification.topic, notification.state)
        add_row(
            conn,
            audit_log,
            position=position + 1,
            notification_id=notification.id,
            stream_id=stream_id,
            stream_type=stream_type,
            version=notification.originator_version,
            type=event_type,
            timestamp=timestamp,
            data=json.dumps(payload, sort_keys=True, separators=(",", ":")),
            hash=digest,
            previous_hash=previous,
        )
        self._last = (position + 1, digest)
