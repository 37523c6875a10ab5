"""WSGI entry point: `gunicorn wsgi:app` and `flask --app wsgi …`.

create_app() reads and checks the settings (a missing or malformed one stops the process here, with
one line, before anything is served); connections are opened lazily in each process.
"""

import sys

from app import create_app
from app.config import SettingsError

try:
    app = create_app()
except SettingsError as exc:
    sys.stderr.write(f"tally: configuration error: {exc}\n")
    raise SystemExit(2) from None
