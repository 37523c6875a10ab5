"""Schemathesis over /api/openapi.json: every operation, fuzzed with an admin key.

Each operation of the published document becomes one test
(``test_api_conforms_to_its_openapi_document[POST /api/...]``). Every generated
request, valid or not, must get an answer the document describes (schemathesis'
default checks): no 5xx, a documented status code and content type, a body that
matches the documented schema (errors are ``application/problem+json``), invalid
input rejected with a 4xx, schema-valid input accepted unless the contract says
why not, an ``Allow`` header on 405, a 401 when the key is left out, ...

The app runs once for the module on the real stack (PostgreSQL + Redis, with its
own schema and key prefix). Resources are seeded in every state the API tells
apart (open, awaiting action, completed and expired sessions; an order; paid,
declined and pending payments), and ids returned by the API during the run join
the pool, so that valid cases often name a real resource instead of an id that
matches nothing; Stripe webhook cases are often signed with the app's secret and
name a real PaymentIntent, so the event handling is fuzzed too, not only the
signature check.

TALLY_FUZZ_EXAMPLES sets Hypothesis' max_examples per operation (default 30);
TALLY_FUZZ_STATS=1 prints the status codes seen per operation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.auth import create_key
from app.bootstrap import Container
from app.config import Settings
from projections.runner import PROJECTIONS, catch_up
from tests.conftest import _drop_schema, checkout_body

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("TALLY_FUZZ_EXAMPLES", "30"))
WEBHOOK_SECRET = "whsec_schemathesis"
WEBHOOK_PATH = "/api/webhooks/stripe"
SIGN = "sign-me"  # placeholder Stripe-Signature, replaced by a valid one in the test

# Schema-valid input the API may still refuse for a reason the document cannot express
# (positive_data_acceptance otherwise expects 2xx, 401, 403, 404, 409): a cart over the
# total cap, a refund larger than what is left or a reversed settlement period is a 422,
# a declined card a 402, an expired session a 410, a webhook whose signature does not
# verify a 400, a webhook endpoint URL that does not resolve to a public address a 422; a confirm
# without a payment method where the provider needs one, or a Razorpay answer that does not hold,
# a 422 or 400; an account body naming neither or both providers' account ids a 422; a stock
# record for a seller id or SKU outside the id alphabet a 422.
# (One filter per [[operations]] entry: several include-* keys are OR-ed.)
CONFIG = schemathesis.Config.from_str(
    """
[[operations]]
include-name = "POST /api/checkout/sessions"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "POST /api/checkout/sessions/{session_id}/confirm"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "402", "403", "404", "409", "410", "422", "5xx"
]

[[operations]]
include-name = "GET /api/checkout/sessions/{session_id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "410", "5xx"]

[[operations]]
include-name = "POST /api/orders/{order_id}/refunds"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "POST /api/sellers/{seller_id}/settlements"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "POST /api/settlements/runs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "POST /api/webhook-endpoints"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "POST /api/webhooks/stripe"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "5xx"]

[[operations]]
include-name = "POST /api/webhooks/razorpay"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "5xx"]

[[operations]]
include-name = "PUT /api/sellers/{seller_id}/inventory/{sku}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]

[[operations]]
include-name = "PUT /api/sellers/{seller_id}/account"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]
"""
)


class _Target:
    """A WSGI app forwarding to another, so the module-level schema can reach the fixture's app."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


TARGET = _Target()
with tempfile.TemporaryDirectory(prefix="tally-openapi-") as _tmp:
    # An app that only serves the document at collection time (it touches no database).
    TARGET.app = create_app(
        container=Container(Settings(database_url=f"sqlite:///{_tmp}/x.db", key_prefix="doc"))
    )
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", TARGET, config=CONFIG)

ADMIN_KEY = "tk_admin-key-of-the-module-app"  # in generated cases; the test swaps in the real key


