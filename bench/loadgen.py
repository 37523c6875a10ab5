"""A lean closed-loop HTTP/1.1 load generator (stdlib only).

Each client process runs one asyncio loop with a share of the connections; every
connection is a keep-alive socket that sends one operation after the other (closed
loop: a new operation starts when the previous one finished). Requests are written
as raw bytes and responses parsed minimally (status line, Content-Length or chunked),
which costs far less CPU than http.client or requests: on a 2-core machine the client
must not take the CPU the server needs. Its own CPU use is measured and reported.

All processes share one schedule in CLOCK_MONOTONIC time (system-wide on Linux):
warm-up from ``t_start`` to ``t_measure``, measurement until ``t_end``. An operation
counts when it *completes* inside the measurement window; operations still in flight
at ``t_end`` are cancelled and not counted.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# ---- a minimal keep-alive HTTP/1.1 connection ----------------------------------------------


class HTTPError(Exception):
    """The connection broke or the response could not be parsed."""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: S110  closing a connection the server may have dropped already
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """One request on the kept-alive socket; ``headers`` are ready ``Name: value\\r\\n`` lines."""
        if self.writer is None:
            await self._connect()
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            method.encode(),
            path.encode(),
            self.host_header,
            len(body),
            headers,
        )
        try:
            self.writer.write(head + body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = None
            chunked = close = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            if chunked:
                parts = []
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await self.reader.readuntil(b"\r\n")
                        break
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                payload = b"".join(parts)
            elif length is not None:
                payload = await self.reader.readexactly(length)
            else:
                payload = await self.reader.read()
                close = True
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            IndexError,
        ) as exc:
            self.close()
            raise HTTPError(type(exc).__name__) from None
        if close:
            self.close()
        return status, payload


# ---- scenarios -----------------------------------------------------------------------------


class OperationFailed(Exception):
    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind, self.detail = kind, detail


JSON = b"Content-Type: application/json\r\n"


def _idem(prefix: str, n: int, step: str) -> bytes:
    return b"Idempotency-Key: %s-%d-%s\r\n" % (prefix.encode(), n, step.encode())


class BareWrite:
    """One POST /api/write: the baseline's INSERT + COMMIT."""

    name = "bare INSERT+COMMIT"
    steps = ("write",)

    def __init__(self, params: dict[str, Any]) -> None:
        self.body = json.dumps({"amount": 2500, "currency": "USD", "note": "bench"}).encode()

    async def run(self, conn: Connection, prefix: str, n: int, step_times: dict[str, list[float]]) -> None:
        t0 = time.monotonic()
        status, payload = await conn.request("POST", "/api/write", JSON + _idem(prefix, n, "w"), self.body)
        step_times["write"].append(time.monotonic() - t0)
        if status != 201:
            raise OperationFailed(f"write {status}", payload[:300].decode(errors="replace"))


