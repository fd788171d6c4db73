"""``revocation-service credential import``: JSON Lines and CSV, bad lines reported by
number, a batch refused for one line, and an import of 100,000 lines killed half-way
then resumed, against the store and against a running service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.admin import clients, credential_import, credentials, tenants
from app.admin.credential_import import StoreTarget
from app.bootstrap import open_services
from app.cli import main
from app.config import ServiceConfig
from app.errors import FieldError
from app.services import Services
from tests.support.server import running_server

EXP = 2_000_000_000
ADMIN_KEY = "import-test-operator-key-0123456789"
DEADLINE_S = 120.0


def credential(token: str, **fields: Any) -> dict[str, Any]:
    return {"token": token, "type": "access_token", "client_id": "app", "exp": EXP, **fields}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def last_json(stderr: str) -> Any:
    """The error a stopped import prints last on stderr (after its progress lines)."""
    return json.loads(stderr.strip().splitlines()[-1])


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """A data directory with tenant ``acme`` and its public client ``app``."""
    store = ["--data-dir", str(tmp_path / "data")]
    acme = '{"issuer": "https://acme.example"}'
    assert run(capsys, "tenant", "put", "acme", "--from-json", acme, *store)[0] == 0
    app = '{"type": "public", "token_endpoint_auth_method": "none"}'
    assert run(capsys, "client", "put", "acme", "app", "--from-json", app, *store)[0] == 0
    return store


async def _live_credentials(data_dir: Path, sub: str) -> int:
    services = await open_services(ServiceConfig(data_dir=data_dir, tenants_dir=None))
    try:
        found = await services.store.subject_clients("acme", sub, services.clock())
    finally:
        await services.close()
        await services.store.close()
    return sum(c.credentials for c in found)


def live_credentials(data: list[str], sub: str) -> int:
    """Counted in the store: each registered line is one credential."""
    return asyncio.run(_live_credentials(Path(data[1]), sub))


def test_json_lines_with_bad_lines_reported_by_number(
    tmp_path: Path, data: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps(credential("t1", sub="s")),
        json.dumps(credential("t2", sub="s")),
        "",
        json.dumps(credential("t3", type="strange")),
        json.dumps(credential("t4", client_id="nobody")),
        '{"token": "t5", "type": ',
        "[1, 2]",
        json.dumps(credential("t1", sub="s")),  # the same issuance again: a duplicate
        json.dumps(credential("t1", sub="other")),  # the same token, other fields
        json.dumps(credential("t6", client_id="nobody")),
        json.dumps(credential("t7", sub="s", colour="blue")),
        json.dumps(credential("t8", sub="s")),
    ]
    source = tmp_path / "creds.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, report, err = run(
        capsys, "credential", "import", "acme", str(source), "--batch", "4", *data
    )
    assert code == 0, err
    assert (report["registered"], report["duplicates"], report["rejected"]) == (3, 1, 7)
    assert report["lines"] == 12
    reasons = {r["line"]: r["reason"] for r in report["rejected_lines"]}
    assert sorted(reasons) == [4, 5, 6, 7, 9, 10, 11]
    assert reasons[4].startswith("invalid field type: must be one of")
    assert reasons[5] == reasons[10]
    assert reasons[5].startswith("unknown client 'nobody'")
    assert reasons[6].startswith("malformed JSON: ")
    assert reasons[7] == "malformed JSON: not an object"
    assert reasons[9].startswith("conflict: the token ")
    assert reasons[11] == "invalid field colour: unknown field"
    assert live_credentials(data, "s") == 3
    # A finished import leaves no state behind; the same file again registers nothing.
    assert not Path(f"{source}.import-state").exists()
    code, report, _ = run(capsys, "credential", "import", "acme", str(source), *data)
    assert (report["registered"], report["duplicates"], report["rejected"]) == (0, 4, 7)


def test_csv_with_a_header_row(
    tmp_path: Path, data: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "creds.csv"
    source.write_bytes(
        "\ufefftoken,type,client_id,exp,sub,scope,iat\r\n"
        f"c1,access_token,app,{EXP},s,,\r\n"
        f'"c,2",refresh_token,app,{EXP},s,"openid profile",1700000000\r\n'
        f"c3,access_token,app,soon,s,,\r\n"
        f"c4,access_token,app,{EXP}\r\n"
        "\r\n"
        f'c5,access_token,app,{EXP},s,"a\r\nb",\r\n'
        f'"c6,access_token,app,{EXP},s,,\r\n'.encode()
    )
    code, report, err = run(capsys, "credential", "import", "acme", str(source), *data)
    assert code == 0, err
    assert (report["registered"], report["duplicates"], report["rejected"]) == (3, 0, 3)
    reasons = {r["line"]: r["reason"] for r in report["rejected_lines"]}
    assert reasons[4] == "invalid field exp: must be a whole number"
    assert reasons[5] == "malformed CSV row: 4 cells, the header has 7"
    # A quoted cell over two lines (7 and 8) is one record; an unclosed quote on line 9
    # takes the rest of the file with it.
    assert reasons[9].startswith("malformed CSV row: ")
    assert live_credentials(data, "s") == 3


def test_a_csv_header_must_name_credential_fields(
    tmp_path: Path, data: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "creds.csv"
    source.write_text(f"token,type,client,exp\nc1,access_token,app,{EXP}\n")
    code, report, err = run(capsys, "credential", "import", "acme", str(source), *data)
    assert (code, report) == (1, None)
    assert (
        "the CSV header names 'client', not a credential field"
        in last_json(err)["error_description"]
    )


def test_an_interrupted_import_is_neither_restarted_by_accident_nor_repeated(
    tmp_path: Path,
    data: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed between a batch's commit and its state: the batch is sent again on
    resume, comes back as duplicates, and still counts as registered."""
    source = tmp_path / "creds.jsonl"
    rows = [credential(f"k{i}", sub="s") for i in range(10)] + [credential("k0", sub="s")]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n")
    register = StoreTarget.register
    calls = 0

    async def dies_after_the_second_commit(self: StoreTarget, items: Any) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        done = await register(self, items)
        if calls == 2:
            raise credential_import.ImportStopped("killed")
        return done

    monkeypatch.setattr(StoreTarget, "register", dies_after_the_second_commit)
    argv = ["credential", "import", "acme", str(source), "--batch", "3", *data]
    code, report, err = run(capsys, *argv)
    assert (code, report) == (1, None)
    assert last_json(err)["state"] == f"{source}.import-state"
    state = json.loads(Path(f"{source}.import-state").read_text())
    assert (state["line"], state["registered"], state["in_flight"]["sent"]) == (3, 3, 3)
    monkeypatch.setattr(StoreTarget, "register", register)

    code, report, err = run(capsys, *argv)  # neither --resume nor --restart
    assert code == 1
    assert "--resume continues it" in last_json(err)["error_description"]

    code, report, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    assert (report["registered"], report["duplicates"], report["rejected"]) == (10, 1, 1)
    assert report["rejected_lines"] == [
        {"line": 12, "reason": "malformed JSON: Expecting property name enclosed in double "
         "quotes (column 2)"}
    ]  # fmt: skip
    assert live_credentials(data, "s") == 10

    code, report, _ = run(capsys, *argv, "--restart")
    assert (report["registered"], report["duplicates"]) == (0, 11)


