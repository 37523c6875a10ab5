"""`make bench`, read side: raw log read vs full rebuild, `audit verify`, and settlement at scale.

    .venv/bin/python -m bench.read_side

All on PostgreSQL (+ Redis for the settlement's locks and queues), each part in a fresh
schema bench_<random> with a fresh Redis key prefix, dropped / deleted at the end (also on
failure and on Ctrl-C / SIGTERM). Every measured step runs in a fresh subprocess
(bench.read_side_phases), so its peak RSS (VmHWM) is its own.

(a) BENCH_EVENTS events of history (2-seller checkouts, every 20th partly refunded) recorded
    straight through the Marketplace (bench.datagen: 100 checkouts per save). Then
    (1) the raw read rate: the whole notification log read in id order and decoded
        (mapper.to_domain_event); measured before and after (2)-(b), the mean is the baseline.
        At parity with the phases it judges: the same reader (projections.runner.read_batches),
        the largest batch any phase reads with (rebuild's and verify's, taken from their code)
        and the garbage collector paused as they pause it (projections.base.paused_gc); each
        ratio is printed with both sides' settings and flagged if they differ;
    (2) a full rebuild of every read model (projections.runner.rebuild over all of PROJECTIONS,
        audit_log included, as `flask projections rebuild` runs it): events in the log / wall
        time; target >= 0.25 x (1).
(b) app.audit.verify over the same log: events / wall time; target >= 0.2 x (1); peak RSS.
(d) settling BENCH_ALLOCATIONS allocations across BENCH_SELLERS sellers (two-seller orders,
    every seller the same number) with app.commands.settlement.settle_all: wall time, allocations/s,
    peak RSS; then the same with 1/10 of the allocations and sellers (same per-seller size)
    and with 1/5 of the allocations over the same sellers, each in its own schema and
    process, to show whether memory is flat in the number of allocations.
(c), read-model lag with two workers, is in bench.checkout (it needs the web load).

Settings (environment):
  BENCH_EVENTS=200000        events of history for (a) and (b)
  BENCH_READ_BATCH=          notifications per select in the raw read (default: the phases' largest)
  BENCH_READ_GC=paused       "on" leaves the collector running in the raw read (not at parity)
  BENCH_ALLOCATIONS=100000   BENCH_SELLERS=1000   the main settlement size (d)
  BENCH_SETTLE_SIZES=        extra "allocations/sellers,..." for (d); default: A/10 over S/10 and A/5 over S;
                             "none": the main size only
  BENCH_FANOUT_WORKERS=1,2   (d) also settles the main size by a settlement run fanned out over this
                             many real RQ workers (`flask --app wsgi worker`), each count on fresh data;
                             "none" skips it. BENCH_SETTLE_TARGET_MS=20 is the per-seller target (1 worker)
  BENCH_PARTS=abd            which parts to run ("ab" skips settlement, "d" runs it alone)
  BENCH_PYSPY=               a directory: run every phase under `py-spy record --idle` (raw
                             collapsed stacks, one file per phase) for profiling; summarise one with
                             `python -m bench.profile_summary DIR/rebuild.txt --under phase_rebuild`
  BENCH_DATABASE_URL=postgresql://root@127.0.0.1:5432/test   BENCH_REDIS_URL=redis://127.0.0.1:6379/0
  BENCH_REBUILD_TARGET=0.25  BENCH_VERIFY_TARGET=0.2
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.checkout import (
    BIN,
    ROOT,
    Cleanup,
    _env_float,
    _env_int,
    background_load,
    delete_redis_keys,
    drop_schema,
    say,
)
from bench.procs import stop_groups


@dataclass(frozen=True)
class Config:
    events: int = field(default_factory=lambda: _env_int("BENCH_EVENTS", 200_000))
    read_batch: int = field(
        default_factory=lambda: _env_int("BENCH_READ_BATCH", max(phase_batches().values()))
    )
    read_gc_paused: bool = field(
        default_factory=lambda: os.environ.get("BENCH_READ_GC", "paused").strip().lower() != "on"
    )
    allocations: int = field(default_factory=lambda: _env_int("BENCH_ALLOCATIONS", 100_000))
    sellers: int = field(default_factory=lambda: _env_int("BENCH_SELLERS", 1000))
    extra_sizes: str = field(default_factory=lambda: os.environ.get("BENCH_SETTLE_SIZES", "").strip())
    parts: str = field(default_factory=lambda: (os.environ.get("BENCH_PARTS") or "abd").strip().lower())
    pyspy: str = field(default_factory=lambda: os.environ.get("BENCH_PYSPY", "").strip())
    database_url: str = field(
        default_factory=lambda: (
            os.environ.get("BENCH_DATABASE_URL") or "postgresql://root@127.0.0.1:5432/test"
        )
    )
    redis_url: str = field(
        default_factory=lambda: os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    fanout: str = field(default_factory=lambda: os.environ.get("BENCH_FANOUT_WORKERS", "1,2").strip())
    settle_target_ms: float = field(default_factory=lambda: _env_float("BENCH_SETTLE_TARGET_MS", 20.0))
    rebuild_target: float = field(default_factory=lambda: _env_float("BENCH_REBUILD_TARGET", 0.25))
    verify_target: float = field(default_factory=lambda: _env_float("BENCH_VERIFY_TARGET", 0.2))

    def fanout_workers(self) -> list[int]:
        if self.fanout.lower() in ("", "none", "0"):
            return []
        return [int(n) for n in self.fanout.split(",")]

    def settle_sizes(self) -> list[tuple[int, int]]:
        sizes = [(self.allocations, self.sellers)]
        if self.extra_sizes.lower() == "none":
            return sizes
        if self.extra_sizes:
            for part in self.extra_sizes.split(","):
                a, _, s = part.partition("/")
                sizes.append((int(a), int(s)))
        else:
            sizes.append((self.allocations // 10, max(2, self.sellers // 10)))
            sizes.append((self.allocations // 5, self.sellers))
        return sizes


def phase_batches() -> dict[str, int]:
    """The batch size each judged phase reads the log with, from the code that reads it."""
    from bench.read_side_phases import _batch_sizes

    return _batch_sizes()


# ---- subprocess phases ----------------------------------------------------------------------


class PhaseFailed(RuntimeError):
    pass


class Phases:
    """Runs bench.read_side_phases in its own process group; kills it (by its group id) on cleanup."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.profiles: list[str] = []

    def run(self, phase: str, env: dict[str, str], args: dict[str, Any], tag: str = "") -> dict[str, Any]:
        cmd = [sys.executable, "-m", "bench.read_side_phases", phase, json.dumps(args)]
        if self.config.pyspy:
            out = Path(self.config.pyspy).resolve()
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{phase}{'-' + tag if tag else ''}.txt"
            cmd = [
                str(BIN / "py-spy"),
                "record",
                "--idle",
                "--rate",
                "50",
                "--format",
                "raw",
                "--output",
                str(target),
                "--",
                *cmd,
            ]
            self.profiles.append(str(target))
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        result = None
        tail: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
                continue
            tail = [*tail, line][-30:]
            say(line if line.startswith("    ") else f"    | {line}")
        code = self.proc.wait()
        self.proc = None
        if code != 0 or result is None:
            raise PhaseFailed(
                f"phase {phase} exited with {code}"
                + ("" if result else " without a result")
                + ("\n" + "\n".join(tail[-10:]) if tail else "")
            )
        return result

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_groups([proc], grace=5)
        say(f"  stopped phase process (pid {proc.pid})")


