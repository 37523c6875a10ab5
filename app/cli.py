"""Operator commands: `flask --app wsgi keys create`, `db init`, …"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.auth import ROLES, create_key, list_keys, revoke_key
from app.exit_codes import COULD_NOT_RUN, FINDING, guard

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: nocover
    from click._termui_impl import ProgressBar

keys = AppGroup("keys", help="Manage API keys.")
db = AppGroup("db", help="Prepare the database.")


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--subject", default=None, help="The customer or seller id (for those roles).")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 90d, 12h or 30m (default: no expiry).")
def create_key_command(role: str, subject: str | None, expires_in: str | None) -> None:
    """Create an API key; it is printed once (last line) and only its hash is stored."""
    container = current_app.extensions["tally"]
    expires_at = datetime.now(UTC) + _duration(expires_in) if expires_in else None
    try:
        key_id, key = create_key(container.engine, role, subject, expires_at)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    who = f"{role}:{subject}" if subject else role
    until = f", expires {expires_at:%Y-%m-%dT%H:%M:%SZ}" if expires_at else ""
    click.echo(f"Created key {key_id} for {who}{until}. Store it now: it is not shown again.")
    click.echo(key)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d{1,5})([dhm])", text.strip())
    if not match:
        raise click.UsageError("--expires-in must be a number and d, h or m, e.g. 90d")
    number, unit = int(match.group(1)), match.group(2)
    if number == 0:
        raise click.UsageError("--expires-in must be more than 0")
    unit_name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
    return timedelta(**{unit_name: number})


@keys.command("list")
def list_keys_command() -> None:
    """Every key: id, role, subject, created, last used, expires, revoked (never the secret)."""
    container = current_app.extensions["tally"]

    def when(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%dT%H:%M:%SZ}" if moment else "-"

    click.echo(
        f"{'id':<24}  {'role':<8}  {'subject':<16}  {'created':<20}  {'last used':<20}  "
        f"{'expires':<20}  revoked"
    )
    for key in list_keys(container.engine):
        click.echo(
            f"{key['id']:<24}  {key['role']:<8}  {key['subject'] or '-':<16}  {when(key['created_at']):<20}  "
            f"{when(key['last_used_at']):<20}  {when(key['expires_at']):<20}  {when(key['revoked_at'])}"
        )


@keys.command("revoke")
@click.argument("key_id")
def revoke_key_command(key_id: str) -> None:
    """Revoke a key: every process refuses it within a second."""
    container = current_app.extensions["tally"]
    if not revoke_key(container.engine, key_id):
        raise click.UsageError(f"no key {key_id}")
    click.echo(f"Revoked key {key_id}.")


@db.command("upgrade")
def upgrade_db_command() -> None:
    """Bring the database to this release's schema, keeping every row: migrate the app tables
    (a database from before migrations is adopted at the baseline), create the event store,
    and rebuild any read model whose version changed."""
    _upgrade_db()


@db.command("init")
def init_db_command() -> None:
    """The same as `db upgrade` (kept for the scripts that use it)."""
    _upgrade_db()


def _upgrade_db() -> None:
    from app.adapters import schema
    from projections import versions

    container = current_app.extensions["tally"]
    before, after = schema.upgrade(container.raw_engine)
    marketplace = container.marketplace_unchecked
    rebuilt = versions.upgrade(marketplace, container.raw_engine)
    moved = f"{before} -> {after}" if before != after else f"at {after}"
    click.echo(f"app tables: {moved}")
    click.echo(f"read models rebuilt: {', '.join(rebuilt) if rebuilt else 'none'}")
    click.echo(f"Database ready ({container.settings.database.kind}).")


def init_app(app: Flask) -> None:
    for command in (keys, db, projections_group, settle_command, audit_group, reconcile_command):
        app.cli.add_command(guard(command))


# ---- read side, workers, settlement -------------------------------------------------

projections_group = AppGroup("projections", help="Read models: status and rebuild.")


@projections_group.command("status")
def projections_status_command() -> None:
    """Each read model's position, the log head, and lag in events and seconds."""
    from projections.status import status

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
            alive = f"{len(serving)} worker(s) alive" if serving else "NO WORKER ALIVE"
            click.echo(f"queue {queue['name']}: {queue['queued']} queued, {queue['failed']} failed, {alive}")
            for job_id in queue["failed_job_ids"]:
                click.echo(f"  failed job {job_id}")
        click.echo(f"cron scheduler: {'alive' if workers['cron'] else 'DOWN (not heartbeating)'}")


