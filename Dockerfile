# syntax=docker/dockerfile:1
# One image for every tally process: the gunicorn web server (the default command), the RQ
# workers (`flask --app wsgi worker`), the scheduler (`flask --app wsgi cron`) and the one-shot
# commands (`flask --app wsgi db upgrade`, `keys create`, `audit verify`, ...).
#   docker build -t tally:local .      (`docker compose build` does the same)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the only stage with a compiler -------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# For any dependency without a wheel for this platform (all have one on linux/amd64 and arm64
# today); nothing of it reaches the final stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# The dependencies, exactly as locked (`make lock`): every version pinned, every file checked
# against its hash. This layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
# Then tally itself, editable: its code stays in /app (one copy, the same path in the final
# stage) and the venv gets its metadata, i.e. the `flask worker` / `flask cron` entry points.
COPY . .
RUN pip install --no-deps -e . \
    && python -m compileall -q /app

# ---- final: the venv and the source, no compiler, not root -----------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=wsgi \
    TZ=UTC
RUN groupadd --system --gid 10001 tally \
    && useradd --system --uid 10001 --gid tally --home-dir /home/tally --create-home \
        --shell /usr/sbin/nologin tally
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER tally
EXPOSE 8000
# Liveness of the web server (compose gives the workers and the scheduler checks of their own).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/healthz', timeout=4)"]
# The access log as JSON lines with the request id (app/logs.py), like every other log line.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-", "--logger-class", "app.logs.GunicornLogger", "wsgi:app"]
