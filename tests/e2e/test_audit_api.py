"""The audit API per API.md on PostgreSQL + Redis: the gap-free global log and its paging and
metadata, the CSV export, the hash head, point-in-time streams and balances, settlement
statements, and auditor keys that read everything and change nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import text

from projections.runner import PROJECTIONS, catch_up
from tests.e2e.helpers import assert_problem, assert_validation_problem, confirm, create_session
from tests.integration.read_side_helpers import item, order_for

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date()
PERIOD_A = ((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
PERIOD_B = ((TODAY + timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())
EVENT_FIELDS = {
    "position",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "timestamp",
    "data",
    "actor_id",
    "actor_role",
    "request_id",
    "reason",
}
CSV_REQUIRED = [
    "position",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "timestamp",
    "data",
    "actor_id",
    "actor_role",
    "request_id",
    "reason",
]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def catch_up_all(container) -> None:
    for cls in PROJECTIONS.values():
        catch_up(cls(), container.marketplace, container.engine)


def key_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("tk_", 1)[1].split(".", 1)[0]


def refund(
    client, admin, order_id: str, body: dict[str, Any], request_id: str | None = None
) -> dict[str, Any]:
    headers = {**admin, "X-Request-Id": request_id} if request_id else admin
    response = client.post(f"/api/orders/{order_id}/refunds", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def settle(client, admin, seller_id: str, period: tuple[str, str]) -> list[dict[str, Any]]:
    response = client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={period[0]}&period_end={period[1]}", headers=admin
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["settlements"]


def all_events(client, headers) -> list[dict[str, Any]]:
    response = client.get("/api/audit/events?limit=1000", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["events"]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def burn_notification_ids(container, settings, n: int) -> None:
    """Gaps in the store's notification ids, as rolled-back inserts leave them."""
    table = f'"{settings.database_schema}".marketplace_events'
    with container.engine.begin() as conn:
        for _ in range(n):
            conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))"))


def stored_rows(container, settings) -> list[Any]:
    with container.engine.connect() as conn:
        return conn.execute(
            text(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f'FROM "{settings.database_schema}".marketplace_events ORDER BY notification_id'
            )
        ).all()


# ---- the global log ---------------------------------------------------------------------


def test_log_is_gap_free_pages_and_carries_actor_metadata(client, container, settings, admin, make_key):
    customer = make_key("customer", "c-1")
    first = order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 1999)])
    burn_notification_ids(container, settings, 3)
    second = order_for(client, customer, "c-1", [item("s-1", 4000)], currency="EUR")
    burn_notification_ids(container, settings, 2)
    refunded = refund(
        client,
        admin,
        first["order"]["id"],
        {"amount": 300, "seller_id": "s-1", "reason": "damaged"},
        request_id="req-audit-42",
    )
    burn_notification_ids(container, settings, 1)
    spread = refund(client, admin, second["order"]["id"], {"amount": 100})

    ids = [row.notification_id for row in stored_rows(container, settings)]
    assert ids != list(range(1, len(ids) + 1)), "the store's notification ids should have gaps"

    everything = all_events(client, make_key("auditor"))
    assert [e["position"] for e in everything] == list(range(1, len(ids) + 1))
    stored = stored_rows(container, settings)
    assert [(e["stream_id"], e["version"]) for e in everything] == [
        (str(r.originator_id), r.originator_version) for r in stored
    ]
    for event in everything:
        assert set(event) >= EVENT_FIELDS, event
        assert isinstance(event["data"], dict)
        assert event["stream_type"] in {"Payment", "Order", "Allocation", "Settlement"}
        assert event["type"].startswith(event["stream_type"] + ".")
        assert datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    streams: dict[str, list[dict[str, Any]]] = {}
    for event in everything:  # each stream in version order, its timestamps not going back
        streams.setdefault(event["stream_id"], []).append(event)
    for stream in streams.values():
        assert [e["version"] for e in stream] == list(range(1, len(stream) + 1))
        stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in stream]
        assert stamps == sorted(stamps)

    # Paging with after/limit and next_after walks the whole log exactly once.
    walked, after = [], 0
    while True:
        page = client.get(f"/api/audit/events?after={after}&limit=4", headers=admin)
        assert page.status_code == 200
        assert len(page.json["events"]) <= 4
        walked.extend(page.json["events"])
        if not page.json["events"]:
            assert page.json["next_after"] == after
            break
        assert page.json["next_after"] == page.json["events"][-1]["position"]
        after = page.json["next_after"]
    assert walked == everything

    # Who did it, in which request, and why.
    placed = [e for e in everything if e["type"] == "Order.Placed"]
    assert [e["stream_id"] for e in placed] == [first["order"]["id"], second["order"]["id"]]
    assert all(e["actor_role"] == "customer:c-1" and e["actor_id"] == key_id(customer) for e in placed)
    assert all(e["request_id"] for e in placed)
    by_refund = [e for e in everything if e["data"].get("refund_id") == refunded["id"]]
    assert {e["type"] for e in by_refund} >= {"Order.RefundRecorded", "Allocation.Refunded"}
    for event in by_refund:
        assert event["actor_id"] == key_id(admin)
        assert event["actor_role"] == "admin"
        assert event["request_id"] == "req-audit-42"
        assert event["reason"] == "damaged"
    recorded = next(e for e in by_refund if e["type"] == "Order.RefundRecorded")
    assert recorded["stream_id"] == first["order"]["id"] and recorded["data"]["amount"] == 300
    unexplained = [e for e in everything if e["data"].get("refund_id") == spread["id"]]
    assert unexplained and all(e["reason"] is None and e["request_id"] != "req-audit-42" for e in unexplained)

    assert_validation_problem(client.get("/api/audit/events?limit=0", headers=admin), "limit")
    assert_validation_problem(client.get("/api/audit/events?after=-1", headers=admin), "after")
    assert_problem(client.get("/api/audit/events"), 401)
    assert_problem(client.get("/api/audit/events", headers=customer), 403)
    assert_problem(client.get("/api/audit/events", headers=make_key("seller", "s-1")), 403)


