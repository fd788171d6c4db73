"""The Status List itself (the IETF OAuth Token Status List draft, section 4): one bit
per Referenced Token (``bits`` 1: 0 VALID, 1 INVALID), entry ``i`` in bit ``i % 8`` of
byte ``i // 8`` counted from the least significant bit, the bytes compressed with
DEFLATE in the ZLIB format at the highest level, then base64url without padding."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable

BITS = 1
VALID = 0
INVALID = 1


def encode(invalid: Iterable[int], size: int) -> str:
    """``lst`` for a list of ``size`` entries (a multiple of 8) with ``invalid`` set."""
    data = bytearray(size // 8)
    for idx in invalid:
        data[idx >> 3] |= 1 << (idx & 7)
    compressed = zlib.compress(bytes(data), level=9)
    return base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")
