"""Short-lived named locks in Redis (redis-py's Lock: token-checked release, expiry on crash)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError

from domain.errors import ConcurrentChangeError


@contextmanager
def named_lock(
    redis: Redis, name: str, timeout_seconds: int = 60, wait_seconds: float = 10
) -> Iterator[None]:
    """Hold ``name`` for the block; raise ConcurrentChangeError if it stays taken for ``wait_seconds``."""
    lock = redis.lock(name, timeout=timeout_seconds, blocking=True, blocking_timeout=wait_seconds)
    if not lock.acquire():
        raise ConcurrentChangeError(f"{name} is busy, retry later")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            pass
