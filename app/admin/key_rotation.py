"""Rotating the master key: ``revocation-service keys list|rotate|retire|reseal``.

The ring (``app.keys``) lives in ``<data-dir>/master-keys.json``, or in the file named by
``REVOCATION_MASTER_KEYS_FILE``; a data directory that was never rotated has one key,
version 1, in ``<data-dir>/master-key`` or ``REVOCATION_MASTER_KEY``. Each command
changes the ring under a lock and replaces the file atomically (mode 0600); running
processes that read the same file follow it within a second (``KeyRing.refresh``).

- ``rotate`` makes a new key current, or the staged one; the key it replaces is retired:
  never written with again, still tried for every lookup. Then every sealed
  ``client_secret_jwt`` secret is sealed again (and hashed again) under the new key, and
  every receiver's authorization header (``app.admin.receivers``).
  ``rotate --stage`` only adds the next key, for lookups: when instances read copies of
  the ring (one per host, MongoDB), every instance must know a key before any instance
  writes with it, so stage, deploy, rotate, deploy. The tenants' own signing keys
  (``app.propagation.signing_keys``) are sealed again the same way.
- ``retire ID`` drops a key from the ring, and refuses while anything stored depends on
  it: a credential hashed with it that is still kept (``exp`` within the retention
  period: one that may still be presented or registered again), a client secret hash, a
  sealed secret, a tenant admin key or a sealed signing key. Stored tokens cannot be
  hashed again (only their hash is kept), so a key leaves once its credentials have
  expired; client secrets and admin keys leave when they are replaced.
- ``list`` shows the ring (never a key) and what each key still holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.admin import receivers
from app.errors import ConfigError, Conflict, NotFound
from app.keys import (
    MASTER_KEY_FILE,
    MAX_VERSION,
    KeyState,
    MasterKey,
    check_ring,
    decode_key,
    hash_layout,
    hash_version,
    load_keys,
    new_master_key,
    ring_path,
    write_ring,
)
from app.propagation import signing_keys
from app.services import Services
from app.types import JSON


@dataclasses.dataclass(slots=True)
class Holdings:
    """What the store still keeps under one master key."""

    credentials: int = 0
    """Credentials hashed with it whose ``exp`` is within the retention period or later."""
    client_secrets: int = 0
    sealed_secrets: int = 0
    """Sealed ``client_secret_jwt`` secrets and receivers' authorization headers."""
    admin_keys: int = 0
    signing_keys: int = 0
    """The tenants' own signing keys (``app.propagation.signing_keys``), sealed."""

    @property
    def total(self) -> int:
        return (
            self.credentials
            + self.client_secrets
            + self.sealed_secrets
            + self.admin_keys
            + self.signing_keys
        )

    def to_json(self) -> JSON:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def ring_lock(path: Path) -> Iterator[None]:
    """One key command at a time on a ring file (``<ring>.lock``, an advisory lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rotated(keys: tuple[MasterKey, ...], *, stage: bool, now: int) -> tuple[MasterKey, ...]:
    """The ring after ``rotate`` (``stage``: after ``rotate --stage``)."""
    staged = [k for k in keys if k.state is KeyState.STAGED]
    next_id = max(k.id for k in keys) + 1
    if stage:
        if staged:
            raise Conflict(f"key {staged[0].id} is staged already: rotate to make it current")
        if next_id > MAX_VERSION:
            raise Conflict("no key version is left")
        return check_ring((*keys, new_master_key(next_id, KeyState.STAGED, now)), "rotation")
    if staged:
        promoted = dataclasses.replace(staged[0], state=KeyState.CURRENT)
    elif next_id > MAX_VERSION:
        raise Conflict("no key version is left")
    else:
        promoted = new_master_key(next_id, KeyState.CURRENT, now)
    ring = [
        dataclasses.replace(k, state=KeyState.RETIRED, retired_at=now)
        if k.state is KeyState.CURRENT
        else k
        for k in keys
        if k.id != promoted.id
    ]
    return check_ring((*ring, promoted), "rotation")


async def census(services: Services, now: int) -> dict[int, Holdings]:
    """What each key version still holds, for every key of the ring and every version
    a record names (a record under a version the ring no longer has is lost)."""
    keys = services.keys
    exp_from = now - services.config.credential_retention_s
    found: dict[int, Holdings] = {k.id: Holdings() for k in keys.keys}

    def at(version: int | None) -> Holdings:
        return found.setdefault(0 if version is None else version, Holdings())

    for tenant in await services.store.list_tenants():
        tenant_id, salt = tenant.tenant_id, tenant.key_salt
        for k in keys.keys:
            length, prefix = hash_layout(k.id)
            found[k.id].credentials += await services.store.count_token_hashes(
                tenant_id, length, prefix, exp_from
            )
        for client in await services.store.list_clients(tenant_id):
            if client.secret_hash is not None:
                at(hash_version(client.secret_hash)).client_secrets += 1
            if client.secret_encrypted is not None:
                sealed = client.secret_encrypted
                at(keys.seal_version(tenant_id, salt, sealed, client.client_id)).sealed_secrets += 1
        for admin_key in await services.store.list_admin_keys(tenant_id):
            at(hash_version(admin_key.key_hash)).admin_keys += 1
        for version in await receivers.seal_versions(services, tenant):
            at(version).sealed_secrets += 1
        kept = await services.store.list_signing_keys(tenant_id)
        for version in signing_keys.seal_versions(services, tenant, kept):
            at(version).signing_keys += 1
    return found


async def list_keys(services: Services, now: int) -> JSON:
    holdings = await census(services, now)
    path = ring_path(services.config.data_dir)
    listed: list[JSON] = [
        {**_key_json(k), "holds": holdings.pop(k.id).to_json()} for k in services.keys.keys
    ]
    # Versions that records name but the ring does not have (0: under no key at all).
    listed += [{"id": v, "state": "missing", "holds": h.to_json()} for v, h in holdings.items()]
    return {"ring": str(path) if path.exists() else None, "keys": listed}


async def rotate(services: Services, *, stage: bool, now: int) -> JSON:
    data_dir = services.config.data_dir
    path = ring_path(data_dir)
    with ring_lock(path):
        keys = rotated(load_keys(data_dir), stage=stage, now=now)
        write_ring(path, keys)
    # The single-key file is version 1 of the ring now: one place for each key. (A file
    # that REVOCATION_MASTER_KEY overrode, whose key is not in the ring, stays.)
    legacy = data_dir / MASTER_KEY_FILE
    if legacy.exists() and _key_of(legacy) in {k.secret for k in keys}:
        legacy.unlink()
    services.keys.reload()
    resealed = {"resealed": 0, "unopened": 0} if stage else await reseal(services)
    return {"ring": str(path), "keys": [_key_json(k) for k in keys], **resealed}


async def reseal(services: Services) -> JSON:
    """Seal every ``client_secret_jwt`` secret (and hash it), and every tenant's signing
    key, under the current key.

    ``unopened``: sealed secrets no key of the ring opens (their clients cannot
    authenticate until they get a new secret; a tenant whose signing key is lost needs
    a signing key rotation).
    """
    keys, store = services.keys, services.store
    current = keys.current.id
    resealed = unopened = 0
    for tenant in await store.list_tenants():
        tenant_id, salt = tenant.tenant_id, tenant.key_salt
        done, lost = await signing_keys.reseal(services, tenant)
        resealed, unopened = resealed + done, unopened + lost
        done, lost = await receivers.reseal(services, tenant)
        resealed, unopened = resealed + done, unopened + lost
        for client in await store.list_clients(tenant_id):
            sealed = client.secret_encrypted
            if sealed is None:
                continue
            version = keys.seal_version(tenant_id, salt, sealed, client.client_id)
            if version is None:
                unopened += 1
                continue
            hashed = client.secret_hash
            if version == current and (hashed is None or hash_version(hashed) == current):
                continue
            secret = keys.open_secret(tenant_id, salt, sealed, client.client_id)
            again = dataclasses.replace(
                client,
                secret_encrypted=keys.seal_secret(tenant_id, salt, secret, client.client_id),
                secret_hash=None if hashed is None else keys.secret_hash(tenant_id, salt, secret),
            )
            # Not over a change an admin made since the listing (it sealed under the
            # current key anyway).
            if await store.get_client(tenant_id, client.client_id) == client:
                await store.put_client(again)
                resealed += 1
    services.directory.invalidate()
    return {"resealed": resealed, "unopened": unopened}


async def retire(services: Services, key_id: int, now: int) -> JSON:
    data_dir = services.config.data_dir
    path = ring_path(data_dir)
    with ring_lock(path):
        keys = load_keys(data_dir)
        services.keys.reload()
        key = next((k for k in keys if k.id == key_id), None)
        if key is None:
            raise NotFound(f"no key {key_id} in the ring")
        if key.state is KeyState.CURRENT:
            raise Conflict(f"key {key_id} is the current key: rotate first")
        holds = (await census(services, now))[key_id]
        if holds.total:
            raise Conflict(
                f"key {key_id} still hashes or seals records that would become unusable: "
                f"{_describe(holds)}",
                holds=holds.to_json(),
            )
        remaining = tuple(k for k in keys if k.id != key_id)
        write_ring(path, remaining)
    services.keys.reload()
    return {"ring": str(path), "retired": key_id, "keys": [_key_json(k) for k in remaining]}


def _key_of(path: Path) -> bytes | None:
    try:
        return decode_key(path.read_text(), str(path))
    except (ConfigError, OSError):
        return None


def _describe(holds: Holdings) -> str:
    what = {
        "credentials": "credentials kept until their exp plus the retention period",
        "client_secrets": "client secrets (give those clients new secrets)",
        "sealed_secrets": "sealed client_secret_jwt secrets and receiver authorizations "
        "(run keys reseal)",
        "admin_keys": "tenant admin keys (create new ones, delete these)",
        "signing_keys": "tenants' signing keys (run keys reseal)",
    }
    return "; ".join(f"{n} {what[name]}" for name, n in holds.to_json().items() if n)


def _key_json(key: MasterKey) -> dict[str, Any]:
    """A key as listed: never its material."""
    out: dict[str, Any] = {"id": key.id, "state": key.state.value}
    if key.created_at is not None:
        out["created_at"] = key.created_at
    if key.retired_at is not None:
        out["retired_at"] = key.retired_at
    return out
