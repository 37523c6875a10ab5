"""Named locks in Redis that expire with their owner.

redis-py's Lock (token-checked release) taken for a short lease and renewed by the process's
heartbeat while the block runs: a lock held across a minute-long provider call stays held,
and a lock whose process died (or whose release never reached Redis) lapses within
``LEASE_SECONDS``. ``max_hold_seconds`` caps the renewals of a block that never ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from redis import Redis
from redis.exceptions import LockError, RedisError

from app.adapters import keys
from app.adapters.heartbeat import LEASE_SECONDS, heartbeat
from domain.errors import ConcurrentChangeError


@contextmanager
def named_lock(
    redis: Redis,
    name: str,
    max_hold_seconds: float = 60,
    wait_seconds: float = 10,
    busy: str | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> Iterator[None]:
    """Hold ``name`` for the block; raise ConcurrentChangeError (``busy`` its message) if it stays
    taken for ``wait_seconds`` (0: refuse at once)."""
    lock = redis.lock(
        name,
        timeout=lease_seconds,
        blocking=wait_seconds > 0,
        blocking_timeout=wait_seconds,
        thread_local=False,  # the heartbeat thread renews it
    )
    if not lock.acquire():
        raise ConcurrentChangeError(busy or f"{name} is busy, retry later")
    until = time.monotonic() + max_hold_seconds
    held = True

    def renew() -> bool:
        if not held or time.monotonic() > until:
            return False
        try:
            lock.reacquire()
        except LockError:  # lost (expired while Redis was away, and taken): nothing left to renew
            return False
        return True

    handle = heartbeat.add(renew)
    try:
        yield
    finally:
        held = False
        heartbeat.remove(handle)
        try:
            lock.release()
        except (LockError, RedisError):
            pass  # not ours any more, or Redis is away: the lease lapses by itself


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
        # Held across the provider's refund call (its timeout with the SDK's retries is ~95 s):
        # renewed while the refund runs, lapsing within LEASE_SECONDS if its process dies.
        lock_name = keys.refund_lock(self.prefix, key)
        return named_lock(self.redis, lock_name, max_hold_seconds=REFUND_LOCK_SECONDS)

    def seller_settlement(
        self, seller_id: str, timeout_seconds: int = 600, wait_seconds: float = 120
    ) -> AbstractContextManager[None]:
        return named_lock(self.redis, keys.settle_lock(self.prefix, seller_id), timeout_seconds, wait_seconds)
