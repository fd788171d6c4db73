"""Tenant settings (contract section 8): schema, defaults, validation, typed view.

A tenant stores only the settings that were set; ``effective()`` fills in defaults. The
same dotted names are used by the admin API's JSON and by ``tenants/*.toml``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.auth_methods import AuthMethod
from app.errors import FieldError
from app.issuers import normalize_issuer
from app.key_sets import check_public as check_public_key_set
from app.types import JSON

SIGNING_ALGS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
)  # fmt: skip
"""What ``auth.assertion_algs`` may allow; ``none`` never."""
DEFAULT_ASSERTION_ALGS = ("RS256", "PS256", "ES256", "EdDSA", "HS256")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_PATTERN_RE = re.compile(rf"^(?:\*|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*)$")
TYP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+./-]{0,63}$")
CASCADE_POLICIES = ("token", "grant", "subject", "spid", "cie")
FAILURE_MODES = ("fail_closed", "fail_open")
SUBJECT_FORMATS = ("iss_sub", "opaque", "email", "phone_number", "account")
"""RFC 9493 formats a Global Token Revocation request may name a subject in: ``iss_sub``
(this issuer) and ``opaque`` (the ``sub`` itself) always mean the ``sub``; the others
only where the tenant's ``sub`` values are of that kind (an e-mail address, …)."""
TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ORIGIN_RE = re.compile(r"^https?://[^/?#\s]+$")
SPACE_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f]")
NO_AUTH_METHOD = (
    "must allow at least one method: with none every client is refused (switch an endpoint "
    "off with revocation.enabled or introspection.enabled)"
)
MAX_RETENTION_DAYS = 36_500
MAX_TOKEN_LIFETIME_S = 10 * 31_536_000
"""Bounds of the ``retention.*`` settings; 0 in either means "keep for ever"."""

Validator = Callable[[str, Any], Any]


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(path, "must be true or false")
    return value


def _int(minimum: int, maximum: int) -> Validator:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(path, "must be a whole number")
        if not minimum <= value <= maximum:
            raise FieldError(path, f"must be between {minimum} and {maximum}")
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Validator:
    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise FieldError(path, f"must be one of: {', '.join(choices)}")
        return str(value)

    return check


def _subset(choices: tuple[str, ...], *, if_empty: str | None = None) -> Validator:
    """A list of some of ``choices``, each once; ``if_empty``: why it may not be empty."""

    def check(path: str, value: Any) -> list[str]:
        if not isinstance(value, list) or any(v not in choices for v in value):
            raise FieldError(path, f"must be a list of: {', '.join(choices)}")
        if not value and if_empty:
            raise FieldError(path, if_empty)
        return _once(path, value)

    return check


def _once(path: str, values: list[Any], normal: Callable[[Any], Any] = lambda v: v) -> list[Any]:
    """``values`` as given, refused when one repeats another (compared in normal form):
    a repeat is a mistake the admin should see, not have silently dropped."""
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if normal(value) in seen:
            raise FieldError(f"{path}[{i}]", f"repeats {value!r}")
        seen.add(normal(value))
    return list(values)


