"""The JSON the admin API and the CLI answer with, one function per record.

Times are whole seconds since the epoch. Secrets never appear: a client shows
``has_secret``, a receiver ``authorization_set``; a generated ``client_secret`` is added
by the caller, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.models import (
    AdminKey,
    Client,
    DeliveryAttempt,
    Event,
    Grant,
    PluginVersion,
    Receiver,
    ReceiverState,
    RegistrationOutcome,
    SubjectClient,
    Tenant,
)
from app.settings import effective, lookup
from app.types import JSON


def tenant_json(tenant: Tenant) -> JSON:
    """``{"tenant_id", "settings", "created_at", "updated_at"}``; ``settings`` are the
    effective settings (section 8, nested), defaults filled in."""
    return {
        "tenant_id": tenant.tenant_id,
        "settings": effective(tenant.settings),
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


def tenant_summary(tenant: Tenant) -> JSON:
    return {
        "tenant_id": tenant.tenant_id,
        "issuer": lookup(tenant.settings, "issuer"),
        "enabled": lookup(tenant.settings, "enabled"),
    }


def admin_key_json(key: AdminKey) -> JSON:
    return {"key_id": key.key_id, "created_at": key.created_at}


def client_json(client: Client, generated_secret: str | None = None) -> JSON:
    """Every client field but the secret; ``jwks``/``jwks_uri`` only when set.

    ``client_secret`` only right after the service generated it.
    """
    out: JSON = {
        "client_id": client.client_id,
        "type": client.type.value,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": " ".join(sorted(client.scope)),
        "enabled": client.enabled,
        "has_secret": client.secret_hash is not None or client.secret_encrypted is not None,
    }
    if client.jwks is not None:
        out["jwks"] = client.jwks
    if client.jwks_uri is not None:
        out["jwks_uri"] = client.jwks_uri
    out["created_at"] = client.created_at
    out["updated_at"] = client.updated_at
    if generated_secret is not None:
        out["client_secret"] = generated_secret
    return out


def grant_json(grant: Grant) -> JSON:
    """``scope`` only when set."""
    out: JSON = {"grant_id": grant.grant_id, "client_id": grant.client_id, "sub": grant.sub}
    if grant.scope is not None:
        out["scope"] = grant.scope
    out["updated_at"] = grant.updated_at
    return out


def subject_client_json(entry: SubjectClient) -> JSON:
    return {"client_id": entry.client_id, "credentials": entry.credentials, "grants": entry.grants}


def events_json(events: list[Event], next_cursor: str) -> JSON:
    return {"events": [e.to_json() for e in events], "next": next_cursor}


def registration_json(outcome: RegistrationOutcome) -> JSON:
    out: JSON = {"registered": outcome.registered, "duplicates": outcome.duplicates}
    if outcome.status is not None:
        out["status"] = list(outcome.status)
    return out


def plugin_json(
    plugin: PluginVersion, *, source: bool = False, enabled: bool | None = None
) -> JSON:
    """An uploaded plugin version; ``source`` when reading one, ``status`` when known."""
    out: JSON = {
        "name": plugin.name,
        "version": plugin.version,
        "sha256": plugin.sha256,
        "hooks": list(plugin.hooks),
        "current": plugin.current,
        "uploaded_by": plugin.uploaded_by,
        "uploaded_at": plugin.uploaded_at,
    }
    if enabled is not None:
        out["status"] = "enabled" if enabled else "uploaded"
    if source:
        out["source"] = plugin.source
    return out


def receiver_json(
    receiver: Receiver,
    state: ReceiverState | None,
    log: Sequence[DeliveryAttempt] | None = None,
    lag: int | None = None,
) -> JSON:
    """A receiver of Security Event Tokens: never its authorization, only whether one is
    set; ``url``, ``audience``, ``client_id`` when set; ``state`` with ``lag`` and
    ``log`` (newest first) when read alone."""
    out: JSON = {
        "receiver_id": receiver.receiver_id,
        "delivery": receiver.delivery,
        "events": list(receiver.events),
    }
    for name in ("url", "audience", "client_id"):
        value = getattr(receiver, name)
        if value is not None:
            out[name] = value
    out["authorization_set"] = receiver.authorization_sealed is not None
    out["created_at"] = receiver.created_at
    out["updated_at"] = receiver.updated_at
    if state is not None:
        out["state"] = receiver_state_json(state, lag)
    if log is not None:
        out["log"] = [delivery_attempt_json(a) for a in log]
    return out


def receiver_state_json(state: ReceiverState, lag: int | None = None) -> JSON:
    """Where delivery stands; ``cursor`` is an event id as the feed writes it."""
    out: JSON = {
        "status": state.status,
        "cursor": str(state.cursor),
        "paused_reason": state.paused_reason,
        "failing_since": state.failing_since,
        "attempts": state.attempts,
        "next_attempt_at": state.next_attempt_at,
        "last_error": state.last_error,
        "delivered": state.delivered,
    }
    if lag is not None:
        out["lag"] = lag
    return out


def delivery_attempt_json(attempt: DeliveryAttempt) -> JSON:
    out: JSON = {
        "time": attempt.time,
        "event_id": str(attempt.event_id),
        "outcome": attempt.outcome,
    }
    for name in ("status", "detail", "duration_ms"):
        value = getattr(attempt, name)
        if value is not None:
            out[name] = value
    return out
