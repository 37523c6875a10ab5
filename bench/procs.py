"""Stopping the benchmark's child processes, each started in a process group of its own."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 15.0) -> None:
    """SIGTERM each process's group (a warm shutdown: gunicorn and RQ finish the request or job
    at hand), wait up to ``grace`` seconds for each, SIGKILL the groups that do not stop, and
    SIGKILL every group once more for any child that outlived its parent (a gunicorn worker,
    the scheduler RQ forks)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
        _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