@schema.auth(refresh_interval=None, retry_on=[])
class _AdminKey:
    """Every case carries the admin key, except those whose credentials are the negated part.

    Through schemathesis' auth rather than call headers: a case generated without (or with a
    garbled) Authorization then goes out that way and its 401 counts as a rejection, instead
    of going out with the key and being blamed for being accepted. (Some cases are built at
    collection time, before the app and its key exist: hence the placeholder.)
    """

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return ADMIN_KEY

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# Real ids by kind ("session", "order", "payment", "seller", "provider_reference", ...),
# seeded by the `seeded` fixture and grown from the API's own answers.
KNOWN: dict[str, list[str]] = {}
MAX_KNOWN = 40
# KNOWN as each operation first saw it: its cases draw from a pool that does not change
# under them, so Hypothesis can replay (and shrink) a failing case.
POOLS: dict[str, dict[str, tuple[str, ...]]] = {}
# (operation, phase/generation mode, status) -> responses; printed with TALLY_FUZZ_STATS=1.
STATUSES: Counter[tuple[str, str, int]] = Counter()

PAYMENT_METHODS = [
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_authenticationRequired",
]
WEBHOOK_EVENT_TYPES = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
]


def _is_positive(case: schemathesis.Case) -> bool:
    generation = getattr(case.meta, "generation", None) if case.meta is not None else None
    mode = getattr(generation, "mode", None)
    return str(getattr(mode, "value", mode)) == "positive"


ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # what ids look like (UUIDs, pi_..., customer and seller ids)


def _remember(kind: str, value: object) -> None:
    # Only id-like values: an endpoint echoing a fuzzed path parameter must not feed it back.
    if isinstance(value, str) and ID.fullmatch(value):
        known = KNOWN.setdefault(kind, [])
        if value not in known and len(known) < MAX_KNOWN:
            known.append(value)


def _kind_of(name: str) -> str:
    """ "order_id" -> "order", "settlements" -> "settlement", "checkout_session_id" -> "session"."""
    name = name.removeprefix("checkout_").removesuffix("_id")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _learn(node: object, kind: str | None) -> None:
    """Collect ids from a response: "<kind>_id" keys, and "id" under a key naming its kind."""
    if isinstance(node, list):
        for item in node:
            _learn(item, kind)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "id" and kind:
                _remember(kind, value)
            elif key.endswith("_id") or key == "provider_reference":
                _remember(_kind_of(key), value)
            elif key.endswith("_ids") and isinstance(value, list):
                for item in value:
                    _remember(_kind_of(key.removesuffix("_ids")), item)
            if isinstance(value, (dict, list)):
                _learn(value, _kind_of(key))


@schema.hook("after_call")
def _observe(context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response):
    phase = getattr(getattr(getattr(case.meta, "phase", None), "name", None), "value", "?")
    mode = "positive" if _is_positive(case) else "negative"
    STATUSES[(case.operation.label, f"{phase}/{mode}", response.status_code)] += 1
    if KNOWN and response.status_code < 500 and "json" in (response.headers.get("content-type") or [""])[0]:
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        segments = [s for s in case.operation.path.split("/") if s and not s.startswith("{")]
        _learn(body, _kind_of(segments[-1]) if segments else None)


@schema.hook("flatmap_case")
def _sometimes_real(context: schemathesis.HookContext, case: schemathesis.Case):
    """Valid cases often name a real resource, a test card the mock knows, a signed event."""
    if not KNOWN or not _is_positive(case):
        return st.just(case)
    pool = POOLS.setdefault(case.operation.label, {kind: tuple(ids) for kind, ids in KNOWN.items() if ids})
    path_choices = {
        name: st.sampled_from(pool[_kind_of(name)])
        for name in (case.path_parameters or {})
        if _kind_of(name) in pool
    }
    body_choices: dict[str, st.SearchStrategy] = {}
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and "payment_method" in body:
        body_choices["payment_method"] = st.sampled_from(PAYMENT_METHODS)
    webhook = case.operation.path == WEBHOOK_PATH and body is not None
    if webhook:
        body_choices["type"] = st.sampled_from(WEBHOOK_EVENT_TYPES)
        if "provider_reference" in pool:
            body_choices["reference"] = st.sampled_from(pool["provider_reference"])

    def with_real_values(picked: tuple[dict[str, str], dict[str, str], bool]) -> schemathesis.Case:
        paths, values, sign = picked
        if paths:
            case.path_parameters = {**case.path_parameters, **paths}
        if values:
            new_body = json.loads(json.dumps(case.body))
            reference = values.pop("reference", None)
            new_body.update(values)
            if reference is not None and isinstance(new_body.get("data"), dict):
                target = new_body["data"].get("object")
                if isinstance(target, dict):
                    target["payment_intent" if new_body.get("type", "").startswith("charge.") else "id"] = (
                        reference
                    )
            case.body = new_body
        if sign:
            case.headers = {**(case.headers or {}), "Stripe-Signature": SIGN}
        return case

    if not path_choices and not body_choices and not webhook:
        return st.just(case)
    real = st.tuples(
        st.fixed_dictionaries(path_choices),
        st.fixed_dictionaries({}, optional=body_choices),
        st.sampled_from([True, True, False]) if webhook else st.just(False),
    ).map(with_real_values)
    # Two cases in three: the random ids (a 404) are the coverage phase's job already.
    return st.sampled_from([True, True, False]).flatmap(lambda use: real if use else st.just(case))


