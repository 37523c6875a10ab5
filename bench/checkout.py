"""`make bench`: tally's checkout throughput against this machine's ceiling for a durable web write.

One run, on PostgreSQL + Redis, both servers under the same gunicorn settings and driven by
the same load generator (bench.loadgen: lean asyncio client processes, keep-alive sockets):

(a) the baseline: a bare Flask endpoint doing one INSERT + COMMIT (bench.bare_app), in its own
    throwaway schema. Measured before and after tally; the mean is the ceiling.
(b) tally: complete checkouts (POST /api/checkout/sessions with two sellers, then POST
    /api/checkout/sessions/{id}/confirm with pm_card_visa; Idempotency-Key headers and a
    customer Bearer key), with p50/p99 latency of a full checkout.
(c) the ratio (b)/(a) against BENCH_TARGET, and the ratio of the run with workers (below) against
    BENCH_WORKERS_TARGET: both are judged, each line says PASS or FAIL, and the command exits 1
    when either misses (or the run with workers, when asked for, produced no rate).
(lag) read-model lag (BENCH_LAG=1, the default): before (b), the same load runs once more with
    BENCH_LAG_WORKERS `flask --app wsgi worker` processes (same environment) keeping the read
    models up, while a thread samples every BENCH_LAG_INTERVAL s each projection's lag
    (bench.lag: seconds from the first event it has not applied to now, 0 when caught up, as
    `projections status` reports it); p50/p99 over the measured window's samples against
    BENCH_LAG_TARGET, and the checkout rate with workers next to the rate without.

Settings (environment):
  BENCH_SECONDS=20        measured seconds per run        BENCH_WARMUP=3      warm-up seconds per run
  BENCH_CONCURRENCY=16    client connections              BENCH_CLIENT_PROCS=2  client processes
  BENCH_WORKERS=2         gunicorn workers (both servers) BENCH_THREADS=4     threads per worker (gthread)
  BENCH_BARE_RUNS=2       baseline runs (1: before tally; 2: before and after)
  BENCH_ONLY=             "bare" or "tally" to run one side only (e.g. while profiling)
  BENCH_DATABASE_URL=postgresql://root@127.0.0.1:5432/test   BENCH_REDIS_URL=redis://127.0.0.1:6379/0
  BENCH_TARGET=0.20       the ratio without workers       BENCH_WORKERS_TARGET=0.12  with the workers beside
  BENCH_TALLY_APP=wsgi:app  the WSGI app gunicorn serves as tally (experiments; PYTHONPATH is passed on)
  BENCH_LAG=1             0 skips the run with workers (lag)   BENCH_LAG_WORKERS=2
  BENCH_LAG_INTERVAL=0.1  seconds between lag samples         BENCH_LAG_TARGET=1.0  seconds, for p99
  BENCH_WORKER_CPU_TARGET=5.3  ms of worker CPU per checkout placed in the window (half of 10.7 ms)

Tally runs in a fresh schema bench_<random> with Redis key prefix bench-<random>; the baseline in
bench_bare_<random>. Schemas, Redis keys and every process started here are removed at the end,
also on failure and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LoadGenerator, LoadResult, percentile
from bench.procs import stop_groups

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class Config:
    seconds: float = field(default_factory=lambda: _env_float("BENCH_SECONDS", 20))
    warmup: float = field(default_factory=lambda: _env_float("BENCH_WARMUP", 3))
    concurrency: int = field(default_factory=lambda: _env_int("BENCH_CONCURRENCY", 16))
    client_procs: int = field(default_factory=lambda: _env_int("BENCH_CLIENT_PROCS", 2))
    workers: int = field(default_factory=lambda: _env_int("BENCH_WORKERS", 2))
    threads: int = field(default_factory=lambda: _env_int("BENCH_THREADS", 4))
    bare_runs: int = field(default_factory=lambda: max(1, _env_int("BENCH_BARE_RUNS", 2)))
    only: str = field(default_factory=lambda: os.environ.get("BENCH_ONLY", "").strip().lower())
    database_url: str = field(
        default_factory=lambda: (
            os.environ.get("BENCH_DATABASE_URL") or "postgresql://root@127.0.0.1:5432/test"
        )
    )
    redis_url: str = field(
        default_factory=lambda: os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    # issue 17: checkouts at >= 0.20 of the bare ceiling, and >= 0.12 with two workers beside the web
    target: float = field(default_factory=lambda: _env_float("BENCH_TARGET", 0.20))
    workers_target: float = field(default_factory=lambda: _env_float("BENCH_WORKERS_TARGET", 0.12))
    tally_app: str = field(default_factory=lambda: os.environ.get("BENCH_TALLY_APP") or "wsgi:app")
    lag: bool = field(
        default_factory=lambda: os.environ.get("BENCH_LAG", "1").strip() not in ("0", "no", "false")
    )
    lag_workers: int = field(default_factory=lambda: _env_int("BENCH_LAG_WORKERS", 2))
    lag_interval: float = field(default_factory=lambda: _env_float("BENCH_LAG_INTERVAL", 0.1))
    lag_target: float = field(default_factory=lambda: _env_float("BENCH_LAG_TARGET", 1.0))
    worker_cpu_target_ms: float = field(default_factory=lambda: _env_float("BENCH_WORKER_CPU_TARGET", 5.3))
    inventory: bool = False  # stock recorded for every SKU before the load (bench.inventory sets it)

    def gunicorn_args(self) -> list[str]:
        return ["--workers", str(self.workers), "--threads", str(self.threads), "--worker-class", "gthread"]


def say(message: str = "") -> None:
    print(message, flush=True)


# ---- cleanup --------------------------------------------------------------------------------


class Cleanup:
    """Undo actions, run last-in first-out exactly once, each protected from the others' failures."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def run(self) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        try:
            while self._actions:
                what, action = self._actions.pop()
                try:
                    action()
                except Exception as exc:
                    say(f"  cleanup: {what} failed: {type(exc).__name__}: {exc}")
        finally:
            signal.signal(signal.SIGINT, previous)


