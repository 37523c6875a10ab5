"""The monthly settlement job under frozen time (freezegun) on PostgreSQL + Redis: the RQ cron
enqueues it at 02:00 on the 1st, a real worker runs it, October is settled, and a doubled tick
or a second call settles nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder
from freezegun import freeze_time
from freezegun.api import FakeDatetime

from app import create_app
from app.auth import create_key
from app.bootstrap import Container
from app.commands.settlement_runs import settle_previous_month
from domain.services import Marketplace
from tests.integration.read_side_helpers import (
    event_topics,
    head,
    item,
    order_for,
    queued_jobs,
    run_worker_burst,
)

pytestmark = pytest.mark.integration


class FakeDatetimeAsISO(DatetimeAsISO):
    type = FakeDatetime
    name = "fake_datetime_iso"


class FrozenTimeMarketplace(Marketplace):
    """Knows freezegun's FakeDatetime, so aggregates can be saved inside freeze_time (tests only)."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(FakeDatetimeAsISO())


@pytest.fixture
def frozen(make_settings) -> Iterator[tuple]:
    settings = make_settings("pg")
    bootstrap = Container(settings)
    bootstrap.engine  # the schema exists before the event store creates its tables
    bootstrap.close()
    marketplace = FrozenTimeMarketplace(env=settings.database.eventsourcing_env())
    container = Container(settings, marketplace=marketplace)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    yield app, container
    container.close()
    marketplace.close()


def _keys(container):
    def key(role, subject=None):
        return {"Authorization": f"Bearer {create_key(container.engine, role, subject)[1]}"}

    return key("admin"), key("customer", "c-1")


def test_monthly_cron_job_settles_the_previous_month_once(frozen):
    from workers.context import install
    from workers.worker import build_cron

    app, container = frozen
    client = app.test_client()
    admin, customer = _keys(container)

    with freeze_time("2026-09-20 10:00:00", tick=True):
        september = order_for(client, customer, "c-1", [item("s-1", 1000)])  # left over from earlier
    with freeze_time("2026-10-15 12:00:00", tick=True):
        october = [
            order_for(client, customer, "c-1", [item("s-1", 2000), item("s-2", 3000)]),
            order_for(client, customer, "c-1", [item("s-1", 4000)], currency="EUR"),
        ]
    with freeze_time("2026-10-31 23:59:00", tick=True):
        last_minute = order_for(client, customer, "c-1", [item("s-2", 500)])
    with freeze_time("2026-11-01 01:00:00", tick=True):
        november = order_for(client, customer, "c-1", [item("s-1", 7000)])
    assert october[0]["order"]["created_at"].startswith("2026-10-15")

    install(container)
    run_worker_burst(container)  # read models current; queues empty
    with freeze_time("2026-11-01 01:59:30"):
        cron = build_cron(container)
        monthly = [job for job in cron.get_jobs() if job.func_name == "workers.jobs.settle_previous_month"]
        assert [job.cron for job in monthly] == ["0 2 1 * *"]
        cron.enqueue_jobs()  # the interval safety net runs at once; the monthly job is not due yet
        assert not any(j.func_name == "workers.jobs.settle_previous_month" for j in queued_jobs(container))

    with freeze_time("2026-11-01 02:00:01", tick=True):
        cron.enqueue_jobs()
        due = [j for j in queued_jobs(container) if j.func_name == "workers.jobs.settle_previous_month"]
        assert len(due) == 1
        run_worker_burst(container)
        assert due[0].get_status(refresh=True) == "finished"
        settled_ids = due[0].return_value()
        assert len(settled_ids) == 3  # s-1 USD, s-1 EUR, s-2 USD

        # A doubled tick (the cron ticks again, or the job is run by hand twice) settles nothing.
        events_before = head(container)
        cron.enqueue_jobs()
        assert not any(j.func_name == "workers.jobs.settle_previous_month" for j in queued_jobs(container))
        from workers import jobs

        assert jobs.settle_previous_month() == []
        assert settle_previous_month(container, today=date(2026, 11, 1)) == []
        new_topics = event_topics(container, events_before)
        assert not any("Settlement" in t or "Allocation.Settled" in t for t in new_topics), new_topics
        run_worker_burst(container)

    s1 = client.get("/api/sellers/s-1/settlements", headers=admin).json["settlements"]
    s2 = client.get("/api/sellers/s-2/settlements", headers=admin).json["settlements"]
    assert {s["id"] for s in s1 + s2} == set(settled_ids)
    for s in s1 + s2:
        assert (s["period_start"], s["period_end"], s["status"]) == ("2026-10-01", "2026-10-31", "paid")
    totals = {
        (s["seller_id"], s["currency"]): (s["total_payout_amount"], s["allocation_count"]) for s in s1 + s2
    }
    assert totals == {
        ("s-1", "USD"): (900 + 1800, 2),  # September's leftover and October's
        ("s-1", "EUR"): (3600, 1),
        ("s-2", "USD"): (2700 + 450, 2),  # includes 23:59 on Oct 31
    }
    # November's order is untouched and pending.
    pending = client.get("/api/sellers/s-1/payouts", headers=admin).json["pending"]
    assert [p["order_id"] for p in pending] == [november["order"]["id"]]
    # Which orders each settlement took: September's leftover and the 23:59 order are in,
    # November's is not.
    taken = {}
    for seller_id, listed in (("s-1", s1), ("s-2", s2)):
        for s in listed:
            url = f"/api/sellers/{seller_id}/settlements/{s['id']}/statement"
            taken[(seller_id, s["currency"])] = sorted(
                line["order_id"] for line in client.get(url, headers=admin).json["lines"]
            )
    assert taken == {
        ("s-1", "USD"): sorted([september["order"]["id"], october[0]["order"]["id"]]),
        ("s-1", "EUR"): [october[1]["order"]["id"]],
        ("s-2", "USD"): sorted([october[0]["order"]["id"], last_minute["order"]["id"]]),
    }


def test_monthly_handler_with_an_explicit_day(frozen):
    """settle_previous_month(today=…) settles the month before `today`, and only once."""
    app, container = frozen
    client = app.test_client()
    _, customer = _keys(container)
    with freeze_time("2026-10-15 12:00:00", tick=True):
        order_for(client, customer, "c-1", [item("s-1", 2000)])
    with freeze_time("2026-11-15 12:00:00", tick=True):
        order_for(client, customer, "c-1", [item("s-1", 3000)])

    assert settle_previous_month(container, today=date(2026, 10, 1)) == []  # September: nothing
    first = settle_previous_month(container, today=date(2026, 11, 1))
    assert len(first) == 1
    assert settle_previous_month(container, today=date(2026, 11, 1)) == []
    settlement = container.marketplace.get_settlement(first[0])
    assert (settlement.period_start, settlement.period_end) == ("2026-10-01", "2026-10-31")
    assert settlement.total_payout_amount == 1800 and len(settlement.allocations) == 1
