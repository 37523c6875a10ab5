"""Operations: metrics for Prometheus, the browsable API reference, JSON log lines with the request
id (also in the jobs a request enqueues)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from app.logs import REQUEST_ID, RequestIdFilter, formatter
from tests.e2e.helpers import place_order

pytestmark = pytest.mark.e2e


def sample(text: str, series: str, **labels: str) -> float:
    """The value of one series in Prometheus text format (the labels given must all match)."""
    for line in text.splitlines():
        if not line.startswith(series + "{") and not line.startswith(series + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {series} {labels} in:\n{text}")


def test_metrics_need_an_admin_or_auditor_key(client, make_key):
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers=make_key("customer", "c-1")).status_code == 403
    assert client.get("/api/metrics", headers=make_key("auditor")).status_code == 200


def test_metrics_count_requests_checkouts_and_read_the_read_side(client, make_key, admin):
    customer = make_key("customer", "c-1")
    place_order(client, customer)
    declined = client.post(
        "/api/checkout/sessions",
        json={
            "customer_id": "c-1",
            "currency": "USD",
            "items": [
                {"seller_id": "s-1", "sku": "a", "description": "A", "unit_amount": 900, "quantity": 1}
            ],
            "delivery_address": {"line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"},
        },
        headers=customer,
    ).json
    client.post(
        f"/api/checkout/sessions/{declined['id']}/confirm",
        json={"payment_method": "pm_card_chargeDeclined"},
        headers=customer,
    )
    response = client.get("/api/metrics", headers=admin)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    confirm = "/api/checkout/sessions/<session_id>/confirm"
    assert sample(text, "tally_http_requests_total", endpoint=confirm, status="201") >= 1
    assert sample(text, "tally_http_requests_total", endpoint=confirm, status="402") >= 1
    assert sample(text, "tally_checkouts_total", outcome="placed") >= 1
    assert sample(text, "tally_checkouts_total", outcome="declined") >= 1
    assert sample(text, "tally_http_request_duration_seconds_count", endpoint=confirm) >= 2
    assert sample(text, "tally_read_model_lag_events", name="orders") >= 0
    assert sample(text, "tally_read_model_lag_seconds", name="payouts") >= 0
    assert (
        sample(
            text,
            "tally_queue_depth",
            queue=f"{client.application.extensions['tally'].settings.key_prefix}-projections",
        )
        >= 0
    )
    assert "tally_settlements" in text and "tally_webhook_events" in text


def test_the_api_reference_is_browsable_without_the_internet(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/api/docs/assets/") for asset in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_log_lines_are_json_with_the_request_id(app, client, make_key):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tally.test")
    logger.addHandler(handler)
    try:
        with app.test_request_context(headers={"X-Request-Id": "req-abc-123"}):
            app.preprocess_request()
            logger.warning("inside a request")
        logger.warning("outside any request")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "req-abc-123" and inside["message"] == "inside a request"
    assert inside["level"] == "WARNING" and inside["logger"] == "tally.test" and "time" in inside
    assert outside["request_id"] == "-"


def test_a_job_carries_the_request_id_of_the_request_that_enqueued_it(container, monkeypatch):
    from rq.job import Job

    from workers import jobs

    token = REQUEST_ID.set("req-from-the-web")
    try:
        container.jobs.settlement_run_requested("run-1")
    finally:
        REQUEST_ID.reset(token)
    [job_id] = container.jobs.queues["settlements"].job_ids
    job = Job.fetch(job_id, connection=container.redis)
    assert job.meta["request_id"] == "req-from-the-web"

    seen: list[str | None] = []
    monkeypatch.setattr(jobs, "get_current_job", lambda: job)
    monkeypatch.setattr(
        jobs.settlement_runs, "execute_settlement_run", lambda *_: seen.append(REQUEST_ID.get())
    )
    jobs.execute_settlement_run("run-1")
    assert seen == ["req-from-the-web"] and REQUEST_ID.get() is None
