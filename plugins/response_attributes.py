"""Fixed JSON attributes and headers added to the endpoints' responses.

IBM Security Verify Access's mapping rules for the revocation and introspection
responses, as configuration: ``response_mapping`` returns
``ResponseAdditions(attributes, headers)`` from the tenant's config, on successful
responses (status 200), on errors, or on both. The service never replaces a member the
body already has (``error``, ``active``, …), and an empty revocation ``200`` with
attributes becomes a JSON object.

Config::

    {
      "attributes": {"policy": "v2", "links": {"help": "https://…"}},  # any JSON [{}]
      "headers": {"X-Revocation-Policy": "v2"},  # name → one-line value [{}]
      "on": "always",                            # success | error | always [always]
      "endpoints": ["revocation", "introspection"]                       # [both]
    }

Header names and values are checked when the config is set, as the service checks a
plugin's headers on each call (``app.plugins.decisions``): letters, digits and ``-``,
not a header the service sets itself (``Cache-Control``, ``Content-Type``,
``WWW-Authenticate``, ``Access-Control-*``, …), a one-line printable ASCII value. Emits
no events.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.plugins.config import ENDPOINTS, endpoints, known_keys
from app.plugins.context import HookContext, ResponseView
from app.plugins.decisions import (
    HEADER_NAME_RE,
    MAX_HEADER_VALUE,
    MAX_ITEMS,
    RESERVED_HEADERS,
    ResponseAdditions,
    header_value_ok,
)
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

WHEN = ("success", "error", "always")
KEYS = frozenset({"attributes", "headers", "on", "endpoints"})
"""As ``app.plugins.decisions.decide_response``."""
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_DEPTH = 16
SUCCESS = 200


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: numbers must be finite")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: member names must be strings")
            _check_json(item, f"{where}.{key}", depth + 1)
        return
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


def _attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("attributes must be a JSON object")
    if len(value) > MAX_ITEMS:
        raise ValueError(f"attributes: at most {MAX_ITEMS} members")
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValueError("attributes: member names must be non-empty strings")
    _check_json(value, "attributes")
    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if len(encoded.encode()) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes: at most {MAX_ATTRIBUTES_BYTES} bytes of JSON")
    attributes: dict[str, Any] = json.loads(encoded)
    return attributes


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("headers must be an object of header name to value")
    if len(value) > MAX_ITEMS:
        raise ValueError(f"headers: at most {MAX_ITEMS} headers")
    seen: set[str] = set()
    out: dict[str, str] = {}
    for name, text in value.items():
        lowered = name.lower() if isinstance(name, str) else ""
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            raise ValueError(f"headers: {name!r} is not a header name (letters, digits, -)")
        if lowered in RESERVED_HEADERS or lowered.startswith("access-control-"):
            raise ValueError(f"headers.{name}: set by the service itself, not by a plugin")
        if lowered in seen:
            raise ValueError(f"headers.{name}: given twice")
        seen.add(lowered)
        if not header_value_ok(text):
            raise ValueError(
                f"headers.{name}: the value must be one line of printable ASCII, "
                f"at most {MAX_HEADER_VALUE} characters"
            )
        out[name] = text
    return out


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    config = known_keys(config, KEYS)
    on = config.get("on", "always")
    if on not in WHEN:
        raise ValueError(f"on must be one of {', '.join(WHEN)}")
    out = {
        "attributes": _attributes(config.get("attributes", {})),
        "headers": _headers(config.get("headers", {})),
        "on": on,
        "endpoints": endpoints(config.get("endpoints", list(ENDPOINTS))),
    }
    if not out["attributes"] and not out["headers"]:
        raise ValueError("attributes: give attributes or headers (both are empty)")
    return out


@hookimpl
def response_mapping(context: HookContext, response: ResponseView) -> ResponseAdditions | None:
    config = context.config
    if context.endpoint not in config.get("endpoints", ENDPOINTS):
        return None
    on = config.get("on", "always")
    success = response.status == SUCCESS
    if (on == "success" and not success) or (on == "error" and success):
        return None
    return ResponseAdditions(dict(config.get("attributes", {})), dict(config.get("headers", {})))
