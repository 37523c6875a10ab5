"""The HTTP API under /api (flask-smorest: marshmallow validation and the OpenAPI document)."""

from __future__ import annotations

import http

from flask import Flask, Response, jsonify
from flask_smorest import Api as SmorestApi
from flask_smorest.utils import prepare_response

from app.schemas import ProblemSchema

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Api(SmorestApi):
    """flask-smorest, documenting every error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """Errors are handled by app.errors (problem+json), not flask-smorest's JSON handler."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_CONTENT_TYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Problem details (RFC 9457)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def json_response(data: object, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response


def init_app(app: Flask) -> Api:
    from app.api import checkout, health, orders, webhooks

    app.config.update(
        API_TITLE="tally",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}
            },
            "security": [{"bearerAuth": []}],
            "info": {"description": "Event-sourced payments for multi-seller marketplaces."},
        },
    )
    api = Api(app)
    for module in (health, checkout, orders, webhooks):
        api.register_blueprint(module.bp)
    return api
