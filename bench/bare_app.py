"""The baseline: a bare Flask endpoint doing one INSERT + COMMIT per request.

Served by gunicorn with the same settings as tally (``gunicorn bench.bare_app:app``), it
measures what this machine's stack can do for one durable web write: Flask routing and
JSON, one pooled SQLAlchemy (psycopg 3) connection, one INSERT and one COMMIT (fsync).

Environment: BARE_DATABASE_URL (a ``postgresql+psycopg://`` URL) and BARE_SCHEMA (the
schema holding the throwaway table ``writes``, created by bench.checkout beforehand).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

app = Flask(__name__)

_lock = threading.Lock()
_engine: Engine | None = None
_engine_pid: int | None = None

_INSERT = text(
    "INSERT INTO writes (request_key, payload, created_at) VALUES (:key, :payload, :at) RETURNING id"
)


def engine() -> Engine:
    """One engine per process, built after the fork (same pool sizes as tally's engine)."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        with _lock:
            if _engine is None or _engine_pid != os.getpid():
                schema = os.environ["BARE_SCHEMA"]
                _engine = create_engine(
                    os.environ["BARE_DATABASE_URL"],
                    connect_args={"options": f"-csearch_path={schema}"},
                    pool_size=5,
                    max_overflow=20,
                )
                _engine_pid = os.getpid()
    return _engine


@app.post("/api/write")
def write():
    data = request.get_json(force=True, silent=True) or {}
    key = request.headers.get("Idempotency-Key", "")
    with engine().begin() as conn:  # BEGIN; INSERT; COMMIT
        row_id = conn.execute(
            _INSERT,
            {"key": key, "payload": request.get_data(as_text=True), "at": datetime.now(UTC)},
        ).scalar_one()
    return jsonify({"id": row_id, "amount": data.get("amount")}), 201


@app.get("/api/readyz")
def readyz():
    with engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return jsonify({"status": "ok"})