@pytest.mark.parametrize(
    "item",
    [
        {},
        {"token": "t", "type": "access_token", "client_id": "app"},
        {"token": "", "type": "access_token", "client_id": "app", "exp": EXP},
        {"token": "t", "type": "jwt", "client_id": "app", "exp": EXP},
        {"token": "t", "type": "access_token", "client_id": "app", "exp": "soon"},
        {"token": "t", "type": "access_token", "client_id": "app", "exp": -1},
        {"token": "t", "type": "access_token", "client_id": 7, "exp": EXP},
        {"token": "t", "type": "access_token", "client_id": "app", "exp": EXP, "sub": ""},
        {"token": "t", "type": "access_token", "client_id": "app", "exp": EXP, "iat": 1.5},
        {"token": "t", "type": "access_token", "client_id": "app", "exp": EXP, "x": 1},
        {"token": "t" * 4097, "type": "access_token", "client_id": "app", "exp": EXP},
        {"token": "t", "type": "access_token", "client_id": "a" * 256, "exp": EXP},
    ],
)
async def test_the_local_check_is_the_admin_apis(services: Services, item: dict[str, Any]) -> None:
    """The lines checked before sending are refused by the operation for the same field
    and reason (the check exists so that a bad line costs no request)."""
    await tenants.put_tenant(services, "acme", {"issuer": "https://acme.example"})
    with pytest.raises(FieldError) as refused:
        await credentials.register_credentials(services, "acme", item)
    found = credential_import.check(item)
    assert found is not None
    assert (found.field, found.description) == (refused.value.field, refused.value.description)


# --- 100,000 lines, killed half-way, resumed ---------------------------------------------

TOTAL = 100_000
BAD_LINES = [i for i in range(1, TOTAL + 1) if i % 10_000 == 5_000]


def big_file(path: Path) -> None:
    """100,000 lines: ten malformed ones, and the last repeats the first."""
    with path.open("w") as out:
        for i in range(1, TOTAL):
            if i in BAD_LINES:
                out.write('{"token": oops}\n')
            else:
                out.write(json.dumps(credential(f"big-{i}", sub="alice")) + "\n")
        out.write(json.dumps(credential("big-1", sub="alice")) + "\n")


