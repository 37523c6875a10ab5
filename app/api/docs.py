"""GET /api/docs: the browsable API reference (Swagger UI over /api/openapi.json), served from the
swagger-ui-bundle package: no CDN, works offline."""

from __future__ import annotations

from flask import Flask, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/api/docs/assets/"

SETTINGS = {
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS,
    "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": False, "tryItOutEnabled": False},
}


def _asset(filename: str) -> Response:
    response = send_from_directory(swagger_ui_path, filename, max_age=86_400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app: Flask) -> None:
    app.add_url_rule(f"{ASSETS}<path:filename>", "docs_asset", _asset, methods=["GET"])