def _catch_up_read_models(container: Container) -> None:
    for projection in PROJECTIONS.values():
        catch_up(projection(), container.marketplace, container.engine)


def _stripe_signature(payload: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@pytest.fixture(scope="module")
def fuzz_settings(pg_url: str, redis_url: str) -> Iterator[Settings]:
    token = uuid.uuid4().hex[:12]
    fuzz = Settings(
        database_url=pg_url,
        database_schema=f"t_fuzz_{token}",
        redis_url=redis_url,
        key_prefix=f"tally-test-fuzz-{token}",
        stripe_webhook_secret=WEBHOOK_SECRET,
    )
    yield fuzz
    _drop_schema(pg_url, fuzz.database_schema)
    from redis import Redis

    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{fuzz.key_prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def fuzz_container(fuzz_settings: Settings) -> Iterator[Container]:
    container = Container(fuzz_settings)
    yield container
    container.close()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_container: Container) -> Iterator[Flask]:
    app = create_app(container=fuzz_container)
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)  # a crash is a 500, as in production
    previous, TARGET.app = TARGET.app, app
    yield app
    TARGET.app = previous


@pytest.fixture(scope="module")
def admin_headers(fuzz_container: Container) -> dict[str, str]:
    _, key = create_key(fuzz_container.engine, "admin", None)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def seeded(fuzz_app, fuzz_container: Container, admin_headers: dict[str, str]) -> Iterator[dict[str, str]]:
    """Real resources in every state the API tells apart (all in KNOWN; a few by name here)."""
    client = fuzz_app.test_client()

    def call(method: str, path: str, expected: int, **kwargs: Any) -> Any:
        response = client.open(path, method=method, headers=admin_headers, **kwargs)
        assert response.status_code == expected, (path, response.status_code, response.get_data(as_text=True))
        return response.get_json()

    def new_session(**changes: Any) -> str:
        return call("POST", "/api/checkout/sessions", 201, json=checkout_body(**changes))["id"]

    def confirm(session_id: str, payment_method: str, expected: int) -> dict[str, Any]:
        return call(
            "POST",
            f"/api/checkout/sessions/{session_id}/confirm",
            expected,
            json={"payment_method": payment_method},
        )

    open_sessions = [new_session(), new_session(currency="EUR"), new_session(customer_id="c-2")]
    paid = confirm(new_session(), "pm_card_visa", 201)
    refunded = confirm(new_session(customer_id="c-2", currency="JPY"), "pm_card_mastercard", 201)
    call(
        "POST",
        f"/api/orders/{refunded['order']['id']}/refunds",
        201,
        json={"amount": 100, "seller_id": "s-1"},
    )
    declined = confirm(open_sessions[0], "pm_card_chargeDeclined", 402)
    waiting = new_session()
    action = confirm(waiting, "pm_card_authenticationRequired", 202)
    expired = new_session()
    fuzz_container.redis.delete(fuzz_container.sessions._key(expired))  # gone, still in the expiry index
    _catch_up_read_models(fuzz_container)  # what the RQ workers would do (none runs here)
    settled = call(
        "POST", f"/api/sellers/s-2/settlements?period_start=2000-01-01&period_end={date.today()}", 201
    )
    _catch_up_read_models(fuzz_container)
    for path in ("/api/sellers/s-1/invoices", "/api/sellers/s-2/invoices"):
        _learn(call("GET", path, 200), None)
    for kind, values in {
        "session": [*open_sessions, waiting, expired, paid["order"]["checkout_session_id"]],
        "customer": ["c-1", "c-2"],
        "seller": ["s-1", "s-2"],
        "payment": [declined["payment_id"]],
    }.items():
        for value in values:
            _remember(kind, value)
    for body in (paid, refunded, action, settled):
        _learn(body, None)
    yield {"expired_session": expired, "order": paid["order"]["id"]}
    if os.environ.get("TALLY_FUZZ_STATS"):
        for (label, mode, status), count in sorted(STATUSES.items()):
            print(f"{label:60} {mode:17} {status} x{count}")
    KNOWN.clear()
    POOLS.clear()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, admin_headers, seeded):
    extra: dict[str, Any] = {}
    if (case.headers or {}).get("Authorization") == f"Bearer {ADMIN_KEY}":
        case.headers["Authorization"] = admin_headers["Authorization"]
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 0 < len(key) <= 200:
        # Hypothesis favours a few short keys ("0"); reused with another request they make
        # nearly every POST a (correct) 409. Tied to the request, a key still replays when
        # the same request comes again, and the command behind it gets exercised.
        request = repr((case.operation.label, case.path_parameters, case.query, case.body))
        case.headers["Idempotency-Key"] = f"{key}-{hashlib.sha256(request.encode()).hexdigest()[:16]}"
    if (case.headers or {}).get("Stripe-Signature") == SIGN:
        payload = json.dumps(case.body).encode()
        case.headers["Stripe-Signature"] = _stripe_signature(payload)
        extra["data"] = payload  # the exact bytes signed
    case.call_and_validate(**extra)  # the admin key comes from _AdminKey


CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_every_documented_outcome_conforms(fuzz_app, fuzz_settings, admin_headers, seeded):
    """The outcomes random input rarely reaches, each checked against the document."""
    client = fuzz_app.test_client()

    def check(
        method: str,
        path: str,
        status: int,
        client: FlaskClient = client,
        checks: list[Callable[..., Any]] = CONFORMANCE,
        **kwargs: Any,
    ) -> Any:
        response = client.open(path, method=method, headers=admin_headers, **kwargs)
        assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True))
        template = next(
            op
            for op in (r.ok() for r in schema.get_all_operations())
            if op.method.upper() == method
            and re.fullmatch(re.sub(r"{\w+}", "[^/]+", op.path), path.split("?")[0])
        )
        template.Case().validate_response(response, checks=checks)
        return response.get_json()

    def session() -> str:
        return check("POST", "/api/checkout/sessions", 201, json=checkout_body())["id"]

    def confirm(session_id: str, payment_method: str, status: int) -> Any:
        return check(
            "POST",
            f"/api/checkout/sessions/{session_id}/confirm",
            status,
            json={"payment_method": payment_method},
        )

    declined = confirm(session(), "pm_card_chargeDeclinedInsufficientFunds", 402)
    assert declined["payment_id"] and declined["failure_reason"]
    waiting = session()
    assert confirm(waiting, "pm_card_authenticationRequired", 202)["payment"]["client_secret"]
    confirm(waiting, "pm_card_visa", 409)  # a payment for it awaits action
    paid = session()
    order = confirm(paid, "pm_card_visa", 201)["order"]
    confirm(paid, "pm_card_visa", 409)  # already completed
    expired = seeded["expired_session"]  # gone from Redis, still in the expiry index
    check("GET", f"/api/checkout/sessions/{expired}", 410)
    confirm(expired, "pm_card_visa", 410)
    check("GET", f"/api/orders/{uuid.uuid4()}", 404)
    check("GET", "/api/orders/not-a-uuid%00%F0%9F%92%A5", 404)
    check("POST", f"/api/orders/{order['id']}/refunds", 422, json={"amount": 10**12})
    check("POST", "/api/checkout/sessions", 400, data="{", content_type="application/json")
    check("POST", "/api/checkout/sessions", 422, json=checkout_body(currency="usd"))
    check("GET", "/api/readyz", 200)

    broken = Container(fuzz_settings.replace(redis_url="redis://127.0.0.1:1/0"))
    try:
        unready = create_app(container=broken).test_client()
        not_ready = check(
            "GET", "/api/readyz", 503, client=unready, checks=CONFORMANCE[1:]
        )  # a 5xx by design
        assert not_ready["checks"]["redis"].startswith("unavailable")
    finally:
        broken.close()