def test_csv_export_and_head_hash(client, container, settings, admin, make_key):
    auditor = make_key("auditor")
    customer = make_key("customer", "c-1")
    order = order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 1999)])
    refund(
        client,
        admin,
        order["order"]["id"],
        {"amount": 250, "reason": 'said "no", then, yes'},
        request_id="req-csv-1",
    )
    events = all_events(client, auditor)

    response = client.get("/api/audit/events.csv", headers=auditor)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    reader = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    assert reader.fieldnames is not None and set(CSV_REQUIRED) <= set(reader.fieldnames), reader.fieldnames
    rows = list(reader)
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        assert int(row["position"]) == event["position"]
        assert int(row["version"]) == event["version"]
        for column in ("stream_id", "stream_type", "type", "timestamp"):
            assert row[column] == event[column], column
        for column in ("actor_id", "actor_role", "request_id", "reason"):
            assert row[column] == (event[column] or ""), column
        assert json.loads(row["data"]) == event["data"]
    assert any(r["reason"] == 'said "no", then, yes' and r["request_id"] == "req-csv-1" for r in rows)
    tail = client.get(f"/api/audit/events.csv?after={len(events) - 2}", headers=auditor)
    assert [int(r["position"]) for r in csv.DictReader(io.StringIO(tail.get_data(as_text=True)))] == [
        len(events) - 1,
        len(events),
    ]

    head = client.get("/api/audit/head", headers=auditor)
    assert head.status_code == 200
    assert head.json["position"] == len(events)
    assert HEX64.match(head.json["hash"])
    # The auditor can recompute the chain independently from the stored events.
    digest = "0" * 64
    for row in stored_rows(container, settings):
        digest = hashlib.sha256(
            bytes.fromhex(digest)
            + f"{row.originator_id}\n{row.originator_version}\n{row.topic}\n".encode()
            + bytes(row.state)
        ).hexdigest()
    assert head.json["hash"] == digest

    # Reads change nothing.
    client.get(f"/api/orders/{order['order']['id']}", headers=auditor)
    client.get("/api/audit/events.csv", headers=auditor)
    catch_up_all(container)
    assert client.get("/api/audit/head", headers=admin).json == head.json

    # A command moves the head and changes the hash.
    refund(client, admin, order["order"]["id"], {"amount": 100, "seller_id": "s-2"})
    moved = client.get("/api/audit/head", headers=auditor).json
    assert moved["position"] > head.json["position"]
    assert HEX64.match(moved["hash"]) and moved["hash"] != head.json["hash"]
    assert client.get("/api/audit/head", headers=auditor).json == moved


