"""The operator console: server-rendered pages under ``/console`` (see ``routes.py``)."""
