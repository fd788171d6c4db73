"""Declarative tenants: ``tenants/*.toml`` loaded at start-up (contract section 2).

A file holds ``tenant_id``, the tenant's settings (section 8, TOML tables for dotted
names) and a ``[[clients]]`` array. Client secrets are environment-variable references,
``client_secret = { env = "NAME" }``, never plaintext. Loading the same files twice
changes nothing: a tenant or client is written only when it differs from what is stored.

All or nothing: every file is read, validated and checked against the others and the
store before anything is written, so a file with an error leaves the store as it was;
should a write still fail (a concurrent change, the store going away), what the earlier
writes changed is put back. An error names the file, the key (or the line and column of
a TOML syntax error) and the reason.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.admin.clients import client_from_json
from app.admin.tenants import check_tenant_id, issuers_of, tenant_record
from app.errors import ConfigError, Conflict, FieldError
from app.issuers import normalize_issuer
from app.models import Client, Tenant
from app.services import Services
from app.settings import validate
from app.store.base import DELETION_PENDING

TOML_POSITION_RE = re.compile(
    r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)
LINE_KEY_RE = re.compile(r"""^\s*\[{0,2}\s*(?P<key>[A-Za-z0-9_.\-"' ]+?)\s*(?:=|\])""")

Undo = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class _Plan:
    """What one file will write: the tenant record and the clients that differ."""

    source: str
    tenant: Tenant
    existing: Tenant | None
    clients_doc: list[Any]
    clients: list[tuple[Client, Client | None]] = field(default_factory=list)

    @property
    def writes_tenant(self) -> bool:
        return self.existing is None or self.existing.settings != self.tenant.settings


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


async def _plan_tenant(
    services: Services, source: str, document: Mapping[str, Any], stored: Mapping[str, Tenant]
) -> _Plan:
    body = dict(document)
    tenant_id = body.pop("tenant_id", None)
    clients = body.pop("clients", [])
    if not isinstance(tenant_id, str):
        raise ConfigError(source, "tenant_id", "is required")
    try:
        check_tenant_id(tenant_id)
        settings = await services.plugins.check_enabled(tenant_id, validate(body))
    except FieldError as exc:
        raise ConfigError(source, exc.field, exc.description or "is invalid") from None
    if not isinstance(clients, list):
        raise ConfigError(source, "clients", "must be an array of tables [[clients]]")
    existing = stored.get(tenant_id)
    if existing is not None and existing.settings == settings:
        record = existing
    else:
        record = tenant_record(tenant_id, settings, existing, services.clock())
    plan = _Plan(source, record, existing, clients)
    plan.clients = await _plan_clients(services, plan)
    return plan


async def _plan_clients(services: Services, plan: _Plan) -> list[tuple[Client, Client | None]]:
    """The clients of the file that differ from the stored ones, with the stored ones."""
    source, tenant = plan.source, plan.tenant
    seen: set[str] = set()
    writes: list[tuple[Client, Client | None]] = []
    for i, entry in enumerate(plan.clients_doc):
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
        existing = None
        if plan.existing is not None:
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
            writes.append((client, existing))
    return writes


def _issuer_keys(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, normalised URL)`` for the issuer and each alias."""
    urls = [("issuer", settings["issuer"])]
    urls += [(f"issuer_aliases[{i}]", u) for i, u in enumerate(settings.get("issuer_aliases", []))]
    return [(key, normalize_issuer(url)) for key, url in urls]


def _check_unique(plans: list[_Plan], stored: Mapping[str, Tenant]) -> None:
    """Tenant ids once across the files; issuers and aliases once across the tenants as
    they will be (the stored tenants no file declares, and the files in order)."""
    declared: dict[str, str] = {}
    for plan in plans:
        tenant_id = plan.tenant.tenant_id
        if tenant_id in declared:
            reason = f"tenant {tenant_id!r} is also declared in {declared[tenant_id]}"
            raise ConfigError(plan.source, "tenant_id", reason)
        declared[tenant_id] = plan.source
    owners: dict[str, tuple[str, str | None]] = {}
    for tenant_id, tenant in stored.items():
        if tenant_id not in declared:
            for issuer in issuers_of(tenant.settings):
                owners[issuer] = (tenant_id, None)
    for plan in plans:
        tenant_id = plan.tenant.tenant_id
        for key, issuer in _issuer_keys(plan.tenant.settings):
            owner, where = owners.setdefault(issuer, (tenant_id, plan.source))
            if owner != tenant_id:
                place = f"declared in {where}" if where else "in the store, declared in no file"
                reason = f"{issuer} is already an issuer or alias of tenant {owner!r} ({place})"
                raise ConfigError(plan.source, key, reason)


async def _apply(services: Services, plans: list[_Plan]) -> None:
    """Write every plan; on a failure, put back what the earlier writes changed."""
    store = services.store
    undo: list[Undo] = []
    plan: _Plan | None = None
    try:
        for plan in plans:
            if plan.writes_tenant:
                tenant = plan.tenant
                stored = await store.put_tenant(tenant, issuers_of(tenant.settings))
                undo.append(_undo_tenant(services, plan.existing, tenant.tenant_id))
                if stored.key_salt != tenant.key_salt:
                    # Another process created this tenant since it was read: secrets are
                    # hashed under the salt it gave the tenant.
                    plan.tenant = stored
                    plan.clients = await _plan_clients(services, plan)
            for client, existing in plan.clients:
                await store.put_client(client)
                undo.append(_undo_client(services, existing, client))
    except Exception as exc:
        for step in reversed(undo):
            try:
                await step()
            except Exception as failed:
                exc.add_note(f"undoing an earlier tenant file's write failed too: {failed!r}")
        if isinstance(exc, Conflict) and plan is not None:
            if exc.description == DELETION_PENDING:
                raise ConfigError(plan.source, "tenant_id", DELETION_PENDING) from None
            reason = "the issuer or an alias now belongs to another tenant (changed meanwhile)"
            raise ConfigError(plan.source, "issuer", reason) from None
        raise


def _undo_tenant(services: Services, existing: Tenant | None, tenant_id: str) -> Undo:
    if existing is None:
        return lambda: services.store.delete_tenant(tenant_id)
    return lambda: services.store.put_tenant(existing, issuers_of(existing.settings))


def _undo_client(services: Services, existing: Client | None, client: Client) -> Undo:
    if existing is None:
        return lambda: services.store.delete_client(client.tenant_id, client.client_id)
    return lambda: services.store.put_client(existing)


def _toml_error(source: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """The parser's message at its line and column, with the key written on that line."""
    found = TOML_POSITION_RE.match(str(exc))
    if found is None:
        return ConfigError(source, "", f"is not valid TOML: {exc}")
    if found["line"]:
        line, column = int(found["line"]), int(found["column"])
    else:  # "at end of document": where the text ends
        end = len(text.rstrip())
        line = text.count("\n", 0, end) + 1
        column = end - text.rfind("\n", 0, end)
    where = f"line {line}, column {column}"
    lines = text.splitlines()
    # The key only, never the value: the value may be a secret pasted by mistake.
    key = LINE_KEY_RE.match(lines[line - 1]) if line <= len(lines) else None
    if key is not None:
        where = f"{key['key']} (line {line}, column {column})"
    return ConfigError(source, where, f"is not valid TOML: {found['message']}")


def read_tenant_files(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every ``*.toml`` in ``directory``, sorted by name, parsed: (source, document)."""
    if not directory.is_dir():
        raise ConfigError(str(directory), "--tenants", "is not a directory")
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(str(path), f"byte {exc.start}", "is not UTF-8") from None
        try:
            documents.append((str(path), tomllib.loads(text)))
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(str(path), text, exc) from None
    return documents


async def load_tenant_files(services: Services, directory: Path) -> list[str]:
    """Apply every ``*.toml`` in ``directory`` (sorted), all or nothing; the tenant ids."""
    documents = read_tenant_files(directory)
    stored = {t.tenant_id: t for t in await services.store.list_tenants()}
    plans = [await _plan_tenant(services, source, doc, stored) for source, doc in documents]
    _check_unique(plans, stored)
    try:
        await _apply(services, plans)
    finally:
        services.directory.invalidate()
    return [plan.tenant.tenant_id for plan in plans]
