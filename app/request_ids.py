"""Request ids (``X-Request-Id``): unique without a system call per request.

A random prefix per process, then a counter: 16 hex digits, as ``secrets.token_hex(8)``
gave, which read the kernel's random source on every request. A request id correlates
log lines and answers; it is no secret and grants nothing, so a guessable successor is
harmless. A forked child draws its own prefix.
"""

from __future__ import annotations

import itertools
import os
import secrets


class RequestIds:
    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


request_ids = RequestIds()
