"""``revocation-service backup DEST``: a consistent copy of the embedded store, live.

The service keeps its SQLite database in WAL mode: committed transactions sit in
``revocation.sqlite3-wal`` until a checkpoint copies them into the main file, so a copy
of the main file alone misses them, and a copy taken while a checkpoint writes is torn.
This command uses SQLite's online backup API instead, all pages in one step: one read
transaction, so the copy is the database as of one commit, while every worker keeps
writing (in WAL mode a reader holds up no writer). The copy is a single file in rollback
journal mode, checked with ``PRAGMA integrity_check``, mode 0600.

``DEST`` is a new directory laid out as a data directory: with ``--include-keys`` it also
holds the master key files and the operator's admin key, and can be served as it is. The
master key is better kept apart from the database backups (a secret store): see
docs/OPERATIONS.md, "Backup and restore". MongoDB is backed up with ``mongodump``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import ADMIN_KEY_FILE
from app.keys import KEY_RING_FILE, MASTER_KEY_ENV, MASTER_KEY_FILE, MASTER_KEYS_FILE_ENV
from app.types import JSON

DATABASE_FILE = "revocation.sqlite3"
BUSY_TIMEOUT_S = 10.0


class BackupError(Exception):
    pass


def backup_database(source: Path, destination: Path) -> JSON:
    """Copy the live database ``source`` to the new file ``destination``."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists():
        raise BackupError(f"{destination} exists already")
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
        try:
            src.execute("PRAGMA query_only = ON")
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: every page in one step, one snapshot
                dst.execute("PRAGMA journal_mode = DELETE")
                integrity = dst.execute("PRAGMA integrity_check").fetchone()[0]
                tables = {
                    name: dst.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608 - our table names
                    for name in ("tenants", "clients", "credentials", "events")
                }
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != "ok":
            raise BackupError(f"the copy fails its integrity check: {integrity}")
        _fsync(partial)
        os.replace(partial, destination)
        _fsync(destination.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"database": str(destination), "bytes": destination.stat().st_size, "rows": tables}


def copy_keys(data_dir: Path, destination: Path) -> list[str]:
    """The key files of ``data_dir`` (the ring, or the single master key, and the admin
    key), copied with mode 0600; what is set in the environment is named instead."""
    copied: list[str] = []
    ring = Path(os.environ.get(MASTER_KEYS_FILE_ENV) or data_dir / KEY_RING_FILE)
    for source, name in (
        (ring, KEY_RING_FILE),
        (data_dir / MASTER_KEY_FILE, MASTER_KEY_FILE),
        (data_dir / ADMIN_KEY_FILE, ADMIN_KEY_FILE),
    ):
        if source.is_file():
            target = destination / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            copied.append(str(target))
    return copied


def backup(data_dir: Path, destination: Path, *, include_keys: bool) -> JSON:
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty")
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    done = backup_database(data_dir / DATABASE_FILE, destination / DATABASE_FILE)
    done["keys"] = copy_keys(data_dir, destination) if include_keys else []
    if os.environ.get(MASTER_KEY_ENV) and not done["keys"]:
        done["note"] = f"the master key is {MASTER_KEY_ENV}: keep it apart, with the backups"
    elif not include_keys:
        done["note"] = "no key files copied: keep the master key apart, with the backups"
    return done


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def register(
    commands: argparse._SubParsersAction[Any],
    add_store_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "backup", help="copy the live embedded store (and its keys) to a new directory"
    )
    add_store_options(p)
    p.add_argument("destination", help="a new or empty directory")
    p.add_argument(
        "--include-keys",
        action="store_true",
        help="also copy the master key files and the admin key (0600) [no]",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.mongodb_uri or os.environ.get("MONGODB_URI"):
        return _fail("MongoDB: back it up with mongodump (docs/OPERATIONS.md)")
    try:
        done = backup(Path(args.data_dir), Path(args.destination), include_keys=args.include_keys)
    except (BackupError, OSError, sqlite3.Error) as exc:
        return _fail(str(exc))
    print(json.dumps(done, indent=2))
    return 0


def _fail(description: str) -> int:
    body = {"error": "server_error", "error_description": description}
    print(json.dumps(body), file=sys.stderr)
    return 1
