"""gunicorn reads this file from the working directory: what it refuses itself is problem+json too.

A request gunicorn cannot parse never reaches the app (a header field over
``limit_request_field_size``, 8190 bytes: 431; a request line over 4094 bytes: 414; a malformed
request: 400). gunicorn answers those with an HTML page of its own; the contract promises
``application/problem+json`` for every error, so its error writer is replaced here (the workers
are forked from the process that reads this file). It also gives the web a statement timeout.
"""

from __future__ import annotations

import json
import os
import socket

from gunicorn import util

PROBLEM_TYPE_BASE = "https://tally.dev/problems/"


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's refusal as RFC 9457 problem details."""
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "-".join(reason.lower().split()),
            "title": reason,
            "status": status_int,
            "detail": mesg,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = write_problem

# A request never waits on one SQL statement longer than this (commands and jobs have no limit
# unless DATABASE_STATEMENT_TIMEOUT is set for them: a long audit must not be cut short).
if not os.environ.get("DATABASE_STATEMENT_TIMEOUT"):  # unset, or empty (compose's default)
    os.environ["DATABASE_STATEMENT_TIMEOUT"] = "15"
