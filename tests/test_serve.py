"""``revocation-service serve`` as an operator runs it: a real process, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import running_server
from tests.support.world import basic

REPO = Path(__file__).resolve().parent.parent


def _env_without_keys() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCATION_")}
    env.pop("MONGODB_URI", None)
    return env


async def test_serve_with_two_workers_on_one_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--tenants", str(REPO / "tenants"), "--workers", "2"]
    with running_server(args, cwd=tmp_path, env=_env_without_keys()) as server:
        key_file = data / "admin-key"
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert str(key_file.resolve()) in server.log()
        assert key not in server.log()
        operator = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            # The demo tenant's issuer names port 8000: reach it by header here.
            demo = {"Tenant-ID": "demo"}
            r = await http.put(
                "/admin/v1/tenants/demo/clients/backend",
                headers=operator,
                json={"type": "confidential", "scope": "introspect"},
            )
            assert r.status_code == 201, r.text
            secret = r.json()["client_secret"]
            auth = {**demo, **basic("backend", secret)}
            r = await http.post(
                "/admin/v1/tenants/demo/credentials",
                headers=operator,
                json=[
                    {
                        "token": "rt-1",
                        "type": "refresh_token",
                        "client_id": "backend",
                        "exp": 2**31,
                        "grant_id": "g",
                    },
                    {
                        "token": "at-1",
                        "type": "access_token",
                        "client_id": "backend",
                        "exp": 2**31,
                        "grant_id": "g",
                    },
                ],
            )
            assert r.json() == {"registered": 2, "duplicates": 0}
            # Many concurrent revocations of one token across both workers: one event.
            results = await asyncio.gather(
                *(
                    http.post("/token/revoke", data={"token": "rt-1"}, headers=auth)
                    for _ in range(40)
                )
            )
            assert {r.status_code for r in results} == {200}
            r = await http.post("/token/introspect", data={"token": "at-1"}, headers=auth)
            assert r.json() == {"active": False}
            events = (await http.get("/admin/v1/tenants/demo/events", headers=operator)).json()[
                "events"
            ]
            assert [(e["type"], e["count"]) for e in events] == [("revoked", 2)]
            r = await http.get("/.well-known/openid-configuration", headers=demo)
            assert r.json()["revocation_endpoint"] == "http://127.0.0.1:8000/t/demo/token/revoke"
    # Started again on the same data directory: same key, same data.
    with running_server(args, cwd=tmp_path, env=_env_without_keys()) as server:
        assert (data / "admin-key").read_text().strip() == key
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            r = await http.get("/admin/v1/tenants/demo/events", headers=operator)
            assert len(r.json()["events"]) == 1


def test_a_broken_tenant_file_stops_start_up(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "bad.toml").write_text(
        'tenant_id = "x"\nissuer = "https://x.example"\n[revocation]\ncascade = 3\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--tenants",
            str(tenants),
        ],
        cwd=tmp_path,
        env=_env_without_keys(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "bad.toml: revocation.cascade: must be one of" in done.stderr


def _readme_block(heading: str) -> str:
    """The first ``sh`` block after a README heading."""
    text = (REPO / "README.md").read_text()
    start = text.index("```sh\n", text.index(heading)) + len("```sh\n")
    return text[start : text.index("```", start)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_serve_on_another_port_logs_its_urls_and_answers_the_walk_through_twice(
    tmp_path: Path,
) -> None:
    args = ["--data-dir", "data", "--tenants", str(REPO / "tenants")]
    with running_server(args, cwd=tmp_path, env=_env_without_keys()) as server:
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        (key_line,) = [line for line in lines if line["event"] == "operator_admin_key_file"]
        assert key_line["path"] == str((tmp_path / "data" / "admin-key").resolve())
        urls = {line["tenant_id"]: line for line in lines if line["event"] == "tenant_urls"}
        assert sorted(urls) == ["c2id-demo", "cie-demo", "demo", "spid-demo"]
        demo = urls["demo"]
        assert demo["issuer_urls"][0] == "http://127.0.0.1:8000/t/demo/token/revoke"
        assert demo["header_urls"][0] == f"{server.url}/token/revoke"
        assert demo["headers"] == ["Tenant-ID: demo", "Issuer: http://127.0.0.1:8000/t/demo"]
        assert "http://127.0.0.1:8000" in demo["note"]

        walk_through = _readme_block("## Five minutes with curl")
        for _ in range(2):  # the second run must not lose the secret or reuse tokens
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", walk_through],
                cwd=tmp_path,
                env={**os.environ, "BASE": server.url},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            out = done.stdout
            assert '{"registered":2,"duplicates":0}' in out, out
            assert '{"active":true,' in out, out
            assert out.count('{"active":false}') == 1, out
            assert "HTTP/1.1 200 OK" in out, out

        # The issuer's URL on this port is no tenant; the log line says what it saw.
        r = httpx.post(f"{server.url}/t/demo/token/revoke", data={"token": "x"})
        assert r.status_code == 404
        wait_for = time.monotonic() + 10
        while time.monotonic() < wait_for and '"origin"' not in server.log():
            time.sleep(0.05)
        (seen,) = [
            json.loads(line)
            for line in server.log().splitlines()
            if line.startswith("{") and json.loads(line).get("status") == 404
        ]
        assert (seen["origin"], seen["path"]) == (server.url, "/t/demo/token/revoke")


def _running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has ended)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_delivery_process_ends_when_serve_is_killed(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--no-tenants"]
    with running_server(args, cwd=tmp_path, env=_env_without_keys()) as server:
        deadline = time.monotonic() + 30
        while '"delivery_started"' not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        (started,) = [
            json.loads(line)
            for line in server.log().splitlines()
            if line.startswith("{") and '"delivery_started"' in line
        ]
        child = started["pid"]
        assert Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[2] == str(
            server.process.pid
        )
        try:
            # serve alone, not its process group: nothing tells the child but its parent's end.
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
            deadline = time.monotonic() + 30
            while _running(child):
                assert time.monotonic() < deadline, "the delivery process outlived serve"
                time.sleep(0.05)
        finally:
            if _running(child):
                os.kill(child, signal.SIGKILL)