_dropped: set[str] = set()


def drop_once(database_url: str, schema: str) -> None:
    """Drop a schema as soon as its part is done (disk), and at cleanup only if that did not happen."""
    if schema not in _dropped:
        drop_schema(database_url, schema)
        _dropped.add(schema)


def fresh_env(config: Config, cleanup: Cleanup, label: str) -> tuple[dict[str, str], str]:
    token = uuid.uuid4().hex[:10]
    schema, prefix = f"bench_{token}", f"bench-{token}"
    cleanup.push(f"drop schema {schema}", lambda: drop_once(config.database_url, schema))
    cleanup.push(f"delete Redis keys {prefix}:*", lambda: delete_redis_keys(config.redis_url, prefix))
    say(f"  {label}: schema {schema}, Redis prefix {prefix}")
    env = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": config.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "PAYMENT_PROVIDER": "mock",
    }
    return env, schema


def mib(kb: int | float) -> str:
    return f"{kb / 1024:,.0f} MiB"


# ---- parts ------------------------------------------------------------------------------------


@dataclass
class Results:
    generated: dict[str, Any] | None = None
    raw: list[dict[str, Any]] = field(default_factory=list)
    rebuild: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    settle: list[dict[str, Any]] = field(default_factory=list)  # each with "size" and "generated"
    fanout: list[dict[str, Any]] = field(default_factory=list)  # a settlement run over 1, 2 workers

    @property
    def raw_rate(self) -> float | None:
        return sum(r["rate"] for r in self.raw) / len(self.raw) if self.raw else None


