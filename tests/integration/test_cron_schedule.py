"""The one scheduler (`flask --app wsgi cron`) registers what README's Commands table promises:
the read-model catch-up every 30 s, the session clean-up hourly, the in-flight janitor every 15
minutes, the stock reservations' sweep every minute, the Idempotency-Key purge hourly at minute
43, the previous month's settlement on the 1st at 02:00 and `audit verify` daily at 03:30 (host
local time), each on its queue; and it fires them then, not otherwise (walked through a day and a
month boundary under frozen time)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from app.adapters.queue import queue_names
from app.bootstrap import Container

pytestmark = pytest.mark.integration

CATCH_UP = "workers.jobs.catch_up_all"
CLEAN_UP = "workers.jobs.cleanup_expired_sessions"
JANITOR = "workers.jobs.repair_in_flight"
MONTHLY = "workers.jobs.settle_previous_month"
DAILY = "workers.jobs.verify_on_schedule"
NOTIFY = "workers.jobs.deliver_notifications"
SWEEP = "workers.jobs.sweep_reservations"
PURGE = "workers.jobs.purge_idempotency_keys"


def local(text: str) -> datetime:
    """A wall-clock time on this host (RQ's cron reads host local time) as a UTC instant."""
    return datetime.fromisoformat(text).astimezone().astimezone(UTC)


@pytest.fixture
def container(make_settings):
    container = Container(make_settings("pg"))
    yield container
    container.close()


def registered(cron) -> dict[str, tuple]:
    return {job.func_name: (job.queue_name, job.interval, job.cron) for job in cron.get_jobs()}


def test_the_scheduler_registers_each_documented_job_on_its_queue(container, make_settings):
    from workers.worker import build_cron

    names = queue_names(container.settings.key_prefix)
    assert registered(build_cron(container)) == {
        CATCH_UP: (names["projections"], 30, None),
        CLEAN_UP: (names["projections"], None, "17 * * * *"),
        PURGE: (names["projections"], None, "43 * * * *"),
        SWEEP: (names["projections"], 60, None),
        JANITOR: (names["settlements"], None, "*/15 * * * *"),
        MONTHLY: (names["settlements"], None, "0 2 1 * *"),
        DAILY: (names["audit"], None, "30 3 * * *"),
    }
    with_mail = Container(container.settings.replace(smtp_url="smtp://127.0.0.1:2525"))
    try:
        assert registered(build_cron(with_mail))[NOTIFY] == (names["notifications"], 60, None)
    finally:
        with_mail.close()


def test_each_job_fires_on_its_schedule_and_not_between(container):
    from workers.worker import build_cron

    def tick(at: str) -> set[str]:
        with freeze_time(local(at)):
            return {job.func_name for job in cron.enqueue_jobs()}

    with freeze_time(local("2026-10-31 23:00:00")):
        cron = build_cron(container)
    steps = [
        ("2026-10-31 23:00:00", {CATCH_UP, SWEEP}),  # the safety net and the sweep run at once
        ("2026-10-31 23:00:29", set()),
        ("2026-10-31 23:00:30", {CATCH_UP}),  # every 30 s
        ("2026-10-31 23:14:59", {CATCH_UP, SWEEP}),
        ("2026-10-31 23:15:00", {JANITOR}),  # every 15 minutes
        ("2026-10-31 23:16:59", {CATCH_UP, SWEEP}),  # the sweep: every 60 s
        ("2026-10-31 23:17:00", {CLEAN_UP}),  # hourly, at minute 17
        ("2026-10-31 23:17:30", {CATCH_UP}),
        ("2026-11-01 00:16:59", {CATCH_UP, JANITOR, PURGE, SWEEP}),  # 23:30's janitor, 23:43's purge, late
        ("2026-11-01 00:17:00", {CLEAN_UP}),
        ("2026-11-01 01:59:59", {CATCH_UP, CLEAN_UP, JANITOR, PURGE, SWEEP}),  # 01:17's clean-up, late
        ("2026-11-01 02:00:00", {MONTHLY, JANITOR}),  # the 1st at 02:00
        ("2026-11-01 03:29:59", {CATCH_UP, CLEAN_UP, JANITOR, PURGE, SWEEP}),
        ("2026-11-01 03:30:00", {DAILY, JANITOR}),  # daily at 03:30
        ("2026-11-01 03:31:00", {CATCH_UP, SWEEP}),
        ("2026-11-02 01:59:59", {CATCH_UP, CLEAN_UP, JANITOR, PURGE, SWEEP}),  # no settlement on the 2nd
        ("2026-11-02 02:00:01", {JANITOR}),
        ("2026-11-02 03:30:00", {CATCH_UP, CLEAN_UP, DAILY, JANITOR, PURGE, SWEEP}),
        ("2026-12-01 02:00:00", {CATCH_UP, CLEAN_UP, DAILY, JANITOR, MONTHLY, PURGE, SWEEP}),
    ]
    assert [(at, tick(at)) for at, _ in steps] == steps


def test_the_cron_command_runs_this_scheduler(container, monkeypatch):
    """`flask cron` is the flask.commands entry point workers.cli:cron_command, which runs
    workers.worker.run_cron (build_cron, then start) on the container."""
    from importlib.metadata import entry_points

    from click.testing import CliRunner

    import workers.cli
    import workers.worker

    [cron] = [e for e in entry_points(group="flask.commands") if e.name == "cron"]
    assert cron.value == "workers.cli:cron_command" and cron.load() is workers.cli.cron_command
    ran = []
    monkeypatch.setattr(workers.cli, "get_container", lambda: container)
    monkeypatch.setattr(workers.worker, "run_cron", ran.append)
    result = CliRunner().invoke(workers.cli.cron_command)
    assert result.exit_code == 0, result.output
    assert ran == [container]
