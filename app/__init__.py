"""tally's Flask application factory."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider

from app.bootstrap import Container, build
from app.config import Settings
from app.logs import REQUEST_ID

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    REQUEST_ID.set(g.request_id)  # in every log line of this request and the jobs it enqueues


def _forget_request_id(_: BaseException | None) -> None:
    REQUEST_ID.set(None)


def _echo_request_id(response: Response) -> Response:
    request_id = getattr(g, "request_id", None)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


def _refuse_unstorable_text() -> Response | None:
    """A path parameter or query value the database cannot store (NUL, a lone surrogate) names
    nothing tally holds: 404 for the path, 422 for the query, with the parameter named."""
    from app.errors import problem
    from app.schemas import UNSTORABLE, is_storable

    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and not is_storable(value):
            return problem(404, f"No such {name}: {UNSTORABLE}", errors={name: [UNSTORABLE]})
    bad = sorted({name for name, value in request.args.items(multi=True) if not is_storable(name + value)})
    if bad:
        return problem(422, "The request failed validation.", errors={name: [UNSTORABLE] for name in bad})
    return None


# Commands that record no events (a checkout session lives in Redis only).
_WRITES_NO_EVENTS = frozenset({"checkout.create_session"})


def _trigger_read_side(response: Response) -> Response:
    """After a command recorded events, bring the read models up to date (queued, or inline)."""
    recorded = 200 <= response.status_code < 300 or response.status_code == 402  # a decline is recorded too
    if request.method in ("POST", "PUT") and recorded and request.endpoint not in _WRITES_NO_EVENTS:
        try:
            current_app.extensions["tally"].jobs.projections_changed()
        except Exception:
            logging.getLogger("tally").exception("could not trigger the read side")
    return response


class _UnsortedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, keeping keys in the order the presenters build them."""

    sort_keys = False


def create_app(
    settings: Settings | None = None, container: Container | None = None, **overrides: Any
) -> Flask:
    """Build the app: Settings -> Container (lazy, fork-safe) -> blueprints, errors, CLI."""
    from app import api, auth, cli, console_web, errors, idempotency, logs
    from app.api import metrics

    container = container or build(settings, **overrides)
    settings = container.settings
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_content_length, JSON_SORT_KEYS=False)
    app.json = _UnsortedJSONProvider(app)
    app.extensions["tally"] = container
    logs.configure(settings.log_level, settings.log_format)
    logs.init_sentry(settings.sentry_dsn)

    app.before_request(_assign_request_id)
    app.before_request(_refuse_unstorable_text)
    metrics.init_app(app)
    app.before_request(auth.load_principal)
    idempotency.init_app(app)
    app.after_request(_echo_request_id)
    app.teardown_request(_forget_request_id)
    app.after_request(_trigger_read_side)
    api.init_app(app)
    console_web.init_app(app, settings)
    errors.init_app(app)
    cli.init_app(app)
    return app
