"""Throwaway PostgreSQL and Redis servers that a test can stop and start again, and tally's processes.

Loopback only, free ports, data under a temporary directory: nothing shared is touched.
PostgreSQL runs as the postgres user when we are root (initdb refuses root); Redis keeps an
append-only file, so a restart keeps its data as a production Redis with persistence does.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Postgres:
    """initdb once; start and stop (fast shutdown: connections are cut) as often as needed."""

    def __init__(self, base: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        found = bins[-1] if bins else shutil.which("pg_ctl")
        if not found:
            raise RuntimeError("no pg_ctl installed")
        self.pg_ctl = Path(found)
        self.base = base
        self.datadir = base / "pgdata"
        self.port = free_port()
        self.user = getpass.getuser()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")
        self._run(str(self.pg_ctl.parent / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", self.user)
        self.start()
        subprocess.run(
            [
                str(self.pg_ctl.parent / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "t",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/t"

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self.as_postgres, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c max_connections=200"
        self._run(
            str(self.pg_ctl),
            "-D",
            str(self.datadir),
            "-w",
            "-l",
            str(self.base / "pg.log"),
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.pg_ctl), "-D", str(self.datadir), "-m", mode, "-w", "stop")


class Redis:
    """redis-server with an append-only file; stopped with SIGTERM (it flushes, then exits)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.base),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None


class Process:
    """One of tally's processes (gunicorn, a worker, the scheduler) in its own process group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.handle = log.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """The pids whose parent is this process (gunicorn's workers)."""
        pids = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(Path(stat).parent.name))
        return pids

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.handle.close()
