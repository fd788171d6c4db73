"""One ``configure_logging()``: pretty console output on a terminal, JSON lines otherwise.

The service's own loggers (``structlog.get_logger``) render straight to the output
stream: the canonical request line is written on every request, and routing it through
the standard library's ``logging`` machinery tripled its cost. Standard-library loggers
(uvicorn, pymongo) go through the same processors by a ``ProcessorFormatter`` on a
handler writing to the same stream. Request context (``request_id``, ``tenant_id``) is
merged from context variables.
"""

from __future__ import annotations

import json as json_module
import logging
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
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


_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)


class RequestLineWriter:
    """The canonical request line, rendered once from its flat dict by orjson and written
    whole. Through structlog's processor chain the line cost about 60 µs of a revocation's
    400 (``docs/PERFORMANCE.md``); the fields are the same: ``logger``, ``level``,
    ``timestamp``, redaction of secret-named keys.

    Used only while the configuration ``configure_logging`` installed is in place: a test
    that captures or reconfigures structlog gets the line through structlog again."""

    def __init__(self, output: TextIO, renderer: object, wrapper_class: object) -> None:
        self._lines = LineLogger("request", output)
        self._renderer = renderer
        self._wrapper_class = wrapper_class

    def current(self) -> bool:
        """Whether structlog still runs the configuration this writer belongs to."""
        config = structlog.get_config()
        processors = config["processors"]
        return (
            config["wrapper_class"] is self._wrapper_class
            and bool(processors)
            and processors[-1] is self._renderer
        )

    def write(self, event: str, logger: str, fields: dict[str, Any]) -> None:
        line = _redact(None, "info", {"event": event, **fields})
        line["logger"] = logger
        line["level"] = "info"
        _TIMESTAMP(None, "info", line)
        self._lines.msg(_orjson_text(line, default=repr))


def _orjson_text(obj: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
    """structlog's JSON serializer: orjson, compact, as the request line is rendered."""
    try:
        return orjson.dumps(obj, default=default).decode()
    except TypeError:  # an integer beyond 64 bits, a non-string key
        return json_module.dumps(obj, default=default)


_request_lines: RequestLineWriter | None = None
"""Set by ``configure_logging`` for JSON lines at level ``info`` or below."""


def log_request_line(logger: str, event: str, fields: dict[str, Any]) -> None:
    """An ``info`` line of the structlog logger named ``logger``: written by the
    ``RequestLineWriter`` when it applies."""
    writer = _request_lines
    if writer is not None and writer.current():
        writer.write(event, logger, fields)
    else:
        structlog.get_logger(logger).info(event, **fields)


def _logger_name(logger: Any, _: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", None))
    return event_dict


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    global _request_lines
    if json is None:
        json = not sys.stderr.isatty()
    output = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _TIMESTAMP,
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Tracebacks as plain text in both modes: a console renderer left to format them
    # itself may print every frame's local variables (rich, better_exceptions), tokens
    # and secrets among them.
    tracebacks: list[Any] = [structlog.processors.format_exc_info]
    wrapper_class = structlog.make_filtering_bound_logger(LEVELS[level.lower()])
    structlog.configure(
        processors=[_logger_name, *shared, *tracebacks, renderer],
        logger_factory=lambda *args: LineLogger(str(args[0]) if args else "app", output),
        wrapper_class=wrapper_class,
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    at_info = LEVELS[level.lower()] <= LEVELS["info"]
    _request_lines = (
        RequestLineWriter(output, renderer, wrapper_class) if json and at_info else None
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