def _url(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(path, "must be a URL")
    if SPACE_OR_CONTROL_RE.search(value):
        # urlsplit drops some of them, so the URL matched would not be the one stored.
        raise FieldError(path, "must have no spaces or control characters")
    try:
        normalize_issuer(value)
    except ValueError as exc:
        raise FieldError(path, str(exc)) from None
    return value


def _urls(path: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(path, "must be a list of URLs")
    return [_url(f"{path}[{i}]", v) for i, v in enumerate(value)]


def _origins(path: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(path, "must be a list of origins")
    normal: dict[str, str] = {}
    for i, v in enumerate(value):
        if not isinstance(v, str) or not (v == "*" or ORIGIN_RE.match(v)):
            raise FieldError(f"{path}[{i}]", "must be an origin such as https://app.example")
        try:
            normal[v] = v if v == "*" else normalize_issuer(v)
        except ValueError as exc:  # an invalid port: it would match no request
            raise FieldError(f"{path}[{i}]", str(exc)) from None
    return _once(path, value, normal.__getitem__)


def _optional_object(path: str, value: Any) -> JSON:
    if not isinstance(value, dict):
        raise FieldError(path, "must be an object")
    return value


def _jwks(path: str, value: Any) -> JSON:
    """A JWK set of public signature keys, at least one usable (``app.key_sets``): the
    settings are readable by the tenant's admins, so no private or symmetric key."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise FieldError(path, "must be a JWK set: an object with a list 'keys'")
    check_public_key_set(value, path)
    return value


def _host_patterns(path: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(path, "must be a list of host names")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not HOST_PATTERN_RE.match(v) or len(v) > 253:
            raise FieldError(f"{path}[{i}]", "must be *, a host name or *.a-domain, in lower case")
    return _once(path, value)


def _typ(path: str, value: Any) -> str:
    if not isinstance(value, str) or not TYP_RE.match(value):
        raise FieldError(path, "must be a JOSE typ value such as device-secret+jwt")
    return value


def _name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}", value):
        raise FieldError(path, "must be a name (letters, digits, _ . : -)")
    return value


def _plugins(path: str, value: Any) -> list[JSON]:
    if not isinstance(value, list):
        raise FieldError(path, "must be a list of {name, config}")
    out: list[JSON] = []
    for i, item in enumerate(value):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(here, "must be an object {name, config}")
        unknown = set(item) - {"name", "config"}
        if unknown:
            raise FieldError(f"{here}.{sorted(unknown)[0]}", "unknown key")
        name = _name(f"{here}.name", item.get("name"))
        if any(entry["name"] == name for entry in out):
            raise FieldError(f"{here}.name", f"{name} is enabled twice")
        config = _optional_object(f"{here}.config", item.get("config", {}))
        out.append({"name": name, "config": config})
    return out


@dataclass(frozen=True, slots=True)
class Field:
    validate: Validator
    default: Any


FIELDS: dict[str, Field] = {
    "issuer": Field(_url, None),
    "issuer_aliases": Field(_urls, []),
    "enabled": Field(_bool, True),
    "revocation.enabled": Field(_bool, True),
    "revocation.cascade": Field(_choice(CASCADE_POLICIES), "grant"),
    "revocation.public_clients_may_revoke": Field(_bool, True),
    "revocation.allow_revoke_all": Field(_bool, False),
    "revocation.allow_revoke_other_clients": Field(_bool, False),
    "introspection.enabled": Field(_bool, True),
    "auth.methods": Field(
        _subset(tuple(AuthMethod), if_empty=NO_AUTH_METHOD), [m.value for m in AuthMethod]
    ),
    "auth.assertion_algs": Field(_subset(SIGNING_ALGS), list(DEFAULT_ASSERTION_ALGS)),
    "auth.max_assertion_lifetime_s": Field(_int(1, 86_400), 300),
    "auth.clock_skew_s": Field(_int(0, 3_600), 60),
    "cors.allowed_origins": Field(_origins, []),
    "jsonp.enabled": Field(_bool, False),
    "jwt_access_tokens.jwks": Field(_jwks, None),
    "jwt_access_tokens.jwks_uri": Field(_url, None),
    "jwt_access_tokens.grant_claim": Field(_name, "grant_id"),
    "jwt_access_tokens.session_claim": Field(_name, "sid"),
    "jwt_access_tokens.device_secret_typ": Field(_typ, None),
    "key_fetch.allowed_hosts": Field(_host_patterns, ["*"]),
    "plugins.enabled": Field(_plugins, []),
    "plugins.failure_mode.pre": Field(_choice(FAILURE_MODES), "fail_closed"),
    "plugins.failure_mode.post": Field(_choice(FAILURE_MODES), "fail_open"),
    "rate_limits.per_client_per_minute": Field(_int(1, 1_000_000), 10),
    "rate_limits.per_address_per_minute": Field(_int(1, 1_000_000), 100),
    "retention.events_days": Field(_int(0, MAX_RETENTION_DAYS), 90),
    "retention.max_token_lifetime_s": Field(_int(0, MAX_TOKEN_LIFETIME_S), 31_536_000),
    "status_list.enabled": Field(_bool, False),
    "status_list.ttl_s": Field(_int(1, 86_400), 60),
    "global_revocation.enabled": Field(_bool, False),
    "global_revocation.subject_formats": Field(
        _subset(SUBJECT_FORMATS, if_empty="must allow at least one format"), ["iss_sub", "opaque"]
    ),
    "receivers.pause_after_s": Field(_int(1, 30 * 86_400), 86_400),
}


def _all_groups() -> set[str]:
    groups: set[str] = set()
    for path in FIELDS:
        parts = path.split(".")
        for n in range(1, len(parts)):
            groups.add(".".join(parts[:n]))
    return groups


GROUPS = _all_groups()


def validate(settings: Mapping[str, Any], prefix: str = "") -> JSON:
    """Validate explicit settings (nested objects); unknown keys name themselves."""
    if not isinstance(settings, Mapping):
        raise FieldError(prefix or "settings", "must be an object")
    out: JSON = {}
    for name, value in settings.items():
        path = f"{prefix}{name}"
        if "." in name:
            # Stored as given it would be read by no one: settings are nested objects.
            raise FieldError(path, "unknown setting: a dotted name is a path of nested objects")
        if path in FIELDS:
            if value is not None:
                out[name] = FIELDS[path].validate(path, value)
        elif path in GROUPS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise FieldError(path, "must be an object")
            nested = validate(value, f"{path}.")
            if nested:
                out[name] = nested
        else:
            raise FieldError(path, "unknown setting")
    if not prefix:
        if "issuer" not in out:
            raise FieldError("issuer", "is required")
        issuers = [out["issuer"], *out.get("issuer_aliases", [])]
        normalized = [normalize_issuer(i) for i in issuers]
        if len(set(normalized)) != len(normalized):
            raise FieldError("issuer_aliases", "repeats the issuer or another alias")
        jwt_keys = out.get("jwt_access_tokens", {})
        if "jwks" in jwt_keys and "jwks_uri" in jwt_keys:
            raise FieldError("jwt_access_tokens.jwks_uri", "give jwks or jwks_uri, not both")
    return out


def explicit(settings: Mapping[str, Any], path: str) -> Any:
    """What the tenant set at ``path``, or None where it set nothing (stored settings
    never hold None: ``validate`` drops it)."""
    node: Any = settings
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def lookup(settings: Mapping[str, Any], path: str) -> Any:
    value = explicit(settings, path)
    return FIELDS[path].default if value is None else value


def effective(settings: Mapping[str, Any]) -> JSON:
    """All settings, defaults filled in, as nested objects."""
    out: JSON = {}
    for path in FIELDS:
        node = out
        *groups, leaf = path.split(".")
        for g in groups:
            node = node.setdefault(g, {})
        node[leaf] = lookup(settings, path)
    return out


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """The typed, defaulted view the request path reads."""

    issuer: str
    issuer_aliases: tuple[str, ...]
    enabled: bool
    revocation_enabled: bool
    cascade: str
    public_clients_may_revoke: bool
    allow_revoke_all: bool
    allow_revoke_other_clients: bool
    introspection_enabled: bool
    auth_methods: frozenset[str]
    assertion_algs: tuple[str, ...]
    max_assertion_lifetime_s: int
    clock_skew_s: int
    cors_allowed_origins: tuple[str, ...]
    jsonp_enabled: bool
    jwt_jwks: JSON | None
    jwt_jwks_uri: str | None
    jwt_grant_claim: str
    jwt_session_claim: str
    jwt_device_secret_typ: str | None
    key_fetch_hosts: tuple[str, ...]
    plugins: tuple[JSON, ...]
    failure_mode_pre: str
    failure_mode_post: str
    per_client_per_minute: int | None
    """None where the tenant sets none: the service's ``--rate-limit-per-client`` applies
    (the settings' default of 10 is that flag's default)."""
    per_address_per_minute: int | None
    events_retention_days: int
    """0: events are kept for ever."""
    max_token_lifetime_s: int
    """The longest lifetime (``exp`` - ``iat``) of a token the tenant issues; 0: unbounded
    (JWTs are not held to it, not-before marks and ended sessions are kept for ever)."""
    status_list_enabled: bool
    status_list_ttl_s: int
    """The status list token's ``ttl`` and the ``max-age`` it is served with."""
    global_revocation_enabled: bool
    global_revocation_subject_formats: frozenset[str]
    receiver_pause_after_s: int
    """A push receiver failing for this long without a success is paused."""

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> TenantSettings:
        def get(path: str) -> Any:
            return lookup(settings, path)

        return cls(
            issuer=get("issuer"),
            issuer_aliases=tuple(get("issuer_aliases")),
            enabled=get("enabled"),
            revocation_enabled=get("revocation.enabled"),
            cascade=get("revocation.cascade"),
            public_clients_may_revoke=get("revocation.public_clients_may_revoke"),
            allow_revoke_all=get("revocation.allow_revoke_all"),
            allow_revoke_other_clients=get("revocation.allow_revoke_other_clients"),
            introspection_enabled=get("introspection.enabled"),
            auth_methods=frozenset(get("auth.methods")),
            assertion_algs=tuple(get("auth.assertion_algs")),
            max_assertion_lifetime_s=get("auth.max_assertion_lifetime_s"),
            clock_skew_s=get("auth.clock_skew_s"),
            cors_allowed_origins=tuple(get("cors.allowed_origins")),
            jsonp_enabled=get("jsonp.enabled"),
            jwt_jwks=get("jwt_access_tokens.jwks"),
            jwt_jwks_uri=get("jwt_access_tokens.jwks_uri"),
            jwt_grant_claim=get("jwt_access_tokens.grant_claim"),
            jwt_session_claim=get("jwt_access_tokens.session_claim"),
            jwt_device_secret_typ=get("jwt_access_tokens.device_secret_typ"),
            key_fetch_hosts=tuple(get("key_fetch.allowed_hosts")),
            plugins=tuple(get("plugins.enabled")),
            failure_mode_pre=get("plugins.failure_mode.pre"),
            failure_mode_post=get("plugins.failure_mode.post"),
            per_client_per_minute=explicit(settings, "rate_limits.per_client_per_minute"),
            per_address_per_minute=explicit(settings, "rate_limits.per_address_per_minute"),
            events_retention_days=get("retention.events_days"),
            max_token_lifetime_s=get("retention.max_token_lifetime_s"),
            status_list_enabled=get("status_list.enabled"),
            status_list_ttl_s=get("status_list.ttl_s"),
            global_revocation_enabled=get("global_revocation.enabled"),
            global_revocation_subject_formats=frozenset(get("global_revocation.subject_formats")),
            receiver_pause_after_s=get("receivers.pause_after_s"),
        )

    def all_issuers(self) -> list[str]:
        """Normalised issuer and aliases."""
        return [normalize_issuer(u) for u in (self.issuer, *self.issuer_aliases)]
