"""A small local Stripe stand-in: the subset of Stripe's REST API that tally uses.

An ``http.server`` on 127.0.0.1 (random port, in a thread) that the real SDK talks to through
``STRIPE_API_BASE``: form-encoded requests, JSON answers shaped like Stripe's, the
``Idempotency-Key`` semantics (one namespace of keys per account: the same key and parameters
replay the first response; the same key with other parameters, or on another endpoint, is an
``idempotency_error``; a request refused by validation saves nothing), the refusals Stripe makes
for the parameters tally sends (``amount`` and ``currency`` required, no default currency, the
minimum charge, amounts in the currencies Stripe takes only in steps of 10 or 100 (``AMOUNT_STEP``),
``confirm`` or nothing is charged, a ``return_url`` unless redirects are
disallowed, ``payment_intent`` or ``charge`` on a refund), the test payment methods, lists
with ``created[gte]`` / ``starting_after`` paging, refunds, transfers (an account id starting
``acct_fail`` is refused; without ``source_transaction`` only from the available balance, which
charges reach two days later on the stub's clock; with it, never more than the charge holds),
transfer reversals (never more than the transfer has unreversed;
``refuse_reversals`` refuses them all) and disputes. It builds signed webhook events from its
own objects and delivers them to the app. Faults can be planted: answer 5xx, process then drop the
connection, or process then answer late.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

API_VERSION = "2024-06-20"
SUCCEEDS = {
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_amex",
    "pm_card_visa_debit",
    "pm_card_bypassPending",
}
# Stripe's test card whose funds "are added directly to your available balance, bypassing your
# pending balance" (testing docs, "Available balance").
BYPASS_PENDING = "pm_card_bypassPending"
DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
}
REQUIRES_ACTION = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
DISPUTE_FEE = 1500


class StripeError(Exception):
    """An error answer: HTTP status plus Stripe's error object."""

    def __init__(
        self, status: int, type_: str, message: str, *, validation: bool = False, **fields: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.validation = validation  # refused before the endpoint ran: no idempotent result is saved
        self.body = {"error": {"type": type_, "message": message, **fields}}


@dataclass
class Fault:
    method: str
    path: str
    kind: str  # "fail" (answer 5xx, do nothing) | "drop" (do it, never answer) | "delay" (do it, answer late)
    times: int = 1
    status: int = 500
    seconds: float = 0.0


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation (``metadata[payment_id]=…``, ``created[gte]=…``) as nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid integer: {value}",
            param=name,
            code="parameter_invalid_integer",
        ) from None
    return number


def _required(params: dict[str, Any], name: str) -> Any:
    """Stripe's answer to a missing required parameter (before the endpoint runs)."""
    value = params.get(name)
    if value in (None, ""):
        raise StripeError(
            400,
            "invalid_request_error",
            f"Missing required param: {name}.",
            validation=True,
            param=name,
            code="parameter_missing",
        )
    return value


def _currency(params: dict[str, Any]) -> str:
    currency = _required(params, "currency")
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid currency: {currency}. Stripe currently supports these currencies: usd, eur, ...",
            validation=True,
            param="currency",
            code="invalid_currency",
        )
    return currency


# The smallest charge per currency, in minor units. The API reference (PaymentIntent ``amount``):
# "The minimum amount is $0.50 US or equivalent in charge currency"; docs.stripe.com/currencies
# lists each currency (GBP 0.30). Only these two were checked; any other currency is held to 50
# minor units, a stand-in for "the equivalent of $0.50".
MINIMUM_CHARGE = {"usd": 50, "gbp": 30}

# Amounts Stripe takes only in rounder steps (docs.stripe.com/currencies, "Three-decimal
# currencies": the API supports BHD JOD KWD OMR TND for Payment Intents, Refunds and Disputes, but
# "these API calls require the least-significant (last) digit to be 0 ... 5.124 KWD must be rounded
# to 5120 or 5130"; "Special cases": ISK amounts "must be evenly divisible by 100"). The error code is
# the one Stripe documents for ISK (support.stripe.com, "Deprecation of fractional ISK charges and
# refunds": 400 invalid_charge_amount_no_decimal_compatible); the docs give none for the dinars, so
# the stub answers them alike. MGA is zero-decimal at Stripe (whole ariary): any integer is one.
# The stub applies the rule to transfers and reversals too, the strict reading.
AMOUNT_STEP = {"bhd": 10, "jod": 10, "kwd": 10, "omr": 10, "tnd": 10, "isk": 100}


