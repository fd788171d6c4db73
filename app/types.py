"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]
"""A decoded JSON object."""

TenantId: TypeAlias = str
ClientId: TypeAlias = str
TokenHash: TypeAlias = bytes
"""HMAC-SHA-256 of a token under its tenant's token key (32 bytes)."""
