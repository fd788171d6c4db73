"""The records the service keeps, independent of the store that keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from app.types import JSON, ClientId, TenantId, TokenHash


class TokenType(StrEnum):
    ACCESS_TOKEN = "access_token"
    REFRESH_TOKEN = "refresh_token"
    DEVICE_SECRET = "device_secret"


ALL_TOKEN_TYPES: frozenset[TokenType] = frozenset(TokenType)
OAUTH_TOKENS: frozenset[TokenType] = frozenset({TokenType.ACCESS_TOKEN, TokenType.REFRESH_TOKEN})


class ClientType(StrEnum):
    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A hosted issuer. ``settings`` holds only what was set; see ``app.settings``."""

    tenant_id: TenantId
    settings: JSON
    key_salt: bytes
    """Random per-tenant salt for key derivation: a re-created tenant gets unrelated hashes."""
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Client:
    tenant_id: TenantId
    client_id: ClientId
    type: ClientType
    token_endpoint_auth_method: str
    scope: frozenset[str] = frozenset()
    enabled: bool = True
    secret_hash: bytes | None = None
    """Keyed hash of a ``client_secret_basic``/``client_secret_post`` secret."""
    secret_encrypted: bytes | None = None
    """AES-GCM sealed secret for ``client_secret_jwt`` (the service must recover it)."""
    jwks: JSON | None = None
    jwks_uri: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued token registered with the service, known only by its keyed hash."""

    tenant_id: TenantId
    token_hash: TokenHash
    type: TokenType
    client_id: ClientId
    exp: int
    sub: str | None = None
    grant_id: str | None = None
    device_session_id: str | None = None
    scope: str | None = None
    iat: int | None = None
    revoked_at: int | None = None
    revoked_cause: str | None = None
    status_idx: int | None = None
    """Its index in the tenant's Token Status List (``app.propagation.status_list``),
    assigned at registration where the tenant has one; not part of the issuance."""

    def _issue(self) -> tuple[object, ...]:
        return (
            self.type,
            self.client_id,
            self.exp,
            self.sub,
            self.grant_id,
            self.device_session_id,
            self.scope,
            self.iat,
        )

    def same_issue(self, other: Credential) -> bool:
        """True when ``other`` registers the very same issuance (a duplicate, not a clash)."""
        return self._issue() == other._issue()

    def is_live(self, now: int) -> bool:
        return self.revoked_at is None and self.exp > now


@dataclass(frozen=True, slots=True)
class JwtCredential(Credential):
    """A JWT signed with the tenant's keys (an RFC 9068 access token, or a JWT device
    secret) seen as a credential, so that the owner check, the cascade policies and the
    plugins treat it as they treat a registered one.

    It is never registered: ``token_hash`` is empty and a revocation denies ``deny_key``
    until ``exp`` instead. ``revoked_at`` is what the store said when it was presented:
    denied, or issued at or before a not-before mark that covers it.
    """

    deny_key: str = ""
    """``jti:`` and the ``jti``, or ``sha256:`` and the token's hex SHA-256 without one."""
    jti: str | None = None
    nbf: int | None = None

    @property
    def deny_entry(self) -> DenyEntry:
        return DenyEntry(self.deny_key, self.exp)


@dataclass(frozen=True, slots=True)
class Grant:
    """A persisted grant record (Connect2id's authorisation record)."""

    tenant_id: TenantId
    grant_id: str
    client_id: ClientId
    sub: str
    scope: str | None = None
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class SubjectClient:
    """One client a subject has authorized: live credentials and grant records."""

    client_id: ClientId
    credentials: int
    grants: int


@dataclass(frozen=True, slots=True)
class PluginVersion:
    """One uploaded version of a tenant's interception plugin (untrusted Python source).

    Every upload is a new version; older ones are kept so that one can be made current
    again. Exactly one version of a name is ``current`` while the plugin exists.
    """

    tenant_id: TenantId
    name: str
    version: int
    source: str
    sha256: str
    """Hex SHA-256 of the UTF-8 source."""
    hooks: tuple[str, ...]
    """The hooks the source defines, in hookspec order."""
    uploaded_by: str
    """``operator`` or ``key:<key_id>`` of the tenant admin key that uploaded it."""
    uploaded_at: int
    current: bool = False


@dataclass(frozen=True, slots=True)
class AdminKey:
    tenant_id: TenantId
    key_id: str
    key_hash: bytes
    created_at: int


