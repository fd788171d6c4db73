"""What a sandboxed call takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

FAILURE_KINDS = frozenset(
    {
        "timeout",
        "crashed",
        "exception",
        "malformed_reply",
        "oversized_reply",
        "missing_hook",
        "not_json",
    }
)
MAX_DETAIL = 300


class PluginCode(Protocol):
    """One version of an uploaded plugin (``app.models.PluginVersion`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SandboxResult:
    value: Any
    """The hook's JSON return value (``None`` if it returned ``None``)."""
    output: str
    """Captured stdout and stderr of the call, bounded."""
    duration_s: float
    """Wall time of the whole call, waiting for a worker included."""


class PluginFailure(Exception):
    """A plugin call that gave no usable value; ``kind`` is one of ``FAILURE_KINDS``."""

    def __init__(self, kind: str, detail: str) -> None:
        assert kind in FAILURE_KINDS, kind
        self.kind = kind
        self.detail = detail[:MAX_DETAIL]
        super().__init__(f"{kind}: {self.detail}")
