"""`flask --app wsgi audit verify` and `audit settlement` on PostgreSQL: a busy history built
through the API verifies clean; editing, deleting or swapping a stored event by SQL, or
changing a read-model row, fails verification with exit 1 and names the problem."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from app import audit
from app.adapters import read_models
from app.adapters.queue import InlineJobs
from app.audit import ChainCheck, SqlChainCheck, iter_audit_rows, iter_notifications, limits
from app.commands.verification import execute_verification
from projections.runner import PROJECTIONS, catch_up
from projections.tables import projection_positions
from tests.e2e.helpers import assert_problem, confirm, create_session, stripe_event, stripe_signature
from tests.integration.read_side_helpers import item, order_for, run_worker_burst

pytestmark = pytest.mark.e2e

SECRET = "whsec_audit"
TODAY = datetime.now(UTC).date()
PERIOD_A = ((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
PERIOD_B = ((TODAY + timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())


@pytest.fixture
def settings(make_settings, backend):
    return make_settings(backend, stripe_webhook_secret=SECRET)


def catch_up_all(container) -> None:
    for cls in PROJECTIONS.values():
        catch_up(cls(), container.marketplace, container.engine)


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


def build_history(client, admin, make_key) -> dict[str, Any]:
    """Three sellers, USD and EUR, partial refunds (spread and per seller), a full refund, a declined
    payment, a 3-D Secure payment completed by a signed webhook, a settlement, a refund of a settled
    allocation and a second settlement carrying that negative adjustment."""
    customer = make_key("customer", "c-1")
    o1 = order_for(client, customer, "c-1", [item("s-1", 2500, "mug"), item("s-2", 1999, "tee")])
    o2 = order_for(client, customer, "c-1", [item("s-1", 4000, "lamp")], currency="EUR")
    o3 = order_for(client, customer, "c-1", [item("s-2", 1500, "cap"), item("s-3", 3333, "bag")])
    o4 = order_for(
        client, customer, "c-1", [item("s-3", 1200, "pen"), item("s-2", 800, "ink")], currency="EUR"
    )
    refund(client, admin, o1["order"]["id"], {"amount": 300, "seller_id": "s-1", "reason": "damaged"})
    refund(client, admin, o3["order"]["id"], {"amount": 500})  # spread over s-2 and s-3
    refund(client, admin, o4["order"]["id"], {"amount": 2000, "reason": "never arrived"})  # full

    declined = create_session(client, customer)
    response = confirm(client, customer, declined["id"], "pm_card_chargeDeclined")
    assert_problem(response, 402)

    session = create_session(client, customer, checkout_items([item("s-2", 777, "card")]))
    response = confirm(client, customer, session["id"], "pm_card_authenticationRequired")
    assert response.status_code == 202, response.get_data(as_text=True)
    payment = response.json["payment"]
    payload = stripe_event(
        "evt_audit_3ds",
        "payment_intent.succeeded",
        {"id": payment["provider_reference"], "object": "payment_intent"},
    )
    hook = client.post(
        "/api/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload, SECRET)},
    )
    assert hook.status_code == 200, hook.get_data(as_text=True)
    completed = client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json
    assert completed["status"] == "completed" and completed["order_id"]

    first = settle(client, admin, "s-1", PERIOD_A)
    assert sorted(s["currency"] for s in first) == ["EUR", "USD"]
    late = refund(
        client, admin, o1["order"]["id"], {"amount": 400, "seller_id": "s-1", "reason": "late claim"}
    )
    o5 = order_for(client, customer, "c-1", [item("s-1", 1000, "pad")])
    [second] = settle(client, admin, "s-1", PERIOD_B)
    assert second["adjustment_count"] == 1 and second["allocation_count"] == 1
    assert second["total_payout_amount"] == 900 - late["allocations"][0]["payout_reversed_amount"]
    return {
        "orders": [o1, o2, o3, o4, o5],
        "first": first,
        "second": second,
        "late_refund": late,
        "order_3ds": completed["order_id"],
    }


def checkout_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.conftest import checkout_body

    return checkout_body(items=items)


def verify(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def output(result) -> str:
    return result.output  # click 8.2: stdout and stderr, as a terminal shows them


def events_table(settings) -> str:
    return f'"{settings.database_schema}".marketplace_events'


def stored(container, settings, topic_suffix: str) -> list[Any]:
    with container.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT notification_id, originator_id, originator_version, topic, "
                "convert_from(state, 'UTF8') AS state "
                f"FROM {events_table(settings)} WHERE topic LIKE :t ORDER BY notification_id"
            ),
            {"t": f"%{topic_suffix}"},
        ).all()


@pytest.fixture
def history(app, client, container, admin, make_key):
    built = build_history(client, admin, make_key)
    catch_up_all(container)  # the audit log pins the original events before any tampering
    head = client.get("/api/audit/head", headers=admin).json
    assert head["position"] == container.marketplace.recorder.max_notification_id()
    return built


both_backends = pytest.mark.parametrize("backend", ["pg", "sqlite"], indirect=True)


@both_backends
def test_busy_history_verifies_clean(app, history, container):
    if container.engine.dialect.name == "postgresql":
        assert_chain_checks_agree(container)
    result = verify(app)
    assert result.exit_code == 0, output(result)
    assert "OK" in result.output
    assert "BREACH" not in output(result)
    assert f"{container.marketplace.recorder.max_notification_id():>10} events" in result.output
    assert "checked          6 orders" in result.output  # five placed at once, one through 3-D Secure
    assert "checked          3 settlements" in result.output


def assert_chain_checks_agree(container) -> None:
    """verify's chain check on PostgreSQL (one SQL statement) finds exactly what the Python walk,
    SQLite's check, finds on the same log."""
    app_, engine = container.marketplace, container.engine
    with engine.connect() as conn:
        stop = conn.execute(
            select(projection_positions.c.position).where(projection_positions.c.name == "audit_log")
        ).scalar_one()
        walk = ChainCheck(iter_audit_rows(conn), stop)
        for notification in iter_notifications(app_):
            walk.feed(notification)
        expected = walk.finish()
    assert SqlChainCheck(engine, app_.recorder.events_table_name, stop).run() == expected


