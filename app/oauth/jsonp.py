"""JSONP at the revocation endpoint (RFC 7009 section 3, contract section 4.1).

Where the tenant sets ``jsonp.enabled``, the form parameter ``callback`` names a
JavaScript function, and the answer is a script calling it: ``NAME();`` on success,
``NAME({"error":…});`` on an OAuth error, always with status ``200`` so that the
script's callback runs whatever happened. Elsewhere ``callback`` is one of the ignored
parameters. Two steps: ``read_callback`` right after the form is read, so a bad name is
refused (``400`` as JSON) before the client is authenticated or anything is revoked, and
``render_jsonp`` after ``map_response``, so a plugin's attributes end up inside the call.
"""

from __future__ import annotations

import json
import re

from app.errors import InvalidRequest
from app.oauth.endpoint import Exchange

CALLBACK_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]{0,63}")
"""Matched whole (``fullmatch``): a ``$`` anchor would let a trailing newline through."""
CALLBACK = "jsonp.callback"
"""The key of the checked name in ``Exchange.extra``."""
SCRIPT_HEADERS = {
    "Content-Type": "application/javascript",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


async def read_callback(x: Exchange) -> None:
    if not x.tenant.settings.jsonp_enabled or "callback" not in x.form:
        return
    name = x.form["callback"]
    if not CALLBACK_RE.fullmatch(name):
        # The name is not repeated back: it is what an attacker would choose.
        raise InvalidRequest(
            "callback must be a JavaScript name: a letter, _ or $, then letters, digits, "
            "_, $ or ., at most 64 characters"
        )
    x.extra[CALLBACK] = name


async def render_jsonp(x: Exchange) -> None:
    """The endpoint's answer as a call of the callback. The status becomes ``200``; its
    other headers stay (``Retry-After``, ``WWW-Authenticate``, a plugin's)."""
    name: str | None = x.extra.get(CALLBACK)
    response = x.response
    if name is None or response is None:
        return
    x.log(jsonp=True)
    body = bytes(response.body)
    # Re-encoded as ASCII: U+2028 and U+2029 are valid in JSON strings but end a line in
    # older JavaScript engines.
    argument = json.dumps(json.loads(body), separators=(",", ":")) if body else ""
    response.body = f"{name}({argument});".encode()
    response.status_code = 200
    for header, value in SCRIPT_HEADERS.items():
        response.headers[header] = value
    response.headers["content-length"] = str(len(response.body))