@dataclass(frozen=True, slots=True)
class Event:
    """An entry of a tenant's event feed. Never carries a token or its hash."""

    id: int
    time: int
    type: str
    cause: str
    count: int = 0
    client_id: ClientId | None = None
    sub: str | None = None
    grant_id: str | None = None
    token_type: str | None = None
    jti: str | None = None
    device_session_id: str | None = None

    def to_json(self) -> JSON:
        out: dict[str, Any] = {
            "id": str(self.id),
            "time": self.time,
            "type": self.type,
            "cause": self.cause,
            "count": self.count,
        }
        for name in ("client_id", "sub", "grant_id", "token_type", "jti", "device_session_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event to append; the store assigns ``id`` and, for ``revoked``, ``count``."""

    type: str
    cause: str
    time: int
    client_id: ClientId | None = None
    sub: str | None = None
    grant_id: str | None = None
    token_type: str | None = None
    jti: str | None = None
    device_session_id: str | None = None
    count: int | None = None
    """``None``: the store fills in how many credentials the plan took down."""


# --- what a revocation takes down ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByHash:
    token_hash: TokenHash


@dataclass(frozen=True, slots=True)
class ByGrant:
    grant_id: str
    types: frozenset[TokenType] = ALL_TOKEN_TYPES


@dataclass(frozen=True, slots=True)
class ByClientSubject:
    client_id: ClientId
    sub: str
    types: frozenset[TokenType] = ALL_TOKEN_TYPES


@dataclass(frozen=True, slots=True)
class ByClient:
    client_id: ClientId


@dataclass(frozen=True, slots=True)
class BySession:
    """Credentials bound to a device session, for every client of the tenant."""

    device_session_id: str
    types: frozenset[TokenType] = ALL_TOKEN_TYPES


Selector = ByHash | ByGrant | ByClientSubject | ByClient | BySession


@dataclass(frozen=True, slots=True)
class SweepScope:
    """What a sweeping selector names: every credential (of every type) of a client, or
    of a client for one subject. ``token_type_hint=all`` and a subject's withdrawal of a
    client name these; they may take any number of credentials, so the store commits
    them at once and writes each credential's ``revoked_at`` in chunks afterwards (a
    *sweep*, ``app.store.sweeps``)."""

    client_id: ClientId
    sub: str | None = None
    """None: every subject."""

    def covers(self, client_id: ClientId, sub: str | None) -> bool:
        """Whether a credential of ``client_id`` and ``sub`` is in the scope."""
        return client_id == self.client_id and (self.sub is None or sub == self.sub)


def sweep_scope(selector: Selector) -> SweepScope | None:
    """The scope of a sweeping selector: ``ByClient``, or ``ByClientSubject`` of every
    type (a withdrawal). The subject policy's selector (access and refresh tokens of one
    subject, a handful) is applied in the revocation's own transaction."""
    match selector:
        case ByClient(client_id):
            return SweepScope(client_id)
        case ByClientSubject(client_id, sub, types) if types >= ALL_TOKEN_TYPES:
            return SweepScope(client_id, sub)
        case _:
            return None


class MarkKind(StrEnum):
    """Not-before marks: JWT access tokens of the scope with ``iat`` <= ``at`` are revoked."""

    CLIENT = "client"
    CLIENT_SUBJECT = "client_subject"
    GRANT = "grant"
    SUBJECT = "subject"
    """Every client's: a Global Token Revocation of the subject."""


@dataclass(frozen=True, slots=True)
class NotBeforeMark:
    kind: MarkKind
    key: str
    """``client_id``; ``client_id`` + NUL + ``sub``; ``grant_id``; or ``sub``."""
    at: int


@dataclass(frozen=True, slots=True)
class DenyEntry:
    """A JWT access token denied until ``exp``: its ``jti`` or its SHA-256."""

    key: str
    exp: int


@dataclass(frozen=True, slots=True)
class RevocationPlan:
    """Everything one revocation changes, applied by the store in one transaction.

    When ``primary`` is set and that credential is already revoked, nothing is applied:
    revoking is idempotent and concurrent revocations of one token give one event.
    """

    revoked_at: int
    cause: str
    primary: TokenHash | None = None
    primary_deny: DenyEntry | None = None
    """For an unregistered JWT: applied only if the deny entry is new (same idempotence)."""
    selectors: tuple[Selector, ...] = ()
    delete_grants_of: tuple[tuple[ClientId, str], ...] = ()
    """(client_id, sub) pairs whose grant records are deleted."""
    delete_grant_ids: tuple[str, ...] = ()
    end_sessions: tuple[str, ...] = ()
    session_tokens_end: bool = True
    """Whether the ``end_sessions`` take their tokens with them: refresh tokens bound to
    such a session are never active again. False for an SPID logout, which ends the SSO
    session (and so its device secret) and keeps the subject's other tokens valid."""
    marks: tuple[NotBeforeMark, ...] = ()
    events: tuple[EventDraft, ...] = field(default=())

    @property
    def sweeps(self) -> tuple[SweepScope, ...]:
        """The scopes of its sweeping selectors (see ``SweepScope``); usually none."""
        scopes = (sweep_scope(selector) for selector in self.selectors)
        return tuple(dict.fromkeys(scope for scope in scopes if scope is not None))

    def without_sweeps(self) -> RevocationPlan:
        """The rest of the plan, without its events: what a sweep commits at once, beside
        its not-before marks. The events are appended once the sweep is done, with
        everything it took down counted."""
        return replace(
            self,
            selectors=tuple(s for s in self.selectors if sweep_scope(s) is None),
            events=(),
        )


@dataclass(frozen=True, slots=True)
class RevocationOutcome:
    applied: bool
    count: int
    """Live credentials the plan took down; a JWT it denied counts as one."""
    event_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    registered: int
    duplicates: int
    status: tuple[JSON | None, ...] | None = None
    """Where the tenant has a Token Status List: each given credential's ``status``
    claim (``app.propagation.status_indexes``), in order; None where it has none."""


# --- propagation to resource servers (contract section 4.4) --------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One of a tenant's own signing keys (Security Event Tokens, the status list).

    The private key is sealed under the tenant's key (``KeyRing.seal_secret``); the
    public JWK is published at ``{issuer}/jwks`` until ``retire_at``.
    """

    tenant_id: TenantId
    kid: str
    alg: str
    public_jwk: JSON
    sealed_private: bytes
    created_at: int
    retire_at: int | None = None
    """None: the current key (one per tenant). Else when a rotation retires it."""


@dataclass(frozen=True, slots=True)
class Receiver:
    """A receiver of the tenant's Security Event Tokens (RFC 8935 push or RFC 8936
    poll), as a tenant admin registered it. Configuration: its writes move
    ``config_version``; its delivery state (``ReceiverState``) does not."""

    tenant_id: TenantId
    receiver_id: str
    delivery: str
    """``push`` or ``poll``."""
    events: tuple[str, ...]
    """Event type URIs it wants (``app.propagation.rfc8417``)."""
    url: str | None = None
    """Push: where SETs are POSTed."""
    authorization_sealed: bytes | None = None
    """Push: the ``Authorization`` header value to send, sealed (never returned)."""
    client_id: ClientId | None = None
    """Poll: the tenant's client that polls (authenticated as at the other endpoints)."""
    audience: str | None = None
    """The SETs' ``aud``; None: the URL (push) or the client id (poll)."""
    created_at: int = 0
    updated_at: int = 0

    @property
    def set_audience(self) -> str:
        """The ``aud`` of its SETs: ``audience``, else the URL (push) or the client id
        (poll)."""
        return self.audience or self.url or self.client_id or ""


@dataclass(frozen=True, slots=True)
class ReceiverState:
    """Where delivery to one receiver stands: the queue is the tenant's events after
    ``cursor`` (of the receiver's types), so a restart loses nothing."""

    tenant_id: TenantId
    receiver_id: str
    cursor: int
    """The id of the last event delivered (acknowledged by the receiver)."""
    status: str = "active"
    """``active`` or ``paused``."""
    paused_reason: str | None = None
    failing_since: int | None = None
    """When the first of the current run of failed attempts was; None when none."""
    attempts: int = 0
    """Failed attempts in the current run (drives the back-off)."""
    next_attempt_at: int = 0
    last_error: str | None = None
    delivered: int = 0
    """SETs delivered since the receiver was registered."""
    lease_owner: str | None = None
    lease_until: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One entry of a receiver's delivery log (the latest are kept)."""

    time: int
    event_id: int
    outcome: str
    """``delivered``, ``failed``, ``acknowledged`` (poll), ``set_error`` (poll),
    ``paused``, ``resumed``."""
    status: int | None = None
    """The receiver's HTTP status, where there was one."""
    detail: str | None = None
    duration_ms: int | None = None
