"""What the fuzzer seeds before it runs: one tenant per cascade policy, its clients and
credentials, a grant record, an uploaded plugin, and a scratch tenant the fuzzer may
replace and delete; all through the admin API, as an operator would.

Every tenant lives at ``{base}/t/{policy}`` and allows whatever reaches deep code (JSONP,
``token_type_hint=all``, other clients' tokens, failed authentications without limit).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

OPERATOR_KEY = "fuzz-operator-key-0123456789abcdef"
POLICIES = ("token", "grant", "subject", "spid", "cie")
SCRATCH = "fuzz-scratch"
"""A tenant the fuzzer's own PUT and PATCH of tenants are pointed at."""
DOOMED = "fuzz-doomed"
"""A tenant the fuzzer's DELETE of tenants is pointed at."""
SECRET = "fuzz-client-secret-0123456789abcdef"
CLIENTS: dict[str, dict[str, Any]] = {
    "app": {
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
        "scope": "introspect revoke_any_token",
    },
    "post": {
        "token_endpoint_auth_method": "client_secret_post",
        "client_secret": SECRET,
        "scope": "introspect",
    },
    "spa": {"type": "public", "token_endpoint_auth_method": "none"},
}
SUBJECTS = ("alice", "bob", "carol")
GRANTS = tuple(f"g{i}" for i in range(6))
SESSIONS = ("d0", "d1", "d2")
PLUGIN = "probe"
RECEIVER = "poller"
"""A poll receiver of Security Event Tokens (``app``'s), seeded in every policy tenant."""
PLUGIN_SOURCE = b"def response_mapping(context, response):\n    return None\n"
TOKENS_PER_TENANT = 30
WEEK = 7 * 86_400

Send = Callable[..., requests.Response]
"""``send(method, path, **requests_kwargs)`` against the service."""


def tenant_id(policy: str) -> str:
    return f"fuzz-{policy}"


def issuer(base_url: str, policy: str) -> str:
    return f"{base_url.rstrip('/')}/t/{policy}"


def token(policy: str, i: int) -> str:
    return f"fuzz-{policy}-token-{i}"


def basic(client_id: str, secret: str = SECRET) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def settings(base_url: str, policy: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "issuer": issuer(base_url, policy),
        "revocation": {
            "cascade": policy,
            "allow_revoke_all": True,
            "allow_revoke_other_clients": True,
        },
        "jsonp": {"enabled": True},
        "cors": {"allowed_origins": ["*"]},
        "status_list": {"enabled": True},
        "global_revocation": {"enabled": True},
        "rate_limits": {"per_client_per_minute": 1_000_000, "per_address_per_minute": 1_000_000},
    }
    if policy == "cie":
        # An operator plugin on one tenant: the plugin steps run in-process too.
        attributes = {"attributes": {"fuzz": True}, "headers": {"X-Fuzz": "1"}}
        out["plugins"] = {"enabled": [{"name": "response_attributes", "config": attributes}]}
    return out


def credentials(policy: str, now: int) -> list[dict[str, Any]]:
    """Access and refresh tokens and device secrets spread over clients, grants,
    subjects and sessions, so that every cascade has something to take."""
    types = ("access_token", "refresh_token", "access_token", "device_secret")
    out = []
    for i in range(TOKENS_PER_TENANT):
        kind = types[i % len(types)]
        out.append(
            {
                "token": token(policy, i),
                "type": kind,
                "client_id": ("app", "spa", "post")[i % 3],
                "exp": now + WEEK,
                "iat": now,
                "sub": SUBJECTS[i % len(SUBJECTS)],
                "grant_id": GRANTS[i % len(GRANTS)],
                "device_session_id": SESSIONS[i % len(SESSIONS)]
                if kind != "access_token"
                else None,
                "scope": "openid",
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class World:
    """The seeded data, as the steering of generated requests needs it."""

    base_url: str

    def issuer(self, policy: str) -> str:
        return issuer(self.base_url, policy)


def _ok(response: requests.Response) -> None:
    assert response.status_code < 300, (response.status_code, response.text)


def seed(send: Send, base_url: str, operator_key: str = OPERATOR_KEY) -> World:
    """Create (or replace) everything the fuzzer steers its requests to."""
    operator = {"Authorization": f"Bearer {operator_key}"}
    now = int(time.time())
    for policy in POLICIES:
        tenant = f"/admin/v1/tenants/{tenant_id(policy)}"
        _ok(send("PUT", tenant, json=settings(base_url, policy), headers=operator))
        for client_id, body in CLIENTS.items():
            _ok(send("PUT", f"{tenant}/clients/{client_id}", json=body, headers=operator))
        _ok(send("POST", f"{tenant}/credentials", json=credentials(policy, now), headers=operator))
        grant = {"client_id": "app", "sub": SUBJECTS[0], "scope": "openid"}
        _ok(send("PUT", f"{tenant}/grants/{GRANTS[0]}", json=grant, headers=operator))
        _ok(
            send(
                "PUT",
                f"{tenant}/plugins/{PLUGIN}",
                data=PLUGIN_SOURCE,
                headers={**operator, "Content-Type": "text/x-python"},
            )
        )
        receiver = {"delivery": "poll", "client_id": "app"}
        _ok(send("PUT", f"{tenant}/receivers/{RECEIVER}", json=receiver, headers=operator))
    for spare in (SCRATCH, DOOMED):
        bare = {"issuer": f"{base_url.rstrip('/')}/t/{spare}"}
        _ok(send("PUT", f"/admin/v1/tenants/{spare}", json=bare, headers=operator))
    return World(base_url)
