"""structlog configuration: JSON lines in production, readable console on a TTY.

Every line can be bound to a delivery id and an issue identifier with
``structlog.contextvars.bound_contextvars(delivery_id=..., issue=...)``. Secrets never
reach a log line: settings hold them as ``SecretStr`` and log calls never pass bodies.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    fmt: Literal["json", "console", "auto"] = "auto", level: str = "info"
) -> None:
    """Configure structlog and the stdlib root logger (uvicorn, DBOS) alike."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    numeric = _LEVELS.get(level, logging.INFO)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Loggers are bound once, on first use: rebuilding one per call was a measurable
        # share of the intake's CPU per webhook. Configure before logging anything.
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("dbos", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    for name in ("dbos",):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
