"""The limits a sandbox puts on tenants' plugin code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    call_timeout_s: float = 0.2
    """Wall time per call: waiting for a worker, queued behind the tenant's other calls in
    it, loading the module the first time, running the hook. Starting a fresh worker is
    not counted (see ``START_TIMEOUT_S``)."""
    cpu_s: int = 10
    """``RLIMIT_CPU`` of a worker, cumulative; a worker is replaced when it dies."""
    memory_bytes: int = 256 * 2**20
    """``RLIMIT_AS`` of a worker."""
    open_files: int = 32
    """``RLIMIT_NOFILE`` of a worker."""
    file_size_bytes: int = 0
    """``RLIMIT_FSIZE`` of a worker: 0, no file can be written."""
    max_reply_bytes: int = 256 * 1024
    """The largest JSON encoding of a hook's return value."""
    max_output_bytes: int = 16 * 1024
    """Captured ``print()``/stderr per call, truncated beyond."""
    workers_per_tenant: int = 2
    max_in_flight: int = 32
    """Calls of a tenant queued in one worker at once; another worker is started (up to
    ``workers_per_tenant``) only when every one has this many."""
    max_workers: int = 64
    """For the whole process: the least recently used idle worker of another tenant is
    stopped to make room, or the call waits."""
    idle_s: float = 60.0
    """Idle workers are stopped after this."""

    def __post_init__(self) -> None:
        if self.call_timeout_s <= 0:
            raise ValueError("call_timeout_s must be positive")
        if min(self.workers_per_tenant, self.max_workers, self.max_in_flight) < 1:
            raise ValueError("workers_per_tenant, max_workers, max_in_flight must be at least 1")
        if self.idle_s < 0:
            raise ValueError("idle_s must not be negative")


START_TIMEOUT_S = 10.0
"""A fresh worker must say hello within this (interpreter start, imports, confinement);
not charged to the call, which is not the plugin's doing."""

STOP_GRACE_S = 0.2
"""An idle worker told to stop (its request pipe closed) exits within this, or is killed."""
