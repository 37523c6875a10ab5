"""Operator commands: `flask --app wsgi keys create`, `db init`, …"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.auth import ROLES, create_key

if TYPE_CHECKING:  # pragma: nocover
    from click._termui_impl import ProgressBar

keys = AppGroup("keys", help="Manage API keys.")
db = AppGroup("db", help="Prepare the database.")


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--subject", default=None, help="The customer or seller id (for those roles).")
def create_key_command(role: str, subject: str | None) -> None:
    """Create an API key; it is printed once (last line) and only its hash is stored."""
    container = current_app.extensions["tally"]
    try:
        key_id, key = create_key(container.engine, role, subject)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    who = f"{role}:{subject}" if subject else role
    click.echo(f"Created key {key_id} for {who}. Store it now: it is not shown again.")
    click.echo(key)


@db.command("init")
def init_db_command() -> None:
    """Create the event store and the service's tables if they do not exist."""
    container = current_app.extensions["tally"]
    _ = (container.engine, container.marketplace)  # building them creates the tables
    click.echo(f"Database ready ({container.settings.database.kind}).")


def init_app(app: Flask) -> None:
    app.cli.add_command(keys)
    app.cli.add_command(db)
    init_read_side(app)
    app.cli.add_command(reconcile_command)


# ---- read side, workers, settlement -------------------------------------------------

projections_group = AppGroup("projections", help="Read models: status and rebuild.")


@projections_group.command("status")
def projections_status_command() -> None:
    """Each read model's position, the log head, and lag in events and seconds."""
    from projections.runner import status

    container = current_app.extensions["tally"]
    rows = status(container.marketplace, container.engine)
    click.echo(f"{'projection':<15}{'position':>10}{'head':>10}{'lag events':>12}{'lag s':>10}")
    for row in rows:
        click.echo(
            f"{row['name']:<15}{row['position']:>10}{row['head']:>10}{row['lag_events']:>12}{row['lag_seconds']:>10}"
        )
    if container.settings.redis_url:
        from app.adapters.queue import queue_report, worker_report

        prefix = container.settings.key_prefix
        workers = worker_report(container.redis, prefix)
        for queue in queue_report(container.redis, prefix):
            serving = workers["workers"].get(queue["name"], [])
            alive = (
                f"{len(serving)} worker{'s' if len(serving) != 1 else ''}" if serving else "NO WORKER (down?)"
            )
            click.echo(f"queue {queue['name']}: {queue['queued']} queued, {queue['failed']} failed, {alive}")
            for job_id in queue["failed_job_ids"]:
                click.echo(f"  failed job {job_id}")
        click.echo(f"cron scheduler: {'alive' if workers['cron'] else 'DOWN (not heartbeating)'}")


@projections_group.command("rebuild")
@click.argument("name", required=False)
def projections_rebuild_command(name: str | None) -> None:
    """Rebuild one read model (or all, in one pass over the log) into fresh tables and swap them in;
    readers see the old rows until it commits."""
    from projections.runner import PROJECTIONS, rebuild

    container = current_app.extensions["tally"]
    if name is not None and name not in PROJECTIONS:
        raise click.UsageError(f"unknown projection {name!r}; choose from {', '.join(PROJECTIONS)}")
    head = container.marketplace.recorder.max_notification_id() or 0
    names = [name] if name else list(PROJECTIONS)
    with click.progressbar(length=head, label=f"rebuilding {', '.join(names)}") as bar:
        read = rebuild(
            [PROJECTIONS[n]() for n in names], container.marketplace, container.engine, progress=bar.update
        )
    for rebuilt in names:
        click.echo(f"{rebuilt}: rebuilt from {read} events")


@click.command("settle")
@with_appcontext
@click.option("--period", required=True, help="The month to settle, YYYY-MM.")
def settle_command(period: str) -> None:
    """Settle every seller for a month (synchronously, idempotently)."""
    from app.commands.settlement import month_period, sellers_due, settle_seller
    from domain.errors import DomainError

    container = current_app.extensions["tally"]
    try:
        start, end = month_period(period)
    except DomainError as exc:
        raise click.UsageError(str(exc)) from None
    cause = {
        "actor_id": "cli",
        "actor_role": "admin",
        "request_id": f"cli-settle:{period}",
        "reason": "settle",
    }
    sellers = sellers_due(container, end)
    ids: list[str] = []
    with click.progressbar(sellers, label=f"settling {start} .. {end}") as bar:
        for seller_id in bar:
            settlements, _ = settle_seller(container, seller_id, start, end, cause)
            ids.extend(str(s.id) for s in settlements)
    click.echo(f"{len(sellers)} sellers, {len(ids)} settlements")


