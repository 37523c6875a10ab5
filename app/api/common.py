"""What every view uses: the JSON response and the process's container."""

from __future__ import annotations

from typing import cast

from flask import Response, current_app, jsonify

from app.bootstrap import Container


def json_response(data: object, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response


def tally() -> Container:
    """The container the app factory installed."""
    return cast(Container, current_app.extensions["tally"])
