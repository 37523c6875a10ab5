"""Scale-out evidence: checkout throughput with 1, 2 and 4 gunicorn workers, and where the
machine's time goes at each (issue 17).

`python -m bench.scaleout` (part of `make bench`): the tally side of bench.checkout (no bare
baseline, no RQ workers) once per web-worker count in BENCH_SCALE_WORKERS ("1,2,4"), each on a
fresh schema with the same load (BENCH_CONCURRENCY clients) and threads per worker. For each it
prints checkouts/s, p50/p99, the CPU each part used (gunicorn, PostgreSQL, Redis, the load
clients; cores and ms per checkout) and what saturated first:
  - "CPU": the machine's cores were >= 90 % busy (the share per part says whose);
  - "waits": cores were left idle, so the limit is waiting (locks, commits, round trips).
Informational: no target, exit 0 unless a run failed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.checkout import Cleanup, Config, SideResult, ms, run_tally, say
from bench.loadgen import percentile


def _verdict(result: SideResult) -> str:
    cpu, load = result.cpu, result.load
    if not cpu or load.ok == 0:
        return "no CPU figures"
    per = 1000 / load.rate  # ms of a core per checkout, per core used
    parts = {
        "gunicorn (Python)": cpu["server"],
        "PostgreSQL": cpu["postgres"],
        "Redis": cpu["redis"],
        "load clients": load.client_cpu_s / load.duration_s,
    }
    shares = ", ".join(f"{name} {cores:.2f} cores = {cores * per:.1f} ms" for name, cores in parts.items())
    busy = cpu["machine"] / cpu["cores"]
    first = max(parts, key=lambda name: parts[name])
    limit = f"CPU ({busy:.0%} busy; most: {first})" if busy >= 0.9 else f"waits ({busy:.0%} busy)"
    return f"CPU per checkout: {shares}; saturated by {limit}"


def main() -> int:
    counts = [int(n) for n in os.environ.get("BENCH_SCALE_WORKERS", "1,2,4").split(",") if n.strip()]
    base = replace(Config(), lag=False)
    logdir = Path(tempfile.mkdtemp(prefix="tally-bench-scaleout-"))
    rows = []
    cleanup = Cleanup()
    try:
        for workers in counts:
            say(f"\n[scale-out] gunicorn --workers {workers} --threads {base.threads}")
            result, _ = run_tally(replace(base, workers=workers), logdir, cleanup)
            if result.load.ok == 0 or result.load.fatal:
                say(f"  run failed: {result.load.fatal or 'no checkout completed'}")
                return 1
            rows.append((workers, result))
    finally:
        cleanup.run()
    say("\nscale-out: web workers -> checkouts/s (p99), where the time went")
    for workers, result in rows:
        load = result.load
        say(f"  {workers} worker(s): {load.rate:,.1f}/s (p99 {ms(percentile(load.latencies, 99))} ms)")
        say(f"      {_verdict(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
