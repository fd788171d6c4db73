"""Small validators for admin input, raising ``FieldError`` with the field's path.

Paths: object keys joined by ``.`` (``revocation.cascade``); a list item is its index in
brackets after the list's name (``issuer_aliases[1]``), or alone when the body itself is
the list (``[3].client_id``). The whole body is the empty path ``""``. A ``null`` field
counts as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.errors import FieldError

MAX_ID = 255
"""``client_id``, ``grant_id``: any string up to 255 characters."""
MAX_TEXT = 4096


def as_object(value: Any, path: str = "") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FieldError(path, "must be a JSON object")
    return value


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise FieldError(f"{prefix}{unknown[0]}", "unknown field")


def string(
    body: Mapping[str, Any],
    name: str,
    prefix: str = "",
    *,
    required: bool = False,
    max_length: int = MAX_TEXT,
    empty: bool = False,
) -> str | None:
    value = body.get(name)
    path = f"{prefix}{name}"
    if value is None:
        if required:
            raise FieldError(path, "is required")
        return None
    if not isinstance(value, str):
        raise FieldError(path, "must be a string")
    if not value and not empty:
        raise FieldError(path, "must not be empty")
    if len(value) > max_length:
        raise FieldError(path, f"must be at most {max_length} characters")
    return value


def required_string(
    body: Mapping[str, Any], name: str, prefix: str = "", *, max_length: int = MAX_TEXT
) -> str:
    value = string(body, name, prefix, required=True, max_length=max_length)
    assert value is not None
    return value


def integer(
    body: Mapping[str, Any], name: str, prefix: str = "", *, required: bool = False
) -> int | None:
    value = body.get(name)
    path = f"{prefix}{name}"
    if value is None:
        if required:
            raise FieldError(path, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(path, "must be a whole number")
    if not 0 <= value < 2**53:
        raise FieldError(path, "must be a number of seconds since the epoch")
    return value


def boolean(body: Mapping[str, Any], name: str, default: bool, prefix: str = "") -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FieldError(f"{prefix}{name}", "must be true or false")
    return value


def same_as_path(body: Mapping[str, Any], name: str, in_path: str) -> None:
    """An id repeated in the body must be the one in the path."""
    value = body.get(name)
    if value is not None and value != in_path:
        raise FieldError(name, "does not match the path")


def identifier(value: str, name: str) -> str:
    """A ``client_id``, ``grant_id`` or ``sub`` taken from the path."""
    if not value:
        raise FieldError(name, "must not be empty")
    if len(value) > MAX_ID:
        raise FieldError(name, f"must be at most {MAX_ID} characters")
    return value