# ---- point in time ------------------------------------------------------------------------


def test_stream_and_balance_as_of(client, container, admin, make_key):
    auditor = make_key("auditor")
    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    order = order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 1999)])
    order_id = order["order"]["id"]
    t_placed = datetime.now(UTC)
    refund(client, admin, order_id, {"amount": 300, "seller_id": "s-1"})
    t_refunded = datetime.now(UTC)
    [settled] = settle(client, admin, "s-1", PERIOD_A)
    t_settled = datetime.now(UTC)
    late = refund(client, admin, order_id, {"amount": 400, "seller_id": "s-1"})
    t_late = datetime.now(UTC)
    eur = order_for(client, customer, "c-1", [item("s-1", 1000)], currency="EUR")

    before = client.get(f"/api/audit/streams/{order_id}?as_of={rfc3339(t_placed)}", headers=auditor)
    assert before.status_code == 200, before.get_data(as_text=True)
    assert before.json["stream_type"] == "Order" and before.json["state"]["customer_id"] == "c-1"
    assert before.json["version"] == 1 and len(before.json["events"]) == 1
    assert before.json["state"]["status"] == "paid"
    assert before.json["state"]["refunded_amount"] == 0
    assert before.json["state"]["total_amount"] == 4499

    after = client.get(f"/api/audit/streams/{order_id}?as_of={rfc3339(t_refunded)}", headers=admin)
    assert after.status_code == 200
    assert after.json["version"] == 2
    assert after.json["state"]["status"] == "partially_refunded"
    assert after.json["state"]["refunded_amount"] == 300
    now = client.get(f"/api/audit/streams/{order_id}", headers=auditor).json
    assert now["version"] == 3 and now["state"]["refunded_amount"] == 700
    assert [e["type"] for e in now["events"]] == [
        "Order.Placed",
        "Order.RefundRecorded",
        "Order.RefundRecorded",
    ]
    # The same instant written with another UTC offset means the same.
    shifted = t_placed.astimezone(timezone(timedelta(hours=2))).isoformat().replace("+", "%2B")
    assert client.get(f"/api/audit/streams/{order_id}?as_of={shifted}", headers=auditor).json["version"] == 1

    def balance(at: datetime | None, headers=auditor) -> dict[str, Any]:
        query = f"?as_of={rfc3339(at)}" if at else ""
        response = client.get(f"/api/sellers/s-1/balance{query}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    at_placed = balance(t_placed)
    assert at_placed["balances"] == [{"currency": "USD", "pending_payout_amount": 2250}]
    assert [(e["kind"], e["order_id"], e["payout_amount"]) for e in at_placed["entries"]] == [
        ("allocation", order_id, 2250)
    ]
    assert datetime.fromisoformat(at_placed["as_of"].replace("Z", "+00:00")) == t_placed.replace(
        microsecond=t_placed.microsecond
    )
    assert balance(t_refunded)["balances"] == [{"currency": "USD", "pending_payout_amount": 2250 - 270}]
    assert settled["total_payout_amount"] == 1980
    assert balance(t_settled)["balances"] == []
    reversed_payout = late["allocations"][0]["payout_reversed_amount"]
    carried = balance(t_late)
    assert carried["balances"] == [{"currency": "USD", "pending_payout_amount": -reversed_payout}]
    assert [(e["kind"], e["payout_amount"]) for e in carried["entries"]] == [("adjustment", -reversed_payout)]
    current = balance(None, headers=seller)
    assert current["balances"] == [
        {"currency": "EUR", "pending_payout_amount": 900},
        {"currency": "USD", "pending_payout_amount": -reversed_payout},
    ]
    # The balance now agrees with the payouts read model.
    catch_up_all(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=seller).json
    assert sorted(payouts["balances"], key=lambda b: b["currency"]) == current["balances"]
    assert [(e["order_id"], e["payout_amount"]) for e in current["entries"] if e["kind"] == "allocation"] == [
        (eur["order"]["id"], 900)
    ]
    # Before anything happened: nothing.
    assert balance(t_placed - timedelta(hours=1))["balances"] == []

    assert_problem(client.get(f"/api/audit/streams/{uuid4()}", headers=auditor), 404)
    assert_problem(client.get("/api/audit/streams/not-a-uuid", headers=auditor), 404)
    earlier = rfc3339(t_placed - timedelta(hours=1))
    assert_problem(client.get(f"/api/audit/streams/{order_id}?as_of={earlier}", headers=auditor), 404)
    for bad in ("yesterday", "2026-13-01T00:00:00Z", ""):
        assert_validation_problem(
            client.get(f"/api/audit/streams/{order_id}?as_of={bad}", headers=auditor), "as_of"
        )
        assert_validation_problem(
            client.get(f"/api/sellers/s-1/balance?as_of={bad}", headers=auditor), "as_of"
        )
    assert_problem(client.get("/api/sellers/s-1/balance", headers=make_key("seller", "s-2")), 403)
    assert_problem(client.get(f"/api/audit/streams/{order_id}", headers=customer), 403)


# ---- statements -------------------------------------------------------------------------


def test_settlement_statements_json_and_csv(client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    o1 = order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 1999)])
    o2 = order_for(client, customer, "c-1", [item("s-1", 3333)])
    refund(client, admin, o1["order"]["id"], {"amount": 300, "seller_id": "s-1"})
    refund(client, admin, o2["order"]["id"], {"amount": 111, "seller_id": "s-1"})
    [first] = settle(client, admin, "s-1", PERIOD_A)
    late = refund(client, admin, o1["order"]["id"], {"amount": 400, "seller_id": "s-1"})
    o3 = order_for(client, customer, "c-1", [item("s-1", 1000)])
    [second] = settle(client, admin, "s-1", PERIOD_B)

    for settlement, kinds in (
        (first, ["order", "refund", "order", "refund"]),
        (second, ["order", "adjustment"]),
    ):
        url = f"/api/sellers/s-1/settlements/{settlement['id']}/statement"
        response = client.get(url, headers=seller)
        assert response.status_code == 200, response.get_data(as_text=True)
        statement = response.json
        lines = statement["lines"]
        assert sorted(line["kind"] for line in lines) == sorted(kinds)
        assert statement["total_payout_amount"] == settlement["total_payout_amount"]
        assert sum(line["net_amount"] for line in lines) == settlement["total_payout_amount"]
        running = 0
        for line in lines:
            running += line["net_amount"]
            assert line["running_total_amount"] == running
            assert line["gross_amount"] - line["platform_fee_amount"] == line["net_amount"]
        assert lines[-1]["running_total_amount"] == settlement["total_payout_amount"]

        as_csv = client.get(url + ".csv", headers=seller)
        assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
        reader = csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))
        assert reader.fieldnames is not None and {
            "kind",
            "order_id",
            "gross_amount",
            "platform_fee_amount",
            "net_amount",
            "running_total_amount",
        } <= set(reader.fieldnames)
        rows = list(reader)
        assert len(rows) == len(lines)
        for row, line in zip(rows, lines, strict=True):
            assert row["kind"] == line["kind"] and row["order_id"] == line["order_id"]
            for column in ("gross_amount", "platform_fee_amount", "net_amount", "running_total_amount"):
                assert int(row[column]) == line[column]
        assert int(rows[-1]["running_total_amount"]) == settlement["total_payout_amount"]

        assert client.get(url, headers=make_key("auditor")).json == statement
        assert client.get(url, headers=admin).status_code == 200
        assert_problem(client.get(url, headers=make_key("seller", "s-2")), 403)
        assert_problem(client.get(url + ".csv", headers=make_key("seller", "s-2")), 403)
        assert_problem(client.get(url, headers=customer), 403)

    adjustment = next(
        line
        for line in client.get(f"/api/sellers/s-1/settlements/{second['id']}/statement", headers=seller).json[
            "lines"
        ]
        if line["kind"] == "adjustment"
    )
    assert adjustment["order_id"] == o1["order"]["id"] and adjustment["refund_id"] == late["id"]
    assert adjustment["net_amount"] == -late["allocations"][0]["payout_reversed_amount"]
    assert o3["order"]["id"] in {
        line["order_id"]
        for line in client.get(f"/api/sellers/s-1/settlements/{second['id']}/statement", headers=seller).json[
            "lines"
        ]
    }
    # A settlement of another seller, or none at all, is not found under s-1.
    assert_problem(client.get(f"/api/sellers/s-2/settlements/{first['id']}/statement", headers=admin), 404)
    assert_problem(client.get(f"/api/sellers/s-1/settlements/{uuid4()}/statement", headers=admin), 404)