class Checkout:
    """A complete checkout: create a session with two sellers, then confirm it with pm_card_visa."""

    name = "tally full checkout"
    steps = ("create", "confirm")

    def __init__(self, params: dict[str, Any]) -> None:
        self.auth = b"Authorization: Bearer %s\r\n" % params["api_key"].encode()
        customer = params["customer_id"]
        sellers = params["sellers"]
        self.bodies = []
        for i in range(len(sellers)):
            s1, s2 = sellers[i], sellers[(i + 1) % len(sellers)]
            self.bodies.append(
                json.dumps(
                    {
                        "customer_id": customer,
                        "currency": "USD",
                        "items": [
                            {
                                "seller_id": s1,
                                "sku": "mug",
                                "description": "Mug",
                                "unit_amount": 1250,
                                "quantity": 2,
                            },
                            {
                                "seller_id": s2,
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
                ).encode()
            )
        self.confirm_body = json.dumps({"payment_method": "pm_card_visa"}).encode()

    async def run(self, conn: Connection, prefix: str, n: int, step_times: dict[str, list[float]]) -> None:
        t0 = time.monotonic()
        status, payload = await conn.request(
            "POST",
            "/api/checkout/sessions",
            JSON + self.auth + _idem(prefix, n, "s"),
            self.bodies[n % len(self.bodies)],
        )
        t1 = time.monotonic()
        step_times["create"].append(t1 - t0)
        if status != 201:
            raise OperationFailed(f"create {status}", payload[:300].decode(errors="replace"))
        session_id = json.loads(payload)["id"]
        status, payload = await conn.request(
            "POST",
            f"/api/checkout/sessions/{session_id}/confirm",
            JSON + self.auth + _idem(prefix, n, "c"),
            self.confirm_body,
        )
        step_times["confirm"].append(time.monotonic() - t1)
        if status != 201:
            raise OperationFailed(f"confirm {status}", payload[:300].decode(errors="replace"))


SCENARIOS = {"bare": BareWrite, "checkout": Checkout}


# ---- one client process --------------------------------------------------------------------


@dataclass
class Schedule:
    t_start: float  # monotonic: start sending (warm-up)
    t_measure: float  # monotonic: start counting
    t_end: float  # monotonic: stop


@dataclass
class ProcResult:
    latencies: list[float] = field(default_factory=list)  # seconds, operations completed in the window
    step_latencies: dict[str, list[float]] = field(default_factory=dict)
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    warmup_ok: int = 0
    warmup_errors: int = 0
    cpu_seconds: float = 0.0  # this process's user+system CPU during the window
    connects: int = 0
    fatal: str | None = None


async def _client(scenario: Any, host: str, port: int, nconns: int, sched: Schedule, tag: str) -> ProcResult:
    result = ProcResult(step_latencies={s: [] for s in scenario.steps})
    conns = [Connection(host, port) for _ in range(nconns)]
    cpu_mark: dict[str, float] = {}

    def mark_cpu(name: str) -> None:
        t = os.times()
        cpu_mark[name] = t.user + t.system

    loop = asyncio.get_running_loop()
    loop.call_at(sched.t_measure, mark_cpu, "start")  # asyncio's clock is time.monotonic

    async def run_conn(i: int, conn: Connection) -> None:
        prefix = f"{tag}-{i}"
        n = 0
        while True:
            start = time.monotonic()
            if start >= sched.t_end:
                return
            steps: dict[str, list[float]] = {s: [] for s in scenario.steps}
            error: OperationFailed | None = None
            try:
                await scenario.run(conn, prefix, n, steps)
            except OperationFailed as exc:
                error = exc
            except HTTPError as exc:
                error = OperationFailed(f"connection {exc}")
            n += 1
            end = time.monotonic()
            if end < sched.t_measure:
                if error:
                    result.warmup_errors += 1
                else:
                    result.warmup_ok += 1
                continue
            if end > sched.t_end:
                return
            if error:
                result.errors[error.kind] += 1
                result.error_samples.setdefault(error.kind, error.detail)
                await asyncio.sleep(0.01)  # do not spin on a failing server
                continue
            result.ok += 1
            result.latencies.append(end - start)
            for s, values in steps.items():
                result.step_latencies[s].extend(values)

    await asyncio.sleep(max(0.0, sched.t_start - time.monotonic()))
    tasks = [asyncio.create_task(run_conn(i, c)) for i, c in enumerate(conns)]
    await asyncio.wait(tasks, timeout=max(0.0, sched.t_end - time.monotonic()) + 0.05)
    mark_cpu("end")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            result.fatal = repr(task.exception())
    for c in conns:
        result.connects += c.connects
        c.close()
    result.cpu_seconds = cpu_mark.get("end", 0.0) - cpu_mark.get("start", cpu_mark.get("end", 0.0))
    return result


def _proc_main(
    kind: str, params: dict[str, Any], host: str, port: int, nconns: int, sched: Schedule, tag: str, out: Any
) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    try:
        scenario = SCENARIOS[kind](params)
        out.put(asyncio.run(_client(scenario, host, port, nconns, sched, tag)))
    except BaseException as exc:
        out.put(ProcResult(fatal=repr(exc)))


# ---- the load run ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    scenario: str
    concurrency: int
    processes: int
    warmup_s: float
    duration_s: float
    ok: int
    latencies: list[float]
    step_latencies: dict[str, list[float]]
    errors: Counter
    error_samples: dict[str, str]
    warmup_ok: int
    warmup_errors: int
    client_cpu_s: float
    connects: int
    fatal: list[str]

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class LoadGenerator:
    """Runs ``processes`` client processes sharing ``concurrency`` connections."""

    def __init__(self, concurrency: int, processes: int) -> None:
        self.concurrency = concurrency
        self.processes = max(1, min(processes, concurrency))
        self._procs: list[mp.Process] = []

    def run(
        self,
        kind: str,
        params: dict[str, Any],
        host: str,
        port: int,
        warmup_s: float,
        duration_s: float,
        on_window: Any = None,
    ) -> LoadResult:
        """Run warm-up + measurement; ``on_window(phase)`` is called with "start"/"end" around the window."""
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        now = time.monotonic()
        sched = Schedule(
            t_start=now + 0.5, t_measure=now + 0.5 + warmup_s, t_end=now + 0.5 + warmup_s + duration_s
        )
        share = [
            self.concurrency // self.processes + (1 if i < self.concurrency % self.processes else 0)
            for i in range(self.processes)
        ]
        run_tag = uuid.uuid4().hex[:8]
        self._procs = [
            ctx.Process(
                target=_proc_main,
                args=(kind, params, host, port, n, sched, f"{run_tag}-{i}", out),
                daemon=True,
            )
            for i, n in enumerate(share)
        ]
        for p in self._procs:
            p.start()
        try:
            if on_window is not None:
                time.sleep(max(0.0, sched.t_measure - time.monotonic()))
                on_window("start")
                time.sleep(max(0.0, sched.t_end - time.monotonic()))
                on_window("end")
            results: list[ProcResult] = []
            deadline = sched.t_end + 60
            while len(results) < len(self._procs):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError("load generator processes did not report in time")
                try:
                    results.append(out.get(timeout=min(remaining, 1.0)))
                except Exception:  # queue.Empty
                    if all(not p.is_alive() for p in self._procs) and out.empty():
                        raise RuntimeError("load generator processes died without reporting") from None
            for p in self._procs:
                p.join(timeout=5)
        finally:
            self.stop()
        merged_steps: dict[str, list[float]] = {}
        errors: Counter = Counter()
        samples: dict[str, str] = {}
        for r in results:
            for s, values in r.step_latencies.items():
                merged_steps.setdefault(s, []).extend(values)
            errors.update(r.errors)
            for k, v in r.error_samples.items():
                samples.setdefault(k, v)
        return LoadResult(
            scenario=kind,
            concurrency=self.concurrency,
            processes=self.processes,
            warmup_s=warmup_s,
            duration_s=duration_s,
            ok=sum(r.ok for r in results),
            latencies=[x for r in results for x in r.latencies],
            step_latencies=merged_steps,
            errors=errors,
            error_samples=samples,
            warmup_ok=sum(r.warmup_ok for r in results),
            warmup_errors=sum(r.warmup_errors for r in results),
            client_cpu_s=sum(r.cpu_seconds for r in results),
            connects=sum(r.connects for r in results),
            fatal=[r.fatal for r in results if r.fatal],
        )

    def stop(self) -> None:
        """Terminate the client processes this generator started (by their own handles)."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
        self._procs = []
