"""How long a push receiver's delivery waits before trying the same SET again.

Exponential from one second, doubling to five minutes, with "equal jitter" (half the
delay fixed, half random), so that receivers that failed together (one outage of a
shared host) do not all come back at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable

FIRST_S = 1.0
LONGEST_S = 300.0


def delay_s(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after ``attempts`` failed attempts in a row (1 or more)."""
    ceiling = min(LONGEST_S, FIRST_S * 2.0 ** max(0, min(attempts - 1, 30)))
    return ceiling / 2 + rand() * ceiling / 2
