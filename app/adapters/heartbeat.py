"""One background thread per process that renews short leases while their owner is alive.

A lease (a Redis lock, an Idempotency-Key claim) is taken for a few seconds and renewed every
``INTERVAL_SECONDS`` by this thread for as long as the code holding it runs. When the process
dies, renewal stops and the lease lapses within seconds, so nothing stays stuck for minutes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("tally.heartbeat")

INTERVAL_SECONDS = 2.0
# A lease lasts this long without renewal: several beats, so one slow beat does not lose it.
LEASE_SECONDS = 10

# A beat renews its lease and says whether to keep beating (False: the lease is gone or done).
Beat = Callable[[], bool]


class Heartbeat:
    """Calls every registered beat each ``interval`` seconds from one daemon thread."""

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._beats: dict[int, Beat] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._pid = -1
        self._wake = threading.Event()

    def add(self, beat: Beat) -> int:
        with self._lock:
            self._next += 1
            self._beats[self._next] = beat
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is not here
                self._pid = os.getpid()
                self._wake = threading.Event()
                threading.Thread(target=self._run, name="tally-heartbeat", daemon=True).start()
            return self._next

    def remove(self, handle: int) -> None:
        with self._lock:
            self._beats.pop(handle, None)

    def _run(self) -> None:
        wake = self._wake
        while not wake.wait(self.interval):
            with self._lock:
                beats = list(self._beats.items())
            for handle, beat in beats:
                try:
                    keep = beat()
                except Exception as exc:  # noqa: BLE001 - a dependency down: try again next beat
                    log.debug("lease renewal failed: %s: %s", type(exc).__name__, exc)
                    keep = True
                if not keep:
                    self.remove(handle)


heartbeat = Heartbeat()
