"""Issuer URLs: validation and the normal form used to compare and index them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_issuer(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, one trailing ``/`` removed.

    Raises ``ValueError`` for anything that is not an absolute http(s) URL without
    query or fragment.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("must be an absolute https (or http) URL")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("must have no query, fragment or user information")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path
    if path.endswith("/"):
        path = path[:-1]
    return urlunsplit((scheme, netloc, path, "", ""))


def issuer_path(normalized: str) -> str:
    return urlsplit(normalized).path
