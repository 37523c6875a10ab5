"""bench.read_side (d), fan-out: the main size settled by a settlement run over 1, then 2 real RQ
workers (bench.settle_fanout runs each in a fresh process), and its lines of the summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.checkout import Cleanup, say

if TYPE_CHECKING:  # pragma: nocover
    from bench.read_side import Config, Phases, Results


def _mib(kb: int | float) -> str:
    return f"{kb / 1024:,.0f} MiB"


def run_fanout(
    config: Config, phases: Phases, cleanup: Cleanup, results: Results, allocations: int, sellers: int
) -> None:
    """The same size settled by a settlement run fanned out over 1, then 2 real RQ workers (each on
    a fresh copy of the data: every read model caught up first, so the workers start idle)."""
    from bench.read_side import drop_once, fresh_env
    from projections.runner import PROJECTIONS

    for workers in config.fanout_workers():
        say(
            f"\n(d-fan-out) settlement run over {allocations:,} allocations across {sellers:,} sellers "
            f"with {workers} RQ worker(s) (`flask --app wsgi worker`)"
        )
        env, schema = fresh_env(config, cleanup, f"fan-out {workers} worker(s)")
        generated = phases.run(
            "generate",
            env,
            {
                "orders": allocations // 2,
                "sellers": sellers,
                "refund_every": 0,
                "batch": 100,
                "real": 0,
                "catch_up": list(PROJECTIONS),
            },
            f"fanout{workers}",
        )
        run = phases.run("settle_fanout", env, {"workers": workers, "sellers": sellers}, f"fanout{workers}")
        run["size"] = [allocations, sellers]
        run["generated"] = generated
        results.fanout.append(run)
        say(
            f"  -> run done in {run['seconds']:.1f} s ({run['chunks']} chunks, "
            f"{run['seconds'] / max(1, run['sellers']) * 1000:.1f} ms per seller), "
            f"{run['allocations_settled']:,} allocations, {run['settlements_paid']:,} settlements paid; "
            f"read models caught up {run['catch_up_seconds']:.1f} s later"
        )
        drop_once(config.database_url, schema)


def report_fanout(config: Config, results: Results) -> None:
    say("-" * 100)
    say(
        f"(d)  settlement run, fan-out   {'workers':>8}{'sellers':>9}{'chunks':>7}{'time s':>9}"
        f"{'ms/seller':>10}{'speedup':>9}{'worker CPU':>11}{'CPU ms/seller':>14}{'+catch-up s':>12}"
        f"{'worker peak RSS':>17}"
    )
    base = results.fanout[0]["seconds"] if results.fanout else 0.0
    for r in results.fanout:
        sellers = max(1, r["sellers"])
        say(
            f"     {'':25}{r['workers']:>8}{r['sellers']:>9,}{r['chunks']:>7}{r['seconds']:>9.1f}"
            f"{r['seconds'] / sellers * 1000:>10.1f}{base / r['seconds']:>9.2f}"
            f"{r['worker_cpu_seconds']:>10.1f}s{r['worker_cpu_seconds'] / sellers * 1000:>14.1f}"
            f"{r['catch_up_seconds']:>12.1f}{'  ' + ' / '.join(_mib(k) for k in r['worker_peak_rss_kb']):>17}"
        )
        allocations = r["size"][0]
        problems = []
        if r["allocations_settled"] != allocations:
            problems.append(f"{allocations:,} allocations generated, {r['allocations_settled']:,} settled")
        if r["transfers"] != r["allocations_settled"]:
            problems.append(f"{r['transfers']:,} transfers for {r['allocations_settled']:,} lines")
        if r["settlements_paid"] != r["settlements"] or r["sellers"] != r["expected_sellers"]:
            problems.append(
                f"{r['settlements_paid']:,} paid of {r['settlements']:,} settlements, "
                f"{r['sellers']:,} of {r['expected_sellers']:,} sellers"
            )
        for problem in problems:
            say(f"     WARNING ({r['workers']} worker(s)): {problem}")
    one = next((r for r in results.fanout if r["workers"] == 1), None)
    two = next((r for r in results.fanout if r["workers"] == 2), None)
    if one is not None:
        ms = one["seconds"] / max(1, one["sellers"]) * 1000
        say(
            f"     per-seller cost, 1 worker: {ms:.1f} ms wall (target <= {config.settle_target_ms:.0f} ms): "
            f"{'PASS' if ms <= config.settle_target_ms else 'FAIL'}"
            + (
                f"; 2 workers: {two['seconds'] / max(1, two['sellers']) * 1000:.1f} ms wall per seller, "
                f"speedup {one['seconds'] / two['seconds']:.2f}x"
                if two is not None
                else ""
            )
        )