def import_command(source: Path, *target: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app",
        "credential",
        "import",
        "acme",
        str(source),
        "--batch",
        "1000",
        "--no-progress",
        *target,
    ]


def kill_half_way(command: list[str], state_file: Path, cwd: Path, env: dict[str, str]) -> None:
    """Start the import; SIGKILL it once its state file shows 40,000 lines done."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):  # not there yet
                state = {"line": 0}
            if state["line"] >= 40_000:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        else:
            raise AssertionError("the import made no progress")
    finally:
        process.kill()
        process.communicate()
    state = json.loads(state_file.read_text())
    assert 40_000 <= state["line"] < TOTAL


def resume(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [*command, "--resume"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def check_totals(report: dict[str, Any]) -> None:
    assert report["lines"] == TOTAL
    assert (report["registered"], report["duplicates"]) == (TOTAL - len(BAD_LINES) - 1, 1)
    assert [r["line"] for r in report["rejected_lines"]] == BAD_LINES


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCATION_")}
    env.pop("MONGODB_URI", None)
    return env


def test_100k_lines_killed_half_way_then_resumed_on_the_store(
    tmp_path: Path, data: list[str]
) -> None:
    source = tmp_path / "big.jsonl"
    big_file(source)
    command = import_command(source, *data)
    kill_half_way(command, Path(f"{source}.import-state"), tmp_path, _env())
    check_totals(resume(command, tmp_path, _env()))
    assert live_credentials(data, "alice") == TOTAL - len(BAD_LINES) - 1


def test_100k_lines_killed_half_way_then_resumed_through_the_admin_api(tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    big_file(source)
    env = {**_env(), "REVOCATION_ADMIN_KEY": ADMIN_KEY}
    args = ["--data-dir", str(tmp_path / "data"), "--no-tenants"]
    with running_server(args, cwd=tmp_path, env=env) as server:
        operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=server.url, headers=operator, timeout=30) as http:
            r = http.put("/admin/v1/tenants/acme", json={"issuer": "https://acme.example"})
            assert r.status_code == 201, r.text
            public = {"type": "public", "token_endpoint_auth_method": "none"}
            assert http.put("/admin/v1/tenants/acme/clients/app", json=public).is_success
            command = import_command(source, "--url", server.url)
            kill_half_way(command, Path(f"{source}.import-state"), tmp_path, env)
            check_totals(resume(command, tmp_path, env))
            r = http.get("/admin/v1/tenants/acme/subjects/alice/clients")
            assert r.json()["clients"] == [
                {"client_id": "app", "credentials": TOTAL - len(BAD_LINES) - 1, "grants": 0}
            ]


def test_refused_without_the_key_or_for_an_unknown_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps(credential("x")) + "\n")
    monkeypatch.delenv("REVOCATION_ADMIN_KEY", raising=False)
    code, _, err = run(capsys, "credential", "import", "acme", str(source), "--url", "http://x")
    assert code == 1
    assert "--admin-key" in last_json(err)["error_description"]
    data = ["--data-dir", str(tmp_path / "data")]
    code, _, err = run(capsys, "credential", "import", "nobody", str(source), *data)
    assert code == 1
    assert last_json(err)["error_description"] == "tenant 'nobody': no such tenant"
    assert not Path(f"{source}.import-state").exists()


async def test_the_same_import_on_each_store_backend(services: Services, tmp_path: Path) -> None:
    """The direct path, on SQLite and on MongoDB: refusals by the operation (unknown
    client, a token registered with other fields) reject their line, not the batch."""
    await tenants.put_tenant(services, "acme", {"issuer": "https://acme.example"})
    await clients.put_client(
        services, "acme", "app", {"type": "public", "token_endpoint_auth_method": "none"}
    )
    await credentials.register_credentials(services, "acme", credential("old", sub="s"))
    source = tmp_path / "c.jsonl"
    rows = [credential(f"m{i}", sub="s") for i in range(7)]
    rows[2] = credential("m2", client_id="nobody")
    rows[4] = credential("old", sub="other")
    rows[5] = credential("old", sub="s")
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    options = credential_import.Options(source, "acme", "jsonl", batch=100)
    importer = credential_import.Importer.begin(options, StoreTarget(services, "acme"))
    state = await importer.run()
    assert (state.registered, state.duplicates, state.rejected) == (4, 1, 2)
    rejects = [json.loads(line) for line in options.rejects_path.read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 5]
    assert rejects[0]["reason"].startswith("unknown client 'nobody'")
    assert rejects[1]["reason"] == "conflict: the token is already registered with other fields"
    found = await services.store.subject_clients("acme", "s", services.clock())
    assert [c.credentials for c in found] == [5]