def run_ab(config: Config, phases: Phases, cleanup: Cleanup, results: Results) -> None:
    say(f"\n(a)/(b) {config.events:,} events of history")
    env, schema = fresh_env(config, cleanup, "history")
    say(
        "  generating (Marketplace, 100 checkouts per save; "
        "the first 50 via start_payment/complete_payment) ..."
    )
    results.generated = phases.run(
        "generate",
        env,
        {
            "target_events": config.events,
            "sellers": 200,
            "refund_every": 20,
            "batch": 100,
            "real": 50,
        },
    )
    events = results.generated["events"]
    say(
        f"  {events:,} events stored: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(results.generated["topics"].items()))
    )
    raw_args = {"batch": config.read_batch, "gc_paused": config.read_gc_paused}
    say(
        f"\n(a1) raw read + decode of the notification log, run 1 ({settings_text(raw_args)}; "
        f"the phases: {', '.join(f'{k} batch {v:,}' for k, v in phase_batches().items())})"
    )
    raw = phases.run("raw_read", env, raw_args, "1")
    results.raw.append(raw)
    say(
        f"  -> {raw['events']:,} events in {raw['seconds']:.2f} s = {raw['rate']:,.0f} events/s "
        f"(decode {raw['decode_seconds'] / raw['seconds']:.0%} of it)"
    )
    say(
        "\n(a2) full rebuild of every read model "
        "(projections.runner.rebuild: one pass, shadow tables swapped in)"
    )
    results.rebuild = phases.run("rebuild", env, {"events": events})
    say(
        f"  -> {events:,} log events in {results.rebuild['seconds']:.1f} s = "
        f"{results.rebuild['rate']:,.0f} events/s"
    )
    say("\n(b) app.audit.verify(marketplace, engine)")
    results.verify = phases.run("verify", env, {"events": events})
    v = results.verify
    say(
        f"  -> {events:,} events in {v['seconds']:.1f} s = {v['rate']:,.0f} events/s, "
        f"peak RSS {mib(v['memory']['VmHWM'])} (at start {mib(v['memory_before']['VmRSS'])}), "
        f"{'OK' if v['ok'] else str(v['breaches']) + ' BREACHES'}"
    )
    say("\n(a1) raw read + decode of the notification log, run 2")
    raw = phases.run("raw_read", env, raw_args, "2")
    results.raw.append(raw)
    say(f"  -> {raw['events']:,} events in {raw['seconds']:.2f} s = {raw['rate']:,.0f} events/s")
    drop_once(config.database_url, schema)


