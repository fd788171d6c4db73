"""Time, in whole seconds since the epoch, behind one seam."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> int: ...


def system_clock() -> int:
    return int(time.time())
