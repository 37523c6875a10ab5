"""WSGI entry point: `gunicorn wsgi:app` and `flask --app wsgi …`.

create_app() only reads settings; connections are opened lazily in each process.
"""

from app import create_app

app = create_app()