# ---- auditors read everything and change nothing -----------------------------------------


def test_auditor_reads_every_audit_endpoint_and_every_post_is_403(app, client, container, admin, make_key):
    auditor = make_key("auditor")
    customer = make_key("customer", "c-1")
    order = order_for(client, customer, "c-1", [item("s-1", 2500)])
    [settlement] = settle(client, admin, "s-1", PERIOD_A)
    open_session = create_session(client, customer)
    run = client.post(
        "/api/settlements/runs", json={"period_start": PERIOD_B[0], "period_end": PERIOD_B[1]}, headers=admin
    )
    assert run.status_code == 202
    verification = client.post("/api/audit/verifications", headers=admin)
    assert verification.status_code == 202
    order_id, seller_id, settlement_id = order["order"]["id"], "s-1", settlement["id"]

    for url in (
        "/api/audit/events",
        "/api/audit/events?after=1&limit=2",
        "/api/audit/events.csv",
        "/api/audit/head",
        f"/api/audit/streams/{order_id}",
        f"/api/audit/streams/{settlement_id}?as_of={rfc3339(datetime.now(UTC))}",
        f"/api/sellers/{seller_id}/balance",
        f"/api/sellers/{seller_id}/balance?as_of=2020-01-01T00:00:00Z",
        f"/api/sellers/{seller_id}/settlements/{settlement_id}/statement",
        f"/api/sellers/{seller_id}/settlements/{settlement_id}/statement.csv",
        f"/api/orders/{order_id}",
        f"/api/payments/{order['payment']['id']}",
        "/api/customers/c-1/orders",
        f"/api/sellers/{seller_id}/payouts",
        f"/api/sellers/{seller_id}/settlements",
        f"/api/sellers/{seller_id}/invoices",
        f"/api/sellers/{seller_id}/notifications",
        f"/api/settlements/runs/{run.json['id']}",
        f"/api/checkout/sessions/{open_session['id']}",
        f"/api/audit/verifications/{verification.json['id']}",
    ):
        response = client.get(url, headers=auditor)
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True))

    values = {
        "session_id": open_session["id"],
        "order_id": order_id,
        "seller_id": seller_id,
        "settlement_id": settlement_id,
        "run_id": run.json["id"],
        "delivery_id": "no-such-delivery",
        "payment_id": order["payment"]["id"],
        "refund_id": "00000000-0000-0000-0000-000000000000",
    }
    posts = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods
        and rule.rule.startswith("/api/")
        and not rule.rule.startswith("/api/webhooks/")
    )
    assert {
        "/api/checkout/sessions",
        "/api/checkout/sessions/<session_id>/confirm",
        "/api/orders/<order_id>/refunds",
        "/api/sellers/<seller_id>/settlements",
        "/api/settlements/runs",
        "/api/audit/verifications",
    } <= set(posts), posts
    bodies = {
        "/api/checkout/sessions": {
            "customer_id": "c-1",
            "currency": "USD",
            "items": [item("s-1", 100)],
            "delivery_address": {
                "line1": "1 Main St",
                "city": "Springfield",
                "postal_code": "12345",
                "country": "US",
            },
        },
        "/api/checkout/sessions/<session_id>/confirm": {"payment_method": "pm_card_visa"},
        "/api/orders/<order_id>/refunds": {"amount": 100},
        "/api/settlements/runs": {"period_start": PERIOD_B[0], "period_end": PERIOD_B[1]},
    }
    head = container.marketplace.recorder.max_notification_id()
    for rule in posts:
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule)
        if rule == "/api/sellers/<seller_id>/settlements":
            url += f"?period_start={PERIOD_B[0]}&period_end={PERIOD_B[1]}"
        response = client.post(
            url, json=bodies.get(rule, {}), headers={**auditor, "Idempotency-Key": f"auditor-{uuid4()}"}
        )
        assert_problem(response, 403)
    assert container.marketplace.recorder.max_notification_id() == head
    assert (
        client.get(f"/api/checkout/sessions/{open_session['id']}", headers=customer).json["status"] == "open"
    )
    assert client.get(f"/api/orders/{order_id}", headers=auditor).json["refunded_amount"] == 0
    assert confirm(client, customer, open_session["id"]).status_code == 201  # the session was untouched