def assert_breach(app, *needles: str) -> str:
    assert_chain_checks_agree(app.extensions["tally"])
    result = verify(app)
    text_out = output(result)
    assert result.exit_code == 1, text_out
    assert "BREACH" in text_out and "OK:" not in text_out
    for needle in needles:
        assert needle in text_out, (needle, text_out)
    return text_out


def test_editing_a_stored_event_is_detected(app, history, container, settings):
    [row] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":2500' in r.state
    ]
    with container.engine.begin() as conn:
        changed = conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"subtotal_amount":2500', "new": '"subtotal_amount":2600'},
        )
        assert changed.rowcount == 1
    out = assert_breach(
        app, f"event {row.originator_id} v1 (Allocation.Created) was changed in the event store"
    )
    assert f"allocation {row.originator_id}: fee + payout != subtotal" in out


def test_a_rebuild_refuses_to_hide_an_edit_behind_a_new_hash_chain(app, history, container, settings):
    [row] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":2500' in r.state
    ]
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"subtotal_amount":2500', "new": '"subtotal_amount":2600'},
        )
        position = conn.execute(
            text(f'SELECT position FROM "{settings.database_schema}".audit_log WHERE notification_id = :n'),
            {"n": row.notification_id},
        ).scalar_one()
    refused = app.test_cli_runner().invoke(args=["projections", "rebuild"])
    assert refused.exit_code == 1, output(refused)
    assert f"differs from the stored hash chain at position {position}" in output(refused)
    # Nothing was swapped in: verify still sees the edit.
    assert_breach(app, f"event {row.originator_id} v1 (Allocation.Created) was changed in the event store")
    accepted = app.test_cli_runner().invoke(args=["projections", "rebuild", "--accept-new-chain"])
    assert accepted.exit_code == 0, output(accepted)


