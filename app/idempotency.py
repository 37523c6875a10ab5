"""Idempotency-Key on every POST: the first response is stored durably and replayed.

The claim is an INSERT on (principal, key): the primary key makes racing requests safe
on both PostgreSQL and SQLite. The request that wins runs the command; the others wait
for its response and replay it. The same key with a different request is a 409.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.tables import idempotency_keys
from app.errors import problem

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Row

HEADER = "Idempotency-Key"
WAIT_SECONDS = 30.0
# A claim older than this belongs to a request that died without letting go of it.
LEASE_SECONDS = 300.0
MAX_KEY_LENGTH = 255


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


def claim() -> Response | None:
    """before_request: claim the key, or answer with the stored response, or a 409."""
    if request.method != "POST":
        return None
    key = request.headers.get(HEADER)
    principal = getattr(g, "principal", None)
    if key is None or principal is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        return problem(400, f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters.")
    engine = current_app.extensions["tally"].autocommit
    request_hash = _request_hash()
    where = and_(idempotency_keys.c.principal == principal.key_id, idempotency_keys.c.key == key)
    try:
        with engine.connect() as conn:
            conn.execute(
                insert(idempotency_keys).values(
                    principal=principal.key_id,
                    key=key,
                    method=request.method,
                    path=request.path,
                    request_hash=request_hash,
                    state="in_progress",
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            with engine.connect() as conn:
                row = conn.execute(select(idempotency_keys).where(where)).first()
            if row is None:  # the first attempt failed with a server error and let go of the key
                return claim()
            if row.request_hash != request_hash:
                return problem(409, f"This {HEADER} was already used with a different request.")
            if row.state == "done":
                return _replay(row)
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            if (datetime.now(UTC) - created).total_seconds() > LEASE_SECONDS:
                with engine.begin() as conn:  # take over an abandoned claim (only one taker wins)
                    conn.execute(
                        delete(idempotency_keys).where(
                            and_(
                                where,
                                idempotency_keys.c.state == "in_progress",
                                idempotency_keys.c.created_at == row.created_at,
                            )
                        )
                    )
                return claim()
            if time.monotonic() > deadline:
                return problem(409, f"A request with this {HEADER} is still in progress; retry later.")
            time.sleep(0.02)
    g.idempotency_key = key
    return None


def record(response: Response) -> Response:
    """after_request: store the response of the claimed request (or release it on a 5xx)."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return response
    g.idempotency_key = None
    engine = current_app.extensions["tally"].autocommit
    principal = g.principal
    where = and_(idempotency_keys.c.principal == principal.key_id, idempotency_keys.c.key == key)
    with engine.connect() as conn:
        if response.status_code >= 500 or "Retry-After" in response.headers:
            # A server error or a transient refusal ("busy, retry"): the retry must run again.
            conn.execute(delete(idempotency_keys).where(where))
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name in ("Content-Type", "Location", "Retry-After")
        }
        conn.execute(
            update(idempotency_keys)
            .where(where)
            .values(
                state="done",
                response_status=response.status_code,
                response_body=response.get_data(as_text=True),
                response_headers=json.dumps(headers),
                completed_at=datetime.now(UTC),
            )
        )
    return response


def release_on_teardown(_exc: BaseException | None) -> None:
    """teardown: a request that died before after_request must not hold its key forever."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return
    engine = current_app.extensions["tally"].engine
    with engine.begin() as conn:
        conn.execute(
            delete(idempotency_keys).where(
                and_(
                    idempotency_keys.c.principal == g.principal.key_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.state == "in_progress",
                )
            )
        )


def init_app(app: Flask) -> None:
    app.before_request(claim)
    app.after_request(record)
    app.teardown_request(release_on_teardown)
