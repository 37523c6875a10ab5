"""Background jobs on PostgreSQL + Redis: the hourly session clean-up, and seller notifications
emailed through a real (local) SMTP server exactly once each, even with two senders racing."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections import Counter

import pytest
from freezegun import freeze_time

from app import create_app
from app.adapters.checkout_sessions import REMEMBER_EXPIRED_SECONDS
from app.bootstrap import Container
from app.commands.notifications import deliver_notifications
from projections.runner import PROJECTIONS, catch_up
from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem
from tests.integration.read_side_helpers import item, order_for, run_worker_burst

pytestmark = pytest.mark.integration


# ---- session clean-up ---------------------------------------------------------------------------


def test_cleanup_job_forgets_sessions_expired_longer_than_the_retention(make_settings):
    from workers import jobs
    from workers.context import install

    settings = make_settings("pg", checkout_session_ttl_seconds=1)
    container = Container(settings)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    client = app.test_client()
    try:
        from app.auth import create_key

        customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
        created = {}
        for label, moment in (("old", "2026-10-01 12:00:00"), ("recent", "2026-10-07 12:00:00")):
            with freeze_time(moment):
                response = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer)
                assert response.status_code == 201, response.get_data(as_text=True)
                created[label] = response.json["id"]
        prefix = settings.key_prefix
        redis = container.redis
        redis.set(f"{prefix}:checkout-lock:{created['old']}", "stale")  # a lock its confirm never released
        redis.set(f"{prefix}:checkout-lock:{created['recent']}", "held")
        time.sleep(1.2)  # Redis drops both sessions (TTL 1 s); only the expiry index remembers them

        with freeze_time("2026-10-08 13:00:00"):  # old expired > 7 days ago, recent 1 day ago
            for session_id in created.values():
                assert_problem(client.get(f"/api/checkout/sessions/{session_id}", headers=customer), 410)
            install(container)
            assert jobs.cleanup_expired_sessions() == 1
            assert_problem(client.get(f"/api/checkout/sessions/{created['old']}", headers=customer), 404)
            assert_problem(client.get(f"/api/checkout/sessions/{created['recent']}", headers=customer), 410)
            assert redis.get(f"{prefix}:checkout-lock:{created['old']}") is None
            assert redis.get(f"{prefix}:checkout-lock:{created['recent']}") == b"held"
            assert jobs.cleanup_expired_sessions() == 0  # idempotent

        # forget_expired takes the clock as an argument too.
        index = f"{prefix}:checkout-expiry"
        recent_expiry = redis.zscore(index, created["recent"])
        assert container.sessions.forget_expired(now=recent_expiry + REMEMBER_EXPIRED_SECONDS - 1) == 0
        assert container.sessions.forget_expired(now=recent_expiry + REMEMBER_EXPIRED_SECONDS + 1) == 1
        assert redis.zcard(index) == 0
    finally:
        container.close()


# ---- notifications by email ---------------------------------------------------------------------


class Sink:
    """Collects every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def ids(self) -> Counter:
        with self.lock:
            return Counter(m["X-Tally-Notification-Id"] for m in self.messages)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    controller_module = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is a test extra")
    sink = Sink()
    port = _free_port()
    controller = controller_module.Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def test_notifications_are_emailed_once_each_even_with_two_senders(make_settings, smtp):
    sink, port = smtp
    settings = make_settings("pg", smtp_url=f"smtp://127.0.0.1:{port}")
    container = Container(settings)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    client = app.test_client()
    try:
        from app.auth import create_key

        admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
        customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
        seller = {"Authorization": f"Bearer {create_key(container.engine, 'seller', 's-1')[1]}"}
        first = order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 1000)])
        order_for(client, customer, "c-1", [item("s-1", 1200)])
        refund = client.post(
            f"/api/orders/{first['order']['id']}/refunds",
            json={"amount": 500, "seller_id": "s-1"},
            headers=admin,
        )
        assert refund.status_code == 201
        catch_up(PROJECTIONS["notifications"](), container.marketplace, container.engine)
        before = client.get("/api/sellers/s-1/notifications", headers=seller).json["notifications"]
        assert Counter(n["kind"] for n in before) == Counter({"order_placed": 2, "order_refunded": 1})
        assert all(n["sent_at"] is None for n in before)

        # Two senders race over the same four notifications (three for s-1, one for s-2).
        barrier = threading.Barrier(2)
        sent: list[int] = []
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                barrier.wait()
                sent.append(deliver_notifications(container))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert sum(sent) == 4, sent
        assert sink.ids() == Counter({n["id"]: 1 for n in before} | {_only_id(client, admin, "s-2"): 1})
        assert deliver_notifications(container) == 0

        after = client.get("/api/sellers/s-1/notifications", headers=seller).json["notifications"]
        assert [n["id"] for n in after] == [n["id"] for n in before]
        assert all(n["sent_at"] and n["sent_at"].endswith("Z") for n in after), after
        to_s1 = [m for m in sink.messages if m["To"] == "s-1@sellers.invalid"]
        assert len(to_s1) == 3
        assert sorted(m["Subject"].split(":")[0] for m in to_s1) == [
            "New order to ship",
            "New order to ship",
            "Refund of $5.00 on order " + first["order"]["id"].split(":")[0],
        ]

        # Through the workers: a new order -> catch-up job -> delivery job -> one email per seller.
        order_for(client, customer, "c-1", [item("s-1", 900)])
        run_worker_burst(container)
        run_worker_burst(container)  # a second round finds nothing left to send
        ids = sink.ids()
        assert sum(ids.values()) == 5 and set(ids.values()) == {1}, ids
        latest = client.get("/api/sellers/s-1/notifications", headers=seller).json["notifications"]
        assert len(latest) == 4 and all(n["sent_at"] for n in latest)
    finally:
        container.close()


def _only_id(client, admin, seller_id: str) -> str:
    [notification] = client.get(f"/api/sellers/{seller_id}/notifications", headers=admin).json[
        "notifications"
    ]
    return notification["id"]
