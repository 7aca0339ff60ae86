"""What the MCP tools raise when a request cannot be carried out (no imports of ours, so
the backend and the tools it calls can share it without importing each other)."""

from __future__ import annotations


class Refused(Exception):
    """The request cannot be carried out; ``str()`` is the caller-facing reason."""