def _check_step(amount: int, currency: str) -> None:
    step = AMOUNT_STEP.get(currency, 1)
    if amount % step:
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid amount. Amounts in {currency.upper()} must be evenly divisible by {step}. "
            "See https://stripe.com/docs/currencies#special-cases for more information.",
            validation=True,
            param="amount",
            code="invalid_charge_amount_no_decimal_compatible",
        )


REDIRECTS_NEED_RETURN_URL = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically "
    "accept the payment methods enabled in the Dashboard, some of which may require a full page "
    "redirect to succeed. If you do not want to accept redirect-based payment methods, set "
    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` "
    "to `never` when creating Setup Intents and Payment Intents."
)


class StripeStub:
    """Start with ``with StripeStub() as stub:``; point the SDK at ``stub.url``."""

    def __init__(self, webhook_secret: str = "whsec_x", api_key: str = "sk_test_x") -> None:
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.lock = threading.RLock()
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.transfer_reversals: dict[str, dict[str, Any]] = {}
        self.refuse_reversals: str | None = None  # an error code: refuse every transfer reversal with it
        self.disputes: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        # one namespace of keys for the whole account, whatever the endpoint (as Stripe keeps them)
        self._idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._key_saved_at: dict[str, float] = {}
        self.clock = time.time  # the stub's own clock, for key pruning (tests move it)
        # Card funds reach the available balance after this long (two days, Stripe's usual US
        # schedule; the Balance object lists the rest as pending).
        self.funds_available_after = 2 * 24 * 3600
        self._seq = itertools.count(1)
        self._order: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="stripe-stub", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StripeStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- faults ------------------------------------------------------------------------

    def fail_next(self, method: str, path: str, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with a 5xx, doing nothing."""
        self.faults.append(Fault(method, path, "fail", times, status=status))

    def drop_next(self, method: str, path: str, times: int = 1) -> None:
        """Do the next matching request, then close the connection without answering (a timeout)."""
        self.faults.append(Fault(method, path, "drop", times))

    def fail_stored_next(self, method: str, path: str, status: int = 500, times: int = 1) -> None:
        """Answer the next matching requests with a 5xx after the endpoint began executing: nothing is
        done, and the 500 is saved under the request's idempotency key and replayed for it (Stripe:
        "Retries with the same key return the saved response, including 500 errors")."""
        self.faults.append(Fault(method, path, "fail_stored", times, status=status))

    def prune_keys(self, older_than_seconds: float = 24 * 3600) -> int:
        """Forget idempotency keys at least this old, as Stripe may after 24 hours ("We generate a new
        request if a key is reused after the original is pruned"); returns how many."""
        with self.lock:
            cutoff = self.clock() - older_than_seconds
            old = [key for key, at in self._key_saved_at.items() if at <= cutoff]
            for key in old:
                del self._idempotent[key], self._key_saved_at[key]
            return len(old)

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> dict[str, Any]:
        """A refund that was pending (or succeeded) fails later: its amount goes back to the charge
        (Refund object: status failed, failure_reason; charge.amount_refunded drops)."""
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"], refund["failure_reason"] = "failed", reason
            charge = self.charges.get(refund.get("charge") or "")
            if charge is not None:
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            return copy.deepcopy(refund)

    def delay_next(self, method: str, path: str, seconds: float, times: int = 1) -> None:
        """Do the next matching request, then answer only after ``seconds``."""
        self.faults.append(Fault(method, path, "delay", times, seconds=seconds))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and path.startswith(fault.path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # ---- ids and lists -------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        token = f"{prefix}_{secrets.token_hex(12)}"
        self._order[token] = next(self._seq)
        return token

    def _list(
        self,
        path: str,
        objects: dict[str, dict[str, Any]],
        params: dict[str, Any],
        keep: Any = lambda obj: True,
    ) -> dict[str, Any]:
        created = params.get("created") if isinstance(params.get("created"), dict) else {}
        gte = _int(created["gte"], "created[gte]") if "gte" in created else None
        limit = min(_int(params.get("limit", 10), "limit"), 100)
        items = [o for o in objects.values() if (gte is None or o["created"] >= gte) and keep(o)]
        items.sort(key=lambda o: (o["created"], self._order[o["id"]]), reverse=True)  # newest first
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {
            "object": "list",
            "url": path,
            "has_more": len(items) > limit,
            "data": copy.deepcopy(items[:limit]),
        }

    # ---- the API -------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        routes = [
            ("POST", r"/v1/payment_intents", self._create_intent),
            ("GET", r"/v1/payment_intents", lambda p: self._list("/v1/payment_intents", self.intents, p)),
            ("GET", r"/v1/payment_intents/(pi_\w+)", self._get(self.intents, "payment_intent")),
            ("POST", r"/v1/refunds", self._create_refund),
            ("GET", r"/v1/refunds", self._list_refunds),
            ("GET", r"/v1/refunds/(re_\w+)", self._get(self.refunds, "refund")),
            ("POST", r"/v1/transfers", self._create_transfer),
            ("GET", r"/v1/transfers", self._list_transfers),
            ("GET", r"/v1/transfers/(tr_\w+)/reversals", self._list_transfer_reversals),
            ("GET", r"/v1/transfers/(tr_\w+)", self._get(self.transfers, "transfer")),
            ("POST", r"/v1/transfers/(tr_\w+)/reversals", self._create_transfer_reversal),
        ]
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return 200, action(params, *match.groups())
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _get(self, objects: dict[str, dict[str, Any]], kind: str) -> Any:
        def get(params: dict[str, Any], object_id: str) -> dict[str, Any]:
            if object_id not in objects:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"No such {kind}: '{object_id}'",
                    code="resource_missing",
                    param="id",
                )
            return copy.deepcopy(objects[object_id])

        return get

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create, and with ``confirm=true`` also confirm: without it nothing is charged."""
        amount = _int(_required(params, "amount"), "amount")
        currency = _currency(params)
        _check_step(amount, currency)
        minimum = MINIMUM_CHARGE.get(currency, 50)
        if amount < minimum:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Amount must be at least {minimum} {currency} (minor units)",
                validation=True,
                param="amount",
                code="amount_too_small",
            )
        method = params.get("payment_method", "")
        if method and method not in SUCCEEDS | REQUIRES_ACTION | set(DECLINES):
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{method}'",
                code="resource_missing",
                param="payment_method",
            )
        confirm = params.get("confirm") == "true"
        automatic = params.get("automatic_payment_methods")
        automatic = automatic if isinstance(automatic, dict) else {}
        # Since API version 2023-08-16 automatic_payment_methods is on by default, redirects allowed.
        redirects_possible = (
            "payment_method_types" not in params
            and automatic.get("enabled", "true") == "true"
            and automatic.get("allow_redirects", "always") != "never"
        )
        if confirm and redirects_possible and not params.get("return_url"):
            raise StripeError(400, "invalid_request_error", REDIRECTS_NEED_RETURN_URL, validation=True)
        if confirm and not method:
            raise StripeError(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        intent_id = self._id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": "requires_confirmation" if method else "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "metadata": params.get("metadata", {}),
            "transfer_group": params.get("transfer_group"),
            "payment_method": method or None,
            "automatic_payment_methods": {"enabled": True, **automatic} if automatic else None,
            "created": int(time.time()),
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
            "livemode": False,
        }
        self.intents[intent_id] = intent
        if not confirm:
            return copy.deepcopy(intent)
        if method in SUCCEEDS:
            self._succeed(intent)
        elif method in REQUIRES_ACTION:
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk"}
        else:
            charge = self._charge(intent, "failed")
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": DECLINES[method],
                "message": "Your card was declined.",
                "charge": charge["id"],
            }
            intent.update(status="requires_payment_method", last_payment_error=error)
            raise StripeError(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=DECLINES[method],
                charge=charge["id"],
                payment_intent=copy.deepcopy(intent),
            )
        return copy.deepcopy(intent)

    def _charge(self, intent: dict[str, Any], status: str) -> dict[str, Any]:
        charge = {
            "id": self._id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": status,
            "refunded": False,
            "disputed": False,
            "created": int(time.time()),
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def _succeed(self, intent: dict[str, Any]) -> None:
        charge = self._charge(intent, "succeeded")
        if intent["payment_method"] == BYPASS_PENDING:
            charge["created"] -= self.funds_available_after
        intent.update(status="succeeded", amount_received=intent["amount"], next_action=None)

    def _intent_for(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("payment_intent") and not params.get("charge"):
            raise StripeError(
                400,
                "invalid_request_error",
                "One of the following params should be provided for this request: payment_intent or charge.",
                validation=True,
                code="parameter_missing",
            )
        intent_id = params.get("payment_intent")
        if not intent_id and params.get("charge") in self.charges:
            intent_id = self.charges[params["charge"]]["payment_intent"]
        if intent_id not in self.intents:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="payment_intent",
            )
        return self.intents[intent_id]

    def _create_refund(self, params: dict[str, Any], origin: str = "api") -> dict[str, Any]:
        intent = self._intent_for(params)
        if intent["status"] != "succeeded":
            raise StripeError(
                400,
                "invalid_request_error",
                "This PaymentIntent has not succeeded",
                code="payment_intent_unexpected_state",
            )
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        amount = _int(params.get("amount", left), "amount")
        _check_step(amount, charge["currency"])
        if charge["disputed"]:
            raise StripeError(400, "invalid_request_error", "This charge is disputed", code="charge_disputed")
        if amount <= 0 or amount > left:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
            "origin": origin,
        }
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return copy.deepcopy(refund)

    def _list_refunds(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        return self._list(
            "/v1/refunds",
            self.refunds,
            params,
            lambda r: intent_id is None or r["payment_intent"] == intent_id,
        )

    def _list_transfers(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /v1/transfers filters by transfer_group and destination (API reference, List all transfers)."""
        group, destination = params.get("transfer_group"), params.get("destination")
        return self._list(
            "/v1/transfers",
            self.transfers,
            params,
            lambda t: (
                (group is None or t["transfer_group"] == group)
                and (destination is None or t["destination"] == destination)
            ),
        )

    def _list_transfer_reversals(self, params: dict[str, Any], transfer_id: str) -> dict[str, Any]:
        """GET /v1/transfers/{id}/reversals: the reversals of one transfer."""
        if transfer_id not in self.transfers:
            raise StripeError(
                404, "invalid_request_error", f"No such transfer: '{transfer_id}'", code="resource_missing"
            )
        path = f"/v1/transfers/{transfer_id}/reversals"
        return self._list(path, self.transfer_reversals, params, lambda r: r["transfer"] == transfer_id)

    def _create_transfer(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _int(_required(params, "amount"), "amount")
        currency = _currency(params)
        _check_step(amount, currency)
        destination = _required(params, "destination")
        if not destination.startswith("acct_"):
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        if destination.startswith("acct_fail"):
            raise StripeError(
                400,
                "invalid_request_error",
                "The destination account needs updated information to receive transfers.",
                code="account_invalid",
                param="destination",
            )
        if amount <= 0:
            raise StripeError(400, "invalid_request_error", "Amount must be at least 1", param="amount")
        source = params.get("source_transaction")
        if source:
            self._check_source_transaction(source, amount, currency)
        elif amount > self.available_balance(currency):
            # "By default, a transfer request fails when the amount exceeds the platform's available
            # account balance" (Connect guide, separate charges and transfers).
            raise StripeError(
                400,
                "invalid_request_error",
                "You have insufficient available funds in your Stripe account.",
                code="balance_insufficient",
            )
        transfer = {
            "id": self._id("tr"),
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "currency": currency,
            "destination": destination,
            "transfer_group": params.get("transfer_group"),
            "source_transaction": source or None,
            "metadata": params.get("metadata", {}),
            "reversed": False,
            "created": int(time.time()),
        }
        self.transfers[transfer["id"]] = transfer
        return copy.deepcopy(transfer)

    def _check_source_transaction(self, source: str, amount: int, currency: str) -> None:
        """A transfer with ``source_transaction`` succeeds while the charge's funds are still pending
        (they move when they become available); it must name a succeeded charge in the transfer's
        currency, and the transfers drawn on one charge never add up to more than the charge."""
        charge = self.charges.get(source)
        if charge is None:
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such charge: '{source}'",
                code="resource_missing",
                param="source_transaction",
            )
        if charge["status"] != "succeeded" or charge["currency"] != currency:
            raise StripeError(
                400,
                "invalid_request_error",
                "The source_transaction must be a succeeded charge in the transfer's currency.",
                param="source_transaction",
            )
        drawn = sum(t["amount"] for t in self.transfers.values() if t.get("source_transaction") == source)
        if drawn + amount > charge["amount"]:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Transfers from charge {source} cannot exceed its amount ({charge['amount']}).",
                param="amount",
            )

    def available_balance(self, currency: str) -> int:
        """Charges become available ``funds_available_after`` seconds (on the stub's clock) after
        they are made; refunds, and transfers not drawn on a charge, come off; reversals come back."""
        now = self.clock()
        charged = sum(
            c["amount"] - c["amount_refunded"]
            for c in self.charges.values()
            if c["currency"] == currency
            and c["status"] == "succeeded"
            and c["created"] + self.funds_available_after <= now
        )
        sent = sum(
            t["amount"] - t["amount_reversed"]
            for t in self.transfers.values()
            if t["currency"] == currency and not t.get("source_transaction")
        )
        return charged - sent

    def _create_transfer_reversal(self, params: dict[str, Any], transfer_id: str) -> dict[str, Any]:
        """Reverse (part of) a transfer: the connected account pays it back; never more than is
        left unreversed."""
        if transfer_id not in self.transfers:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such transfer: '{transfer_id}'",
                code="resource_missing",
                param="id",
            )
        transfer = self.transfers[transfer_id]
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = _int(params.get("amount", left), "amount")
        _check_step(amount, transfer["currency"])
        if self.refuse_reversals:
            raise StripeError(
                400,
                "invalid_request_error",
                "The connected account's balance cannot cover this reversal.",
                code=self.refuse_reversals,
            )
        if amount <= 0:
            raise StripeError(400, "invalid_request_error", "Amount must be at least 1", param="amount")
        if amount > left:
            raise StripeError(
                400,
                "invalid_request_error",
                f"Reversal amount ({amount}) is greater than the transfer's unreversed amount ({left})",
                code="amount_too_large",
                param="amount",
            )
        reversal = {
            "id": self._id("trr"),
            "object": "transfer_reversal",
            "amount": amount,
            "currency": transfer["currency"],
            "transfer": transfer_id,
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
        }
        self.transfer_reversals[reversal["id"]] = reversal
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        return copy.deepcopy(reversal)

    # ---- the outside world: what customers, the dashboard and card networks do ------------

    def complete_action(self, intent_id: str) -> dict[str, Any]:
        """The customer passed 3-D Secure."""
        with self.lock:
            intent = self.intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            self._succeed(intent)
            return copy.deepcopy(intent)

    def fail_action(self, intent_id: str) -> dict[str, Any]:
        """The customer failed 3-D Secure."""
        with self.lock:
            intent = self.intents[intent_id]
            intent.update(
                status="requires_payment_method",
                next_action=None,
                last_payment_error={
                    "type": "card_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The customer failed authentication.",
                },
            )
            return copy.deepcopy(intent)

    def refund_from_dashboard(self, intent_id: str, amount: int) -> dict[str, Any]:
        """Someone refunded in Stripe's dashboard, outside tally."""
        with self.lock:
            return self._create_refund({"payment_intent": intent_id, "amount": amount}, origin="dashboard")

    def charge_of(self, intent_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.charges[self.intents[intent_id]["latest_charge"]])

    def open_dispute(
        self, intent_id: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        """The cardholder disputed the charge: Stripe withdraws the amount from the platform."""
        with self.lock:
            charge = self.charges[self.intents[intent_id]["latest_charge"]]
            amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
            dispute = {
                "id": self._id("dp"),
                "object": "dispute",
                "amount": amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "reason": reason,
                "status": "needs_response",
                "is_charge_refundable": False,
                "balance_transactions": [self._balance_transaction(-amount, DISPUTE_FEE)],
                "created": int(time.time()),
            }
            charge["disputed"] = True
            self.disputes[dispute["id"]] = dispute
            return copy.deepcopy(dispute)

    def close_dispute(self, dispute_id: str, won: bool) -> dict[str, Any]:
        with self.lock:
            dispute = self.disputes[dispute_id]
            dispute["status"] = "won" if won else "lost"
            if won:
                dispute["balance_transactions"].append(
                    self._balance_transaction(dispute["amount"], -DISPUTE_FEE)
                )
            self.charges[dispute["charge"]]["disputed"] = False
            return copy.deepcopy(dispute)

    def _balance_transaction(self, amount: int, fee: int) -> dict[str, Any]:
        return {
            "id": self._id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "type": "adjustment",
            "reporting_category": "dispute",
        }

    # ---- webhooks --------------------------------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
        """A snapshot event of one of our objects (as Stripe sends it, without charge.refunds)."""
        return {
            "id": self._id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
            "data": {"object": copy.deepcopy(obj)},
        }

    def signed(self, event: dict[str, Any]) -> tuple[str, str]:
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            payload, self.webhook_secret, timestamp=int(time.time())
        )
        return payload, header

    def deliver(self, client: Any, event: dict[str, Any]) -> Any:
        """POST the signed event to the app's webhook endpoint (a Flask test client)."""
        payload, header = self.signed(event)
        return client.post(
            "/api/webhooks/stripe",
            data=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )

    # ---- the HTTP side -----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = decode_form(
                    parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
                )
                key = self.headers.get("Idempotency-Key")
                with stub.lock:
                    stub.requests.append(
                        {
                            "method": method,
                            "path": parts.path,
                            "params": params,
                            "idempotency_key": key,
                            "stripe_version": self.headers.get("Stripe-Version"),
                        }
                    )
                if self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    self._answer(
                        401,
                        {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
                    )
                    return
                fault = stub._take_fault(method, parts.path)
                if fault is not None and fault.kind == "fail":
                    self._answer(fault.status, {"error": {"type": "api_error", "message": "Stub failure"}})
                    return
                stored = fault.status if fault is not None and fault.kind == "fail_stored" else None
                status, answer, replayed = stub._process(method, parts.path, params, key, stored)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                try:
                    self._answer(status, answer, replayed)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def _answer(self, status: int, answer: dict[str, Any], replayed: bool = False) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
                if replayed:
                    self.send_header("Idempotent-Replayed", "true")
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _process(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        key: str | None,
        stored_failure: int | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self.lock:
            if method == "POST" and key:
                stored = self._idempotent.get(key)
                if stored is not None:
                    first_path = json.loads(stored[0])[1]
                    if first_path != path:
                        return (
                            400,
                            {
                                "error": {
                                    "type": "idempotency_error",
                                    "message": "Keys for idempotent requests can only be used for the same "
                                    f"endpoint they were first used for ('{path}' vs '{first_path}'). Try "
                                    f"using a key other than '{key}' if you meant to execute a different "
                                    "request.",
                                }
                            },
                            False,
                        )
                    if stored[0] != fingerprint:
                        return (
                            400,
                            {
                                "error": {
                                    "type": "idempotency_error",
                                    "message": "Keys for idempotent requests can only be used with the same "
                                    "parameters they were first used with. Try using a key other than "
                                    f"'{key}' if you meant to execute a different request.",
                                }
                            },
                            False,
                        )
                    return stored[1], copy.deepcopy(stored[2]), True
            saved = True
            if stored_failure is not None:  # the endpoint began, then failed: saved, nothing done
                status, answer = stored_failure, {"error": {"type": "api_error", "message": "Stub failure"}}
            else:
                try:
                    status, answer = self.handle(method, path, params)
                except StripeError as error:
                    status, answer = error.status, error.body
                    saved = not error.validation  # refused before the endpoint began: nothing saved
            if method == "POST" and key and saved:
                self._idempotent[key] = (fingerprint, status, copy.deepcopy(answer))
                self._key_saved_at[key] = self.clock()
            return status, answer, False

    # ---- what tests look at ---------------------------------------------------------------------

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]


# ---- running tally against the stub ------------------------------------------------------------


def stripe_changes(stub: StripeStub, **extra: Any) -> dict[str, Any]:
    """Settings changes that point tally's Stripe provider at the stub (for make_settings)."""
    return {
        "payment_provider": "stripe",
        "stripe_api_key": stub.api_key,
        "stripe_webhook_secret": stub.webhook_secret,
        "stripe_api_base": stub.url,
        **extra,
    }


def events_named(container: Any, *suffixes: str) -> list[Any]:
    """Stored events whose type ends with one of ``suffixes`` (e.g. "Payment.Refunded")."""
    notifications = container.marketplace.recorder.select_notifications(start=1, limit=100_000)
    return [n for n in notifications if n.topic.endswith(suffixes)]


def catch_up_read_models(container: Any) -> None:
    from projections.runner import PROJECTIONS, catch_up

    for projection in PROJECTIONS.values():
        catch_up(projection(), container.marketplace, container.engine)
