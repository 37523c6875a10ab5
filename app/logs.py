"""Log lines: JSON (python-json-logger) by default, one object per line, each with the request id of
the request it belongs to, or of the request that enqueued the job it belongs to; ``LOG_FORMAT=text``
for people reading a terminal. The gunicorn access log uses the same format (``GunicornLogger``).

What is never logged: API keys and secrets, webhook secrets, card data, full e-mail bodies.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# The request (or the request that enqueued the running job) this code works for.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    return JsonFormatter(
        JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
    )


class _TallyHandler(logging.StreamHandler):
    """The one handler tally puts on the root logger."""


def configure(level: str, log_format: str) -> None:
    """One handler on the root logger, writing to stderr (idempotent: the app may be built twice)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if isinstance(handler, _TallyHandler):
            handler.setFormatter(formatter(log_format))
            return
    handler = _TallyHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)


def init_sentry(dsn: str | None) -> bool:
    """Report errors to Sentry when SENTRY_DSN is set (the web app and the RQ jobs); no personal
    data, no request bodies. Returns whether it is on."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[FlaskIntegration(), RqIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
    )
    return True


def job_meta() -> dict[str, Any]:
    """What an enqueued job carries of the request that enqueued it."""
    request_id = REQUEST_ID.get()
    return {"request_id": request_id} if request_id else {}


try:  # pragma: nocover - only where gunicorn runs the app
    from gunicorn.glogging import Logger as _GunicornBase

    class GunicornLogger(_GunicornBase):
        """gunicorn's access log as JSON lines with the request id tally echoed in X-Request-Id."""

        def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
            if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
                return
            headers = dict((name.lower(), value) for name, value in resp.headers)
            self.access_log.info(
                "%s %s %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                resp.status_code if hasattr(resp, "status_code") else resp.status,
                extra={
                    "request_id": headers.get("x-request-id", "-"),
                    "remote": environ.get("REMOTE_ADDR"),
                    "status": str(resp.status).split(" ")[0],
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000, 3),
                },
            )

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in (*self.access_log.handlers, *self.error_log.handlers):
                handler.setFormatter(formatter("json"))
                handler.addFilter(RequestIdFilter())
except ImportError:  # pragma: nocover
    pass
