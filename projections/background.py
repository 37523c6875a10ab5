"""Writes sent on a second thread while the replay goes on (a rebuild's or a verification's).

PostgreSQL takes about as long to store a batch's rows as Python takes to compute them; one
connection can only do one at a time, but a thread waiting on PostgreSQL leaves the other
thread free to compute the next rows. :class:`BackgroundWrites` runs a RowWriter's flushes on
one worker thread, in order, through the psycopg connection itself (never the SQLAlchemy
Connection, whose state only the caller's thread touches). Every statement the caller's
thread runs on the connection first waits for the writes queued so far (a
``before_cursor_execute`` hook: every statement SQLAlchemy sends, savepoints included), so it
sees them and fails on their error; so does :meth:`wait`, which the owner calls
before it commits, rolls back or leaves the connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection

PENDING_BYTES = 64 * 1024 * 1024
T = TypeVar("T")


class BackgroundWrites:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-model-writes")
        self._pending: list[tuple[Future[None], int]] = []
        self._worker: int | None = None
        event.listen(conn, "before_cursor_execute", self._before_cursor_execute)

    def submit(self, write: Callable[[], None], size: int) -> None:
        """Queue ``write`` (holding ``size`` bytes until it has run); when the queue holds more
        than PENDING_BYTES, wait for the oldest writes first (memory stays bounded)."""
        self._pending.append((self._pool.submit(self._run, write), size))
        while len(self._pending) > 1 and sum(size for _, size in self._pending) > PENDING_BYTES:
            future, _ = self._pending.pop(0)
            future.result()

    def _run(self, write: Callable[[], None]) -> None:
        self._worker = threading.get_ident()
        write()

    def wait(self) -> None:
        """Block until every queued write is done; raise the first one's error (the others
        after it did not run: a failed statement aborts the PostgreSQL transaction anyway)."""
        pending, self._pending = self._pending, []
        first: BaseException | None = None
        for future, _ in pending:
            error = future.exception()
            if error is not None and first is None:
                first = error
        if first is not None:
            raise first

    def discard(self) -> None:
        """Block until every queued write is done, dropping their errors (the caller is
        rolling them back)."""
        pending, self._pending = self._pending, []
        for future, _ in pending:
            future.exception()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            event.remove(self.conn, "before_cursor_execute", self._before_cursor_execute)
            self._pool.shutdown(wait=True)

    def _before_cursor_execute(self, *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() != self._worker:
            self.wait()


def read_ahead(batches: Iterator[T]) -> Iterator[T]:
    """``batches``, each next one read on a thread while the caller works on the one before (the
    event store's own pooled connection waits on PostgreSQL meanwhile, not the caller)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-read-ahead") as pool:
        upcoming = pool.submit(next, batches, None)
        while (batch := upcoming.result()) is not None:
            upcoming = pool.submit(next, batches, None)
            yield batch


@contextmanager
def background_writes(conn: Connection) -> Iterator[BackgroundWrites | None]:
    """Background writes on PostgreSQL (None elsewhere: SQLite's writes stay inline), waited
    for when the block ends; after an error in the block their own errors are dropped."""
    if conn.dialect.name != "postgresql":
        yield None
        return
    background = BackgroundWrites(conn)
    try:
        yield background
    except BaseException:
        try:
            background.close()
        except Exception:  # noqa: BLE001, S110  the block's error is the one to report
            pass
        raise
    background.close()