def test_a_history_rewritten_and_rechained_still_fails_against_the_last_verified_head(
    app, history, container, settings
):
    from app.commands.verification import execute_verification, request_verification

    cause = {"actor_id": "t", "actor_role": "admin", "request_id": "t", "reason": None}
    execute_verification(container, request_verification(container, cause))
    clean = verify(app)
    assert clean.exit_code == 0 and "compared with the head verification" in output(clean)
    [row] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":2500' in r.state
    ]
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"subtotal_amount":2500', "new": '"subtotal_amount":2600'},
        )
    rechained = app.test_cli_runner().invoke(
        args=["projections", "rebuild", "audit_log", "--accept-new-chain"]
    )
    assert rechained.exit_code == 0, output(rechained)
    assert_breach(app, "no longer has the hash verification")


def test_deleting_a_stored_event_is_detected(app, history, container, settings):
    [row] = stored(container, settings, "Order.RefundRecorded")[:1]
    with container.engine.begin() as conn:
        conn.execute(
            text(f"DELETE FROM {events_table(settings)} WHERE notification_id = :n"),
            {"n": row.notification_id},
        )
    assert_breach(
        app,
        f"event {row.originator_id} v{row.originator_version} (Order.RefundRecorded) "
        f"was deleted from the event store",
    )


def test_deleting_an_event_other_events_depend_on_is_reported_not_a_crash(app, history, container, settings):
    late = history["late_refund"]["allocations"][0]["allocation_id"]
    [row] = [r for r in stored(container, settings, "Allocation.Created") if str(r.originator_id) == late]
    with container.engine.begin() as conn:
        conn.execute(
            text(f"DELETE FROM {events_table(settings)} WHERE notification_id = :n"),
            {"n": row.notification_id},
        )
    out = assert_breach(
        app, f"event {late} v1 (Allocation.Created) was deleted from the event store", "cannot be replayed"
    )
    # The chain's finding comes first: it is the cause of the replay's.
    assert out.index("was deleted from the event store") < out.index("cannot be replayed")


def test_amounts_no_column_can_hold_are_reported_not_a_crash(app, history, container, settings):
    [initiated] = stored(container, settings, "Payment.Initiated")[:1]
    [created] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":2500' in r.state
    ]
    with container.engine.begin() as conn:
        for row, old, new in (
            (initiated, '"amount":', '"amount":99999999999999999999'),
            (created, '"subtotal_amount":2500', '"subtotal_amount":2500.5'),
        ):
            conn.execute(
                text(
                    f"UPDATE {events_table(settings)} "
                    "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                    "WHERE notification_id = :n"
                ),
                {"n": row.notification_id, "old": old, "new": new},
            )
    assert_breach(
        app,
        f"event {initiated.originator_id} v1 (Payment.Initiated) was changed in the event store",
        f"payment {initiated.originator_id}: cannot be checked",
        f"event {created.originator_id} v1 (Allocation.Created) was changed in the event store",
        f"event {created.originator_id} v1 (Allocation.Created) cannot be replayed",
    )


def test_verifying_does_not_hold_up_the_read_models_or_the_audit_api(
    app, client, history, container, admin, make_key
):
    replaying, release = threading.Event(), threading.Event()
    reports: list[Any] = []

    def progress(label: str, n: int) -> None:
        if label == "replay":
            replaying.set()
            release.wait(60)

    verifying = threading.Thread(
        target=lambda: reports.append(audit.verify(container.marketplace, container.engine, progress))
    )
    verifying.start()
    try:
        assert replaying.wait(60)  # the verification's transaction is open, mid-replay
        order_for(client, make_key("customer", "c-9"), "c-9", [item("s-1", 1234)])
        started = time.monotonic()
        assert catch_up(PROJECTIONS["orders"](), container.marketplace, container.engine) > 0
        head = client.get("/api/audit/head", headers=admin)
        assert (
            head.status_code == 200
            and head.json["position"] == container.marketplace.recorder.max_notification_id()
        )
        assert time.monotonic() - started < 10
    finally:
        release.set()
        verifying.join(120)
    [report] = reports
    assert report.ok, report.breaches  # it checked the snapshot it started from