@projections_group.command("rebuild")
@click.argument("name", required=False)
@click.option(
    "--accept-new-chain",
    is_flag=True,
    help="Replace the audit log's stored hash chain even where the recomputed one differs.",
)
def projections_rebuild_command(name: str | None, accept_new_chain: bool) -> None:
    """Rebuild one read model (or all, in one pass over the log) into fresh tables and swap them in;
    readers see the old rows until it commits. The audit log's hash chain is never replaced by a
    different one unless --accept-new-chain (exit 1, nothing changed)."""
    from projections.runner import PROJECTIONS, ChainRewriteRefused, rebuild

    container = current_app.extensions["tally"]
    if name is not None and name not in PROJECTIONS:
        raise click.UsageError(f"unknown projection {name!r}; choose from {', '.join(PROJECTIONS)}")
    head = container.marketplace.recorder.max_notification_id() or 0
    names = [name] if name else list(PROJECTIONS)
    with click.progressbar(length=head, label=f"rebuilding {', '.join(names)}") as bar:
        try:
            read = rebuild(
                [PROJECTIONS[n]() for n in names],
                container.marketplace,
                container.engine,
                progress=bar.update,
                accept_new_chain=accept_new_chain,
            )
        except ChainRewriteRefused as exc:
            click.echo(f"\nrefused: {exc}", err=True)
            raise SystemExit(1) from None
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
    unpaid: list[str] = []
    with click.progressbar(sellers, label=f"settling {start} .. {end}") as bar:
        for seller_id in bar:
            # sellers_due caught the read models up once for all of them
            settlements, _ = settle_seller(container, seller_id, start, end, cause, catch_up=False)
            ids.extend(str(s.id) for s in settlements)
            unpaid.extend(
                f"{s.id} ({s.seller_id}, {s.total_payout_amount} {s.currency}): "
                f"{s.status} {s.failure_reason or ''}".rstrip()
                for s in settlements
                if s.status != "paid"
            )
    click.echo(f"{len(sellers)} sellers, {len(ids)} settlements")
    if unpaid:
        for line in unpaid:
            log.error("settlement not paid: %s", line)
            click.echo(f"NOT PAID: {line}", err=True)
        raise SystemExit(FINDING)


audit_group = AppGroup("audit", help="Replay the books and check them.")


@audit_group.command("verify")
def audit_verify_command() -> None:
    """Check the hash chain, every money invariant and every read model; exit 1 on any breach."""
    from app.audit import verify
    from app.audit.fees import FeeRule
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

    policy = container.policy
    fees = FeeRule(policy.platform_fee_bps, policy.checkout_session_ttl_seconds)
    report = verify(app_, container.engine, progress=progress, payable=policy.payable, fees=fees)
    for bar in bars.values():
        bar.__exit__(None, None, None)
    for what, count in report.checked.items():
        click.echo(f"checked {count:>10} {what}")
    seen = report.compared_with
    if seen is None:
        click.echo("compared with no earlier verification (none has completed yet)")
    else:
        click.echo(
            f"compared with the head verification {seen['verification_id']} saw on {seen['completed_at']}: "
            f"position {seen['position']}, hash {seen['hash'][:16]}…"
        )
    if report.ok:
        click.echo("OK: the books balance and history is intact.")
        return
    click.echo(f"BREACH: {len(report.breaches)} problem(s) found:", err=True)
    for breach in report.breaches:
        click.echo(f"  - {breach}", err=True)
    log.error("audit verify found %d breach(es); the first: %s", len(report.breaches), report.breaches[0])
    raise SystemExit(FINDING)


@audit_group.command("settlement")
@click.argument("settlement_id")
def audit_settlement_command(settlement_id: str) -> None:
    """Recompute a settlement from the events before it; show any difference from what was paid."""
    from app.audit import recompute_settlement

    container = current_app.extensions["tally"]
    if container.marketplace.get_settlement(settlement_id) is None:
        raise click.UsageError(f"no settlement {settlement_id}")
    result = recompute_settlement(
        container.marketplace, container.engine, settlement_id, container.policy.payable
    )
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
    """Compare the provider's payments, refunds and transfers with tally's records; exit 1 on any mismatch."""
    from app.commands.janitor import repair_in_flight
    from app.reconcile import LABEL, reconcile
    from domain.ports import ProviderUnavailableError

    container = current_app.extensions["tally"]
    provider = LABEL.get(container.settings.payment_provider, container.settings.payment_provider)
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
        click.echo(f"could not run: {provider} is unavailable ({exc}); nothing was compared.", err=True)
        raise SystemExit(COULD_NOT_RUN) from None
    click.echo(f"window: since {start.isoformat()}")
    for what, count in report.checked.items():
        click.echo(f"checked {count:>8} {what.replace('_', ' ')}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo(f"OK: {provider} and tally agree.")
        return
    click.echo(f"MISMATCH: {len(report.mismatches)} difference(s):", err=True)
    for mismatch in report.mismatches:
        click.echo(f"  - {mismatch}", err=True)
    raise SystemExit(1)


def window_start(since: str | None, today: datetime | None = None) -> datetime:
    """``--since YYYY-MM-DD`` as the start of that UTC day; by default the last 30 days."""
    if since is None:
        now = today or datetime.now(UTC)
        return (now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.fromisoformat(since)
    if day.tzinfo is None:
        day = day.replace(tzinfo=UTC)
    return day
