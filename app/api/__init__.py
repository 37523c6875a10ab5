"""The HTTP API under /api (flask-smorest: marshmallow validation and the OpenAPI document)."""

from __future__ import annotations

import http
import json
import re
from typing import Any

from apispec import BasePlugin
from flask import Flask, Request
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint
from flask_smorest.utils import prepare_response
from webargs import core
from webargs.flaskparser import FlaskParser

from app.schemas import ProblemSchema

PROBLEM_CONTENT_TYPE = "application/problem+json"

IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "A retry with the same key and body replays the first response; "
    "the same key with another body is a 409.",
}


# Caller-chosen ids: an unknown customer or seller simply has nothing yet (empty lists, no 404).
OPAQUE_PATH_PARAMETERS = {"customer_id", "seller_id"}


class ProblemResponsesPlugin(BasePlugin):
    """Documents the errors every operation can answer, as the contract's conventions list them.

    503 everywhere (the database or Redis is down: retry after Retry-After),
    401/403 wherever a key is needed, 404 for an unknown id in the path, 400 (malformed) and
    413 (too large) wherever there is a body, and on every authenticated POST the
    Idempotency-Key header with its 409 (key reused with another body). The
    specific outcomes (402, 410, ...) are documented on their operations.
    """

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            responses: dict[int | str, Any] = operation.setdefault("responses", {})

            def document(status: http.HTTPStatus, responses: dict[int | str, Any] = responses) -> None:
                # flask-smorest keys responses by int, apispec by str: an explicit one wins.
                if status.value not in responses and str(status.value) not in responses:
                    responses[str(status.value)] = status.name

            # Any operation may meet a dependency that is down: 503 with Retry-After.
            document(http.HTTPStatus.SERVICE_UNAVAILABLE)
            secured = operation.get("security") != []
            if secured:
                document(http.HTTPStatus.UNAUTHORIZED)
                document(http.HTTPStatus.FORBIDDEN)
            if set(re.findall(r"{(\w+)}", path or "")) - OPAQUE_PATH_PARAMETERS:
                document(http.HTTPStatus.NOT_FOUND)
            if "requestBody" in operation:
                document(http.HTTPStatus.BAD_REQUEST)
                document(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            if secured and method.lower() == "post":
                document(http.HTTPStatus.BAD_REQUEST)
                document(http.HTTPStatus.CONFLICT)
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters if isinstance(p, dict)):
                    parameters.append(dict(IDEMPOTENCY_KEY_PARAMETER))


class Api(SmorestApi):
    """flask-smorest, documenting every error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *, extra_plugins: list[BasePlugin] | None = None, **kwargs: Any) -> None:
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), ProblemResponsesPlugin()], **kwargs)

    def _register_error_handlers(self) -> None:
        """Errors are handled by app.errors (problem+json), not flask-smorest's JSON handler."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_CONTENT_TYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Problem details (RFC 9457)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class JsonBodyParser(FlaskParser):
    """Read a request body as JSON whatever its Content-Type (``curl -d`` sends form encoding):
    a body that is not JSON is then a 400, not a silently empty 422."""

    def _raw_load_json(self, req: Request) -> Any:
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        try:
            return core.parse_json(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs answers these with a 400
        except (ValueError, RecursionError) as exc:
            # JSON that Python cannot represent (a 5,000-digit integer, nesting past the
            # recursion limit) is as malformed as any other: a 400, never a 500.
            self._handle_invalid_json_error(json.JSONDecodeError(str(exc), "", 0), req)


Blueprint.ARGUMENTS_PARSER = JsonBodyParser()


def init_app(app: Flask) -> Api:
    from app.api import (
        accounts,
        audit,
        bank_transfers,
        checkout,
        contacts,
        credit_notes,
        docs,
        fees,
        fulfilment,
        health,
        inventory,
        orders,
        sellers,
        webhook_endpoints,
        webhooks,
    )

    app.config.update(
        API_TITLE="tally",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        **docs.SETTINGS,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
            "info": {"description": "Event-sourced payments for multi-seller marketplaces."},
        },
    )
    api = Api(app)
    for module in (
        health,
        checkout,
        orders,
        bank_transfers,
        fulfilment,
        sellers,
        credit_notes,
        accounts,
        contacts,
        fees,
        inventory,
        webhooks,
        webhook_endpoints,
        audit,
    ):
        api.register_blueprint(module.bp)
    docs.init_app(app)
    return api
