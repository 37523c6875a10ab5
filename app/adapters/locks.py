"""Short-lived named locks in Redis (redis-py's Lock: token-checked release, expiry on crash)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from redis import Redis
from redis.exceptions import LockError

from app.adapters import keys
from domain.errors import ConcurrentChangeError


@contextmanager
def named_lock(
    redis: Redis, name: str, timeout_seconds: int = 60, wait_seconds: float = 10, busy: str | None = None
) -> Iterator[None]:
    """Hold ``name`` for the block; raise ConcurrentChangeError (``busy`` its message) if it stays
    taken for ``wait_seconds`` (0: refuse at once)."""
    lock = redis.lock(name, timeout=timeout_seconds, blocking=wait_seconds > 0, blocking_timeout=wait_seconds)
    if not lock.acquire():
        raise ConcurrentChangeError(busy or f"{name} is busy, retry later")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            pass


REFUND_LOCK_SECONDS = 300


class RedisLocks:
    """The Locks port on Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def order_refunds(self, order_id: str) -> AbstractContextManager[None]:
        try:
            key = str(uuid.UUID(order_id))  # one spelling of the id, one lock
        except ValueError:
            key = order_id
        # Held across the provider's refund call: its timeout with the SDK's retries is ~95 s.
        return named_lock(self.redis, keys.refund_lock(self.prefix, key), timeout_seconds=REFUND_LOCK_SECONDS)

    def seller_settlement(
        self, seller_id: str, timeout_seconds: int = 600, wait_seconds: float = 120
    ) -> AbstractContextManager[None]:
        return named_lock(self.redis, keys.settle_lock(self.prefix, seller_id), timeout_seconds, wait_seconds)
