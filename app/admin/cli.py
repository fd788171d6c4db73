"""Operator subcommands (``tenant``, ``client``, ``credential``, ``plugin``, ``events``,
``signing-key``, ``receiver``).

Each opens the store named by ``--data-dir`` / ``--mongodb-uri``, runs the same operation
as the admin API, prints the same JSON to stdout (nothing for a delete) and exits 0; on an
error it prints the OAuth error JSON to stderr and exits 1. JSON input comes from a file,
``-`` (stdin) or ``--from-json``. ``credential import`` (a file of any size, batched,
resumable, also through a running service's admin API) is ``app.admin.credential_import``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeAlias

from app.admin import (
    admin_keys,
    backup,
    clients,
    credential_import,
    credentials,
    events,
    key_rotation,
    plugins,
    receivers,
    signing_keys,
    tenants,
)
from app.admin.http import parse_json
from app.admin.representations import (
    admin_key_json,
    client_json,
    events_json,
    plugin_json,
    receiver_json,
    registration_json,
    tenant_json,
    tenant_summary,
)
from app.bootstrap import open_services
from app.config import ServiceConfig
from app.errors import ConfigError, InvalidRequest, ServiceError
from app.services import Services

Action = Callable[[Services, argparse.Namespace], Awaitable[Any]]
Group: TypeAlias = "argparse._SubParsersAction[Any]"


def register(
    commands: argparse._SubParsersAction[Any],
    add_store_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the admin subcommands to ``commands``; each sets ``func(args) -> exit code``."""

    def group(parent: Group, name: str, help: str) -> Group:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        dest = f"{name.replace('-', '_')}_action"
        return p.add_subparsers(dest=dest, required=True, metavar="ACTION")

    def add(
        parent: Group, name: str, action: Action, help: str, *names: str, body: bool = False
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        add_store_options(p)
        for positional in names:
            p.add_argument(positional)
        if body:
            p.add_argument("file", nargs="?", default=None, help="a JSON file, or - for stdin")
            p.add_argument("--from-json", default=None, metavar="JSON", help="the JSON itself")
        p.set_defaults(func=lambda args: asyncio.run(_run(action, args)))
        return p

    t = group(commands, "tenant", "tenants and their admin keys")
    add(t, "put", _tenant_put, "create or replace a tenant", "tenant_id", body=True)
    add(t, "get", _tenant_get, "show a tenant", "tenant_id")
    add(t, "list", _tenant_list, "list tenants")
    add(t, "delete", _tenant_delete, "delete a tenant and all its data", "tenant_id")
    add(t, "patch", _tenant_patch, "merge-patch settings (RFC 7396)", "tenant_id", body=True)
    k = group(t, "admin-key", "a tenant's admin keys")
    add(k, "create", _key_create, "create a key (shown this once)", "tenant_id")
    add(k, "list", _key_list, "list key ids", "tenant_id")
    add(k, "delete", _key_delete, "revoke a key", "tenant_id", "key_id")

    c = group(commands, "client", "a tenant's clients")
    add(c, "put", _client_put, "register or replace a client", "tenant_id", "client_id", body=True)
    add(c, "get", _client_get, "show a client (never its secret)", "tenant_id", "client_id")
    add(c, "list", _client_list, "list a tenant's clients", "tenant_id")
    add(c, "delete", _client_delete, "delete a client", "tenant_id", "client_id")

    r = group(commands, "credential", "issued credentials")
    add(
        r, "register", _credential_register, "register one object or a list", "tenant_id", body=True
    )
    p = r.add_parser(
        "import", help="register a JSON Lines or CSV file of any size (batched, resumable)"
    )
    add_store_options(p)
    credential_import.add_arguments(p)
    p.set_defaults(func=credential_import.main)

    g = group(commands, "plugin", "a tenant's uploaded interception plugins")
    p = add(g, "put", _plugin_put, "upload a new version (Python source)", "tenant_id", "name")
    p.add_argument("file", help="the plugin's .py file, or - for stdin")
    add(g, "list", _plugin_list, "the tenant's plugins (current versions)", "tenant_id")
    p = add(g, "get", _plugin_get, "show a plugin with its source", "tenant_id", "name")
    p.add_argument("--version", default=None, help="a kept version [the current one]")
    add(g, "versions", _plugin_versions, "the kept versions", "tenant_id", "name")
    add(g, "activate", _plugin_activate, "make a version current", "tenant_id", "name", "version")
    add(g, "test", _plugin_test, "dry run of a hook", "tenant_id", "name", body=True)
    add(g, "delete", _plugin_delete, "remove every version", "tenant_id", "name")

    e = group(commands, "events", "a tenant's event feed")
    p = add(e, "list", _events_list, "events after a cursor, in order", "tenant_id")
    p.add_argument("--after", default=None, help="the last event id seen [from the start]")
    p.add_argument("--limit", default=None, help=f"at most this many [{events.DEFAULT_LIMIT}]")

    s = group(commands, "signing-key", "a tenant's own signing keys (SETs, status list)")
    p = add(s, "list", _signing_key_list, "the kept keys, current first (public parts)")
    p.add_argument("--tenant", required=True, metavar="TENANT_ID")
    p = add(s, "rotate", _signing_key_rotate, "make a new key current")
    p.add_argument("--tenant", required=True, metavar="TENANT_ID")
    p.add_argument(
        "--overlap-s",
        type=int,
        default=None,
        help="how long the replaced key stays published [604800, 7 days]",
    )

    v = group(commands, "receiver", "a tenant's receivers of Security Event Tokens")
    receiver_commands = [
        add(v, "put", _receiver_put, "register or replace a receiver", "receiver_id"),
        add(v, "get", _receiver_get, "show a receiver, its state and log", "receiver_id"),
        add(v, "list", _receiver_list, "list the tenant's receivers"),
        add(v, "delete", _receiver_delete, "delete a receiver", "receiver_id"),
    ]
    for p in receiver_commands:
        p.add_argument("--tenant", required=True, metavar="TENANT_ID")
    receiver_commands[0].add_argument(
        "--json", required=True, metavar="FILE", help="a JSON file, or - for stdin"
    )

    register_keys(commands, add_store_options)
    backup.register(commands, add_store_options)


def register_keys(
    commands: argparse._SubParsersAction[Any],
    add_store_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``keys``: the master key ring (``app.admin.key_rotation``, docs/OPERATIONS.md)."""
    group: argparse.ArgumentParser = commands.add_parser(
        "keys", help="the master keys: list, rotate, retire"
    )
    actions: Group = group.add_subparsers(dest="keys_action", required=True, metavar="ACTION")

    def add(name: str, action: Action, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help)
        add_store_options(p)
        p.set_defaults(func=lambda args: asyncio.run(_run(action, args)))
        return p

    add("list", _keys_list, "the key ring, and what each key still hashes or seals")
    p = add("rotate", _keys_rotate, "make a new (or the staged) key current, re-seal secrets")
    p.add_argument(
        "--stage",
        action="store_true",
        help="only add the next key, for lookups: deploy it everywhere, then rotate",
    )
    p = add("retire", _keys_retire, "drop a retired key once nothing stored needs it")
    p.add_argument("key_id", type=int)
    add("reseal", _keys_reseal, "seal client_secret_jwt secrets under the current key")


def _read_json(args: argparse.Namespace) -> Any:
    if args.from_json is not None:
        if args.file is not None:
            raise InvalidRequest("give a file or --from-json, not both")
        return parse_json(args.from_json.encode())
    if args.file is None:
        raise InvalidRequest("give a JSON file, - for stdin, or --from-json")
    return parse_json(_read_file(args.file))


def _read_file(name: str) -> bytes:
    """The file's bytes, or standard input's for ``-``."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {name}: {exc.strerror}") from None


async def _run(action: Action, args: argparse.Namespace) -> int:
    config = ServiceConfig.for_store_commands(args)
    try:
        services = await open_services(config)
    except ConfigError as exc:
        return _fail({"error": "server_error", "error_description": str(exc)})
    except ServiceError as exc:
        return _fail(exc.body())
    try:
        result = await action(services, args)
    except ServiceError as exc:
        return _fail(exc.body())
    finally:
        await services.close()
        await services.store.close()
    if result is not None:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _fail(body: dict[str, Any]) -> int:
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
    return 1


# --- actions ---------------------------------------------------------------------------


async def _tenant_put(s: Services, args: argparse.Namespace) -> Any:
    tenant, _ = await tenants.put_tenant(s, args.tenant_id, _read_json(args))
    return tenant_json(tenant)


async def _tenant_get(s: Services, args: argparse.Namespace) -> Any:
    return tenant_json(await tenants.require_tenant(s, args.tenant_id))


async def _tenant_list(s: Services, args: argparse.Namespace) -> Any:
    return {"tenants": [tenant_summary(t) for t in await tenants.list_tenants(s)]}


async def _tenant_delete(s: Services, args: argparse.Namespace) -> Any:
    await tenants.delete_tenant(s, args.tenant_id)


async def _tenant_patch(s: Services, args: argparse.Namespace) -> Any:
    return tenant_json(await tenants.patch_tenant(s, args.tenant_id, _read_json(args)))


async def _key_create(s: Services, args: argparse.Namespace) -> Any:
    return await admin_keys.create_admin_key(s, args.tenant_id)


async def _key_list(s: Services, args: argparse.Namespace) -> Any:
    found = await admin_keys.list_admin_keys(s, args.tenant_id)
    return {"admin_keys": [admin_key_json(k) for k in found]}


async def _key_delete(s: Services, args: argparse.Namespace) -> Any:
    await admin_keys.delete_admin_key(s, args.tenant_id, args.key_id)


async def _client_put(s: Services, args: argparse.Namespace) -> Any:
    done = await clients.put_client(s, args.tenant_id, args.client_id, _read_json(args))
    return client_json(done.client, done.generated_secret)


async def _client_get(s: Services, args: argparse.Namespace) -> Any:
    return client_json(await clients.get_client(s, args.tenant_id, args.client_id))


async def _client_list(s: Services, args: argparse.Namespace) -> Any:
    return {"clients": [client_json(c) for c in await clients.list_clients(s, args.tenant_id)]}


async def _client_delete(s: Services, args: argparse.Namespace) -> Any:
    await clients.delete_client(s, args.tenant_id, args.client_id)


async def _credential_register(s: Services, args: argparse.Namespace) -> Any:
    outcome = await credentials.register_credentials(s, args.tenant_id, _read_json(args))
    return registration_json(outcome)


async def _plugin_put(s: Services, args: argparse.Namespace) -> Any:
    body = _read_file(args.file)
    return plugin_json(await plugins.put_plugin(s, args.tenant_id, args.name, body, "operator"))


async def _plugin_list(s: Services, args: argparse.Namespace) -> Any:
    found = await plugins.list_plugins(s, args.tenant_id)
    return {"plugins": [plugin_json(p, enabled=on) for p, on in found]}


async def _plugin_get(s: Services, args: argparse.Namespace) -> Any:
    version = plugins.parse_version(args.version)
    found, enabled = await plugins.read_plugin(s, args.tenant_id, args.name, version)
    return plugin_json(found, source=True, enabled=enabled)


async def _plugin_versions(s: Services, args: argparse.Namespace) -> Any:
    found = await plugins.list_versions(s, args.tenant_id, args.name)
    return {"versions": [plugin_json(p) for p in found]}


async def _plugin_activate(s: Services, args: argparse.Namespace) -> Any:
    version = plugins.parse_version(args.version)
    assert version is not None
    return plugin_json(await plugins.activate(s, args.tenant_id, args.name, version))


async def _plugin_test(s: Services, args: argparse.Namespace) -> Any:
    return await plugins.dry_run(s, args.tenant_id, args.name, _read_json(args))


async def _plugin_delete(s: Services, args: argparse.Namespace) -> Any:
    await plugins.delete_plugin(s, args.tenant_id, args.name)


async def _events_list(s: Services, args: argparse.Namespace) -> Any:
    after, limit = events.parse_after(args.after), events.parse_limit(args.limit)
    found, next_cursor = await events.list_events(s, args.tenant_id, after, limit)
    return events_json(found, next_cursor)


async def _signing_key_list(s: Services, args: argparse.Namespace) -> Any:
    return signing_keys.keys_json(await signing_keys.list_keys(s, args.tenant))


async def _signing_key_rotate(s: Services, args: argparse.Namespace) -> Any:
    body = {} if args.overlap_s is None else {"overlap_s": args.overlap_s}
    return signing_keys.keys_json(await signing_keys.rotate(s, args.tenant, body))


async def _receiver_put(s: Services, args: argparse.Namespace) -> Any:
    body = parse_json(_read_file(args.json))
    view, _ = await receivers.put_receiver(s, args.tenant, args.receiver_id, body)
    return receiver_json(view.receiver, view.state)


async def _receiver_get(s: Services, args: argparse.Namespace) -> Any:
    view = await receivers.get_receiver(s, args.tenant, args.receiver_id)
    return receiver_json(view.receiver, view.state, view.log, view.lag)


async def _receiver_list(s: Services, args: argparse.Namespace) -> Any:
    found = await receivers.list_receivers(s, args.tenant)
    return {"receivers": [receiver_json(v.receiver, v.state) for v in found]}


async def _receiver_delete(s: Services, args: argparse.Namespace) -> Any:
    await receivers.delete_receiver(s, args.tenant, args.receiver_id)


async def _keys_list(s: Services, args: argparse.Namespace) -> Any:
    return await key_rotation.list_keys(s, s.clock())


async def _keys_rotate(s: Services, args: argparse.Namespace) -> Any:
    return await key_rotation.rotate(s, stage=args.stage, now=s.clock())


async def _keys_retire(s: Services, args: argparse.Namespace) -> Any:
    return await key_rotation.retire(s, args.key_id, s.clock())


async def _keys_reseal(s: Services, args: argparse.Namespace) -> Any:
    return await key_rotation.reseal(s)
