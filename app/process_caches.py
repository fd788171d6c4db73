"""What a process keeps per object it serves (a store, a tenant directory).

Keyed by the object, not module-wide: one process (a test run) may hold services on
several stores whose tenants share ids and configuration version numbers. Weakly: the
entry goes with its object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

K = TypeVar("K")
V = TypeVar("V")


class ProcessCaches(Generic[K, V]):
    """One ``V`` per ``K``, made by ``make`` on first use."""

    def __init__(self, make: Callable[[], V]) -> None:
        self._make = make
        self._made: WeakKeyDictionary[K, V] = WeakKeyDictionary()

    def of(self, owner: K) -> V:
        found = self._made.get(owner)
        if found is None:
            found = self._made[owner] = self._make()
        return found