def test_swapping_two_stored_events_is_detected(app, history, container, settings):
    a, b = [r for r in stored(container, settings, "Allocation.Refunded")][:2]
    assert a.state != b.state
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} AS e SET state = o.state "
                f"FROM {events_table(settings)} AS o "
                f"WHERE (e.notification_id, o.notification_id) IN ((:a, :b), (:b, :a))"
            ),
            {"a": a.notification_id, "b": b.notification_id},
        )
    assert_breach(
        app,
        f"event {a.originator_id} v{a.originator_version} (Allocation.Refunded) "
        "was changed in the event store",
        f"event {b.originator_id} v{b.originator_version} (Allocation.Refunded) "
        "was changed in the event store",
    )


def test_swapping_events_of_different_types_is_reported_not_a_crash(app, history, container, settings):
    [placed] = stored(container, settings, "Order.Placed")[:1]
    [refunded] = stored(container, settings, "Order.RefundRecorded")[:1]
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} AS e SET state = o.state "
                f"FROM {events_table(settings)} AS o "
                f"WHERE (e.notification_id, o.notification_id) IN ((:a, :b), (:b, :a))"
            ),
            {"a": placed.notification_id, "b": refunded.notification_id},
        )
    assert_breach(
        app,
        "(Order.Placed) was changed in the event store",
        "(Order.RefundRecorded) was changed in the event store",
    )


def report_in_batches_of(container, monkeypatch, size: int) -> tuple[list[str], dict[str, int]]:
    monkeypatch.setattr(limits, "REPLAY_BATCH", size)
    found = audit.verify(container.marketplace, container.engine)
    return found.breaches, found.checked


@both_backends
def test_verifying_in_small_batches_gives_the_same_report(app, history, container, monkeypatch):
    """The books page out to tables between batches; batches of 7 events cut every history apart
    (payments from their orders, allocations from their refunds and settlements)."""
    whole = report_in_batches_of(container, monkeypatch, 10_000)
    assert whole[0] == [] and whole[1]["allocations"] > 7
    assert report_in_batches_of(container, monkeypatch, 7) == whole


def test_a_breach_only_the_whole_history_shows_is_found_in_small_batches(
    app, history, container, settings, monkeypatch
):
    [row] = stored(container, settings, "Order.RefundRecorded")[:1]
    with container.engine.begin() as conn:  # the order's refund no longer nets out with its allocations'
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"amount":', "new": '"amount":1'},
        )
    small = report_in_batches_of(container, monkeypatch, 7)
    assert any(f"order {row.originator_id}: allocations reversed" in breach for breach in small[0]), small[0]
    assert report_in_batches_of(container, monkeypatch, 10_000) == small


def test_removing_an_audit_log_row_or_editing_a_link_is_detected(app, history, container, settings):
    audit = f'"{settings.database_schema}".audit_log'
    with container.engine.begin() as conn:
        gone = conn.execute(
            text(f"DELETE FROM {audit} WHERE position = 5 RETURNING notification_id, stream_id, version")
        ).one()
        edited = conn.execute(
            text(f"UPDATE {audit} SET previous_hash = repeat('f', 64) WHERE position = 9")
        ).rowcount
        assert edited == 1
    assert_breach(
        app,
        f"event {gone.stream_id} v{gone.version} (notification {gone.notification_id}) "
        "is in the store but not in the audit log: inserted after the fact",
        "audit log position 5 is missing (next is 6)",
        "position 6: previous hash does not chain to position 5",
        "position 9: previous hash does not chain to position 8",
        "position 9: event",  # its hash no longer matches either: it covers the previous hash
    )


def test_changing_a_read_model_row_is_detected(app, history, container, settings):
    with container.engine.begin() as conn:
        changed = conn.execute(
            text(
                f'UPDATE "{settings.database_schema}".allocations_view '
                "SET payout_amount = payout_amount + 1 "
                "WHERE allocation_id = "
                f'(SELECT min(allocation_id) FROM "{settings.database_schema}".allocations_view)'
            )
        )
        assert changed.rowcount == 1
    out = assert_breach(app, "read model payouts: table allocations_view differs from a fresh rebuild")
    assert "changed in the event store" not in out and "deleted" not in out


