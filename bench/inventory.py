"""Checkout throughput with inventory tracked on every SKU against without (issue 13's target:
within 10 %).

`python -m bench.inventory` (part of `make bench`): the tally side of bench.checkout twice, on
fresh schemas and the same settings, once with no stock records and once with a stock record
for every (seller, SKU) the load buys, so every session reserves and every order sells. Read
models are left to the end (no workers), as in bench.checkout's ratio without workers. Prints
both rates and their ratio, PASS when the inventory run keeps at least BENCH_INVENTORY_TARGET
(0.90) of the rate without; exits 1 otherwise. BENCH_INVENTORY_ROUNDS=2 alternates the two runs
that many times and judges the sums.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.checkout import Cleanup, Config, run_tally, say


def main() -> int:
    target = float(os.environ.get("BENCH_INVENTORY_TARGET", "0.90"))
    rounds = int(os.environ.get("BENCH_INVENTORY_ROUNDS", "2"))
    base = replace(Config(), lag=False)
    logdir = Path(tempfile.mkdtemp(prefix="tally-bench-inventory-"))
    done = {False: [0, 0.0], True: [0, 0.0]}  # inventory -> [checkouts, seconds]
    cleanup = Cleanup()
    try:
        for round_ in range(1, rounds + 1):
            for inventory in (False, True):
                say(f"\n[inventory bench] round {round_}, stock tracked: {inventory}")
                result, _ = run_tally(replace(base, inventory=inventory), logdir, cleanup)
                if result.load.ok == 0 or result.load.fatal:
                    say(f"  run failed: {result.load.fatal or 'no checkout completed'}")
                    return 1
                done[inventory][0] += result.load.ok
                done[inventory][1] += result.load.duration_s
                say(f"  {result.load.ok / result.load.duration_s:.1f} checkouts/s")
    finally:
        cleanup.run()
    without = done[False][0] / done[False][1]
    with_stock = done[True][0] / done[True][1]
    ratio = with_stock / without
    verdict = "PASS" if ratio >= target else "FAIL"
    say(
        f"\ninventory: {with_stock:.1f} checkouts/s with stock on every SKU, {without:.1f} without "
        f"({rounds} alternating runs of each): ratio {ratio:.3f} (target >= {target:.2f}) {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
