"""WSGI entry point: `gunicorn -c python:backend.gunicorn_conf wsgi:app`, `flask --app wsgi ...`."""

from backend import create_app

app = create_app()
