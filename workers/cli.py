"""`flask --app wsgi worker` and `flask --app wsgi cron`: registered as Flask CLI plugins
(the ``flask.commands`` entry points in pyproject.toml), so the app never imports workers.

They build the container from the environment, as the app they run beside does.
"""

from __future__ import annotations

import click

from workers.context import get_container


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--fork/--no-fork",
    default=False,
    help="Fork a work horse per job (RQ Worker), or run jobs in this process (SimpleWorker, the default: "
    "a horse rebuilds the container per job, ~0.1-0.5 s, too slow to keep read models within a second).",
)
@click.option(
    "--queue",
    "queue_keys",
    multiple=True,
    type=click.Choice(["settlements", "projections", "notifications", "audit", "webhooks"]),
    help="Work only these queues (repeatable); default all. A dedicated projections worker keeps read "
    "models fresh while a long settlement run is going.",
)
def worker_command(burst: bool, fork: bool, queue_keys: tuple[str, ...]) -> None:
    """Run an RQ worker with the app's settings."""
    from workers.worker import run_worker

    container = get_container()
    if not container.settings.redis_url:
        raise click.UsageError("REDIS_URL is not set: without Redis, jobs run inline and no worker is needed")
    run_worker(container, burst=burst, fork=fork, only=queue_keys or None)


@click.command("cron")
def cron_command() -> None:
    """Run the single scheduler (safety-net catch-up, hourly clean-up, monthly settlement)."""
    from workers.worker import run_cron

    container = get_container()
    if not container.settings.redis_url:
        raise click.UsageError("REDIS_URL is not set: the scheduler needs Redis")
    run_cron(container)
