"""Checkout sessions in Redis: one JSON value per session with a TTL, plus an expiry index.

The index (a sorted set of session id -> expiry time) is what lets an expired session
answer 410 instead of 404 after Redis has dropped it; the hourly clean-up job trims it.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from typing import Any

from redis import Redis

from app.adapters import keys
from app.adapters.locks import named_lock
from domain.checkout import SESSION_COMPLETED
from domain.errors import CheckoutSessionExpiredError, CheckoutSessionNotFoundError

# Expired ids stay known (410) this long before the clean-up forgets them (then 404).
REMEMBER_EXPIRED_SECONDS = 7 * 86_400


class RedisCheckoutSessions:
    """Checkout sessions stored in Redis (or its in-process stand-in)."""

    def __init__(self, redis: Redis, prefix: str = "tally") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, session_id: str) -> str:
        return keys.checkout_session(self.prefix, session_id)

    @property
    def _index(self) -> str:
        return keys.checkout_expiry_index(self.prefix)

    def create(self, session: dict[str, Any], ttl_seconds: int) -> None:
        expires = time.time() + ttl_seconds
        pipe = self.redis.pipeline()
        pipe.set(self._key(session["id"]), json.dumps(session), ex=ttl_seconds)
        pipe.zadd(self._index, {session["id"]: expires})
        pipe.execute()

    def get(self, session_id: str) -> dict[str, Any]:
        raw = self.redis.get(self._key(session_id))
        if raw is None:
            if self.redis.zscore(self._index, session_id) is not None:
                raise CheckoutSessionExpiredError(f"checkout session {session_id} has expired")
            raise CheckoutSessionNotFoundError(f"no checkout session {session_id}")
        session = json.loads(raw)
        if (
            session.get("expires_at_epoch", float("inf")) <= time.time()
            and session.get("status") != SESSION_COMPLETED
        ):
            raise CheckoutSessionExpiredError(f"checkout session {session_id} has expired")
        return session

    def update(self, session_id: str, **changes: Any) -> dict[str, Any]:
        session = self.get(session_id)
        session.update(changes)
        self.save(session)
        return session

    def save(self, session: dict[str, Any]) -> None:
        """Overwrite a session read under its lock, keeping its expiry."""
        self.redis.set(self._key(session["id"]), json.dumps(session), keepttl=True)

    def lock(self, session_id: str, timeout_seconds: int = 120) -> AbstractContextManager[None]:
        return named_lock(
            self.redis,
            keys.checkout_lock(self.prefix, session_id),
            timeout_seconds,
            wait_seconds=0,
            busy="this checkout session is being confirmed by another request",
        )

    def forget_expired(self, now: float | None = None) -> int:
        """Drop index entries (and stray locks) of sessions expired long ago; return how many."""
        now = time.time() if now is None else now
        cutoff = now - REMEMBER_EXPIRED_SECONDS
        stale = self.redis.zrangebyscore(self._index, "-inf", cutoff)
        if not stale:
            return 0
        pipe = self.redis.pipeline()
        for raw in stale:
            session_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            pipe.delete(keys.checkout_lock(self.prefix, session_id))
        pipe.zremrangebyscore(self._index, "-inf", cutoff)
        pipe.execute()
        return len(stale)
