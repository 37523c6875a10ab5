"""Which errors mean "a dependency is down" (the database or Redis), and logging them once per outage.

A request that meets one of these answers 503 with Retry-After; a worker or the scheduler backs
off and tries again. Data errors (a value the database refuses) are not outages and stay bugs.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import psycopg_pool
import redis.exceptions
import sqlalchemy.exc
from eventsourcing import persistence

log = logging.getLogger("tally.outages")

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # connection refused or lost, statement/lock timeout, sqlite busy
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within pool_timeout
    sqlalchemy.exc.DisconnectionError,
    psycopg.OperationalError,  # includes psycopg_pool.PoolTimeout and QueryCanceled
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    persistence.OperationalError,  # the event store's wrapping of the above
    persistence.InterfaceError,
)
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (a restarted Redis loading its data)
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)
DEPENDENCY_ERRORS = DATABASE_ERRORS + REDIS_ERRORS

# While the same dependency keeps failing, one line per this many seconds.
LOG_EVERY_SECONDS = 60.0
RETRY_AFTER_SECONDS = 2

_last_logged: dict[str, float] = {}
_log_lock = threading.Lock()


def dependency_of(error: BaseException) -> str | None:
    """ "database" or "redis" when ``error`` (or what it wraps) says that dependency is down."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, REDIS_ERRORS):
            return "redis"
        if isinstance(current, DATABASE_ERRORS):
            return "database"
        current = current.__cause__ or current.__context__
    return None


def note_outage(dependency: str, error: BaseException, where: str = "request") -> None:
    """Log the first failure of an outage at WARNING (then once a minute), the rest at DEBUG."""
    now = time.monotonic()
    with _log_lock:
        last = _last_logged.get(dependency)
        loud = last is None or now - last >= LOG_EVERY_SECONDS
        if loud:
            _last_logged[dependency] = now
    message = "%s unavailable (%s): %s: %s"
    args = (dependency, where, type(error).__name__, str(error).strip().splitlines()[0] if str(error) else "")
    if loud:
        log.warning(message, *args)
    else:
        log.debug(message, *args)


def backoff(attempt: int, first: float = 0.5, cap: float = 5.0) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0, 1, 2, ...): doubling, capped."""
    return float(min(cap, first * (2**attempt)))
