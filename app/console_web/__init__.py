"""The web console under /console: server-rendered pages per role, signed in with an API key.

The session cookie (signed with CONSOLE_SECRET_KEY) holds the key's id, never the key; each
request looks the id up again, so a revoked or expired key ends the session within a second.
Every form carries a CSRF token tied to the session. Pages read through the API's own query
code and authorise with the API's own checks (``app.auth.check_subject``).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from app.config import ROOT

if TYPE_CHECKING:  # pragma: nocover
    from app.config import Settings

log = logging.getLogger(__name__)
DEV_SECRET_FILE = ROOT / "var" / "console-secret.key"
COOKIE_NAME = "tally_console"


def _dev_secret(path: Path) -> str:
    """A signing key made once under var/ (development: set CONSOLE_SECRET_KEY in production)."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    log.warning("CONSOLE_SECRET_KEY is unset: made a development key in %s", path)
    return path.read_text().strip()


class ConsoleSessions(SecureCookieSessionInterface):
    """Signed cookie sessions for /console only (the API has none), with CONSOLE_SECRET_KEY or
    else a development key under var/, read when a console page first needs it: a process that
    never serves the console (a worker, an image whose var/ is read-only) never needs a key."""

    def __init__(self, configured: str | None, dev_file: Path = DEV_SECRET_FILE) -> None:
        self.configured = configured
        self.dev_file = dev_file
        self.key: str | None = None

    def secret(self) -> str | None:
        if self.key is None:
            try:
                self.key = self.configured or _dev_secret(self.dev_file)
            except OSError as exc:
                log.error("CONSOLE_SECRET_KEY is unset and no development key could be made: %s", exc)
        return self.key

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        secret = self.secret()
        if secret is None:
            return None
        return URLSafeTimedSerializer(
            secret,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith("/console/"):
            return None  # Flask's null session: nothing outside the console reads or sets a cookie
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    """Register the console with its cookie settings and template helpers."""
    from app.console_web import audit_pages, format, operator_pages, seller_pages, session

    bp = Blueprint(  # one per app: a blueprint is set up once
        "console",
        __name__,
        url_prefix="/console",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    app.session_interface = ConsoleSessions(settings.console_secret_key)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=not settings.console_insecure_cookies,
        SESSION_COOKIE_PATH="/console",
        # The session's end is judged by the server (its "expires"); the cookie lives a minute
        # longer, so a page opened just after the end says so instead of a bare sign-in form.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_seconds + 60),
    )
    session.init(bp)
    format.init(bp)
    for module in (audit_pages, operator_pages, seller_pages):
        module.register(bp)
    app.register_blueprint(bp)