def run_d(config: Config, phases: Phases, cleanup: Cleanup, results: Results) -> None:
    for i, (allocations, sellers) in enumerate(config.settle_sizes()):
        orders = allocations // 2
        say(
            f"\n(d{i + 1}) settle_all over {allocations:,} allocations across {sellers:,} sellers "
            f"({allocations // sellers:,} each; {orders:,} two-seller orders)"
        )
        if (orders * 2) % sellers:
            say("  NOTE: sellers do not divide the allocations evenly")
        env, schema = fresh_env(config, cleanup, f"settlement {allocations}/{sellers}")
        generated = phases.run(
            "generate",
            env,
            {
                "orders": orders,
                "sellers": sellers,
                "refund_every": 0,
                "batch": 100,
                "real": 0,
                "catch_up": ["payouts"],
            },
            f"d{i + 1}",
        )
        say("  settling (a fresh process; read models caught up beforehand) ...")
        settled = phases.run("settle", env, {"sellers": sellers}, f"d{i + 1}")
        settled["size"] = [allocations, sellers]
        settled["generated"] = generated
        results.settle.append(settled)
        say(
            f"  -> {settled['allocations_settled']:,} allocations in {settled['settlements']:,} settlements, "
            f"{settled['seconds']:.1f} s = {settled['rate']:,.0f} allocations/s, "
            f"peak RSS {mib(settled['memory']['VmHWM'])} "
            f"(before settle_all {mib(settled['memory_before']['VmRSS'])})"
        )
        drop_once(config.database_url, schema)
        if i == 0:
            from bench.read_side_fanout import run_fanout

            run_fanout(config, phases, cleanup, results, allocations, sellers)


# ---- report -------------------------------------------------------------------------------------


def settings_text(result: dict[str, Any]) -> str:
    return f"batch {result['batch']:,}, GC {'paused' if result['gc_paused'] else 'on'}"


def parity(raw: list[dict[str, Any]], phase: dict[str, Any]) -> str:
    """The baseline's settings beside the phase's; NOT AT PARITY when the baseline reads with
    smaller batches or with the collector on (a handicap that flatters the ratio)."""
    base = raw[0]
    fair = all(r["batch"] >= phase["batch"] and (r["gc_paused"] or not phase["gc_paused"]) for r in raw)
    return (
        f"baseline {settings_text(base)} vs this {settings_text(phase)}"
        f"{'' if fair else ': NOT AT PARITY, the ratio is flattered'}"
    )


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value < target
    return "MEETS target" if ok else "BELOW target"