@both_backends
@pytest.mark.parametrize("batch", [7, 10_000])
def test_audit_settlement_recomputes_with_no_difference(app, history, batch, monkeypatch):
    monkeypatch.setattr(limits, "REPLAY_BATCH", batch)  # 7: the books page out between batches
    runner = app.test_cli_runner()
    for settlement in [*history["first"], history["second"]]:
        result = runner.invoke(args=["audit", "settlement", settlement["id"]])
        assert result.exit_code == 0, output(result)
        assert "no difference" in result.output
        assert f"paid     {settlement['total_payout_amount']}" in result.output
        assert f"expected {settlement['total_payout_amount']}" in result.output
    unknown = runner.invoke(args=["audit", "settlement", "00000000-0000-0000-0000-000000000000"])
    assert unknown.exit_code != 0 and "no settlement" in output(unknown)


def test_audit_settlement_shows_what_an_edited_history_would_have_paid(
    app, history, container, settings, monkeypatch
):
    monkeypatch.setattr(limits, "REPLAY_BATCH", 7)
    [first] = [s for s in history["first"] if s["currency"] == "EUR"]
    [row] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":4000' in r.state
    ]
    with container.engine.begin() as conn:  # the EUR allocation settled first: its payout, 3600, now 3601
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"payout_amount":3600', "new": '"payout_amount":3601'},
        )
    result = app.test_cli_runner().invoke(args=["audit", "settlement", first["id"]])
    assert result.exit_code == 1, output(result)
    assert f"paid     {first['total_payout_amount']}" in result.output
    assert f"expected {first['total_payout_amount'] + 1}" in result.output
    assert f"'allocation_id': '{row.originator_id}', 'expected': 3601, 'paid': 3600" in result.output


def test_editing_the_audit_logs_copy_of_an_event_is_detected(app, history, container, settings):
    with container.engine.begin() as conn:
        changed = conn.execute(
            text(
                f'UPDATE "{settings.database_schema}".audit_log SET data = replace(data, :old, :new) '
                f'WHERE position = (SELECT min(position) FROM "{settings.database_schema}".audit_log '
                f"WHERE type = 'Payment.Initiated')"
            ),
            {"old": '"amount":', "new": '"amount":1'},
        )
        assert changed.rowcount == 1
    out = assert_breach(
        app, "the audit log's copy of event", "(Payment.Initiated) differs from the event store"
    )
    assert "changed in the event store" not in out


@both_backends
def test_rebuilding_every_read_model_gives_the_same_rows_and_still_verifies(app, history, container):
    def rows() -> dict[str, list[tuple]]:
        with container.engine.connect() as conn:
            return {
                table.name: sorted(tuple(row) for row in conn.execute(table.select()))
                for cls in PROJECTIONS.values()
                for table in cls.tables
            }

    before = rows()
    assert before["orders_view"] and before["audit_log"] and before["invoices_view"]
    result = app.test_cli_runner().invoke(args=["projections", "rebuild"])
    assert result.exit_code == 0, output(result)
    assert rows() == before
    again = verify(app)
    assert again.exit_code == 0, output(again)


@both_backends
def test_an_admin_requests_a_verification_and_an_auditor_reads_the_verdict(
    app, client, history, container, admin, make_key
):
    auditor = make_key("auditor")
    assert_problem(client.get("/api/audit/verifications/latest", headers=auditor), 404)
    requested = client.post("/api/audit/verifications", headers=admin)
    assert requested.status_code == 202, requested.get_data(as_text=True)
    if container.settings.redis_url:  # PostgreSQL + Redis: queued for a real RQ worker
        assert requested.json["status"] == "queued" and requested.json["ok"] is None
        run_worker_burst(container)
    verdict = client.get(f"/api/audit/verifications/{requested.json['id']}", headers=auditor)
    assert verdict.status_code == 200
    assert verdict.json["status"] == "done" and verdict.json["ok"] is True, verdict.json
    assert verdict.json["breaches"] == [] and verdict.json["error"] is None and verdict.json["finished_at"]
    assert verdict.json["checked"]["orders"] == 6 and verdict.json["checked"]["settlements"] == 3
    # The verdict names the position and hash of the log it covered: the auditor can pin them.
    [covered] = client.get(
        f"/api/audit/events?after={verdict.json['head_position'] - 1}&limit=1", headers=auditor
    ).json["events"]
    assert covered["hash"] == verdict.json["head_hash"]
    assert covered["stream_id"] == requested.json["id"] and covered["type"] == "Verification.Started"
    assert client.get("/api/audit/verifications/latest", headers=auditor).json == verdict.json
    assert_problem(
        client.get("/api/audit/verifications/00000000-0000-0000-0000-000000000000", headers=auditor), 404
    )
    assert_problem(client.post("/api/audit/verifications", headers=auditor), 403)


