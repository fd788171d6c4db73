"""Backup and restore of the embedded store, done as docs/OPERATIONS.md tells the operator.

A running service (two workers) takes registrations and revocations while
``revocation-service backup`` copies its store; the copy is restored into a new data
directory and served: every token registered before the backup began is there, the one
revoked before it stays revoked, the others are revocable with the client's old secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.admin.backup import DATABASE_FILE, backup_database
from app.models import Credential, Tenant, TokenType
from app.store.sqlite.store import SqliteStore
from tests.support.server import running_server
from tests.support.world import basic

OPERATOR_KEY = "backup-test-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
DEMO = {"Tenant-ID": "acme"}
EXP = 2**31


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCATION_")}
    env.pop("MONGODB_URI", None)
    return env | {"REVOCATION_ADMIN_KEY": OPERATOR_KEY}


def tokens(prefix: str, n: int) -> list[dict[str, object]]:
    return [
        {"token": f"{prefix}-{i}", "type": "access_token", "client_id": "app", "exp": EXP}
        for i in range(n)
    ]


def rows(database: Path, sql: str) -> int:
    conn = sqlite3.connect(database)
    try:
        count: int = conn.execute(sql).fetchone()[0]
        return count
    except sqlite3.OperationalError:  # no such table: the schema itself is in the WAL
        return 0
    finally:
        conn.close()


def wal_size(database: Path) -> int:
    return Path(f"{database}-wal").stat().st_size


def test_a_live_store_backed_up_while_it_takes_writes_restores_and_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The servers' environment is this one's: their master key is the data directory's.
    for name in ("REVOCATION_MASTER_KEY", "REVOCATION_MASTER_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--no-tenants", "--workers", "2"]
    with running_server(args, cwd=tmp_path, env=_env()) as server:
        http = httpx.Client(base_url=server.url, timeout=30)
        r = http.put("/admin/v1/tenants/acme", json={"issuer": server.url}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        r = http.put(
            "/admin/v1/tenants/acme/clients/app",
            json={"type": "confidential", "scope": "introspect"},
            headers=OPERATOR,
        )
        secret = r.json()["client_secret"]
        app = {**DEMO, **basic("app", secret)}
        r = http.post(
            "/admin/v1/tenants/acme/credentials", json=tokens("old", 500), headers=OPERATOR
        )
        assert r.json() == {"registered": 500, "duplicates": 0}
        assert http.post("/token/revoke", data={"token": "old-0"}, headers=app).status_code == 200

        # Writers on both workers while the backup runs: batches of registrations and
        # single revocations, each acknowledged before the next.
        stop = threading.Event()
        acknowledged: list[str] = []

        def write() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as writer:
                batch = 0
                while not stop.is_set():
                    body = tokens(f"live{batch}", 200)
                    r = writer.post(
                        "/admin/v1/tenants/acme/credentials", json=body, headers=OPERATOR
                    )
                    assert r.status_code == 200, r.text
                    writer.post("/token/revoke", data={"token": f"old-{batch + 1}"}, headers=app)
                    acknowledged.append(f"live{batch}")
                    batch += 1

        threads = [threading.Thread(target=write) for _ in range(2)]
        for t in threads:
            t.start()
        while len(acknowledged) < 4:
            time.sleep(0.01)
        before_backup = list(acknowledged)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "backup",
                "--data-dir",
                str(data),
                str(tmp_path / "backup"),
                "--include-keys",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        time.sleep(0.2)  # writes go on after the copy too
        stop.set()
        for t in threads:
            t.join()
        assert len(acknowledged) > len(before_backup)
        http.close()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # One snapshot: whole batches (each is one transaction), at least those acknowledged
    # before the backup began.
    copied = report["rows"]["credentials"] - 500
    assert copied % 200 == 0
    assert len(before_backup) <= copied // 200 <= len(acknowledged)
    backup = tmp_path / "backup"
    assert report["database"] == str(backup / DATABASE_FILE)
    # The operator key is REVOCATION_ADMIN_KEY here: there is no admin-key file to copy.
    assert [Path(k).name for k in report["keys"]] == ["master-key"]
    for name in (DATABASE_FILE, "master-key"):
        assert stat.S_IMODE((backup / name).stat().st_mode) == 0o600
    # One file, nothing left in a WAL beside it.
    assert sorted(p.name for p in backup.iterdir()) == ["master-key", DATABASE_FILE]
    with sqlite3.connect(backup / DATABASE_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()

    # Restore: a new data directory with the copy and the keys; serve it.
    restored = tmp_path / "restored"
    shutil.copytree(backup, restored)
    args = ["--data-dir", str(restored), "--no-tenants"]
    with (
        running_server(args, cwd=tmp_path, env=_env()) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):

        def active(token: str) -> bool:
            r = http.post("/token/introspect", data={"token": token}, headers=app)
            assert r.status_code == 200, r.text
            return bool(r.json()["active"])

        assert not active("old-0")  # revoked before the backup: still revoked
        assert active("old-499")
        for prefix in before_backup:  # acknowledged before the backup began
            assert active(f"{prefix}-0") and active(f"{prefix}-199")
        r = http.post("/token/revoke", data={"token": "old-499"}, headers=app)
        assert r.status_code == 200
        assert not active("old-499")
        events = http.get("/admin/v1/tenants/acme/events", headers=OPERATOR).json()
        assert events["events"][0]["type"] == "revoked"


async def test_a_plain_file_copy_of_a_live_database_misses_what_the_wal_holds(
    tmp_path: Path,
) -> None:
    """Why the procedure never copies the file: commits stay in ``-wal`` until a
    checkpoint; the backup API reads them."""
    live = tmp_path / "live" / DATABASE_FILE
    live.parent.mkdir()
    store = SqliteStore(live)
    await store.open()
    try:
        tenant = Tenant("acme", {"issuer": "https://a.example"}, b"s" * 16, 0, 0)
        await store.put_tenant(tenant, ["https://a.example"])
        credentials = [
            Credential("acme", bytes([i]) * 32, TokenType.ACCESS_TOKEN, "app", EXP)
            for i in range(50)
        ]
        await store.register_credentials("acme", credentials)
        assert wal_size(live) > 0

        plain = tmp_path / "plain.sqlite3"
        shutil.copyfile(live, plain)
        assert rows(plain, "SELECT count(*) FROM credentials") < 50

        copied = tmp_path / "copy" / DATABASE_FILE
        copied.parent.mkdir()
        report = backup_database(live, copied)
        assert report["rows"]["credentials"] == 50
        assert rows(copied, "SELECT count(*) FROM credentials") == 50
        with pytest.raises(Exception, match="exists already"):
            backup_database(live, copied)

        # The sqlite3 shell's .backup (the same API, in steps) is consistent too.
        if shutil.which("sqlite3"):
            shell = tmp_path / "shell.sqlite3"
            await asyncio.to_thread(
                subprocess.run, ["sqlite3", str(live), f".backup {shell}"], check=True
            )
            assert rows(shell, "SELECT count(*) FROM credentials") == 50
    finally:
        await store.close()
