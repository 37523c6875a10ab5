"""A small checkout load of retrying clients, recording every answer (or its absence).

Each client opens a session and confirms it, each step under an Idempotency-Key of its own, and
retries that step with the same key after a 503, a 409 that says "retry" (Retry-After), or a
connection cut (a killed web worker), as a careful client does. Anything else ends the checkout.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ANSWER_TIMEOUT = 15.0  # the client's own limit; the test asserts a much tighter bound on answers
GIVE_UP_SECONDS = 60.0


@dataclass
class Answer:
    started: float
    finished: float
    step: str
    status: int | str  # an HTTP status, or "cut" (no answer: connection refused or reset)
    body: dict[str, Any] | None = None
    retry_after: str | None = None


@dataclass
class Checkout:
    customer: str
    session_id: str | None = None
    order_id: str | None = None
    outcome: str = "unfinished"  # placed | failed: <why>
    started: float = 0.0
    finished: float = 0.0
    answers: list[Answer] = field(default_factory=list)


def _cart(customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "currency": "USD",
        "items": [
            {"seller_id": "s-1", "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2},
            {"seller_id": "s-2", "sku": "tee", "description": "T-shirt", "unit_amount": 1999, "quantity": 1},
        ],
        "delivery_address": {
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "1",
            "country": "US",
        },
    }


class Load:
    """``clients`` threads doing checkouts against 127.0.0.1:``port`` until stopped."""

    def __init__(self, port: int, keys: dict[str, str]) -> None:
        self.port = port
        self.keys = keys  # customer id -> API key
        self.checkouts: list[Checkout] = []
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.in_flight = 0
        self._threads = [threading.Thread(target=self._client, args=(c,), daemon=True) for c in keys]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = GIVE_UP_SECONDS + 20) -> None:
        """Stop starting checkouts; wait for those under way to finish (or give up)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _call(self, step: str, method: str, path: str, key: str, body: dict[str, Any], idem: str) -> Answer:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT)
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": idem,
            "Connection": "close",
        }
        with self._lock:
            self.in_flight += 1
        try:
            conn.request(method, path, body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            raw = response.read()
            answer = Answer(started, time.monotonic(), step, response.status)
            answer.retry_after = response.getheader("Retry-After")
            try:
                answer.body = json.loads(raw) if raw else None
            except ValueError:
                answer.body = {"unparsable": raw[:200].decode("latin-1")}
        except (OSError, http.client.HTTPException):
            answer = Answer(started, time.monotonic(), step, "cut")
        finally:
            conn.close()
        with self._lock:
            self.in_flight -= 1
            self.answers.append(answer)
        return answer

    def _step(
        self, checkout: Checkout, step: str, path: str, body: dict[str, Any], want: int
    ) -> Answer | None:
        idem = f"{step}-{uuid.uuid4().hex}"
        key = self.keys[checkout.customer]
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            answer = self._call(step, "POST", path, key, body, idem)
            checkout.answers.append(answer)
            if answer.status == want:
                return answer
            retryable = answer.status in ("cut", 503) or (answer.status == 409 and answer.retry_after)
            if not retryable:
                checkout.outcome = f"failed: {step} answered {answer.status} {answer.body}"
                return None
            time.sleep(min(float(answer.retry_after or 0.5), 1.0))
        checkout.outcome = f"failed: {step} gave up after {GIVE_UP_SECONDS} s"
        return None

    def _client(self, customer: str) -> None:
        while not self._stop.is_set():
            checkout = Checkout(customer, started=time.monotonic())
            with self._lock:
                self.checkouts.append(checkout)
            opened = self._step(checkout, "open", "/api/checkout/sessions", _cart(customer), 201)
            if opened is not None and opened.body is not None:
                checkout.session_id = opened.body["id"]
                path = f"/api/checkout/sessions/{checkout.session_id}/confirm"
                paid = self._step(checkout, "confirm", path, {"payment_method": "pm_card_visa"}, 201)
                if paid is not None and paid.body is not None:
                    checkout.order_id = paid.body["order"]["id"]
                    checkout.outcome = "placed"
            checkout.finished = time.monotonic()
            time.sleep(0.05)

    def wait_for_in_flight(self, count: int, timeout: float = 5.0) -> None:
        """Return once at least ``count`` requests are under way (or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.in_flight < count and time.monotonic() < deadline:
            time.sleep(0.001)

    def statuses(self, start: float, end: float) -> Counter[str]:
        """Answers that started in [start, end), counted by status."""
        with self._lock:
            return Counter(str(a.status) for a in self.answers if start <= a.started < end)

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 2xx answer started after it."""
        with self._lock:
            done = [a.finished for a in self.answers if a.started >= moment and str(a.status).startswith("2")]
        return min(done) - moment if done else None