def report(config: Config, command: str, results: Results, started: float, load: float) -> None:
    say("\n" + "=" * 100)
    say(f"SUMMARY  {command}")
    say(
        f"PostgreSQL {config.database_url}, Redis {config.redis_url}, {os.cpu_count()} CPUs; "
        f"background load at start {load:.2f} cores; total {time.monotonic() - started:.0f} s"
    )
    say("-" * 100)
    raw_rate = results.raw_rate
    if results.generated is not None:
        g = results.generated
        say(
            f"history: {g['events']:,} events = {g['checkouts']:,} two-seller checkouts "
            f"({g['real_checkouts']} via start_payment/complete_payment) + {g['refunds']:,} refunds, "
            f"written in {g['seconds']:.1f} s"
        )
        if g["shape_problems"]:
            say(f"  WARNING: generated events differ in shape from the service's: {g['shape_problems']}")
    if raw_rate:
        runs = " / ".join(f"{r['rate']:,.0f}" for r in results.raw)
        spread = (max(r["rate"] for r in results.raw) - min(r["rate"] for r in results.raw)) / raw_rate
        say(
            f"(a1) raw read + decode          {raw_rate:>10,.0f} events/s   "
            f"(runs {runs}; spread {spread:.0%}; "
            f"{settings_text(results.raw[0])}; peak RSS {mib(results.raw[0]['memory']['VmHWM'])})"
        )
    if results.rebuild is not None and raw_rate:
        rb = results.rebuild
        ratio = rb["rate"] / raw_rate
        say(
            f"(a2) full rebuild, all models  {rb['rate']:>10,.0f} events/s   ({rb['seconds']:.1f} s)  "
            f"ratio {ratio:.3f}  target >= {config.rebuild_target:.2f}: "
            f"{verdict(ratio, config.rebuild_target)}"
        )
        say(f"       {parity(results.raw, rb)}")
    if results.verify is not None and raw_rate:
        v = results.verify
        ratio = v["rate"] / raw_rate
        say(
            f"(b)  audit verify               {v['rate']:>10,.0f} events/s   ({v['seconds']:.1f} s)  "
            f"ratio {ratio:.3f}  target >= {config.verify_target:.2f}: "
            f"{verdict(ratio, config.verify_target)}"
        )
        say(f"       {parity(results.raw, v)}")
        say(
            f"       peak RSS {mib(v['memory']['VmHWM'])} "
            f"(process at start {mib(v['memory_before']['VmRSS'])}); "
            f"result {'OK' if v['ok'] else str(v['breaches']) + ' breaches'}; steps: "
            + ", ".join(f"{k} {s:.1f} s" for k, s in v["steps"].items())
        )
    if results.settle:
        say("-" * 100)
        say(
            f"(d)  settle_all                  {'allocations':>12}{'sellers':>9}{'per seller':>11}"
            f"{'time s':>9}{'alloc/s':>9}{'RSS before':>12}{'peak RSS':>10}"
        )
        for s in results.settle:
            allocations, sellers = s["size"]
            say(
                f"     {'':27}{s['allocations_settled']:>12,}{s['sellers']:>9,}{allocations // sellers:>11,}"
                f"{s['seconds']:>9.1f}{s['rate']:>9,.0f}{mib(s['memory_before']['VmRSS']):>12}"
                f"{mib(s['memory']['VmHWM']):>10}"
            )
        for s in results.settle:
            if s["allocations_settled"] != s["size"][0]:
                say(
                    f"     WARNING: {s['size'][0]:,} allocations generated, "
                    f"{s['allocations_settled']:,} settled"
                )
        main = results.settle[0]
        growth = [(s["memory"]["VmHWM"] - s["memory_before"]["VmRSS"]) for s in results.settle]
        say(
            "     peak RSS growth during settle_all: "
            + ", ".join(
                f"{s['size'][0]:,}/{s['size'][1]:,}: +{mib(d)}"
                for s, d in zip(results.settle, growth, strict=True)
            )
        )
        if len(results.settle) > 1:
            peaks = [s["memory"]["VmHWM"] for s in results.settle]
            sizes = [s["size"][0] for s in results.settle]
            spread = (max(peaks) - min(peaks)) / min(peaks)
            say(
                f"     peak RSS across sizes varies by {spread:.0%} while allocations vary "
                f"{max(sizes) / min(sizes):.0f}x: "
                f"{'flat' if spread < 0.15 else 'NOT flat'} (flat: within 15 %)"
            )
        say(
            f"     main size: {main['seconds']:.1f} s for {main['allocations_settled']:,} allocations "
            f"({main['rate']:,.0f}/s, {main['seconds'] / max(1, main['sellers']) * 1000:.0f} ms per seller)"
        )
    if results.fanout:
        from bench.read_side_fanout import report_fanout

        report_fanout(config, results)
    if config.pyspy:
        say("-" * 100)
        say(f"py-spy profiles (raw collapsed stacks, --idle) in {Path(config.pyspy).resolve()}")
    say("=" * 100)


# ---- main ---------------------------------------------------------------------------------------


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    config = Config()
    command = (
        "cd "
        + shlex.quote(str(ROOT))
        + " && "
        + " ".join(
            [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")]
            + [".venv/bin/python -m bench.read_side"]
        )
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    say(f"command: {command}")
    say(
        f"tally read-side benchmark: PostgreSQL {config.database_url}, Redis {config.redis_url}, "
        f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}"
    )
    cleanup = Cleanup()
    phases = Phases(config)
    cleanup.push("stop phase process", phases.kill)
    results = Results()
    started = time.monotonic()
    failed = False
    load = 0.0
    try:
        load = background_load()
        say(f"background load before starting: {load:.2f} cores busy")
        if "a" in config.parts or "b" in config.parts:
            run_ab(config, phases, cleanup, results)
        if "d" in config.parts:
            run_d(config, phases, cleanup, results)
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        failed = True
    except Exception as exc:
        say(f"\nbenchmark failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        say("\ncleanup:")
        phases.kill()  # first: a running phase holds locks on the schemas dropped next
        cleanup.run()
    report(config, command, results, started, load)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