def test_a_verification_through_the_api_names_a_breach(client, history, container, settings, admin):
    [row] = [
        r for r in stored(container, settings, "Allocation.Created") if '"subtotal_amount":2500' in r.state
    ]
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"subtotal_amount":2500', "new": '"subtotal_amount":2600'},
        )
    requested = client.post("/api/audit/verifications", headers=admin)
    assert requested.status_code == 202
    run_worker_burst(container)
    verdict = client.get(f"/api/audit/verifications/{requested.json['id']}", headers=admin).json
    assert verdict["status"] == "done" and verdict["ok"] is False
    assert any(
        f"event {row.originator_id} v1 (Allocation.Created) was changed in the event store" in breach
        for breach in verdict["breaches"]
    ), verdict["breaches"]


@both_backends
def test_a_verification_that_cannot_finish_says_so_and_can_run_again(
    client, history, container, admin, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("postgresql://user:secret@db/tally is unreachable")

    monkeypatch.setattr(read_models, "verify", broken)
    requested = client.post("/api/audit/verifications", headers=admin)
    assert requested.status_code == 202
    with pytest.raises(AssertionError, match="RuntimeError"):  # the job failed, and is not retried
        run_worker_burst(container)
    failed = client.get(f"/api/audit/verifications/{requested.json['id']}", headers=admin).json
    assert failed["status"] == "failed" and failed["ok"] is None and failed["finished_at"]
    assert failed["error"] == "RuntimeError (see the worker's log)"  # nothing of the message
    inline = container.marketplace.request_verification({"actor_id": "admin", "actor_role": "admin"})
    inline_jobs = InlineJobs({"verification": lambda vid: execute_verification(container, vid)})
    inline_jobs.verification_requested(str(inline.id))  # embedded mode: the request still succeeds
    assert container.marketplace.get_verification(inline.id).status == "failed"

    monkeypatch.undo()
    execute_verification(container, requested.json["id"])  # a retry
    again = client.get(f"/api/audit/verifications/{requested.json['id']}", headers=admin).json
    assert again["status"] == "done" and again["ok"] is True and again["error"] is None


def test_the_daily_verification_is_scheduled_and_leaves_a_verdict(client, history, container, admin):
    from workers import jobs
    from workers.context import install
    from workers.worker import build_cron

    install(container)
    [daily] = [
        job for job in build_cron(container).get_jobs() if job.func_name == "workers.jobs.verify_on_schedule"
    ]
    assert daily.cron == "30 3 * * *"
    verification_id = jobs.verify_on_schedule()
    latest = client.get("/api/audit/verifications/latest", headers=admin).json
    assert latest["id"] == verification_id and latest["status"] == "done" and latest["ok"] is True
    stream = client.get(f"/api/audit/streams/{verification_id}", headers=admin).json
    assert [e["type"] for e in stream["events"]] == [
        "Verification.Requested",
        "Verification.Started",
        "Verification.Completed",
    ]
    assert stream["events"][0]["data"]["cause"]["actor_role"] == "system"
    # A doubled tick the same day finds the day's verification and runs nothing more.
    assert jobs.verify_on_schedule() == verification_id
    assert client.get(f"/api/audit/streams/{verification_id}", headers=admin).json["version"] == 3
