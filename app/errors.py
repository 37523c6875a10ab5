"""application/problem+json (RFC 9457) for every error the service returns."""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import IntegrityError as StoreConflict
from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.adapters.outages import RETRY_AFTER_SECONDS, dependency_of, note_outage
from domain import errors as domain_errors
from domain.inventory import InsufficientStockError
from domain.ports import ProviderConfigurationError, ProviderUnavailableError

log = logging.getLogger("tally.errors")

PROBLEM_TYPE_BASE = "https://tally.dev/problems/"

# Every DomainError maps to one status here and nowhere else.
STATUS_FOR: list[tuple[type[Exception], int]] = [
    (domain_errors.PaymentDeclinedError, 402),
    (domain_errors.ActionProofError, 400),
    (domain_errors.RefundNotManualError, 409),
    (domain_errors.NotFoundError, 404),
    (domain_errors.CheckoutSessionExpiredError, 410),
    (domain_errors.CheckoutConflictError, 409),
    (InsufficientStockError, 409),
    (domain_errors.ConcurrentChangeError, 409),
    (domain_errors.PaymentStateError, 409),
    (domain_errors.AllocationStateError, 409),
    (domain_errors.SettlementStateError, 409),
    (domain_errors.DomainError, 422),
]

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Declined",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _slug(text: str) -> str:
    return "-".join(text.lower().replace("'", "").split())


def problem(
    status: int, detail: str, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A problem+json response."""
    title = title or TITLES.get(status, "Error")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + _slug(title),
        "title": title,
        "status": status,
        "detail": detail,
    }
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow nested messages -> {"items.0.unit_amount": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            out.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tally"'
    messages = data.get("messages")
    if messages is not None:
        # webargs nests by location: {"json": {...}, "query": {...}}
        if isinstance(messages, dict) and set(messages) <= {
            "json",
            "query",
            "headers",
            "view_args",
            "path",
            "form",
            "files",
        }:
            merged: dict[str, Any] = {}
            for location, value in messages.items():
                if isinstance(value, dict):
                    merged.update(value)
                else:
                    merged["_schema" if location == "json" else location] = value
            messages = merged
        errors = _flatten(messages)
        if status == 400:
            return problem(400, "The request body is not valid JSON.", headers=headers, errors=errors)
        return problem(status, "The request failed validation.", headers=headers, errors=errors)
    original = getattr(error, "original_exception", None)
    if isinstance(original, BaseException) and (dependency := dependency_of(original)) is not None:
        # Raised outside the view (after_request): Flask wrapped it in a 500.
        note_outage(dependency, original)
        return dependency_unavailable(dependency)
    if status >= 500:
        log.error("HTTP %s (request %s): %s", status, getattr(g, "request_id", "-"), error)
        return problem(status, "The server could not complete the request.", headers=headers)
    detail = error.description or TITLES.get(status, "Error")
    return problem(status, detail, title=TITLES.get(status, error.name), headers=headers)


def handle_domain_error(error: domain_errors.DomainError) -> Response:
    status = next((status for error_type, status in STATUS_FOR if isinstance(error, error_type)), 422)
    if isinstance(error, domain_errors.PaymentDeclinedError):
        return problem(402, str(error), payment_id=error.payment_id, failure_reason=error.reason)
    if status == 422:
        return problem(422, str(error), errors={error.field or "_schema": [str(error)]})
    if status == 409 and isinstance(error, domain_errors.ConcurrentChangeError):
        return problem(409, str(error), headers={"Retry-After": "1"})
    if isinstance(error, InsufficientStockError):
        return problem(409, str(error), insufficient_stock=error.shortages)
    return problem(status, str(error))


def handle_store_conflict(_error: StoreConflict) -> Response:
    return problem(
        409, "A concurrent change got there first; retry the request.", headers={"Retry-After": "1"}
    )


def handle_provider_unavailable(error: ProviderUnavailableError) -> Response:
    return problem(
        503, "The payment provider is unavailable; retry the request.", headers={"Retry-After": "5"}
    )


def handle_provider_misconfigured(error: ProviderConfigurationError) -> Response:
    # Logged at ERROR by the adapter, with the provider's code; the client learns only whose it is.
    return problem(
        503,
        "The payment provider refused tally's configuration (payment provider configuration); "
        "an operator has to fix it. Nothing was charged.",
        title="Payment provider configuration",
    )


def dependency_unavailable(dependency: str) -> Response:
    """503: the database or Redis does not answer; the client retries (same Idempotency-Key)."""
    return problem(
        503,
        f"A dependency ({dependency}) is unavailable; retry the request.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        dependency=dependency,
    )


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    dependency = dependency_of(error)
    if dependency is not None:
        note_outage(dependency, error)
        return dependency_unavailable(dependency)
    log.exception("unhandled error (request %s)", getattr(g, "request_id", "-"))
    return problem(500, "The server could not complete the request.")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(domain_errors.DomainError, handle_domain_error)
    app.register_error_handler(StoreConflict, handle_store_conflict)
    app.register_error_handler(ProviderUnavailableError, handle_provider_unavailable)
    app.register_error_handler(ProviderConfigurationError, handle_provider_misconfigured)
    app.register_error_handler(Exception, handle_unexpected)
