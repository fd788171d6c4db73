"""JSON Schemas of tenant settings (contract section 8), built from ``app.settings.FIELDS``.

The nesting, the names and the defaults come from ``FIELDS`` itself, and the choices
from the tuples its validators check against. What a validator keeps inside a closure
(the bounds of a number, the pattern of a claim name) is stated once more in ``LEAVES``;
``tests/test_openapi.py`` holds each such schema against its validator. ``LEAVES`` must
name every setting: a setting without a schema fails to build the document.

Three shapes: what ``PUT`` takes (``issuer`` required, ``null`` meaning unset), what
``PATCH`` takes (an RFC 7396 merge patch: anything may be ``null``, to reset it), and the
effective settings that responses show (every setting, defaults filled in).
"""

from __future__ import annotations

from typing import Any, Literal

from app.auth_methods import AuthMethod
from app.settings import (
    CASCADE_POLICIES,
    FAILURE_MODES,
    FIELDS,
    HOST_PATTERN_RE,
    MAX_RETENTION_DAYS,
    MAX_TOKEN_LIFETIME_S,
    ORIGIN_RE,
    SIGNING_ALGS,
    SUBJECT_FORMATS,
    TENANT_ID_RE,
    TYP_RE,
)
from app.types import JSON

Shape = Literal["put", "patch", "effective"]

BOOLEAN: JSON = {"type": "boolean"}
URL: JSON = {
    "type": "string",
    "pattern": r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+(/[^?#]*)?\s*$",
    "description": "An absolute https (or http) URL without query, fragment or user.",
}
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$"
"""``app.settings._name``: a claim or plugin name."""
NAME: JSON = {"type": "string", "pattern": NAME_PATTERN}
JWK_SET: JSON = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    "description": "A JWK set (RFC 7517).",
}
PLUGIN_ENTRY: JSON = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": NAME, "config": {"type": "object"}},
    "additionalProperties": False,
    "description": "An operator plugin or an upload of this tenant, with its configuration.",
}
TENANT_ID: JSON = {"type": "string", "pattern": TENANT_ID_RE.pattern}


def _integer(minimum: int, maximum: int) -> JSON:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _list_of(items: JSON) -> JSON:
    return {"type": "array", "items": items}


def _enum(choices: tuple[str, ...] | list[str]) -> JSON:
    return {"type": "string", "enum": list(choices)}


LEAVES: dict[str, JSON] = {
    "issuer": URL,
    "issuer_aliases": _list_of(URL),
    "enabled": BOOLEAN,
    "revocation.enabled": BOOLEAN,
    "revocation.cascade": _enum(CASCADE_POLICIES),
    "revocation.public_clients_may_revoke": BOOLEAN,
    "revocation.allow_revoke_all": BOOLEAN,
    "revocation.allow_revoke_other_clients": BOOLEAN,
    "introspection.enabled": BOOLEAN,
    "auth.methods": _list_of(_enum([m.value for m in AuthMethod])),
    "auth.assertion_algs": _list_of(_enum(SIGNING_ALGS)),
    "auth.max_assertion_lifetime_s": _integer(1, 86_400),
    "auth.clock_skew_s": _integer(0, 3_600),
    "cors.allowed_origins": _list_of(
        {"type": "string", "pattern": rf"^\*$|{ORIGIN_RE.pattern}"},
    ),
    "jsonp.enabled": BOOLEAN,
    "jwt_access_tokens.jwks": JWK_SET,
    "jwt_access_tokens.jwks_uri": URL,
    "jwt_access_tokens.grant_claim": NAME,
    "jwt_access_tokens.session_claim": NAME,
    "jwt_access_tokens.device_secret_typ": {"type": "string", "pattern": TYP_RE.pattern},
    "key_fetch.allowed_hosts": _list_of(
        {"type": "string", "pattern": HOST_PATTERN_RE.pattern, "maxLength": 253}
    ),
    "plugins.enabled": _list_of(PLUGIN_ENTRY),
    "plugins.failure_mode.pre": _enum(FAILURE_MODES),
    "plugins.failure_mode.post": _enum(FAILURE_MODES),
    "rate_limits.per_client_per_minute": _integer(1, 1_000_000),
    "rate_limits.per_address_per_minute": _integer(1, 1_000_000),
    "retention.events_days": _integer(0, MAX_RETENTION_DAYS),
    "retention.max_token_lifetime_s": _integer(0, MAX_TOKEN_LIFETIME_S),
    "status_list.enabled": BOOLEAN,
    "status_list.ttl_s": _integer(1, 86_400),
    "global_revocation.enabled": BOOLEAN,
    "global_revocation.subject_formats": {
        **_list_of(_enum(SUBJECT_FORMATS)),
        "minItems": 1,
        "uniqueItems": True,
    },
    "receivers.pause_after_s": _integer(1, 30 * 86_400),
}


def nullable(schema: JSON) -> JSON:
    return {"anyOf": [schema, {"type": "null"}]}


def _leaf(path: str, shape: Shape) -> JSON:
    leaf: JSON = {**LEAVES[path]}
    default = FIELDS[path].default
    if shape == "effective":
        return leaf if default is not None else nullable(leaf)
    if default is not None:
        leaf["default"] = default
    # A null setting counts as unset (in a merge patch, it resets the default).
    return nullable(leaf)


def _tree() -> dict[str, Any]:
    """The dotted names of ``FIELDS`` as nested dicts, a leaf being its dotted name."""
    root: dict[str, Any] = {}
    for path in FIELDS:
        node = root
        *groups, leaf = path.split(".")
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = path
    return root


def _object(tree: dict[str, Any], shape: Shape) -> JSON:
    properties: JSON = {}
    for name, node in tree.items():
        if isinstance(node, str):
            properties[name] = _leaf(node, shape)
        else:
            group = _object(node, shape)
            # A null group is unset as a whole (in a merge patch, reset).
            properties[name] = group if shape == "effective" else nullable(group)
    out: JSON = {"type": "object", "properties": properties, "additionalProperties": False}
    if shape == "effective":
        out["required"] = list(properties)
    return out


def settings_schema(shape: Shape) -> JSON:
    """The settings object of ``shape``; ``PUT`` and ``PATCH`` bodies may also repeat
    the path's ``tenant_id``."""
    root = _object(_tree(), shape)
    if shape != "patch":
        root["properties"]["issuer"] = LEAVES["issuer"]
    if shape == "put":
        root["required"] = ["issuer"]
    if shape != "effective":
        repeated = {**TENANT_ID, "description": "The tenant id of the path, repeated."}
        root["properties"] = {"tenant_id": nullable(repeated), **root["properties"]}
    return root
