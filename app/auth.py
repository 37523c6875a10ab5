"""API keys: created by the CLI, stored as SHA-256 hashes, compared in constant time.

A key reads ``tk_<key id>.<secret>``. Only the id and the hash of the secret are stored;
the secret is high-entropy (256 bits), so a fast hash is the right tool (as for GitHub
tokens): there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from flask import current_app, g, request
from sqlalchemy import insert, select, update
from werkzeug.exceptions import Forbidden, Unauthorized

from app.adapters.tables import api_keys

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Engine

ROLES = ("admin", "auditor", "customer", "seller")
SUBJECT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_KEY_RE = re.compile(r"^tk_([0-9a-f]{24})\.([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key id, its role and (for customers and sellers) the subject."""

    key_id: str
    role: str
    subject: str | None = None

    def cause(self, request_id: str, reason: str | None = None) -> dict[str, Any]:
        role = f"{self.role}:{self.subject}" if self.subject else self.role
        return {"actor_id": self.key_id, "actor_role": role, "request_id": request_id, "reason": reason}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    engine: Engine, role: str, subject: str | None, expires_at: datetime | None = None
) -> tuple[str, str]:
    """Store a new key; return (key id, the full key, shown once)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in ("customer", "seller"):
        if not subject or not SUBJECT_RE.match(subject):
            raise ValueError("customer and seller keys need --subject of 1-64 chars of [A-Za-z0-9_.:-]")
    elif subject:
        raise ValueError(f"{role} keys take no subject")
    key_id = secrets.token_hex(12)
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                secret_hash=_hash(secret),
                role=role,
                subject=subject,
                created_at=datetime.now(UTC),
                expires_at=expires_at,
            )
        )
    return key_id, f"tk_{key_id}.{secret}"


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    """Every key's id, role, subject and dates (never its secret or hash), oldest first."""
    columns = [c for c in api_keys.c if c.name != "secret_hash"]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(api_keys.c.created_at, api_keys.c.id)).all()
    return [dict(row._mapping) for row in rows]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke a key (at once in the database; every process stops accepting it within
    CACHE_SECONDS). False when there is no such key; revoking twice keeps the first time."""
    with engine.begin() as conn:
        found = conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.id == key_id)).first()
        if found is None:
            return False
        if found.revoked_at is None:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC)))
    return True


# Each process caches a key's hash this long: a revoked or expired key is refused everywhere within
# a second, while a busy process still reads each key at most once a second.
CACHE_SECONDS = 1.0
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key
_cache: dict[str, tuple[float, str, Principal | None]] = {}
_cache_lock = threading.Lock()


def _lookup(engine: Engine, key_id: str) -> tuple[str, Principal | None]:
    """(stored hash, principal) of a key id, from a per-process cache of CACHE_SECONDS.

    The cache holds only hashes; a revoked, expired or deleted key stops working within
    CACHE_SECONDS. The secret is still compared in constant time on every request.
    """
    now = time.monotonic()
    cached = _cache.get(key_id)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    entry: tuple[str, Principal | None]
    with engine.connect() as conn:
        row = conn.execute(
            select(
                api_keys.c.secret_hash,
                api_keys.c.role,
                api_keys.c.subject,
                api_keys.c.revoked_at,
                api_keys.c.expires_at,
                api_keys.c.last_used_at,
            ).where(api_keys.c.id == key_id)
        ).first()
    wall = datetime.now(UTC)
    if row is None or row.revoked_at is not None or (row.expires_at and _aware(row.expires_at) <= wall):
        entry = (_DUMMY_HASH, None)
    else:
        entry = (row.secret_hash, Principal(key_id=key_id, role=row.role, subject=row.subject))
        if row.last_used_at is None or _aware(row.last_used_at) < wall - LAST_USED_EVERY:
            with engine.begin() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=wall))
    ttl = CACHE_SECONDS
    if row is not None and row.expires_at is not None and entry[1] is not None:
        ttl = min(ttl, (_aware(row.expires_at) - wall).total_seconds())  # never cached past expiry
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key_id] = (now + ttl, *entry)
    return entry


def _aware(moment: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive (in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def authenticate(engine: Engine, header: str | None) -> Principal | None:
    """The principal for an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer":  # the auth scheme is case-insensitive (RFC 9110, 11.1)
        return None
    match = _KEY_RE.match(token.strip())
    if not match:
        return None
    key_id, secret = match.groups()
    stored, principal = _lookup(engine, key_id)
    if not hmac.compare_digest(stored, _hash(secret)) or principal is None:
        return None
    return principal


def principal_for_key_id(engine: Engine, key_id: str) -> Principal | None:
    """The principal of a key still valid (not revoked, not expired) by its id alone: for the
    console, whose session holds the id after the full key was checked at sign-in."""
    if not re.fullmatch(r"[0-9a-f]{24}", key_id):
        return None
    return _lookup(engine, key_id)[1]


def load_principal() -> None:
    """before_request: identify the caller (authorization happens per endpoint)."""
    container = current_app.extensions["tally"]
    header = request.headers.get("Authorization")
    g.principal = authenticate(container.engine, header) if header else None
    g.bad_credentials = bool(header) and g.principal is None


def current_principal() -> Principal:
    principal = getattr(g, "principal", None)
    if principal is None:
        if getattr(g, "bad_credentials", False):
            raise Unauthorized("The API key is not valid.")
        raise Unauthorized("An API key is required: Authorization: Bearer <key>.")
    return principal


P = ParamSpec("P")
R = TypeVar("R")


def require(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow only these roles (auditors never write: give "auditor" to GETs only)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            principal = current_principal()
            if principal.role not in roles:
                raise Forbidden(f"A {principal.role} key may not do this.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def check_subject(role: str, subject: str) -> None:
    """A customer or seller key acts only on its own subject; admin and auditor on any."""
    principal = current_principal()
    if principal.role == role and principal.subject != subject:
        raise Forbidden(f"This key may only act for {role} {principal.subject}.")
    if principal.role not in (role, "admin", "auditor"):
        raise Forbidden(f"A {principal.role} key may not do this.")
