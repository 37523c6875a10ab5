"""Idempotency-Key on every POST: the first response is stored durably and replayed.

The claim is an INSERT on (principal, key): the primary key makes racing requests safe
on both PostgreSQL and SQLite. The request that wins runs the command; a duplicate waits a
moment for its response and replays it, or answers 409 with Retry-After while it still runs.
The same key with a different request is a 409.

A claim is a short lease owned by a live request: ``created_at`` is renewed every couple of
seconds by the process's heartbeat while the request runs, and the renewal and the final
write both name the stamp they last wrote (a fence), so a claim taken over after it lapsed is
never overwritten by its old owner. A request whose process died lets go within
``LEASE_SECONDS``; a server error releases the key at once, so the retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.heartbeat import LEASE_SECONDS, heartbeat
from app.adapters.outages import DEPENDENCY_ERRORS, dependency_of, note_outage
from app.adapters.tables import idempotency_keys
from app.errors import problem
from app.schemas import is_storable

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Engine, Row

HEADER = "Idempotency-Key"
# A duplicate waits this long for the first request's answer, then hears "retry" (no thread
# is held polling for long).
WAIT_SECONDS = 2.0
MAX_KEY_LENGTH = 255


_T = idempotency_keys.c
_KEY = and_(_T.principal == bindparam("b_principal"), _T.key == bindparam("b_key"))
# The statements, built once (a request pays for its parameters only, not for building SQL).
_CLAIM = insert(idempotency_keys)
_READ = select(idempotency_keys).where(_KEY)
# A lease is its owner's while the row still carries the stamp the owner last wrote (a fence).
_LEASE = and_(_KEY, _T.state == "in_progress", _T.created_at == bindparam("b_stamp"))
_RENEW = update(idempotency_keys).where(_LEASE).values(created_at=bindparam("b_now"))
_FINISH = (
    update(idempotency_keys)
    .where(_LEASE)
    .values(
        state=bindparam("b_state"),
        response_status=bindparam("b_status"),
        response_body=bindparam("b_body"),
        response_headers=bindparam("b_headers"),
        completed_at=bindparam("b_completed_at"),
    )
)
_RELEASE = delete(idempotency_keys).where(_LEASE)


class _Claim:
    """This request's lease on its key: the stamp it last wrote, renewed until it is done."""

    def __init__(self, engine: Engine, principal: str, key: str, stamp: datetime) -> None:
        self.engine = engine
        self.key = {"b_principal": principal, "b_key": key}
        self.stamp = stamp
        self.done = False
        self.lock = threading.Lock()
        self.handle = heartbeat.add(self.renew)

    def renew(self) -> bool:
        with self.lock:
            if self.done:
                return False
            now = datetime.now(UTC)
            with self.engine.connect() as conn:
                renewed = conn.execute(_RENEW, {**self.key, "b_stamp": self.stamp, "b_now": now})
            if renewed.rowcount != 1:  # lapsed and taken over: the new owner decides
                self.done = True
                return False
            self.stamp = now
            return True

    def finish(self, response: dict[str, Any] | None = None) -> None:
        """Store the response (status, body, headers: JSON text), or with none release the key;
        then stop renewing."""
        heartbeat.remove(self.handle)
        with self.lock:
            if self.done:
                return
            self.done = True
            lease = {**self.key, "b_stamp": self.stamp}
            with self.engine.connect() as conn:
                if response is None:
                    conn.execute(_RELEASE, lease)
                    return
                conn.execute(
                    _FINISH,
                    {
                        **lease,
                        "b_state": "done",
                        "b_status": response["status"],
                        "b_body": response["body"],
                        "b_headers": response["headers"],
                        "b_completed_at": datetime.now(UTC),
                    },
                )


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0" + request.path.encode())
    digest.update(b"\0" + request.query_string)
    digest.update(b"\0" + request.get_data(cache=True))
    return digest.hexdigest()


def _replay(row: Row[Any]) -> Response:
    response = Response(row.response_body, status=row.response_status)
    for name, value in json.loads(row.response_headers or "{}").items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def claim() -> Response | None:
    """before_request: claim the key, or answer with the stored response, or a 409."""
    if request.method != "POST":
        return None
    key = request.headers.get(HEADER)
    principal = getattr(g, "principal", None)
    if key is None or principal is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not is_storable(key):
        return problem(400, f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters.")
    engine = current_app.extensions["tally"].autocommit
    request_hash = _request_hash()
    mine = {"b_principal": principal.key_id, "b_key": key}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        stamp = datetime.now(UTC)
        try:
            with engine.connect() as conn:
                conn.execute(
                    _CLAIM,
                    {
                        "principal": principal.key_id,
                        "key": key,
                        "method": request.method,
                        "path": request.path,
                        "request_hash": request_hash,
                        "state": "in_progress",
                        "created_at": stamp,
                    },
                )
        except IntegrityError:
            pass
        else:
            g.idempotency_key = key
            g.idempotency_claim = _Claim(engine, principal.key_id, key, stamp)
            return None
        with engine.connect() as conn:
            row = conn.execute(_READ, mine).first()
        if row is None:  # the first attempt let go of the key (a server error): claim it
            continue
        if row.request_hash != request_hash:
            return problem(409, f"This {HEADER} was already used with a different request.")
        if row.state == "done":
            return _replay(row)
        if (datetime.now(UTC) - _aware(row.created_at)).total_seconds() > LEASE_SECONDS:
            with engine.connect() as conn:  # its owner died: take over (one taker wins the insert)
                conn.execute(_RELEASE, {**mine, "b_stamp": row.created_at})
            continue
        if time.monotonic() > deadline:
            return problem(
                409,
                f"A request with this {HEADER} is still in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        time.sleep(0.05)


def current_attempt() -> str | None:
    """This request's attempt, when it claimed an Idempotency-Key: the same on every retry."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return None
    return hashlib.sha256(f"{g.principal.key_id}\0{key}".encode()).hexdigest()[:32]


def record(response: Response) -> Response:
    """after_request: store the response of the claimed request (or release it on a 5xx)."""
    claim_: _Claim | None = getattr(g, "idempotency_claim", None)
    if claim_ is None:
        return response
    g.idempotency_claim = None
    try:
        if response.status_code >= 500 or "Retry-After" in response.headers:
            # A server error or a transient refusal ("busy, retry"): the retry must run again.
            claim_.finish()
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name in ("Content-Type", "Location", "Retry-After")
        }
        claim_.finish(
            {
                "status": response.status_code,
                "body": response.get_data(as_text=True),
                "headers": json.dumps(headers),
            }
        )
    except DEPENDENCY_ERRORS as exc:
        # The database went away after the command: its answer stands for this client, and the
        # claim lapses within LEASE_SECONDS, after which a retry finds the command's effects.
        note_outage(dependency_of(exc) or "database", exc, "idempotency record")
    return response


def release_on_teardown(_exc: BaseException | None) -> None:
    """teardown: a request that died before after_request must not hold its key."""
    claim_: _Claim | None = getattr(g, "idempotency_claim", None)
    if claim_ is None:
        return
    g.idempotency_claim = None
    try:
        claim_.finish()
    except DEPENDENCY_ERRORS as exc:
        note_outage(dependency_of(exc) or "database", exc, "idempotency release")


def init_app(app: Flask) -> None:
    app.before_request(claim)
    app.after_request(record)
    app.teardown_request(release_on_teardown)
