"""One ``configure_logging()``: pretty console output on a terminal, JSON lines otherwise.

The service's own loggers (``structlog.get_logger``) render straight to the output
stream: the canonical request line is written on every request, and routing it through
the standard library's ``logging`` machinery tripled its cost. Standard-library loggers
(uvicorn, pymongo) go through the same processors by a ``ProcessorFormatter`` on a
handler writing to the same stream. Request context (``request_id``, ``tenant_id``) is
merged from context variables.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED_KEYS = frozenset(
    {"token", "client_secret", "client_assertion", "authorization", "password", "secret", "key"}
)
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: a secret-named field never reaches a log line."""
    for name in REDACTED_KEYS.intersection(event_dict):
        event_dict[name] = "[redacted]"
    return event_dict


class LineLogger:
    """The logger at the end of structlog's chain: writes each rendered line."""

    _lock = threading.Lock()

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self._stream = stream
        # A line-buffered stream (stderr since Python 3.9) flushes on the newline.
        self._flush = not getattr(stream, "line_buffering", False)

    def msg(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            if self._flush:
                self._stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _logger_name(logger: Any, _: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", None))
    return event_dict


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    output = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Tracebacks as plain text in both modes: a console renderer left to format them
    # itself may print every frame's local variables (rich, better_exceptions), tokens
    # and secrets among them.
    tracebacks: list[Any] = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[_logger_name, *shared, *tracebacks, renderer],
        logger_factory=lambda *args: LineLogger(str(args[0]) if args else "app", output),
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level.lower()]),
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tracebacks,
            renderer,
        ],
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The canonical request line replaces uvicorn's access log.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    # A line per outbound request (SET deliveries, key sets) would name URLs that tenants
    # give, query strings included; delivery logs its own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
