"""Declarative tenants: ``tenants/*.toml`` loaded at start-up (contract section 2).

A file holds ``tenant_id``, the tenant's settings (section 8, TOML tables for dotted
names) and a ``[[clients]]`` array. Client secrets are environment-variable references,
``client_secret = { env = "NAME" }``, never plaintext. Loading the same files twice
changes nothing: a tenant or client is written only when it differs from what is stored.
An error names the file, the key and the reason.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.admin.clients import client_from_json
from app.admin.tenants import check_tenant_id, store_tenant
from app.errors import ConfigError, Conflict, FieldError
from app.models import Client, Tenant
from app.services import Services
from app.settings import validate
from app.store.base import DELETION_PENDING


def _client_key(client: Client) -> Client:
    """A client without what changes on every write (times, the AES-GCM nonce)."""
    return dataclasses.replace(client, created_at=0, updated_at=0, secret_encrypted=None)


def _secret_reference(source: str, path: str, value: Any) -> str:
    if not (isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str)):
        raise ConfigError(
            source,
            path,
            'must be an environment variable reference: { env = "NAME" }, never plaintext',
        )
    secret = os.environ.get(value["env"])
    if not secret:
        raise ConfigError(source, path, f"the environment variable {value['env']} is not set")
    return secret


async def _apply_tenant(services: Services, source: str, document: Mapping[str, Any]) -> Tenant:
    body = dict(document)
    tenant_id = body.pop("tenant_id", None)
    body.pop("clients", None)
    if not isinstance(tenant_id, str):
        raise ConfigError(source, "tenant_id", "is required")
    try:
        check_tenant_id(tenant_id)
        settings = await services.plugins.check_enabled(tenant_id, validate(body))
    except FieldError as exc:
        raise ConfigError(source, exc.field, exc.description or "is invalid") from None
    existing = await services.store.get_tenant(tenant_id)
    if existing is not None and existing.settings == settings:
        return existing
    try:
        return await store_tenant(services, tenant_id, settings, existing)
    except Conflict as exc:
        if exc.description == DELETION_PENDING:
            raise ConfigError(source, "tenant_id", DELETION_PENDING) from None
        reason = "the issuer or an alias belongs to another tenant"
        raise ConfigError(source, "issuer", reason) from None


async def _apply_clients(services: Services, source: str, tenant: Tenant, clients: Any) -> None:
    if not isinstance(clients, list):
        raise ConfigError(source, "clients", "must be an array of tables [[clients]]")
    seen: set[str] = set()
    for i, entry in enumerate(clients):
        path = f"clients[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("client_id"), str):
            raise ConfigError(source, f"{path}.client_id", "is required")
        body = dict(entry)
        client_id = body.pop("client_id")
        if client_id in seen:
            raise ConfigError(source, f"{path}.client_id", "is repeated")
        seen.add(client_id)
        if "client_secret" in body:
            body["client_secret"] = _secret_reference(
                source, f"{path}.client_secret", body["client_secret"]
            )
        existing = await services.store.get_client(tenant.tenant_id, client_id)
        try:
            client, generated = client_from_json(
                services.keys, tenant, client_id, body, existing=existing, now=services.clock()
            )
        except FieldError as exc:
            raise ConfigError(
                source, f"{path}.{exc.field}", exc.description or "is invalid"
            ) from None
        if generated is not None:
            raise ConfigError(
                source, f"{path}.client_secret", "is required for this client in a file"
            )
        if existing is None or _client_key(existing) != _client_key(client):
            await services.store.put_client(client)


def read_tenant_files(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every ``*.toml`` in ``directory``, sorted by name, parsed: (source, document)."""
    if not directory.is_dir():
        raise ConfigError(str(directory), "--tenants", "is not a directory")
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            documents.append((str(path), tomllib.loads(path.read_text(encoding="utf-8"))))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), "", f"is not valid TOML: {exc}") from None
    return documents


async def load_tenant_files(services: Services, directory: Path) -> list[str]:
    """Apply every ``*.toml`` in ``directory`` (sorted); returns the tenant ids."""
    loaded: list[str] = []
    for source, document in read_tenant_files(directory):
        tenant = await _apply_tenant(services, source, document)
        await _apply_clients(services, source, tenant, document.get("clients", []))
        loaded.append(tenant.tenant_id)
    services.directory.invalidate()
    return loaded
