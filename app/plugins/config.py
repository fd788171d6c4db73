"""Checks that operator plugins' ``plugin_config`` hooks share.

Each raises ``ValueError`` with a message that names the key, which the host turns into
``400 invalid_request`` with ``field: plugins.enabled[i].config``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ENDPOINTS = ("revocation", "introspection")
"""The public endpoints whose requests run plugins."""


def known_keys(config: Any, known: Iterable[str]) -> dict[str, Any]:
    """``config`` as a dict, refusing anything but an object of the ``known`` keys."""
    if not isinstance(config, dict):
        raise ValueError("the config must be an object")
    allowed = set(known)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})")
    return config


def endpoints(value: Any) -> list[str]:
    """A non-empty subset of ``ENDPOINTS``, in their order."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"endpoints must be a non-empty list of {' and '.join(ENDPOINTS)}")
    for item in value:
        if item not in ENDPOINTS:
            raise ValueError(f"endpoints: {item!r} is not one of {', '.join(ENDPOINTS)}")
    return [e for e in ENDPOINTS if e in value]
