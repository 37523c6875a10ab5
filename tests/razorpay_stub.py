"""A small local Razorpay stand-in: the subset of Razorpay's REST API that tally uses, for the real
``razorpay`` SDK pointed at it through ``RAZORPAY_API_BASE``.

Checked against Razorpay's API reference: HTTP Basic auth with the key id and secret (a wrong key
is a 401 ``BAD_REQUEST_ERROR`` "Authentication failed"); JSON bodies; errors as
``{"error": {"code", "description", "source", "step", "reason", "metadata", "field"}}``;
collections as ``{"entity": "collection", "count", "items"}`` newest first with ``count`` (at
most 100) / ``skip`` / ``from`` paging. Orders: ``amount`` in paise (at least 100), ``currency``,
``receipt`` (at most 40 characters, filterable), ``notes``; statuses created → attempted → paid.
Payments (made by ``pay``, standing in for Checkout in the browser): authorized → captured, or
failed; a capture needs the payment's amount and currency. Refunds: ``POST
/payments/:id/refund`` with ``X-Refund-Idempotency`` (the same key and body replay the refund,
another body is a 400), never more than is left, status pending → processed | failed (see
``settle_refund``). Route: ``POST /payments/:id/transfers`` from a captured payment to a linked
account ``acc_…`` (``acc_fail…`` is refused), never more than the payment has left to transfer;
reversals never more than the transfer has unreversed, and they return the money to the platform's
balance, not to the payment's transferable amount (the reference does not say they do; the
stand-in takes the stricter reading), so a line paid again after a reversal is a direct transfer
(``POST /transfers``) from the balance. Webhooks are signed like Razorpay's
(hex HMAC-SHA256 of the body) and carry ``X-Razorpay-Event-Id``. Faults: a 5xx, or a request done
and then its connection dropped (a lost answer / timeout).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class RazorpayError(Exception):
    def __init__(
        self, status: int, description: str, code: str = "BAD_REQUEST_ERROR", field: str | None = None
    ):
        super().__init__(description)
        self.status = status
        self.body = {
            "error": {
                "code": code,
                "description": description,
                "source": "business" if status < 500 else "internal",
                "step": None,
                "reason": None,
                "metadata": {},
                "field": field,
            }
        }


def sign(secret: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


class RazorpayStub:
    """Start with ``with RazorpayStub() as stub:``; point the SDK at ``stub.url``."""

    def __init__(
        self, key_id: str = "rzp_test_x", key_secret: str = "rzp_secret_x", webhook_secret: str = "rzp_wh_x"
    ):
        self.key_id, self.key_secret, self.webhook_secret = key_id, key_secret, webhook_secret
        self.lock = threading.RLock()
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.reversals: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[list[Any]] = []  # [method, path prefix, kind, times]
        self.refund_status = "processed"  # what a new refund starts as (pending: settled later)
        self.refuse_transfers_from: set[str] = set()  # payment ids whose transfers are refused
        self._refund_keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (body, refund id)
        self._seq = itertools.count(1)
        self._rank: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="razorpay-stub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RazorpayStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- faults and helpers for tests ------------------------------------------------------

    def fail_next(self, method: str, path: str, times: int = 1) -> None:
        """Answer the next matching requests with a 500 SERVER_ERROR, doing nothing."""
        self.faults.append([method, path, "fail", times])

    def drop_next(self, method: str, path: str, times: int = 1) -> None:
        """Do the next matching request, then close the connection without answering."""
        self.faults.append([method, path, "drop", times])

    def _id(self, prefix: str) -> str:
        token = f"{prefix}_{secrets.token_hex(7)}"
        self._rank[token] = next(self._seq)
        return token

    def pay(self, order_id: str, *, capture: bool = True, fail: str | None = None, amount: int | None = None):
        """What Razorpay Checkout does in the browser: a payment of the order, authorized (and
        captured when ``capture``), or failed with ``fail`` as its error reason. ``amount`` other than
        the order's stands for a tampered payment. Returns (payment, the Checkout answer)."""
        with self.lock:
            order = self.orders[order_id]
            payment = {
                "id": self._id("pay"),
                "entity": "payment",
                "amount": order["amount"] if amount is None else amount,
                "currency": order["currency"],
                "status": "failed" if fail else "captured" if capture else "authorized",
                "order_id": order_id,
                "method": "card",
                "amount_refunded": 0,
                "amount_transferred": 0,
                "captured": bool(capture and not fail),
                "error_code": "BAD_REQUEST_ERROR" if fail else None,
                "error_reason": fail,
                "notes": [],
                "created_at": int(time.time()),
            }
            self.payments[payment["id"]] = payment
            order["attempts"] += 1
            order["status"] = "paid" if payment["captured"] else "attempted"
            if payment["captured"]:
                order["amount_paid"], order["amount_due"] = order["amount"], 0
            answer = {
                "razorpay_payment_id": payment["id"],
                "razorpay_order_id": order_id,
                "razorpay_signature": sign(self.key_secret, f"{order_id}|{payment['id']}"),
            }
            return copy.deepcopy(payment), answer

    def settle_refund(self, refund_id: str, processed: bool) -> dict[str, Any]:
        """A pending refund is processed, or fails (its amount goes back to the payment)."""
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"] = "processed" if processed else "failed"
            if not processed:
                self.payments[refund["payment_id"]]["amount_refunded"] -= refund["amount"]
            return copy.deepcopy(refund)

    def event(self, kind: str, **entities: dict[str, Any]) -> dict[str, Any]:
        return {
            "entity": "event",
            "account_id": "acc_platform",
            "event": kind,
            "contains": list(entities),
            "payload": {name: {"entity": copy.deepcopy(obj)} for name, obj in entities.items()},
            "created_at": int(time.time()),
        }

    def deliver(
        self, client: Any, event: dict[str, Any], event_id: str | None = None, signature: str | None = None
    ):
        """POST the signed event to the app's webhook endpoint (a Flask test client)."""
        body = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature or sign(self.webhook_secret, body),
            "X-Razorpay-Event-Id": event_id or self._id("evt"),
        }
        return client.post("/api/webhooks/razorpay", data=body, headers=headers)

    def posts(self, path_pattern: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r for r in self.requests if r["method"] == "POST" and re.fullmatch(path_pattern, r["path"])
            ]

    # ---- the API ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any], query: dict[str, str], headers: Any):
        of = self._of
        pays, rfnds, trfs, rvs = self.payments, self.refunds, self.transfers, self.reversals
        routes = [
            ("POST", r"/v1/orders", lambda: self.order(body)),
            ("GET", r"/v1/orders", lambda: self._collection(self.orders, query, "receipt")),
            ("GET", r"/v1/orders/(order_\w+)", lambda oid: self._get(self.orders, oid)),
            ("GET", r"/v1/orders/(order_\w+)/payments", lambda oid: of(pays, "order_id", oid, query)),
            ("GET", r"/v1/payments/(pay_\w+)", lambda pid: self._get(self.payments, pid)),
            ("POST", r"/v1/payments/(pay_\w+)/capture", lambda pid: self._capture(pid, body)),
            ("POST", r"/v1/payments/(pay_\w+)/refund", lambda pid: self._refund(pid, body, headers)),
            ("GET", r"/v1/payments/(pay_\w+)/refunds", lambda pid: of(rfnds, "payment_id", pid, query)),
            ("GET", r"/v1/refunds", lambda: self._collection(self.refunds, query)),
            ("POST", r"/v1/payments/(pay_\w+)/transfers", lambda pid: self._transfer(pid, body)),
            ("GET", r"/v1/payments/(pay_\w+)/transfers", lambda pid: of(trfs, "source", pid, query)),
            ("GET", r"/v1/transfers", lambda: self._collection(self.transfers, query)),
            ("POST", r"/v1/transfers", lambda: self._direct_transfer(body)),
            ("POST", r"/v1/transfers/(trf_\w+)/reversals", lambda tid: self._reverse(tid, body)),
            ("GET", r"/v1/transfers/(trf_\w+)/reversals", lambda t: of(rvs, "transfer_id", t, query)),
        ]  # fmt: skip
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return action(*match.groups())
        raise RazorpayError(404, "The requested URL was not found on the server.")

    def _get(self, objects: dict[str, dict[str, Any]], object_id: str) -> dict[str, Any]:
        if object_id not in objects:
            raise RazorpayError(400, "The id provided does not exist", field="id")
        return copy.deepcopy(objects[object_id])

    def _collection(self, objects: dict[str, dict[str, Any]], query: dict[str, str], *filters: str):
        count = int(query.get("count", 10))
        if not 1 <= count <= 100:
            raise RazorpayError(400, "The count must be between 1 and 100.", field="count")
        skip, since = int(query.get("skip", 0)), int(query.get("from", 0))
        items = [
            o for o in objects.values()
            if o["created_at"] >= since and all(o.get(f) == query[f] for f in filters if f in query)
        ]  # fmt: skip
        items.sort(key=lambda o: self._rank[o["id"]], reverse=True)
        page = copy.deepcopy(items[skip : skip + count])
        return {"entity": "collection", "count": len(page), "items": page}

    def _of(self, objects: dict[str, dict[str, Any]], field: str, value: str, query: dict[str, str]):
        return self._collection({k: o for k, o in objects.items() if o.get(field) == value}, query)

    @staticmethod
    def _amount(body: dict[str, Any], minimum: int = 1) -> int:
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise RazorpayError(400, "The amount must be an integer.", field="amount")
        if amount < minimum:
            raise RazorpayError(400, f"The amount must be atleast INR {minimum / 100:.2f}", field="amount")
        return amount

    def order(self, body: dict[str, Any]) -> dict[str, Any]:
        amount = self._amount(body, 100)
        if body.get("currency") != "INR":
            raise RazorpayError(400, "Currency is not supported", field="currency")
        receipt = body.get("receipt")
        if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
            raise RazorpayError(400, "The receipt may not be greater than 40 characters.", field="receipt")
        order = {
            "id": self._id("order"), "entity": "order", "amount": amount, "amount_paid": 0,
            "amount_due": amount, "currency": "INR", "receipt": receipt, "offer_id": None,
            "status": "created", "attempts": 0, "notes": body.get("notes") or [],
            "created_at": int(time.time()),
        }  # fmt: skip
        self.orders[order["id"]] = order
        return copy.deepcopy(order)

    def _capture(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise RazorpayError(400, "The id provided does not exist", field="id")
        if payment["status"] != "authorized":
            raise RazorpayError(400, "This payment has already been captured")
        if self._amount(body) != payment["amount"] or body.get("currency") != payment["currency"]:
            raise RazorpayError(400, "Capture amount must be equal to the amount authorized", field="amount")
        payment["status"], payment["captured"] = "captured", True
        order = self.orders[payment["order_id"]]
        order["status"], order["amount_paid"], order["amount_due"] = "paid", order["amount"], 0
        return copy.deepcopy(payment)

    def _refund(self, payment_id: str, body: dict[str, Any], headers: Any) -> dict[str, Any]:
        key = headers.get("X-Refund-Idempotency")
        fingerprint = json.dumps([payment_id, body], sort_keys=True)
        if key is not None:
            if len(key) < 10 or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
                raise RazorpayError(400, "Invalid idempotency key", field="X-Refund-Idempotency")
            if key in self._refund_keys:
                first, refund_id = self._refund_keys[key]
                if first != fingerprint:
                    raise RazorpayError(400, "Idempotency key reused with a different request body")
                return copy.deepcopy(self.refunds[refund_id])
        payment = self.payments.get(payment_id)
        if payment is None or payment["status"] not in ("captured", "refunded"):
            raise RazorpayError(400, "The payment has not been captured")
        amount = self._amount(body)
        if amount > payment["amount"] - payment["amount_refunded"]:
            raise RazorpayError(
                400, "The refund amount provided is greater than amount captured", field="amount"
            )
        refund = {
            "id": self._id("rfnd"), "entity": "refund", "amount": amount, "currency": payment["currency"],
            "payment_id": payment_id, "notes": body.get("notes") or [], "receipt": body.get("receipt"),
            "status": self.refund_status, "speed_requested": body.get("speed", "normal"),
            "speed_processed": "normal", "created_at": int(time.time()),
        }  # fmt: skip
        payment["amount_refunded"] += amount
        self.refunds[refund["id"]] = refund
        if key is not None:
            self._refund_keys[key] = (fingerprint, refund["id"])
        return copy.deepcopy(refund)

    def _transfer(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payment = self.payments.get(payment_id)
        if payment is None or payment["status"] not in ("captured", "refunded"):
            raise RazorpayError(400, "Transfers can be created only for captured payments")
        if payment_id in self.refuse_transfers_from:
            raise RazorpayError(400, "Transfer not allowed: the payment is under review")
        made = []
        for spec in body.get("transfers") or []:
            account = spec.get("account")
            if (
                not isinstance(account, str)
                or not account.startswith("acc_")
                or account.startswith("acc_fail")
            ):
                raise RazorpayError(
                    400, "The account id is invalid or the account is not activated", field="account"
                )
            amount = self._amount(spec)
            if spec.get("currency") != payment["currency"]:
                raise RazorpayError(400, "Currency must match the payment's", field="currency")
            if amount > payment["amount"] - payment["amount_transferred"]:
                raise RazorpayError(
                    400, "Transfer amount exceeds the amount available for transfer", field="amount"
                )
            payment["amount_transferred"] += amount
            transfer = {
                "id": self._id("trf"), "entity": "transfer", "status": "processed", "source": payment_id,
                "recipient": account, "amount": amount, "currency": spec["currency"], "amount_reversed": 0,
                "notes": spec.get("notes") or [], "on_hold": bool(spec.get("on_hold")),
                "created_at": int(time.time()),
            }  # fmt: skip
            self.transfers[transfer["id"]] = transfer
            made.append(copy.deepcopy(transfer))
        return {"entity": "collection", "count": len(made), "items": made}

    def _direct_transfer(self, body: dict[str, Any]) -> dict[str, Any]:
        """A direct transfer from the platform's balance (the stand-in's balance never runs dry)."""
        account = body.get("account")
        if not isinstance(account, str) or not account.startswith("acc_") or account.startswith("acc_fail"):
            raise RazorpayError(
                400, "The account id is invalid or the account is not activated", field="account"
            )
        if body.get("currency") != "INR":
            raise RazorpayError(400, "Currency is not supported", field="currency")
        transfer = {
            "id": self._id("trf"), "entity": "transfer", "status": "processed", "source": "acc_platform",
            "recipient": account, "amount": self._amount(body), "currency": "INR", "amount_reversed": 0,
            "notes": body.get("notes") or [], "on_hold": False, "created_at": int(time.time()),
        }  # fmt: skip
        self.transfers[transfer["id"]] = transfer
        return copy.deepcopy(transfer)

    def _reverse(self, transfer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise RazorpayError(400, "The id provided does not exist", field="id")
        amount = body.get("amount", transfer["amount"] - transfer["amount_reversed"])
        if not isinstance(amount, int) or not 0 < amount <= transfer["amount"] - transfer["amount_reversed"]:
            raise RazorpayError(400, "The reversal amount exceeds the unreversed amount", field="amount")
        transfer["amount_reversed"] += amount
        reversal = {
            "id": self._id("rvrsl"), "entity": "reversal", "transfer_id": transfer_id, "amount": amount,
            "currency": transfer["currency"], "notes": body.get("notes") or [],
            "created_at": int(time.time()),
        }  # fmt: skip
        self.reversals[reversal["id"]] = reversal
        return copy.deepcopy(reversal)

    # ---- HTTP ------------------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault[0] == method and re.fullmatch(fault[1], path) and fault[3] > 0:
                    fault[3] -= 1
                    return str(fault[2])
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self
        expected_auth = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                query = dict(parse_qsl(parts.query))
                with stub.lock:
                    stub.requests.append({"method": method, "path": parts.path, "raw": raw, "query": query,
                                          "headers": dict(self.headers)})  # fmt: skip
                if self.headers.get("Authorization") != expected_auth:
                    self._answer(401, RazorpayError(401, "Authentication failed").body)
                    return
                fault = stub._take_fault(method, parts.path)
                if fault == "fail":
                    self._answer(500, RazorpayError(500, "We are facing some trouble", "SERVER_ERROR").body)
                    return
                try:
                    body = json.loads(raw) if raw else {}
                    if not isinstance(body, dict):
                        raise RazorpayError(400, "The request body must be a JSON object")
                    with stub.lock:
                        status, answer = 200, stub.handle(method, parts.path, body, query, self.headers)
                except RazorpayError as error:
                    status, answer = error.status, error.body
                except ValueError:
                    status, answer = 400, RazorpayError(400, "The request body is not valid JSON").body
                if fault == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def razorpay_changes(stub: RazorpayStub, **extra: Any) -> dict[str, Any]:
    """Settings changes that point tally's Razorpay provider at the stub (for make_settings)."""
    return {
        "payment_provider": "razorpay",
        "razorpay_key_id": stub.key_id,
        "razorpay_key_secret": stub.key_secret,
        "razorpay_webhook_secret": stub.webhook_secret,
        "razorpay_api_base": stub.url,
        **extra,
    }