def _sqlalchemy_url(url: str) -> str:
    from app.config import DatabaseConfig

    return DatabaseConfig.parse(url).sqlalchemy_url()


def drop_schema(database_url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    from projections.shadow import shadow_schema

    engine = create_engine(_sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("SET lock_timeout = '30s'"))
            for name in (schema, shadow_schema(schema)):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()
    say(f"  dropped schema {schema}")


def delete_redis_keys(redis_url: str, prefix: str) -> None:
    """Delete ``prefix:*`` and the RQ queues, registries and jobs named after the prefix.

    tally names its RQ queues ``<prefix>-<name>`` for a non-default prefix, so their keys
    (``rq:queue:<prefix>-projections``, ``rq:finished:<prefix>-…``) contain the prefix; the
    jobs they list (``rq:job:<id>``) do not, so they are found through those lists.
    """
    from redis import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = set(client.scan_iter(match=f"{prefix}:*", count=1000))
        rq_keys = set(client.scan_iter(match=f"rq:*{prefix}*", count=1000))
        job_ids: set[bytes] = set()
        for key in rq_keys:
            kind = client.type(key)
            if kind == b"list":
                job_ids.update(client.lrange(key, 0, -1))
            elif kind == b"zset":
                job_ids.update(client.zrange(key, 0, -1))
        keys |= rq_keys
        for job_id in job_ids:
            job = job_id.decode(errors="replace")
            keys.update(
                k.encode()
                for k in (
                    f"rq:job:{job}",
                    f"rq:job:{job}:dependents",
                    f"rq:job:{job}:dependencies",
                    f"rq:results:{job}",
                )
            )
        deleted = 0
        batch = list(keys)
        for i in range(0, len(batch), 1000):
            deleted += client.delete(*batch[i : i + 1000])
        queues = [m for m in client.smembers("rq:queues") if prefix.encode() in m]
        if queues:
            client.srem("rq:queues", *queues)
    finally:
        client.close()
    say(
        f"  deleted {deleted} Redis keys ({prefix}:*, {len(rq_keys)} RQ queue/registry keys, "
        f"{len(job_ids)} RQ jobs)"
    )


# ---- CPU accounting (from /proc) ----------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (comm, ppid, user+system CPU seconds) for every readable process."""
    out: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        head, _, rest = data.rpartition(b")")
        comm = head.partition(b"(")[2].decode(errors="replace")
        fields = rest.split()
        out[int(entry)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    total = sum(values[:8])  # guest time is already inside user/nice
    idle = values[3] + values[4]
    return (total - idle) / _TICK, total / _TICK


class CpuSampler:
    """CPU used in the measurement window by the server's process tree, PostgreSQL, Redis, the machine."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.marks: dict[str, tuple[float, dict[int, tuple[str, int, float]], tuple[float, float]]] = {}

    def __call__(self, phase: str) -> None:
        self.marks[phase] = (time.monotonic(), _processes(), _machine_cpu())

    def _tree(self, procs: dict[int, tuple[str, int, float]]) -> set[int]:
        tree = {self.server_pid}
        changed = True
        while changed:
            changed = False
            for pid, (_, ppid, _) in procs.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    changed = True
        return tree

    def summary(self) -> dict[str, float] | None:
        if "start" not in self.marks or "end" not in self.marks:
            return None
        t0, p0, (busy0, total0) = self.marks["start"]
        t1, p1, (busy1, total1) = self.marks["end"]
        wall = t1 - t0
        tree = self._tree(p1)

        def used(select: Callable[[int, str], bool]) -> float:
            seconds = 0.0
            for pid, (comm, _, cpu) in p1.items():
                if select(pid, comm):
                    before = p0.get(pid)
                    seconds += cpu - (before[2] if before and before[0] == comm else 0.0)
            return seconds / wall

        return {
            "wall": wall,
            "machine": (busy1 - busy0) / wall,
            "cores": (total1 - total0) / wall,
            "server": used(lambda pid, comm: pid in tree),
            "postgres": used(lambda pid, comm: comm.startswith("postgres")),
            "redis": used(lambda pid, comm: comm.startswith("redis-server")),
        }


# ---- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Gunicorn:
    """One gunicorn, in its own process group, stopped (TERM, then KILL) by that group's id."""

    def __init__(self, name: str, target: str, config: Config, env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = logdir / f"{name}.log"
        self.cmd = [
            str(BIN / "gunicorn"),
            *config.gunicorn_args(),
            "--bind",
            f"{HOST}:{self.port}",
            "--error-logfile",
            str(self.log),
            "--log-level",
            "warning",
            target,
        ]
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> str:
        return "gunicorn " + " ".join(shlex.quote(part) for part in self.cmd[1:])

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: gunicorn exited ({self.proc.returncode if self.proc else '?'})"
                    f"\n{self.log_tail()}"
                )
            try:
                status, body = request(self.port, "GET", "/api/readyz")
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name}: /api/readyz not ready after {timeout:.0f} s ({last})\n{self.log_tail()}"
        )

    def workers(self) -> list[int]:
        if self.proc is None:
            return []
        return sorted(pid for pid, (_, ppid, _) in _processes().items() if ppid == self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_groups([proc])
        say(f"  stopped {self.name} gunicorn (pid {proc.pid})")


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---- the two sides ------------------------------------------------------------------------------


@dataclass
class SideResult:
    label: str
    load: LoadResult
    cpu: dict[str, float] | None
    notes: list[str] = field(default_factory=list)
    lag: Any = None  # bench.lag.LagResult of a run with workers


def run_load(
    server: Gunicorn,
    kind: str,
    params: dict[str, Any],
    config: Config,
    label: str,
    on_window: Callable[[str], None] | None = None,
) -> SideResult:
    cpu_sampler = CpuSampler(server.proc.pid)

    def sampler(phase: str) -> None:
        cpu_sampler(phase)
        if on_window is not None:
            on_window(phase)

    generator = LoadGenerator(config.concurrency, config.client_procs)
    say(
        f"  load: {config.concurrency} connections in {generator.processes} client processes, "
        f"{config.warmup:g} s warm-up + {config.seconds:g} s measured ..."
    )
    try:
        load = generator.run(
            kind, params, HOST, server.port, config.warmup, config.seconds, on_window=sampler
        )
    finally:
        generator.stop()
    result = SideResult(label, load, cpu_sampler.summary())
    say(
        f"  -> {load.ok} ok in {load.duration_s:g} s = {load.rate:,.1f}/s, "
        f"p50 {ms(percentile(load.latencies, 50))} ms, p99 {ms(percentile(load.latencies, 99))} ms, "
        f"errors {load.error_count}, warm-up {load.warmup_ok} ok / {load.warmup_errors} errors"
    )
    for kind_, count in load.errors.most_common():
        say(f"     error {kind_}: {count}  e.g. {load.error_samples.get(kind_, '')[:200]}")
    for fatal in load.fatal:
        say(f"     client process failed: {fatal}")
    return result


def run_bare(config: Config, logdir: Path, cleanup: Cleanup, index: int) -> SideResult:
    from sqlalchemy import create_engine, text

    schema = f"bench_bare_{uuid.uuid4().hex[:10]}"
    say(f"\n(a) baseline run {index}: bare Flask INSERT + COMMIT, schema {schema}")
    cleanup.push(f"drop schema {schema}", lambda: drop_schema(config.database_url, schema))
    engine = create_engine(_sqlalchemy_url(config.database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(
                text(
                    f'CREATE TABLE "{schema}".writes (id bigserial PRIMARY KEY, request_key text NOT NULL, '
                    "payload text NOT NULL, created_at timestamptz NOT NULL)"
                )
            )
    finally:
        engine.dispose()
    env = {**os.environ, "BARE_DATABASE_URL": _sqlalchemy_url(config.database_url), "BARE_SCHEMA": schema}
    server = Gunicorn(f"bare{index}", "bench.bare_app:app", config, env, logdir)
    cleanup.push(f"stop {server.name}", server.stop)
    server.start()
    server.wait_ready()
    say(f"  {server.command}  (workers {server.workers()})")
    status, body = request(server.port, "POST", "/api/write", {"amount": 1}, {"Idempotency-Key": "smoke"})
    if status != 201:
        raise RuntimeError(f"baseline smoke test: {status} {body[:300]!r}")
    result = run_load(server, "bare", {}, config, f"(a) bare INSERT+COMMIT #{index}")
    server.stop()
    engine = create_engine(_sqlalchemy_url(config.database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f'SELECT count(*) FROM "{schema}".writes')).scalar_one()
    finally:
        engine.dispose()
    result.notes.append(f"rows written {rows} (smoke + warm-up + measured + in flight at the end)")
    say(f"  rows in {schema}.writes: {rows}")
    return result


CUSTOMER = "bench-customer"
SELLERS = [f"bench-seller-{i}" for i in range(20)]


def _check_checkout(port: int, key: str) -> None:
    """One checkout by hand, checking the contract's shapes, before loading the server."""
    auth = {"Authorization": f"Bearer {key}"}
    body = {
        "customer_id": CUSTOMER,
        "currency": "USD",
        "items": [
            {"seller_id": SELLERS[0], "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2},
            {
                "seller_id": SELLERS[1],
                "sku": "tee",
                "description": "T-shirt",
                "unit_amount": 1999,
                "quantity": 1,
            },
        ],
        "delivery_address": {
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
    }
    status, raw = request(
        port, "POST", "/api/checkout/sessions", body, {**auth, "Idempotency-Key": "smoke-s"}
    )
    if status != 201:
        raise RuntimeError(f"tally smoke test: create session answered {status}: {raw[:500]!r}")
    session = json.loads(raw)
    if session.get("total_amount") != 4499 or len(session.get("sellers", [])) != 2:
        raise RuntimeError(f"tally smoke test: unexpected session {session}")
    status, raw = request(
        port,
        "POST",
        f"/api/checkout/sessions/{session['id']}/confirm",
        {"payment_method": "pm_card_visa"},
        {**auth, "Idempotency-Key": "smoke-c"},
    )
    if status != 201:
        raise RuntimeError(f"tally smoke test: confirm answered {status}: {raw[:500]!r}")
    confirmed = json.loads(raw)
    if confirmed["payment"]["status"] != "succeeded" or confirmed["order"]["status"] != "paid":
        raise RuntimeError(f"tally smoke test: unexpected confirmation {confirmed}")


def run_tally(config: Config, logdir: Path, cleanup: Cleanup) -> tuple[SideResult, SideResult | None]:
    from app.auth import create_key
    from app.bootstrap import Container
    from app.config import Settings

    token = uuid.uuid4().hex[:10]
    schema, prefix = f"bench_{token}", f"bench-{token}"
    say(f"\n(b) tally: schema {schema}, Redis prefix {prefix}")
    env = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": config.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "PAYMENT_PROVIDER": "mock",
    }
    cleanup.push(f"drop schema {schema}", lambda: drop_schema(config.database_url, schema))
    cleanup.push(f"delete Redis keys {prefix}:*", lambda: delete_redis_keys(config.redis_url, prefix))
    # Tables (as `flask db init` does) and the customer's key, before gunicorn starts.
    container = Container(Settings.from_env(env))
    try:
        container.engine  # noqa: B018 (built here, outside the timing)
        container.marketplace  # noqa: B018
        _, key = create_key(container.engine, "customer", CUSTOMER)
        if config.inventory:  # stock tracked on every SKU the load buys (bench.inventory)
            cause = {"actor_id": "bench", "actor_role": "admin", "request_id": "bench", "reason": None}
            for seller_id in SELLERS:
                for sku in ("mug", "tee"):
                    container.marketplace.set_stock(seller_id, sku, 100_000_000, cause)
    finally:
        container.close()
    server = Gunicorn("tally", config.tally_app, config, env, logdir)
    cleanup.push("stop tally", server.stop)
    server.start()
    server.wait_ready()
    say(f"  {server.command}  (workers {server.workers()})")
    _check_checkout(server.port, key)
    params = {"api_key": key, "customer_id": CUSTOMER, "sellers": SELLERS}
    with_workers = run_with_workers(server, params, config, env, logdir, cleanup) if config.lag else None
    if with_workers is not None:
        say("\n(b) tally without workers (read models left behind), same server and schema")
    result = run_load(server, "checkout", params, config, "(b) tally full checkout")
    server.stop()
    log_lines = [line for line in server.log.read_text(errors="replace").splitlines() if line.strip()]
    if log_lines:
        say(f"  tally's gunicorn log has {len(log_lines)} lines; last ones:")
        for line in log_lines[-5:]:
            say(f"    {line[:240]}")
    from sqlalchemy import create_engine, text

    engine = create_engine(_sqlalchemy_url(config.database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f'SELECT topic, count(*) FROM "{schema}".marketplace_events GROUP BY topic ORDER BY topic'
                )
            ).all()
    except Exception as exc:
        rows = []
        say(f"  (could not count events: {type(exc).__name__})")
    finally:
        engine.dispose()
    if rows:
        counts = ", ".join(f"{topic.rsplit(':', 1)[-1]} {n}" for topic, n in rows)
        say(f"  events stored: {counts}")
        result.notes.append(f"events stored: {counts}")
    return result, with_workers


def run_with_workers(
    server: Gunicorn,
    params: dict[str, Any],
    config: Config,
    env: dict[str, str],
    logdir: Path,
    cleanup: Cleanup,
) -> SideResult | None:
    """The checkout load with workers keeping the read models up, sampling their lag (None if it failed)."""
    from bench.lag import LagSampler, Workers, forget_workers, tree_cpu

    n = config.lag_workers
    say(
        f"\n(b+lag) tally with {n} workers ({n} x `flask --app wsgi worker`), read-model lag sampled every "
        f"{config.lag_interval:g} s"
    )
    workers = Workers(n, env, logdir, BIN)
    sampler: LagSampler | None = None
    prefix = env["REDIS_KEY_PREFIX"]
    cleanup.push("stop workers", workers.stop)
    try:
        sampler = LagSampler(env, config.lag_interval)
        cleanup.push("close lag sampler", sampler.close)
        workers.start()
        waited = sampler.wait_caught_up(60, alive=workers.check_alive)
        say(
            f"  workers up (pids {', '.join(map(str, workers.pids()))}); the smoke checkout was projected "
            f"{waited:.1f} s after they started"
        )
        marks: dict[str, tuple[float, float]] = {}

        def on_window(phase: str) -> None:
            marks[phase] = (time.monotonic(), tree_cpu(workers.pids()))
            if phase == "start":
                sampler.start()
            else:
                sampler.stop()

        result = run_load(server, "checkout", params, config, f"(b) tally + {n} workers", on_window=on_window)
        lag = sampler.result
        if "start" in marks and "end" in marks:
            lag.workers_cpu_seconds = marks["end"][1] - marks["start"][1]
            lag.workers_cpu = lag.workers_cpu_seconds / (marks["end"][0] - marks["start"][0])
            lag.checkouts = result.load.ok
        try:
            lag.drain_seconds = sampler.wait_caught_up(120, alive=workers.check_alive)
        except RuntimeError as exc:
            say(f"  {exc}")
        lag.worker_errors = workers.error_lines()
        result.lag = lag
        p50, p99, worst = lag.stats(lag.worst())
        say(
            f"  lag over {len(lag.samples)} samples (worst projection per sample): p50 {p50:.3f} s, "
            f"p99 {p99:.3f} s, max {worst:.3f} s; caught up "
            f"{lag.drain_seconds if lag.drain_seconds is not None else float('nan'):.1f} s "
            f"after the load stopped; workers used {lag.workers_cpu:.2f} cores, "
            f"{lag.cpu_per_checkout_ms():.2f} ms of CPU per checkout"
        )
        for line in lag.worker_errors[:5]:
            say(f"  worker log: {line[:240]}")
        return result
    except Exception as exc:
        say(f"  run with workers failed: {type(exc).__name__}: {exc}")
        return None
    finally:
        if sampler is not None:
            sampler.close()
        workers.stop()
        removed = forget_workers(config.redis_url, prefix)
        if removed:
            say(f"  deleted {removed} RQ worker records of our queues")


# ---- report ---------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.1f}"


def _other(result: SideResult) -> float:
    cpu, load = result.cpu, result.load
    if not cpu:
        return 0.0
    workers = result.lag.workers_cpu if result.lag is not None else 0.0
    return max(
        0.0,
        cpu["machine"]
        - cpu["server"]
        - cpu["postgres"]
        - cpu["redis"]
        - load.client_cpu_s / load.duration_s
        - workers,
    )


def background_load(seconds: float = 1.0) -> float:
    """Cores busy on this machine right now (before anything of ours runs)."""
    busy0, _ = _machine_cpu()
    t0 = time.monotonic()
    time.sleep(seconds)
    busy1, _ = _machine_cpu()
    return (busy1 - busy0) / (time.monotonic() - t0)


def _cpu_line(result: SideResult) -> str:
    cpu, load = result.cpu, result.load
    client = load.client_cpu_s / load.duration_s
    if not cpu:
        return f"client {client:.2f}"
    other = _other(result)
    workers = f"workers {result.lag.workers_cpu:.2f}, " if result.lag is not None else ""
    return (
        f"machine {cpu['machine']:.2f} of {cpu['cores']:.0f} cores busy: gunicorn {cpu['server']:.2f}, "
        f"postgres {cpu['postgres']:.2f}, redis {cpu['redis']:.2f}, load client {client:.2f}, "
        f"{workers}other {max(other, 0.0):.2f}"
    )


@dataclass
class Judgement:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def judge(
    config: Config, bare_rate: float | None, tally: SideResult | None, tally_workers: SideResult | None
) -> Judgement:
    """Both checkout ratios against their targets: without workers, and with the lag workers
    running beside the web on the same machine (the realistic one on one box)."""
    out = Judgement()
    if not bare_rate or config.only:
        out.lines.append("(c) ratios not judged: BENCH_ONLY ran one side only")
        return out
    candidates = [("(c) ratio (b)/(a)", tally, config.target)]
    if config.lag:
        candidates.append(
            (f"    with {config.lag_workers} workers beside", tally_workers, config.workers_target)
        )
    else:
        out.lines.append("    with workers beside: not run (BENCH_LAG=0), not judged")
    for label, result, target in candidates:
        if result is None or not result.load.rate:
            out.lines.append(f"{label}: no rate measured   target {target:.2f}: FAIL")
            out.failures.append(label.strip())
            continue
        ratio = result.load.rate / bare_rate
        passed = ratio >= target
        out.lines.append(
            f"{label} = {result.load.rate:,.1f} / {bare_rate:,.1f} = {ratio:.3f}   target >= {target:.2f}: "
            f"{'PASS' if passed else 'FAIL'} ({ratio / target:.0%} of it; a checkout costs "
            f"{bare_rate / result.load.rate:.1f} bare durable writes, target at most {1 / target:.1f})"
        )
        if not passed:
            out.failures.append(f"{label.strip()} {ratio:.3f} < {target:.2f}")
    if tally and tally_workers and tally.load.rate:
        out.lines.append(
            f"    the rate with workers is {tally_workers.load.rate / tally.load.rate:.0%} "
            "of the rate without"
        )
    return out


def report(
    config: Config, bare: list[SideResult], tally: SideResult | None, tally_workers: SideResult | None = None
) -> Judgement:
    say("\n" + "=" * 100)
    say(
        f"SUMMARY  gunicorn {' '.join(config.gunicorn_args())} (same for both), "
        f"{config.concurrency} keep-alive connections from {min(config.client_procs, config.concurrency)} "
        f"asyncio client processes, closed loop, {config.warmup:g} s warm-up + {config.seconds:g} s "
        "measured per run"
    )
    if config.tally_app != "wsgi:app":
        say(f"tally served as {config.tally_app} (BENCH_TALLY_APP), not wsgi:app")
    say("-" * 100)
    say(f"{'':34}{'rate/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ok':>8}{'errors':>8}   step p50/p99 ms")
    rows = bare + ([tally] if tally else []) + ([tally_workers] if tally_workers else [])
    for r in rows:
        steps = "  ".join(
            f"{s} {ms(percentile(v, 50))}/{ms(percentile(v, 99))}" for s, v in r.load.step_latencies.items()
        )
        say(
            f"{r.label:34}{r.load.rate:>10,.1f}{ms(percentile(r.load.latencies, 50)):>9}"
            f"{ms(percentile(r.load.latencies, 99)):>9}{r.load.ok:>8}{r.load.error_count:>8}   {steps}"
        )
    bare_rate = sum(r.load.rate for r in bare) / len(bare) if bare else None
    if bare:
        spread = ""
        if len(bare) > 1:
            lo, hi = min(r.load.rate for r in bare), max(r.load.rate for r in bare)
            runs = " / ".join(f"{r.load.rate:,.0f}" for r in bare)
            spread = f"  (runs {runs}; spread {(hi - lo) / bare_rate:.0%})"
        say(f"{'(a) ceiling = mean of bare runs':34}{bare_rate:>10,.1f}{spread}")
    say("-" * 100)
    say("CPU during the measured window (cores):")
    for r in rows:
        say(f"  {r.label:32}{_cpu_line(r)}")
    noisy = [r for r in rows if r.cpu and _other(r) > 0.25]
    if noisy:
        say(
            f"  NOTE: other processes (not gunicorn/postgres/redis/client) used up to "
            f"{max(_other(r) for r in noisy):.2f} cores during a window: the machine is shared, "
            "rates are depressed."
        )
    say("  (postgres counts every backend on the server, including other users' connections)")
    say("-" * 100)
    judged = judge(config, bare_rate, tally, tally_workers)
    for line in judged.lines:
        say(line)
    if config.lag and (config.only in ("", "tally")):
        failure = report_lag(config, tally_workers)
        if failure:
            judged.failures.append(failure)
    if judged.failures:
        say("FAIL: " + "; ".join(judged.failures))
    say("=" * 100)
    return judged


def report_lag(config: Config, result: SideResult | None) -> str | None:
    """The lag and worker-CPU lines; returns the worker-CPU failure, if any."""
    from bench.lag import judge_worker_cpu

    say("-" * 100)
    if result is None or result.lag is None:
        say("(lag) read-model lag: NOT MEASURED (the run with workers failed; see above)")
        return "worker CPU per checkout not measured"
    lag = result.lag
    p50, p99, worst = lag.stats(lag.worst())
    verdict = "MEETS" if p99 < config.lag_target else "BELOW"
    say(
        f"(lag) read-model lag with {config.lag_workers} workers during the measured window "
        f"({len(lag.samples)} samples every {config.lag_interval:g} s; {result.load.rate:,.1f} checkouts/s):"
    )
    say(
        f"    worst projection per sample: p50 {p50:.3f} s, p99 {p99:.3f} s, max {worst:.3f} s   "
        f"target p99 < {config.lag_target:g} s: {verdict} target"
    )
    for name, (q50, q99, qmax) in lag.per_projection().items():
        backlog = [b[name] for b in lag.backlog]
        say(
            f"    {name:<14} p50 {q50:6.3f} s  p99 {q99:6.3f} s  max {qmax:6.3f} s   "
            f"backlog p99 {percentile(backlog, 99):,.0f} notification ids"
        )
    sample_ms = percentile(lag.sample_seconds, 50) * 1000 if lag.sample_seconds else float("nan")
    drain = f"{lag.drain_seconds:.1f} s" if lag.drain_seconds is not None else "not within 120 s"
    say(
        f"    workers used {lag.workers_cpu:.2f} cores; caught up {drain} after the load stopped; "
        f"a sample took {sample_ms:.1f} ms (p50); sampling errors {lag.errors}; "
        f"worker log error lines {len(lag.worker_errors)}"
    )
    line, failure = judge_worker_cpu(lag, config.worker_cpu_target_ms)
    say(line)
    return failure


# ---- main -------------------------------------------------------------------------------------------


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    config = Config()
    if config.only not in ("", "bare", "tally"):
        say(f"BENCH_ONLY must be bare or tally, got {config.only!r}")
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    cleanup = Cleanup()
    logdir = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    say(
        f"tally checkout benchmark: PostgreSQL {config.database_url}, Redis {config.redis_url}, "
        f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}"
    )
    bare: list[SideResult] = []
    tally: SideResult | None = None
    tally_workers: SideResult | None = None
    failed = False
    try:
        _print_db_settings(config)
        say(f"background load before starting: {background_load():.2f} cores busy")
        if config.only in ("", "bare"):
            bare.append(run_bare(config, logdir, cleanup, 1))
        if config.only in ("", "tally"):
            tally, tally_workers = run_tally(config, logdir, cleanup)
        if config.only == "" and config.bare_runs > 1:
            for i in range(2, config.bare_runs + 1):
                bare.append(run_bare(config, logdir, cleanup, i))
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        failed = True
    except Exception as exc:
        say(f"\nbenchmark failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        say("\ncleanup:")
        cleanup.run()
        for log in logdir.glob("*.log"):
            log.unlink(missing_ok=True)
        try:
            logdir.rmdir()
        except OSError:
            pass
    if failed:
        return 1
    judged = report(config, bare, tally, tally_workers)
    if tally and (tally.load.ok == 0 or tally.load.fatal):
        return 1
    return 1 if judged.failures else 0


def _print_db_settings(config: Config) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(_sqlalchemy_url(config.database_url))
    try:
        with engine.connect() as conn:
            values = {
                name: conn.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("server_version", "synchronous_commit", "fsync", "commit_delay")
            }
    finally:
        engine.dispose()
    say("PostgreSQL " + ", ".join(f"{k}={v}" for k, v in values.items()))


if __name__ == "__main__":
    sys.exit(main())
