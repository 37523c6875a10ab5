"""Sign-in, sign-out, the session guard, CSRF tokens and the console's error pages."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import Forbidden, HTTPException
from werkzeug.wrappers import Response as Redirect

from app.auth import Principal, authenticate, principal_for_key_id
from app.bootstrap import Container
from app.errors import STATUS_FOR
from domain.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")

# Pages anyone may open (the sign-in form and the stylesheet).
OPEN_ENDPOINTS = frozenset({"console.login", "console.static"})


def tally() -> Container:
    return cast(Container, current_app.extensions["tally"])


def csrf_token() -> str:
    """This session's CSRF token (made on first use; a new one at each sign-in)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf() -> None:
    """Every POST carries the session's token in ``csrf_token``, or is a 400."""
    if request.method != "POST":
        return
    expected = session.get("csrf")
    given = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        abort(400, "The form's CSRF token is missing or does not match this session: reload the page.")


def _signed_in() -> Principal | None:
    """The principal of this session's key, while the session and the key are both valid."""
    key_id = session.get("key_id")
    expires = session.get("expires")
    if not isinstance(key_id, str) or not isinstance(expires, (int, float)) or expires <= time.time():
        return None
    return principal_for_key_id(tally().engine, key_id)


def guard() -> Redirect | None:
    """before_request of every console page: CSRF first, then a valid session or the sign-in."""
    g.principal = None  # the console never takes an Authorization header
    if request.endpoint != "console.static" and current_app.session_interface.is_null_session(session):
        abort(503, "The console needs CONSOLE_SECRET_KEY to sign its sessions (see the README's settings).")
    _check_csrf()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    principal = _signed_in()
    if principal is None:
        had_session = "key_id" in session
        session.pop("key_id", None)
        session.pop("expires", None)
        return redirect(url_for("console.login", expired=1 if had_session else None))
    g.principal = principal
    return None


def principal() -> Principal:
    return cast(Principal, g.principal)


def roles(*allowed: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Only these roles may open the page (a 403 page for the others)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if principal().role not in allowed:
                raise Forbidden(f"A {principal().role} key may not open this page.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def login() -> Any:
    """GET: the sign-in form; POST: check the key, start the session, go to the console."""
    if request.method == "GET":
        expired = request.args.get("expired") == "1"
        return render_template(
            "console/login.html", error="Your session ended: sign in again." if expired else None
        )
    found = authenticate(tally().engine, "Bearer " + request.form.get("key", "").strip())
    if found is None:
        return render_template("console/login.html", error="That key is not valid."), 401
    session.clear()
    session.permanent = True
    session["key_id"] = found.key_id
    session["expires"] = time.time() + tally().settings.console_session_seconds
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("console.home"))


def logout() -> Redirect:
    session.clear()
    return redirect(url_for("console.login"))


def error_page(error: Exception) -> tuple[str, int]:
    """An HTML page for an error raised by a console page (the API's own status for it)."""
    if isinstance(error, HTTPException):
        status, detail = error.code or 500, error.description or error.name
    else:
        status = next(code for kind, code in STATUS_FOR if isinstance(error, kind))
        detail = str(error)
    return render_template("console/error.html", status=status, detail=detail), status


def init(bp: Blueprint) -> None:
    bp.before_request(guard)
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
    bp.register_error_handler(HTTPException, error_page)
    bp.register_error_handler(DomainError, error_page)
    bp.context_processor(lambda: {"csrf_token": csrf_token, "me": g.get("principal")})