def init_read_side(app: Flask) -> None:
    app.cli.add_command(projections_group)
    app.cli.add_command(settle_command)
    app.cli.add_command(audit_group)


audit_group = AppGroup("audit", help="Replay the books and check them.")


@audit_group.command("verify")
def audit_verify_command() -> None:
    """Check the hash chain, every money invariant and every read model; exit 1 on any breach."""
    from app.audit import verify
    from projections.runner import PROJECTIONS, catch_up

    container = current_app.extensions["tally"]
    app_ = container.marketplace
    catch_up(PROJECTIONS["audit_log"](), app_, container.engine)
    head = app_.recorder.max_notification_id() or 0
    lengths = {
        "replay": head,
        "compare": sum(len(cls.tables) for name, cls in PROJECTIONS.items() if name != "audit_log"),
    }
    bars: dict[str, ProgressBar[int]] = {}

    def progress(label: str, n: int) -> None:
        bar = bars.get(label)
        if bar is None:
            for other in bars.values():
                other.render_finish()
            bar = bars[label] = click.progressbar(
                length=lengths.get(label, head), label=f"{label:<12}", file=None
            )
            bar.__enter__()
        bar.update(n)

    report = verify(app_, container.engine, progress=progress)
    for bar in bars.values():
        bar.__exit__(None, None, None)
    for what, count in report.checked.items():
        click.echo(f"checked {count:>10} {what}")
    if report.ok:
        click.echo("OK: the books balance and history is intact.")
        return
    click.echo(f"BREACH: {len(report.breaches)} problem(s) found:", err=True)
    for breach in report.breaches:
        click.echo(f"  - {breach}", err=True)
    raise SystemExit(1)


@audit_group.command("settlement")
@click.argument("settlement_id")
def audit_settlement_command(settlement_id: str) -> None:
    """Recompute a settlement from the events before it; show any difference from what was paid."""
    from app.audit import recompute_settlement

    container = current_app.extensions["tally"]
    if container.marketplace.get_settlement(settlement_id) is None:
        raise click.UsageError(f"no settlement {settlement_id}")
    result = recompute_settlement(container.marketplace, container.engine, settlement_id)
    click.echo(f"settlement {settlement_id}")
    click.echo(f"  paid     {result['paid_total_payout_amount']}")
    click.echo(f"  expected {result['expected_total_payout_amount']}")
    if (
        not result["differences"]
        and result["paid_total_payout_amount"] == result["expected_total_payout_amount"]
    ):
        click.echo("  no difference")
        return
    for difference in result["differences"]:
        click.echo(f"  difference: {difference}")
    raise SystemExit(1)


# ---- reconciliation with the payment provider -------------------------------------------


@click.command("reconcile")
@with_appcontext
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Start of the window, YYYY-MM-DD (UTC); default: the last 30 days.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="First finish what is in flight (payments without an outcome, settlements not paid) from what the "
    "provider holds, as the cron's janitor does every 15 minutes.",
)
def reconcile_command(since: str | None, repair: bool) -> None:
    """Compare Stripe's PaymentIntents, Refunds and Transfers with tally's records; exit 1 on any mismatch."""
    from app.commands.janitor import repair_in_flight
    from app.reconcile import reconcile, window_start
    from domain.ports import ProviderUnavailableError

    container = current_app.extensions["tally"]
    if repair:
        repaired = repair_in_flight(container)
        for line in repaired.lines() or ["nothing in flight"]:
            click.echo(f"repair: {line}")
    try:
        start = window_start(since)
    except ValueError:
        raise click.UsageError("--since must be a date, YYYY-MM-DD") from None
    try:
        report = reconcile(container, start)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except ProviderUnavailableError as exc:
        click.echo(f"Stripe is unavailable ({exc}); nothing was compared.", err=True)
        raise SystemExit(2) from None
    click.echo(f"window: since {start.isoformat()}")
    for what, count in report.checked.items():
        click.echo(f"checked {count:>8} {what.replace('_', ' ')}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo("OK: Stripe and tally agree.")
        return
    click.echo(f"MISMATCH: {len(report.mismatches)} difference(s):", err=True)
    for mismatch in report.mismatches:
        click.echo(f"  - {mismatch}", err=True)
    raise SystemExit(1)
