"""The container a job uses: installed by the process that starts the worker, rebuilt after a fork."""

from __future__ import annotations

import threading

from app.bootstrap import Container, build

_container: Container | None = None
_lock = threading.Lock()


def install(container: Container) -> None:
    """Use this container for jobs run in this process (the worker command, tests)."""
    global _container
    _container = container


def get_container() -> Container:
    """The installed container, or one built from the environment (once per process).

    The Container itself rebuilds its pools and clients in a forked work horse.
    """
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = build()
    return _container
